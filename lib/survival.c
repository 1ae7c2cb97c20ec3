/* survival.c: survival statistics computed as R's survival package 3.5-3
 * computes them: survfit's Kaplan-Meier table (Greenwood variance, log,
 * log-log and plain CIs, median as summary(survfit)$table), survdiff's
 * G-rho test (plus a gamma exponent), concordance()'s Harrell counts and
 * Uno's C, and the chi-square tail and normal quantile they need.
 * Not here: Cox models, weights, strata, I/O. The lib/mm/survival.h
 * comments are the contract; notes on where we follow R are below.
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mm/survival.h"

/* R's sqrt(.Machine$double.eps): the tolerance survmean() and
 * quantile.survfit() use to decide that S(t) "equals" 0.5 */
#define MEDIAN_TOL 1.4901161193847656e-08

/* Missing or bad input. Every entry point reads subjects the same way:
 * NAN time or event < 0 is missing (skipped); otherwise the time must be
 * finite and >= 0 and the event 0 or 1.
 * @return 1 use, 0 skip, -1 error (message set). */
static int subject_ok(const double *time, const int *event, size_t i)
{
    if (isnan(time[i]) || event[i] < 0) return 0;
    if (!isfinite(time[i]) || time[i] < 0) {
        mm__set_error("survival time of subject %zu is %g: expected a "
                      "finite number >= 0 (NAN for missing)", i + 1, time[i]);
        return -1;
    }
    if (event[i] > 1) {
        mm__set_error("event of subject %zu is %d: expected 0 (censored), "
                      "1 (event) or < 0 (missing)", i + 1, event[i]);
        return -1;
    }
    return 1;
}

// ---------------------------------------------------------------- Kaplan-Meier

typedef struct {
    double t;
    int ev;
} km_subj;

static int km_subj_cmp(const void *a, const void *b)
{
    const km_subj *x = a, *y = b;
    return (x->t > y->t) - (x->t < y->t);
}

/* survfit_confint() of R survival, logse = TRUE, for one time point:
 * P the survival, SE the standard error of log S. R's NA and NaN are
 * both NAN here. */
static void km_ci(mm_ci_type ci, double z, double p, double se,
                  double *lo, double *hi)
{
    switch (ci) {
    case MM_CI_PLAIN: {
        double se2 = se * p * z;            /* Inf * 0 = NaN at S = 0, as R */
        if (p == 0) se2 = NAN;
        *lo = isnan(se2) ? NAN : fmax(p - se2, 0);
        *hi = isnan(se2) ? NAN : fmin(p + se2, 1);
        break;
    }
    case MM_CI_LOG:
        if (p == 0) {
            *lo = *hi = NAN;
        } else {
            double se2 = z * se;
            *lo = exp(log(p) - se2);
            *hi = fmin(exp(log(p) + se2), 1);
        }
        break;
    case MM_CI_LOGLOG:
        if (p == 0 || p == 1) {
            *lo = *hi = NAN;
        } else {
            double se2 = z * se / log(p);
            *lo = exp(-exp(log(-log(p)) - se2));
            *hi = exp(-exp(log(-log(p)) + se2));
        }
        break;
    default:
        *lo = *hi = NAN;
        break;
    }
}

/* minmin() of R survival's survmean(), which gives the median of
 * summary(survfit)$table from the curve Y (surv, lower or upper) at the
 * NROWS times of ROWS: the first time with Y < 0.5 (NAN values skipped);
 * when that Y is 0.5 within MEDIAN_TOL, the midpoint between it and the
 * next time Y drops further, or the time itself if it never does.
 * (quantile.survfit() differs in one case: a curve that ends flat at 0.5
 * gives the midpoint with the last time there; the table does not.) */
enum { CURVE_SURV, CURVE_LOWER, CURVE_UPPER };

static double curve_at(const mm_km_row *r, int which)
{
    return which == CURVE_SURV ? r->surv : which == CURVE_LOWER ? r->lower
                                                                 : r->upper;
}

static double km_minmin(const mm_km_row *rows, size_t nrows, int which)
{
    for (size_t k = 0; k < nrows; k++) {
        double y = curve_at(&rows[k], which);
        if (isnan(y) || !(y < 0.5 + MEDIAN_TOL)) continue;
        if (fabs(y - 0.5) < MEDIAN_TOL) {
            for (size_t m = k + 1; m < nrows; m++) {
                double y2 = curve_at(&rows[m], which);
                if (!isnan(y2) && y2 < y)
                    return (rows[k].time + rows[m].time) / 2;
            }
        }
        return rows[k].time;
    }
    return NAN;
}

