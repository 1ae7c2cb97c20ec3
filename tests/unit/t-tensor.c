/* t-tensor.c: the tensor library: forward values against hand-computed
 * ones, every op's backward against central finite differences in f64,
 * views, the arena's reuse, determinism, Adam/AdamW against torch's update.
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "../tap.h"
#include "mm/tensor.h"

// ---- helpers -----------------------------------------------------------------

static uint64_t rng_state;
static double urand(void) /* [0, 1), xorshift64* */
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (double)((rng_state * 2685821657736338717ULL) >> 11) * 0x1p-53;
}

static mm_tensor *from(mm_ctx *ctx, mm_dtype dt, int nd, const int64_t *sh,
                       const double *v)
{
    mm_tensor *t = mm_tensor_new(ctx, dt, nd, sh);
    if (t && mm_tensor_set_f64(t, v, mm_tensor_numel(t))) return NULL;
    return t;
}

static double maxdiff(mm_tensor *t, const double *want, int64_t n)
{
    double m = 0;
    if (!t || mm_tensor_numel(t) != n) return INFINITY;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs(mm_tensor_get1(t, i) - want[i]);
        if (!(d <= m)) m = d;
    }
    return m;
}

// ---- gradient check ------------------------------------------------------------

#define MAXIN 3
typedef mm_tensor *(*buildfn)(mm_ctx *ctx, mm_tensor **in, const void *ud);

typedef struct {
    int nd;
    int64_t sh[4];
} shape;

enum { GC_POS = 1, GC_AWAY0 = 2 }; /* input ranges: (0.5, 2); |x| > 0.1 */

static double rweights[8192];

static double eval_loss(mm_ctx *ctx, mm_tensor **in, buildfn f,
                        const void *ud, mm_tensor **lossp)
{
    mm_ctx_reset(ctx);
    mm_tensor *out = f(ctx, in, ud);
    if (!out) return NAN;
    int64_t sh[4];
    for (int i = 0; i < mm_tensor_ndim(out); i++) sh[i] = mm_tensor_dim(out, i);
    mm_tensor *r = from(ctx, mm_tensor_dtype(out), mm_tensor_ndim(out), sh,
                        rweights);
    mm_tensor *loss = mm_tensor_sum_all(ctx, mm_tensor_mul(ctx, out, r));
    if (lossp) *lossp = loss;
    return loss ? mm_tensor_get1(loss, 0) : NAN;
}

/* Loss = sum(f(inputs) * R) with random R; compare d loss / d input from
 * backward with central differences. Error per element:
 * |analytic - numeric| / max(1, |analytic|, |numeric|). */
static void gradcheck(const char *name, int nin, const shape *shp, int flags,
                      buildfn f, const void *ud)
{
    rng_state = 0x9E3779B97F4A7C15ULL ^ (uint64_t)strlen(name) * 7919;
    for (size_t i = 0; i < sizeof rweights / sizeof *rweights; i++)
        rweights[i] = 2 * urand() - 1;
    mm_params *p = mm_params_new(MM_F64);
    mm_tensor *in[MAXIN];
    for (int k = 0; k < nin; k++) {
        char nm[16];
        snprintf(nm, sizeof nm, "in%d", k);
        in[k] = mm_params_add(p, nm, shp[k].nd, shp[k].sh);
    }
    if (mm_params_alloc(p)) {
        ok(0, "grad %s: alloc", name);
        mm_params_free(p);
        return;
    }
    for (int k = 0; k < nin; k++) {
        double *x = mm_tensor_data(in[k]);
        for (int64_t i = 0; i < mm_tensor_numel(in[k]); i++) {
            double u = urand();
            if (flags & GC_POS) x[i] = 0.5 + 1.5 * u;
            else if (flags & GC_AWAY0)
                x[i] = (u < 0.5 ? -1 : 1) * (0.1 + 1.8 * fabs(u - 0.5));
            else x[i] = 4 * u - 2;
            x[i] = (float)x[i]; /* the f32 run below sees the same inputs */
        }
    }
    mm_ctx *ctx = mm_ctx_new();
    mm_tensor *loss;
    eval_loss(ctx, in, f, ud, &loss);
    if (!loss || mm_tensor_backward(ctx, loss)) {
        ok(0, "grad %s: %s", name, mm_ctx_error(ctx));
        mm_ctx_free(ctx);
        mm_params_free(p);
        return;
    }
    double maxerr = 0, maxg = 0;
    const double h = 1e-6;
    mm_ctx_no_grad(ctx, 1);
    for (int k = 0; k < nin; k++) {
        double *x = mm_tensor_data(in[k]);
        const double *g = mm_tensor_data(mm_tensor_grad(in[k]));
        for (int64_t i = 0; i < mm_tensor_numel(in[k]); i++) {
            double x0 = x[i];
            x[i] = x0 + h;
            double lp = eval_loss(ctx, in, f, ud, NULL);
            x[i] = x0 - h;
            double lm = eval_loss(ctx, in, f, ud, NULL);
            x[i] = x0;
            double num = (lp - lm) / (2 * h);
            double den = fmax(1, fmax(fabs(num), fabs(g[i])));
            double e = fabs(num - g[i]) / den;
            if (!(e <= maxerr)) maxerr = e;
            if (fabs(g[i]) > maxg) maxg = fabs(g[i]);
        }
    }
    ok(maxerr < 1e-6 && maxg > 0, "grad %s: max rel err %.2e (max |g| %.2f)",
       name, maxerr, maxg);
    mm_ctx_no_grad(ctx, 0);

    /* the f32 kernels: the same inputs, backward against the f64 one */
    mm_params *p32 = mm_params_new(MM_F32);
    mm_tensor *in32[MAXIN];
    for (int k = 0; k < nin; k++) {
        char nm[16];
        snprintf(nm, sizeof nm, "in%d", k);
        in32[k] = mm_params_add(p32, nm, shp[k].nd, shp[k].sh);
    }
    double err32 = INFINITY;
    if (mm_params_alloc(p32) == 0) {
        for (int k = 0; k < nin; k++) {
            int64_t n = mm_tensor_numel(in[k]);
            mm_tensor_set_f64(in32[k], mm_tensor_data(in[k]), n);
        }
        eval_loss(ctx, in32, f, ud, &loss);
        if (loss && mm_tensor_backward(ctx, loss) == 0) {
            err32 = 0;
            for (int k = 0; k < nin; k++) {
                const double *g = mm_tensor_data(mm_tensor_grad(in[k]));
                mm_tensor *g32 = mm_tensor_grad(in32[k]);
                for (int64_t i = 0; i < mm_tensor_numel(in[k]); i++) {
                    double e = fabs(mm_tensor_get1(g32, i) - g[i]) /
                               fmax(1, fabs(g[i]));
                    if (!(e <= err32)) err32 = e;
                }
            }
        }
    }
    ok(err32 < 1e-4, "grad %s: f32 backward vs f64: max rel diff %.2e", name,
       err32);
    mm_params_free(p32);
    mm_ctx_free(ctx);
    mm_params_free(p);
}

// builders: UD points at an int[] of op arguments

static mm_tensor *b_matmul(mm_ctx *c, mm_tensor **in, const void *ud)
{
    const int *a = ud;
    return mm_tensor_matmul(c, in[0], in[1], a[0], a[1]);
}
/* UD: int[3] {ta, tb, c}: c 0 no C (alpha 0.25), 1 C (M, N) shared, 2 C
 * the product's shape; in[2] is C */
static mm_tensor *b_addmm(mm_ctx *c, mm_tensor **in, const void *ud)
{
    const int *a = ud;
    return mm_tensor_addmm(c, a[2] ? in[2] : NULL, in[0], in[1], a[0], a[1],
                           a[2] ? -1.5 : 0.25, 0.75);
}
static mm_tensor *b_add(mm_ctx *c, mm_tensor **in, const void *ud)
{
    (void)ud;
    return mm_tensor_add(c, in[0], in[1]);
}
static mm_tensor *b_sub(mm_ctx *c, mm_tensor **in, const void *ud)
{
    (void)ud;
    return mm_tensor_sub(c, in[0], in[1]);
}
static mm_tensor *b_mul(mm_ctx *c, mm_tensor **in, const void *ud)
{
    (void)ud;
    return mm_tensor_mul(c, in[0], in[1]);
}
static mm_tensor *b_div(mm_ctx *c, mm_tensor **in, const void *ud)
{
    (void)ud;
    return mm_tensor_div(c, in[0], in[1]);
}
static mm_tensor *b_square(mm_ctx *c, mm_tensor **in, const void *ud)
{
    (void)ud;
    return mm_tensor_mul(c, in[0], in[0]);
}
static mm_tensor *b_unary(mm_ctx *c, mm_tensor **in, const void *ud)
{
    switch (*(const int *)ud) {
    case 0: return mm_tensor_scale(c, in[0], -1.75);
    case 1: return mm_tensor_exp(c, in[0]);
    case 2: return mm_tensor_log(c, in[0]);
    case 3: return mm_tensor_sqrt(c, in[0]);
    case 4: return mm_tensor_tanh(c, in[0]);
    case 5: return mm_tensor_sigmoid(c, in[0]);
    case 6: return mm_tensor_relu(c, in[0]);
    case 7: return mm_tensor_gelu(c, in[0]);
    case 8: return mm_tensor_softmax(c, in[0]);
    default: return mm_tensor_log_softmax(c, in[0]);
    }
}
static const char *const unary_names[] = {
    "scale", "exp", "log", "sqrt", "tanh", "sigmoid", "relu", "gelu",
    "softmax", "log_softmax"
};
static mm_tensor *b_reduce(mm_ctx *c, mm_tensor **in, const void *ud)
{
    const int *a = ud; /* mean?, axis, keepdim */
    return a[0] ? mm_tensor_mean(c, in[0], a[1], a[2])
                : mm_tensor_sum(c, in[0], a[1], a[2]);
}
static mm_tensor *b_layernorm(mm_ctx *c, mm_tensor **in, const void *ud)
{
    int affine = *(const int *)ud;
    return mm_tensor_layernorm(c, in[0], affine ? in[1] : NULL,
                               affine ? in[2] : NULL, 1e-5);
}
static mm_tensor *b_linear(mm_ctx *c, mm_tensor **in, const void *ud)
{
    int bias = *(const int *)ud;
    return mm_tensor_linear(c, in[0], in[1], bias ? in[2] : NULL);
}
static mm_tensor *b_xent(mm_ctx *c, mm_tensor **in, const void *ud)
{
    const double *sm = ud;
    mm_tensor *lab = mm_tensor_new1(c, MM_I64, 4);
    mm_tensor_set_f64(lab, (const double[]){2, 0, 4, 2}, 4);
    return mm_tensor_cross_entropy(c, in[0], lab, *sm);
}
static mm_tensor *b_views(mm_ctx *c, mm_tensor **in, const void *ud)
{
    switch (*(const int *)ud) {
    case 0: /* transpose, then an elementwise op on the strided view */
        return mm_tensor_mul(c, mm_tensor_transpose(c, in[0], 0, 1), in[1]);
    case 1: /* slice along the middle dim, then exp */
        return mm_tensor_exp(c, mm_tensor_slice(c, in[0], 1, 1, 2));
    case 2: /* reshape then softmax */
        return mm_tensor_softmax(
            c, mm_tensor_reshape(c, in[0], 2, (int64_t[]){4, -1}));
    default: { /* transpose, slice, transpose back, matmul with itself */
        mm_tensor *t = mm_tensor_transpose(c, in[0], -1, -2);
        t = mm_tensor_slice(c, t, 0, 1, 3);
        return mm_tensor_matmul(c, t, t, 1, 0);
    }
    }
}

