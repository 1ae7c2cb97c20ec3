/* t-nn.c: the nn modules against PyTorch (llm.c test_gpt2.c): for each
 * fixture of tests/gen/torch_parity.py, build the same model from
 * mm/nn.h, load torch's weights by their state_dict names, and compare
 * logits, loss, every parameter gradient and the losses of 10 AdamW steps,
 * printing the largest differences. Run in F64 (tight) and F32 (loose).
 * Tolerances are relative to the reference tensor's largest magnitude:
 * F64 1e-9 (1e-7 for the F32-stored gradients: their rounding), F32 1e-4
 * (gradients 1e-3).
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../tap.h"
#include "mm/nn.h"
#include "mm/rng.h"
#include "mm/safetensors.h"
#include "mm/tensor.h"

enum { CASE_TRANSFORMER, CASE_NYSTROM };

typedef struct {
    int kind;
    mm_block blk[2];
    mm_translayer tl;
    mm_tensor *head_w, *head_b;
} model;

static int model_init(model *m, mm_params *p, int kind)
{
    memset(m, 0, sizeof *m);
    m->kind = kind;
    if (kind == CASE_TRANSFORMER) {
        if (mm_block_init(&m->blk[0], p, "blocks.0", 32, 4, 128, 1, 1e-6) ||
            mm_block_init(&m->blk[1], p, "blocks.1", 32, 4, 128, 1, 1e-6))
            return -1;
    } else if (mm_translayer_init(&m->tl, p, "layer", 32, 4, 16, 6)) {
        return -1;
    }
    m->head_w = mm_params_add(p, "head.weight", 2, (int64_t[]){3, 32});
    m->head_b = mm_params_add(p, "head.bias", 1, (int64_t[]){3});
    return m->head_w && m->head_b ? 0 : -1;
}

static mm_tensor *model_forward(mm_ctx *ctx, const model *m, mm_tensor *x,
                                mm_tensor **out)
{
    if (m->kind == CASE_TRANSFORMER) {
        x = mm_block_forward(ctx, &m->blk[0], x);
        x = mm_block_forward(ctx, &m->blk[1], x);
    } else {
        x = mm_translayer_forward(ctx, &m->tl, x);
    }
    if (out) *out = x;
    return mm_tensor_linear(ctx, mm_tensor_mean(ctx, x, 1, 0), m->head_w,
                            m->head_b);
}

// ---- fixture access ------------------------------------------------------------

/* Tensor NAME as doubles (malloc'd), its count in *N and, when DTYPE is
 * not NULL, the file's dtype string; NULL if missing. */
static double *st_get(mm_st *st, const char *name, int64_t *n,
                      const char **dtype)
{
    int nd;
    int64_t sh[MM_ST_MAX_DIM];
    if (mm_st_info(st, name, dtype, &nd, sh)) return NULL;
    int64_t k = 1;
    for (int i = 0; i < nd; i++) k *= sh[i];
    double *v = malloc((size_t)k * sizeof *v);
    if (!v || mm_st_read(st, name, MM_F64, -1, NULL, v)) {
        free(v);
        return NULL;
    }
    *n = k;
    return v;
}

static int load_params(mm_st *st, mm_params *p)
{
    for (int i = 0; i < mm_params_count(p); i++) {
        mm_tensor *t = mm_params_get(p, i);
        int64_t n;
        double *v = st_get(st, mm_params_name(p, i), &n, NULL);
        if (!v || n != mm_tensor_numel(t) || mm_tensor_set_f64(t, v, n)) {
            diag("cannot load %s: %s", mm_params_name(p, i), mm_st_error(st));
            free(v);
            return -1;
        }
        free(v);
    }
    return 0;
}

static mm_tensor *load_input(mm_ctx *ctx, mm_st *st, mm_dtype dt,
                             mm_tensor **labels)
{
    int nd;
    int64_t sh[MM_ST_MAX_DIM], n;
    if (mm_st_info(st, "x", NULL, &nd, sh)) return NULL;
    double *v = st_get(st, "x", &n, NULL);
    mm_tensor *x = v ? mm_tensor_new(ctx, dt, nd, sh) : NULL;
    if (x) mm_tensor_set_f64(x, v, n);
    free(v);
    if (mm_st_info(st, "labels", NULL, &nd, sh)) return NULL;
    *labels = mm_tensor_new1(ctx, MM_I64, sh[0]);
    if (!*labels ||
        mm_st_read(st, "labels", MM_I64, 1, sh, mm_tensor_data(*labels)))
        return NULL;
    return x;
}

