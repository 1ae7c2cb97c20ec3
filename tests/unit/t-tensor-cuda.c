/* t-tensor-cuda.c: the CUDA backend of the tensor library against its CPU
 * backend, op by op, forward and backward, on random f32 inputs.
 *
 * Each case builds Y = op(inputs) twice in one context: on CPU leaves, and
 * on copies of them moved to CUDA with mm_tensor_to_device (so the CUDA
 * gradients flow back through the copy to CPU leaves, which tests that
 * op's backward too). The loss is sum(Y * R), R a fixed random tensor, so
 * every output element gets its own gradient weight. Compared: Y and the
 * gradient of every input, as max |cuda - cpu| / max |cpu| over the
 * tensor. Tolerances: 1e-5 for elementwise ops (the kernels do the CPU's
 * arithmetic; FMA contraction and libm ulps differ), 1e-4 for reductions,
 * softmax, layernorm, cross-entropy, matmul and chains (cuBLAS sums in
 * another order), 1e-2 for TF32 matmuls; 1e-5 for the copies (concat,
 * index ops, repeat, pad: exact in practice) and dropout, 1e-4 for scans,
 * depthwise convolutions, the survival losses and the TransMIL-like chain.
 * Forward only: dropout's masks and values bit for bit, max_pool2d
 * exactly, dense conv2d 1e-4 (cuBLAS), global_avg_pool2d 1e-5. The
 * figures are printed (diag, "relative difference") for the device
 * check's summary.
 *
 * Without a GPU, or in a build without CUDA: only that the device calls
 * refuse with one line (the comparisons are skipped, with the reason).
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../tap.h"
#include "mm/tensor.h"

static uint64_t rng_state = 0x2545f4914f6cdd1dULL;
static double urand(void) /* [0, 1), xorshift64* */
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (double)((rng_state * 2685821657736338717ULL) >> 11) * 0x1p-53;
}

enum { R_ANY, R_POS, R_AWAY0 }; /* (-2, 2); (0.5, 2); |x| in (0.1, 2) */

typedef struct {
    int nd;
    int64_t sh[4];
} shape;

#define MAXIN 5
typedef mm_tensor *(*opfn)(mm_ctx *ctx, mm_tensor **in, const void *ud);

typedef struct {
    const char *name;
    int nin;
    shape in[MAXIN];
    int range[MAXIN];
    opfn f;
    const void *ud;
    double tol;
} tcase;

/* max |b - a| / max |a|; NaN or a length mismatch gives infinity */
static double rel_diff(const double *a, const double *b, int64_t n)
{
    double mx = 0, md = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(b[i]) || !isfinite(a[i])) return INFINITY;
        if (fabs(a[i]) > mx) mx = fabs(a[i]);
        if (fabs(a[i] - b[i]) > md) md = fabs(a[i] - b[i]);
    }
    return md / (mx > 0 ? mx : 1);
}

static double *values(mm_tensor *t)
{
    int64_t n = mm_tensor_numel(t);
    double *v = malloc((size_t)n * sizeof *v);
    if (mm_tensor_get_f64(t, v, n)) {
        free(v);
        return NULL;
    }
    return v;
}

static mm_tensor *random_tensor(mm_ctx *ctx, const shape *s, int range)
{
    mm_tensor *t = mm_tensor_new(ctx, MM_F32, s->nd, s->sh);
    int64_t n = mm_tensor_numel(t);
    double *v = malloc((size_t)n * sizeof *v);
    for (int64_t i = 0; i < n; i++) {
        double u = urand();
        v[i] = range == R_POS ? 0.5 + 1.5 * u
             : range == R_AWAY0 ? (u < 0.5 ? -1 : 1) * (0.1 + 1.9 * urand())
             : 4 * u - 2;
    }
    mm_tensor_set_f64(t, v, n);
    free(v);
    return t;
}

/* sum(Y * R) on Y's device, R moved there. */
static mm_tensor *weighted_sum(mm_ctx *ctx, mm_tensor *y, mm_tensor *r)
{
    if (!y) return NULL;
    mm_tensor *rd = mm_tensor_to_device(ctx, r, mm_tensor_device(y));
    return mm_tensor_sum_all(ctx, mm_tensor_mul(ctx, y, rd));
}

/* One context per device: a backward walks its context's whole tape, so
 * the two graphs must not share one. The CUDA loss is on the device (its
 * backward starts there). */
