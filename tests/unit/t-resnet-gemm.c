/* t-resnet-gemm: the GEMM under the ResNet convolutions (lib/resnet_gemm.h)
 * and the convolution kernels that use it, against plain loops.
 *
 * mm__gemm on ragged shapes (M not a multiple of the 14-row tile, N not a
 * multiple of 16 or 32, K odd) with each epilogue (bias, residual add,
 * ReLU), through the AVX-512 kernel when the CPU has it and through the
 * cblas fallback; then the whole network on odd image sizes (stride 2 and
 * padding edges in every layer) with the kernels on and off, the off path
 * being the im2col + sgemm one.
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mm/resnet.h"
#include "mm/rng.h"
#include "resnet_gemm.h"
#include "../tap.h"

static uint64_t st = 7;

static float u(void) { return (float)(mm_splitmix64(&st) >> 40) / 16777216.0f - 0.5f; }

/* worst |got - ref| / (sum |a_ik b_kj| + |bias_j| + |c_ij| + 1e-30) over C:
 * the error relative to the size of what was summed */
static double check(int m, int k, int n, int flags, int with_bias)
{
    int lda = k + 3, ldc = n + 5; /* leading dimensions wider than the rows */
    float *a = malloc(sizeof *a * m * lda), *b = malloc(sizeof *b * k * n);
    float *bias = malloc(sizeof *bias * n), *c0 = malloc(sizeof *c0 * m * ldc);
    float *c = malloc(sizeof *c * m * ldc);
    for (int i = 0; i < m * lda; i++) a[i] = u();
    for (int i = 0; i < k * n; i++) b[i] = u();
    for (int i = 0; i < n; i++) bias[i] = u();
    for (int i = 0; i < m * ldc; i++) c0[i] = u();
    memcpy(c, c0, sizeof *c * m * ldc);
    mm__gemm_b *pb = mm__gemm_pack(b, k, n);
    mm__gemm(m, a, lda, pb, with_bias ? bias : NULL, flags, c, ldc);
    double worst = 0;
    for (int i = 0; i < m; i++) {
        for (int j = 0; j < n; j++) {
            double s = 0, mag = 0;
            for (int q = 0; q < k; q++) {
                double t = (double)a[i * lda + q] * b[q * n + j];
                s += t;
                mag += fabs(t);
            }
            if (with_bias) {
                s += bias[j];
                mag += fabs(bias[j]);
            }
            if (flags & MM__GEMM_ACC) {
                s += c0[i * ldc + j];
                mag += fabs(c0[i * ldc + j]);
            }
            if ((flags & MM__GEMM_RELU) && s < 0) s = 0;
            double e = fabs(c[i * ldc + j] - s) / (mag + 1e-30);
            if (e > worst || isnan(c[i * ldc + j])) worst = isnan(e) ? 1 : e;
        }
        /* the padding between rows is not written */
        for (int j = n; j < ldc; j++)
            if (c[i * ldc + j] != c0[i * ldc + j]) worst = 1;
    }
    mm__gemm_free(pb);
    free(a);
    free(b);
    free(bias);
    free(c0);
    free(c);
    return worst;
}

static void test_gemm(const char *path)
{
    static const int ms[] = {1, 13, 14, 15, 43, 200};
    static const int ks[] = {1, 3, 17, 64, 147, 300};
    static const int ns[] = {1, 5, 16, 17, 31, 32, 33, 70};
    double worst = 0;
    int cases = 0;
    for (size_t x = 0; x < sizeof ms / sizeof *ms; x++)
        for (size_t y = 0; y < sizeof ks / sizeof *ks; y++)
            for (size_t z = 0; z < sizeof ns / sizeof *ns; z++) {
                int flags = (int)((x + y + z) % 4), bias = (x + z) % 2;
                double e = check(ms[x], ks[y], ns[z], flags, bias);
                if (e > worst) worst = e;
                if (e > 1e-6)
                    diag("%s: M %d K %d N %d flags %d bias %d: %.3g", path,
                         ms[x], ks[y], ns[z], flags, bias, e);
                cases++;
            }
    ok(worst < 1e-6, "%s: %d ragged shapes equal plain loops (worst %.3g)",
       path, cases, worst);
    /* every epilogue on one ragged shape */
    for (int flags = 0; flags < 4; flags++)
        for (int bias = 0; bias < 2; bias++) {
            double e = check(29, 70, 45, flags, bias);
            ok(e < 1e-6, "%s: 29x70x45, add %d, relu %d, bias %d (%.3g)",
               path, flags & 1, flags >> 1, bias, e);
        }
}

/* The network on N images of H x W with the kernels on, then off (the
 * path is chosen when the weights are prepared, at load). */
static void test_network(int layer, int n, int h, int w)
{
    mm_resnet *m = mm_resnet_load("random:5", layer);
    mm__gemm_set_kernel(0);
    mm_resnet *m0 = mm_resnet_load("random:5", layer);
    mm__gemm_set_kernel(1);
    if (!ok(m && m0, "load random:5 layer %d", layer)) return;
    int dim = mm_resnet_dim(m);
    float *x = malloc(sizeof *x * n * h * w * 3);
    float *a = malloc(sizeof *a * n * dim), *b = malloc(sizeof *b * n * dim);
    for (int i = 0; i < n * h * w * 3; i++) x[i] = 4 * u();
    int ra = mm_resnet_forward(m, n, h, w, x, a);
    int rb = mm_resnet_forward(m0, n, h, w, x, b);
    double md = 0, mb = 0;
    for (int i = 0; i < n * dim; i++) {
        md = fmax(md, fabs((double)a[i] - b[i]));
        mb = fmax(mb, fabs((double)b[i]));
    }
    ok(ra == 0 && rb == 0 && mb > 0 && md / mb < 1e-5,
       "layer %d, %d x %d x %d: kernels equal im2col + sgemm (%.3g)", layer,
       n, h, w, mb > 0 ? md / mb : 1.0);
    free(x);
    free(a);
    free(b);
    mm_resnet_free(m);
    mm_resnet_free(m0);
}

int main(void)
{
    if (mm__gemm_kernel()) {
        test_gemm("avx512");
    } else {
        diag("SKIP the AVX-512 kernel: not this CPU");
    }
    mm__gemm_set_kernel(0);
    test_gemm("fallback");
    mm__gemm_set_kernel(1);
    if (mm__gemm_kernel()) {
        test_network(3, 3, 67, 45);
        test_network(4, 2, 40, 33);
    } else {
        diag("SKIP the network with and without the kernels: no AVX-512");
    }
    return done_testing();
}
