/* t-survival.c: lib/survival.c against R survival 3.5-3. The shared lung
 * references ($MMPATH_TEST_DATA/reference: KM tables, medians, survdiff,
 * the Cox model's concordance) and the committed fixtures of
 * tests/gen/survival_refs.R (the lung Cox risks: lung_cox_risk.tsv, joined
 * with lung's time and status by tests/gen/real_inputs.sh; ties, zero times, missing values, empty and
 * all-censored groups, log-log and plain CIs, G-rho,gamma tests, Harrell
 * counts, Uno's C, pchisq, qnorm); then brute-force O(n^2) concordance on
 * random data with ties, and the error paths. Numbers are compared within
 * 1e-9 absolute (counts exactly); the largest difference of each table
 * is printed with diag().
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mm/survival.h"
#include "../tap.h"
#include "../fixture.h"

#define TOL 1e-9

// ---------------------------------------------------------------- comparing

/* |a - b| where NAN == NAN and Inf == Inf; a NAN against a number is Inf */
static double dif(double a, double b)
{
    if (isnan(a) || isnan(b)) return isnan(a) && isnan(b) ? 0 : INFINITY;
    if (isinf(a) || isinf(b)) return a == b ? 0 : INFINITY;
    return fabs(a - b);
}

/* The largest difference in a table, and where it was */
typedef struct {
    double max;
    char where[160];
} maxdiff;

static void md_add(maxdiff *m, double got, double want, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void md_add(maxdiff *m, double got, double want, const char *fmt, ...)
{
    double d = dif(got, want);
    if (d > m->max || (m->where[0] == '\0' && d == m->max)) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(m->where, sizeof m->where, fmt, ap);
        va_end(ap);
        if (k >= 0 && (size_t)k < sizeof m->where)
            snprintf(m->where + k, sizeof m->where - (size_t)k,
                     ": got %.17g want %.17g", got, want);
        m->max = d;
    }
}

static int md_ok(const maxdiff *m, double tol, const char *what)
{
    int r = ok(m->max <= tol, "%s within %g", what, tol);
    if (m->max == 0) diag("%s: max |diff| 0 (all equal)", what);
    else diag("%s: max |diff| %.3g (%s)", what, m->max, m->where);
    return r;
}

static char data_dir[1024], fix_dir[1024];
static const char *real_in;  /* the rebuilt real-data inputs */

static tsv *need(const char *dir, const char *name)
{
    char p[2048];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    tsv *t = tsv_read(p);
    if (!t) {
        ok(0, "read %s", p);
        printf("Bail out! cannot read %s\n", p);
        exit(1);
    }
    return t;
}

// ---------------------------------------------------------------- lung

typedef struct {
    size_t n;
    double *time;
    int *event, *sex, *ecog;    /* status 2 = dead -> 1; sex 1/2 -> 0/1 */
} lung_data;

static void lung_read(lung_data *L)
{
    tsv *t = need(data_dir, "survival/lung.tsv");
    L->n = t->nrow;
    L->time = malloc(L->n * sizeof *L->time);
    L->event = malloc(L->n * sizeof *L->event);
    L->sex = malloc(L->n * sizeof *L->sex);
    L->ecog = malloc(L->n * sizeof *L->ecog);
    for (size_t i = 0; i < L->n; i++) {
        double st = tsv_num(t, i, "status"), e = tsv_num(t, i, "ph.ecog");
        L->time[i] = tsv_num(t, i, "time");
        L->event[i] = isnan(st) ? -1 : (int)st - 1;
        L->sex[i] = (int)tsv_num(t, i, "sex") - 1;
        L->ecog[i] = isnan(e) ? -1 : (int)e;
    }
    tsv_free(t);
}

static void lung_free(lung_data *L)
{
    free(L->time);
    free(L->event);
    free(L->sex);
    free(L->ecog);
}

/* The subjects of group G (G < 0: all) */
static size_t subset(const lung_data *L, const int *grp, int g, double *t, int *e)
{
    size_t m = 0;
    for (size_t i = 0; i < L->n; i++)
        if (g < 0 || grp[i] == g) {
            t[m] = L->time[i];
            e[m++] = L->event[i];
        }
    return m;
}

/* Compare the rows of KM with the table rows R0..R1 of T (the columns of
 * lung_km_*.tsv) */
