/* t-cox.c: lib/cox.c against R survival 3.5-3's coxph, from the committed
 * fixtures of tests/gen/cox_refs.R (lung covariates one at a time, eleven
 * TCGA BLCA genes, edge cases; Efron and Breslow; the lung and BLCA inputs
 * are rebuilt from $MMPATH_TEST_DATA by tests/gen/real_inputs.sh, skipped
 * without it), then checks that need no
 * R: the score and information against finite differences of the log
 * likelihood, the log likelihood against a naive O(n^2) Efron/Breslow sum,
 * invariances (row order, x -> a x + b, NAN rows), and the error paths.
 * Tolerance: coef, se, z, p, loglik0 and loglik within 1e-9 relative, and
 * R's iteration count exactly. The monotone-likelihood cases (R warns that
 * it ran out of iterations or that the coefficient may be infinite) are
 * compared loosely: same iterations and flags, loglik within 1e-6
 * absolute, coef within 1e-6 relative, p within 1e-6 (it is ~1); their
 * beta drifts along a flat likelihood, so only R's own arithmetic fixes it.
 * The largest difference of each set is printed with diag().
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* the statics (cox_iter, cox_data) for the derivative and naive checks */
#include "../../lib/cox.c"
#include "../tap.h"
#include "../fixture.h"

#define TOL 1e-9
#define TOL_MONO 1e-6

static tsv *need(const char *dir, const char *file)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    tsv *t = tsv_read(path);
    if (!t) {
        printf("Bail out! cannot read %s\n", path);
        exit(1);
    }
    return t;
}

// ---------------------------------------------------------------- comparing

/* |a - b| / |b| (|a - b| when b is 0); NAN == NAN; NAN vs a number: Inf */
static double rel(double a, double b)
{
    if (isnan(a) || isnan(b)) return isnan(a) && isnan(b) ? 0 : INFINITY;
    if (isinf(a) || isinf(b)) return a == b ? 0 : INFINITY;
    return b == 0 ? fabs(a) : fabs(a - b) / fabs(b);
}

typedef struct {
    size_t n;
    double *time, *x;
    int *event;
} data1;

static void data_free(data1 *d)
{
    free(d->time);
    free(d->x);
    free(d->event);
}

/* TIME, EVENT and the X column of T, rows whose CASE column is CASE (all
 * rows when CASECOL is NULL); an NA event is -1 (missing) */
static data1 data_get(const tsv *t, const char *tcol, const char *ecol,
                      const char *xcol, const char *casecol, const char *cs)
{
    data1 d = { 0, malloc(t->nrow * sizeof(double)),
                malloc(t->nrow * sizeof(double)),
                malloc(t->nrow * sizeof(int)) };
    for (size_t r = 0; r < t->nrow; r++) {
        if (casecol && strcmp(tsv_str(t, r, casecol), cs) != 0) continue;
        d.time[d.n] = tsv_num(t, r, tcol);
        double e = tsv_num(t, r, ecol);
        d.event[d.n] = isnan(e) ? -1 : (int)e;
        d.x[d.n] = tsv_num(t, r, xcol);
        d.n++;
    }
    return d;
}

// ---------------------------------------------------------------- against R

typedef struct {
    const char *set;
    double coef, se, z, p, ll;  /* the largest relative differences */
    int rows;
} maxdiff;

