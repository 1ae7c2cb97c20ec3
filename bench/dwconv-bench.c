/* dwconv-bench.c: milliseconds per call of the f32 depthwise convolutions
 * at TransMIL's shapes (6,000 tokens), generic loops against the AVX-512
 * kernels in the same run, interleaved rep by rep; each side keeps its
 * best rep. Forward alone, and backward (input, weight and bias gradients)
 * as the time of mm_tensor_backward on loss = sum(conv(x)) less that on
 * loss = sum(x) (the sum's gradient, all ones, is as good as any for
 * timing).
 * Not built by make: from a built tree (the library's link line, as
 * bench/transmil.sh takes it from the Makefile),
 *   mk() { sed -n "s/^$1 = //p" Makefile | head -n 1; }
 *   cc -std=c11 -O2 -fopenmp -I. -Ilib bench/dwconv-bench.c lib/libmmpath.a \
 *      $(mk ZSTD_LIBS) $(mk MSGPACK_LIBS) $(mk XXHASH_LIBS) $(mk VIPS_LIBS) \
 *      $(mk ZLIB_LIBS) $(mk BLAS_LIBS) $(mk CUDA_LIBS) -lm -o dwconv-bench
 *   OMP_NUM_THREADS=2 ./dwconv-bench [REPS] [ITERS] [cpu]
 * With "cpu" the times are the process's CPU time, not wall time: steadier
 * on a shared machine with OMP_NUM_THREADS=1 (with more threads it counts
 * their waits too).
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mm/tensor.h"
#include "tensor_internal.h"

static clockid_t clk = CLOCK_MONOTONIC;

static double now(void)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct {
    const char *name;
    int two_d;
    int64_t sh[4], k;
} shape;

static const shape shapes[] = {
    {"conv1d (1,8,6144,64) K 33", 0, {1, 8, 6144, 64}, 33},
    {"conv2d (1,512,78,78) k 7", 1, {1, 512, 78, 78}, 7},
    {"conv2d (1,512,78,78) k 5", 1, {1, 512, 78, 78}, 5},
    {"conv2d (1,512,78,78) k 3", 1, {1, 512, 78, 78}, 3},
};

static void fill(mm_tensor *t, uint64_t *s)
{
    float *f = mm_tensor_data(t);
    for (int64_t i = 0; i < mm_tensor_numel(t); i++) {
        *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
        f[i] = (float)((*s >> 40) * 0x1p-24) - 0.5f;
    }
}

/* seconds of MODE 0: the forward; 1: the backward of sum(conv(x)); 2: the
 * backward of sum(x) */
static double one(mm_ctx *c, const shape *s, int mode, mm_tensor *x,
                  mm_tensor *w, mm_tensor *b)
{
    mm_ctx_reset(c);
    double t0 = now();
    mm_tensor *y = mode == 2 ? x
                   : s->two_d ? mm_tensor_conv2d_dw(c, x, w, b)
                              : mm_tensor_conv1d_dw(c, x, w);
    if (!mode) return now() - t0;
    mm_tensor *loss = mm_tensor_sum_all(c, y);
    t0 = now();
    if (mm_tensor_backward(c, loss)) {
        fprintf(stderr, "dwconv-bench: %s\n", mm_ctx_error(c));
        exit(1);
    }
    return now() - t0;
}

int main(int argc, char **argv)
{
    int reps = argc > 1 ? atoi(argv[1]) : 5, iters = argc > 2 ? atoi(argv[2]) : 10;
    if (argc > 3 && strcmp(argv[3], "cpu") == 0) clk = CLOCK_PROCESS_CPUTIME_ID;
    printf("%-28s %9s %9s %7s %9s %9s %7s\n", "op", "fwd gen", "fwd 512",
           "ratio", "bwd gen", "bwd 512", "ratio");
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const shape *s = &shapes[si];
        mm_params *p = mm_params_new(MM_F32);
        int64_t C = s->sh[1];
        mm_tensor *x = mm_params_add(p, "x", 4, s->sh);
        mm_tensor *w = mm_params_add(p, "w", s->two_d ? 3 : 2,
                                     (int64_t[]){C, s->k, s->k});
        mm_tensor *b = s->two_d ? mm_params_add(p, "b", 1, &C) : NULL;
        if (mm_params_alloc(p)) return 1;
        uint64_t st = 42;
        fill(x, &st);
        fill(w, &st);
        if (b) fill(b, &st);
        mm_ctx *c = mm_ctx_new();
        double best[2][3] = {{1e9, 1e9, 1e9}, {1e9, 1e9, 1e9}};
        for (int r = 0; r < reps; r++)
            for (int simd = 0; simd < 2; simd++) {
                mm__dwconv_simd(simd);
                for (int mode = 0; mode < 3; mode++) {
                    one(c, s, mode, x, w, b); /* warm */
                    double t = 0;
                    for (int i = 0; i < iters; i++) t += one(c, s, mode, x, w, b);
                    t /= iters;
                    if (t < best[simd][mode]) best[simd][mode] = t;
                }
            }
        mm__dwconv_simd(1);
        double fw[2], bw[2];
        for (int i = 0; i < 2; i++) {
            fw[i] = best[i][0] * 1e3;
            bw[i] = (best[i][1] - best[i][2]) * 1e3;
        }
        printf("%-28s %9.2f %9.2f %6.2fx %9.2f %9.2f %6.2fx\n", s->name, fw[0],
               fw[1], fw[0] / fw[1], bw[0], bw[1], bw[0] / bw[1]);
        mm_ctx_free(c);
        mm_params_free(p);
    }
    return 0;
}