static mm_tensor *b_unary2(mm_ctx *c, mm_tensor **in, const void *ud)
{
    switch (*(const int *)ud) {
    case 0: return mm_tensor_neg(c, in[0]);
    case 1: return mm_tensor_abs(c, in[0]);
    case 2: return mm_tensor_clamp(c, in[0], -0.5, 0.7);
    case 3: return mm_tensor_rsqrt(c, in[0]);
    case 4: return mm_tensor_square(c, in[0]);
    case 5: return mm_tensor_elu(c, in[0], 1.3);
    case 6: return mm_tensor_silu(c, in[0]);
    case 7: return mm_tensor_softplus(c, in[0]);
    default: /* softplus above its threshold: scale into (8, 32) */
        return mm_tensor_softplus(c, mm_tensor_scale(c, in[0], 16));
    }
}
static const char *const unary2_names[] = {
    "neg", "abs", "clamp", "rsqrt", "square", "elu", "silu", "softplus",
    "softplus past threshold"
};
static mm_tensor *b_scan(mm_ctx *c, mm_tensor **in, const void *ud)
{
    const int *a = ud; /* kind (0 max, 1 cumsum, 2 cumprod), axis, keep */
    return a[0] == 0 ? mm_tensor_max(c, in[0], a[1], a[2])
           : a[0] == 1 ? mm_tensor_cumsum(c, in[0], a[1])
                       : mm_tensor_cumprod(c, in[0], a[1]);
}
static mm_tensor *idx(mm_ctx *c, mm_dtype dt, int nd, const int64_t *sh,
                      const double *v)
{
    return from(c, dt, nd, sh, v);
}
static mm_tensor *b_shape(mm_ctx *c, mm_tensor **in, const void *ud)
{
    switch (*(const int *)ud) {
    case 0: /* concat of three along the middle dim */
        return mm_tensor_concat(c, 3, in, 1);
    case 1: /* concat along the last dim of a transposed view and more */
        return mm_tensor_concat(
            c, 2, (mm_tensor *[]){mm_tensor_transpose(c, in[0], 0, 1), in[1]},
            -1);
    case 2: { /* index_select with repeats along dim 1 */
        mm_tensor *ix = idx(c, MM_I64, 1, (int64_t[]){5},
                            (double[]){3, 0, 3, 1, 3});
        return mm_tensor_index_select(c, in[0], 1, ix);
    }
    case 3: { /* index_select along dim 0, i32 */
        mm_tensor *ix = idx(c, MM_I32, 1, (int64_t[]){3},
                            (double[]){1, 1, 0});
        return mm_tensor_index_select(c, in[0], 0, ix);
    }
    case 4: { /* gather dim 1: index (3, 5) into (4, 4) */
        mm_tensor *ix = idx(c, MM_I64, 2, (int64_t[]){3, 5},
                            (double[]){0, 3, 3, 1, 2, 2, 2, 0, 1, 3,
                                       1, 1, 1, 0, 3});
        return mm_tensor_gather(c, in[0], 1, ix);
    }
    case 5: { /* gather dim 0: index (3, 2) into (2, 4) */
        mm_tensor *ix = idx(c, MM_I32, 2, (int64_t[]){3, 2},
                            (double[]){1, 0, 1, 1, 0, 1});
        return mm_tensor_gather(c, in[0], 0, ix);
    }
    case 6: /* repeat (2, 3) by (2, 1, 2) */
        return mm_tensor_repeat(c, in[0], 3, (int64_t[]){2, 1, 2});
    case 7: /* repeat (2, 3, 2) by (1, 3, 1) */
        return mm_tensor_repeat(c, in[0], 3, (int64_t[]){1, 3, 1});
    case 8: /* pad dim 1, 2 in front, 1 behind */
        return mm_tensor_pad(c, in[0], 1, 2, 1);
    case 9: /* front pad on the last dim, then softmax sees the zeros */
        return mm_tensor_softmax(c, mm_tensor_pad(c, in[0], -1, 3, 0));
    case 10: return mm_tensor_dropout(c, in[0], 0.3, 7, 1);
    default: return mm_tensor_alpha_dropout(c, in[0], 0.2, 11, 1);
    }
}
static const char *const shape_names[] = {
    "concat 3 inputs dim 1", "concat transposed view dim -1",
    "index_select dim 1 (repeats)", "index_select dim 0 i32", "gather dim 1",
    "gather dim 0 i32", "repeat (2,1,2) new dim", "repeat (1,3,1)",
    "pad dim 1 front 2 back 1", "pad front + softmax", "dropout p 0.3",
    "alpha_dropout p 0.2"
};
static mm_tensor *b_conv(mm_ctx *c, mm_tensor **in, const void *ud)
{
    switch (*(const int *)ud) {
    case 0: case 1: return mm_tensor_conv1d_dw(c, in[0], in[1]);
    case 2: return mm_tensor_conv2d_dw(c, in[0], in[1], in[2]);
    default: return mm_tensor_conv2d_dw(c, in[0], in[1], NULL);
    }
}
static mm_tensor *b_surv(mm_ctx *c, mm_tensor **in, const void *ud)
{
    double alpha = *(const double *)ud;
    mm_tensor *y = idx(c, MM_I64, 1, (int64_t[]){5},
                       (double[]){0, 3, 1, 2, 3});
    mm_tensor *cz = idx(c, MM_F64, 1, (int64_t[]){5},
                        (double[]){0, 1, 1, 0, 0});
    return mm_tensor_surv_nll(c, in[0], y, cz, alpha, 1e-7);
}
static const double cox_t[6] = {5, 3, 3, 8, 1, 3}, cox_e[6] = {1, 0, 1, 1,
                                                               0, 1};
static mm_tensor *b_cox(mm_ctx *c, mm_tensor **in, const void *ud)
{
    mm_tensor *t = idx(c, MM_F32, 1, (int64_t[]){6}, cox_t);
    mm_tensor *e = idx(c, MM_I32, 1, (int64_t[]){6}, cox_e);
    return mm_tensor_cox_nll(c, in[0], t, e, *(const mm_cox_norm *)ud);
}
/* the strict risk set (POMP Eq. 15): the event at t = 8 (the largest) has
 * an empty set and is skipped; the tie group at 3 holds two events */
static mm_tensor *b_cox_strict(mm_ctx *c, mm_tensor **in, const void *ud)
{
    mm_tensor *t = idx(c, MM_F32, 1, (int64_t[]){6}, cox_t);
    mm_tensor *e = idx(c, MM_I32, 1, (int64_t[]){6}, cox_e);
    return mm_tensor_cox_nll_ex(c, in[0], t, e, *(const mm_cox_norm *)ud,
                                MM_COX_STRICT);
}
/* UD: int[2] {axis, log}; softmax over any axis */
static mm_tensor *b_softmax_axis(mm_ctx *c, mm_tensor **in, const void *ud)
{
    const int *a = ud;
    return a[1] ? mm_tensor_log_softmax_axis(c, in[0], a[0])
                : mm_tensor_softmax_axis(c, in[0], a[0]);
}

/* UD: double scale. 3 inputs Q, K, V: mm_tensor_attention. */
static mm_tensor *b_attention(mm_ctx *c, mm_tensor **in, const void *ud)
{
    return mm_tensor_attention(c, in[0], in[1], in[2], *(const double *)ud);
}
/* Q = K = V: one tensor, three gradient contributions; UD as above. */
static mm_tensor *b_attention_self(mm_ctx *c, mm_tensor **in, const void *ud)
{
    /* an intermediate, so its gradient is made by the attention backward */
    mm_tensor *x = mm_tensor_scale(c, in[0], 0.5);
    return mm_tensor_attention(c, x, x, x, *(const double *)ud);
}
/* add/sub of intermediates (a full-size source takes over the output's
 * gradient buffer): UD int 0: a + b, 1: a - b, 2: a + a, 3: a - 3a. The
 * sources' other use, a * b, is recorded first, so its backward runs
 * after the add's and adds into the handed-over buffer. */
static mm_tensor *b_addsub_inter(mm_ctx *c, mm_tensor **in, const void *ud)
{
    int k = *(const int *)ud;
    mm_tensor *a = mm_tensor_scale(c, in[0], 0.5);
    mm_tensor *b = mm_tensor_scale(c, in[1], 2);
    mm_tensor *z = mm_tensor_mul(c, a, b);
    mm_tensor *y = k == 0   ? mm_tensor_add(c, a, b)
                   : k == 1 ? mm_tensor_sub(c, a, b)
                   : k == 2 ? mm_tensor_add(c, a, a)
                            : mm_tensor_sub(c, a, mm_tensor_scale(c, a, 3));
    return mm_tensor_mul(c, mm_tensor_exp(c, y), z);
}
/* matmul of intermediates (their gradients start in backward_matmul:
 * written, or zeroed then summed over the batch when shared); UD as
 * b_matmul. */
static mm_tensor *b_matmul_inter(mm_ctx *c, mm_tensor **in, const void *ud)
{
    const int *t = ud;
    return mm_tensor_matmul(c, mm_tensor_scale(c, in[0], 0.5),
                            mm_tensor_scale(c, in[1], 2), t[0], t[1]);
}
/* One input (B, N, 3 H Dh) cut into head views (B, H, N, Dh) as mm_mha
 * does (reshape, slice, transpose: strided, no copies); UD as above. */
static mm_tensor *b_attention_heads(mm_ctx *c, mm_tensor **in,
                                    const void *ud)
{
    int64_t b = mm_tensor_dim(in[0], 0), n = mm_tensor_dim(in[0], 1);
    mm_tensor *x = mm_tensor_reshape(c, in[0], 4, (int64_t[]){b, n, 6, 2});
    mm_tensor *h[3];
    for (int i = 0; i < 3; i++)
        h[i] = mm_tensor_transpose(c, mm_tensor_slice(c, x, 2, 2 * i, 2), 1,
                                   2);
    return mm_tensor_attention(c, h[0], h[1], h[2], *(const double *)ud);
}

#define S1(a) {1, {a}}
#define S2(a, b) {2, {a, b}}
#define S3(a, b, c) {3, {a, b, c}}
#define S4(a, b, c, d) {4, {a, b, c, d}}