static void test_fixtures(const char *dir, const char *real)
{
    tsv *want = need(dir, "cox_expected.tsv");
    tsv *lung = need(real, "lung_input.tsv");
    tsv *blca = need(real, "blca_input.tsv");
    tsv *edge = need(dir, "edge_input.tsv");
    maxdiff md[3] = { { "lung", 0, 0, 0, 0, 0, 0 },
                      { "blca", 0, 0, 0, 0, 0, 0 },
                      { "edge", 0, 0, 0, 0, 0, 0 } };
    double mono_coef = 0, mono_ll = 0;

    for (size_t r = 0; r < want->nrow; r++) {
        const char *set = tsv_str(want, r, "set");
        const char *cs = tsv_str(want, r, "case");
        const char *ties = tsv_str(want, r, "ties");
        const char *warn = tsv_str(want, r, "warn");
        data1 d;
        int s;
        if (strcmp(set, "lung") == 0) {
            d = data_get(lung, "time", "status", cs, NULL, NULL);
            s = 0;
        } else if (strcmp(set, "blca") == 0) {
            d = data_get(blca, "time", "event", cs, NULL, NULL);
            s = 1;
        } else {
            d = data_get(edge, "time", "event", "x", "case", cs);
            s = 2;
        }
        mm_cox_fit f;
        int ret = mm_cox_univariate(d.time, d.event, d.x, d.n,
                                    strcmp(ties, "breslow") == 0, &f);
        data_free(&d);
        if (!ok(ret == 0, "%s %s %s: fits", set, cs, ties)) {
            diag("%s", mm_strerror());
            continue;
        }
        double coef = tsv_num(want, r, "coef"), se = tsv_num(want, r, "se");
        double z = tsv_num(want, r, "z"), p = tsv_num(want, r, "p");
        double ll0 = tsv_num(want, r, "loglik0");
        double ll = tsv_num(want, r, "loglik");
        int iter = (int)tsv_num(want, r, "iter");
        int conv = (int)tsv_num(want, r, "converged");

        is_int(f.iters, iter, "%s %s %s: %d iterations", set, cs, ties, iter);
        is_int(f.converged, conv, "%s %s %s: converged = %d", set, cs, ties,
               conv);
        if (isnan(coef)) {
            /* R: coef, z, p NA and se 0 (var 0); here all four NAN */
            ok(isnan(f.coef) && isnan(f.se) && isnan(f.z) && isnan(f.p),
               "%s %s %s: NA coefficient (R se %g) -> NAN", set, cs, ties, se);
            ok(rel(f.loglik0, ll0) <= TOL && rel(f.loglik, ll) <= TOL,
               "%s %s %s: loglik %.17g, %.17g", set, cs, ties, ll0, ll);
            continue;
        }
        if (strcmp(warn, "none") != 0) {
            double dc = rel(f.coef, coef), dl = fabs(f.loglik - ll);
            if (dc > mono_coef) mono_coef = dc;
            if (dl > mono_ll) mono_ll = dl;
            if (!ok(dc <= TOL_MONO && dl <= TOL_MONO &&
                    rel(f.loglik0, ll0) <= TOL && rel(f.p, p) <= TOL_MONO,
                    "%s %s %s (monotone, R warns '%s'): coef %.6g, "
                    "loglik %.6g", set, cs, ties, warn, coef, ll))
                diag("got coef %.17g se %.17g p %.17g loglik %.17g",
                     f.coef, f.se, f.p, f.loglik);
            continue;
        }
        double dc = rel(f.coef, coef), ds = rel(f.se, se), dz = rel(f.z, z);
        double dp = rel(f.p, p);
        double dl = fmax(rel(f.loglik0, ll0), rel(f.loglik, ll));
        if (!ok(dc <= TOL && ds <= TOL && dz <= TOL && dp <= TOL &&
                dl <= TOL, "%s %s %s: coef %.10g se %.10g p %.10g", set, cs,
                ties, coef, se, p))
            diag("got coef %.17g se %.17g z %.17g p %.17g ll %.17g %.17g",
                 f.coef, f.se, f.z, f.p, f.loglik0, f.loglik);
        md[s].coef = fmax(md[s].coef, dc);
        md[s].se = fmax(md[s].se, ds);
        md[s].z = fmax(md[s].z, dz);
        md[s].p = fmax(md[s].p, dp);
        md[s].ll = fmax(md[s].ll, dl);
        md[s].rows++;
    }
    for (int s = 0; s < 3; s++)
        diag("%s (%d fits): max relative difference coef %.3g se %.3g "
             "z %.3g p %.3g loglik %.3g", md[s].set, md[s].rows, md[s].coef,
             md[s].se, md[s].z, md[s].p, md[s].ll);
    diag("monotone cases: max relative difference coef %.3g, max absolute "
         "loglik %.3g", mono_coef, mono_ll);
    tsv_free(want);
    tsv_free(lung);
    tsv_free(blca);
    tsv_free(edge);
}

