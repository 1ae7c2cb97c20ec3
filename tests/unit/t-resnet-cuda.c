/* t-resnet-cuda.c: the cuDNN ResNet-50 trunk (mm/resnet_cuda.h) against the
 * CPU engine (mm/resnet.h) on random:SEED weights and random u8 tiles.
 *
 * Tolerance, per tile: max |gpu - cpu| / max |cpu| over the features.
 * FP16 (half activations and weights, FP32 accumulation): 3e-2. TF32
 * (float activations, 10-bit-mantissa products): 1e-2. Both are loose
 * bounds for ~50 convolutions in a row; the measured figures are printed
 * (diag) so the device check reports them.
 * Without the CUDA build or a GPU: only that the calls fail with a one-line
 * reason (the comparisons are skipped, with the reason as a diagnostic).
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mm/resnet.h"
#include "mm/resnet_cuda.h"
#include "../tap.h"

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static uint8_t rnd8(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint8_t)(rng >> 24);
}

/* H&E-ish tiles: a pinkish base with noise, so activations are varied */
static uint8_t *tiles_new(int n, int h, int w)
{
    uint8_t *t = malloc((size_t)n * h * w * 3);
    for (size_t i = 0; i < (size_t)n * h * w; i++) {
        t[3 * i] = (uint8_t)(160 + rnd8() % 90);
        t[3 * i + 1] = (uint8_t)(60 + rnd8() % 120);
        t[3 * i + 2] = (uint8_t)(120 + rnd8() % 110);
    }
    return t;
}

static float *cpu_features(mm_resnet *m, const uint8_t *t, int n, int h, int w)
{
    float *x = malloc(sizeof(float) * (size_t)n * h * w * 3);
    float *f = malloc(sizeof(float) * (size_t)n * mm_resnet_dim(m));
    for (int i = 0; i < n; i++)
        mm_resnet_preprocess(t + (size_t)i * h * w * 3, h, w, x + (size_t)i * h * w * 3);
    if (mm_resnet_forward(m, n, h, w, x, f) != 0) {
        diag("CPU engine: %s", mm_strerror());
        free(f);
        f = NULL;
    }
    free(x);
    return f;
}

/* worst per-tile relative difference; NaN anywhere gives infinity */
static double rel_diff(const float *g, const float *c, int n, int dim)
{
    double worst = 0;
    for (int i = 0; i < n; i++) {
        double mx = 0, md = 0;
        for (int d = 0; d < dim; d++) {
            double a = c[(size_t)i * dim + d], b = g[(size_t)i * dim + d];
            if (!isfinite(b)) return INFINITY;
            if (fabs(a) > mx) mx = fabs(a);
            if (fabs(a - b) > md) md = fabs(a - b);
        }
        double r = md / (mx > 0 ? mx : 1);
        if (r > worst) worst = r;
    }
    return worst;
}

static void compare(const char *weights, int layer, int n, int hw, mm_cuda_precision prec,
                    double tol)
{
    const char *pn = prec == MM_CUDA_FP16 ? "FP16" : "TF32";
    mm_resnet *m = mm_resnet_load(weights, layer);
    if (!ok(m != NULL, "load %s layer %d", weights, layer)) {
        diag("%s", mm_strerror());
        return;
    }
    uint8_t *t = tiles_new(n, hw, hw);
    float *cpu = cpu_features(m, t, n, hw, hw);
    /* a batch larger than N: the short-batch path */
    mm_resnet_cuda *g = mm_resnet_cuda_new_ex(m, n + 1, hw, hw, prec);
    if (!ok(g != NULL, "%s layer %d %dx%d: built", pn, layer, hw, hw)) diag("%s", mm_strerror());
    if (g && cpu) {
        diag("%s", mm_resnet_cuda_describe(g));
        int dim = mm_resnet_dim(m);
        is_int(mm_resnet_cuda_dim(g), dim, "dim %d", dim);
        float *f = malloc(sizeof(float) * (size_t)n * dim);
        memset(f, 0xff, sizeof(float) * (size_t)n * dim);
        ok(mm_resnet_cuda_forward_u8(g, t, n, f) == 0, "%s forward", pn);
        double r = rel_diff(f, cpu, n, dim);
        diag("%s layer %d %dx%d: max relative difference to the CPU engine %.3g (tolerance %g)",
             pn, layer, hw, hw, r, tol);
        ok(r <= tol, "%s layer %d %dx%d within %g of the CPU engine (%.3g)", pn, layer, hw, hw,
           tol, r);
        /* the two slots: batches come back in order, each its own */
        if (n >= 2) {
            float *a = malloc(sizeof(float) * (size_t)n * dim);
            int k = n / 2;
            size_t tb = (size_t)hw * hw * 3;
            ok(mm_resnet_cuda_submit(g, t, k) == 0, "submit %d tiles", k);
            ok(mm_resnet_cuda_submit(g, t + k * tb, n - k) == 0, "submit %d more", n - k);
            is_int(mm_resnet_cuda_pending(g), 2, "two batches queued");
            ok(mm_resnet_cuda_submit(g, t, 1) == -1, "a third is refused: %s", mm_strerror());
            is_int(mm_resnet_cuda_collect(g, a), k, "the first batch back first");
            is_int(mm_resnet_cuda_collect(g, a + (size_t)k * dim), n - k, "then the second");
            is_int(mm_resnet_cuda_collect(g, a), 0, "then nothing");
            ok(memcmp(a, f, sizeof(float) * (size_t)n * dim) == 0 ||
                   rel_diff(a, f, n, dim) <= 1e-3,
               "split batches give the features of one (%.3g)", rel_diff(a, f, n, dim));
            free(a);
        }
        ok(mm_resnet_cuda_forward_u8(g, t, n + 2, f) == -1, "a batch over the maximum: %s",
           mm_strerror());
        free(f);
    }
    mm_resnet_cuda_free(g);
    free(cpu);
    free(t);
    mm_resnet_free(m);
}

int main(void)
{
    char why[256];
    int have = mm_resnet_cuda_available(why, sizeof why);
    mm_resnet *m = mm_resnet_load("random:3", 3);
    if (!m) {
        printf("Bail out! random:3 weights: %s\n", mm_strerror());
        return 1;
    }
    if (!have) {
        /* no backend, or no device: the calls say why, one line */
        mm_resnet_cuda *g = mm_resnet_cuda_new(m, 4, 64, 64);
        ok(g == NULL, "no cuDNN handle without CUDA: %s", mm_strerror());
        ok(strlen(why) > 0 && !strchr(why, '\n'), "one-line reason: %s", why);
        mm_resnet_free(m);
        diag("GPU comparisons skipped: %s", why);
        return done_testing();
    }
    ok(mm_resnet_cuda_new(m, 4, 100, 100) == NULL, "100x100 refused: %s", mm_strerror());
    ok(mm_resnet_cuda_new(m, 0, 64, 64) == NULL, "batch 0 refused");
    mm_resnet_free(m);
    diag("%s", why);
    compare("random:3", 3, 5, 64, MM_CUDA_FP16, 3e-2);
    compare("random:3", 3, 5, 64, MM_CUDA_TF32, 1e-2);
    compare("random:11", 4, 3, 96, MM_CUDA_FP16, 3e-2);
    compare("random:11", 4, 3, 96, MM_CUDA_TF32, 1e-2);
    compare("random:42", 3, 2, 256, MM_CUDA_FP16, 3e-2);
    compare("random:42", 3, 2, 256, MM_CUDA_TF32, 1e-2);
    return done_testing();
}
