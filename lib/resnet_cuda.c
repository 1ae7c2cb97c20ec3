/* resnet_cuda.c: mm/resnet_cuda.h in a build without the CUDA backend:
 * every call says so (the cuDNN engine is lib/cuda/resnet.cu).
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <stdio.h>

#include "mm/resnet_cuda.h"

static const char not_built[] = "CUDA backend not built (configure found no CUDA toolkit, or --without-cuda)";

int mm_resnet_cuda_available(char *why, size_t n)
{
    snprintf(why, n, "%s", not_built);
    return 0;
}

mm_resnet_cuda *mm_resnet_cuda_new_ex(const mm_resnet *m, int max_batch, int h, int w,
                                      mm_cuda_precision prec)
{
    (void)m; (void)max_batch; (void)h; (void)w; (void)prec;
    mm__set_error("%s", not_built);
    return NULL;
}

mm_resnet_cuda *mm_resnet_cuda_new(const mm_resnet *m, int max_batch, int h, int w)
{
    return mm_resnet_cuda_new_ex(m, max_batch, h, w, MM_CUDA_FP16);
}

/* No handle can exist without the backend: these are never reached with
 * one, and refuse rather than crash when handed NULL. */
void mm_resnet_cuda_free(mm_resnet_cuda *g) { (void)g; }

int mm_resnet_cuda_forward_u8(mm_resnet_cuda *g, const uint8_t *tiles, int n, float *out)
{
    (void)g; (void)tiles; (void)n; (void)out;
    mm__set_error("%s", not_built);
    return -1;
}

int mm_resnet_cuda_submit(mm_resnet_cuda *g, const uint8_t *tiles, int n)
{
    (void)g; (void)tiles; (void)n;
    mm__set_error("%s", not_built);
    return -1;
}

int mm_resnet_cuda_collect(mm_resnet_cuda *g, float *out)
{
    (void)g; (void)out;
    mm__set_error("%s", not_built);
    return -1;
}

int mm_resnet_cuda_pending(const mm_resnet_cuda *g) { (void)g; return 0; }
int mm_resnet_cuda_dim(const mm_resnet_cuda *g) { (void)g; return 0; }
const char *mm_resnet_cuda_describe(const mm_resnet_cuda *g) { (void)g; return not_built; }