static void test_gradients(void)
{
    static const int tr[4][2] = {{0, 0}, {1, 0}, {0, 1}, {1, 1}};
    for (int i = 0; i < 4; i++) {
        int ta = tr[i][0], tb = tr[i][1];
        shape s[2] = {ta ? (shape)S2(4, 3) : (shape)S2(3, 4),
                      tb ? (shape)S2(5, 4) : (shape)S2(4, 5)};
        char nm[64];
        snprintf(nm, sizeof nm, "matmul ta=%d tb=%d", ta, tb);
        gradcheck(nm, 2, s, 0, b_matmul, tr[i]);
        shape sb[2] = {ta ? (shape)S3(2, 4, 3) : (shape)S3(2, 3, 4),
                       tb ? (shape)S3(2, 5, 4) : (shape)S3(2, 4, 5)};
        snprintf(nm, sizeof nm, "batched matmul ta=%d tb=%d", ta, tb);
        gradcheck(nm, 2, sb, 0, b_matmul, tr[i]);
        shape sw[2] = {sb[0], s[1]};
        snprintf(nm, sizeof nm, "batched matmul, shared B, ta=%d tb=%d", ta,
                 tb);
        gradcheck(nm, 2, sw, 0, b_matmul, tr[i]);
        shape sa[2] = {s[0], sb[1]};
        snprintf(nm, sizeof nm, "batched matmul, shared A, ta=%d tb=%d", ta,
                 tb);
        gradcheck(nm, 2, sa, 0, b_matmul, tr[i]);
        { /* addmm's values: beta C + alpha A B against the composition */
            mm_ctx *c = mm_ctx_new();
            double v[48]; /* A from v, B (40) from v + 1, C (15) from v + 7 */
            for (int j = 0; j < 48; j++) v[j] = (j * 37 % 23) / 7.0 - 1.5;
            mm_tensor *A = from(c, MM_F64, 3, (int64_t[]){2, ta ? 4 : 3, ta ? 3 : 4}, v);
            mm_tensor *B = from(c, MM_F64, 3, (int64_t[]){2, tb ? 5 : 4, tb ? 4 : 5}, v + 1);
            mm_tensor *C = from(c, MM_F64, 2, (int64_t[]){3, 5}, v + 7);
            mm_tensor *y = mm_tensor_addmm(c, C, A, B, ta, tb, -1.5, 0.75);
            mm_tensor *r = mm_tensor_add(c, mm_tensor_scale(c, mm_tensor_matmul(c, A, B, ta, tb), -1.5),
                                         mm_tensor_scale(c, C, 0.75));
            double d = y && r && mm_tensor_numel(y) == 30 ? 0 : INFINITY;
            for (int j = 0; d < INFINITY && j < 30; j++)
                d = fmax(d, fabs(mm_tensor_get1(y, j) - mm_tensor_get1(r, j)));
            ok(d < 1e-12, "addmm ta=%d tb=%d: beta C + alpha A B (diff %.1e)", ta, tb, d);
            mm_ctx_free(c);
        }
        for (int cm = 0; cm < 3; cm++) { /* addmm: batched, C none/shared/full */
            int ud[3] = {ta, tb, cm};
            shape sc[3] = {sb[0], sb[1], cm == 1 ? (shape)S2(3, 5) : (shape)S3(2, 3, 5)};
            snprintf(nm, sizeof nm, "addmm ta=%d tb=%d C %s", ta, tb,
                     cm == 0 ? "none" : cm == 1 ? "shared" : "full");
            gradcheck(nm, cm ? 3 : 2, sc, 0, b_addmm, ud);
        }
    }
    gradcheck("matmul 4-D", 2, (shape[]){S4(2, 2, 3, 4), S4(2, 2, 4, 2)}, 0,
              b_matmul, tr[0]);
    static const int asi[4] = {0, 1, 2, 3};
    static const char *const asn[4] = {"a + b", "a - b", "a + a",
                                       "a - 3a"};
    for (int k = 0; k < 4; k++) {
        char nm[64];
        snprintf(nm, sizeof nm, "%s of intermediates", asn[k]);
        gradcheck(nm, 2, (shape[]){S2(3, 4), k < 2 ? (shape)S2(3, 4)
                                                   : (shape)S1(4)},
                  0, b_addsub_inter, &asi[k]);
    }
    gradcheck("a + b of intermediates, b broadcast", 2,
              (shape[]){S2(3, 4), S1(4)}, 0, b_addsub_inter, &asi[0]);
    gradcheck("matmul of intermediates, batched", 2,
              (shape[]){S3(2, 4, 3), S3(2, 4, 5)}, 0, b_matmul_inter, tr[1]);
    gradcheck("matmul of intermediates, shared B, ta=1", 2,
              (shape[]){S3(2, 4, 3), S2(4, 5)}, 0, b_matmul_inter, tr[1]);
    gradcheck("matmul of intermediates, shared A", 2,
              (shape[]){S2(3, 4), S3(2, 4, 5)}, 0, b_matmul_inter, tr[0]);

    static const shape bc[][2] = {
        {S2(3, 4), S2(3, 4)},
        {S3(2, 3, 4), S1(4)},
        {S3(2, 1, 4), S2(3, 1)},
        {S1(1), S2(3, 4)},
        {S4(2, 1, 3, 2), S3(2, 1, 2)},
    };
    static const struct { const char *nm; buildfn f; int flags; } bin[] = {
        {"add", b_add, 0}, {"sub", b_sub, 0}, {"mul", b_mul, 0},
        {"div", b_div, GC_POS},
    };
    for (size_t o = 0; o < sizeof bin / sizeof *bin; o++)
        for (size_t k = 0; k < sizeof bc / sizeof *bc; k++) {
            char nm[96];
            snprintf(nm, sizeof nm, "%s %dD by %dD (case %zu)", bin[o].nm,
                     bc[k][0].nd, bc[k][1].nd, k);
            gradcheck(nm, 2, bc[k], bin[o].flags, bin[o].f, NULL);
        }
    gradcheck("mul x by itself", 1, (shape[]){S2(3, 4)}, 0, b_square, NULL);

    for (int u = 0; u < 10; u++) {
        int flags = u == 2 || u == 3 ? GC_POS : u == 6 ? GC_AWAY0 : 0;
        gradcheck(unary_names[u], 1, (shape[]){S3(2, 3, 5)}, flags, b_unary,
                  &u);
    }

    for (int mean = 0; mean < 2; mean++)
        for (int ax = -1; ax < 3; ax++)
            for (int keep = 0; keep < 2; keep++) {
                int a[3] = {mean, ax, keep};
                char nm[64];
                snprintf(nm, sizeof nm, "%s axis %d keepdim %d",
                         mean ? "mean" : "sum", ax, keep);
                gradcheck(nm, 1, (shape[]){S3(2, 3, 4)}, 0, b_reduce, a);
            }
    int one = 1, zero = 0;
    gradcheck("layernorm affine", 3, (shape[]){S3(2, 3, 6), S1(6), S1(6)}, 0,
              b_layernorm, &one);
    gradcheck("layernorm plain", 1, (shape[]){S2(3, 6)}, 0, b_layernorm,
              &zero);
    gradcheck("linear 3-D + bias", 3, (shape[]){S3(2, 3, 4), S2(5, 4), S1(5)},
              0, b_linear, &one);
    gradcheck("linear 1-D, no bias", 2, (shape[]){S1(4), S2(5, 4)}, 0,
              b_linear, &zero);
    double sm0 = 0, sm1 = 0.1;
    gradcheck("cross_entropy", 1, (shape[]){S2(4, 5)}, 0, b_xent, &sm0);
    gradcheck("cross_entropy smoothing 0.1", 1, (shape[]){S2(4, 5)}, 0,
              b_xent, &sm1);
    int v0 = 0, v1 = 1, v2 = 2, v3 = 3;
    gradcheck("transpose view", 2, (shape[]){S2(3, 4), S2(4, 3)}, 0, b_views,
              &v0);
    gradcheck("slice view", 1, (shape[]){S3(2, 4, 3)}, 0, b_views, &v1);
    gradcheck("reshape view", 1, (shape[]){S3(2, 2, 3)}, 0, b_views, &v2);
    gradcheck("transpose+slice+matmul", 1, (shape[]){S2(3, 4)}, 0, b_views,
              &v3);

    for (int u = 0; u < 9; u++) {
        int flags = u == 3 ? GC_POS : u == 1 || u == 8 ? GC_AWAY0 : 0;
        if (u == 8) flags = GC_POS;
        gradcheck(unary2_names[u], 1, (shape[]){S3(2, 3, 5)}, flags,
                  b_unary2, &u);
    }
    for (int kind = 0; kind < 3; kind++)
        for (int ax = -1; ax < 3; ax++)
            for (int keep = 0; keep < (kind ? 1 : 2); keep++) {
                int a[3] = {kind, ax, keep};
                char nm[64];
                snprintf(nm, sizeof nm, "%s axis %d%s",
                         kind == 0 ? "max" : kind == 1 ? "cumsum" : "cumprod",
                         ax, kind ? "" : keep ? " keepdim 1" : " keepdim 0");
                gradcheck(nm, 1, (shape[]){S3(2, 3, 4)}, 0, b_scan, a);
            }
    static const shape shs[][3] = {
        {S3(2, 1, 3), S3(2, 4, 3), S3(2, 2, 3)},
        {S2(3, 2), S2(2, 4)},
        {S3(2, 4, 3)},
        {S2(2, 5)},
        {S2(4, 4)},
        {S2(2, 4)},
        {S2(2, 3)},
        {S3(2, 3, 2)},
        {S3(2, 3, 2)},
        {S2(3, 4)},
        {S3(4, 5, 6)},
        {S3(4, 5, 6)},
    };
    static const int shn[] = {3, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    for (int k = 0; k < 12; k++)
        gradcheck(shape_names[k], shn[k], shs[k], 0, b_shape, &k);
    int cv[4] = {0, 1, 2, 3};
    gradcheck("conv1d_dw (B, C, L) K 5", 2, (shape[]){S3(2, 3, 9), S2(3, 5)},
              0, b_conv, &cv[0]);
    gradcheck("conv1d_dw (B, C, L, D) K 7 > L", 2,
              (shape[]){S4(2, 2, 3, 3), S2(2, 7)}, 0, b_conv, &cv[1]);
    gradcheck("conv2d_dw k 3 + bias", 3,
              (shape[]){S4(2, 3, 5, 6), S3(3, 3, 3), S1(3)}, 0, b_conv,
              &cv[2]);
    gradcheck("conv2d_dw k 5, no bias", 2,
              (shape[]){S4(1, 2, 4, 6), S3(2, 5, 5)}, 0, b_conv, &cv[3]);
    double al0 = 0, al4 = 0.4;
    gradcheck("surv_nll alpha 0", 1, (shape[]){S2(5, 4)}, 0, b_surv, &al0);
    gradcheck("surv_nll alpha 0.4", 1, (shape[]){S2(5, 4)}, 0, b_surv, &al4);
    static const mm_cox_norm norms[] = {MM_COX_MEAN_EVENTS, MM_COX_MEAN_ALL,
                                        MM_COX_EVENTS_PLUS1};
    for (int k = 0; k < 3; k++) {
        char nm[64];
        snprintf(nm, sizeof nm, "cox_nll norm %d (ties)", k);
        gradcheck(nm, 1, (shape[]){k == 1 ? (shape)S2(6, 1) : (shape)S1(6)},
                  0, b_cox, &norms[k]);
        snprintf(nm, sizeof nm, "cox_nll strict norm %d (ties, empty set)",
                 k);
        gradcheck(nm, 1, (shape[]){k == 1 ? (shape)S2(6, 1) : (shape)S1(6)},
                  0, b_cox_strict, &norms[k]);
    }
    /* softmax / log_softmax over axis 0, a middle axis and -1, 3-D and 4-D */
    static const struct {
        shape s;
        int axis;
    } smx[] = {
        {S3(3, 2, 4), 0}, {S3(3, 2, 4), 1}, {S3(3, 2, 4), -1},
        {S4(3, 2, 4, 2), 0}, {S4(3, 2, 4, 2), 2}, {S4(3, 2, 4, 2), -1},
        {S4(3, 2, 4, 2), -3},
    };
    for (size_t k = 0; k < sizeof smx / sizeof *smx; k++)
        for (int lg = 0; lg < 2; lg++) {
            char nm[64];
            snprintf(nm, sizeof nm, "%s %d-D axis %d",
                     lg ? "log_softmax" : "softmax", smx[k].s.nd,
                     smx[k].axis);
            int ud[2] = {smx[k].axis, lg};
            gradcheck(nm, 1, &smx[k].s, 0, b_softmax_axis, ud);
        }
    double sc = 0.6, sc1 = 1;
    gradcheck("attention 3-D", 3,
              (shape[]){S3(2, 5, 3), S3(2, 7, 3), S3(2, 7, 4)}, 0,
              b_attention, &sc);
    gradcheck("attention 2-D, scale 1", 3,
              (shape[]){S2(6, 4), S2(3, 4), S2(3, 5)}, 0, b_attention, &sc1);
    gradcheck("attention 4-D head views", 1, (shape[]){S3(2, 5, 12)}, 0,
              b_attention_heads, &sc);
    gradcheck("attention Q = K = V", 1, (shape[]){S3(2, 6, 3)}, 0,
              b_attention_self, &sc);
}

/* mm_tensor_attention against the composition it replaces (matmul, scale,
 * softmax, matmul) in f32: outputs and the gradients of Q, K and V, at
 * sizes with several blocks of query rows and a ragged last block; on
 * head views (strided) too. Max |fused - unfused| / max |unfused|. */
static void test_attention_vs_unfused(void)
{
    static const struct {
        int64_t b, h, m, n, d, dv;
        int views;
    } cs[] = {
        /* blocks of 256 rows, fewer past 8 MiB of f32 scores (attn_block) */
        {1, 1, 5, 9, 4, 3, 0},       /* one block */
        {2, 3, 600, 500, 8, 5, 0},   /* 256, 256, 88 */
        {1, 2, 300, 9000, 4, 3, 0},  /* 224 (8 MiB / 9000 keys), 76 */
        {1, 2, 900, 900, 16, 16, 1}, /* heads of one (B, N, 3 H Dh):
                                        256 x 3 + 132 */
        {1, 1, 300, 1500, 6, 7, 0},  /* batch 1 (the backward without
                                        threads over the batch): 256 + 44 */
    };
    for (size_t ci = 0; ci < sizeof cs / sizeof *cs; ci++) {
        int64_t B = cs[ci].b, H = cs[ci].h, M = cs[ci].m, N = cs[ci].n,
                D = cs[ci].d, DV = cs[ci].dv;
        int views = cs[ci].views;
        double scale = 1 / sqrt((double)D);
        mm_params *p = mm_params_new(MM_F32);
        mm_tensor *in[3];
        if (views) /* Q, K, V from one (B, N, 3 H D); M = N */
            in[0] = mm_params_add(p, "x", 3, (int64_t[]){B, N, 3 * H * D});
        else {
            in[0] = mm_params_add(p, "q", 4, (int64_t[]){B, H, M, D});
            in[1] = mm_params_add(p, "k", 4, (int64_t[]){B, H, N, D});
            in[2] = mm_params_add(p, "v", 4, (int64_t[]){B, H, N, DV});
        }
        if (mm_params_alloc(p)) {
            ok(0, "attention vs unfused: alloc");
            mm_params_free(p);
            continue;
        }
        rng_state = 1234 + ci;
        for (int i = 0; i < mm_params_count(p); i++) {
            mm_tensor *t = mm_params_get(p, i);
            for (int64_t j = 0; j < mm_tensor_numel(t); j++)
                ((float *)mm_tensor_data(t))[j] = (float)(4 * urand() - 2);
        }
        int np = mm_params_count(p);
        int64_t nout = B * H * (views ? N : M) * DV, ntot = 0;
        for (int i = 0; i < np; i++) ntot += mm_tensor_numel(mm_params_get(p, i));
        double *res[2][2];
        for (int f = 0; f < 2; f++) {
            res[f][0] = malloc((size_t)nout * sizeof(double));
            res[f][1] = malloc((size_t)ntot * sizeof(double));
        }
        double *r = malloc((size_t)nout * sizeof(double));
        for (int64_t j = 0; j < nout; j++) r[j] = urand() - 0.5;
        int good = 1;
        for (int fused = 0; fused < 2; fused++) {
            mm_ctx *c = mm_ctx_new();
            mm_params_zero_grad(p);
            mm_tensor *q = in[0], *k = in[1], *v = in[2];
            if (views) {
                mm_tensor *x = mm_tensor_reshape(
                    c, in[0], 4, (int64_t[]){B, N, 3 * H, D});
                mm_tensor *hv[3];
                for (int i = 0; i < 3; i++)
                    hv[i] = mm_tensor_transpose(
                        c, mm_tensor_slice(c, x, 2, i * H, H), 1, 2);
                q = hv[0], k = hv[1], v = hv[2];
            }
            mm_tensor *y;
            if (fused) y = mm_tensor_attention(c, q, k, v, scale);
            else {
                y = mm_tensor_matmul(c, q, k, 0, 1);
                y = mm_tensor_softmax(c, mm_tensor_scale(c, y, scale));
                y = mm_tensor_matmul(c, y, v, 0, 0);
            }
            mm_tensor *rt = mm_tensor_new(c, MM_F32, 4,
                                          (int64_t[]){B, H, views ? N : M, DV});
            if (rt) mm_tensor_set_f64(rt, r, nout);
            mm_tensor *loss = mm_tensor_sum_all(c, mm_tensor_mul(c, y, rt));
            if (!loss || mm_tensor_backward(c, loss) ||
                mm_tensor_get_f64(y, res[fused][0], nout)) {
                good = 0;
                mm_ctx_free(c);
                break;
            }
            int64_t off = 0;
            for (int i = 0; i < np; i++) {
                mm_tensor *g = mm_tensor_grad(mm_params_get(p, i));
                int64_t n = mm_tensor_numel(g);
                mm_tensor_get_f64(g, res[fused][1] + off, n);
                off += n;
            }
            mm_ctx_free(c);
        }
        double rel[2] = {INFINITY, INFINITY};
        for (int w = 0; w < 2 && good; w++) {
            int64_t n = w ? ntot : nout;
            double mx = 0, md = 0;
            for (int64_t j = 0; j < n; j++) {
                mx = fmax(mx, fabs(res[0][w][j]));
                md = fmax(md, fabs(res[1][w][j] - res[0][w][j]));
            }
            rel[w] = mx > 0 ? md / mx : INFINITY;
        }
        ok(rel[0] < 1e-5 && rel[1] < 1e-5,
           "attention (%lld, %lld, %lld, %lld) x (%lld, %lld)%s vs unfused: "
           "output %.2e, gradients %.2e",
           (long long)B, (long long)H, (long long)M, (long long)N,
           (long long)D, (long long)DV, views ? " head views" : "", rel[0],
           rel[1]);
        for (int f = 0; f < 2; f++) {
            free(res[f][0]);
            free(res[f][1]);
        }
        free(r);
        mm_params_free(p);
    }
}

// ---- forward values ------------------------------------------------------------

static void test_forward(void)
{
    mm_ctx *c = mm_ctx_new();
    for (int d = 0; d < 2; d++) {
        mm_dtype dt = d ? MM_F64 : MM_F32;
        double tol = d ? 1e-12 : 1e-5;
        const char *dn = mm_dtype_name(dt);
        mm_tensor *a = from(c, dt, 2, (int64_t[]){2, 3},
                            (double[]){1, 2, 3, 4, 5, 6});
        mm_tensor *b = from(c, dt, 2, (int64_t[]){3, 2},
                            (double[]){1, 0, -1, 2, 0.5, 1});
        double mm[] = {0.5, 7, 2, 16};
        ok(maxdiff(mm_tensor_matmul(c, a, b, 0, 0), mm, 4) <= tol,
           "%s matmul", dn);
        double mmt[] = {1 * 1 + 4 * 0, 1 * -1 + 4 * 2, 1 * 0.5 + 4 * 1,
                        2 * 1 + 5 * 0, 2 * -1 + 5 * 2, 2 * 0.5 + 5 * 1,
                        3 * 1 + 6 * 0, 3 * -1 + 6 * 2, 3 * 0.5 + 6 * 1};
        ok(maxdiff(mm_tensor_matmul(c, a, b, 1, 1), mmt, 9) <= tol,
           "%s matmul A^T B^T", dn);
        mm_tensor *r = from(c, dt, 1, (int64_t[]){3}, (double[]){10, 20, 30});
        double ab[] = {11, 22, 33, 14, 25, 36};
        ok(maxdiff(mm_tensor_add(c, a, r), ab, 6) <= tol, "%s add broadcast",
           dn);
        double dv[] = {0.1, 0.1, 0.1, 0.4, 0.25, 0.2};
        ok(maxdiff(mm_tensor_div(c, a, r), dv, 6) <= tol, "%s div broadcast",
           dn);
        double s0[] = {5, 7, 9}, m1[] = {2, 5};
        ok(maxdiff(mm_tensor_sum(c, a, 0, 0), s0, 3) <= tol, "%s sum axis 0",
           dn);
        mm_tensor *mk = mm_tensor_mean(c, a, 1, 1);
        ok(maxdiff(mk, m1, 2) <= tol && mm_tensor_ndim(mk) == 2 &&
               mm_tensor_dim(mk, 1) == 1,
           "%s mean axis 1 keepdim", dn);
        mm_tensor *x = from(c, dt, 1, (int64_t[]){3}, (double[]){1, 2, 3});
        double e = exp(1) + exp(2) + exp(3);
        double sm[] = {exp(1) / e, exp(2) / e, exp(3) / e};
        double ls[] = {1 - log(e), 2 - log(e), 3 - log(e)};
        ok(maxdiff(mm_tensor_softmax(c, x), sm, 3) <= tol, "%s softmax", dn);
        ok(maxdiff(mm_tensor_log_softmax(c, x), ls, 3) <= tol,
           "%s log_softmax", dn);
        /* mean 2, var 2/3 */
        double rs = 1 / sqrt(2.0 / 3 + 1e-5);
        double ln[] = {-rs * 2 + 1, 0 * 3 + 1, rs * 4 + 1};
        mm_tensor *w = from(c, dt, 1, (int64_t[]){3}, (double[]){2, 3, 4});
        mm_tensor *bb = mm_tensor_new1(c, dt, 3);
        mm_tensor_fill(bb, 1);
        ok(maxdiff(mm_tensor_layernorm(c, x, w, bb, 1e-5), ln, 3) <= tol,
           "%s layernorm", dn);
        mm_tensor *g = from(c, dt, 1, (int64_t[]){3}, (double[]){-1, 0, 1});
        double gl[] = {-0.15865525393145705, 0, 0.8413447460685429};
        ok(maxdiff(mm_tensor_gelu(c, g), gl, 3) <= tol, "%s gelu (erf)", dn);
        double sg[] = {1 / (1 + exp(1)), 0.5, 1 / (1 + exp(-1))};
        ok(maxdiff(mm_tensor_sigmoid(c, g), sg, 3) <= tol, "%s sigmoid", dn);
        /* linear: x (1, 3) W (2, 3) b (2) */
        mm_tensor *W = from(c, dt, 2, (int64_t[]){2, 3},
                            (double[]){1, 1, 1, 0, 1, -1});
        mm_tensor *lb = from(c, dt, 1, (int64_t[]){2}, (double[]){0.5, -0.5});
        double li[] = {6.5, -1.5};
        ok(maxdiff(mm_tensor_linear(c, x, W, lb), li, 2) <= tol, "%s linear",
           dn);
        /* cross-entropy of logits [[1,2,3],[1,2,3]] labels [2, 0] */
        mm_tensor *lg = from(c, dt, 2, (int64_t[]){2, 3},
                             (double[]){1, 2, 3, 1, 2, 3});
        mm_tensor *lab = mm_tensor_new1(c, MM_I32, 2);
        mm_tensor_set_f64(lab, (double[]){2, 0}, 2);
        double ce = (-ls[2] - ls[0]) / 2;
        double ces = 0.9 * ce - 0.1 * (ls[0] + ls[1] + ls[2]) / 3;
        ok(maxdiff(mm_tensor_cross_entropy(c, lg, lab, 0), &ce, 1) <= tol,
           "%s cross_entropy", dn);
        ok(maxdiff(mm_tensor_cross_entropy(c, lg, lab, 0.1), &ces, 1) <= tol,
           "%s cross_entropy smoothing 0.1", dn);
        ok(mm_ctx_error(c) == NULL, "%s forward: no errors", dn);
    }
    /* errors are kept, first wins, NULL inputs pass through */
    mm_tensor *a = mm_tensor_new2(c, MM_F32, 2, 3);
    mm_tensor *b = mm_tensor_new2(c, MM_F32, 4, 3);
    ok(mm_tensor_add(c, a, b) == NULL, "add of (2,3) and (4,3) fails");
    like(mm_ctx_error(c), "do not broadcast", "message: %s", mm_ctx_error(c));
    ok(mm_tensor_exp(c, mm_tensor_matmul(c, a, b, 0, 0)) == NULL,
       "a failed op chains to NULL");
    like(mm_ctx_error(c), "do not broadcast", "first error wins");
    mm_tensor *lab = mm_tensor_new1(c, MM_I32, 2);
    mm_tensor_set_f64(lab, (double[]){0, 3}, 2);
    mm_ctx_reset(c);
    ok(mm_ctx_error(c) == NULL, "reset clears the error");
    a = mm_tensor_new2(c, MM_F32, 2, 3);
    lab = mm_tensor_new1(c, MM_I32, 2);
    mm_tensor_set_f64(lab, (double[]){0, 3}, 2);
    ok(mm_tensor_cross_entropy(c, a, lab, 0) == NULL, "label 3 of 3 fails");
    like(mm_ctx_error(c), "outside [0, 3)", "message: %s", mm_ctx_error(c));
    mm_ctx_reset(c);
    ok(mm_tensor_new2(c, MM_F32, 0, 3) == NULL, "size 0 refused");
    ok(mm_tensor_sum(c, mm_tensor_new1(c, MM_I32, 3), 0, 0) == NULL,
       "sum of i32 refused");
    mm_ctx_reset(c);
    /* f16 storage round trip */
    mm_tensor *h = from(c, MM_F16, 1, (int64_t[]){3},
                        (double[]){0.5, -2, 1.0009765625});
    mm_tensor *h32 = mm_tensor_cast(c, h, MM_F32);
    ok(maxdiff(h32, (double[]){0.5, -2, 1.0009765625}, 3) == 0,
       "f16 -> f32 cast exact");
    mm_ctx_free(c);
}

// ---- forward values of the issue-4 ops --------------------------------------

static void test_forward_more(void)
{
    mm_ctx *c = mm_ctx_new();
    for (int d = 0; d < 2; d++) {
        mm_dtype dt = d ? MM_F64 : MM_F32;
        double tol = d ? 1e-12 : 1e-5;
        const char *dn = mm_dtype_name(dt);
        mm_ctx_reset(c);
        mm_tensor *x = from(c, dt, 1, (int64_t[]){4},
                            (double[]){-1.5, 0, 0.5, 25});
        double ab[] = {1.5, 0, 0.5, 25}, cl[] = {-1, 0, 0.5, 1};
        double ng[] = {1.5, 0, -0.5, -25}, sq[] = {2.25, 0, 0.25, 625};
        double el[] = {2 * expm1(-1.5), 0, 0.5, 25};
        double si[] = {-1.5 / (1 + exp(1.5)), 0, 0.5 / (1 + exp(-0.5)),
                       25 / (1 + exp(-25))};
        double sp[] = {log1p(exp(-1.5)), log(2), log1p(exp(0.5)), 25};
        ok(maxdiff(mm_tensor_abs(c, x), ab, 4) <= tol, "%s abs", dn);
        ok(maxdiff(mm_tensor_clamp(c, x, -1, 1), cl, 4) <= tol, "%s clamp",
           dn);
        ok(maxdiff(mm_tensor_neg(c, x), ng, 4) <= tol, "%s neg", dn);
        ok(maxdiff(mm_tensor_square(c, x), sq, 4) <= tol * 625, "%s square",
           dn);
        ok(maxdiff(mm_tensor_elu(c, x, 2), el, 4) <= tol, "%s elu", dn);
        ok(maxdiff(mm_tensor_silu(c, x), si, 4) <= tol * 25, "%s silu", dn);
        ok(maxdiff(mm_tensor_softplus(c, x), sp, 4) <= tol * 25,
           "%s softplus (threshold 20)", dn);
        mm_tensor *px = from(c, dt, 1, (int64_t[]){2}, (double[]){4, 0.25});
        ok(maxdiff(mm_tensor_rsqrt(c, px), (double[]){0.5, 2}, 2) <= tol,
           "%s rsqrt", dn);

        /* max with a tie routes the gradient to the first argmax */
        mm_params *p = mm_params_new(dt);
        mm_tensor *m = mm_params_add(p, "m", 2, (int64_t[]){2, 3});
        mm_tensor *z = mm_params_add(p, "z", 1, (int64_t[]){3});
        if (mm_params_alloc(p)) {
            ok(0, "%s alloc", dn);
            mm_params_free(p);
            continue;
        }
        mm_tensor_set_f64(m, (double[]){1, 3, 3, 4, 0, -1}, 6);
        mm_tensor_set_f64(z, (double[]){2, 0, 3}, 3);
        mm_tensor *mx = mm_tensor_max(c, m, 1, 0);
        ok(maxdiff(mx, (double[]){3, 4}, 2) <= tol, "%s max axis 1", dn);
        mm_tensor *cp = mm_tensor_cumprod(c, z, 0);
        ok(maxdiff(mm_tensor_cumsum(c, z, 0), (double[]){2, 2, 5}, 3) <= tol,
           "%s cumsum", dn);
        ok(maxdiff(cp, (double[]){2, 0, 0}, 3) <= tol, "%s cumprod", dn);
        mm_tensor *l = mm_tensor_add(c, mm_tensor_sum_all(c, mx),
                                     mm_tensor_sum_all(c, cp));
        ok(mm_tensor_backward(c, l) == 0, "%s backward max + cumprod", dn);
        ok(maxdiff(mm_tensor_grad(m), (double[]){0, 1, 0, 1, 0, 0}, 6) == 0,
           "%s max: gradient to the first argmax", dn);
        /* d/dx of x0 + x0 x1 + x0 x1 x2 at (2, 0, 3): (1, 2 + 6, 0) */
        ok(maxdiff(mm_tensor_grad(z), (double[]){1, 8, 0}, 3) <= tol,
           "%s cumprod backward with a zero (no division)", dn);
        mm_params_free(p);

        mm_tensor *a = from(c, dt, 2, (int64_t[]){2, 3},
                            (double[]){1, 2, 3, 4, 5, 6});
        mm_tensor *b = from(c, dt, 2, (int64_t[]){2, 1}, (double[]){7, 8});
        ok(maxdiff(mm_tensor_concat(c, 2, (mm_tensor *[]){a, b}, 1),
                   (double[]){1, 2, 3, 7, 4, 5, 6, 8}, 8) == 0,
           "%s concat dim 1", dn);
        mm_tensor *ix = from(c, MM_I64, 1, (int64_t[]){3},
                             (double[]){2, 0, 2});
        ok(maxdiff(mm_tensor_index_select(c, a, 1, ix),
                   (double[]){3, 1, 3, 6, 4, 6}, 6) == 0,
           "%s index_select", dn);
        mm_tensor *gi = from(c, MM_I32, 2, (int64_t[]){2, 2},
                             (double[]){2, 2, 1, 0});
        ok(maxdiff(mm_tensor_gather(c, a, 1, gi), (double[]){3, 3, 5, 4}, 4)
               == 0,
           "%s gather (torch semantics)", dn);
        mm_tensor *rp = mm_tensor_repeat(c, b, 3, (int64_t[]){2, 1, 2});
        ok(rp && mm_tensor_ndim(rp) == 3 && mm_tensor_dim(rp, 2) == 2 &&
               maxdiff(rp, (double[]){7, 7, 8, 8, 7, 7, 8, 8}, 8) == 0,
           "%s repeat", dn);
        ok(maxdiff(mm_tensor_pad(c, b, 0, 2, 1), (double[]){0, 0, 7, 8, 0},
                   5) == 0,
           "%s pad front 2 back 1", dn);

        /* conv1d: w (1, 0, -1) gives x[i-1] - x[i+1] with zero padding */
        mm_tensor *s = from(c, dt, 3, (int64_t[]){1, 1, 5},
                            (double[]){1, 2, 3, 4, 5});
        mm_tensor *k1 = from(c, dt, 2, (int64_t[]){1, 3},
                             (double[]){1, 0, -1});
        ok(maxdiff(mm_tensor_conv1d_dw(c, s, k1),
                   (double[]){-2, -2, -2, -2, 4}, 5) <= tol,
           "%s conv1d_dw", dn);
        /* conv2d of ones by ones (3x3) + 0.5: neighbour counts + 0.5 */
        mm_tensor *o = mm_tensor_new(c, dt, 4, (int64_t[]){1, 1, 3, 3});
        mm_tensor *k2 = mm_tensor_new(c, dt, 3, (int64_t[]){1, 3, 3});
        mm_tensor *bs = from(c, dt, 1, (int64_t[]){1}, (double[]){0.5});
        mm_tensor_fill(o, 1);
        mm_tensor_fill(k2, 1);
        ok(maxdiff(mm_tensor_conv2d_dw(c, o, k2, bs),
                   (double[]){4.5, 6.5, 4.5, 6.5, 9.5, 6.5, 4.5, 6.5, 4.5},
                   9) <= tol,
           "%s conv2d_dw", dn);

        /* survival: zero logits, h = 1/2, S = (1/2, 1/4, ...). Sample 0
         * uncensored in bin 1: -(log S_pad[1] + log h) = 2 log 2; sample 1
         * censored in bin 1: -log S_pad[2] = 2 log 2, weight 1 - alpha */
        mm_tensor *lg = mm_tensor_new2(c, dt, 2, 4);
        mm_tensor *y = from(c, MM_I64, 1, (int64_t[]){2}, (double[]){1, 1});
        mm_tensor *cz = from(c, MM_U8, 1, (int64_t[]){2}, (double[]){0, 1});
        double sv = 1.6 * log(2);
        ok(maxdiff(mm_tensor_surv_nll(c, lg, y, cz, 0.4, 1e-7), &sv, 1) <=
               tol,
           "%s surv_nll alpha 0.4", dn);
        /* Cox: theta (0, log 2, 0), t (1, 2, 2), events (1, 1, 0):
         * -((0 - log 4) + (log 2 - log 3)) / 2 = log 6 / 2 */
        mm_tensor *th = from(c, dt, 1, (int64_t[]){3},
                             (double[]){0, log(2), 0});
        mm_tensor *tt = from(c, dt, 1, (int64_t[]){3}, (double[]){1, 2, 2});
        mm_tensor *ee = from(c, MM_I32, 1, (int64_t[]){3},
                             (double[]){1, 1, 0});
        double cx = log(6) / 2, cx3 = log(6) / 3;
        ok(maxdiff(mm_tensor_cox_nll(c, th, tt, ee, MM_COX_MEAN_EVENTS), &cx,
                   1) <= tol,
           "%s cox_nll (ties in the risk set)", dn);
        ok(maxdiff(mm_tensor_cox_nll(c, th, tt, ee, MM_COX_EVENTS_PLUS1),
                   &cx3, 1) <= tol,
           "%s cox_nll events + 1", dn);
        /* strict (POMP Eq. 15): t = 2 is the largest time, so event 1 is
         * skipped; event 0 has R = {1, 2}: -(0 - log 3) / 1 */
        double cs = log(3), cs1 = log(3) / 2, zero = 0;
        ok(maxdiff(mm_tensor_cox_nll_ex(c, th, tt, ee, MM_COX_MEAN_EVENTS,
                                        MM_COX_STRICT),
                   &cs, 1) <= tol,
           "%s cox_nll strict: event at the largest time skipped", dn);
        ok(maxdiff(mm_tensor_cox_nll_ex(c, th, tt, ee, MM_COX_EVENTS_PLUS1,
                                        MM_COX_STRICT),
                   &cs1, 1) <= tol,
           "%s cox_nll strict events + 1 counts only kept events", dn);
        ok(maxdiff(mm_tensor_cox_nll_ex(c, th, tt, ee, MM_COX_MEAN_EVENTS,
                                        MM_COX_INCLUSIVE),
                   &cx, 1) <= tol,
           "%s cox_nll_ex inclusive = cox_nll", dn);
        mm_tensor *e2 = from(c, MM_I32, 1, (int64_t[]){3},
                             (double[]){0, 1, 1});
        ok(maxdiff(mm_tensor_cox_nll_ex(c, th, tt, e2, MM_COX_MEAN_EVENTS,
                                        MM_COX_STRICT),
                   &zero, 1) <= tol,
           "%s cox_nll strict: only events at the largest time gives 0", dn);
        /* softmax over axis 0 of (3, 2) = softmax of the transpose */
        mm_tensor *s2 = from(c, dt, 2, (int64_t[]){3, 2},
                             (double[]){1, -1, 2, 0.5, 3, 4});
        mm_tensor *st = mm_tensor_transpose(c, s2, 0, 1);
        mm_tensor *w0 = mm_tensor_softmax_axis(c, s2, 0);
        mm_tensor *wt = mm_tensor_softmax(c, st);
        mm_tensor *l0 = mm_tensor_log_softmax_axis(c, s2, -2);
        mm_tensor *lt = mm_tensor_log_softmax(c, st);
        double md = 0, ml = 0;
        for (int i = 0; i < 3 && w0 && wt && l0 && lt; i++)
            for (int j = 0; j < 2; j++) {
                md = fmax(md, fabs(mm_tensor_get1(w0, i * 2 + j) -
                                   mm_tensor_get1(wt, j * 3 + i)));
                ml = fmax(ml, fabs(mm_tensor_get1(l0, i * 2 + j) -
                                   mm_tensor_get1(lt, j * 3 + i)));
            }
        ok(w0 && wt && l0 && lt && md == 0 && ml == 0,
           "%s softmax/log_softmax axis 0 = last axis of the transpose", dn);
        /* last axis: the axis forms give the plain forms' bits */
        mm_tensor *p1 = mm_tensor_softmax(c, s2);
        mm_tensor *p2 = mm_tensor_softmax_axis(c, s2, 1);
        mm_tensor *p3 = mm_tensor_softmax_axis(c, s2, -1);
        ok(p1 && p2 && p3 &&
               !memcmp(mm_tensor_data(p1), mm_tensor_data(p2),
                       6 * mm_dtype_size(dt)) &&
               !memcmp(mm_tensor_data(p1), mm_tensor_data(p3),
                       6 * mm_dtype_size(dt)),
           "%s softmax_axis(-1) and (ndim - 1) = softmax, bitwise", dn);
        ok(mm_ctx_error(c) == NULL, "%s issue-4 forward: no errors (%s)", dn,
           mm_ctx_error(c) ? mm_ctx_error(c) : "");
    }

    /* dropout: the mask is a function of (seed, index) only */
    mm_ctx_reset(c);
    enum { ND = 20000 };
    mm_tensor *x = mm_tensor_new1(c, MM_F64, ND);
    mm_tensor_fill(x, 2);
    mm_tensor *y1 = mm_tensor_dropout(c, x, 0.25, 99, 1);
    mm_tensor *y2 = mm_tensor_dropout(c, x, 0.25, 99, 1);
    mm_tensor *y3 = mm_tensor_dropout(c, x, 0.25, 100, 1);
    int kept = 0, vals = 1, same = 1, differ = 0;
    for (int i = 0; i < ND; i++) {
        double v = mm_tensor_get1(y1, i);
        kept += v != 0;
        vals &= v == 0 || fabs(v - 2 / 0.75) < 1e-15;
        vals &= (v != 0) == (mm_rand_u01(99, (uint64_t)i) >= 0.25);
        same &= v == mm_tensor_get1(y2, i);
        differ |= (v != 0) != (mm_tensor_get1(y3, i) != 0);
    }
    ok(vals && fabs(kept / (double)ND - 0.75) < 0.02,
       "dropout: kept %.4f, kept values scaled by 1/(1-p)", kept / (double)ND);
    ok(same && differ, "dropout: same seed same mask, new seed new mask");
    ok(mm_tensor_dropout(c, x, 0.25, 99, 0) == x &&
           mm_tensor_dropout(c, x, 0, 99, 1) == x &&
           mm_tensor_alpha_dropout(c, x, 0.5, 1, 0) == x,
       "dropout: identity in eval or with p = 0");
    ok(maxdiff(mm_tensor_dropout(c, mm_tensor_new1(c, MM_F32, 3), 1, 5, 1),
               (double[]){0, 0, 0}, 3) == 0,
       "dropout: p = 1 gives zeros");
    /* alpha dropout of N(0,1)-ish data keeps mean 0 and variance 1 */
    mm_tensor *n = mm_tensor_new1(c, MM_F64, ND);
    rng_state = 5;
    for (int i = 0; i < ND; i++) {
        double u1 = urand() + 1e-300, u2 = urand();
        ((double *)mm_tensor_data(n))[i] =
            sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2);
    }
    mm_tensor *ad = mm_tensor_alpha_dropout(c, n, 0.2, 3, 1);
    double mu = 0, var = 0;
    for (int i = 0; i < ND; i++) mu += mm_tensor_get1(ad, i) / ND;
    for (int i = 0; i < ND; i++)
        var += pow(mm_tensor_get1(ad, i) - mu, 2) / ND;
    ok(fabs(mu) < 0.05 && fabs(var - 1) < 0.1,
       "alpha_dropout: mean %.3f, variance %.3f of N(0,1) input", mu, var);

    /* errors */
    mm_tensor *a = mm_tensor_new2(c, MM_F32, 2, 3);
    mm_tensor *bad = from(c, MM_I64, 1, (int64_t[]){2}, (double[]){0, 3});
    ok(mm_tensor_index_select(c, a, 1, bad) == NULL, "index 3 of 3 fails");
    like(mm_ctx_error(c), "outside [0, 3)", "message: %s",
         mm_ctx_error(c));
    mm_ctx_reset(c);
    a = mm_tensor_new2(c, MM_F32, 2, 3);
    ok(mm_tensor_gather(c, a, 0, mm_tensor_new1(c, MM_I64, 2)) == NULL,
       "gather with an index of another rank fails");
    mm_ctx_reset(c);
    a = mm_tensor_new2(c, MM_F32, 2, 3);
    ok(mm_tensor_clamp(c, a, 1, 0) == NULL, "clamp lo > hi fails");
    mm_ctx_reset(c);
    a = mm_tensor_new2(c, MM_F32, 2, 3);
    ok(mm_tensor_softmax_axis(c, a, 2) == NULL &&
           mm_tensor_log_softmax_axis(c, a, -3) == NULL,
       "softmax axis 2 / -3 of a 2-D tensor fails");
    like(mm_ctx_error(c), "axis 2 of a 2-D", "message: %s", mm_ctx_error(c));
    mm_ctx_reset(c);
    a = mm_tensor_new3(c, MM_F32, 1, 2, 5);
    ok(mm_tensor_conv1d_dw(c, a, mm_tensor_new2(c, MM_F32, 2, 4)) == NULL,
       "conv1d_dw with an even kernel fails");
    mm_ctx_reset(c);
    a = mm_tensor_new2(c, MM_F32, 2, 3);
    ok(mm_tensor_concat(c, 2, (mm_tensor *[]){a, mm_tensor_new2(c, MM_F64,
                                                                 2, 3)},
                        0) == NULL,
       "concat of f32 and f64 fails");
    mm_ctx_free(c);
}