static void km_vs_ref(const mm_km *km, const tsv *t, size_t r0, size_t r1,
                      const char *label, maxdiff *md, int *nrows_ok)
{
    *nrows_ok &= km->nrows == r1 - r0;
    for (size_t r = r0; r < r1 && r - r0 < km->nrows; r++) {
        const mm_km_row *k = &km->rows[r - r0];
        double tm = tsv_num(t, r, "time");
        md_add(md, k->time, tm, "%s t=%g time", label, tm);
        md_add(md, k->n_risk, tsv_num(t, r, "n.risk"), "%s t=%g n.risk", label, tm);
        md_add(md, k->n_event, tsv_num(t, r, "n.event"), "%s t=%g n.event", label, tm);
        md_add(md, k->n_censor, tsv_num(t, r, "n.censor"), "%s t=%g n.censor", label, tm);
        md_add(md, k->surv, tsv_num(t, r, "surv"), "%s t=%g surv", label, tm);
        md_add(md, k->std_err, tsv_num(t, r, "std.err.S"), "%s t=%g std.err", label, tm);
        md_add(md, k->std_err_logS, tsv_num(t, r, "std.err.logS"),
               "%s t=%g std.err.logS", label, tm);
        md_add(md, k->lower, tsv_num(t, r, "lower95"), "%s t=%g lower", label, tm);
        md_add(md, k->upper, tsv_num(t, r, "upper95"), "%s t=%g upper", label, tm);
    }
}

static void test_lung_refs(const lung_data *L)
{
    double *t = malloc(L->n * sizeof *t);
    int *e = malloc(L->n * sizeof *e);
    mm_km km;

    /* overall */
    tsv *ref = need(data_dir, "reference/lung_km_overall.tsv");
    maxdiff md = {0};
    int rows_ok = 1;
    size_t m = subset(L, L->sex, -1, t, e);
    is_int(mm_km_fit(t, e, m, MM_CI_LOG, 0.95, &km), 0, "km lung overall");
    is_int(km.n, 228, "lung: n 228");
    is_int(km.events, 165, "lung: 165 events");
    km_vs_ref(&km, ref, 0, ref->nrow, "all", &md, &rows_ok);
    ok(rows_ok, "lung_km_overall.tsv: %zu rows, one per distinct time", ref->nrow);
    md_ok(&md, TOL, "lung_km_overall.tsv (9 columns)");

    /* mm_km_surv_at / mm_km_n_risk_at against the same table */
    maxdiff ma = {0};
    for (size_t r = 0; r < ref->nrow; r++) {
        double tm = tsv_num(ref, r, "time");
        md_add(&ma, mm_km_surv_at(&km, tm), tsv_num(ref, r, "surv"), "S(%g)", tm);
        md_add(&ma, mm_km_n_risk_at(&km, tm), tsv_num(ref, r, "n.risk"), "n(%g)", tm);
        if (r > 0) {
            double mid = (tsv_num(ref, r - 1, "time") + tm) / 2;
            md_add(&ma, mm_km_surv_at(&km, mid), tsv_num(ref, r - 1, "surv"), "S(%g)", mid);
            md_add(&ma, mm_km_n_risk_at(&km, mid), tsv_num(ref, r, "n.risk"), "n(%g)", mid);
        }
    }
    md_add(&ma, mm_km_surv_at(&km, 4.5), 1, "S(4.5)");
    md_add(&ma, mm_km_n_risk_at(&km, 0), 228, "n(0)");
    md_add(&ma, mm_km_surv_at(&km, 5000), tsv_num(ref, ref->nrow - 1, "surv"), "S(5000)");
    md_add(&ma, mm_km_n_risk_at(&km, 5000), 0, "n(5000)");
    md_ok(&ma, TOL, "mm_km_surv_at/mm_km_n_risk_at at, between and outside lung times");
    mm_km_free(&km);
    tsv_free(ref);

    /* by sex, with the medians */
    ref = need(data_dir, "reference/lung_km_by_sex.tsv");
    tsv *med = need(data_dir, "reference/lung_km_by_sex_median.tsv");
    maxdiff mm = {0};
    md = (maxdiff){0};
    rows_ok = 1;
    for (int g = 0; g < 2; g++) {
        char label[16];
        snprintf(label, sizeof label, "sex=%d", g + 1);
        size_t r0 = 0, r1;
        while (r0 < ref->nrow && strcmp(tsv_str(ref, r0, "strata"), label)) r0++;
        for (r1 = r0; r1 < ref->nrow && !strcmp(tsv_str(ref, r1, "strata"), label); r1++)
            ;
        m = subset(L, L->sex, g, t, e);
        is_int(mm_km_fit(t, e, m, MM_CI_LOG, 0.95, &km), 0, "km lung %s", label);
        km_vs_ref(&km, ref, r0, r1, label, &md, &rows_ok);
        size_t mr = 0;
        while (mr < med->nrow && strcmp(tsv_str(med, mr, "strata"), label)) mr++;
        if (mr < med->nrow) {
            md_add(&mm, (double)km.n, tsv_num(med, mr, "records"), "%s n", label);
            md_add(&mm, (double)km.events, tsv_num(med, mr, "events"), "%s events", label);
            md_add(&mm, km.median, tsv_num(med, mr, "median"), "%s median", label);
            md_add(&mm, km.median_lower, tsv_num(med, mr, "0.95LCL"), "%s LCL", label);
            md_add(&mm, km.median_upper, tsv_num(med, mr, "0.95UCL"), "%s UCL", label);
        } else {
            mm.max = INFINITY;
        }
        mm_km_free(&km);
    }
    ok(rows_ok, "lung_km_by_sex.tsv: the row count of each stratum");
    md_ok(&md, TOL, "lung_km_by_sex.tsv (9 columns)");
    md_ok(&mm, 0, "lung_km_by_sex_median.tsv (n, events, median, LCL, UCL)");
    tsv_free(ref);
    tsv_free(med);

    /* survdiff by sex */
    ref = need(data_dir, "reference/lung_logrank_by_sex.tsv");
    mm_logrank lr;
    is_int(mm_logrank_test(L->time, L->event, L->sex, L->n, 2, 0, 0, &lr), 0,
           "survdiff lung ~ sex");
    md = (maxdiff){0};
    for (size_t r = 0; r < ref->nrow && r < 2; r++) {
        md_add(&md, lr.observed[r], tsv_num(ref, r, "observed"), "observed[%zu]", r);
        md_add(&md, lr.expected[r], tsv_num(ref, r, "expected"), "expected[%zu]", r);
        md_add(&md, lr.var[r * 2 + r], tsv_num(ref, r, "variance_diag"), "var[%zu]", r);
        md_add(&md, lr.chisq, tsv_num(ref, r, "chisq"), "chisq");
        md_add(&md, lr.p, tsv_num(ref, r, "p"), "p");
        md_add(&md, lr.df, tsv_num(ref, r, "df"), "df");
    }
    md_ok(&md, TOL, "lung_logrank_by_sex.tsv (observed, expected, var, chisq, df, p)");
    ok(fabs(lr.p - 0.00131116452035549) <= 1e-12 * 0.00131116452035549,
       "survdiff p within 1e-12 relative of R's");
    mm_logrank_free(&lr);
    tsv_free(ref);
    free(t);
    free(e);
}