static void run_case(const tcase *c)
{
    mm_ctx *ctx = mm_ctx_new(), *dctx = mm_ctx_new();
    mm_tensor *cpu[MAXIN], *leaf[MAXIN], *dev[MAXIN];
    for (int i = 0; i < c->nin; i++) {
        cpu[i] = random_tensor(ctx, &c->in[i], c->range[i]);
        leaf[i] = mm_tensor_new(dctx, MM_F32, c->in[i].nd, c->in[i].sh);
        double *v = values(cpu[i]);
        mm_tensor_set_f64(leaf[i], v, mm_tensor_numel(cpu[i]));
        free(v);
        mm_tensor_set_requires_grad(cpu[i], 1);
        mm_tensor_set_requires_grad(leaf[i], 1);
        dev[i] = mm_tensor_to_device(dctx, leaf[i], MM_CUDA);
    }
    mm_tensor *y = c->f(ctx, cpu, c->ud);
    mm_tensor *yd = c->f(dctx, dev, c->ud);
    if (!y || !yd) {
        ok(0, "%s: built on both devices", c->name);
        diag("%s", y ? mm_ctx_error(dctx) : mm_ctx_error(ctx));
        mm_ctx_free(ctx);
        mm_ctx_free(dctx);
        return;
    }
    shape ys = {mm_tensor_ndim(y), {0}};
    for (int d = 0; d < ys.nd; d++) ys.sh[d] = mm_tensor_dim(y, d);
    mm_tensor *r = random_tensor(ctx, &ys, R_ANY);
    int bc = mm_tensor_backward(ctx, weighted_sum(ctx, y, r));
    int bd = mm_tensor_backward(dctx, weighted_sum(dctx, yd, r));
    if (!ok(bc == 0 && bd == 0 && mm_tensor_device(yd) == MM_CUDA,
            "%s: forward and backward on both devices", c->name)) {
        diag("%s", bc ? mm_ctx_error(ctx) : mm_ctx_error(dctx));
        mm_ctx_free(ctx);
        mm_ctx_free(dctx);
        return;
    }
    int64_t n = mm_tensor_numel(y);
    double *a = values(y), *b = values(yd); /* the CUDA read copies back */
    double worst = a && b && mm_tensor_numel(yd) == n ? rel_diff(a, b, n)
                                                      : INFINITY;
    diag("%s: forward max relative difference %.3g", c->name, worst);
    ok(worst <= c->tol, "%s: forward within %g", c->name, c->tol);
    free(a);
    free(b);
    for (int i = 0; i < c->nin; i++) {
        mm_tensor *ga = mm_tensor_grad(cpu[i]), *gb = mm_tensor_grad(leaf[i]);
        if (!ga && !gb) continue; /* an input the output ignores */
        double g = INFINITY;
        if (ga && gb) {
            a = values(ga);
            b = values(gb);
            g = rel_diff(a, b, mm_tensor_numel(ga));
            free(a);
            free(b);
        }
        diag("%s: gradient %d max relative difference %.3g", c->name, i, g);
        ok(g <= c->tol, "%s: gradient of input %d within %g", c->name, i,
           c->tol);
    }
    mm_ctx_free(ctx);
    mm_ctx_free(dctx);
}

// ---- the ops -------------------------------------------------------------------

typedef struct {
    int ta, tb;
} mmud;
static mm_tensor *f_matmul(mm_ctx *c, mm_tensor **in, const void *ud)
{
    const mmud *u = ud;
    return mm_tensor_matmul(c, in[0], in[1], u->ta, u->tb);
}
static mm_tensor *f_linear(mm_ctx *c, mm_tensor **in, const void *ud)
{
    (void)ud;
    return mm_tensor_linear(c, in[0], in[1], in[2]);
}
static mm_tensor *f_linear_nob(mm_ctx *c, mm_tensor **in, const void *ud)
{
    (void)ud;
    return mm_tensor_linear(c, in[0], in[1], NULL);
}

typedef mm_tensor *(*binfn)(mm_ctx *, mm_tensor *, mm_tensor *);
static mm_tensor *f_binary(mm_ctx *c, mm_tensor **in, const void *ud)
{
    return (*(const binfn *)ud)(c, in[0], in[1]);
}
static const binfn b_add = mm_tensor_add, b_sub = mm_tensor_sub,
                   b_mul = mm_tensor_mul, b_div = mm_tensor_div;

typedef mm_tensor *(*unfn)(mm_ctx *, mm_tensor *);
static mm_tensor *f_unary(mm_ctx *c, mm_tensor **in, const void *ud)
{
    return (*(const unfn *)ud)(c, in[0]);
}
static const unfn u_exp = mm_tensor_exp, u_log = mm_tensor_log,
                  u_sqrt = mm_tensor_sqrt, u_rsqrt = mm_tensor_rsqrt,
                  u_tanh = mm_tensor_tanh, u_sigmoid = mm_tensor_sigmoid,
                  u_relu = mm_tensor_relu, u_gelu = mm_tensor_gelu,
                  u_silu = mm_tensor_silu, u_softplus = mm_tensor_softplus,
                  u_abs = mm_tensor_abs, u_neg = mm_tensor_neg,
                  u_square = mm_tensor_square;
static mm_tensor *f_scale(mm_ctx *c, mm_tensor **in, const void *ud)
{
    (void)ud;
    return mm_tensor_scale(c, in[0], -1.75);
}
static mm_tensor *f_elu(mm_ctx *c, mm_tensor **in, const void *ud)
{
    (void)ud;
    return mm_tensor_elu(c, in[0], 0.7);
}
static mm_tensor *f_clamp(mm_ctx *c, mm_tensor **in, const void *ud)
{
    (void)ud;
    return mm_tensor_clamp(c, in[0], -0.75, 1.25);
}
static mm_tensor *f_softplus_big(mm_ctx *c, mm_tensor **in, const void *ud)
{
    (void)ud; /* inputs around 20: both sides of torch's threshold */
    return mm_tensor_softplus(c, mm_tensor_scale(c, in[0], 12.0));
}

typedef struct {
    int kind, axis, keepdim;
} axud;
enum { K_SUM, K_MEAN, K_MAX, K_SOFTMAX, K_LOG_SOFTMAX };
static mm_tensor *f_axis(mm_ctx *c, mm_tensor **in, const void *ud)
{
    const axud *u = ud;
    switch (u->kind) {
    case K_SUM: return mm_tensor_sum(c, in[0], u->axis, u->keepdim);
    case K_MEAN: return mm_tensor_mean(c, in[0], u->axis, u->keepdim);
    case K_MAX: return mm_tensor_max(c, in[0], u->axis, u->keepdim);
    case K_SOFTMAX: return mm_tensor_softmax_axis(c, in[0], u->axis);
    default: return mm_tensor_log_softmax_axis(c, in[0], u->axis);
    }
}
static mm_tensor *f_sum_all(mm_ctx *c, mm_tensor **in, const void *ud)
{
    (void)ud;
    return mm_tensor_sum_all(c, in[0]);
}