// ---- views ------------------------------------------------------------------------

/* f32 GELU and its gradient (an AVX-512 kernel where the CPU has it, with
 * its own erf) against the f64 ones (libm erf) over [-12, 12]: within
 * 4e-7 max(1, |x|), about 2 f32 ulps of the output's scale. */
static void test_gelu_f32(void)
{
    enum { N = 20001 };
    static double v[N], y32[N], y64[N], g32[N], g64[N];
    for (int i = 0; i < N; i++) v[i] = (float)(-12 + 24.0 * i / (N - 1));
    double err[2] = {INFINITY, INFINITY};
    mm_params *p[2];
    mm_tensor *x[2];
    for (int k = 0; k < 2; k++) {
        p[k] = mm_params_new(k ? MM_F64 : MM_F32);
        x[k] = mm_params_add(p[k], "x", 1, (int64_t[]){N});
    }
    mm_ctx *c = mm_ctx_new();
    if (mm_params_alloc(p[0]) == 0 && mm_params_alloc(p[1]) == 0) {
        int good = 1;
        for (int k = 0; k < 2 && good; k++) {
            mm_ctx_reset(c);
            mm_tensor_set_f64(x[k], v, N);
            mm_tensor *y = mm_tensor_gelu(c, x[k]);
            good = y && mm_tensor_get_f64(y, k ? y64 : y32, N) == 0 &&
                   mm_tensor_backward(c, mm_tensor_sum_all(c, y)) == 0 &&
                   mm_tensor_get_f64(mm_tensor_grad(x[k]), k ? g64 : g32, N) == 0;
        }
        for (int i = 0; i < N && good; i++) {
            double s = fmax(1, fabs(v[i]));
            if (i == 0) err[0] = err[1] = 0;
            err[0] = fmax(err[0], fabs(y32[i] - y64[i]) / s);
            err[1] = fmax(err[1], fabs(g32[i] - g64[i]) / s);
        }
    }
    ok(err[0] < 4e-7 && err[1] < 4e-7,
       "gelu f32 vs f64 on [-12, 12]: value %.2e, gradient %.2e (/ max(1, |x|))",
       err[0], err[1]);
    mm_ctx_free(c);
    mm_params_free(p[0]);
    mm_params_free(p[1]);
}