// ---------------------------------------------------------------- fixtures

/* lung log-log and plain CIs */
static void test_lung_ci(const lung_data *L)
{
    static const struct {
        const char *file;
        mm_ci_type ci;
    } f[] = {{"lung_km_overall_loglog.tsv", MM_CI_LOGLOG},
             {"lung_km_overall_plain.tsv", MM_CI_PLAIN}};
    for (size_t k = 0; k < 2; k++) {
        tsv *ref = need(fix_dir, f[k].file);
        mm_km km;
        is_int(mm_km_fit(L->time, L->event, L->n, f[k].ci, 0.95, &km), 0,
               "km lung %s", f[k].file);
        is_int(km.nrows, ref->nrow, "%s: row count", f[k].file);
        maxdiff md = {0};
        for (size_t r = 0; r < ref->nrow && r < km.nrows; r++) {
            double tm = tsv_num(ref, r, "time");
            md_add(&md, km.rows[r].time, tm, "t=%g time", tm);
            md_add(&md, km.rows[r].lower, tsv_num(ref, r, "lower"), "t=%g lower", tm);
            md_add(&md, km.rows[r].upper, tsv_num(ref, r, "upper"), "t=%g upper", tm);
        }
        md_ok(&md, TOL, f[k].file);
        mm_km_free(&km);
        tsv_free(ref);
    }
}

/* one synthetic case of cases_input.tsv */
typedef struct {
    size_t n;
    double time[64], risk[64];
    int event[64], group[64];
} fcase;

static void case_load(const tsv *in, const char *name, fcase *c)
{
    c->n = 0;
    for (size_t r = 0; r < in->nrow && c->n < 64; r++) {
        if (strcmp(tsv_str(in, r, "case"), name)) continue;
        double st = tsv_num(in, r, "status"), g = tsv_num(in, r, "group");
        c->time[c->n] = tsv_num(in, r, "time");
        c->event[c->n] = isnan(st) ? -1 : (int)st;
        c->group[c->n] = isnan(g) ? -1 : (int)g;
        c->risk[c->n] = tsv_num(in, r, "risk");
        c->n++;
    }
}