static mm_tensor *f_layernorm(mm_ctx *c, mm_tensor **in, const void *ud)
{
    (void)ud;
    return mm_tensor_layernorm(c, in[0], in[1], in[2], 1e-5);
}
static mm_tensor *f_layernorm_plain(mm_ctx *c, mm_tensor **in, const void *ud)
{
    (void)ud;
    return mm_tensor_layernorm(c, in[0], NULL, NULL, 1e-6);
}

static mm_tensor *f_cross_entropy(mm_ctx *c, mm_tensor **in, const void *ud)
{
    const double *sm = ud;
    int64_t B = mm_tensor_dim(in[0], 0), C = mm_tensor_dim(in[0], 1);
    mm_tensor *lab = mm_tensor_new1(c, MM_I64, B); /* labels stay on CPU */
    double v[64];
    for (int64_t i = 0; i < B && i < 64; i++) v[i] = (double)((i * 7 + 3) % C);
    mm_tensor_set_f64(lab, v, B);
    return mm_tensor_cross_entropy(c, in[0], lab, *sm);
}

/* views: a transpose made contiguous, a slice, a reshape */
static mm_tensor *f_views(mm_ctx *c, mm_tensor **in, const void *ud)
{
    (void)ud;
    mm_tensor *t = mm_tensor_transpose(c, in[0], 0, 2);     /* (5, 4, 3) */
    mm_tensor *s = mm_tensor_slice(c, t, 1, 1, 2);          /* (5, 2, 3) */
    mm_tensor *e = mm_tensor_exp(c, s);                     /* contiguous */
    return mm_tensor_reshape(c, e, 2, (int64_t[]){10, 3});
}

/* An ABMIL-like chain (gated attention pooling, Ilse et al. 2018, then
 * LayerNorm and a classifier) on a bag of 40 patches: the ops a MIL model
 * runs, in one graph. in: x (40, 16), V (16, 16), U (16, 16), Wc (3, 16). */
static mm_tensor *f_abmil(mm_ctx *c, mm_tensor **in, const void *ud)
{
    (void)ud;
    mm_tensor *x = in[0];
    mm_tensor *h = mm_tensor_relu(c, x);
    mm_tensor *a = mm_tensor_tanh(c, mm_tensor_linear(c, h, in[1], NULL));
    mm_tensor *g = mm_tensor_sigmoid(c, mm_tensor_linear(c, h, in[1], NULL));
    mm_tensor *gu = mm_tensor_gelu(c, mm_tensor_linear(c, h, in[2], NULL));
    mm_tensor *s = mm_tensor_matmul(c, mm_tensor_mul(c, mm_tensor_mul(c, a, g),
                                                     gu), in[1], 0, 0);
    mm_tensor *sc = mm_tensor_sum(c, s, 1, 1);              /* (40, 1) */
    mm_tensor *A = mm_tensor_softmax_axis(c, sc, 0);
    mm_tensor *M = mm_tensor_matmul(c, A, h, 1, 0);         /* (1, 16) */
    M = mm_tensor_layernorm(c, M, NULL, NULL, 1e-5);
    mm_tensor *logits = mm_tensor_linear(c, M, in[3], NULL);
    return mm_tensor_log_softmax(c, logits);
}

/* index tensors and labels stay on the CPU (mm/tensor.h) */
static mm_tensor *i64s(mm_ctx *c, int nd, const int64_t *sh, const double *v)
{
    mm_tensor *t = mm_tensor_new(c, MM_I64, nd, sh);
    mm_tensor_set_f64(t, v, mm_tensor_numel(t));
    return t;
}

typedef struct {
    int kind, axis;
} scud;
static mm_tensor *f_scan(mm_ctx *c, mm_tensor **in, const void *ud)
{
    const scud *u = ud;
    return u->kind ? mm_tensor_cumprod(c, in[0], u->axis)
                   : mm_tensor_cumsum(c, in[0], u->axis);
}
static mm_tensor *f_concat(mm_ctx *c, mm_tensor **in, const void *ud)
{
    return mm_tensor_concat(c, 3, in, *(const int *)ud);
}
static mm_tensor *f_index_select(mm_ctx *c, mm_tensor **in, const void *ud)
{
    (void)ud; /* repeats and a skipped row: the scatter-add backward */
    static const double v[] = {4, 0, 4, 2, 1, 4};
    return mm_tensor_index_select(c, in[0], 1,
                                  i64s(c, 1, (int64_t[]){6}, v));
}
static mm_tensor *f_index_rows(mm_ctx *c, mm_tensor **in, const void *ud)
{
    (void)ud; /* 80 picks of 50 rows (patch sampling from a bag) */
    double v[80];
    for (int i = 0; i < 80; i++) v[i] = (i * 37 + i / 3) % 50;
    return mm_tensor_index_select(c, in[0], 0,
                                  i64s(c, 1, (int64_t[]){80}, v));
}
static mm_tensor *f_gather(mm_ctx *c, mm_tensor **in, const void *ud)
{
    (void)ud; /* index (3, 6, 2) into (3, 5, 4) along 1 */
    double v[36];
    for (int i = 0; i < 36; i++) v[i] = (i * 7 + i / 5) % 5;
    return mm_tensor_gather(c, in[0], 1,
                            i64s(c, 3, (int64_t[]){3, 6, 2}, v));
}
static mm_tensor *f_repeat(mm_ctx *c, mm_tensor **in, const void *ud)
{
    (void)ud;
    return mm_tensor_repeat(c, in[0], 3, (int64_t[]){2, 1, 3});
}
static mm_tensor *f_pad(mm_ctx *c, mm_tensor **in, const void *ud)
{
    (void)ud;
    return mm_tensor_pad(c, in[0], 1, 3, 2);
}
static mm_tensor *f_dropout(mm_ctx *c, mm_tensor **in, const void *ud)
{
    return *(const int *)ud ? mm_tensor_alpha_dropout(c, in[0], 0.2, 99, 1)
                            : mm_tensor_dropout(c, in[0], 0.3, 42, 1);
}
static mm_tensor *f_conv1d(mm_ctx *c, mm_tensor **in, const void *ud)
{
    (void)ud;
    return mm_tensor_conv1d_dw(c, in[0], in[1]);
}
static mm_tensor *f_conv2d_dw(mm_ctx *c, mm_tensor **in, const void *ud)
{
    (void)ud;
    return mm_tensor_conv2d_dw(c, in[0], in[1], in[2]);
}
static mm_tensor *f_conv2d_dw_nob(mm_ctx *c, mm_tensor **in, const void *ud)
{
    (void)ud;
    return mm_tensor_conv2d_dw(c, in[0], in[1], NULL);
}

