/* cox.c: univariate Cox proportional-hazards fits as R's survival 3.5-3
 * computes coxph(Surv(time, event) ~ x) with its defaults: coxph.fit's
 * Newton-Raphson (C routine coxfit6) for one covariate, Efron or Breslow
 * ties, and the Wald test of summary.coxph. Not here: several covariates,
 * strata, weights, offsets, (start, stop] data, robust variances.
 * The lib/mm/cox.h comment is the contract; where we follow R is below.
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <math.h>
#include <stdlib.h>

#include "mm/cox.h"
#include "mm/survival.h"

/* coxph.control(): eps, iter.max, toler.chol = .Machine$double.eps^0.75 */
#define COX_EPS 1e-9
#define COX_ITER_MAX 20
#define COX_TOLER_CHOL 1.8189894035458617e-12
/* aeqSurv()'s tolerance, sqrt(.Machine$double.eps) */
#define TIMEFIX_TOL 1.4901161193847656e-08

/* How this follows R, step by step (coxph -> coxph.fit -> coxfit6):
 *   - rows with a missing x, time or event are dropped (model.frame's
 *     na.omit); an infinite x is an error ("data contains an infinite
 *     predictor"), and so are no rows at all; times must be finite and
 *     >= 0 and events 0/1, as everywhere in lib/survival.c (R would take
 *     negative times);
 *   - no events: coxph returns NA with var 0, loglik (0, 0) and 0
 *     iterations without fitting; we return coef, se, z, p = NAN (R's se
 *     is 0, the inverse of a zero information by its generalised-inverse
 *     convention; NAN says "no estimate" better), loglik0 = loglik = 0,
 *     iters 0, converged 1;
 *   - times closer than aeqSurv's tolerance are made equal (timefix);
 *   - the rows are ordered by time, stably (R's order() is a radix sort);
 *   - x is centred and scaled by n / sum|x - mean| (coxfit6's doscale),
 *     except when every value is -1, 0 or 1 (coxph's nocenter);
 *   - Newton-Raphson from 0 with step halving, the relative-loglik test,
 *     and R's 1x1 cholesky2/chsolve2/chinv2 (rank 0 when the information
 *     is not positive; a zero information gives step 0 and variance 0);
 *   - a singular fit (rank < 1 and variance 0, as a constant x gives) has
 *     an NA coefficient in R; we return coef, se, z, p = NAN and keep
 *     loglik and iters (R: 1 iteration);
 *   - out of iterations, R recomputes the loglik and variance at the last
 *     accepted beta and reports iter = iter.max + 1; so do we, with
 *     converged = 0. A loglik of exactly 0 (the only event at the last
 *     time, one subject) never passes |1 - 0/0| <= eps: R runs out of
 *     iterations with coef 0, se 0, p NaN, and so do we. R's other
 *     warning ("Loglik converged before variable 1; coefficient may be
 *     infinite") is a converged fit to R and here (converged = 1);
 *   - se = sqrt(var), z = coef / se, p = pchisq(z^2, 1, lower = FALSE).
 * The arithmetic is coxfit6's, in its order, so on the same libm the
 * numbers agree with R's to the last bits, or nearly. */

typedef struct {
    double t;
    size_t i;      /* input row: the tie-breaker, for a stable order */
} trow;

static int trow_cmp(const void *pa, const void *pb)
{
    const trow *a = pa, *b = pb;
    if (a->t < b->t) return -1;
    if (a->t > b->t) return 1;
    return (a->i > b->i) - (a->i < b->i);
}

/* R's mean() of doubles: a long double sum, then one correction pass */
static double r_mean(const double *v, size_t n)
{
    long double s = 0;
    for (size_t k = 0; k < n; k++) s += v[k];
    s /= (long double)n;
    if (isfinite((double)s)) {
        long double t = 0;
        for (size_t k = 0; k < n; k++) t += v[k] - s;
        s += t / (long double)n;
    }
    return (double)s;
}

/* aeqSurv(): with y the sorted distinct times, y[k] joins y[k-1]'s group
 * when y[k] - y[k-1] <= tol or (y[k] - y[k-1]) / mean(|y|) <= tol; every
 * time becomes the first of its group. R[0..m) is sorted by time.
 * @return whether any time changed. */
