/* t-tensor.c: the tensor library: forward values against hand-computed
 * ones, every op's backward against central finite differences in f64,
 * views, the arena's reuse, determinism, Adam/AdamW against torch's update.
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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
    mm_tensor *r = from(ctx, MM_F64, mm_tensor_ndim(out), sh, rweights);
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
    mm_ctx_free(ctx);
    mm_params_free(p);
}

// builders: UD points at an int[] of op arguments

static mm_tensor *b_matmul(mm_ctx *c, mm_tensor **in, const void *ud)
{
    const int *a = ud;
    return mm_tensor_matmul(c, in[0], in[1], a[0], a[1]);
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
    }
    gradcheck("matmul 4-D", 2, (shape[]){S4(2, 2, 3, 4), S4(2, 2, 4, 2)}, 0,
              b_matmul, tr[0]);

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

// ---- views ------------------------------------------------------------------------

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

int main(void)
{
    test_forward();
    test_views();
    test_gradients();
    test_arena_and_determinism();
    test_adam();
    return done_testing();
}
