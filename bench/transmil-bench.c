/* transmil-bench.c: TransMIL (mm/mil.h, METHODS.md B3/B4) training steps
 * timed on the CPU, and a forward pass exported for the PyTorch check, for
 * bench/transmil.sh.
 *
 *   transmil-bench train [--tokens N] [--bags B] [--warmup W] [--seed S]
 *   transmil-bench check OUT.safetensors [--tokens N] [--seed S]
 *   transmil-bench core
 *
 * The model: mm_model_cfg_defaults(TRANSMIL) (in_dim 1024, hidden 512,
 * 8 heads, 256 landmarks, pinv 6, attention dropout 0.1), a 2-class head,
 * F32, mm_model_init(S) (default seed 7).
 *
 * train: W warm-up bags (default 2: the arena settles in two) and then
 * B timed bags (default 4), each a training step as mm-train takes it
 * with one bag per step:
 * mm_ctx_reset, mm_params_zero_grad, x (N, 1024) random normal (drawn
 * before the clock starts), forward in training mode (dropout on, a seed
 * per step), cross-entropy on a random label, backward, mm_adam_step
 * (lr 2e-4, weight decay 1e-5). Prints key=value lines: the seconds of
 * each timed step, their mean and best, the forward / backward / Adam
 * split of the mean, and the arena's high-water mark.
 *
 * check: one bag x (N, 1024) random normal (seed S + 1), the forward in
 * eval mode; writes every parameter under its state_dict name (F32), "x",
 * and our outputs "out" (1, 2) logits and "embed" (1, 512) (the cls token
 * after the final LayerNorm) to OUT for transmil_anchor.py check.
 *
 * core: prints openblas_get_corename() (the kernel set OpenBLAS picked).
 *
 * Threads: OpenBLAS and OpenMP read OPENBLAS_NUM_THREADS / OMP_NUM_THREADS
 * when the program starts; the script sets both.
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <cblas.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mm/mil.h"
#include "mm/optim.h"
#include "mm/rng.h"
#include "mm/safetensors.h"
#include "mm/tensor.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void die(const char *what, const char *msg)
{
    fprintf(stderr, "transmil-bench: %s: %s\n", what, msg ? msg : "?");
    exit(1);
}

static mm_model *model_new(mm_params **pp, uint64_t seed)
{
    mm_model_cfg cfg;
    mm_model_cfg_defaults(&cfg, MM_MODEL_TRANSMIL);
    cfg.n_classes = 2;
    mm_params *p = mm_params_new(MM_F32);
    mm_model *m = mm_model_new(&cfg, p);
    if (!m || mm_params_alloc(p) || mm_model_init(m, seed))
        die("model", mm_strerror());
    *pp = p;
    return m;
}

static void fill_normal(float *x, int64_t n, mm_rng *g)
{
    for (int64_t i = 0; i < n; i += 2) {
        double z[2];
        mm_rng_normal2(g, z);
        x[i] = (float)z[0];
        if (i + 1 < n) x[i + 1] = (float)z[1];
    }
}

static int run_train(int64_t n, int bags, int warmup, uint64_t seed)
{
    mm_params *p;
    mm_model *m = model_new(&p, seed);
    int in_dim = mm_model_config(m)->in_dim;
    int64_t nx = n * in_dim;
    float *xin = malloc((size_t)nx * sizeof *xin);
    if (!xin) die("malloc", "out of memory");
    mm_rng g;
    mm_rng_seed(&g, seed + 1);
    mm_adam_opts o = {2e-4, 0.9, 0.999, 1e-8, 1e-5};
    mm_ctx *ctx = mm_ctx_new();
    int total = warmup + bags;
    double sum = 0, sf = 0, sb = 0, sa = 0, best = 1e300, loss = 0;
    for (int s = 0; s < total; s++) {
        fill_normal(xin, nx, &g);
        int64_t label = (int64_t)(mm_rng_next(&g) >> 63);
        double t0 = now();
        mm_ctx_reset(ctx);
        mm_params_zero_grad(p);
        mm_tensor *x = mm_tensor_new2(ctx, MM_F32, n, in_dim);
        mm_tensor *lab = mm_tensor_new1(ctx, MM_I64, 1);
        if (!x || !lab) die("input", mm_ctx_error(ctx));
        memcpy(mm_tensor_data(x), xin, (size_t)nx * sizeof *xin);
        ((int64_t *)mm_tensor_data(lab))[0] = label;
        mm_model_input in = {.x = x, .train = 1, .seed = mm_rng_next(&g)};
        mm_model_output mo;
        if (mm_model_forward(ctx, m, &in, &mo)) die("forward", mm_strerror());
        mm_tensor *l = mm_tensor_cross_entropy(ctx, mo.out, lab, 0);
        if (!l) die("loss", mm_ctx_error(ctx));
        double t1 = now();
        if (mm_tensor_backward(ctx, l)) die("backward", mm_ctx_error(ctx));
        double t2 = now();
        if (mm_adam_step(p, &o)) die("adam", mm_strerror());
        double t3 = now();
        loss = mm_tensor_get1(l, 0);
        double dt = t3 - t0;
        fprintf(stderr, "bag %d: %.3f s (fwd %.3f bwd %.3f adam %.3f) loss %.6f%s\n",
                s, dt, t1 - t0, t2 - t1, t3 - t2, loss, s < warmup ? " (warm-up)" : "");
        if (s < warmup) continue;
        printf("step=%.4f\n", dt);
        sum += dt;
        sf += t1 - t0;
        sb += t2 - t1;
        sa += t3 - t2;
        if (dt < best) best = dt;
    }
    mm_arena_stats st;
    mm_ctx_stats(ctx, &st);
    printf("threads=%d\n", omp_get_max_threads());
    printf("openblas_core=%s\n", openblas_get_corename());
    printf("params=%lld\n", (long long)mm_params_numel(p));
    printf("step_mean=%.4f\nstep_best=%.4f\n", sum / bags, best);
    printf("fwd=%.4f\nbwd=%.4f\nadam=%.4f\n", sf / bags, sb / bags, sa / bags);
    printf("loss_last=%.6f\n", loss);
    printf("arena_mb=%.1f\n", st.high_water / 1048576.0);
    free(xin);
    mm_ctx_free(ctx);
    mm_model_free(m);
    mm_params_free(p);
    return 0;
}

static int run_check(const char *path, int64_t n, uint64_t seed)
{
    mm_params *p;
    mm_model *m = model_new(&p, seed);
    int in_dim = mm_model_config(m)->in_dim;
    mm_ctx *ctx = mm_ctx_new();
    mm_ctx_no_grad(ctx, 1);
    mm_tensor *x = mm_tensor_new2(ctx, MM_F32, n, in_dim);
    if (!x) die("input", mm_ctx_error(ctx));
    mm_rng g;
    mm_rng_seed(&g, seed + 1);
    fill_normal(mm_tensor_data(x), n * in_dim, &g);
    mm_model_input in = {.x = x, .train = 0};
    mm_model_output mo;
    double t0 = now();
    if (mm_model_forward(ctx, m, &in, &mo)) die("forward", mm_strerror());
    printf("forward_s=%.4f\n", now() - t0);
    mm_tensor *out = mm_tensor_contiguous(ctx, mo.out);
    mm_tensor *emb = mm_tensor_contiguous(ctx, mo.embed);
    if (!out || !emb) die("outputs", mm_ctx_error(ctx));
    mm_st_writer *w = mm_st_create(path);
    if (!w) die(path, mm_strerror());
    for (int i = 0; i < mm_params_count(p); i++) {
        mm_tensor *t = mm_params_get(p, i);
        int64_t sh[MM_MAX_DIMS];
        for (int d = 0; d < mm_tensor_ndim(t); d++) sh[d] = mm_tensor_dim(t, d);
        mm_st_add(w, mm_params_name(p, i), MM_F32, mm_tensor_ndim(t), sh,
                  mm_tensor_data(t));
    }
    mm_st_add(w, "x", MM_F32, 2, (int64_t[]){n, in_dim}, mm_tensor_data(x));
    mm_st_add(w, "out", MM_F32, 2, (int64_t[]){1, mm_tensor_dim(out, 1)},
              mm_tensor_data(out));
    mm_st_add(w, "embed", MM_F32, 2, (int64_t[]){1, mm_tensor_dim(emb, 1)},
              mm_tensor_data(emb));
    if (mm_st_write_close(w)) die(path, mm_strerror());
    mm_ctx_free(ctx);
    mm_model_free(m);
    mm_params_free(p);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: transmil-bench train|check OUT|core [--tokens N] "
                        "[--bags B] [--warmup W] [--seed S]\n");
        return 2;
    }
    const char *mode = argv[1], *path = NULL;
    int64_t n = 6000;
    int bags = 4, warmup = 2;
    uint64_t seed = 7;
    int i = 2;
    if (strcmp(mode, "core") == 0) {
        printf("%s\n", openblas_get_corename());
        return 0;
    }
    if (strcmp(mode, "check") == 0) {
        if (argc < 3) die("check", "no output file");
        path = argv[i++];
    }
    for (; i < argc; i++) {
        if (i + 1 >= argc) die(argv[i], "needs a value");
        long long v = atoll(argv[i + 1]);
        if (strcmp(argv[i], "--tokens") == 0 && v > 0) n = v;
        else if (strcmp(argv[i], "--bags") == 0 && v > 0) bags = (int)v;
        else if (strcmp(argv[i], "--warmup") == 0 && v >= 0) warmup = (int)v;
        else if (strcmp(argv[i], "--seed") == 0) seed = (uint64_t)v;
        else die(argv[i], "unknown option or bad value");
        i++;
    }
    if (strcmp(mode, "train") == 0) return run_train(n, bags, warmup, seed);
    if (strcmp(mode, "check") == 0) return run_check(path, n, seed);
    die(mode, "unknown mode (train, check)");
    return 2;
}
