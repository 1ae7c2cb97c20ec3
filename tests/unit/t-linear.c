/* t-linear.c: lib/linear.c against scikit-learn 1.9.1 (the fixtures of
 * tests/gen/rfe_refs.py on the ALL data set: LinearSVC and liblinear
 * logistic regression coefficients, RFE selections and rankings, RFECV's
 * scores and choice, StratifiedKFold's folds) and synthetic checks:
 * optimality conditions, the Gram Newton solver against dual CD and primal
 * Newton-CG, warm starts, RFE's step, tie and ranking rules, the error
 * paths. Coefficients are compared relative to the largest |coef|; each
 * table's largest difference is printed with diag(). Without the ALL data
 * the whole file is skipped (failed when CI=true).
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* the statics (rfe_step, rfe_counts, strat_kfold, lin_force_mode) */
#include "../../lib/linear.c"
#include "../tap.h"

// ---------------------------------------------------------------- TSV files

/* A whole TSV file: '#' lines skipped, the first other line the header.
 * Cells point into BUF. */
typedef struct {
    char *buf;
    int ncol;
    char **head;
    size_t nrow;
    char ***cell; /* (nrow, ncol) */
} tsv;

static void tsv_free(tsv *t)
{
    if (!t)
        return;
    for (size_t r = 0; r < t->nrow; r++)
        free(t->cell[r]);
    free(t->cell);
    free(t->head);
    free(t->buf);
    free(t);
}

static int cut_tabs(char *line, char **out, int max)
{
    int n = 0;
    for (char *p = line;;) {
        char *tab = strchr(p, '\t');
        if (n < max)
            out[n] = p;
        n++;
        if (!tab)
            break;
        *tab = '\0';
        p = tab + 1;
    }
    return n;
}

static tsv *tsv_read(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    fseek(fp, 0, SEEK_END);
    long len = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    tsv *t = mm_calloc(1, sizeof *t);
    t->buf = mm_malloc((size_t)len + 1);
    size_t got = fread(t->buf, 1, (size_t)len, fp);
    fclose(fp);
    t->buf[got] = '\0';
    size_t cap = 0;
    for (char *line = t->buf, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        size_t l = strlen(line);
        if (l && line[l - 1] == '\r')
            line[l - 1] = '\0';
        if (line[0] == '#' || line[0] == '\0')
            continue;
        if (!t->head) {
            int nc = 1;
            for (char *p = line; *p; p++)
                nc += *p == '\t';
            t->ncol = nc;
            t->head = mm_malloc((size_t)nc * sizeof *t->head);
            cut_tabs(line, t->head, nc);
            continue;
        }
        if (t->nrow == cap) {
            cap = cap ? 2 * cap : 256;
            t->cell = mm_realloc(t->cell, cap * sizeof *t->cell);
        }
        char **row = mm_calloc((size_t)t->ncol, sizeof *row);
        int n = cut_tabs(line, row, t->ncol);
        for (int k = n; k < t->ncol; k++)
            row[k] = "";
        t->cell[t->nrow++] = row;
    }
    return t;
}

static int tsv_col(const tsv *t, const char *name)
{
    for (int k = 0; k < t->ncol; k++)
        if (!strcmp(t->head[k], name))
            return k;
    return -1;
}

static char fix_dir[1100];

static tsv *fixture(const char *name)
{
    char path[1300];
    snprintf(path, sizeof path, "%s/%s", fix_dir, name);
    tsv *t = tsv_read(path);
    if (!t) {
        printf("Bail out! cannot read %s\n", path);
        exit(1);
    }
    return t;
}

// ---------------------------------------------------------------- the ALL data

/* Expression: samples in rows (n x nf, sample-major), probes in columns. */
typedef struct {
    size_t n, nf;
    double *x;
    tsv *t; /* names point into it */
} expr;

static int expr_read(const char *path, expr *e)
{
    memset(e, 0, sizeof *e);
    e->t = tsv_read(path);
    if (!e->t)
        return -1;
    e->nf = e->t->nrow;
    e->n = (size_t)e->t->ncol - 1;
    e->x = mm_malloc(e->n * e->nf * sizeof *e->x);
    for (size_t j = 0; j < e->nf; j++)
        for (size_t i = 0; i < e->n; i++)
            e->x[i * e->nf + j] = strtod(e->t->cell[j][i + 1], NULL);
    return 0;
}

static const char *probe(const expr *e, size_t j) { return e->t->cell[j][0]; }

/* Rows ROWS of X (n x nf), each column to mean 0 and variance 1 (ddof 0). */
static double *zscore(const double *x, size_t nf, const size_t *rows, size_t n)
{
    double *z = mm_malloc(n * nf * sizeof *z);
    for (size_t i = 0; i < n; i++)
        memcpy(z + i * nf, x + (rows ? rows[i] : i) * nf, nf * sizeof *z);
    for (size_t j = 0; j < nf; j++) {
        double mu = 0, ss = 0;
        for (size_t i = 0; i < n; i++)
            mu += z[i * nf + j];
        mu /= (double)n;
        for (size_t i = 0; i < n; i++)
            ss += (z[i * nf + j] - mu) * (z[i * nf + j] - mu);
        double sd = sqrt(ss / (double)n);
        for (size_t i = 0; i < n; i++)
            z[i * nf + j] = (z[i * nf + j] - mu) / sd;
    }
    return z;
}

