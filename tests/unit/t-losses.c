/* t-losses.c: the losses of mm/tensor.h and the inference ops of the
 * ResNet-50 trunk against PyTorch 1.13 (fixtures from tests/gen/
 * loss_refs.py, tests/fixtures/losses/): cross-entropy (label smoothing 0
 * and 0.1), PORPOISE's discrete-time survival NLL (alpha 0 and 0.4, a case
 * where both eps clamps bind), the Cox partial likelihood (Breslow, ties,
 * three divisors; the strict risk set of POMP Eq. 15 with an event at the
 * largest time skipped, two divisors), each value and d loss / d input;
 * dense conv2d (7x7 s2 p3, 3x3 s2, 1x1, 3x5 with stride (2, 1)), conv +
 * BatchNorm folded, max_pool2d 3 s2 p1, adaptive_avg_pool2d(1). Every input is exact in f32,
 * torch ran in f64. A tensor passes when max |ours - torch| / max |torch|
 * is within 1e-12 (F64) or 1e-5 (F32); the differences are printed.
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../tap.h"
#include "mm/safetensors.h"
#include "mm/tensor.h"

static double worst[2]; /* largest /scale difference per dtype: f64, f32 */

/* Tensor NAME of the fixture as a new tensor of DT in CTX, or NULL. */
static mm_tensor *get(mm_ctx *ctx, mm_st *st, const char *name, mm_dtype dt)
{
    int nd;
    int64_t sh[MM_ST_MAX_DIM];
    if (mm_st_info(st, name, NULL, &nd, sh)) {
        diag("%s", mm_st_error(st));
        return NULL;
    }
    mm_tensor *t = mm_tensor_new(ctx, dt, nd, sh);
    if (t && mm_st_read(st, name, dt, nd, sh, mm_tensor_data(t))) {
        diag("%s", mm_st_error(st));
        return NULL;
    }
    return t;
}

static mm_tensor *getf(mm_ctx *ctx, mm_st *st, mm_dtype dt, const char *fmt,
                       const char *name)
{
    char full[128];
    snprintf(full, sizeof full, fmt, name);
    return get(ctx, st, full, dt);
}

/* Compare T with reference NAME.WHAT: max |diff| / max |ref| <= TOL. */
static int check(mm_st *st, mm_dtype dt, const char *name, const char *what,
                 mm_tensor *t)
{
    const char *ds = dt == MM_F64 ? "f64" : "f32";
    double tol = dt == MM_F64 ? 1e-12 : 1e-5;
    char full[128];
    snprintf(full, sizeof full, "%s.%s", name, what);
    mm_ctx *c = mm_ctx_new();
    mm_tensor *ref = get(c, st, full, MM_F64);
    int64_t n = ref ? mm_tensor_numel(ref) : 0;
    if (!ref || !t || mm_tensor_numel(t) != n) {
        mm_ctx_free(c);
        return ok(0, "%s %s: %s", ds, full,
                  !ref ? "no reference" : "missing or wrong size");
    }
    int same = mm_tensor_ndim(t) == mm_tensor_ndim(ref);
    for (int i = 0; same && i < mm_tensor_ndim(t); i++)
        same = mm_tensor_dim(t, i) == mm_tensor_dim(ref, i);
    double scale = 0, dmax = 0, rmax = 0;
    for (int64_t i = 0; i < n; i++) {
        double r = mm_tensor_get1(ref, i), d = fabs(mm_tensor_get1(t, i) - r);
        if (fabs(r) > scale) scale = fabs(r);
        if (!(d <= dmax)) dmax = d;
        if (r != 0 && !(d / fabs(r) <= rmax)) rmax = d / fabs(r);
    }
    mm_ctx_free(c);
    double err = scale > 0 ? dmax / scale : dmax;
    double *w = &worst[dt == MM_F64 ? 0 : 1];
    if (!(err <= *w)) *w = err;
    return ok(same && err <= tol, "%s %-14s max abs %.2e, max rel %.2e, "
              "/scale %.2e (tol %.0e)%s", ds, full, dmax, rmax, err, tol,
              same ? "" : " SHAPE DIFFERS");
}

// ---- losses ----------------------------------------------------------------

enum { L_CE, L_SURV, L_COX, L_COX_STRICT };
static const struct {
    const char *name;
    int kind;
    double p; /* smoothing, alpha, or the Cox divisor */
} losses[] = {
    {"ce0", L_CE, 0},          {"ce1", L_CE, 0.1},
    {"surv0", L_SURV, 0},      {"surv4", L_SURV, 0.4},
    {"survclamp", L_SURV, 0.4},
    {"coxev", L_COX, MM_COX_MEAN_EVENTS},
    {"coxall", L_COX, MM_COX_MEAN_ALL},
    {"coxev1", L_COX, MM_COX_EVENTS_PLUS1},
    /* strict risk set (POMP Eq. 15), an event at the largest time skipped */
    {"coxsev", L_COX_STRICT, MM_COX_MEAN_EVENTS},
    {"coxsall", L_COX_STRICT, MM_COX_MEAN_ALL},
};

