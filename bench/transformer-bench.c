/* transformer-bench.c: one training step of a 2-layer pre-LN transformer
 * (mm_block from mm/nn.h) timed on the CPU, for bench/transformer.sh.
 *
 *   transformer-bench step [--tokens N] [--dim D] [--heads H] [--layers L]
 *                          [--steps S] [--warmup W]
 *   transformer-bench sgemm [--tokens N] [--dim D] [--reps R]
 *
 * step: x (1, N, D) random normal (fixed seed); y = L blocks (heads H, MLP
 * hidden 4 D, qkv bias, LayerNorm eps 1e-5); loss = mean(y^2); backward;
 * AdamW (lr 1e-3, wd 1e-2). Each step is mm_ctx_reset, zero_grad, forward,
 * backward, mm_adamw_step (t-nn.c's loop). W warm-up steps (default 1),
 * then S timed steps (default 3). Prints key=value lines: the seconds of
 * each step, the best and the median, the split forward / backward / AdamW
 * of the best step, the model's matmul GFLOP per step and GFLOP/s.
 *
 * sgemm: raw cblas_sgemm GFLOP/s (best of R, default 10) on the model's shapes:
 * qkv (N x 3D x D), fc1 (N x 4D x D), fc2 (N x D x 4D), the weight
 * gradient of fc1 (4D x D x N, A transposed) and one head's scores
 * (N x N x D/H) and att v (N x D/H x N).
 *
 * Both print openblas_core= (openblas_get_corename(): the kernel set
 * OpenBLAS's DYNAMIC_ARCH picked, or OPENBLAS_CORETYPE forced).
 * Threads: OpenBLAS and OpenMP read OPENBLAS_NUM_THREADS / OMP_NUM_THREADS
 * when the program starts; the script sets both. Weights: normal std 0.02,
 * biases 0, LayerNorm weight 1 (mm/optim.h initialisers).
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <cblas.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mm/nn.h"
#include "mm/optim.h"
#include "mm/tensor.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void die(const char *what, const char *msg)
{
    fprintf(stderr, "transformer-bench: %s: %s\n", what, msg ? msg : "?");
    exit(1);
}

/* Forward + backward matmul FLOPs of one step: per layer the forward does
 * qkv 2 N D 3D, scores 2 N N D, att v 2 N N D, proj 2 N D D, fc1 and fc2
 * 2 N D 4D each = 24 N D^2 + 4 N^2 D; backward twice that (dA and dB). */
static double model_gflop(int64_t n, int64_t d, int layers)
{
    double fwd = 24.0 * n * d * d + 4.0 * n * n * d;
    return 3.0 * fwd * layers * 1e-9;
}

static int run_step(int64_t n, int64_t d, int heads, int layers, int steps,
                    int warmup)
{
    mm_params *p = mm_params_new(MM_F32);
    mm_block blk[8];
    if (layers < 1 || layers > 8) die("layers", "1..8");
    for (int l = 0; l < layers; l++) {
        char name[32];
        snprintf(name, sizeof name, "blocks.%d", l);
        if (mm_block_init(&blk[l], p, name, (int)d, heads, (int)(4 * d), 1,
                          1e-5))
            die("mm_block_init", mm_strerror());
    }
    if (mm_params_alloc(p)) die("mm_params_alloc", mm_strerror());
    mm_rng g;
    mm_rng_seed(&g, 42);
    for (int i = 0; i < mm_params_count(p); i++) {
        mm_tensor *t = mm_params_get(p, i);
        const char *nm = mm_params_name(p, i);
        size_t k = strlen(nm);
        int is_norm_w = k > 12 && (strstr(nm, ".norm1.weight") ||
                                   strstr(nm, ".norm2.weight"));
        if (is_norm_w) mm_init_constant(t, 1);
        else if (mm_tensor_ndim(t) == 2) mm_init_normal(t, &g, 0, 0.02);
        else mm_init_constant(t, 0);
    }
    /* the input, drawn once, copied into each step's context */
    int64_t nx = n * d;
    float *xin = malloc((size_t)nx * sizeof *xin);
    for (int64_t i = 0; i < nx; i += 2) {
        double z[2];
        mm_rng_normal2(&g, z);
        xin[i] = (float)z[0];
        if (i + 1 < nx) xin[i + 1] = (float)z[1];
    }

    mm_adam_opts o = mm_adamw_defaults();
    o.lr = 1e-3;
    o.weight_decay = 1e-2;
    mm_ctx *ctx = mm_ctx_new();
    int total = warmup + steps;
    double *dt = calloc((size_t)total, sizeof *dt);
    double best = 1e300, bf = 0, bb = 0, ba = 0, loss0 = 0, lossl = 0;
    for (int s = 0; s < total; s++) {
        double t0 = now();
        mm_ctx_reset(ctx);
        mm_params_zero_grad(p);
        mm_tensor *x = mm_tensor_new3(ctx, MM_F32, 1, n, d);
        if (!x) die("input", mm_ctx_error(ctx));
        memcpy(mm_tensor_data(x), xin, (size_t)nx * sizeof *xin);
        for (int l = 0; l < layers; l++) x = mm_block_forward(ctx, &blk[l], x);
        mm_tensor *loss = mm_tensor_scale(
            ctx, mm_tensor_sum_all(ctx, mm_tensor_square(ctx, x)),
            1.0 / (double)nx);
        if (!loss) die("forward", mm_ctx_error(ctx));
        double t1 = now();
        if (mm_tensor_backward(ctx, loss)) die("backward", mm_ctx_error(ctx));
        double t2 = now();
        if (mm_adamw_step(p, &o)) die("adamw", mm_strerror());
        double t3 = now();
        double lv = mm_tensor_get1(loss, 0);
        if (s == 0) loss0 = lv;
        lossl = lv;
        dt[s] = t3 - t0;
        if (s >= warmup && dt[s] < best) {
            best = dt[s];
            bf = t1 - t0;
            bb = t2 - t1;
            ba = t3 - t2;
        }
        fprintf(stderr, "step %d: %.3f s (fwd %.3f bwd %.3f adamw %.3f) loss %.6f%s\n",
                s, dt[s], t1 - t0, t2 - t1, t3 - t2, lv,
                s < warmup ? " (warm-up)" : "");
    }
    qsort(dt + warmup, (size_t)steps, sizeof *dt, cmp_d);
    double med = dt[warmup + steps / 2];
    double gf = model_gflop(n, d, layers);
    mm_arena_stats st;
    mm_ctx_stats(ctx, &st);
    printf("threads=%d\n", omp_get_max_threads());
    printf("openblas_core=%s\n", openblas_get_corename());
    printf("params=%lld\n", (long long)mm_params_numel(p));
    printf("loss_first=%.6f\nloss_last=%.6f\n", loss0, lossl);
    printf("step_best=%.4f\nstep_median=%.4f\n", best, med);
    printf("fwd=%.4f\nbwd=%.4f\nadamw=%.4f\n", bf, bb, ba);
    printf("matmul_gflop=%.2f\n", gf);
    printf("gflops=%.1f\n", gf / best);
    printf("arena_mb=%.1f\n", st.high_water / 1048576.0);
    free(dt);
    free(xin);
    mm_ctx_free(ctx);
    mm_params_free(p);
    return 0;
}

