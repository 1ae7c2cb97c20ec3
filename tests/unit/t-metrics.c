/* t-metrics: accuracy, balanced accuracy, macro F1 and AUROC against
 * scikit-learn (tests/gen/metrics_refs.py -> tests/fixtures/metrics), and
 * the stratified fold assignment's promises.
 * SPDX-License-Identifier: MIT */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mm/metrics.h"
#include "../tap.h"

/* Parse a comma list of N values into OUT (ints or doubles). */
static int parse_ints(const char *s, int *out, int n)
{
    for (int i = 0; i < n; i++) {
        char *end;
        out[i] = (int)strtol(s, &end, 10);
        if (end == s) return -1;
        s = *end == ',' ? end + 1 : end;
    }
    return 0;
}

static int parse_doubles(const char *s, double *out, int n)
{
    for (int i = 0; i < n; i++) {
        char *end;
        out[i] = strtod(s, &end);
        if (end == s) return -1;
        s = *end == ',' ? end + 1 : end;
    }
    return 0;
}

static void test_fixture(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!ok(f != NULL, "open %s", path)) return;
    static char line[1 << 16];
    int rows = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || strncmp(line, "case", 4) == 0) continue;
        char *fld[10];
        int nf = 0;
        for (char *p = strtok(line, "\t\n"); p && nf < 10;
             p = strtok(NULL, "\t\n"))
            fld[nf++] = p;
        if (!ok(nf == 10, "fixture row has 10 fields")) break;
        int cs = atoi(fld[0]), n = atoi(fld[1]), c = atoi(fld[2]);
        int *y = malloc(n * sizeof *y), *pred = malloc(n * sizeof *pred);
        double *prob = malloc((size_t)n * c * sizeof *prob);
        ok(parse_ints(fld[3], y, n) == 0 && parse_ints(fld[4], pred, n) == 0 &&
           parse_doubles(fld[5], prob, n * c) == 0, "case %d parses", cs);
        const double tol = 1e-12;
        is_close(mm_accuracy(y, pred, n), strtod(fld[6], NULL), tol,
                 "case %d (n %d, %d classes): accuracy", cs, n, c);
        is_close(mm_balanced_accuracy(y, pred, n, c), strtod(fld[7], NULL),
                 tol, "case %d: balanced accuracy", cs);
        is_close(mm_f1_macro(y, pred, n, c), strtod(fld[8], NULL), tol,
                 "case %d: macro F1", cs);
        is_close(mm_auroc(y, prob, n, c), strtod(fld[9], NULL), tol,
                 "case %d: AUROC", cs);
        free(y);
        free(pred);
        free(prob);
        rows++;
    }
    fclose(f);
    ok(rows >= 20, "fixture has %d cases", rows);
}

static void test_edges(void)
{
    int y[4] = {0, 0, 1, 1}, pos[4] = {0, 0, 0, 0};
    double s[4] = {0.1, 0.4, 0.35, 0.8};
    /* The textbook example: sklearn roc_auc_score gives 0.75. */
    is_close(mm_auroc_binary(y, s, 4), 0.75, 1e-15, "AUROC 0.75 example");
    ok(isnan(mm_auroc_binary(pos, s, 4)), "AUROC of one class is NaN");
    double flat[4] = {0.5, 0.5, 0.5, 0.5};
    is_close(mm_auroc_binary(y, flat, 4), 0.5, 0, "all ties: 0.5");
    int p2[4] = {1, 1, 1, 1};
    is_close(mm_f1_macro(y, p2, 4, 2), (0 + 2.0 * 2 / 6) / 2, 1e-15,
             "F1 counts a class never predicted as 0");
    is_close(mm_balanced_accuracy(y, p2, 4, 3), 0.5, 1e-15,
             "balanced accuracy ignores classes absent from y");
}

static void test_kfold(void)
{
    enum { N = 103, K = 5 };
    int strat[N], fold[N], fold2[N], fold3[N];
    for (int i = 0; i < N; i++) strat[i] = (i * 7) % 3 == 0 ? 2 : i % 2;
    ok(mm_kfold_assign(strat, N, K, 7, fold) == 0, "5 folds of 103");
    int size[K] = {0}, per[3][K] = {{0}};
    for (int i = 0; i < N; i++) {
        if (fold[i] < 0 || fold[i] >= K) { ok(0, "fold in range"); return; }
        size[fold[i]]++;
        per[strat[i]][fold[i]]++;
    }
    int mn = N, mx = 0;
    for (int k = 0; k < K; k++) {
        if (size[k] < mn) mn = size[k];
        if (size[k] > mx) mx = size[k];
    }
    ok(mx - mn <= 1, "fold sizes differ by at most one (%d..%d)", mn, mx);
    for (int s = 0; s < 3; s++) {
        int a = N, b = 0;
        for (int k = 0; k < K; k++) {
            if (per[s][k] < a) a = per[s][k];
            if (per[s][k] > b) b = per[s][k];
        }
        ok(b - a <= 1, "stratum %d spread evenly (%d..%d per fold)", s, a,
           b);
    }
    ok(mm_kfold_assign(strat, N, K, 7, fold2) == 0 &&
       memcmp(fold, fold2, sizeof fold) == 0, "same seed, same folds");
    ok(mm_kfold_assign(strat, N, K, 8, fold3) == 0 &&
       memcmp(fold, fold3, sizeof fold) != 0, "another seed, other folds");
    ok(mm_kfold_assign(strat, 3, 4, 1, fold) == -1, "more folds than "
       "patients is an error");
    ok(mm_kfold_assign(strat, N, 1, 1, fold) == -1, "one fold is an error");
}

int main(void)
{
    const char *top = getenv("top_srcdir");
    char path[1100];
    snprintf(path, sizeof path, "%s/tests/fixtures/metrics/cases.tsv",
             top && *top ? top : ".");
    test_fixture(path);
    test_edges();
    test_kfold();
    return done_testing();
}