/* PORPOISE's NLL on logits (6, 4): labels and censorship on the CPU */
static mm_tensor *f_surv_nll(mm_ctx *c, mm_tensor **in, const void *ud)
{
    static const double y[] = {0, 3, 1, 2, 3, 0}, cen[] = {0, 1, 1, 0, 0, 1};
    mm_tensor *cs = mm_tensor_new1(c, MM_F32, 6);
    mm_tensor_set_f64(cs, cen, 6);
    return mm_tensor_surv_nll(c, in[0], i64s(c, 1, (int64_t[]){6}, y), cs,
                              *(const double *)ud, 1e-7);
}

/* Cox on theta (10, 1) with tied times, both risk sets */
static mm_tensor *f_cox(mm_ctx *c, mm_tensor **in, const void *ud)
{
    static const double t[] = {5, 3, 5, 1, 8, 3, 8, 2, 5, 7};
    static const double e[] = {1, 1, 0, 1, 1, 0, 1, 1, 1, 0};
    mm_tensor *tt = mm_tensor_new1(c, MM_F64, 10);
    mm_tensor *ee = mm_tensor_new1(c, MM_I32, 10);
    mm_tensor_set_f64(tt, t, 10);
    mm_tensor_set_f64(ee, e, 10);
    return mm_tensor_cox_nll_ex(c, in[0], tt, ee, MM_COX_MEAN_EVENTS,
                                *(const mm_cox_risk *)ud);
}

/* A TransMIL-like chain (Shao et al. 2021): a class token joined to 10
 * tokens, front-padded to 16, PPEG (depthwise 3x3 on the 4x4 grid) with a
 * residual, LayerNorm, then two heads of attention with Nystrom's
 * depthwise residual conv on V. in: x (1, 10, 8), cls (1, 1, 8),
 * PPEG w (8, 3, 3) and b (8), residual conv w (2, 3). */
static mm_tensor *f_transmil(mm_ctx *c, mm_tensor **in, const void *ud)
{
    (void)ud;
    mm_tensor *t = mm_tensor_concat(c, 2, (mm_tensor *[]){in[1], in[0]}, 1);
    t = mm_tensor_pad(c, t, 1, 5, 0);                        /* (1, 16, 8) */
    mm_tensor *g = mm_tensor_reshape(c, mm_tensor_transpose(c, t, 1, 2), 4,
                                     (int64_t[]){1, 8, 4, 4});
    g = mm_tensor_conv2d_dw(c, g, in[2], in[3]);
    g = mm_tensor_transpose(c, mm_tensor_reshape(c, g, 3,
                                                 (int64_t[]){1, 8, 16}),
                            1, 2);
    mm_tensor *l = mm_tensor_layernorm(c, mm_tensor_add(c, g, t), NULL,
                                       NULL, 1e-5);
    mm_tensor *v = mm_tensor_transpose(
        c, mm_tensor_reshape(c, l, 4, (int64_t[]){1, 16, 2, 4}), 1, 2);
    v = mm_tensor_contiguous(c, v);                          /* (1,2,16,4) */
    mm_tensor *a = mm_tensor_softmax(c, mm_tensor_scale(
        c, mm_tensor_matmul(c, v, v, 0, 1), 0.5));
    return mm_tensor_add(c, mm_tensor_matmul(c, a, v, 0, 0),
                         mm_tensor_conv1d_dw(c, v, in[4]));
}

#define S1(a) {1, {a}}
#define S2(a, b) {2, {a, b}}
#define S3(a, b, c) {3, {a, b, c}}
#define S4(a, b, c, d) {4, {a, b, c, d}}

static const mmud nn = {0, 0}, tn = {1, 0}, nt = {0, 1}, tt = {1, 1};
static const axud sum0 = {K_SUM, 0, 0}, sum_last = {K_SUM, -1, 1},
                  sum_mid = {K_SUM, 1, 0}, mean1 = {K_MEAN, 1, 1},
                  mean_last = {K_MEAN, -1, 0}, max1 = {K_MAX, 1, 0},
                  max0 = {K_MAX, 0, 1}, sm_last = {K_SOFTMAX, -1, 0},
                  sm0 = {K_SOFTMAX, 0, 0}, sm_mid = {K_SOFTMAX, 1, 0},
                  lsm_last = {K_LOG_SOFTMAX, -1, 0},
                  lsm_mid = {K_LOG_SOFTMAX, 1, 0};
static const double smooth0 = 0, smooth1 = 0.1, alpha0 = 0, alpha4 = 0.4;
static const scud cumsum1 = {0, 1}, cumsum_last = {0, -1},
                  cumprod1 = {1, 1}, cumprod0 = {1, 0};
static const int dim0 = 0, dim1 = 1, dim_last = -1, plain = 0, alpha = 1;
static const mm_cox_risk inclusive = MM_COX_INCLUSIVE,
                         strict = MM_COX_STRICT;