static mm_ci_type ci_of(const char *s)
{
    return !strcmp(s, "log") ? MM_CI_LOG : !strcmp(s, "log-log") ? MM_CI_LOGLOG
                                                                 : MM_CI_PLAIN;
}

static void km_case(const fcase *c, int g, mm_ci_type ci, mm_km *km)
{
    double t[64];
    int e[64];
    size_t m = 0;
    for (size_t i = 0; i < c->n; i++)
        if (c->group[i] == g) {
            t[m] = c->time[i];
            e[m++] = c->event[i];
        }
    if (mm_km_fit(t, e, m, ci, 0.95, km) != 0) {
        ok(0, "mm_km_fit: %s", mm_strerror());
        memset(km, 0, sizeof *km);
    }
}

static void test_km_fixtures(const tsv *in, const lung_data *L)
{
    tsv *ex = need(fix_dir, "km_expected.tsv");
    maxdiff md = {0};
    size_t nfit = 0, nbad = 0;
    for (size_t r0 = 0; r0 < ex->nrow;) {
        const char *cs = tsv_str(ex, r0, "case"), *cf = tsv_str(ex, r0, "conf");
        int g = (int)tsv_num(ex, r0, "group");
        size_t r1 = r0;
        while (r1 < ex->nrow && !strcmp(tsv_str(ex, r1, "case"), cs) &&
               !strcmp(tsv_str(ex, r1, "conf"), cf) && (int)tsv_num(ex, r1, "group") == g)
            r1++;
        fcase c;
        case_load(in, cs, &c);
        mm_km km;
        km_case(&c, g, ci_of(cf), &km);
        nfit++;
        if (km.nrows != r1 - r0) {
            nbad++;
            diag("%s %s group %d: %zu rows, want %zu", cs, cf, g, km.nrows, r1 - r0);
        }
        for (size_t r = r0; r < r1 && r - r0 < km.nrows; r++) {
            const mm_km_row *k = &km.rows[r - r0];
            double tm = tsv_num(ex, r, "time");
#define CMP(field, col) md_add(&md, k->field, tsv_num(ex, r, col), \
                               "%s %s g%d t=%g " col, cs, cf, g, tm)
            CMP(time, "time");
            CMP(n_risk, "n.risk");
            CMP(n_event, "n.event");
            CMP(n_censor, "n.censor");
            CMP(surv, "surv");
            CMP(std_err, "std.err");
            CMP(std_err_logS, "std.err.logS");
            CMP(lower, "lower");
            CMP(upper, "upper");
#undef CMP
        }
        mm_km_free(&km);
        r0 = r1;
    }
    ok(nbad == 0, "km_expected.tsv: row counts of %zu fits (case x conf.type x group)", nfit);
    md_ok(&md, TOL, "km_expected.tsv (ties, zero times, NA, S reaching 0, all-censored)");
    tsv_free(ex);

    ex = need(fix_dir, "km_median.tsv");
    md = (maxdiff){0};
    for (size_t r = 0; r < ex->nrow; r++) {
        const char *cs = tsv_str(ex, r, "case"), *cf = tsv_str(ex, r, "conf");
        int g = (int)tsv_num(ex, r, "group");
        mm_km km;
        if (!strcmp(cs, "lung")) {
            if (mm_km_fit(L->time, L->event, L->n, ci_of(cf), 0.95, &km) != 0)
                memset(&km, 0, sizeof km);
        } else {
            fcase c;
            case_load(in, cs, &c);
            km_case(&c, g, ci_of(cf), &km);
        }
        md_add(&md, (double)km.n, tsv_num(ex, r, "n"), "%s %s g%d n", cs, cf, g);
        md_add(&md, (double)km.events, tsv_num(ex, r, "events"), "%s %s g%d events", cs, cf, g);
        md_add(&md, km.median, tsv_num(ex, r, "median"), "%s %s g%d median", cs, cf, g);
        md_add(&md, km.median_lower, tsv_num(ex, r, "lower"), "%s %s g%d lower", cs, cf, g);
        md_add(&md, km.median_upper, tsv_num(ex, r, "upper"), "%s %s g%d upper", cs, cf, g);
        mm_km_free(&km);
    }
    md_ok(&md, 0, "km_median.tsv (summary(survfit)$table: flat 0.5, ends at 0.5, NA CIs)");
    tsv_free(ex);
}