static void test_views(void)
{
    mm_ctx *c = mm_ctx_new();
    double v[24];
    for (int i = 0; i < 24; i++) v[i] = i;
    mm_tensor *a = from(c, MM_F32, 3, (int64_t[]){2, 3, 4}, v);
    float *ad = mm_tensor_data(a);
    mm_tensor *t = mm_tensor_transpose(c, a, 0, 2); /* (4, 3, 2) */
    ok(mm_tensor_data(t) == (void *)ad && !mm_tensor_is_contiguous(t),
       "transpose is a strided view of the same storage");
    ok(mm_tensor_dim(t, 0) == 4 && mm_tensor_dim(t, 2) == 2 &&
           mm_tensor_get1(t, 1) == 12 && mm_tensor_get1(t, 2) == 4,
       "transpose shape and order");
    mm_tensor *s = mm_tensor_slice(c, a, 1, 1, 2); /* (2, 2, 4) */
    ok((float *)mm_tensor_data(s) == ad + 4 && mm_tensor_get1(s, 8) == 16,
       "slice points into the base");
    mm_tensor *r = mm_tensor_reshape(c, a, 2, (int64_t[]){-1, 6});
    ok(mm_tensor_data(r) == (void *)ad && mm_tensor_dim(r, 0) == 4,
       "reshape of a contiguous tensor shares storage");
    ad[5] = 100;
    ok(mm_tensor_get1(r, 5) == 100 && mm_tensor_get1(s, 1) == 100,
       "writes to the base show through the views");
    mm_tensor *rt = mm_tensor_reshape(c, t, 1, (int64_t[]){24});
    ok(mm_tensor_data(rt) != (void *)ad && mm_tensor_get1(rt, 1) == 12,
       "reshape of a transpose copies, in logical order");
    ok(mm_tensor_contiguous(c, a) == a, "contiguous of contiguous is itself");
    ok(mm_tensor_slice(c, a, 2, 3, 2) == NULL, "slice past the end fails");
    mm_ctx_reset(c); /* clears that error */

    /* big transposes take the tiled copy and gradient add: (2, 45, 70)
     * transposed to (2, 70, 45), sizes across tile edges, in f32 and f64;
     * every element checked against its index, and the gradient of
     * sum(w * contiguous(transpose(x))) is w transposed back */
    for (int k = 0; k < 2; k++) {
        mm_dtype dt = k ? MM_F64 : MM_F32;
        const int64_t B = 2, R = 45, C = 70;
        mm_tensor *x = mm_tensor_new(c, dt, 3, (int64_t[]){B, R, C});
        mm_tensor *w = mm_tensor_new(c, dt, 3, (int64_t[]){B, C, R});
        double xv[2 * 45 * 70], wv[2 * 45 * 70];
        for (int64_t i = 0; i < B * R * C; i++) {
            xv[i] = (double)i;
            wv[i] = (double)(3 * i % 101);
        }
        mm_tensor_set_f64(x, xv, B * R * C);
        mm_tensor_set_f64(w, wv, B * R * C);
        mm_tensor_set_requires_grad(x, 1);
        mm_tensor *y = mm_tensor_contiguous(c, mm_tensor_transpose(c, x, 1, 2));
        int bad = !y;
        for (int64_t b = 0; !bad && b < B; b++)
            for (int64_t j = 0; j < C; j++)
                for (int64_t i = 0; i < R; i++)
                    if (mm_tensor_get1(y, (b * C + j) * R + i) != (double)((b * R + i) * C + j))
                        bad++;
        ok(!bad, "%s tiled transpose copy of (2, 45, 70), every element", k ? "f64" : "f32");
        mm_tensor *gx = NULL;
        if (!mm_tensor_backward(c, mm_tensor_sum_all(c, mm_tensor_mul(c, y, w))))
            gx = mm_tensor_grad(x);
        bad = !gx;
        for (int64_t b = 0; !bad && b < B; b++)
            for (int64_t i = 0; i < R; i++)
                for (int64_t j = 0; j < C; j++)
                    if (mm_tensor_get1(gx, (b * R + i) * C + j) !=
                        (double)(3 * ((b * C + j) * R + i) % 101))
                        bad++;
        ok(!bad, "%s tiled transpose gradient add, every element", k ? "f64" : "f32");
    }
    mm_ctx_free(c);
}