int mm_km_fit(const double *time, const int *event, size_t n, mm_ci_type ci,
              double conf, mm_km *out)
{
    MM_ASSERT(out != NULL);
    memset(out, 0, sizeof *out);
    out->median = out->median_lower = out->median_upper = NAN;
    out->ci = ci;
    out->conf = conf;
    if (ci != MM_CI_LOG && ci != MM_CI_LOGLOG && ci != MM_CI_PLAIN &&
        ci != MM_CI_NONE) {
        mm__set_error("confidence interval type %d: expected log, log-log, "
                      "plain or none", (int)ci);
        return -1;
    }
    if (!(conf > 0 && conf < 1)) {
        mm__set_error("confidence level %g: expected a number in (0, 1)", conf);
        return -1;
    }
    MM_ASSERT(n == 0 || (time != NULL && event != NULL));

    km_subj *s = mm_malloc((n ? n : 1) * sizeof *s);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        int r = subject_ok(time, event, i);
        if (r < 0) {
            free(s);
            return -1;
        }
        if (r) s[m++] = (km_subj){time[i], event[i]};
    }
    out->n = m;
    if (m == 0) {                      /* an empty group: no rows, NAN median */
        free(s);
        return 0;
    }
    qsort(s, m, sizeof *s, km_subj_cmp);

    size_t nd = 1;
    for (size_t i = 1; i < m; i++) nd += s[i].t != s[i - 1].t;
    mm_km_row *rows = mm_calloc(nd, sizeof *rows);

    /* z as R: qnorm(1 - (1 - conf.int)/2) */
    double z = mm_qnorm(1 - (1 - conf) / 2);
    double km = 1, v = 0;              /* survival, Greenwood sum */
    size_t k = 0, events = 0;
    for (size_t i = 0; i < m; k++) {
        size_t j = i, d = 0;
        for (; j < m && s[j].t == s[i].t; j++) d += (size_t)s[j].ev;
        mm_km_row *r = &rows[k];
        double nrisk = (double)(m - i), dd = (double)d;
        r->time = s[i].t;
        r->n_risk = nrisk;
        r->n_event = dd;
        r->n_censor = (double)(j - i - d);
        if (d > 0) {                   /* survfitkm.c, type 1 */
            km *= (nrisk - dd) / nrisk;
            v = nrisk == dd ? INFINITY : v + dd / (nrisk * (nrisk - dd));
        }
        events += d;
        r->surv = km;
        r->std_err_logS = sqrt(v);
        /* summary.survfit's std.err = surv * std.err: 0 * Inf is NaN in R */
        r->std_err = isinf(r->std_err_logS) ? NAN : km * r->std_err_logS;
        km_ci(ci, z, km, r->std_err_logS, &r->lower, &r->upper);
        i = j;
    }
    free(s);
    out->rows = rows;
    out->nrows = nd;
    out->events = events;
    out->median = km_minmin(rows, nd, CURVE_SURV);
    if (ci != MM_CI_NONE) {
        /* the lower curve crosses 0.5 first: it gives the lower limit */
        out->median_lower = km_minmin(rows, nd, CURVE_LOWER);
        out->median_upper = km_minmin(rows, nd, CURVE_UPPER);
    }
    return 0;
}

void mm_km_free(mm_km *km)
{
    if (!km) return;
    free(km->rows);
    km->rows = NULL;
    km->nrows = 0;
}

/* Index of the last row with time <= T, or -1 (none). */
static ptrdiff_t km_find_le(const mm_km *km, double t)
{
    size_t lo = 0, hi = km->nrows;     /* first row with time > t in [lo, hi] */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (km->rows[mid].time <= t) lo = mid + 1;
        else hi = mid;
    }
    return (ptrdiff_t)lo - 1;
}

/* An empty fit (no subjects) has no curve: NAN. */
double mm_km_surv_at(const mm_km *km, double t)
{
    MM_ASSERT(km != NULL);
    if (isnan(t) || km->nrows == 0) return NAN;
    ptrdiff_t k = km_find_le(km, t);
    return k < 0 ? 1.0 : km->rows[k].surv;
}