// ---------------------------------------------------------------- no R

/* (time, event, x) sorted by time, NAN rows dropped, for cox_iter */
typedef struct {
    size_t m;
    double *t, *x;
    int *e;
} sorted1;

static const double *cmp_time;
static int by_time(const void *a, const void *b)
{
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    if (cmp_time[i] != cmp_time[j]) return cmp_time[i] < cmp_time[j] ? -1 : 1;
    return (i > j) - (i < j);
}

static sorted1 sort_data(const data1 *d)
{
    sorted1 s = { 0, malloc(d->n * sizeof(double)),
                  malloc(d->n * sizeof(double)), malloc(d->n * sizeof(int)) };
    size_t *ix = malloc(d->n * sizeof *ix);
    size_t m = 0;
    for (size_t i = 0; i < d->n; i++)
        if (!isnan(d->x[i]) && !isnan(d->time[i]) && d->event[i] >= 0)
            ix[m++] = i;
    cmp_time = d->time;
    qsort(ix, m, sizeof *ix, by_time);
    for (size_t k = 0; k < m; k++) {
        s.t[k] = d->time[ix[k]];
        s.x[k] = d->x[ix[k]];
        s.e[k] = d->event[ix[k]];
    }
    s.m = m;
    free(ix);
    return s;
}

static void sorted_free(sorted1 *s)
{
    free(s->t);
    free(s->x);
    free(s->e);
}

/* The log partial likelihood written out from its definition, O(n^2):
 * for each distinct event time with deaths D and risk set R,
 *   sum_D bx - sum_{k<d} log(sum_R e^bx - k/d sum_D e^bx)   (Efron)
 *   sum_D bx - d log(sum_R e^bx)                             (Breslow) */
static double naive_loglik(const sorted1 *s, double beta, int efron)
{
    double ll = 0;
    for (size_t i = 0; i < s->m; i++) {
        if (i > 0 && s->t[i - 1] == s->t[i]) continue;  /* one per time */
        double rs = 0, ds = 0, bx = 0;
        int d = 0;
        for (size_t j = 0; j < s->m; j++) {
            if (s->t[j] < s->t[i]) continue;
            rs += exp(beta * s->x[j]);
            if (s->t[j] == s->t[i] && s->e[j]) {
                d++;
                ds += exp(beta * s->x[j]);
                bx += beta * s->x[j];
            }
        }
        if (d == 0) continue;
        ll += bx;
        for (int k = 0; k < d; k++)
            ll -= efron ? log(rs - (double)k / d * ds) : log(rs);
    }
    return ll;
}