typedef struct {
    expr top, full;
    int *bt;        /* 128: B = 0, T = 1 */
    size_t *mrows;  /* samples of the mol.biol classes with >= 5 */
    size_t nm;
    int *ymb;       /* nm labels, sorted class names */
    double *xtop, *xfull, *xmb, *xtop_raw;
} alldata;

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int load_all(const char *dir, alldata *A)
{
    char path[1300];
    memset(A, 0, sizeof *A);
    snprintf(path, sizeof path, "%s/ALL_exprs_top1000var.tsv", dir);
    if (expr_read(path, &A->top) != 0)
        return -1;
    snprintf(path, sizeof path, "%s/ALL_exprs.tsv", dir);
    if (expr_read(path, &A->full) != 0)
        return -1;
    snprintf(path, sizeof path, "%s/ALL_pheno.tsv", dir);
    tsv *ph = tsv_read(path);
    if (!ph)
        return -1;
    int cs = tsv_col(ph, "sample"), cl = tsv_col(ph, "lineage"), cm = tsv_col(ph, "mol.biol");
    size_t n = A->top.n;
    int same = ph->nrow == n && A->full.n == n && cs >= 0 && cl >= 0 && cm >= 0;
    for (size_t i = 0; same && i < n; i++)
        same = !strcmp(ph->cell[i][cs], A->top.t->head[i + 1]) &&
               !strcmp(ph->cell[i][cs], A->full.t->head[i + 1]);
    if (!ok(same, "ALL: pheno samples in the order of the expression columns"))
        return -1;
    A->bt = mm_malloc(n * sizeof *A->bt);
    for (size_t i = 0; i < n; i++)
        A->bt[i] = strcmp(ph->cell[i][cl], "B") != 0;
    /* mol.biol classes with >= 5 samples, numbered in sorted name order */
    const char **names = mm_malloc(n * sizeof *names);
    size_t nn = 0;
    for (size_t i = 0; i < n; i++) {
        size_t c = 0;
        for (size_t k = 0; k < n; k++)
            c += !strcmp(ph->cell[k][cm], ph->cell[i][cm]);
        int seen = 0;
        for (size_t k = 0; k < nn; k++)
            seen |= !strcmp(names[k], ph->cell[i][cm]);
        if (c >= 5 && !seen)
            names[nn++] = ph->cell[i][cm];
    }
    qsort(names, nn, sizeof *names, cmp_str);
    A->mrows = mm_malloc(n * sizeof *A->mrows);
    A->ymb = mm_malloc(n * sizeof *A->ymb);
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < nn; k++)
            if (!strcmp(names[k], ph->cell[i][cm])) {
                A->mrows[A->nm] = i;
                A->ymb[A->nm++] = (int)k;
            }
    is_int(nn, 4, "ALL: 4 mol.biol classes with >= 5 samples (%zu samples)", A->nm);
    free(names);
    tsv_free(ph);
    A->xtop_raw = A->top.x;
    A->xtop = zscore(A->top.x, A->top.nf, NULL, n);
    A->xfull = zscore(A->full.x, A->full.nf, NULL, n);
    A->xmb = zscore(A->top.x, A->top.nf, A->mrows, A->nm);
    return 0;
}

static void free_all(alldata *A)
{
    free(A->top.x);
    free(A->full.x);
    tsv_free(A->top.t);
    tsv_free(A->full.t);
    free(A->bt);
    free(A->mrows);
    free(A->ymb);
    free(A->xtop);
    free(A->xfull);
    free(A->xmb);
}

// ---------------------------------------------------------------- helpers

/* The mean accuracy of 5-fold stratified CV of an estimator on the
 * columns COLS of X, as cross_val_score(LinearSVC(), ...) computes it. */
static double cv_accuracy(const double *x, size_t n, size_t nf, const int *y, int nclass,
                          const size_t *cols, size_t ncols, const mm_linear_opts *o)
{
    int fold[4096];
    MM_ASSERT(n <= 4096);
    if (strat_kfold(y, n, nclass, 5, fold) != 0)
        return NAN;
    double sum = 0;
    double *xtr = mm_malloc(n * nf * sizeof *xtr);
    int *ytr = mm_malloc(n * sizeof *ytr), *pred = mm_malloc(n * sizeof *pred);
    for (int f = 0; f < 5; f++) {
        size_t ntr = 0, nte = 0, right = 0;
        for (size_t i = 0; i < n; i++)
            if (fold[i] != f) {
                memcpy(xtr + ntr * nf, x + i * nf, nf * sizeof *xtr);
                ytr[ntr++] = y[i];
            }
        mm_linear_model m;
        if (mm_linear_fit(xtr, ntr, nf, ytr, nclass, cols, ncols, o, NULL, &m) != 0)
            return NAN;
        for (size_t i = 0; i < n; i++)
            if (fold[i] == f) {
                mm_linear_predict(&m, x + i * nf, 1, nf, cols, pred);
                right += pred[0] == y[i];
                nte++;
            }
        sum += (double)right / (double)nte;
        mm_linear_free(&m);
    }
    free(pred);
    free(ytr);
    free(xtr);
    return sum / 5;
}