// ---- a tiny model: arena reuse and determinism -------------------------------------

/* x (B, D) -> linear (H, D) -> gelu -> layernorm -> linear (C, H) -> CE */
enum { MB = 128, MD = 256, MH = 512, MC = 7 };

static mm_params *mlp_params(mm_dtype dt)
{
    mm_params *p = mm_params_new(dt);
    mm_params_add(p, "fc1.weight", 2, (int64_t[]){MH, MD}); /* (H, D) */
    mm_params_add(p, "fc1.bias", 1, (int64_t[]){MH});
    mm_params_add(p, "ln.weight", 1, (int64_t[]){MH});
    mm_params_add(p, "ln.bias", 1, (int64_t[]){MH});
    mm_params_add(p, "fc2.weight", 2, (int64_t[]){MC, MH}); /* (C, H) */
    if (mm_params_alloc(p)) return NULL;
    rng_state = 42;
    for (int i = 0; i < mm_params_count(p); i++) {
        mm_tensor *t = mm_params_get(p, i);
        for (int64_t k = 0; k < mm_tensor_numel(t); k++)
            ((float *)mm_tensor_data(t))[k] = (float)(urand() - 0.5);
    }
    return p;
}

static double mlp_step(mm_ctx *c, mm_params *p, int step)
{
    mm_ctx_reset(c);
    mm_tensor *x = mm_tensor_new2(c, MM_F32, MB, MD);
    mm_tensor *y = mm_tensor_new1(c, MM_I32, MB);
    rng_state = 1000 + (uint64_t)step;
    for (int64_t i = 0; i < MB * MD; i++)
        ((float *)mm_tensor_data(x))[i] = (float)(2 * urand() - 1);
    for (int64_t i = 0; i < MB; i++)
        ((int32_t *)mm_tensor_data(y))[i] = (int32_t)(urand() * MC);
    mm_tensor *h = mm_tensor_linear(c, x, mm_params_find(p, "fc1.weight"),
                                    mm_params_find(p, "fc1.bias"));
    h = mm_tensor_layernorm(c, mm_tensor_gelu(c, h),
                            mm_params_find(p, "ln.weight"),
                            mm_params_find(p, "ln.bias"), 1e-5);
    mm_tensor *lg = mm_tensor_linear(c, h, mm_params_find(p, "fc2.weight"),
                                     NULL);
    mm_tensor *loss = mm_tensor_cross_entropy(c, lg, y, 0.1);
    mm_params_zero_grad(p);
    if (mm_tensor_backward(c, loss)) return NAN;
    mm_adam_opts o = mm_adamw_defaults();
    if (mm_adamw_step(p, &o)) return NAN;
    return mm_tensor_get1(loss, 0);
}