static void test_logrank_fixtures(const tsv *in, const lung_data *L)
{
    tsv *ex = need(fix_dir, "logrank_expected.tsv");
    maxdiff md = {0};
    size_t ntest = 0;
    int *grp = malloc(L->n * sizeof *grp);
    for (size_t r0 = 0; r0 < ex->nrow;) {
        const char *cs = tsv_str(ex, r0, "case");
        double rho = tsv_num(ex, r0, "rho"), gamma = tsv_num(ex, r0, "gamma");
        size_t r1 = r0;
        while (r1 < ex->nrow && !strcmp(tsv_str(ex, r1, "case"), cs) &&
               tsv_num(ex, r1, "rho") == rho && tsv_num(ex, r1, "gamma") == gamma)
            r1++;
        int ng = (int)tsv_num(ex, r0, "value");     /* the "ngroups" row */
        mm_logrank lr;
        int ret;
        if (!strncmp(cs, "lung_", 5)) {
            for (size_t i = 0; i < L->n; i++)
                grp[i] = !strcmp(cs, "lung_sex") ? L->sex[i]
                         : L->ecog[i] < ng ? L->ecog[i] : -1;  /* ecog 3 dropped in 0..2 */
            ret = mm_logrank_test(L->time, L->event, grp, L->n, ng, rho, gamma, &lr);
        } else {
            fcase c;
            case_load(in, cs, &c);
            ret = mm_logrank_test(c.time, c.event, c.group, c.n, ng, rho, gamma, &lr);
        }
        ntest++;
        if (ret != 0) {
            ok(0, "mm_logrank_test %s: %s", cs, mm_strerror());
            r0 = r1;
            continue;
        }
        for (size_t r = r0; r < r1; r++) {
            const char *key = tsv_str(ex, r, "key");
            int i = (int)tsv_num(ex, r, "i"), j = (int)tsv_num(ex, r, "j");
            double want = tsv_num(ex, r, "value"), got;
            if (!strcmp(key, "ngroups")) got = lr.ngroups;
            else if (!strcmp(key, "chisq")) got = lr.chisq;
            else if (!strcmp(key, "df")) got = lr.df;
            else if (!strcmp(key, "p")) got = lr.p;
            else if (!strcmp(key, "obs")) got = lr.observed[i];
            else if (!strcmp(key, "exp")) got = lr.expected[i];
            else got = lr.var[i * ng + j];
            md_add(&md, got, want, "%s rho=%g gamma=%g %s[%d,%d]", cs, rho, gamma, key, i, j);
        }
        mm_logrank_free(&lr);
        r0 = r1;
    }
    free(grp);
    diag("logrank_expected.tsv: %zu tests (Peto rho=1, rho=0.5, gamma, 3 and 4 ecog groups, "
         "ties, zero times, NA, empty and expected-0 groups)", ntest);
    md_ok(&md, TOL, "logrank_expected.tsv (obs, exp, var matrix, chisq, df, p)");
    tsv_free(ex);
}