/* The n.risk of the first row at or after T (rows hold every distinct
 * time, so that is the number with time >= T); 0 past the last time. */
double mm_km_n_risk_at(const mm_km *km, double t)
{
    MM_ASSERT(km != NULL);
    if (isnan(t)) return NAN;
    ptrdiff_t k = km_find_le(km, t);
    if (k >= 0 && km->rows[k].time == t) return km->rows[k].n_risk;
    size_t next = (size_t)(k + 1);
    return next < km->nrows ? km->rows[next].n_risk : 0;
}

// ---------------------------------------------------------------- log-rank

typedef struct {
    double t;
    int ev, g;
} lr_subj;

static int lr_subj_cmp(const void *a, const void *b)
{
    const lr_subj *x = a, *y = b;
    return (x->t > y->t) - (x->t < y->t);
}

/* Solve A x = B for the S x S symmetric positive semi-definite A (row
 * major, overwritten) with a generalized inverse: an LDL' factorization
 * in which pivots below 1e-9 of the largest diagonal are taken as 0 (as
 * survival's cholesky2/chsolve2). B is overwritten by x. */
static void sym_ginv_solve(double *a, double *b, size_t s)
{
    double eps = 0;
    for (size_t i = 0; i < s; i++) eps = fmax(eps, fabs(a[i * s + i]));
    eps *= 1e-9;
    for (size_t i = 0; i < s; i++) {
        double piv = a[i * s + i];
        if (!(piv > eps)) {
            a[i * s + i] = 0;
            for (size_t j = i + 1; j < s; j++) a[j * s + i] = 0;
            continue;
        }
        for (size_t j = i + 1; j < s; j++) {
            double t = a[j * s + i] / piv;
            a[j * s + i] = t;
            a[j * s + j] -= t * t * piv;
            for (size_t k = j + 1; k < s; k++) a[k * s + j] -= t * a[k * s + i];
        }
    }
    for (size_t i = 0; i < s; i++)          /* L y = b */
        for (size_t j = 0; j < i; j++) b[i] -= a[i * s + j] * b[j];
    for (size_t i = s; i-- > 0;) {          /* D L' x = y */
        double d = a[i * s + i];
        b[i] = d == 0 ? 0 : b[i] / d;
        for (size_t j = i + 1; j < s; j++) b[i] -= a[j * s + i] * b[j];
    }
}