static void run_losses(mm_st *st, mm_dtype dt)
{
    for (size_t k = 0; k < sizeof losses / sizeof *losses; k++) {
        const char *nm = losses[k].name;
        mm_ctx *ctx = mm_ctx_new();
        mm_tensor *x = getf(ctx, st, dt, "%s.x", nm), *loss = NULL;
        if (x) mm_tensor_set_requires_grad(x, 1);
        switch (losses[k].kind) {
        case L_CE:
            loss = mm_tensor_cross_entropy(
                ctx, x, getf(ctx, st, MM_I64, "%s.labels", nm), losses[k].p);
            break;
        case L_SURV:
            loss = mm_tensor_surv_nll(
                ctx, x, getf(ctx, st, MM_I64, "%s.labels", nm),
                getf(ctx, st, MM_F64, "%s.c", nm), losses[k].p, 1e-7);
            break;
        default:
            loss = mm_tensor_cox_nll_ex(
                ctx, x, getf(ctx, st, MM_F64, "%s.time", nm),
                getf(ctx, st, MM_F64, "%s.event", nm),
                (mm_cox_norm)losses[k].p,
                losses[k].kind == L_COX_STRICT ? MM_COX_STRICT
                                               : MM_COX_INCLUSIVE);
        }
        if (!loss) diag("%s: %s", nm, mm_ctx_error(ctx));
        check(st, dt, nm, "loss", loss);
        if (loss && mm_tensor_backward(ctx, loss))
            diag("%s backward: %s", nm, mm_ctx_error(ctx));
        check(st, dt, nm, "grad", x ? mm_tensor_grad(x) : NULL);
        mm_ctx_free(ctx);
    }
}

// ---- inference ops ---------------------------------------------------------

static const struct {
    const char *name;
    int bias, sh, sw, ph, pw;
} convs[] = {
    {"convA", 1, 2, 2, 3, 3}, {"convB", 0, 2, 2, 1, 1},
    {"convC", 0, 1, 1, 0, 0}, {"convD", 1, 2, 1, 1, 2},
};

static void run_ops(mm_st *st, mm_dtype dt)
{
    mm_ctx *ctx = mm_ctx_new();
    for (size_t k = 0; k < sizeof convs / sizeof *convs; k++) {
        const char *nm = convs[k].name;
        mm_tensor *y = mm_tensor_conv2d(
            ctx, getf(ctx, st, dt, "%s.x", nm), getf(ctx, st, dt, "%s.w", nm),
            convs[k].bias ? getf(ctx, st, dt, "%s.b", nm) : NULL, convs[k].sh,
            convs[k].sw, convs[k].ph, convs[k].pw);
        if (!y) diag("%s: %s", nm, mm_ctx_error(ctx));
        check(st, dt, nm, "y", y);
    }

    /* conv + eval BatchNorm, folded */
    mm_tensor *w = get(ctx, st, "bn.w", dt), *b = get(ctx, st, "bn.b", dt);
    int rc = mm_tensor_bn_fold(w, b, get(ctx, st, "bn.mean", MM_F64),
                               get(ctx, st, "bn.var", MM_F64),
                               get(ctx, st, "bn.gamma", dt),
                               get(ctx, st, "bn.beta", dt), 1e-5);
    if (!ok(rc == 0, "%s bn_fold", dt == MM_F64 ? "f64" : "f32"))
        diag("%s", mm_strerror());
    check(st, dt, "bn", "wf", w);
    check(st, dt, "bn", "bf", b);
    check(st, dt, "bn", "y",
          mm_tensor_conv2d(ctx, get(ctx, st, "bn.x", dt), w, b, 2, 2, 1, 1));

    check(st, dt, "pool", "y",
          mm_tensor_max_pool2d(ctx, get(ctx, st, "pool.x", dt), 3, 2, 1));
    check(st, dt, "avg", "y",
          mm_tensor_global_avg_pool2d(ctx, get(ctx, st, "avg.x", dt)));
    if (mm_ctx_error(ctx)) diag("%s", mm_ctx_error(ctx));
    mm_ctx_free(ctx);
}

