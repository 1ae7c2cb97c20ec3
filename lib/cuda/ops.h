/* cuda/ops.h: the CUDA backend of the tensor library (lib/cuda/ops.cu),
 * private to lib/tensor.c. Plain C types only, so tensor.c compiles with
 * gcc; every kernel is f32 and runs on the default stream, in order, so a
 * device-to-host copy after a chain of ops sees all of them.
 *
 * Shapes and strides are the 4-D padded forms tensor.c uses (pad4): NE the
 * sizes, NB element strides (0 where broadcast). Every function returns 0,
 * or -1 with the reason in mm__cu_error() (a launch or cuBLAS failure);
 * device memory exhaustion aborts, as host OOM does (mm_malloc).
 * SPDX-License-Identifier: MIT */
#ifndef MM_CUDA_OPS_H
#define MM_CUDA_OPS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct { int64_t v[4]; } mm__cu_i4;

/* Elementwise op codes (tensor.c maps its own OP_ codes onto these). */
enum {
    MM_CU_ADD, MM_CU_SUB, MM_CU_MUL, MM_CU_DIV,
    MM_CU_SCALE, MM_CU_EXP, MM_CU_LOG, MM_CU_SQRT, MM_CU_TANH,
    MM_CU_SIGMOID, MM_CU_RELU, MM_CU_GELU, MM_CU_ABS, MM_CU_CLAMP,
    MM_CU_RSQRT, MM_CU_SQUARE, MM_CU_ELU, MM_CU_SILU, MM_CU_SOFTPLUS
};

/* @return the number of devices (> 0), or 0 with the reason in WHY. */
int mm__cu_available(char *why, size_t n);
const char *mm__cu_error(void);
/* cuBLAS matmuls in TF32 (1) or full f32 (0, the default). */
int mm__cu_set_tf32(int on);

void *mm__cu_malloc(size_t n); /* aborts when the device is full */
void mm__cu_free(void *p);     /* NULL is a no-op */
int mm__cu_zero(void *p, size_t n);
int mm__cu_h2d(void *dst, const void *src, size_t n);
int mm__cu_d2h(void *dst, const void *src, size_t n);

/* DST (contiguous, NE) = SRC read at strides NB. */
int mm__cu_copy_strided(float *dst, const float *src, mm__cu_i4 ne,
                        mm__cu_i4 nb);
/* DST at strides NB (shape NE) += contiguous SRC. */
int mm__cu_add_strided(float *dst, mm__cu_i4 ne, mm__cu_i4 nb,
                       const float *src);
int mm__cu_add_flat(float *dst, const float *src, int64_t n);
/* Every element of DST (shape NE, strides NB) = V. */
int mm__cu_fill(float *dst, mm__cu_i4 ne, mm__cu_i4 nb, float v);

/* Row-major C_i = op(A_i) op(B_i) + BETA C_i for i < BATCH, strides SA,
 * SB, SC between batches (0: shared). cuBLAS, f32 or TF32. */
int mm__cu_gemm(int ta, int tb, int m, int n, int k, const float *a, int lda,
                int64_t sa, const float *b, int ldb, int64_t sb, float beta,
                float *c, int ldc, int64_t sc, int batch);

/* Z (contiguous, NE) = X op Y, X and Y read at broadcast strides SA, SB. */
int mm__cu_binary(int op, float *z, const float *x, const float *y,
                  mm__cu_i4 ne, mm__cu_i4 sa, mm__cu_i4 sb);
/* GS (contiguous, shape SNE: source WHICH, broadcast against NE) += the
 * partial of each output element, summed over the broadcast positions in
 * order (one thread per source element). */
int mm__cu_binary_back(int op, int which, float *gs, mm__cu_i4 sne,
                       const float *x, const float *y, const float *g,
                       mm__cu_i4 ne, mm__cu_i4 sa, mm__cu_i4 sb);
int mm__cu_unary(int op, float *y, const float *x, int64_t n, float s,
                 float s2);
int mm__cu_unary_back(int op, float *gx, const float *x, const float *y,
                      const float *g, int64_t n, float s, float s2);

/* Y (OUTER, INNER) = SC * sum over LEN of X (OUTER, LEN, INNER), and the
 * backward GX += SC * G broadcast. */
int mm__cu_reduce(float *y, const float *x, int64_t outer, int64_t len,
                  int64_t inner, float sc);
int mm__cu_reduce_back(float *gx, const float *g, int64_t outer,
                       int64_t len, int64_t inner, float sc);
/* Max over LEN: values and first argmax (ARG, OUTER x INNER). */
int mm__cu_max(float *y, int64_t *arg, const float *x, int64_t outer,
               int64_t len, int64_t inner);
int mm__cu_max_back(float *gx, const float *g, const int64_t *arg,
                    int64_t outer, int64_t len, int64_t inner);

/* Softmax (LG = 0) or log-softmax over rows of N values INNER apart. */
int mm__cu_softmax(float *y, const float *x, int64_t rows, int64_t n,
                   int64_t inner, int lg);
int mm__cu_softmax_back(float *gx, const float *y, const float *g,
                        int64_t rows, int64_t n, int64_t inner, int lg);

/* LayerNorm over the last axis (N) of ROWS rows; AUX gets mean and rstd
 * per row (2 ROWS) then xhat (ROWS N). W, B may be NULL. */
int mm__cu_layernorm(float *y, float *aux, const float *x, const float *w,
                     const float *b, int64_t rows, int64_t n, float eps);
/* Any of GX, GW, GB may be NULL (not needed). */
int mm__cu_layernorm_back(float *gx, float *gw, float *gb, const float *aux,
                          const float *g, const float *w, int64_t rows,
                          int64_t n);

/* Cross-entropy over LOGITS (B, C), labels LAB (device, B): L gets the
 * log-probabilities (B C) then the row losses (B); OUT (one value) their
 * mean. Backward: GX += G[0] / B (exp(L) - q). */
int mm__cu_cross_entropy(float *out, float *L, const float *x,
                         const int64_t *lab, int64_t B, int64_t C,
                         float eps);
int mm__cu_cross_entropy_back(float *gx, const float *L, const int64_t *lab,
                              const float *g, int64_t B, int64_t C,
                              float eps);

#ifdef __cplusplus
}
#endif

#endif
