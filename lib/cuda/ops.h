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

/* cumsum (PROD 0) or cumprod over LEN of X (OUTER, LEN, INNER); backward
 * as tensor.c's (SCRATCH: OUTER LEN INNER floats, cumprod only). */
int mm__cu_scan(float *y, const float *x, int64_t outer, int64_t len,
                int64_t inner, int prod);
int mm__cu_scan_back(float *gx, float *scratch, const float *x,
                     const float *g, int64_t outer, int64_t len,
                     int64_t inner, int prod);
/* For o < OUTER, i < BLK: DST[o DS + i] = (ADD: +=) SRC[o SS + i]
 * (concat, pad and their backward). */
int mm__cu_blocks(float *dst, int64_t ds, const float *src, int64_t ss,
                  int64_t outer, int64_t blk, int add);
/* index_select along the middle of (OUTER, LEN, INNER): IX (device, M). */
int mm__cu_index_select(float *y, const float *x, const int64_t *ix,
                        int64_t outer, int64_t len, int64_t m,
                        int64_t inner);
/* Backward: START (LEN + 1) and PERM (M), device: the positions j that
 * picked source row l are PERM[START[l]..START[l + 1]), ascending. */
int mm__cu_index_select_back(float *gx, const float *g, const int64_t *start,
                             const int64_t *perm, int64_t outer, int64_t len,
                             int64_t m, int64_t inner);
/* gather along D (of the padded 4-D shapes): ONE the output's (and IX's,
 * device) sizes, XB the contiguous input's strides. */
int mm__cu_gather(float *y, const float *x, const int64_t *ix, mm__cu_i4 one,
                  mm__cu_i4 xb, int d);
int mm__cu_gather_back(float *gx, const float *g, const int64_t *ix,
                       mm__cu_i4 one, mm__cu_i4 xb, int d);
/* repeat: output sizes ON (strides OB), input sizes AN (strides AB). */
int mm__cu_repeat(float *y, const float *x, mm__cu_i4 on, mm__cu_i4 an,
                  mm__cu_i4 ab);
int mm__cu_repeat_back(float *gx, const float *g, mm__cu_i4 on,
                       mm__cu_i4 ob, mm__cu_i4 an);
/* Dropout with mm_rand_u01(SEED, i): M = MK, Y = X MK + BK where kept,
 * MD and BD where dropped; GX += G M (products rounded before the add). */
int mm__cu_dropout(float *y, float *m, const float *x, int64_t n, double p,
                   uint64_t seed, float mk, float bk, float md, float bd);
int mm__cu_mul_acc(float *gx, const float *g, const float *m, int64_t n);
/* Depthwise conv1d: X (BC, L, D), W (C, K); GX or GW may be NULL. */
int mm__cu_conv1d_dw(float *y, const float *x, const float *w, int64_t BC,
                     int64_t C, int64_t L, int64_t D, int64_t K);
int mm__cu_conv1d_dw_back(float *gx, float *gw, const float *x,
                          const float *w, const float *g, int64_t B,
                          int64_t C, int64_t L, int64_t D, int64_t K);
/* Depthwise conv2d: X (BC, H, W), W (C, k, k), B (C) or NULL; any of
 * GX, GW, GB may be NULL. */
int mm__cu_conv2d_dw(float *y, const float *x, const float *w,
                     const float *b, int64_t BC, int64_t C, int64_t H,
                     int64_t W, int64_t k);
int mm__cu_conv2d_dw_back(float *gx, float *gw, float *gb, const float *x,
                          const float *w, const float *g, int64_t B,
                          int64_t C, int64_t H, int64_t W, int64_t k);
/* Dense conv2d pieces: im2col of one image X (C, H, W) into COL
 * (C kh kw, OH OW); Y (O, P) = B[o] in every column. */
int mm__cu_im2col(float *col, const float *x, int64_t C, int64_t H,
                  int64_t W, int64_t kh, int64_t kw, int64_t OH, int64_t OW,
                  int sh, int sw, int ph, int pw);
int mm__cu_bias_rows(float *y, const float *b, int64_t O, int64_t P);
/* max_pool2d (padding -inf, NaN wins) and the mean of each plane. */
int mm__cu_max_pool2d(float *y, const float *x, int64_t NC, int64_t H,
                      int64_t W, int64_t OH, int64_t OW, int k, int stride,
                      int pad);
int mm__cu_global_avg_pool2d(float *y, const float *x, int64_t NC,
                             int64_t HW);

#ifdef __cplusplus
}
#endif

#endif