int mm_logrank_test(const double *time, const int *event, const int *group,
                    size_t n, int ngroups, double rho, double gamma,
                    mm_logrank *out)
{
    MM_ASSERT(out != NULL);
    memset(out, 0, sizeof *out);
    out->chisq = out->p = NAN;
    if (ngroups < 1) {
        mm__set_error("%d groups: expected at least 1", ngroups);
        return -1;
    }
    if (!isfinite(rho) || !isfinite(gamma)) {
        mm__set_error("weights S^rho (1-S)^gamma with rho %g, gamma %g: "
                      "expected finite numbers", rho, gamma);
        return -1;
    }
    MM_ASSERT(n == 0 || (time != NULL && event != NULL && group != NULL));
    size_t ng = (size_t)ngroups;

    lr_subj *s = mm_malloc((n ? n : 1) * sizeof *s);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        int r = subject_ok(time, event, i);
        if (r > 0 && group[i] >= ngroups) {
            mm__set_error("group of subject %zu is %d: expected 0..%d "
                          "(< 0 for missing)", i + 1, group[i], ngroups - 1);
            r = -1;
        }
        if (r < 0) {
            free(s);
            return -1;
        }
        if (r && group[i] >= 0) s[m++] = (lr_subj){time[i], event[i], group[i]};
    }
    qsort(s, m, sizeof *s, lr_subj_cmp);

    double *obs = mm_calloc(ng, sizeof *obs);
    double *exp_ = mm_calloc(ng, sizeof *exp_);
    double *var = mm_calloc(ng * ng, sizeof *var);
    double *risk = mm_calloc(ng, sizeof *risk);
    double *kaplan = mm_malloc((m ? m : 1) * sizeof *kaplan);
    int weighted = rho != 0 || gamma != 0;

    /* The pooled KM as a left-continuous function, S(t-), for the weights
     * (survdiff2.c). */
    if (weighted) {
        double km = 1;
        for (size_t i = 0; i < m;) {
            double nrisk = (double)(m - i), deaths = 0;
            size_t j = i;
            for (; j < m && s[j].t == s[i].t; j++) {
                kaplan[j] = km;
                deaths += s[j].ev;
            }
            km = km * (nrisk - deaths) / nrisk;
            i = j;
        }
    }

    /* survdiff2.c's sums, from the last time back (the risk sets grow) */
    for (size_t i = m; i > 0;) {
        size_t last = i - 1, j = i;
        double wt = 1, deaths = 0;
        if (weighted)
            wt = pow(kaplan[last], rho) * pow(1 - kaplan[last], gamma);
        while (j > 0 && s[j - 1].t == s[last].t) {
            j--;
            deaths += s[j].ev;
            risk[s[j].g] += 1;
            obs[s[j].g] += s[j].ev * wt;
        }
        i = j;
        double nrisk = (double)(m - j);
        if (deaths > 0) {
            for (size_t k = 0; k < ng; k++)
                exp_[k] += wt * deaths * risk[k] / nrisk;
            if (nrisk == 1) continue;   /* one subject: no variance */
            double w2 = wt * wt;
            for (size_t a = 0; a < ng; a++) {
                double tmp = w2 * deaths * risk[a] * (nrisk - deaths) /
                             (nrisk * (nrisk - 1));
                var[a * ng + a] += tmp;
                for (size_t b = 0; b < ng; b++)
                    var[a * ng + b] -= tmp * risk[b] / nrisk;
            }
        }
    }
    free(kaplan);
    free(risk);
    free(s);

    /* survdiff(): groups with expected 0 (no subjects, or none at risk at
     * any event time) are left out; the first of the rest is dropped and
     * the quadratic form taken on the others. */
    size_t *keep = mm_malloc(ng * sizeof *keep), nk = 0;
    for (size_t k = 0; k < ng; k++)
        if (exp_[k] > 0) keep[nk++] = k;
    if (nk < 2) {
        /* R's survdiff() stops ("There is only 1 group") or reports df 0
         * and p = pchisq(0, 0, lower = FALSE) = 0; with no test possible
         * we say chisq 0, df 0, p NAN. */
        out->chisq = 0;
        out->df = 0;
        out->p = NAN;
    } else {
        size_t sz = nk - 1;
        double *a = mm_malloc(sz * sz * sizeof *a);
        double *u = mm_malloc(sz * sizeof *u), *x = mm_malloc(sz * sizeof *x);
        for (size_t r = 0; r < sz; r++) {
            size_t gr = keep[r + 1];
            u[r] = x[r] = obs[gr] - exp_[gr];
            for (size_t c = 0; c < sz; c++) a[r * sz + c] = var[gr * ng + keep[c + 1]];
        }
        sym_ginv_solve(a, x, sz);
        double chi = 0;
        for (size_t r = 0; r < sz; r++) chi += x[r] * u[r];
        out->chisq = chi;
        out->df = (int)sz;
        out->p = mm_pchisq_upper(chi, out->df);
        free(a);
        free(u);
        free(x);
    }
    free(keep);
    out->ngroups = ngroups;
    out->observed = obs;
    out->expected = exp_;
    out->var = var;
    return 0;
}

void mm_logrank_free(mm_logrank *lr)
{
    if (!lr) return;
    free(lr->observed);
    free(lr->expected);
    free(lr->var);
    lr->observed = lr->expected = lr->var = NULL;
}

// ---------------------------------------------------------------- chi-square, normal

/* Stirling's error, log(n!) - log(sqrt(2 pi n) (n/e)^n), for n = k/2,
 * k = 0..30 (computed with mpmath at 40 digits) */
static const double stirl_half[31] = {
    0.0,                      0.15342640972002734529,
    0.08106146679532725822,   0.054814121051917653896,
    0.041340695955409294094,  0.033162873519936287485,
    0.027677925684998339149,  0.023746163656297495971,
    0.020790672103765093112,  0.018488450532673185231,
    0.016644691189821192163,  0.015134973221917378874,
    0.013876128823070747999,  0.012810465242920226924,
    0.011896709945891770095,  0.011104559758206917327,
    0.010411265261972096497,  0.0097994161261588032984,
    0.0092554621827127329177, 0.008768700134139385463,
    0.0083305634333628712565, 0.0079341145643140205472,
    0.007573675487951840795,  0.0072445543013203831795,
    0.0069428401072095298657, 0.0066652470327076824424,
    0.0064089941880042070684, 0.0061717122630394576475,
    0.0059513701127588477356, 0.005746216513010115682,
    0.005554733551962801371,
};