static int timefix(trow *r, size_t m)
{
    double *y = mm_malloc(m * sizeof *y);
    size_t ny = 0;
    for (size_t k = 0; k < m; k++)
        if (ny == 0 || r[k].t != y[ny - 1]) y[ny++] = r[k].t;
    for (size_t k = 0; k < ny; k++) y[k] = fabs(y[k]);
    double mabs = r_mean(y, ny);
    int changed = 0;
    double prev = r[0].t, cut = r[0].t;
    for (size_t k = 1; k < m; k++) {
        double t = r[k].t;
        if (t != prev) {
            double dy = t - prev;
            if (!(dy <= TIMEFIX_TOL || dy / mabs <= TIMEFIX_TOL)) cut = t;
            prev = t;
        }
        if (r[k].t != cut) {
            r[k].t = cut;
            changed = 1;
        }
    }
    free(y);
    return changed;
}

// ---------------------------------------------------------------- coxfit6

typedef struct {
    size_t m;
    const double *t;  /* (m) times, ascending */
    const int *ev;    /* (m) 0/1 */
    const double *x;  /* (m) covariate, centred and scaled */
    int efron;
    double u, imat;   /* score and information at the last beta */
} cox_data;

/* coxfit6_iter for one covariate, unit weights, no offset, one stratum:
 * returns the log partial likelihood at BETA and sets d->u, d->imat. The
 * risk sets are built from the last time backwards; tied deaths enter
 * all at once (Breslow) or in ndead equal parts (Efron). */
static double cox_iter(cox_data *d, double beta)
{
    double loglik = 0, u = 0, imat = 0, a2 = 0, cmat2 = 0;
    double denom = 0, a = 0, cmat = 0;
    const double *t = d->t, *x = d->x;
    const int *ev = d->ev;

    for (size_t p = d->m; p > 0;) {
        double dtime = t[p - 1], deadwt = 0, denom2 = 0;
        int ndead = 0;
        while (p > 0 && t[p - 1] == dtime) {
            p--;
            double zbeta = 0 + beta * x[p];
            double risk = exp(zbeta);
            if (ev[p] == 0) {
                denom += risk;
                a += risk * x[p];
                cmat += risk * x[p] * x[p];
            } else {
                ndead++;
                deadwt += 1;
                denom2 += risk;
                loglik += zbeta;
                u += x[p];
                a2 += risk * x[p];
                cmat2 += risk * x[p] * x[p];
            }
        }
        if (ndead == 0) continue;
        if (!d->efron || ndead == 1) {
            denom += denom2;
            loglik -= deadwt * log(denom);
            a += a2;
            double mean = a / denom;
            u -= deadwt * mean;
            cmat += cmat2;
            imat += deadwt * (cmat - mean * a) / denom;
        } else {
            double wtave = deadwt / ndead;
            for (int k = 0; k < ndead; k++) {
                denom += denom2 / ndead;
                loglik -= wtave * log(denom);
                a += a2 / ndead;
                double mean = a / denom;
                u -= wtave * mean;
                cmat += cmat2 / ndead;
                imat += wtave * (cmat - mean * a) / denom;
            }
        }
        a2 = 0;
        cmat2 = 0;
    }
    d->u = u;
    d->imat = imat;
    return loglik;
}

/* cholesky2() on a 1x1 matrix: the rank, 0 or 1. A pivot that is not
 * finite or below toler * itself is zeroed; a matrix with no positive
 * diagonal is left as it is (rank 0). */
static int chol1(double *m)
{
    double eps = 0;
    if (*m > eps) eps = *m;
    if (eps == 0) return 0;
    eps *= COX_TOLER_CHOL;
    if (isnan(*m) || isinf(*m) || *m < eps) {
        *m = 0;
        return 0;
    }
    return 1;
}

/* chsolve2(): y / m, 0 for a zeroed pivot */
static double chsolve1(double m, double y)
{
    return m == 0 ? 0 : y / m;
}

/* chinv2(): 1 / m for a positive m, else m unchanged */
static double chinv1(double m)
{
    return m > 0 ? 1 / m : m;
}

// ---------------------------------------------------------------- the fit

static void fit_na(mm_cox_fit *out)
{
    out->coef = out->se = out->z = out->p = NAN;
}