/* Compare T with reference NAME: max |diff| over max |ref| <= TOL. */
static int check(mm_st *st, const char *what, const char *name, mm_tensor *t,
                 double tol)
{
    int64_t n;
    const char *fdt = NULL;
    double *ref = st_get(st, name, &n, &fdt);
    if (!ref || !t || mm_tensor_numel(t) != n) {
        free(ref);
        return ok(0, "%s %s: %s", what, name,
                  !ref ? "no reference" : "missing or wrong size");
    }
    if (fdt && strcmp(fdt, "F32") == 0 && tol < 1e-7) tol = 1e-7;
    double scale = 0, dmax = 0, rmax = 0;
    for (int64_t i = 0; i < n; i++) {
        double r = ref[i], d = fabs(mm_tensor_get1(t, i) - r);
        if (fabs(r) > scale) scale = fabs(r);
        if (!(d <= dmax)) dmax = d;
        if (r != 0 && !(d / fabs(r) <= rmax)) rmax = d / fabs(r);
    }
    free(ref);
    double err = scale > 0 ? dmax / scale : dmax;
    return ok(err <= tol, "%s %-30s max abs %.2e, max rel %.2e, /scale %.2e "
              "(tol %.0e)", what, name, dmax, rmax, err, tol);
}

// ---- one case, one dtype ---------------------------------------------------------

static void run_case(const char *path, int kind, mm_dtype dt)
{
    const char *what = dt == MM_F64 ? "f64" : "f32";
    double tol = dt == MM_F64 ? 1e-9 : 1e-4, gtol = dt == MM_F64 ? 1e-9 : 1e-3;
    mm_st *st = mm_st_open(path);
    if (!ok(st != NULL, "%s open %s", what, path)) {
        diag("%s", mm_strerror());
        return;
    }
    mm_params *p = mm_params_new(dt);
    model m;
    int rc = model_init(&m, p, kind);
    if (!ok(rc == 0 && mm_params_alloc(p) == 0 && load_params(st, p) == 0,
            "%s build the model and load %d parameters (%lld values)", what,
            mm_params_count(p), (long long)mm_params_numel(p))) {
        diag("%s", mm_strerror());
        mm_params_free(p);
        mm_st_close(st);
        return;
    }
    mm_ctx *ctx = mm_ctx_new();
    mm_tensor *labels, *x = load_input(ctx, st, dt, &labels), *out = NULL;
    mm_tensor *logits = model_forward(ctx, &m, x, &out);
    mm_tensor *loss = mm_tensor_cross_entropy(ctx, logits, labels, 0);
    if (!ok(loss != NULL, "%s forward", what))
        diag("%s", mm_ctx_error(ctx));
    if (kind == CASE_NYSTROM) {
        check(st, what, "out", out, tol);
        /* the <= 0.0.9 slice out[:, :n] keeps the pad rows: must differ */
        mm_ctx *c2 = mm_ctx_new();
        mm_tensor *lab2, *x2 = load_input(c2, st, dt, &lab2), *out2 = NULL;
        m.tl.attn.pad_bug = 1;
        model_forward(c2, &m, x2, &out2);
        m.tl.attn.pad_bug = 0;
        double dmax = 0;
        for (int64_t i = 0; out && out2 && i < mm_tensor_numel(out); i++)
            dmax = fmax(dmax, fabs(mm_tensor_get1(out, i) - mm_tensor_get1(out2, i)));
        ok(out2 && dmax > 1e-3, "%s pad_bug (out[:, :n]) differs from the "
           "fixed slice by %.3g", what, dmax);
        mm_ctx_free(c2);
    }
    check(st, what, "logits", logits, tol);
    check(st, what, "loss", loss, tol);
    mm_params_zero_grad(p);
    if (!ok(loss && mm_tensor_backward(ctx, loss) == 0, "%s backward", what))
        diag("%s", mm_ctx_error(ctx));
    for (int i = 0; i < mm_params_count(p); i++) {
        char name[MM_NN_NAME_MAX + 8];
        snprintf(name, sizeof name, "grad.%s", mm_params_name(p, i));
        check(st, what, name, mm_tensor_grad(mm_params_get(p, i)), gtol);
    }

    /* 10 AdamW steps: the loss before each against torch's */
    int64_t nl;
    double *want = st_get(st, "adamw_losses", &nl, NULL);
    mm_adam_opts o = mm_adamw_defaults();
    o.lr = 1e-3;
    o.weight_decay = 1e-2;
    double worst = 0;
    int good = want != NULL && nl == 10;
    for (int s = 0; good && s < 10; s++) {
        mm_ctx_reset(ctx);
        mm_params_zero_grad(p);
        x = load_input(ctx, st, dt, &labels);
        loss = mm_tensor_cross_entropy(ctx, model_forward(ctx, &m, x, NULL),
                                       labels, 0);
        if (!loss || mm_tensor_backward(ctx, loss) || mm_adamw_step(p, &o)) {
            good = 0;
            break;
        }
        double got = mm_tensor_get1(loss, 0), d = fabs(got - want[s]) / fabs(want[s]);
        if (d > worst) worst = d;
        diag("%s step %d: loss %.15f torch %.15f rel diff %.2e", what, s, got,
             want[s], d);
    }
    ok(good && worst <= tol, "%s 10 AdamW steps: max rel loss diff %.2e (tol %.0e)",
       what, worst, tol);
    free(want);
    mm_ctx_free(ctx);
    mm_params_free(p);
    mm_st_close(st);
}