static void test_concordance_fixtures(const tsv *in)
{
    tsv *lp = need(real_in, "lung_cox_lp.tsv");
    size_t n = lp->nrow;
    double *t = malloc(n * sizeof *t), *risk = malloc(n * sizeof *risk);
    int *e = malloc(n * sizeof *e);
    for (size_t i = 0; i < n; i++) {
        t[i] = tsv_num(lp, i, "time");
        e[i] = (int)tsv_num(lp, i, "status");
        risk[i] = tsv_num(lp, i, "risk");
    }
    is_int(n, 227, "lung_cox_lp.tsv: the 227 complete cases");
    tsv_free(lp);

    /* the counts in MANIFEST.md (lung_cox_age_sex_ecog_efron.tsv) */
    mm_cindex cc;
    is_int(mm_cindex_harrell(t, e, risk, n, &cc), 0, "Harrell's C on the lung Cox lp");
    is_int(cc.concordant, 12544, "lung: concordant 12544");
    is_int(cc.discordant, 7117, "lung: discordant 7117");
    is_int(cc.tied_risk, 126, "lung: tied.x 126");
    is_int(cc.tied_time, 28, "lung: tied.y 28");
    is_close(cc.c, 0.637135493000455, TOL, "lung: C 0.637135493000455");

    tsv *ex = need(fix_dir, "concordance_expected.tsv");
    maxdiff md = {0}, mc = {0};
    for (size_t r = 0; r < ex->nrow; r++) {
        const char *cs = tsv_str(ex, r, "case"), *key = tsv_str(ex, r, "key");
        double want = tsv_num(ex, r, "value"), tau = tsv_num(ex, r, "tau");
        fcase c;
        const double *ct = t, *cr = risk;
        const int *ce = e;
        size_t cn = n;
        if (strcmp(cs, "lung")) {
            case_load(in, cs, &c);
            ct = c.time, cr = c.risk, ce = c.event, cn = c.n;
        }
        if (!strcmp(key, "uno")) {
            double u = NAN;
            if (mm_cindex_uno(ct, ce, cr, cn, tau, &u) != 0) u = NAN;
            md_add(&md, u, want, "%s Uno tau=%g", cs, tau);
            continue;
        }
        if (mm_cindex_harrell(ct, ce, cr, cn, &cc) != 0) cc.c = NAN;
        if (!strcmp(key, "C")) md_add(&md, cc.c, want, "%s C", cs);
        else if (!strcmp(key, "concordant")) md_add(&mc, cc.concordant, want, "%s %s", cs, key);
        else if (!strcmp(key, "discordant")) md_add(&mc, cc.discordant, want, "%s %s", cs, key);
        else if (!strcmp(key, "tied.x")) md_add(&mc, cc.tied_risk, want, "%s %s", cs, key);
        else if (!strcmp(key, "tied.y")) md_add(&mc, cc.tied_time, want, "%s %s", cs, key);
    }
    md_ok(&mc, 0, "concordance_expected.tsv: counts (lung, ties, NA) exactly");
    md_ok(&md, TOL, "concordance_expected.tsv: Harrell's C and Uno's C (n/G2, ymax = tau)");
    tsv_free(ex);
    free(t);
    free(e);
    free(risk);
}

static void test_pchisq_qnorm(void)
{
    tsv *ex = need(fix_dir, "pchisq_qnorm.tsv");
    double mp = 0, mq = 0;
    char wp[128] = "-", wq[128] = "-";
    for (size_t r = 0; r < ex->nrow; r++) {
        double x = tsv_num(ex, r, "x"), want = tsv_num(ex, r, "value");
        int df = (int)tsv_num(ex, r, "df");
        int isq = !strcmp(tsv_str(ex, r, "fn"), "qnorm");
        double got = isq ? mm_qnorm(x) : mm_pchisq_upper(x, df);
        /* relative; a value R underflowed to 0 must be below 1e-300 */
        double d = want == 0 ? (fabs(got) < 1e-300 ? 0 : INFINITY)
                             : fabs(got - want) / fabs(want);
        if (isq ? d > mq : d > mp) {
            char *w = isq ? wq : wp;
            snprintf(w, 128, "x=%g df=%d: got %.17g want %.17g", x, df, got, want);
            *(isq ? &mq : &mp) = d;
        }
    }
    ok(mp <= 1e-13, "pchisq_qnorm.tsv: mm_pchisq_upper within 1e-13 relative");
    diag("pchisq upper tail: max relative diff %.3g (%s)", mp, wp);
    ok(mq <= 1e-15, "pchisq_qnorm.tsv: mm_qnorm within 1e-15 relative");
    diag("qnorm: max relative diff %.3g (%s)", mq, wq);
    tsv_free(ex);

    is_close(mm_pchisq_upper(10.3267419548856, 1), 0.00131116452035549, 1e-12,
             "pchisq(10.3267419548856, 1, lower = FALSE)");
    is_close(mm_qnorm(0.975), 1.959963984540054, 1e-15, "qnorm(0.975)");
    /* R's qnorm(0.975) is 1.9599639845400536 at %.17g; MM_Z975's 16-digit
     * literal is the next double up, 2.2e-16 away */
    ok(mm_qnorm(0.975) == 1.9599639845400536, "qnorm(0.975) is R's double");
    is_close(MM_Z975, mm_qnorm(0.975), 4.5e-16, "MM_Z975 within 2 ulp of qnorm(0.975)");
    ok(mm_qnorm(0) == -INFINITY && mm_qnorm(1) == INFINITY && isnan(mm_qnorm(1.5)),
       "qnorm(0), qnorm(1), qnorm(1.5)");
    ok(mm_pchisq_upper(0, 3) == 1 && mm_pchisq_upper(INFINITY, 3) == 0 &&
       isnan(mm_pchisq_upper(1, 0)) && isnan(mm_pchisq_upper(NAN, 1)),
       "pchisq edges: x = 0, Inf, df = 0, NAN");
}