static void test_derivatives(const char *dir, const char *real)
{
    tsv *lung = need(real, "lung_input.tsv");
    tsv *edge = need(dir, "edge_input.tsv");
    struct { tsv *t; const char *tc, *ec, *xc, *cs; } src[] = {
        { lung, "time", "status", "age", NULL },
        { lung, "time", "status", "ph.ecog", NULL },
        { edge, "time", "event", "x", "ties" },
    };
    double max_naive = 0, max_u = 0, max_i = 0;
    for (size_t c = 0; c < sizeof src / sizeof src[0]; c++) {
        data1 d = data_get(src[c].t, src[c].tc, src[c].ec, src[c].xc,
                           src[c].cs ? "case" : NULL, src[c].cs);
        sorted1 s = sort_data(&d);
        for (int efron = 0; efron <= 1; efron++) {
            cox_data cd = { s.m, s.t, s.e, s.x, efron, 0, 0 };
            const double betas[] = { 0, 0.02, -0.3, 0.5 };
            for (size_t b = 0; b < 4; b++) {
                double beta = betas[b], h = 1e-5;
                double ll = cox_iter(&cd, beta), u = cd.u, im = cd.imat;
                double lp = cox_iter(&cd, beta + h), up = cd.u;
                double lm = cox_iter(&cd, beta - h), um = cd.u;
                double fu = (lp - lm) / (2 * h), fi = -(up - um) / (2 * h);
                max_naive = fmax(max_naive,
                                 rel(ll, naive_loglik(&s, beta, efron)));
                max_u = fmax(max_u, fabs(u - fu) / fmax(1, fabs(u)));
                max_i = fmax(max_i, rel(im, fi));
            }
        }
        sorted_free(&s);
        data_free(&d);
    }
    ok(max_naive <= 1e-12, "loglik = the naive O(n^2) sum (max rel %.3g)",
       max_naive);
    ok(max_u <= 1e-6, "score = d loglik / d beta by central differences "
       "(max %.3g)", max_u);
    ok(max_i <= 1e-6, "information = -d score / d beta (max rel %.3g)",
       max_i);
    tsv_free(lung);
    tsv_free(edge);
}

static int same_fit(const mm_cox_fit *a, const mm_cox_fit *b, double tol)
{
    return rel(a->coef, b->coef) <= tol && rel(a->se, b->se) <= tol &&
           rel(a->p, b->p) <= tol && rel(a->loglik, b->loglik) <= tol &&
           rel(a->loglik0, b->loglik0) <= tol && a->iters == b->iters;
}

static void test_invariance(const char *real)
{
    tsv *lung = need(real, "lung_input.tsv");
    data1 d = data_get(lung, "time", "status", "wt.loss", NULL, NULL);
    mm_cox_fit f0, f1;
    int ret = mm_cox_univariate(d.time, d.event, d.x, d.n, 0, &f0);
    ok(ret == 0, "lung wt.loss fits");

    /* NAN rows dropped by hand: the same numbers, bit for bit */
    data1 e = { 0, malloc(d.n * sizeof(double)), malloc(d.n * sizeof(double)),
                malloc(d.n * sizeof(int)) };
    for (size_t i = 0; i < d.n; i++) {
        if (isnan(d.x[i])) continue;
        e.time[e.n] = d.time[i];
        e.event[e.n] = d.event[i];
        e.x[e.n++] = d.x[i];
    }
    ret = mm_cox_univariate(e.time, e.event, e.x, e.n, 0, &f1);
    ok(ret == 0 && same_fit(&f0, &f1, 0) && e.n == 214,
       "NAN x rows are skipped (%zu of %zu left)", e.n, d.n);
    /* a missing time or event skips the row too */
    e.time[0] = NAN;
    e.event[1] = -1;
    mm_cox_fit f2;
    ret = mm_cox_univariate(e.time + 2, e.event + 2, e.x + 2, e.n - 2, 0, &f1);
    ret |= mm_cox_univariate(e.time, e.event, e.x, e.n, 0, &f2);
    ok(ret == 0 && same_fit(&f1, &f2, 0),
       "NAN time and event < 0 rows are skipped");

    /* reversed rows: the tied times meet in another order */
    data1 rv = { d.n, malloc(d.n * sizeof(double)),
                 malloc(d.n * sizeof(double)), malloc(d.n * sizeof(int)) };
    for (size_t i = 0; i < d.n; i++) {
        rv.time[i] = d.time[d.n - 1 - i];
        rv.x[i] = d.x[d.n - 1 - i];
        rv.event[i] = d.event[d.n - 1 - i];
    }
    ret = mm_cox_univariate(rv.time, rv.event, rv.x, rv.n, 0, &f1);
    ok(ret == 0 && same_fit(&f0, &f1, 1e-10), "row order does not matter "
       "(1e-10): coef %.17g vs %.17g", f0.coef, f1.coef);

    /* x -> -2.5 x + 40: coef / -2.5, same se ratio, z -> -z, same p */
    for (size_t i = 0; i < d.n; i++) rv.x[i] = -2.5 * d.x[i] + 40;
    ret = mm_cox_univariate(d.time, d.event, rv.x, d.n, 0, &f1);
    ok(ret == 0 && rel(f1.coef * -2.5, f0.coef) <= 1e-9 &&
       rel(f1.se * 2.5, f0.se) <= 1e-9 && rel(f1.z, -f0.z) <= 1e-9 &&
       rel(f1.p, f0.p) <= 1e-9 && rel(f1.loglik, f0.loglik) <= 1e-12,
       "x -> -2.5 x + 40 rescales coef and se, keeps p and loglik");

    data_free(&rv);
    data_free(&e);
    data_free(&d);
    tsv_free(lung);
}