// ---- Nystrom rows ------------------------------------------------------------

static void fill_normal(mm_tensor *t, mm_rng *g, double sd)
{
    int64_t n = mm_tensor_numel(t);
    for (int64_t i = 0; i < n; i++) {
        double z[2];
        mm_rng_normal2(g, z);
        if (mm_tensor_dtype(t) == MM_F64) ((double *)mm_tensor_data(t))[i] = sd * z[0];
        else ((float *)mm_tensor_data(t))[i] = (float)(sd * z[0]);
    }
}

/* max |a - b| / max |b| over two tensors of one size */
static double reldiff(const mm_tensor *a, const mm_tensor *b)
{
    double d = 0, m = 0;
    int64_t n = mm_tensor_numel(b);
    if (!a || mm_tensor_numel(a) != n) return 1e300;
    for (int64_t i = 0; i < n; i++) {
        double x = mm_tensor_get1(a, i), y = mm_tensor_get1(b, i);
        d = fabs(x - y) > d ? fabs(x - y) : d;
        m = fabs(y) > m ? fabs(y) : m;
    }
    return m > 0 ? d / m : d;
}

/* mm_nystrom_forward_rows against the same rows sliced from the whole
 * output: the rows, and the gradients of every parameter and of x for a
 * loss on those rows alone. Sizes make N' = 48 with 11 front pad rows, so
 * the conv window is cut at both ends for some ranges. */
static void rows_case(mm_dtype dt, int pad_bug)
{
    const int64_t B = 2, N = 37, D = 32;
    const int64_t ranges[][2] = {{0, 1}, {36, 1}, {5, 3}, {18, 19}, {1, 36}};
    double tol = dt == MM_F64 ? 1e-12 : 2e-5;
    const char *dn = dt == MM_F64 ? "f64" : "f32";
    mm_params *p = mm_params_new(dt);
    mm_nystrom ny;
    if (mm_nystrom_init(&ny, p, "n", (int)D, 4, 8, 16, 6, 33) || mm_params_alloc(p)) {
        ok(0, "%s rows: build: %s", dn, mm_strerror());
        mm_params_free(p);
        return;
    }
    ny.pad_bug = pad_bug;
    mm_rng g;
    mm_rng_seed(&g, 11);
    int np = mm_params_count(p);
    for (int i = 0; i < np; i++) fill_normal(mm_params_get(p, i), &g, 0.3);
    mm_ctx *c1 = mm_ctx_new(), *c2 = mm_ctx_new();
    for (size_t r = 0; r < sizeof ranges / sizeof ranges[0]; r++) {
        int64_t r0 = ranges[r][0], nr = ranges[r][1];
        mm_ctx_reset(c1);
        mm_ctx_reset(c2);
        mm_rng_seed(&g, 100 + r);
        mm_tensor *x1 = mm_tensor_new(c1, dt, 3, (int64_t[]){B, N, D});
        mm_tensor *w1 = mm_tensor_new(c1, dt, 3, (int64_t[]){B, nr, D});
        fill_normal(x1, &g, 1);
        fill_normal(w1, &g, 1);
        mm_tensor *x2 = mm_tensor_new(c2, dt, 3, (int64_t[]){B, N, D});
        mm_tensor *w2 = mm_tensor_new(c2, dt, 3, (int64_t[]){B, nr, D});
        size_t es = dt == MM_F64 ? 8 : 4;
        memcpy(mm_tensor_data(x2), mm_tensor_data(x1), (size_t)(B * N * D) * es);
        memcpy(mm_tensor_data(w2), mm_tensor_data(w1), (size_t)(B * nr * D) * es);
        mm_tensor_set_requires_grad(x1, 1);
        mm_tensor_set_requires_grad(x2, 1);

        /* the whole output, sliced */
        mm_params_zero_grad(p);
        mm_tensor *y1 = mm_tensor_slice(c1, mm_nystrom_forward(c1, &ny, x1), 1, r0, nr);
        y1 = mm_tensor_contiguous(c1, y1);
        int ok1 = y1 && !mm_tensor_backward(c1, mm_tensor_sum_all(c1, mm_tensor_mul(c1, y1, w1)));
        mm_tensor **g1 = calloc((size_t)np, sizeof *g1);
        mm_ctx *keep = mm_ctx_new(); /* copies of the first gradients */
        for (int i = 0; ok1 && i < np; i++) {
            mm_tensor *gi = mm_tensor_grad(mm_params_get(p, i));
            g1[i] = gi ? mm_tensor_scale(keep, gi, 1.0) : NULL; /* a copy */
        }
        /* the rows alone */
        mm_params_zero_grad(p);
        mm_tensor *y2 = mm_nystrom_forward_rows(c2, &ny, x2, r0, nr);
        int ok2 = y2 && !mm_tensor_backward(c2, mm_tensor_sum_all(c2, mm_tensor_mul(c2, y2, w2)));
        ok(ok1 && ok2, "%s rows %lld+%lld pad_bug %d: forward and backward", dn,
           (long long)r0, (long long)nr, pad_bug);
        if (ok1 && ok2) {
            double dy = reldiff(y2, y1), dx = reldiff(mm_tensor_grad(x2), mm_tensor_grad(x1)), dg = 0;
            int missing = 0;
            for (int i = 0; i < np; i++) {
                mm_tensor *gi = mm_tensor_grad(mm_params_get(p, i));
                if (!g1[i] || !gi) { missing++; continue; }
                double d = reldiff(gi, g1[i]);
                dg = d > dg ? d : dg;
            }
            ok(dy <= tol && dx <= 10 * tol && dg <= 10 * tol && !missing,
               "%s rows %lld+%lld pad_bug %d: rows %.2e, grad x %.2e, params %.2e "
               "(tol %g, %g), %d gradients missing", dn, (long long)r0,
               (long long)nr, pad_bug, dy, dx, dg, tol, 10 * tol, missing);
        }
        free(g1);
        mm_ctx_free(keep);
    }
    ok(mm_nystrom_forward_rows(c2, &ny, mm_tensor_new(c2, dt, 3, (int64_t[]){1, 5, D}), 3, 3) == NULL,
       "%s rows past the end refused", dn);
    mm_ctx_free(c1);
    mm_ctx_free(c2);
    mm_params_free(p);
}

