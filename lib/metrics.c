/* metrics.c: accuracy, balanced accuracy, macro F1, AUROC (scikit-learn's
 * definitions) and stratified K-fold assignment by patient.
 * SPDX-License-Identifier: MIT */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mm/metrics.h"
#include "mm/rng.h"

double mm_accuracy(const int *y, const int *pred, int n)
{
    if (n <= 0) return NAN;
    int ok = 0;
    for (int i = 0; i < n; i++) ok += y[i] == pred[i];
    return (double)ok / n;
}

/* Confusion counts per class: true positives, |y == k|, |pred == k|. */
static void class_counts(const int *y, const int *pred, int n, int c,
                         int64_t *tp, int64_t *nt, int64_t *np)
{
    memset(tp, 0, (size_t)c * sizeof *tp);
    memset(nt, 0, (size_t)c * sizeof *nt);
    memset(np, 0, (size_t)c * sizeof *np);
    for (int i = 0; i < n; i++) {
        if (y[i] >= 0 && y[i] < c) nt[y[i]]++;
        if (pred[i] >= 0 && pred[i] < c) np[pred[i]]++;
        if (y[i] == pred[i] && y[i] >= 0 && y[i] < c) tp[y[i]]++;
    }
}

double mm_balanced_accuracy(const int *y, const int *pred, int n, int c)
{
    if (n <= 0 || c <= 0) return NAN;
    int64_t *cnt = mm_malloc(3 * (size_t)c * sizeof *cnt);
    class_counts(y, pred, n, c, cnt, cnt + c, cnt + 2 * c);
    double s = 0;
    int m = 0;
    for (int k = 0; k < c; k++)
        if (cnt[c + k] > 0) { s += (double)cnt[k] / cnt[c + k]; m++; }
    free(cnt);
    return m ? s / m : NAN;
}

double mm_f1_macro(const int *y, const int *pred, int n, int c)
{
    if (n <= 0 || c <= 0) return NAN;
    int64_t *cnt = mm_malloc(3 * (size_t)c * sizeof *cnt);
    class_counts(y, pred, n, c, cnt, cnt + c, cnt + 2 * c);
    double s = 0;
    int m = 0;
    for (int k = 0; k < c; k++) {
        int64_t tp = cnt[k], nt = cnt[c + k], np = cnt[2 * c + k];
        if (nt == 0 && np == 0) continue;
        /* F1 = 2 tp / (|y == k| + |pred == k|); 0 when tp is 0
         * (zero_division=0 only matters when both counts are 0). */
        s += 2.0 * (double)tp / (double)(nt + np);
        m++;
    }
    free(cnt);
    return m ? s / m : NAN;
}

typedef struct { double s; int pos; } scored;

static int cmp_scored(const void *a, const void *b)
{
    double x = ((const scored *)a)->s, y = ((const scored *)b)->s;
    return (x > y) - (x < y);
}

double mm_auroc_binary(const int *positive, const double *score, int n)
{
    scored *v = mm_malloc((size_t)(n > 0 ? n : 1) * sizeof *v);
    int64_t npos = 0, nneg = 0;
    for (int i = 0; i < n; i++) {
        v[i].s = score[i];
        v[i].pos = positive[i] != 0;
        if (v[i].pos) npos++; else nneg++;
    }
    if (npos == 0 || nneg == 0) { free(v); return NAN; }
    qsort(v, (size_t)n, sizeof *v, cmp_scored);
    /* Mann-Whitney: sum of the positives' mid-ranks (ties share the mean
     * rank), U = R+ - npos (npos + 1) / 2, AUC = U / (npos nneg). Equal to
     * the trapezoidal area sklearn computes under its ROC curve. */
    double rsum = 0;
    for (int i = 0; i < n;) {
        int j = i;
        while (j < n && v[j].s == v[i].s) j++;
        double mid = (i + 1 + j) / 2.0; /* ranks i+1..j */
        for (int t = i; t < j; t++)
            if (v[t].pos) rsum += mid;
        i = j;
    }
    free(v);
    double u = rsum - (double)npos * (double)(npos + 1) / 2.0;
    return u / ((double)npos * (double)nneg);
}

double mm_auroc(const int *y, const double *prob, int n, int c)
{
    if (n <= 0 || c < 2) return NAN;
    int *pos = mm_malloc((size_t)n * sizeof *pos);
    double *col = mm_malloc((size_t)n * sizeof *col);
    double s = 0;
    int ks = c == 2 ? 1 : 0, ke = c == 2 ? 2 : c;
    for (int k = ks; k < ke; k++) {
        for (int i = 0; i < n; i++) {
            pos[i] = y[i] == k;
            col[i] = prob[(size_t)i * c + k];
        }
        double a = mm_auroc_binary(pos, col, n);
        if (isnan(a)) { s = NAN; break; }
        s += a;
    }
    free(pos);
    free(col);
    return isnan(s) ? NAN : s / (ke - ks);
}

int mm_kfold_assign(const int *stratum, int n, int k, uint64_t seed,
                    int *fold)
{
    if (k < 2 || k > n) {
        mm__set_error("%d folds for %d patients (need 2 <= folds <= "
                      "patients)", k, n);
        return -1;
    }
    /* Patients in stratum order (stable), then each stratum shuffled. */
    int *idx = mm_malloc((size_t)n * sizeof *idx);
    for (int i = 0; i < n; i++) idx[i] = i;
    for (int i = 1; i < n; i++) { /* insertion sort by stratum: stable */
        int v = idx[i], j = i;
        while (j > 0 && stratum[idx[j - 1]] > stratum[v]) {
            idx[j] = idx[j - 1];
            j--;
        }
        idx[j] = v;
    }
    mm_rng g;
    mm_rng_seed(&g, seed);
    int next = 0;
    for (int a = 0; a < n;) {
        int b = a;
        while (b < n && stratum[idx[b]] == stratum[idx[a]]) b++;
        for (int i = b - 1; i > a; i--) { /* Fisher-Yates within [a, b) */
            int j = a + (int)mm_rng_below(&g, (uint64_t)(i - a + 1));
            int t = idx[i]; idx[i] = idx[j]; idx[j] = t;
        }
        for (int i = a; i < b; i++) {
            fold[idx[i]] = next;
            next = (next + 1) % k;
        }
        a = b;
    }
    free(idx);
    return 0;
}