/* Compare a fitted model with a coefficient fixture (feature, w0.., then
 * "(intercept)"). @return max |diff| / max |ref|. */
static double coef_diff(const mm_linear_model *m, const tsv *t, const expr *e)
{
    double md = 0, mx = 0;
    int names = t->nrow == m->nf + 1 && t->ncol == m->nw + 1;
    for (size_t r = 0; names && r < t->nrow; r++) {
        const char *want = r < m->nf ? probe(e, r) : "(intercept)";
        names = !strcmp(t->cell[r][0], want);
        for (int k = 0; k < m->nw; k++) {
            double ref = strtod(t->cell[r][k + 1], NULL);
            double got = r < m->nf ? m->w[(size_t)k * m->nf + r] : m->b[k];
            md = fmax(md, fabs(got - ref));
            mx = fmax(mx, fabs(ref));
        }
    }
    if (!names)
        return INFINITY;
    diag("max |diff| %.3g, max |coef| %.3g, relative %.3g", md, mx, md / mx);
    return md / mx;
}

/* |grad P(w)| / |grad P(0)| of model M (binary) on X, Y: the optimality
 * the solvers promise, computed here independently. */
static double grad_ratio(const mm_linear_model *m, const double *x, size_t n, size_t nf,
                         const int *y, int est, double C)
{
    double *g = mm_calloc(nf + 1, sizeof *g), *g0 = mm_calloc(nf + 1, sizeof *g0);
    for (size_t j = 0; j < nf; j++)
        g[j] = m->w[j];
    g[nf] = m->b[0];
    for (size_t i = 0; i < n; i++) {
        double s = y[i] == 1 ? 1 : -1, f = m->b[0];
        for (size_t j = 0; j < nf; j++)
            f += m->w[j] * x[i * nf + j];
        double t = s * f;
        double d = est == MM_EST_SVM ? (t < 1 ? -2 * (1 - t) : 0) : -1 / (1 + exp(t));
        double d0 = est == MM_EST_SVM ? -2 : -0.5;
        for (size_t j = 0; j < nf; j++) {
            g[j] += C * s * d * x[i * nf + j];
            g0[j] += C * s * d0 * x[i * nf + j];
        }
        g[nf] += C * s * d;
        g0[nf] += C * s * d0;
    }
    double a = 0, b = 0;
    for (size_t j = 0; j <= nf; j++) {
        a += g[j] * g[j];
        b += g0[j] * g0[j];
    }
    free(g);
    free(g0);
    return sqrt(a / b);
}

static double model_diff(const mm_linear_model *a, const mm_linear_model *b)
{
    double md = 0, mx = 0;
    for (size_t k = 0; k < (size_t)a->nw * a->nf; k++) {
        md = fmax(md, fabs(a->w[k] - b->w[k]));
        mx = fmax(mx, fabs(b->w[k]));
    }
    for (int k = 0; k < a->nw; k++) {
        md = fmax(md, fabs(a->b[k] - b->b[k]));
        mx = fmax(mx, fabs(b->b[k]));
    }
    return md / mx;
}

/* Deterministic normal deviates (xorshift + Box-Muller). */
static uint64_t rs = 88172645463325252ULL;
static double unif(void)
{
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return ((double)(rs >> 11) + 0.5) / 9007199254740992.0;
}
static double gauss(void)
{
    return sqrt(-2 * log(unif())) * cos(6.283185307179586 * unif());
}

/* N samples of NF features, NC classes: class means differ on the first
 * few features; labels cycle 0, 1, ... */
static void synth(size_t n, size_t nf, int nc, double sep, double *x, int *y)
{
    for (size_t i = 0; i < n; i++) {
        y[i] = (int)(i % (size_t)nc);
        for (size_t j = 0; j < nf; j++)
            x[i * nf + j] = gauss() + (j < 5 && (int)(j % (size_t)nc) == y[i] ? sep : 0);
    }
}

// ---------------------------------------------------------------- synthetic