/* Best GFLOP/s of C (M x N) = op(A) (M x K) B (K x N), row-major. */
static double sgemm_rate(int m, int nn, int k, int ta, int reps)
{
    float *a = malloc((size_t)m * k * sizeof *a);
    float *b = malloc((size_t)k * nn * sizeof *b);
    float *c = malloc((size_t)m * nn * sizeof *c);
    for (size_t i = 0; i < (size_t)m * k; i++) a[i] = (float)((i * 7 % 13) - 6) * 0.01f;
    for (size_t i = 0; i < (size_t)k * nn; i++) b[i] = (float)((i * 5 % 11) - 5) * 0.01f;
    double best = 1e300;
    for (int r = 0; r < reps + 1; r++) {
        double t0 = now();
        cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, CblasNoTrans,
                    m, nn, k, 1.0f, a, ta ? m : k, b, nn, 0.0f, c, nn);
        double t = now() - t0;
        if (r > 0 && t < best) best = t; /* first call warms up */
    }
    free(a);
    free(b);
    free(c);
    return 2.0 * m * nn * k * 1e-9 / best;
}

static int run_sgemm(int n, int d, int heads, int reps)
{
    int dh = d / heads;
    struct {
        const char *name;
        int m, nn, k, ta;
    } sh[] = {
        {"qkv", n, 3 * d, d, 0},       {"fc1", n, 4 * d, d, 0},
        {"fc2", n, d, 4 * d, 0},       {"fc1_dW", 4 * d, d, n, 1},
        {"scores", n, n, dh, 0},       {"attv", n, dh, n, 0},
    };
    printf("threads=%d\n", omp_get_max_threads());
    printf("openblas_core=%s\n", openblas_get_corename());
    for (size_t i = 0; i < sizeof sh / sizeof sh[0]; i++)
        printf("sgemm_%s=%.1f\n", sh[i].name,
               sgemm_rate(sh[i].m, sh[i].nn, sh[i].k, sh[i].ta, reps));
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: transformer-bench step|sgemm [--tokens N] "
                        "[--dim D] [--heads H] [--layers L] [--steps S] "
                        "[--warmup W] [--reps R]\n");
        return 2;
    }
    int64_t n = 2048, d = 512;
    int heads = 8, layers = 2, steps = 3, warmup = 1, reps = 10;
    for (int i = 2; i + 1 < argc; i += 2) {
        const char *k = argv[i];
        long v = strtol(argv[i + 1], NULL, 10);
        if (!strcmp(k, "--tokens")) n = v;
        else if (!strcmp(k, "--dim")) d = v;
        else if (!strcmp(k, "--heads")) heads = (int)v;
        else if (!strcmp(k, "--layers")) layers = (int)v;
        else if (!strcmp(k, "--steps")) steps = (int)v;
        else if (!strcmp(k, "--warmup")) warmup = (int)v;
        else if (!strcmp(k, "--reps")) reps = (int)v;
        else die("unknown option", k);
    }
    if (steps < 1) die("--steps", ">= 1");
    if (!strcmp(argv[1], "step")) return run_step(n, d, heads, layers, steps, warmup);
    if (!strcmp(argv[1], "sgemm")) return run_sgemm((int)n, (int)d, heads, reps);
    die("unknown command", argv[1]);
    return 2;
}
