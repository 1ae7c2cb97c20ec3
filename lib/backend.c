/* backend.c: the CPU-side face of the backends (mm/backend.h). Without the
 * CUDA build every CUDA call says it is not built.
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <stdio.h>

#include "mm/backend.h"
#include "mm/defs.h"

#ifdef MM_HAVE_CUDA
int mm__cuda_probe(char *desc, size_t n, char *err, size_t errn);
int mm__cuda_sgemm(int m, int n, int k, const float *a, const float *b,
                   float *c, char *err, size_t errn);

int mm_cuda_built(void) { return 1; }

int mm_cuda_probe(char *desc, size_t n)
{
    return mm__cuda_probe(desc, n, desc, n);
}

int mm_cuda_sgemm_check(int m, int n, int k, const float *a, const float *b,
                        float *c)
{
    char err[256];
    if (mm__cuda_sgemm(m, n, k, a, b, c, err, sizeof err) != 0) {
        mm__set_error("%s", err);
        return -1;
    }
    return 0;
}
#else
int mm_cuda_built(void) { return 0; }

int mm_cuda_probe(char *desc, size_t n)
{
    snprintf(desc, n, "CUDA backend not built (configure found no CUDA toolkit)");
    return 0;
}

int mm_cuda_sgemm_check(int m, int n, int k, const float *a, const float *b,
                        float *c)
{
    (void)m; (void)n; (void)k; (void)a; (void)b; (void)c;
    mm__set_error("CUDA backend not built");
    return -1;
}
#endif