// ---------------------------------------------------------------- brute force

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint32_t rnd(uint32_t n)      /* xorshift64*, uniform enough here */
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 2685821657736338717u) >> 33) % n;
}

/* Every ordered pair, as the header says R counts them */
static void harrell_slow(const double *t, const int *e, const double *r, size_t n,
                         const double *w, mm_cindex *out)
{
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < n; i++) {
        if (isnan(t[i]) || e[i] < 0 || isnan(r[i]) || !e[i]) continue;
        for (size_t j = 0; j < n; j++) {
            if (j == i || isnan(t[j]) || e[j] < 0 || isnan(r[j])) continue;
            if (t[j] == t[i] && e[j]) {
                if (j > i && r[i] != r[j]) out->tied_time += w[i];
                continue;
            }
            if (t[j] < t[i]) continue;
            if (r[i] > r[j]) out->concordant += w[i];
            else if (r[i] < r[j]) out->discordant += w[i];
            else out->tied_risk += w[i];
        }
    }
    out->c = (out->concordant + out->tied_risk / 2) /
             (out->concordant + out->discordant + out->tied_risk);
}

/* G(t-) by its definition: the product over censoring times c < t of
 * 1 - (censored at c) / (time > c or censored at c) */
static double g_minus_slow(const double *t, const int *e, const double *r,
                           size_t n, double at)
{
    double g = 1;
    for (size_t i = 0; i < n; i++) {
        if (isnan(t[i]) || e[i] != 0 || isnan(r[i]) || !(t[i] < at)) continue;
        int first = 1;      /* each censoring time once */
        for (size_t j = 0; j < i; j++)
            if (!isnan(r[j]) && e[j] == 0 && t[j] == t[i]) first = 0;
        if (!first) continue;
        double c = 0, nr = 0;
        for (size_t j = 0; j < n; j++) {
            if (isnan(t[j]) || e[j] < 0 || isnan(r[j])) continue;
            if (t[j] == t[i] && e[j] == 0) c++;
            if (t[j] > t[i] || (t[j] == t[i] && e[j] == 0)) nr++;
        }
        g *= 1 - c / nr;
    }
    return g;
}

static void test_brute_force(void)
{
    enum { N = 300 };
    static double t[N], r[N], w[N];
    static int e[N];
    maxdiff mh = {0}, mu = {0};
    for (int rep = 0; rep < 20; rep++) {
        size_t n = 20 + rnd(N - 20);
        uint32_t nt = 2 + rnd(30), nrk = 1 + rnd(12);
        for (size_t i = 0; i < n; i++) {
            t[i] = rnd(nt);                  /* many ties, zero times */
            e[i] = rnd(10) < 6;
            r[i] = (double)rnd(nrk) / 4;     /* tied risks */
            if (rnd(50) == 0) t[i] = NAN;
            if (rnd(50) == 0) e[i] = -1;
            if (rnd(50) == 0) r[i] = NAN;
            w[i] = 1;
        }
        mm_cindex fast, slow;
        if (mm_cindex_harrell(t, e, r, n, &fast) != 0) fast.c = NAN;
        harrell_slow(t, e, r, n, w, &slow);
        md_add(&mh, fast.concordant, slow.concordant, "rep %d concordant", rep);
        md_add(&mh, fast.discordant, slow.discordant, "rep %d discordant", rep);
        md_add(&mh, fast.tied_risk, slow.tied_risk, "rep %d tied_risk", rep);
        md_add(&mh, fast.tied_time, slow.tied_time, "rep %d tied_time", rep);
        md_add(&mh, fast.c, slow.c, "rep %d C", rep);

        double tau = rep % 3 == 0 ? INFINITY : (double)rnd(nt);
        for (size_t i = 0; i < n; i++)
            w[i] = e[i] == 1 && t[i] <= tau
                       ? 1 / pow(g_minus_slow(t, e, r, n, t[i]), 2) : 0;
        harrell_slow(t, e, r, n, w, &slow);
        double u = NAN;
        if (mm_cindex_uno(t, e, r, n, tau, &u) != 0) u = -1;
        md_add(&mu, u, slow.c, "rep %d tau %g Uno", rep, tau);
    }
    md_ok(&mh, 0, "Harrell O(n log n) == O(n^2) count on 20 random sets with ties");
    md_ok(&mu, 1e-12, "Uno's C == O(n^2) sum with G(t-) by definition");

    /* a large set runs (O(n log n)) */
    enum { BIG = 200000 };
    double *bt = malloc(BIG * sizeof *bt), *br = malloc(BIG * sizeof *br);
    int *be = malloc(BIG * sizeof *be);
    for (size_t i = 0; i < BIG; i++) {
        br[i] = rnd(1000);
        bt[i] = rnd(5000) + br[i] * 0; /* independent: C near 0.5 */
        be[i] = rnd(2);
    }
    mm_cindex big;
    is_int(mm_cindex_harrell(bt, be, br, BIG, &big), 0, "Harrell's C on 200000 subjects");
    ok(fabs(big.c - 0.5) < 0.01, "independent risk: C %.4f near 0.5", big.c);
    free(bt);
    free(br);
    free(be);
}