static void test_errors(void)
{
    double t[4] = { 1, 2, 3, 4 }, x[4] = { 0.5, 1, 2, 3 };
    int e[4] = { 1, 0, 1, 1 };
    mm_cox_fit f;

    ok(mm_cox_univariate(t, e, x, 0, 0, &f) == -1, "n = 0 fails");
    like(mm_strerror(), "no subject has a time", "  with a message");
    double xn[4] = { NAN, NAN, NAN, NAN };
    ok(mm_cox_univariate(t, e, xn, 4, 0, &f) == -1, "all x NAN fails");
    like(mm_strerror(), "(of 4)", "  and says of how many");
    x[2] = INFINITY;
    ok(mm_cox_univariate(t, e, x, 4, 0, &f) == -1, "an infinite x fails");
    like(mm_strerror(), "covariate of subject 3 is inf", "  naming it");
    x[2] = 2;
    e[1] = 2;
    ok(mm_cox_univariate(t, e, x, 4, 0, &f) == -1, "event 2 fails");
    like(mm_strerror(), "event of subject 2 is 2", "  naming it");
    e[1] = 0;
    t[3] = -1;
    ok(mm_cox_univariate(t, e, x, 4, 0, &f) == -1, "a negative time fails");
    like(mm_strerror(), "survival time of subject 4 is -1", "  naming it");
    t[3] = INFINITY;
    ok(mm_cox_univariate(t, e, x, 4, 0, &f) == -1, "an infinite time fails");
    t[3] = 4;

    /* one subject, an event: loglik 0 at every beta, so R's test
     * |1 - 0/0| <= eps never passes (the "onlylast" fixture) */
    if (!ok(mm_cox_univariate(t, e, x, 1, 0, &f) == 0 && f.coef == 0 &&
            f.se == 0 && isnan(f.p) && f.loglik0 == 0 && f.iters == 21 &&
            f.converged == 0,
            "one subject: coef 0, se 0, p NAN, out of iterations (R)"))
        diag("coef %g p %g loglik0 %g iters %d", f.coef, f.p, f.loglik0,
             f.iters);
    /* no events */
    int e0[4] = { 0, 0, 0, 0 };
    ok(mm_cox_univariate(t, e0, x, 4, 1, &f) == 0 && isnan(f.coef) &&
       isnan(f.se) && isnan(f.p) && f.loglik == 0 && f.iters == 0 &&
       f.converged == 1, "no events: NAN, loglik 0, 0 iterations (R)");
}

int main(void)
{
    static const char *const src[] = {
        "survival/lung.tsv",
        "paired/survpath_blca/tcga_blca_xena_rna_clean.csv",
        "paired/survpath_blca/tcga_blca_metadata.csv", NULL };
    const char *real = real_inputs(src, "lung_input.tsv blca_input.tsv");
    const char *top = getenv("top_srcdir");
    char dir[1100];
    snprintf(dir, sizeof dir, "%s/tests/fixtures/cox",
             top && *top ? top : ".");
    test_fixtures(dir, real);
    test_derivatives(dir, real);
    test_invariance(real);
    test_errors();
    return done_testing();
}