/* Stirling's error for a half-integer A > 0 (the table, else the
 * asymptotic series 1/12n - 1/360n^3 + 1/1260n^5 - 1/1680n^7 + 1/1188n^9,
 * whose next term is below 1e-16 relative for n > 15) */
static double stirlerr_half(double a)
{
    if (a <= 15) return stirl_half[(int)(2 * a + 0.5)];
    double nn = a * a;
    return (1.0 / 12 - (1.0 / 360 - (1.0 / 1260 - (1.0 / 1680 -
            1.0 / (1188 * nn)) / nn) / nn) / nn) / a;
}

/* x log(x/m) + m - x without cancellation when x ~ m (Loader 2000) */
static double bd0(double x, double m)
{
    if (fabs(x - m) < 0.1 * (x + m)) {
        double v = (x - m) / (x + m), s = (x - m) * v, ej = 2 * x * v;
        v *= v;
        for (int j = 1; j < 1000; j++) {
            ej *= v;
            double s1 = s + ej / (2 * j + 1);
            if (s1 == s) return s1;
            s = s1;
        }
        return s;
    }
    return x * log(x / m) + m - x;
}

/* x^a e^-x / Gamma(a) for a half-integer a > 0 and x > 0, computed as
 * a * e^-(stirlerr(a) + bd0(a, x)) / sqrt(2 pi a): no large terms cancel */
static double gamma_prefactor(double a, double x)
{
    return a * exp(-stirlerr_half(a) - bd0(a, x)) / sqrt(6.283185307179586476925 * a);
}

/* Q(df/2, x/2): the series for P when x/2 < a + 1, else the continued
 * fraction for Q (modified Lentz), as in Numerical Recipes' gser/gcf. */
double mm_pchisq_upper(double x, int df)
{
    if (isnan(x) || df <= 0) return NAN;
    if (x <= 0) return 1;
    if (isinf(x)) return 0;
    double a = df / 2.0, h = x / 2;
    double pre = gamma_prefactor(a, h);
    if (h < a + 1) {
        double ap = a, del = 1 / a, sum = del;
        for (int i = 0; i < 100000; i++) {
            ap += 1;
            del *= h / ap;
            sum += del;
            if (fabs(del) < fabs(sum) * DBL_EPSILON / 4) break;
        }
        return 1 - pre * sum;
    }
    const double tiny = 1e-300;
    double b = h + 1 - a, c = 1 / tiny, d = 1 / b, f = d;
    for (int i = 1; i < 100000; i++) {
        double an = -i * (i - a);
        b += 2;
        d = an * d + b;
        if (fabs(d) < tiny) d = tiny;
        c = b + an / c;
        if (fabs(c) < tiny) c = tiny;
        d = 1 / d;
        double del = d * c;
        f *= del;
        if (fabs(del - 1) < DBL_EPSILON / 4) break;
    }
    return pre * f;
}

/* Wichura's AS 241 (PPND16), relative accuracy about 1e-16: rational
 * approximations for |p - 0.5| <= 0.425, then in r = sqrt(-log(min(p,
 * 1-p))) for r <= 5 and r > 5. */