#define E 1e-5 /* elementwise */
#define R 1e-4 /* reductions, matmuls, chains */
/* Copies (concat, index ops, repeat, pad) and dropout move or scale
 * values without new roundings: E, though they should agree exactly
 * (dropout's mask is checked bit for bit in device_extras). Scans and
 * convolutions: R (FMA contraction over sums of many products). */

static const tcase cases[] = {
    {"matmul", 2, {S2(7, 9), S2(9, 5)}, {0}, f_matmul, &nn, R},
    {"matmul A^T", 2, {S2(9, 7), S2(9, 5)}, {0}, f_matmul, &tn, R},
    {"matmul B^T", 2, {S2(7, 9), S2(5, 9)}, {0}, f_matmul, &nt, R},
    {"matmul A^T B^T", 2, {S2(9, 7), S2(5, 9)}, {0}, f_matmul, &tt, R},
    {"matmul batched", 2, {S3(3, 6, 8), S3(3, 8, 5)}, {0}, f_matmul, &nn, R},
    {"matmul batched 4-D B^T", 2, {S4(2, 3, 6, 8), S4(2, 3, 5, 8)}, {0},
     f_matmul, &nt, R},
    {"matmul batched, shared B", 2, {S3(3, 6, 8), S2(8, 5)}, {0}, f_matmul,
     &nn, R},
    {"matmul batched A^T, shared B", 2, {S3(3, 8, 6), S2(8, 5)}, {0},
     f_matmul, &tn, R},
    {"matmul shared A, batched B", 2, {S2(6, 8), S3(4, 8, 5)}, {0},
     f_matmul, &nn, R},
    {"matmul large", 2, {S2(300, 200), S2(200, 130)}, {0}, f_matmul, &nn, R},
    {"linear", 3, {S2(33, 24), S2(10, 24), S1(10)}, {0}, f_linear, NULL, R},
    {"linear 3-D", 3, {S3(2, 17, 24), S2(10, 24), S1(10)}, {0}, f_linear,
     NULL, R},
    {"linear 1-D, no bias", 2, {S1(24), S2(10, 24)}, {0}, f_linear_nob,
     NULL, R},
    {"add", 2, {S2(6, 7), S2(6, 7)}, {0}, f_binary, &b_add, E},
    {"add row broadcast", 2, {S3(4, 6, 7), S1(7)}, {0}, f_binary, &b_add, E},
    {"sub outer broadcast", 2, {S2(6, 1), S2(1, 7)}, {0}, f_binary, &b_sub,
     E},
    {"mul column broadcast", 2, {S3(3, 5, 7), S3(3, 5, 1)}, {0}, f_binary,
     &b_mul, E},
    {"mul 4-D broadcast", 2, {S4(2, 1, 5, 3), S3(4, 1, 3)}, {0}, f_binary,
     &b_mul, E},
    {"div", 2, {S2(5, 6), S2(5, 6)}, {R_ANY, R_POS}, f_binary, &b_div, E},
    {"div broadcast", 2, {S1(6), S2(5, 6)}, {R_ANY, R_POS}, f_binary, &b_div,
     E},
    {"scale", 1, {S2(5, 9)}, {0}, f_scale, NULL, E},
    {"neg", 1, {S2(5, 9)}, {0}, f_unary, &u_neg, E},
    {"exp", 1, {S2(5, 9)}, {0}, f_unary, &u_exp, E},
    {"log", 1, {S2(5, 9)}, {R_POS}, f_unary, &u_log, E},
    {"sqrt", 1, {S2(5, 9)}, {R_POS}, f_unary, &u_sqrt, E},
    {"rsqrt", 1, {S2(5, 9)}, {R_POS}, f_unary, &u_rsqrt, E},
    {"tanh", 1, {S2(5, 9)}, {0}, f_unary, &u_tanh, E},
    {"sigmoid", 1, {S2(5, 9)}, {0}, f_unary, &u_sigmoid, E},
    {"relu", 1, {S2(5, 9)}, {R_AWAY0}, f_unary, &u_relu, E},
    {"gelu", 1, {S2(5, 9)}, {0}, f_unary, &u_gelu, E},
    {"elu", 1, {S2(5, 9)}, {R_AWAY0}, f_elu, NULL, E},
    {"silu", 1, {S2(5, 9)}, {0}, f_unary, &u_silu, E},
    {"softplus", 1, {S2(5, 9)}, {0}, f_unary, &u_softplus, E},
    {"softplus near 20", 1, {S2(5, 9)}, {R_POS}, f_softplus_big, NULL, E},
    {"abs", 1, {S2(5, 9)}, {R_AWAY0}, f_unary, &u_abs, E},
    {"clamp", 1, {S2(5, 9)}, {0}, f_clamp, NULL, E},
    {"square", 1, {S2(5, 9)}, {0}, f_unary, &u_square, E},
    {"views (transpose, slice, reshape)", 1, {S3(3, 4, 5)}, {0}, f_views,
     NULL, E},
    {"sum axis 0", 1, {S3(6, 5, 4)}, {0}, f_axis, &sum0, R},
    {"sum axis 1", 1, {S3(6, 5, 4)}, {0}, f_axis, &sum_mid, R},
    {"sum last axis keepdim", 1, {S3(6, 5, 4)}, {0}, f_axis, &sum_last, R},
    {"sum_all", 1, {S3(6, 5, 4)}, {0}, f_sum_all, NULL, R},
    {"mean axis 1 keepdim", 1, {S2(40, 33)}, {0}, f_axis, &mean1, R},
    {"mean last axis", 1, {S3(2, 7, 300)}, {0}, f_axis, &mean_last, R},
    {"max axis 1", 1, {S3(4, 9, 5)}, {0}, f_axis, &max1, R},
    {"max axis 0 keepdim", 1, {S2(9, 5)}, {0}, f_axis, &max0, R},
    {"softmax last axis", 1, {S2(6, 50)}, {0}, f_axis, &sm_last, R},
    {"softmax axis 0 (ABMIL)", 1, {S2(500, 1)}, {0}, f_axis, &sm0, R},
    {"softmax middle axis", 1, {S3(3, 8, 5)}, {0}, f_axis, &sm_mid, R},
    {"log_softmax last axis", 1, {S2(6, 50)}, {0}, f_axis, &lsm_last, R},
    {"log_softmax middle axis", 1, {S4(2, 3, 8, 5)}, {0}, f_axis, &lsm_mid,
     R},
    {"layernorm", 3, {S3(2, 9, 64), S1(64), S1(64)}, {0}, f_layernorm, NULL,
     R},
    {"layernorm, no affine", 1, {S2(17, 48)}, {0}, f_layernorm_plain, NULL,
     R},
    {"cross_entropy", 1, {S2(12, 5)}, {0}, f_cross_entropy, &smooth0, R},
    {"cross_entropy, smoothing 0.1", 1, {S2(12, 5)}, {0}, f_cross_entropy,
     &smooth1, R},
    {"ABMIL chain", 4, {S2(40, 16), S2(16, 16), S2(16, 16), S2(3, 16)},
     {0}, f_abmil, NULL, R},
    {"cumsum axis 1", 1, {S3(4, 6, 5)}, {0}, f_scan, &cumsum1, R},
    {"cumsum last axis", 1, {S2(3, 40)}, {0}, f_scan, &cumsum_last, R},
    {"cumprod axis 1", 1, {S3(4, 6, 5)}, {R_POS}, f_scan, &cumprod1, R},
    {"cumprod axis 0", 1, {S2(7, 3)}, {R_AWAY0}, f_scan, &cumprod0, R},
    {"concat dim 1", 3, {S3(2, 3, 4), S3(2, 5, 4), S3(2, 1, 4)}, {0},
     f_concat, &dim1, E},
    {"concat dim 0", 3, {S2(2, 4), S2(1, 4), S2(3, 4)}, {0}, f_concat, &dim0,
     E},
    {"concat last dim", 3, {S3(2, 3, 1), S3(2, 3, 4), S3(2, 3, 2)}, {0},
     f_concat, &dim_last, E},
    {"index_select", 1, {S3(3, 5, 4)}, {0}, f_index_select, NULL, E},
    {"index_select rows", 1, {S2(50, 7)}, {0}, f_index_rows, NULL, E},
    {"gather", 1, {S3(3, 5, 4)}, {0}, f_gather, NULL, E},
    {"repeat", 1, {S2(3, 4)}, {0}, f_repeat, NULL, E},
    {"pad", 1, {S3(2, 5, 4)}, {0}, f_pad, NULL, E},
    {"dropout", 1, {S3(4, 7, 9)}, {0}, f_dropout, &plain, E},
    {"alpha_dropout", 1, {S3(4, 7, 9)}, {0}, f_dropout, &alpha, E},
    {"conv1d_dw", 2, {S3(2, 4, 9), S2(4, 5)}, {0}, f_conv1d, NULL, R},
    {"conv1d_dw 4-D (Nystrom residual)", 2, {S4(2, 3, 7, 5), S2(3, 3)}, {0},
     f_conv1d, NULL, R},
    {"conv2d_dw (PPEG)", 3, {S4(2, 3, 6, 5), S3(3, 3, 3), S1(3)}, {0},
     f_conv2d_dw, NULL, R},
    {"conv2d_dw 5x5, no bias", 2, {S4(1, 4, 7, 7), S3(4, 5, 5)}, {0},
     f_conv2d_dw_nob, NULL, R},
    {"surv_nll", 1, {S2(6, 4)}, {0}, f_surv_nll, &alpha0, R},
    {"surv_nll, alpha 0.4", 1, {S2(6, 4)}, {0}, f_surv_nll, &alpha4, R},
    {"cox_nll inclusive", 1, {S2(10, 1)}, {0}, f_cox, &inclusive, R},
    {"cox_nll strict", 1, {S2(10, 1)}, {0}, f_cox, &strict, R},
    {"TransMIL chain", 5, {S3(1, 10, 8), S3(1, 1, 8), S3(8, 3, 3), S1(8),
                           S2(2, 3)},
     {0}, f_transmil, NULL, R},
};