int mm_cox_univariate(const double *time, const int *event, const double *x,
                      size_t n, int breslow, mm_cox_fit *out)
{
    MM_ASSERT(out != NULL);
    MM_ASSERT(n == 0 || (time && event && x));
    fit_na(out);
    out->loglik0 = out->loglik = NAN;
    out->iters = 0;
    out->converged = 0;

    size_t m = 0, nevent = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(x[i]) || isnan(time[i]) || event[i] < 0) continue;
        if (isinf(x[i])) {
            mm__set_error("covariate of subject %zu is %g: expected a "
                          "finite number (NAN for missing)", i + 1, x[i]);
            return -1;
        }
        if (!isfinite(time[i]) || time[i] < 0) {
            mm__set_error("survival time of subject %zu is %g: expected a "
                          "finite number >= 0 (NAN for missing)", i + 1,
                          time[i]);
            return -1;
        }
        if (event[i] > 1) {
            mm__set_error("event of subject %zu is %d: expected 0 (censored), "
                          "1 (event) or < 0 (missing)", i + 1, event[i]);
            return -1;
        }
        m++;
        nevent += event[i] == 1;
    }
    if (m == 0) {
        mm__set_error("no subject has a time, an event and a covariate "
                      "value (of %zu)", n);
        return -1;
    }
    if (nevent == 0) {            /* coxph's early return: NA, loglik 0 */
        out->loglik0 = out->loglik = 0;
        out->converged = 1;
        return 0;
    }

    /* one block: the sort keys, then times, covariate and events */
    trow *r = mm_malloc(m * sizeof *r);
    double *st = mm_malloc(2 * m * sizeof *st), *sx = st + m;
    int *se = mm_malloc(m * sizeof *se);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(x[i]) || isnan(time[i]) || event[i] < 0) continue;
        r[k].t = time[i];
        r[k++].i = i;
    }
    qsort(r, m, sizeof *r, trow_cmp);
    if (timefix(r, m)) qsort(r, m, sizeof *r, trow_cmp);

    int nocenter = 1;
    for (k = 0; k < m; k++) {
        size_t i = r[k].i;
        st[k] = r[k].t;
        sx[k] = x[i];
        se[k] = event[i];
        if (sx[k] != -1 && sx[k] != 0 && sx[k] != 1) nocenter = 0;
    }
    free(r);

    /* coxfit6: centre, then scale to mean absolute value 1 */
    double scale = 1;
    if (!nocenter) {
        double wsum = 0, mean = 0, sabs = 0;
        for (k = 0; k < m; k++) wsum += 1;
        for (k = 0; k < m; k++) mean += sx[k];
        mean /= wsum;
        for (k = 0; k < m; k++) sx[k] -= mean;
        for (k = 0; k < m; k++) sabs += fabs(sx[k]);
        scale = sabs > 0 ? wsum / sabs : 1.0;
        for (k = 0; k < m; k++) sx[k] *= scale;
    }

    cox_data d = { m, st, se, sx, !breslow, 0, 0 };
    double beta = 0, newbeta, var, loglik, newlk;
    int flag, iter, halving = 0;

    out->loglik0 = cox_iter(&d, beta);
    loglik = out->loglik0;
    flag = chol1(&d.imat);
    double step = chsolve1(d.imat, d.u);
    if (!isfinite(out->loglik0)) {       /* never with beta = 0 */
        var = chinv1(d.imat) * (scale * scale);
        iter = 0;
        goto finish;
    }

    newbeta = beta + step;
    for (iter = 1; iter <= COX_ITER_MAX; iter++) {
        newlk = cox_iter(&d, newbeta);
        flag = chol1(&d.imat);
        int notfinite = !isfinite(d.u) || !isfinite(d.imat) ||
                        !isfinite(newlk);
        if (!notfinite && fabs(1 - (loglik / newlk)) <= COX_EPS) {
            loglik = newlk;
            var = chinv1(d.imat) * (scale * scale);
            beta = newbeta * scale;
            if (halving) flag = -2;
            goto finish;
        }
        if (notfinite || newlk < loglik) {
            halving++;       /* step back towards the last good beta */
            newbeta = (newbeta + halving * beta) / (halving + 1.0);
        } else {
            halving = 0;
            loglik = newlk;
            beta = newbeta;
            newbeta = newbeta + chsolve1(d.imat, d.u);
        }
    }
    /* out of iterations: loglik and variance at the last accepted beta */
    loglik = cox_iter(&d, beta);
    var = chinv1(d.imat) * (scale * scale);
    beta *= scale;
    flag = 1000;

finish:
    out->loglik = loglik;
    out->iters = iter;
    out->converged = flag != 1000;
    if (flag < 1 && var == 0) {
        fit_na(out);                   /* R: coefficient NA */
    } else {
        out->coef = beta;
        out->se = sqrt(var);
        out->z = out->coef / out->se;
        out->p = mm_pchisq_upper(out->z * out->z, 1);
    }
    free(st);
    free(se);
    return 0;
}