double mm_qnorm(double p)
{
    if (isnan(p) || p < 0 || p > 1) return NAN;
    if (p == 0) return -INFINITY;
    if (p == 1) return INFINITY;
    double q = p - 0.5, r, val;
    if (fabs(q) <= 0.425) {
        r = 0.180625 - q * q;
        return q * (((((((r * 2509.0809287301226727 +
                          33430.575583588128105) * r + 67265.770927008700853) * r +
                        45921.953931549871457) * r + 13731.693765509461125) * r +
                      1971.5909503065514427) * r + 133.14166789178437745) * r +
                    3.387132872796366608) /
               (((((((r * 5226.495278852854561 +
                      28729.085735721942674) * r + 39307.89580009271061) * r +
                    21213.794301586595867) * r + 5394.1960214247511077) * r +
                  687.1870074920579083) * r + 42.313330701600911252) * r + 1.0);
    }
    r = q < 0 ? p : 1 - p;
    r = sqrt(-log(r));
    if (r <= 5) {
        r -= 1.6;
        val = (((((((r * 7.7454501427834140764e-4 +
                     0.0227238449892691845833) * r + 0.24178072517745061177) * r +
                   1.27045825245236838258) * r + 3.64784832476320460504) * r +
                 5.7694972214606914055) * r + 4.6303378461565452959) * r +
               1.42343711074968357734) /
              (((((((r * 1.05075007164441684324e-9 +
                     5.475938084995344946e-4) * r + 0.0151986665636164571966) * r +
                   0.14810397642748007459) * r + 0.68976733498510000455) * r +
                 1.6763848301838038494) * r + 2.05319162663775882187) * r + 1.0);
    } else {
        r -= 5;
        val = (((((((r * 2.01033439929228813265e-7 +
                     2.71155556874348757815e-5) * r + 0.0012426609473880784386) * r +
                   0.026532189526576123093) * r + 0.29656057182850489123) * r +
                 1.7848265399172913358) * r + 5.4637849111641143699) * r +
               6.6579046435011037772) /
              (((((((r * 2.04426310338993978564e-15 +
                     1.4215117583164458887e-7) * r + 1.8463183175100546818e-5) * r +
                   7.868691311456132591e-4) * r + 0.0148753612908506148525) * r +
                 0.13692988092273580531) * r + 0.59983220655588793769) * r + 1.0);
    }
    return q < 0 ? -val : val;
}

// ---------------------------------------------------------------- concordance

typedef struct {
    double t, r;
    int ev;
    size_t rank;      /* 1-based rank of r among the distinct risks */
    double w;         /* weight of the pairs this subject's event opens */
} cc_subj;

static int cc_risk_cmp(const void *a, const void *b)
{
    const cc_subj *x = a, *y = b;
    return (x->r > y->r) - (x->r < y->r);
}

/* time descending; at a time, censored before events; then by risk */
static int cc_time_cmp(const void *a, const void *b)
{
    const cc_subj *x = a, *y = b;
    if (x->t != y->t) return x->t < y->t ? 1 : -1;
    if (x->ev != y->ev) return x->ev - y->ev;
    return (x->rank > y->rank) - (x->rank < y->rank);
}

/* Fenwick tree of counts over ranks 1..n */
static void bit_add(size_t *bit, size_t n, size_t i)
{
    for (; i <= n; i += i & (~i + 1)) bit[i]++;
}

static size_t bit_sum(const size_t *bit, size_t i)   /* ranks 1..i */
{
    size_t s = 0;
    for (; i > 0; i -= i & (~i + 1)) s += bit[i];
    return s;
}

/* Read the subjects (risk NAN counts as missing too), rank the risks.
 * @return the number used, or (size_t)-1 on error. */
static size_t cc_load(const double *time, const int *event, const double *risk,
                      size_t n, cc_subj *s, size_t *nrank)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        int r = subject_ok(time, event, i);
        if (r < 0) return (size_t)-1;
        if (r && !isnan(risk[i])) s[m++] = (cc_subj){time[i], risk[i], event[i], 0, 1};
    }
    qsort(s, m, sizeof *s, cc_risk_cmp);
    size_t rk = 0;
    for (size_t i = 0; i < m; i++) {
        if (i == 0 || s[i].r != s[i - 1].r) rk++;  /* equal risks share a rank */
        s[i].rank = rk;
    }
    *nrank = rk;
    qsort(s, m, sizeof *s, cc_time_cmp);
    return m;
}

/* The pair counts of concordance3.c, from the longest time down: the tree
 * holds everyone with a longer time and those censored at this time; each
 * event is compared with them (weighted by its w), then the events of the
 * time are added. S is sorted by cc_time_cmp. */
