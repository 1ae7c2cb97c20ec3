/* mm/cox.h: univariate Cox proportional-hazards fits, one per feature, as
 * R's coxph(Surv(time, event) ~ x, ties = "efron") reports them: the
 * coefficient, its standard error and the Wald test's p-value. For
 * rna-select's --cox-top ranking.
 * SPDX-License-Identifier: MIT */
#ifndef MM_COX_H
#define MM_COX_H

#include <stddef.h>

#include "mm/defs.h"

typedef struct {
    double coef, se, z, p;   /* Wald z = coef/se, two-sided p */
    double loglik0, loglik;  /* at 0 and at coef */
    int iters, converged;
} mm_cox_fit;

/* Fit one covariate X (n values; NAN rows are skipped) by Newton-Raphson
 * from 0 with Efron's ties (BRESLOW = 1: Breslow's), to R's default
 * tolerance (relative change of the log-likelihood < 1e-9, at most 20
 * iterations). X is centred first, as R does.
 * @return 0, or -1 (mm_strerror()). */
int mm_cox_univariate(const double *time, const int *event, const double *x,
                      size_t n, int breslow, mm_cox_fit *out) MM_RESULT_USED;

#endif