// ---- checks beyond one op ----------------------------------------------------------

/* max |b - a| / max |a| of two tensors (infinity if one is missing) */
static double tensor_diff(mm_tensor *p, mm_tensor *q)
{
    if (!p || !q || mm_tensor_numel(p) != mm_tensor_numel(q)) return INFINITY;
    double *a = values(p), *b = values(q);
    double d = a && b ? rel_diff(a, b, mm_tensor_numel(p)) : INFINITY;
    free(a);
    free(b);
    return d;
}

/* Dropout's masks bit for bit; the inference-only ops (no backward) and
 * cast, forward only. */
static void device_forward_only(void)
{
    mm_ctx *ctx = mm_ctx_new();
    shape sx = S3(6, 50, 33);
    mm_tensor *x = random_tensor(ctx, &sx, R_ANY);
    mm_tensor *xd = mm_tensor_to_device(ctx, x, MM_CUDA);
    for (int al = 0; al < 2; al++) {
        double p = al ? 0.35 : 0.5;
        uint64_t seed = al ? 0x1234567 : 7;
        mm_tensor *y = al ? mm_tensor_alpha_dropout(ctx, x, p, seed, 1)
                          : mm_tensor_dropout(ctx, x, p, seed, 1);
        mm_tensor *yd = al ? mm_tensor_alpha_dropout(ctx, xd, p, seed, 1)
                           : mm_tensor_dropout(ctx, xd, p, seed, 1);
        int64_t n = mm_tensor_numel(x), differ = -1, dropped = 0;
        if (y && yd) {
            double *a = values(y), *b = values(yd), *xv = values(x);
            differ = 0;
            for (int64_t i = 0; a && b && xv && i < n; i++) {
                differ += memcmp(&a[i], &b[i], sizeof a[i]) != 0;
                dropped += !al && a[i] == 0 && xv[i] != 0;
            }
            free(a);
            free(b);
            free(xv);
        }
        diag("%s (mask check): forward max relative difference %.3g; %lld "
             "of %lld outputs differ from the CPU's bits",
             al ? "alpha_dropout" : "dropout", tensor_diff(y, yd),
             (long long)differ, (long long)n);
        ok(differ == 0, "%s: the CPU's mask and values, bit for bit",
           al ? "alpha_dropout" : "dropout");
        if (!al)
            ok(dropped > n / 3 && dropped < 2 * n / 3,
               "dropout: about half dropped (%lld of %lld)",
               (long long)dropped, (long long)n);
    }
    mm_ctx_reset(ctx);

    /* cast to f32 of a strided CUDA view: a copy on the device */
    x = random_tensor(ctx, &(shape)S2(5, 7), R_ANY);
    xd = mm_tensor_to_device(ctx, x, MM_CUDA);
    mm_tensor *cd = mm_tensor_cast(ctx, mm_tensor_transpose(ctx, xd, 0, 1),
                                   MM_F32);
    ok(cd && mm_tensor_device(cd) == MM_CUDA &&
       tensor_diff(mm_tensor_contiguous(ctx, mm_tensor_transpose(ctx, x, 0,
                                                                  1)),
                   cd) == 0,
       "cast to f32 on CUDA: the transposed values, on the device");
    mm_ctx_reset(ctx);

    /* inference-only ops, in no-grad mode as the trunk runs them */
    mm_ctx_no_grad(ctx, 1);
    static const struct {
        int64_t n, c, h, w, o, k;
        int s, p;
    } cv[] = {
        {2, 3, 9, 8, 4, 3, 2, 1}, /* im2col, stride and padding */
        {1, 16, 7, 7, 24, 1, 1, 0}, /* 1x1: the image is its own im2col */
        {2, 5, 12, 10, 6, 7, 2, 3}, /* the ResNet stem's shape, small */
    };
    for (size_t i = 0; i < sizeof cv / sizeof cv[0]; i++) {
        shape s1 = S4(cv[i].n, cv[i].c, cv[i].h, cv[i].w),
              s2 = S4(cv[i].o, cv[i].c, cv[i].k, cv[i].k), s3 = S1(cv[i].o);
        mm_tensor *a = random_tensor(ctx, &s1, R_ANY);
        mm_tensor *w = random_tensor(ctx, &s2, R_ANY);
        mm_tensor *b = i == 1 ? NULL : random_tensor(ctx, &s3, R_ANY);
        mm_tensor *y = mm_tensor_conv2d(ctx, a, w, b, cv[i].s, cv[i].s,
                                        cv[i].p, cv[i].p);
        mm_tensor *yd = mm_tensor_conv2d(
            ctx, mm_tensor_to_device(ctx, a, MM_CUDA),
            mm_tensor_to_device(ctx, w, MM_CUDA),
            b ? mm_tensor_to_device(ctx, b, MM_CUDA) : NULL, cv[i].s,
            cv[i].s, cv[i].p, cv[i].p);
        double d = tensor_diff(y, yd);
        diag("conv2d %lldx%lld stride %d pad %d: forward max relative "
             "difference %.3g", (long long)cv[i].k, (long long)cv[i].k,
             cv[i].s, cv[i].p, d);
        ok(yd && mm_tensor_device(yd) == MM_CUDA && d <= R,
           "conv2d %lldx%lld stride %d pad %d: within %g", (long long)cv[i].k,
           (long long)cv[i].k, cv[i].s, cv[i].p, R);
    }
    x = random_tensor(ctx, &(shape)S4(2, 3, 11, 9), R_ANY);
    xd = mm_tensor_to_device(ctx, x, MM_CUDA);
    double d = tensor_diff(mm_tensor_max_pool2d(ctx, x, 3, 2, 1),
                           mm_tensor_max_pool2d(ctx, xd, 3, 2, 1));
    diag("max_pool2d: forward max relative difference %.3g", d);
    ok(d == 0, "max_pool2d 3/2/1: the CPU's values exactly");
    d = tensor_diff(mm_tensor_global_avg_pool2d(ctx, x),
                    mm_tensor_global_avg_pool2d(ctx, xd));
    diag("global_avg_pool2d: forward max relative difference %.3g", d);
    ok(d <= E, "global_avg_pool2d: within %g", E);
    mm_ctx_free(ctx);
}