static void test_arena_and_determinism(void)
{
    mm_ctx *c = mm_ctx_new();
    mm_params *p = mlp_params(MM_F32);
    mm_arena_stats st[6];
    double loss[6];
    for (int s = 0; s < 6; s++) {
        loss[s] = mlp_step(c, p, s);
        mm_ctx_stats(c, &st[s]);
    }
    int flat = 1;
    for (int s = 2; s < 6; s++)
        flat &= st[s].high_water == st[1].high_water &&
                st[s].n_blocks == st[1].n_blocks &&
                st[s].capacity == st[1].capacity;
    ok(st[0].n_blocks > 1, "arena: step 1 grew to %zu blocks",
       st[0].n_blocks);
    ok(flat && isfinite(loss[5]),
       "arena: high water %zu B, %zu blocks, capacity %zu B from step 2 on",
       st[1].high_water, st[1].n_blocks, st[1].capacity);
    diag("losses %.6f %.6f ... %.6f", loss[0], loss[1], loss[5]);
    ok(st[5].used == st[0].used, "each step uses the same %zu bytes",
       st[5].used);

    /* a second run from the same seed gives the same bits */
    mm_ctx *c2 = mm_ctx_new();
    mm_params *p2 = mlp_params(MM_F32);
    double loss2[6];
    for (int s = 0; s < 6; s++) loss2[s] = mlp_step(c2, p2, s);
    int same = memcmp(loss, loss2, sizeof loss) == 0;
    for (int i = 0; i < mm_params_n_named(p); i++) {
        const char *n1, *n2;
        mm_tensor *t1 = mm_params_named(p, i, &n1);
        mm_tensor *t2 = mm_params_named(p2, i, &n2);
        same &= strcmp(n1, n2) == 0 &&
                memcmp(mm_tensor_data(t1), mm_tensor_data(t2),
                       (size_t)mm_tensor_numel(t1) * sizeof(float)) == 0;
    }
    ok(same, "determinism: two runs give bitwise equal losses, parameters, "
             "grads and Adam state");

    /* parameter block: named tensors, one allocation, in order */
    const char *nm;
    mm_tensor *t = mm_params_named(p, 1, &nm);
    is_str(nm, "fc1.weight.grad", "named tensor 1 is fc1.weight.grad");
    ok(t == mm_tensor_grad(mm_params_find(p, "fc1.weight")),
       "it is the parameter's gradient");
    ok(mm_params_numel(p) == MH * MD + 3 * MH + MC * MH, "parameter count");
    ok((char *)mm_tensor_data(mm_params_get(p, 1)) >
           (char *)mm_tensor_data(mm_params_get(p, 0)),
       "parameters are carved from one block in order");
    ok(mm_params_step(p) == 6, "six optimizer steps counted");
    ok(mm_params_add(p, "late", 1, (int64_t[]){2}) == NULL,
       "no parameter added after alloc");

    /* no-grad mode records nothing */
    mm_ctx_reset(c);
    mm_ctx_no_grad(c, 1);
    mm_tensor *x = mm_tensor_new2(c, MM_F32, 2, MD);
    mm_tensor *o = mm_tensor_linear(c, x, mm_params_find(p, "fc1.weight"),
                                    NULL);
    ok(o && !mm_tensor_requires_grad(o), "no-grad: output needs no grad");
    ok(mm_tensor_backward(c, mm_tensor_sum_all(c, o)) == -1,
       "no-grad: backward refuses");
    mm_ctx_no_grad(c, 0);
    mm_ctx_free(c);
    mm_ctx_free(c2);
    mm_params_free(p);
    mm_params_free(p2);
}