// ---------------------------------------------------------------- edges, errors

static void test_edges(void)
{
    double t[] = {1, 2, 3, 4, 5};
    int e[] = {1, 0, 1, 1, 0}, g[] = {0, 0, 0, 0, 0};
    mm_km km;
    is_int(mm_km_fit(t, e, 0, MM_CI_LOG, 0.95, &km), 0, "km of no subjects");
    ok(km.n == 0 && km.nrows == 0 && isnan(km.median) && isnan(km.median_lower),
       "empty: no rows, median NAN");
    ok(isnan(mm_km_surv_at(&km, 1)) && mm_km_n_risk_at(&km, 1) == 0,
       "empty: S NAN, n.risk 0");
    mm_km_free(&km);
    mm_km_free(NULL);

    is_int(mm_km_fit(t, e, 5, MM_CI_NONE, 0.95, &km), 0, "km conf.type none");
    ok(isnan(km.rows[0].lower) && isnan(km.median_upper) && km.median == 4,
       "none: no CI, median 4");
    mm_km_free(&km);

    mm_logrank lr;
    is_int(mm_logrank_test(t, e, g, 5, 2, 0, 0, &lr), 0, "log-rank with one non-empty group");
    ok(lr.chisq == 0 && lr.df == 0 && isnan(lr.p), "one group: chisq 0, df 0, p NAN");
    ok(lr.observed[0] == 3 && fabs(lr.expected[0] - 3) < 1e-12 && lr.expected[1] == 0,
       "one group: observed = expected = 3 events");
    mm_logrank_free(&lr);
    mm_logrank_free(NULL);

    double bad[] = {1, -2, 3};
    int e3[] = {1, 1, 0}, e2[] = {1, 2, 0}, g3[] = {0, 1, 2};
    is_int(mm_km_fit(bad, e3, 3, MM_CI_LOG, 0.95, &km), -1, "negative time refused");
    like(mm_strerror(), "subject 2", "the message names the subject");
    is_int(mm_km_fit(t, e2, 3, MM_CI_LOG, 0.95, &km), -1, "event 2 refused");
    like(mm_strerror(), "expected 0 (censored), 1 (event)", "and says what is expected");
    is_int(mm_km_fit(t, e, 5, MM_CI_LOG, 1.5, &km), -1, "conf 1.5 refused");
    is_int(mm_logrank_test(t, e3, g3, 3, 2, 0, 0, &lr), -1, "group >= ngroups refused");
    like(mm_strerror(), "expected 0..1", "group message");
    mm_cindex cc;
    is_int(mm_cindex_harrell(bad, e3, t, 3, &cc), -1, "Harrell: negative time refused");
    double c;
    is_int(mm_cindex_uno(t, e, t, 5, NAN, &c), -1, "Uno: tau NAN refused");
    is_int(mm_cindex_harrell(t, e, t, 1, &cc), 0, "one subject");
    ok(isnan(cc.c) && cc.concordant == 0, "one subject: no pairs, C NAN");
}

int main(void)
{
    static const char *const src[] = { "survival/lung.tsv", NULL };
    real_in = real_inputs(src, "lung_cox_lp.tsv");
    const char *d = getenv("MMPATH_TEST_DATA"), *top = getenv("top_srcdir");
    snprintf(data_dir, sizeof data_dir, "%s", d);
    snprintf(fix_dir, sizeof fix_dir, "%s/tests/fixtures/survival",
             top && *top ? top : ".");

    lung_data L;
    lung_read(&L);
    tsv *in = need(fix_dir, "cases_input.tsv");

    test_lung_refs(&L);
    test_lung_ci(&L);
    test_km_fixtures(in, &L);
    test_logrank_fixtures(in, &L);
    test_concordance_fixtures(in);
    test_pchisq_qnorm();
    test_brute_force();
    test_edges();

    tsv_free(in);
    lung_free(&L);
    return done_testing();
}