/* A leaf made on the device (its gradient lives there), the TF32 option,
 * and what the backend refuses. */
static void device_extras(void)
{
    mm_ctx *ctx = mm_ctx_new(), *dctx = mm_ctx_new();
    shape sx = S2(64, 96), sw = S2(48, 96);
    mm_tensor *x = random_tensor(ctx, &sx, R_ANY);
    mm_tensor *w = random_tensor(ctx, &sw, R_ANY);
    /* w needs no grad when copied: wd is a leaf of dctx's graph */
    mm_tensor *wd = mm_tensor_to_device(dctx, w, MM_CUDA);
    mm_tensor_set_requires_grad(wd, 1);
    mm_tensor *xd = mm_tensor_to_device(dctx, x, MM_CUDA);
    mm_tensor *y = mm_tensor_sum_all(dctx, mm_tensor_square(dctx,
                                     mm_tensor_linear(dctx, xd, wd, NULL)));
    mm_tensor_set_requires_grad(w, 1);
    mm_tensor *yc = mm_tensor_sum_all(ctx, mm_tensor_square(ctx,
                                      mm_tensor_linear(ctx, x, w, NULL)));
    ok(mm_tensor_backward(dctx, y) == 0 && mm_tensor_backward(ctx, yc) == 0,
       "device leaf: backward");
    mm_tensor *gd = mm_tensor_grad(wd);
    ok(gd && mm_tensor_device(gd) == MM_CUDA, "device leaf: its gradient "
       "is on CUDA");
    if (gd && mm_tensor_grad(w)) {
        double *a = values(mm_tensor_grad(w)), *b = values(gd);
        double d = rel_diff(a, b, mm_tensor_numel(gd));
        diag("device leaf: gradient max relative difference %.3g", d);
        ok(d <= 1e-4, "device leaf: gradient within 1e-4");
        free(a);
        free(b);
    }
    mm_ctx_free(dctx);
    mm_ctx_reset(ctx);

    /* TF32: 10-bit mantissas in the products */
    shape sa = S2(256, 512), sb = S2(512, 256);
    mm_tensor *a = random_tensor(ctx, &sa, R_ANY);
    mm_tensor *b = random_tensor(ctx, &sb, R_ANY);
    mm_tensor *c = mm_tensor_matmul(ctx, a, b, 0, 0);
    int old = mm_cuda_tf32(1);
    mm_tensor *cd = mm_tensor_matmul(ctx, mm_tensor_to_device(ctx, a, MM_CUDA),
                                     mm_tensor_to_device(ctx, b, MM_CUDA), 0,
                                     0);
    mm_cuda_tf32(old);
    ok(old == 0, "TF32 is off by default");
    if (ok(c && cd, "TF32 matmul runs")) {
        double *p = values(c), *q = values(cd);
        double d = rel_diff(p, q, mm_tensor_numel(c));
        diag("TF32 matmul: forward max relative difference %.3g", d);
        ok(d <= 1e-2, "TF32 matmul within 1e-2");
        free(p);
        free(q);
    }
    mm_ctx_reset(ctx);

    /* refusals: mixed devices, what has no CUDA form, f64 */
    x = random_tensor(ctx, &sx, R_ANY);
    xd = mm_tensor_to_device(ctx, x, MM_CUDA);
    ok(mm_tensor_add(ctx, x, xd) == NULL, "add of a CPU and a CUDA tensor "
       "refused");
    like(mm_ctx_error(ctx), "on the CPU and on CUDA", "  ... says why");
    mm_ctx_reset(ctx);
    xd = mm_tensor_to_device(ctx, random_tensor(ctx, &sx, R_ANY), MM_CUDA);
    ok(mm_tensor_cast(ctx, xd, MM_I32) == NULL, "cast to i32 on CUDA "
       "refused");
    like(mm_ctx_error(ctx), "cast: CUDA tensors are f32", "  ... says why");
    mm_ctx_reset(ctx);
    {
        mm_tensor *fw = mm_tensor_new2(ctx, MM_F32, 2, 3);
        mm_tensor *fb = mm_tensor_new1(ctx, MM_F32, 2);
        mm_tensor *st = mm_tensor_new1(ctx, MM_F32, 2);
        mm_tensor_fill(st, 1);
        ok(mm_tensor_bn_fold(mm_tensor_to_device(ctx, fw, MM_CUDA), fb, st,
                             st, NULL, NULL, 1e-5) == -1,
           "bn_fold of CUDA weights refused (host only)");
        like(mm_strerror(), "bn_fold: host only", "  ... says why");
    }
    mm_ctx_reset(ctx);
    mm_tensor *x64 = mm_tensor_new2(ctx, MM_F64, 2, 2);
    ok(mm_tensor_to_device(ctx, x64, MM_CUDA) == NULL, "f64 to CUDA refused");
    like(mm_ctx_error(ctx), "f32", "  ... says why");
    mm_ctx_reset(ctx);

    /* accessors and the device arena across a reset */
    xd = mm_tensor_to_device(ctx, mm_tensor_new2(ctx, MM_F32, 3, 4), MM_CUDA);
    mm_tensor_fill(mm_tensor_transpose(ctx, xd, 0, 1), 2.5);
    ok(xd && mm_tensor_get1(xd, 11) == 2.5, "fill and get1 on CUDA");
    mm_tensor_set_f64(mm_tensor_slice(ctx, xd, 1, 1, 1), (double[]){1, 2, 3},
                      3);
    ok(mm_tensor_get1(xd, 5) == 2 && mm_tensor_get1(xd, 6) == 2.5,
       "set_f64 on a strided CUDA view");
    mm_ctx_free(ctx);
}

int main(void)
{
    char why[256] = "";
    int ndev = mm_cuda_available(why, sizeof why);
    mm_ctx *ctx = mm_ctx_new();
    mm_tensor *x = mm_tensor_new2(ctx, MM_F32, 2, 3);
    ok(mm_tensor_to_device(ctx, x, MM_CPU) == x, "to_device to where it is "
       "returns the tensor itself");
    if (ndev <= 0) {
        ok(why[0] != '\0' && !strchr(why, '\n'), "no CUDA: one-line reason");
        ok(mm_tensor_to_device(ctx, x, MM_CUDA) == NULL, "to_device refused");
        like(mm_ctx_error(ctx), "to_device: ", "  ... with its reason");
        ok(mm_ctx_error(ctx) && !strchr(mm_ctx_error(ctx), '\n'),
           "  ... on one line");
        diag("CUDA comparisons skipped: %s", why);
        mm_ctx_free(ctx);
        return done_testing();
    }
    mm_ctx_free(ctx);
    diag("CUDA devices: %d", ndev);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        run_case(&cases[i]);
    device_extras();
    device_forward_only();
    return done_testing();
}