// ---- optimizers --------------------------------------------------------------------

static void test_adam(void)
{
    for (int w = 0; w < 2; w++) {
        mm_params *p = mm_params_new(MM_F64);
        mm_tensor *t = mm_params_add(p, "w", 1, (int64_t[]){2});
        if (mm_params_alloc(p)) break;
        mm_tensor_set_f64(t, (double[]){1.0, -2.0}, 2);
        mm_tensor_set_f64(mm_tensor_grad(t), (double[]){0.5, -0.1}, 2);
        mm_adam_opts o = {0.1, 0.9, 0.999, 1e-8, 0.01};
        double want[2];
        if (!w) {
            /* Adam: g' = g + wd w = (0.51, -0.12); m = 0.1 g'; v = 1e-3
             * g'^2; step = lr / (1 - 0.9) = 1; denom = |g'| + eps */
            mm_adam_step(p, &o);
            want[0] = 1.0 - 0.1 * 0.51 / (0.51 + 1e-8);
            want[1] = -2.0 + 0.1 * 0.12 / (0.12 + 1e-8);
        } else {
            /* AdamW: w *= 1 - lr wd = 0.999; then the plain Adam update */
            mm_adamw_step(p, &o);
            want[0] = 0.999 - 0.1 * 0.5 / (0.5 + 1e-8);
            want[1] = -2.0 * 0.999 + 0.1 * 0.1 / (0.1 + 1e-8);
        }
        double d = maxdiff(t, want, 2);
        ok(d < 1e-15, "%s one step: max diff %.1e", w ? "AdamW" : "Adam", d);
        const char *nm;
        mm_tensor *m = mm_params_named(p, 2, &nm);
        double m0 = 0.1 * (w ? 0.5 : 0.51);
        is_str(nm, "w.exp_avg", "state name %s", nm);
        is_close(mm_tensor_get1(m, 0), m0, 1e-15, "exp_avg after one step");
        mm_params_free(p);
    }
}

#ifdef _OPENMP
/* HEAD's NHEAD bytes, then every f32 parameter gradient of P, in one
 * malloc'd buffer of *N bytes: what the thread-count tests compare. */
static unsigned char *grad_bytes(mm_params *p, const void *head, size_t nhead, size_t *n)
{
    *n = nhead + (size_t)mm_params_numel(p) * sizeof(float);
    unsigned char *b = malloc(*n);
    if (nhead) memcpy(b, head, nhead);
    size_t off = nhead;
    for (int i = 0; i < mm_params_count(p); i++) {
        mm_tensor *g = mm_tensor_grad(mm_params_get(p, i));
        size_t k = (size_t)mm_tensor_numel(g) * sizeof(float);
        memcpy(b + off, mm_tensor_data(g), k);
        off += k;
    }
    return b;
}
#endif

/* The issue-4 kernels give the same bits for any thread count: every
 * output and gradient element is summed in one thread in a fixed order. */
static void test_thread_independence(void)
{
#ifdef _OPENMP
    double sums[2][4];
    unsigned char *bits[2] = {NULL, NULL};
    size_t nbits = 0;
    for (int run = 0; run < 2; run++) {
        int old = omp_get_max_threads();
        omp_set_num_threads(run ? 4 : 1);
        mm_params *p = mm_params_new(MM_F32);
        mm_tensor *v = mm_params_add(p, "v", 4, (int64_t[]){1, 4, 301, 16});
        mm_tensor *w = mm_params_add(p, "w", 2, (int64_t[]){4, 33});
        mm_tensor *k = mm_params_add(p, "k", 3, (int64_t[]){16, 7, 7});
        mm_tensor *b = mm_params_add(p, "b", 1, (int64_t[]){16});
        if (mm_params_alloc(p)) break;
        rng_state = 77;
        for (int i = 0; i < mm_params_count(p); i++) {
            mm_tensor *t = mm_params_get(p, i);
            for (int64_t j = 0; j < mm_tensor_numel(t); j++)
                ((float *)mm_tensor_data(t))[j] = (float)(urand() - 0.5);
        }
        mm_ctx *c = mm_ctx_new();
        mm_tensor *y = mm_tensor_conv1d_dw(c, v, w); /* (1, 4, 301, 16) */
        y = mm_tensor_dropout(c, y, 0.1, 5, 1);
        mm_tensor *im = mm_tensor_reshape(c, mm_tensor_pad(c, y, 2, 3, 0),
                                          4, (int64_t[]){1, 16, 32, 38});
        mm_tensor *z = mm_tensor_conv2d_dw(c, im, k, b);
        mm_tensor *cp = mm_tensor_cumprod(c, mm_tensor_sigmoid(c, z), 3);
        mm_tensor *mx = mm_tensor_max(c, mm_tensor_softmax_axis(c, cp, 1), 2,
                                      0);
        mm_tensor *loss = mm_tensor_sum_all(c, mx);
        if (mm_tensor_backward(c, loss)) break;
        for (int i = 0; i < 4; i++)
            sums[run][i] = mm_tensor_get1(mm_tensor_grad(mm_params_get(p, i)),
                                          3);
        bits[run] = grad_bytes(p, NULL, 0, &nbits);
        mm_ctx_free(c);
        mm_params_free(p);
        omp_set_num_threads(old);
    }
    ok(bits[0] && bits[1] && memcmp(bits[0], bits[1], nbits) == 0 &&
           memcmp(sums[0], sums[1], sizeof sums[0]) == 0,
       "conv1d/dropout/pad/conv2d/cumprod/softmax axis 1/max gradients: "
       "1 and 4 threads give the same bits");
    free(bits[0]);
    free(bits[1]);
#else
    ok(1, "# SKIP no OpenMP");
#endif
}

/* The fused attention, forward and backward, gives the same bits on 1 and
 * 4 threads when the batch (6 heads) has at least as many items. */
static void test_attention_threads(void)
{
#ifdef _OPENMP
    unsigned char *bits[2] = {NULL, NULL};
    size_t nbits = 0;
    for (int run = 0; run < 2; run++) {
        int old = omp_get_max_threads();
        omp_set_num_threads(run ? 4 : 1);
        mm_params *p = mm_params_new(MM_F32);
        mm_params_add(p, "q", 4, (int64_t[]){1, 6, 200, 16});
        mm_params_add(p, "k", 4, (int64_t[]){1, 6, 5000, 16});
        mm_params_add(p, "v", 4, (int64_t[]){1, 6, 5000, 8});
        if (mm_params_alloc(p)) break;
        rng_state = 99;
        for (int i = 0; i < mm_params_count(p); i++) {
            mm_tensor *t = mm_params_get(p, i);
            for (int64_t j = 0; j < mm_tensor_numel(t); j++)
                ((float *)mm_tensor_data(t))[j] = (float)(4 * urand() - 2);
        }
        mm_ctx *c = mm_ctx_new();
        mm_tensor *y = mm_tensor_attention(c, mm_params_get(p, 0),
                                           mm_params_get(p, 1),
                                           mm_params_get(p, 2), 0.25);
        mm_tensor *loss = mm_tensor_sum_all(c, mm_tensor_square(c, y));
        if (!loss || mm_tensor_backward(c, loss)) {
            mm_ctx_free(c);
            mm_params_free(p);
            omp_set_num_threads(old);
            break;
        }
        bits[run] = grad_bytes(p, mm_tensor_data(y),
                               (size_t)mm_tensor_numel(y) * sizeof(float), &nbits);
        mm_ctx_free(c);
        mm_params_free(p);
        omp_set_num_threads(old);
    }
    ok(bits[0] && bits[1] && memcmp(bits[0], bits[1], nbits) == 0,
       "attention (6 heads, 200 x 5000): 1 and 4 threads give the same "
       "output and gradient bits");
    free(bits[0]);
    free(bits[1]);
#else
    ok(1, "# SKIP no OpenMP");
#endif
}

int main(void)
{
    test_forward();
    test_forward_more();
    test_views();
    test_gelu_f32();
    test_gradients();
    test_attention_vs_unfused();
    test_arena_and_determinism();
    test_adam();
    test_thread_independence();
    test_attention_threads();
    return done_testing();
}
