/* mm/linear.h: linear classifiers with liblinear's semantics as
 * scikit-learn uses them, and recursive feature elimination (RFE, RFECV)
 * on top of them, for rna-select.
 *   svm:    LinearSVC(penalty="l2", loss="squared_hinge", C, dual=True,
 *           fit_intercept=True, intercept_scaling=1): the intercept is an
 *           extra feature of constant 1 that is regularised like the rest;
 *           dual coordinate descent (liblinear's solver 1), to convergence.
 *   logreg: LogisticRegression(solver="liblinear", penalty="l2", C): the same
 *           regularised intercept; any solver converged to liblinear's
 *           optimum (the problem is strictly convex).
 * Multi-class is one-vs-rest, as liblinear. Data are double, sample-major.
 * SPDX-License-Identifier: MIT */
#ifndef MM_LINEAR_H
#define MM_LINEAR_H

#include <stddef.h>

#include "mm/defs.h"

enum { MM_EST_SVM, MM_EST_LOGREG };

typedef struct {
    int estimator;    /* MM_EST_* */
    double C;         /* 1 */
    double tol;       /* 1e-8: each solver's stopping rule (lib/linear.c), far
                       * below liblinear's 0.1 / 0.01 and scikit-learn's
                       * 1e-4, so that w is the optimum, not near it */
    int max_iter;     /* 100000 Newton steps or dual CD passes */
    int threads;      /* OpenMP threads for one-vs-rest, CV folds and the
                       * large passes (0 = OpenMP's default) */
} mm_linear_opts;

void mm_linear_opts_init(mm_linear_opts *o);

typedef struct {
    int nclass;       /* classes (labels 0..nclass-1) */
    int nw;           /* weight vectors: 1 for 2 classes, else nclass */
    size_t nf;
    double *w;        /* nw x nf coefficients */
    double *b;        /* nw intercepts */
    int iters;        /* the largest iteration count of any sub-problem */
    int converged;    /* 0 when max_iter was reached */
} mm_linear_model;

/* Fit on N samples x NF features of X (row-major), with class labels Y in
 * [0, NCLASS). COLS (NULL = all) restricts to NF_USED columns of X, in
 * that order; the model then has nf = NF_USED. WARM (NULL or a model of the
 * same shape) seeds the solver.
 * @return 0, or -1 (mm_strerror()). */
int mm_linear_fit(const double *x, size_t n, size_t nf, const int *y, int nclass,
                  const size_t *cols, size_t nf_used, const mm_linear_opts *o,
                  const mm_linear_model *warm, mm_linear_model *out) MM_RESULT_USED;
void mm_linear_free(mm_linear_model *m);
/* Predicted classes for N rows of X restricted to COLS (as at fit). */
void mm_linear_predict(const mm_linear_model *m, const double *x, size_t n, size_t nf,
                       const size_t *cols, int *pred);

typedef struct {
    size_t n_select;        /* RFE: features to keep */
    double step;            /* >= 1: a count; in (0, 1): a fraction of the
                             * features entering RFE, fixed for all rounds,
                             * as scikit-learn: max(1, int(step * nf)) */
    /* RFECV */
    int cv;                 /* folds (StratifiedKFold, no shuffle) */
    size_t min_features;
} mm_rfe_opts;

/* RFE as scikit-learn's RFE(estimator, n_features_to_select, step):
 * repeatedly fit, rank by squared coefficients (summed over the one-vs-rest
 * vectors), drop the STEP lowest (ties: lower importance first, then the
 * lower index, as numpy's argsort is stable), until N_SELECT remain.
 * RANKING gets nf values (1 = selected, 2 = dropped last, ...).
 * @return 0, or -1 (mm_strerror()). */
int mm_rfe(const double *x, size_t n, size_t nf, const int *y, int nclass,
           const mm_rfe_opts *r, const mm_linear_opts *o, size_t *ranking) MM_RESULT_USED;

/* RFECV as scikit-learn's: StratifiedKFold(cv) without shuffling, RFE on
 * each training part scoring accuracy on its test part at every feature
 * count, the count with the best mean score (ties: the smallest count),
 * then RFE on all samples down to it. SCORES (may be NULL) gets the mean
 * accuracy per count, indexed by count (nf + 1 values; unused = NAN).
 * @return the selected count, or 0 with mm_strerror() on failure. */
size_t mm_rfecv(const double *x, size_t n, size_t nf, const int *y, int nclass,
                const mm_rfe_opts *r, const mm_linear_opts *o, size_t *ranking,
                double *scores);

#endif
