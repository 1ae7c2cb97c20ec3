/* mm/backend.h: which compute backends this build has and what they see.
 * The tensor library (its own issue) dispatches on these; for now this is
 * the probe configure's CUDA detection is checked with.
 * SPDX-License-Identifier: MIT */
#ifndef MM_BACKEND_H
#define MM_BACKEND_H

#include <stddef.h>

/* 1 when libmmpath was built with the CUDA backend (configure --with-cuda). */
int mm_cuda_built(void);

/* Count the CUDA devices and describe them in DESC (one line: "NVIDIA H100
 * 80GB HBM3 (sm_90, 79 GiB), CUDA runtime 13.0, cuBLAS 13.0.0, cuDNN 9.x").
 * @return the number of devices (0 when none or not built: DESC says why),
 * or -1 when the runtime fails (DESC has its message). */
int mm_cuda_probe(char *desc, size_t n);

/* Multiply A (M x K) by B (K x N) into C (M x N), row-major f32, with cuBLAS
 * on device 0. A check of the whole path (copy, sgemm, copy back).
 * @return 0, or -1 with the reason in mm_strerror(). */
int mm_cuda_sgemm_check(int m, int n, int k, const float *a, const float *b,
                        float *c);

#endif
