/* mm/survival.h: survival statistics as R's survival package computes them:
 * Kaplan-Meier with Greenwood variance and confidence intervals, median
 * survival with its CI, number at risk, the log-rank test and the
 * Fleming-Harrington family, Harrell's and Uno's C-index.
 * "event" is 1 for an observed event, 0 for censored (STREAM.md); "risk"
 * is higher for a worse prognosis. No I/O, no plotting.
 * SPDX-License-Identifier: MIT */
#ifndef MM_SURVIVAL_H
#define MM_SURVIVAL_H

#include <stddef.h>

#include "mm/defs.h"

/* z = qnorm(0.975) at full precision, as R */
#define MM_Z975 1.9599639845400536

typedef enum {
    MM_CI_LOG,     /* R's default: exp(log S +- z se(log S)), upper clipped at 1 */
    MM_CI_LOGLOG,  /* lifelines' default, R conf.type = "log-log" */
    MM_CI_PLAIN,   /* S +- z se(S), clipped to [0, 1] */
    MM_CI_NONE
} mm_ci_type;

/* One row per distinct time (event or censoring), as survfit's table. */
typedef struct {
    double time;
    double n_risk, n_event, n_censor;  /* counts (weights would be reals) */
    double surv;
    double std_err;       /* se of S: summary.survfit's std.err */
    double std_err_logS;  /* se of -log S (Greenwood): survfit$std.err */
    double lower, upper;  /* CI at the fit's level; NAN where undefined */
} mm_km_row;

typedef struct {
    size_t n, events;     /* subjects used (missing values dropped), events */
    size_t nrows;
    mm_km_row *rows;
    mm_ci_type ci;
    double conf;          /* 0.95 */
    /* median and its CI as summary(survfit)$table: NAN when not reached */
    double median, median_lower, median_upper;
} mm_km;

/* Fit a Kaplan-Meier curve to N subjects. Subjects whose time or event is
 * missing (NAN time, event < 0) are skipped and not counted. Times must be
 * >= 0. CONF in (0, 1).
 * @return 0, or -1 with the reason in mm_strerror(). */
int mm_km_fit(const double *time, const int *event, size_t n, mm_ci_type ci,
              double conf, mm_km *out) MM_RESULT_USED;
void mm_km_free(mm_km *km);
/* S(t) (right-continuous; 1 before the first time). */
double mm_km_surv_at(const mm_km *km, double t);
/* Number at risk at time t: subjects with time >= t (R's summary at t). */
double mm_km_n_risk_at(const mm_km *km, double t);

typedef struct {
    int ngroups;
    double chisq, p;
    int df;
    double *observed, *expected;  /* per group (weighted when rho/gamma != 0) */
    double *var;                  /* ngroups x ngroups variance matrix */
} mm_logrank;

/* The G-rho,gamma test for GROUP[i] in [0, NGROUPS): weights
 * S(t-)^RHO (1 - S(t-))^GAMMA with S the pooled Kaplan-Meier, as R's
 * survdiff(rho = RHO) when GAMMA = 0 (RHO = 0: log-rank; RHO = 1:
 * Peto-Peto). Subjects with a missing time/event or a group < 0 are
 * skipped. Groups with no subjects are dropped from df.
 * @return 0, or -1 (mm_strerror()). */
int mm_logrank_test(const double *time, const int *event, const int *group,
                    size_t n, int ngroups, double rho, double gamma,
                    mm_logrank *out) MM_RESULT_USED;
void mm_logrank_free(mm_logrank *lr);

/* Upper tail of the chi-square distribution with DF degrees of freedom. */
double mm_pchisq_upper(double x, int df);
/* Standard normal quantile. */
double mm_qnorm(double p);

typedef struct {
    double c;               /* (concordant + tied_risk/2) / (concordant + discordant + tied_risk) */
    double concordant, discordant, tied_risk, tied_time;
} mm_cindex;

/* Harrell's C as R's concordance() counts it for a risk score (higher
 * risk = shorter survival): a pair is comparable when the shorter time is
 * an event; an event at t is comparable with subjects censored at t (they
 * outlived it); pairs with equal times that are both events are tied_time
 * and left out; equal risks count 1/2. O(n log n).
 * @return 0, or -1 (mm_strerror()). */
int mm_cindex_harrell(const double *time, const int *event, const double *risk,
                      size_t n, mm_cindex *out) MM_RESULT_USED;

/* Uno's C with truncation time TAU (inverse-probability-of-censoring
 * weights from the Kaplan-Meier of the censoring times, as survival's
 * concordance(timewt = "n/G2") / survAUC's UnoC).
 * @return 0 and *C, or -1 (mm_strerror()). */
int mm_cindex_uno(const double *time, const int *event, const double *risk,
                  size_t n, double tau, double *c) MM_RESULT_USED;

#endif