int main(void)
{
    const char *top = getenv("top_srcdir");
    char tpath[4096], npath[4096];
    snprintf(tpath, sizeof tpath, "%s/tests/fixtures/nn/transformer2.safetensors",
             top ? top : ".");
    snprintf(npath, sizeof npath, "%s/tests/fixtures/nn/nystrom.safetensors",
             top ? top : ".");
    FILE *f = fopen(tpath, "rb");
    if (!f) {
        plan_skip_all("no fixture tests/fixtures/nn/transformer2.safetensors "
                      "(tests/gen/torch_parity.py makes it)");
        return 0;
    }
    fclose(f);

    /* module argument checks */
    {
        mm_params *p = mm_params_new(MM_F64);
        mm_mha a;
        mm_nystrom ny;
        ok(mm_mha_init(&a, p, "a", 30, 4, 1) != 0, "mha: dim not a multiple of heads refused");
        like(mm_strerror(), "multiple of heads", "mha: the message says why");
        ok(mm_mha_init(&a, p, "b", 32, 4, 0) == 0 && a.qkv_b == NULL &&
           mm_params_find(p, "b.qkv.weight") && !mm_params_find(p, "b.qkv.bias"),
           "mha: no qkv bias on request, torch names");
        ok(mm_mha_init(&a, p, "b", 32, 4, 0) != 0, "mha: duplicate prefix refused");
        ok(mm_nystrom_init(&ny, p, "n", 32, 4, 8, 16, 6, 32) != 0,
           "nystrom: even conv kernel refused");
        ok(mm_nystrom_init(&ny, p, "", 32, 4, 8, 16, 6, 33) == 0 &&
           mm_params_find(p, "res_conv.weight") && mm_params_find(p, "to_out.0.bias"),
           "nystrom: empty prefix gives bare torch names");
        mm_params_free(p);
    }

    run_case(tpath, CASE_TRANSFORMER, MM_F64);
    run_case(tpath, CASE_TRANSFORMER, MM_F32);
    run_case(npath, CASE_NYSTROM, MM_F64);
    run_case(npath, CASE_NYSTROM, MM_F32);
    for (int pb = 0; pb < 2; pb++) {
        rows_case(MM_F64, pb);
        rows_case(MM_F32, pb);
    }
    return done_testing();
}