static void cc_count(const cc_subj *s, size_t m, size_t nrank, mm_cindex *out)
{
    size_t *bit = mm_calloc(nrank + 1, sizeof *bit);
    size_t in = 0;
    double conc = 0, disc = 0, tx = 0, ty = 0;
    for (size_t i = 0; i < m;) {
        size_t j = i;
        for (; j < m && s[j].t == s[i].t && !s[j].ev; j++) {
            bit_add(bit, nrank, s[j].rank);
            in++;
        }
        size_t e0 = j;                 /* the events at this time */
        for (; j < m && s[j].t == s[i].t; j++) {
            size_t below = bit_sum(bit, s[j].rank - 1);
            size_t same = bit_sum(bit, s[j].rank) - below;
            conc += s[j].w * (double)below;        /* outlived by a lower risk */
            disc += s[j].w * (double)(in - below - same);
            tx += s[j].w * (double)same;
        }
        /* events tied in time: pairs with different risks are tied.y
         * (R counts those with equal risks as tied.xy; not kept here) */
        size_t d = j - e0, run = 1;
        double pairs = d > 1 ? (double)d * (double)(d - 1) / 2 : 0;
        for (size_t k = e0 + 1; d > 1 && k <= j; k++) {
            if (k < j && s[k].rank == s[k - 1].rank) {
                run++;
            } else {
                pairs -= (double)run * (double)(run - 1) / 2;
                run = 1;
            }
        }
        if (d > 1) ty += s[e0].w * pairs;
        for (size_t k = e0; k < j; k++) {
            bit_add(bit, nrank, s[k].rank);
            in++;
        }
        i = j;
    }
    free(bit);
    out->concordant = conc;
    out->discordant = disc;
    out->tied_risk = tx;
    out->tied_time = ty;
    out->c = (conc + tx / 2) / (conc + disc + tx);   /* NAN: no pairs */
}

/* Subjects with a NAN risk are skipped like those with a missing time or
 * event. tied_time counts R's tied.y: event pairs at one time with
 * different risks (R's tied.xy, equal risks too, is not reported). */
int mm_cindex_harrell(const double *time, const int *event, const double *risk,
                      size_t n, mm_cindex *out)
{
    MM_ASSERT(out != NULL);
    MM_ASSERT(n == 0 || (time != NULL && event != NULL && risk != NULL));
    memset(out, 0, sizeof *out);
    out->c = NAN;
    cc_subj *s = mm_malloc((n ? n : 1) * sizeof *s);
    size_t nrank = 0, m = cc_load(time, event, risk, n, s, &nrank);
    if (m == (size_t)-1) {
        free(s);
        return -1;
    }
    cc_count(s, m, nrank, out);
    free(s);
    return 0;
}

/* Matches R survival 3.5-3's concordance(..., timewt = "n/G2", ymax = TAU)
 * (reverse = TRUE for a risk score): each comparable pair whose earlier
 * time t is an event is weighted 1/G(t-)^2, G the Kaplan-Meier of the
 * censoring times with censorings at t coming after the events at t
 * (fastkm.c), and events after TAU get weight 0 (an event at exactly TAU
 * counts); pairs are those of Harrell's C, equal risks count 1/2.
 * scikit-survival 0.28's concordance_index_ipcw differs in three details:
 * it weights by G(t) (censorings at t included), keeps only times < tau,
 * and takes risks within 1e-8 as tied; without censorings at event times,
 * event times at tau or near-tied risks the two agree. TAU = INFINITY: no
 * truncation. With no comparable pair *C is NAN. */
int mm_cindex_uno(const double *time, const int *event, const double *risk,
                  size_t n, double tau, double *c)
{
    MM_ASSERT(c != NULL);
    MM_ASSERT(n == 0 || (time != NULL && event != NULL && risk != NULL));
    *c = NAN;
    if (isnan(tau)) {
        mm__set_error("truncation time tau is NAN: expected a number "
                      "(INFINITY for none)");
        return -1;
    }
    cc_subj *s = mm_malloc((n ? n : 1) * sizeof *s);
    size_t nrank = 0, m = cc_load(time, event, risk, n, s, &nrank);
    if (m == (size_t)-1) {
        free(s);
        return -1;
    }
    /* G(t-) from the earliest time up (S is sorted by time descending) */
    double g = 1;
    for (size_t i = m; i > 0;) {
        size_t j = i;
        double cens = 0;
        while (j > 0 && s[j - 1].t == s[i - 1].t) {
            j--;
            if (!s[j].ev) cens++;
        }
        for (size_t k = j; k < i; k++)
            s[k].w = s[k].ev && s[k].t <= tau ? 1 / (g * g) : 0;
        if (cens > 0) {
            /* at risk of censoring at t: the J later subjects and those
             * censored at t (the events at t came first) */
            double nr = (double)j + cens;
            g = g * (nr - cens) / nr;
        }
        i = j;
    }
    mm_cindex cc;
    cc_count(s, m, nrank, &cc);
    free(s);
    *c = cc.c;
    return 0;
}