static void test_separable(void)
{
    /* two clouds in 2-D, far apart: every point classified right, and the
     * optimum's gradient vanishes */
    double x[40 * 2];
    int y[40], pred[40];
    for (int i = 0; i < 40; i++) {
        y[i] = i % 2;
        x[2 * i] = (y[i] ? 3 : -3) + 0.5 * gauss();
        x[2 * i + 1] = (y[i] ? 1 : -1) + 0.5 * gauss();
    }
    mm_linear_opts o;
    mm_linear_opts_init(&o);
    for (int est = 0; est < 2; est++) {
        o.estimator = est;
        mm_linear_model m;
        int rc = mm_linear_fit(x, 40, 2, y, 2, NULL, 0, &o, NULL, &m);
        is_int(rc, 0, "separable 2-D %s: fit", est ? "logreg" : "svm");
        ok(m.converged && m.nw == 1 && m.nf == 2, "separable: converged, one vector (%d iters)",
           m.iters);
        mm_linear_predict(&m, x, 40, 2, NULL, pred);
        int right = 0;
        for (int i = 0; i < 40; i++)
            right += pred[i] == y[i];
        is_int(right, 40, "separable: all 40 classified right");
        ok(m.w[0] > 0, "separable: w points from class 0 to class 1 (w = %.4g, %.4g, b %.4g)",
           m.w[0], m.w[1], m.b[0]);
        double gr = grad_ratio(&m, x, 40, 2, y, est, 1);
        ok(gr < 1e-7, "separable: |grad P| / |grad P(0)| = %.3g", gr);
        mm_linear_free(&m);
    }
}

/* The Gram-mode Newton and the w-space solvers (dual CD for the SVM,
 * Newton-CG for logreg) reach the same optimum, with n < nf and n > nf. */
static void test_solvers_agree(void)
{
    static const struct {
        size_t n, nf;
        int nc;
    } shp[] = {{60, 200, 2}, {300, 20, 2}, {90, 150, 3}};
    mm_linear_opts o;
    mm_linear_opts_init(&o);
    for (size_t s = 0; s < sizeof shp / sizeof *shp; s++) {
        size_t n = shp[s].n, nf = shp[s].nf;
        double *x = mm_malloc(n * nf * sizeof *x);
        int *y = mm_malloc(n * sizeof *y);
        synth(n, nf, shp[s].nc, 1.0, x, y);
        for (int est = 0; est < 2; est++) {
            o.estimator = est;
            mm_linear_model a, b, c;
            lin_force_mode = 1;
            int rc = mm_linear_fit(x, n, nf, y, shp[s].nc, NULL, 0, &o, NULL, &a);
            lin_force_mode = 2;
            rc |= mm_linear_fit(x, n, nf, y, shp[s].nc, NULL, 0, &o, NULL, &b);
            lin_force_mode = 0;
            rc |= mm_linear_fit(x, n, nf, y, shp[s].nc, NULL, 0, &o, NULL, &c);
            double d = model_diff(a.w ? &a : &b, &b);
            ok(rc == 0 && a.converged && b.converged && d < 1e-6,
               "%zu x %zu, %d classes, %s: Gram Newton (%d it) = %s (%d it): rel diff %.3g",
               n, nf, shp[s].nc, est ? "logreg" : "svm", a.iters,
               est || n > nf ? "primal Newton-CG" : "dual CD", b.iters, d);
            if (shp[s].nc == 2) {
                double g1 = grad_ratio(&a, x, n, nf, y, est, 1);
                double g2 = grad_ratio(&b, x, n, nf, y, est, 1);
                ok(g1 < 1e-7 && g2 < 1e-6, "  optimality: |grad P| / |grad P(0)| %.3g and %.3g",
                   g1, g2);
            }
            /* warm start from the optimum: the same optimum at once */
            mm_linear_model w;
            rc = mm_linear_fit(x, n, nf, y, shp[s].nc, NULL, 0, &o, &c, &w);
            d = model_diff(&w, &c);
            ok(rc == 0 && w.converged && d < 1e-7,
               "  warm start from the optimum: rel diff %.3g, %d iters (cold %d)", d, w.iters,
               c.iters);
            mm_linear_free(&w);
            /* warm start from a perturbed model */
            for (size_t k = 0; k < (size_t)c.nw * nf; k++)
                c.w[k] *= 1 + 0.5 * gauss();
            rc = mm_linear_fit(x, n, nf, y, shp[s].nc, NULL, 0, &o, &c, &w);
            d = model_diff(&w, &b);
            ok(rc == 0 && w.converged && d < 1e-6,
               "  warm start from a perturbed model: rel diff %.3g", d);
            mm_linear_free(&w);
            mm_linear_free(&a);
            mm_linear_free(&b);
            mm_linear_free(&c);
        }
        free(x);
        free(y);
    }
}

