/* mm/metrics.h: classification metrics as scikit-learn computes them, and
 * cross-validation folds by patient. Harrell's C lives in mm/survival.h
 * (mm_cindex_harrell), one implementation for km-plot and mm-train.
 *
 * Labels are class indices 0..C-1; PROB is (N, C) row-major, each row a
 * probability vector (only the ranking of column c matters for AUROC).
 * SPDX-License-Identifier: MIT */
#ifndef MM_METRICS_H
#define MM_METRICS_H

#include <stdint.h>

#include "mm/defs.h"

/* sklearn accuracy_score. */
double mm_accuracy(const int *y, const int *pred, int n);
/* sklearn balanced_accuracy_score: the mean recall over the classes present
 * in Y (a class only predicted adds nothing). */
double mm_balanced_accuracy(const int *y, const int *pred, int n, int c);
/* sklearn f1_score(average="macro", zero_division=0): the mean F1 over the
 * classes present in Y or PRED. */
double mm_f1_macro(const int *y, const int *pred, int n, int c);
/* sklearn roc_auc_score: binary (C = 2) from column 1, ties counted half
 * (the Mann-Whitney U); C > 2 one-vs-rest macro average over the classes
 * (multi_class="ovr", average="macro"). NaN when a class (or, for C = 2,
 * either class) is absent from Y, where sklearn raises. */
double mm_auroc(const int *y, const double *prob, int n, int c);
/* The binary AUROC of SCORE for POSITIVE (0/1) labels; NaN when one side
 * is empty. */
double mm_auroc_binary(const int *positive, const double *score, int n);

/* Stratified K-fold assignment of N patients: STRATUM[i] (a class index,
 * or the event flag for survival; any ints) groups them; each stratum is
 * shuffled with SEED (mm_rng) and dealt round-robin over the folds,
 * starting where the previous stratum stopped, so fold sizes differ by at
 * most one and every stratum is spread evenly. FOLD[i] gets 0..K-1.
 * @return 0, or -1 when K < 2 or K > N. */
int mm_kfold_assign(const int *stratum, int n, int k, uint64_t seed,
                    int *fold) MM_RESULT_USED;

#endif