/* Argument checks and the inference-only contract. */
static void run_contract(void)
{
    mm_ctx *ctx = mm_ctx_new();
    mm_tensor *x = mm_tensor_new(ctx, MM_F64, 4, (int64_t[]){1, 2, 5, 5});
    mm_tensor *w = mm_tensor_new(ctx, MM_F64, 4, (int64_t[]){3, 2, 3, 3});
    mm_tensor_fill(x, 1);
    mm_tensor_fill(w, 0.5);
    mm_tensor_set_requires_grad(w, 1);
    mm_tensor *y = mm_tensor_conv2d(ctx, x, w, NULL, 1, 1, 1, 1);
    ok(y == NULL && tap_has(mm_ctx_error(ctx), "inference only"),
       "conv2d on a weight that requires grad, in grad mode: error (%s)",
       tap_s(mm_ctx_error(ctx)));
    mm_ctx_reset(ctx);
    x = mm_tensor_new(ctx, MM_F64, 4, (int64_t[]){1, 2, 5, 5});
    w = mm_tensor_new(ctx, MM_F64, 4, (int64_t[]){3, 2, 3, 3});
    mm_tensor_fill(x, 1);
    mm_tensor_fill(w, 0.5);
    mm_tensor_set_requires_grad(x, 1);
    mm_ctx_no_grad(ctx, 1);
    y = mm_tensor_conv2d(ctx, x, w, NULL, 1, 1, 1, 1);
    ok(y && !mm_tensor_requires_grad(y) && mm_tensor_dim(y, 2) == 5 &&
       mm_tensor_get1(y, 0) == 4 * 2 * 0.5 && mm_tensor_get1(y, 6) == 9,
       "conv2d in no-grad mode: runs, records nothing (corner %g, inner %g)",
       y ? mm_tensor_get1(y, 0) : NAN, y ? mm_tensor_get1(y, 6) : NAN);
    mm_tensor *p = mm_tensor_max_pool2d(ctx, x, 3, 2, 1);
    ok(p && mm_tensor_dim(p, 2) == 3 && mm_tensor_dim(p, 3) == 3,
       "max_pool2d 3 s2 p1 on 5x5 gives 3x3");
    mm_tensor *g = mm_tensor_global_avg_pool2d(ctx, x);
    ok(g && mm_tensor_ndim(g) == 4 && mm_tensor_dim(g, 2) == 1 &&
       mm_tensor_get1(g, 1) == 1, "global_avg_pool2d gives (N, C, 1, 1)");
    mm_ctx_no_grad(ctx, 0);
    ok(mm_tensor_max_pool2d(ctx, x, 3, 2, 1) == NULL &&
       tap_has(mm_ctx_error(ctx), "inference only"),
       "max_pool2d on an input that requires grad, in grad mode: error");
    mm_ctx_reset(ctx);
    x = mm_tensor_new(ctx, MM_F64, 4, (int64_t[]){1, 2, 5, 5});
    y = mm_tensor_max_pool2d(ctx, x, 3, 1, 2);
    ok(y == NULL && tap_has(mm_ctx_error(ctx), "padding"),
       "max_pool2d: padding > kernel / 2 refused (%s)",
       tap_s(mm_ctx_error(ctx)));
    mm_ctx_reset(ctx);
    x = mm_tensor_new(ctx, MM_F64, 4, (int64_t[]){1, 2, 5, 5});
    w = mm_tensor_new(ctx, MM_F64, 4, (int64_t[]){3, 4, 3, 3});
    y = mm_tensor_conv2d(ctx, x, w, NULL, 1, 1, 0, 0);
    ok(y == NULL && tap_has(mm_ctx_error(ctx), "expected"),
       "conv2d: channel mismatch refused (%s)", tap_s(mm_ctx_error(ctx)));
    mm_tensor *b = mm_tensor_new1(ctx, MM_F64, 2);
    int rc;
    mm_tensor *st = mm_tensor_new1(ctx, MM_F64, 3);
    rc = mm_tensor_bn_fold(w, b, st, st, NULL, NULL, 1e-5);
    ok(rc != 0 && tap_has(mm_strerror(), "bn_fold"),
       "bn_fold: bias of the wrong length refused (%s)", mm_strerror());
    mm_ctx_free(ctx);
}

int main(void)
{
    const char *top = getenv("top_srcdir");
    char lpath[4096], opath[4096];
    snprintf(lpath, sizeof lpath, "%s/tests/fixtures/losses/losses.safetensors",
             top ? top : ".");
    snprintf(opath, sizeof opath, "%s/tests/fixtures/losses/ops.safetensors",
             top ? top : ".");
    mm_st *ls = mm_st_open(lpath), *os = ls ? mm_st_open(opath) : NULL;
    if (!ls || !os) {
        plan_skip_all("no fixtures in tests/fixtures/losses "
                      "(tests/gen/loss_refs.py makes them)");
        mm_st_close(ls);
        return 0;
    }
    run_contract();
    run_losses(ls, MM_F64);
    run_losses(ls, MM_F32);
    run_ops(os, MM_F64);
    run_ops(os, MM_F32);
    diag("largest max |diff| / max |torch|: f64 %.2e, f32 %.2e", worst[0],
         worst[1]);
    mm_st_close(ls);
    mm_st_close(os);
    return done_testing();
}