static void test_step_rules(void)
{
    /* scikit-learn: step >= 1 is int(step), else int(max(1, step * nf)) */
    is_int(rfe_step(0.1, 1000), 100, "step 0.1 of 1000 features: 100");
    is_int(rfe_step(0.1, 12625), 1262, "step 0.1 of 12625: 1262 (int(1262.5))");
    is_int(rfe_step(0.1, 5), 1, "step 0.1 of 5: max(1, 0.5) -> 1");
    is_int(rfe_step(3, 1000), 3, "step 3: a count");
    is_int(rfe_step(2.7, 1000), 2, "step 2.7: int(2.7) = 2");
    is_int(rfe_step(1, 1000), 1, "step 1: a count of 1");
    is_int(rfe_step(0, 1000), 0, "step 0: invalid");
    is_int(rfe_step(-1, 1000), 0, "step -1: invalid");
    /* the counts RFE fits at: 1000 - 100 k down to 100, then 20 (the last
     * step is min(step, remaining - target)) */
    size_t c[64], want[11] = {1000, 900, 800, 700, 600, 500, 400, 300, 200, 100, 20};
    size_t k = rfe_counts(1000, 20, rfe_step(0.1, 1000), c);
    int same = k == 11;
    for (size_t i = 0; same && i < k; i++)
        same = c[i] == want[i];
    ok(same, "nf 1000, step 0.1, target 20: 1000, 900, ..., 100, 20 (%zu counts)", k);
    size_t want2[11] = {12625, 11363, 10101, 8839, 7577, 6315, 5053, 3791, 2529, 1267, 100};
    k = rfe_counts(12625, 100, rfe_step(0.1, 12625), c);
    same = k == 11;
    for (size_t i = 0; same && i < k; i++)
        same = c[i] == want2[i];
    ok(same, "nf 12625, step 0.1, target 100: 12625, 11363, ..., 1267, 100 (%zu counts)", k);
    size_t want3[3] = {7, 4, 1};
    k = rfe_counts(7, 1, 3, c);
    ok(k == 3 && !memcmp(c, want3, sizeof want3), "nf 7, step 3, target 1: 7, 4, 1");
    k = rfe_counts(10, 10, 3, c);
    ok(k == 1 && c[0] == 10, "target = nf: one count, no elimination");
    k = rfe_counts(5, 8, 1, c);
    ok(k == 1 && c[0] == 5, "target > nf: one count (scikit-learn warns, keeps all)");
}

static int item_cmp(const void *a, const void *b)
{
    const rank_item *p = a, *q = b;
    return p->imp < q->imp ? -1 : p->imp > q->imp ? 1 : (p->j > q->j) - (p->j < q->j);
}

/* The features RFE drops: the K first of numpy's stable argsort of the
 * importances (ties: lower position first), here with many exact ties. */
static void test_select(void)
{
    int good = 1;
    for (int trial = 0; trial < 200 && good; trial++) {
        size_t n = 1 + (size_t)(unif() * 300), k = (size_t)(unif() * (double)(n + 1));
        if (k > n)
            k = n;
        rank_item *a = mm_malloc(n * sizeof *a), *b = mm_malloc(n * sizeof *b);
        for (size_t j = 0; j < n; j++) {
            a[j].imp = trial % 2 ? (double)(int)(unif() * 5) : unif();
            a[j].j = j;
        }
        memcpy(b, a, n * sizeof *a);
        select_smallest(a, n, k);
        qsort(b, n, sizeof *b, item_cmp);
        unsigned char *in = mm_calloc(n, 1);
        for (size_t t = 0; t < k; t++)
            in[a[t].j] = 1;
        for (size_t t = 0; t < n; t++)
            good &= in[b[t].j] == (t < k);
        free(in);
        free(a);
        free(b);
    }
    ok(good, "the features dropped = the first of a stable sort, ties included (200 cases)");
}

static void test_rfe_ranking(void)
{
    /* 7 features, step 2, target 2: counts 7, 5, 3, 2; rankings: the 2
     * kept 1, the one dropped last 2, the 2 dropped before 3, the first 2
     * dropped 4. The informative features (0..4 carry the class) stay. */
    size_t n = 80, nf = 7;
    double *x = mm_malloc(n * nf * sizeof *x);
    int *y = mm_malloc(n * sizeof *y);
    synth(n, nf, 2, 1.5, x, y);
    for (size_t i = 0; i < n; i++)
        x[i * nf + 0] += y[i] ? 2 : -2; /* feature 0: the strongest */
    mm_linear_opts o;
    mm_linear_opts_init(&o);
    mm_rfe_opts r = {.n_select = 2, .step = 2, .cv = 5, .min_features = 1};
    size_t rk[7];
    is_int(mm_rfe(x, n, nf, y, 2, &r, &o, rk), 0, "RFE 7 -> 2, step 2");
    int hist[6] = {0};
    for (size_t j = 0; j < nf; j++)
        if (rk[j] <= 5)
            hist[rk[j]]++;
    ok(hist[1] == 2 && hist[2] == 1 && hist[3] == 2 && hist[4] == 2,
       "rankings: two 1, one 2, two 3, two 4 (got %zu %zu %zu %zu %zu %zu %zu)", rk[0], rk[1],
       rk[2], rk[3], rk[4], rk[5], rk[6]);
    is_int(rk[0], 1, "the strongest feature is kept");
    r.n_select = 9;
    is_int(mm_rfe(x, n, nf, y, 2, &r, &o, rk), 0, "RFE with a target above nf");
    int all1 = 1;
    for (size_t j = 0; j < nf; j++)
        all1 &= rk[j] == 1;
    ok(all1, "  every ranking 1");
    /* an exact tie (feature 3 a copy of feature 1): the lower index goes
     * first, as numpy's stable argsort has it */
    for (size_t i = 0; i < n; i++)
        x[i * nf + 3] = x[i * nf + 1];
    r.n_select = 1;
    r.step = 1;
    is_int(mm_rfe(x, n, nf, y, 2, &r, &o, rk), 0, "RFE 7 -> 1, step 1, two equal features");
    ok(rk[1] > rk[3], "  of the two equal features the lower index is dropped first "
       "(rankings %zu and %zu)", rk[1], rk[3]);
    /* logreg RFE and RFECV run and keep the strongest feature */
    o.estimator = MM_EST_LOGREG;
    r.n_select = 1;
    r.step = 1;
    is_int(mm_rfe(x, n, nf, y, 2, &r, &o, rk), 0, "logreg RFE 7 -> 1, step 1");
    is_int(rk[0], 1, "  keeps feature 0");
    double sc[8];
    o.estimator = MM_EST_SVM;
    r.step = 0.3; /* int(max(1, 2.1)) = 2: counts 7, 5, 3, 1 */
    size_t best = mm_rfecv(x, n, nf, y, 2, &r, &o, rk, sc);
    ok(best >= 1 && best <= 7 && rk[0] == 1, "RFECV 7 features, step 0.3: chose %zu", best);
    ok(isnan(sc[0]) && isnan(sc[2]) && isnan(sc[4]) && isnan(sc[6]) && !isnan(sc[1]) &&
           !isnan(sc[3]) && !isnan(sc[5]) && !isnan(sc[7]),
       "  scores at counts 1, 3, 5, 7 only (%.3f %.3f %.3f %.3f)", sc[1], sc[3], sc[5], sc[7]);
    double bs = -1;
    size_t bc = 0;
    for (size_t m = 1; m <= 7; m++)
        if (!isnan(sc[m]) && sc[m] > bs) {
            bs = sc[m];
            bc = m;
        }
    is_int(best, bc, "  the choice is the smallest count with the best mean score");
    free(x);
    free(y);
}

