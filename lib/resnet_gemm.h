/* resnet_gemm.h: the GEMM under lib/resnet.c's convolutions (internal).
 *
 * C (M x N) = act(A (M x K) B (K x N) + bias [+ C]), row-major, with the
 * bias, the residual add and the ReLU applied while the output tile is in
 * registers, so C is written once. B is a weight matrix prepared once at
 * load time (mm__gemm_pack). On CPUs with AVX-512 an own micro-kernel runs
 * (14 rows x 32 columns of C in 28 zmm registers, B packed in 32-column
 * panels); elsewhere, or when turned off, cblas_sgemm and one epilogue pass.
 * The two give the same values up to rounding (the order of the sums
 * differs). Single-threaded: callers split the rows among their threads.
 * SPDX-License-Identifier: MIT */
#ifndef MM_RESNET_GEMM_H
#define MM_RESNET_GEMM_H

#include <stddef.h>

typedef struct mm__gemm_b mm__gemm_b;

enum {
    MM__GEMM_ACC = 1,  /* add C's previous contents (the shortcut) */
    MM__GEMM_RELU = 2  /* max(0, .) after the bias and the add */
};

/* B (K x N, K and N >= 1, row-major, leading dimension N), copied: in
 * the AVX-512 kernel's panels when mm__gemm_kernel() says so at this call,
 * else as it is for cblas_sgemm. The path is fixed here, per B. */
mm__gemm_b *mm__gemm_pack(const float *b, int k, int n);
void mm__gemm_free(mm__gemm_b *pb); /* NULL is a no-op */

/* C = act(A B + BIAS [+ C]) as above; BIAS (N) may be NULL. Rows of A
 * may overlap (LDA < K, the stem reads them so) only when B was packed for
 * the kernel: cblas_sgemm refuses it. */
void mm__gemm(int m, const float *a, int lda, const mm__gemm_b *b,
              const float *bias, int flags, float *c, int ldc);

/* Whether mm__gemm_pack prepares for the AVX-512 kernel: 1 when the CPU
 * has it and it is not turned off. mm__gemm_set_kernel(0) makes later
 * packs take the fallback, (1) restores the default (for tests comparing
 * the two; not thread-safe). */
int mm__gemm_kernel(void);
void mm__gemm_set_kernel(int on);

#endif