static void test_errors(void)
{
    double x[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    int y[4] = {0, 1, 0, 1}, bad[4] = {0, 2, 0, 1}, one[4] = {0, 0, 0, 0};
    mm_linear_opts o;
    mm_linear_opts_init(&o);
    mm_linear_model m;
    is_int(mm_linear_fit(x, 4, 2, bad, 2, NULL, 0, &o, NULL, &m), -1, "label out of range");
    like(mm_strerror(), "label 2 not in [0, 2)", "  says which");
    is_int(mm_linear_fit(x, 4, 2, one, 2, NULL, 0, &o, NULL, &m), -1, "a class without samples");
    like(mm_strerror(), "class 1 has no samples", "  says which");
    o.C = 0;
    is_int(mm_linear_fit(x, 4, 2, y, 2, NULL, 0, &o, NULL, &m), -1, "C = 0 refused");
    like(mm_strerror(), "C must be a positive number", "  says why");
    mm_linear_opts_init(&o);
    size_t cols[1] = {5};
    is_int(mm_linear_fit(x, 4, 2, y, 2, cols, 1, &o, NULL, &m), -1, "column out of range");
    x[3] = NAN;
    is_int(mm_linear_fit(x, 4, 2, y, 2, NULL, 0, &o, NULL, &m), -1, "NaN refused");
    like(mm_strerror(), "not a finite number", "  says why");
    x[3] = 4;
    mm_rfe_opts r = {.n_select = 1, .step = 0, .cv = 2, .min_features = 1};
    size_t rk[2];
    is_int(mm_rfe(x, 4, 2, y, 2, &r, &o, rk), -1, "RFE step 0 refused");
    like(mm_strerror(), "step must be a positive number", "  says why");
    r.step = 1;
    r.cv = 5;
    is_int(mm_rfecv(x, 4, 2, y, 2, &r, &o, rk, NULL), 0, "RFECV with 5 folds of 4 samples");
    like(mm_strerror(), "cannot make 5 folds of 4 samples", "  says why");
    r.cv = 3;
    is_int(mm_rfecv(x, 4, 2, y, 2, &r, &o, rk, NULL), 0, "RFECV 3 folds, 2 per class");
    like(mm_strerror(), "every class has fewer samples", "  says why");
}

// ---------------------------------------------------------------- fixtures

static int parse_ints(char *s, int *out, int max)
{
    int n = 0;
    for (char *p = strtok(s, ","); p && n < max; p = strtok(NULL, ","))
        out[n++] = atoi(p);
    return n;
}

static void test_skfold(void)
{
    tsv *t = fixture("skfold.tsv");
    for (size_t r = 0; r < t->nrow; r++) {
        static int y[4096], want[4096], got[4096];
        int k = atoi(t->cell[r][1]);
        int n = parse_ints(t->cell[r][2], y, 4096);
        int nw = parse_ints(t->cell[r][3], want, 4096);
        int nclass = 0;
        for (int i = 0; i < n; i++)
            nclass = y[i] + 1 > nclass ? y[i] + 1 : nclass;
        int rc = strat_kfold(y, (size_t)n, nclass, k, got);
        int same = rc == 0 && n == nw;
        for (int i = 0; same && i < n; i++)
            same = got[i] == want[i];
        ok(same, "StratifiedKFold(%d) on '%s' (%d samples): the same test folds", k,
           t->cell[r][0], n);
    }
    tsv_free(t);
}

static void check_coef(const char *name, const double *x, size_t n, const expr *e, const int *y,
                       int nclass, int est, double tol)
{
    tsv *t = fixture(name);
    mm_linear_opts o;
    mm_linear_opts_init(&o);
    o.estimator = est;
    mm_linear_model m;
    is_int(mm_linear_fit(x, n, e->nf, y, nclass, NULL, 0, &o, NULL, &m), 0, "%s: fit", name);
    ok(m.converged, "  converged (%d iterations)", m.iters);
    double d = coef_diff(&m, t, e);
    ok(d <= tol, "  coefficients = scikit-learn's within %g of max |coef| (%.3g)", tol, d);
    mm_linear_free(&m);
    tsv_free(t);
}

/* RFE against a fixture (feature, index, ranking, ranking_tight). */
static void check_rfe_fixture(const char *name, const double *x, size_t n, const expr *e,
                              const int *y, int nclass, size_t nsel, int full_ranking)
{
    tsv *t = fixture(name);
    mm_linear_opts o;
    mm_linear_opts_init(&o);
    mm_rfe_opts r = {.n_select = nsel, .step = 0.1, .cv = 5, .min_features = 1};
    size_t *rk = mm_malloc(e->nf * sizeof *rk);
    is_int(mm_rfe(x, n, e->nf, y, nclass, &r, &o, rk), 0, "%s: RFE %zu -> %zu, step 0.1", name,
           e->nf, nsel);
    unsigned char *sk = mm_calloc(e->nf, 1), *skt = mm_calloc(e->nf, 1);
    size_t rank_same = 0, rank_same_t = 0, names = 1;
    for (size_t row = 0; row < t->nrow; row++) {
        size_t j = (size_t)atol(t->cell[row][1]);
        names &= j < e->nf && !strcmp(t->cell[row][0], probe(e, j));
        if (j >= e->nf)
            continue;
        size_t a = (size_t)atol(t->cell[row][2]), b = (size_t)atol(t->cell[row][3]);
        sk[j] = a == 1;
        skt[j] = b == 1;
        rank_same += rk[j] == a;
        rank_same_t += rk[j] == b;
    }
    ok(names, "  fixture rows name the probes of the data");
    size_t ns = 0, common = 0, common_t = 0, nsk = 0, nskt = 0;
    size_t *ours = mm_malloc(nsel * sizeof *ours), *theirs = mm_malloc(nsel * sizeof *theirs);
    size_t *tight = mm_malloc(nsel * sizeof *tight);
    for (size_t j = 0; j < e->nf; j++) {
        if (rk[j] == 1 && ns < nsel)
            ours[ns++] = j;
        if (sk[j] && nsk < nsel)
            theirs[nsk++] = j;
        if (skt[j] && nskt < nsel)
            tight[nskt++] = j;
        common += rk[j] == 1 && sk[j];
        common_t += rk[j] == 1 && skt[j];
    }
    is_int(ns, nsel, "  %zu selected", nsel);
    if (full_ranking)
        diag("rankings equal to scikit-learn's: %zu of %zu (tol=1e-4), %zu of %zu (tol=1e-10)",
             rank_same, e->nf, rank_same_t, e->nf);
    diag("selected in common: %zu of %zu with scikit-learn's (tol=1e-4), %zu with tol=1e-10",
         common, nsel, common_t);
    if (common_t == nsel)
        ok(1, "  the same %zu features as scikit-learn's converged RFE(LinearSVC)", nsel);
    else
        ok(common_t * 100 >= 95 * nsel, "  overlap with scikit-learn's converged selection: "
           "%zu of %zu (>= 95%%)", common_t, nsel);
    {
        double a = cv_accuracy(x, n, e->nf, y, nclass, ours, ns, &o);
        double b = cv_accuracy(x, n, e->nf, y, nclass, theirs, nsk, &o);
        double c = cv_accuracy(x, n, e->nf, y, nclass, tight, nskt, &o);
        diag("5-fold CV accuracy (LinearSVC): ours %.6f, scikit-learn's %.6f (tol=1e-4), "
             "%.6f (tol=1e-10)", a, b, c);
        ok(a >= fmin(b, c) - 0.02, "  our selection predicts as well (CV accuracy %.4f)", a);
    }
    free(tight);
    free(theirs);
    free(ours);
    free(sk);
    free(skt);
    free(rk);
    tsv_free(t);
}

/* RFECV against a fixture pair: NAME.tsv (scores per count, at
 * scikit-learn's tol=1e-4 and at tol=1e-10) and NAME_support.tsv. */
static void check_rfecv(const char *name, const double *x, size_t n, const expr *e,
                        const int *y, int nclass)
{
    char f1[256], f2[256];
    snprintf(f1, sizeof f1, "%s.tsv", name);
    snprintf(f2, sizeof f2, "%s_support.tsv", name);
    tsv *t = fixture(f1), *sup = fixture(f2);
    mm_linear_opts o;
    mm_linear_opts_init(&o);
    mm_rfe_opts r = {.n_select = 0, .step = 0.1, .cv = 5, .min_features = 1};
    size_t *rk = mm_malloc(e->nf * sizeof *rk);
    double *sc = mm_malloc((e->nf + 1) * sizeof *sc);
    size_t best = mm_rfecv(x, n, e->nf, y, nclass, &r, &o, rk, sc);
    size_t want = 0, want_def = 0, same = 0, same_def = 0;
    for (size_t row = 0; row < sup->nrow; row++) {
        size_t j = (size_t)atol(sup->cell[row][1]);
        int a = atoi(sup->cell[row][2]), b = atoi(sup->cell[row][3]);
        want_def += a;
        want += b;
        same += b && j < e->nf && rk[j] == 1;
        same_def += a && j < e->nf && rk[j] == 1;
    }
    is_int(best, want, "%s: RFECV chooses %zu features as scikit-learn's converged RFECV "
           "(at tol=1e-4: %zu)", name, want, want_def);
    double md = 0, md_def = 0;
    size_t rows = 0;
    for (size_t row = 0; row < t->nrow; row++) {
        size_t c = (size_t)atol(t->cell[row][0]);
        if (c > e->nf || c == 0)
            continue;
        md = fmax(md, fabs(sc[c] - strtod(t->cell[row][2], NULL)));
        md_def = fmax(md_def, fabs(sc[c] - strtod(t->cell[row][1], NULL)));
        rows++;
    }
    size_t fitted = 0;
    for (size_t c = 0; c <= e->nf; c++)
        fitted += !isnan(sc[c]);
    diag("mean_test_score: max |diff| %.3g over %zu counts (%.3g from tol=1e-4's)", md, rows,
         md_def);
    ok(rows == t->nrow && fitted == rows && md <= 1e-12,
       "  mean CV accuracy at each of the %zu counts = scikit-learn's cv_results_", rows);
    ok(same == want, "  support: %zu of %zu as scikit-learn's (%zu of %zu at tol=1e-4)", same,
       want, same_def, want_def);
    free(sc);
    free(rk);
    tsv_free(sup);
    tsv_free(t);
}

static void test_all(const char *dir)
{
    alldata A;
    if (load_all(dir, &A) != 0) {
        ok(0, "ALL data read");
        return;
    }
    const size_t n = A.top.n;
    check_coef("svc_coef_bt.tsv", A.xtop, n, &A.top, A.bt, 2, MM_EST_SVM, 1e-6);
    check_coef("svc_coef_bt_raw.tsv", A.xtop_raw, n, &A.top, A.bt, 2, MM_EST_SVM, 1e-3);
    check_coef("svc_coef_molbiol.tsv", A.xmb, A.nm, &A.top, A.ymb, 4, MM_EST_SVM, 1e-5);
    check_coef("logreg_coef_bt.tsv", A.xtop, n, &A.top, A.bt, 2, MM_EST_LOGREG, 1e-5);
    check_rfe_fixture("rfe_bt_top1000_k20.tsv", A.xtop, n, &A.top, A.bt, 2, 20, 1);
    check_rfe_fixture("rfe_molbiol_k20.tsv", A.xmb, A.nm, &A.top, A.ymb, 4, 20, 1);
    check_rfe_fixture("rfe_bt_all_k100.tsv", A.xfull, n, &A.full, A.bt, 2, 100, 0);
    check_rfecv("rfecv_bt", A.xtop, n, &A.top, A.bt, 2);
    check_rfecv("rfecv_molbiol", A.xmb, A.nm, &A.top, A.ymb, 4);
    free_all(&A);
}

int main(void)
{
    const char *d = getenv("MMPATH_TEST_DATA"), *top = getenv("top_srcdir");
    const char *ci = getenv("CI");
    char dir[1100], probe_path[1200];
    snprintf(dir, sizeof dir, "%s/expression/ALL", d ? d : "");
    snprintf(probe_path, sizeof probe_path, "%s/ALL_exprs.tsv", dir);
    snprintf(fix_dir, sizeof fix_dir, "%s/tests/fixtures/linear", top && *top ? top : ".");
    FILE *fp = d && *d ? fopen(probe_path, "rb") : NULL;
    if (!fp) {
        if (ci && !strcmp(ci, "true")) {
            printf("1..1\nnot ok 1 - test data missing in CI: %s\n",
                   d && *d ? probe_path : "MMPATH_TEST_DATA unset");
            return 1;
        }
        printf("1..0 # SKIP test data not found: %s\n",
               d && *d ? probe_path : "MMPATH_TEST_DATA unset");
        return 0;
    }
    fclose(fp);

    test_separable();
    test_solvers_agree();
    test_step_rules();
    test_select();
    test_rfe_ranking();
    test_errors();
    test_skfold();
    test_all(dir);
    return done_testing();
}
