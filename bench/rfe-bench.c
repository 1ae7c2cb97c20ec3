/* rfe-bench.c: the C side of bench/rfe.sh: RFE (lib/linear.c) on an
 * expression table (genes in rows) with labels from a phenotype table, or
 * on a synthetic problem, timed and printed as key=value lines for the
 * script. Not a tool: no stream I/O, minimal option checking; rna-select is
 * what users run. Built by bench/rfe.sh against lib/libmmpath.a.
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mm/linear.h"

static const char *usage_text =
    "Usage: rfe-bench all EXPR.tsv PHENO.tsv [options]   RFE on a gene x sample table\n"
    "       rfe-bench synth N NF [options]               RFE on a synthetic problem\n"
    "Options:\n"
    "  --label COL       phenotype column with the classes [lineage]\n"
    "  --select K        features to keep [100]\n"
    "  --step S          features or fraction dropped per round [0.1]\n"
    "  --estimator E     svm or logreg [svm]\n"
    "  --raw             do not standardise the features\n"
    "  --tol T           the solvers' tolerance [1e-8]\n"
    "  --threads N       OpenMP threads [all]\n"
    "  --out FILE        write the selected feature names, one a line\n";

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void die(const char *msg, const char *arg)
{
    fprintf(stderr, "rfe-bench: %s%s%s\n", msg, arg ? ": " : "", arg ? arg : "");
    exit(1);
}

static char *slurp(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        die("cannot open", path);
    fseek(fp, 0, SEEK_END);
    long len = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *buf = mm_malloc((size_t)len + 1);
    size_t got = fread(buf, 1, (size_t)len, fp);
    fclose(fp);
    buf[got] = '\0';
    return buf;
}

/* Split S at C in place into at most MAX fields. */
static size_t split(char *s, char c, char **out, size_t max)
{
    size_t n = 0;
    for (char *p = s;;) {
        char *q = strchr(p, c);
        if (n < max)
            out[n] = p;
        n++;
        if (!q)
            break;
        *q = '\0';
        p = q + 1;
    }
    return n;
}

static void chomp(char *s)
{
    size_t l = strlen(s);
    while (l && (s[l - 1] == '\r' || s[l - 1] == '\n'))
        s[--l] = '\0';
}

typedef struct {
    size_t n, nf;
    double *x;       /* n x nf, sample-major */
    char **feature;  /* nf */
    char **sample;   /* n */
    int *y;
    int nclass;
    char *buf;
} data;

/* The expression table: header "id<TAB>sample...", then one gene a line. */
static void read_expr(const char *path, data *d)
{
    d->buf = slurp(path);
    size_t nl = 0;
    for (char *p = d->buf; *p; p++)
        nl += *p == '\n';
    char **lines = mm_malloc((nl + 2) * sizeof *lines);
    size_t nlines = split(d->buf, '\n', lines, nl + 2);
    while (nlines && lines[nlines - 1][0] == '\0')
        nlines--;
    if (nlines < 2)
        die("no rows in", path);
    chomp(lines[0]);
    size_t ncol = 1;
    for (char *p = lines[0]; *p; p++)
        ncol += *p == '\t';
    char **head = mm_malloc(ncol * sizeof *head);
    split(lines[0], '\t', head, ncol);
    d->n = ncol - 1;
    d->nf = nlines - 1;
    d->sample = head + 1;
    d->feature = mm_malloc(d->nf * sizeof *d->feature);
    d->x = mm_malloc(d->n * d->nf * sizeof *d->x);
    for (size_t j = 0; j < d->nf; j++) {
        char *p = lines[j + 1], *end;
        chomp(p);
        char *tab = strchr(p, '\t');
        if (!tab)
            die("a row without values in", path);
        *tab = '\0';
        d->feature[j] = p;
        p = tab + 1;
        for (size_t i = 0; i < d->n; i++) {
            d->x[i * d->nf + j] = strtod(p, &end);
            if (end == p)
                die("not a number in", path);
            p = *end ? end + 1 : end;
        }
    }
    free(lines);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Labels from column COL of the phenotype table, matched by sample name,
 * numbered in sorted order of the names (scikit-learn's classes_). */
static void read_labels(const char *path, const char *col, data *d)
{
    char *buf = slurp(path);
    size_t nl = 0;
    for (char *p = buf; *p; p++)
        nl += *p == '\n';
    char **lines = mm_malloc((nl + 2) * sizeof *lines);
    size_t nlines = split(buf, '\n', lines, nl + 2);
    chomp(lines[0]);
    char *head[256];
    size_t nh = split(lines[0], '\t', head, 256);
    size_t cs = nh, cl = nh;
    for (size_t k = 0; k < nh && k < 256; k++) {
        if (!strcmp(head[k], "sample"))
            cs = k;
        if (!strcmp(head[k], col))
            cl = k;
    }
    if (cs == nh || cl == nh)
        die("no 'sample' or label column in", path);
    char **lab = mm_calloc(d->n, sizeof *lab);
    for (size_t r = 1; r < nlines; r++) {
        char *cell[256];
        chomp(lines[r]);
        if (!lines[r][0])
            continue;
        split(lines[r], '\t', cell, 256);
        for (size_t i = 0; i < d->n; i++)
            if (!strcmp(d->sample[i], cell[cs]))
                lab[i] = cell[cl];
    }
    char **names = mm_malloc(d->n * sizeof *names);
    for (size_t i = 0; i < d->n; i++) {
        if (!lab[i])
            die("a sample without a label:", d->sample[i]);
        names[i] = lab[i];
    }
    qsort(names, d->n, sizeof *names, cmp_str);
    size_t k = 0;
    for (size_t i = 0; i < d->n; i++)
        if (i == 0 || strcmp(names[i], names[k - 1]))
            names[k++] = names[i];
    d->nclass = (int)k;
    d->y = mm_malloc(d->n * sizeof *d->y);
    for (size_t i = 0; i < d->n; i++)
        for (size_t c = 0; c < k; c++)
            if (!strcmp(lab[i], names[c]))
                d->y[i] = (int)c;
    /* names point into buf, which stays allocated with them */
    free(names);
    free(lab);
    free(lines);
}

/* splitmix64 of K: the synthetic data, the same in rfe_anchor.py. */
static uint64_t mix(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* N x NF standard normals (Box-Muller of two hashes per value); labels
 * i % 2; the first 20 features shifted by +-0.25 with the class. */
static void synth(size_t n, size_t nf, data *d)
{
    d->n = n;
    d->nf = nf;
    d->nclass = 2;
    d->x = mm_malloc(n * nf * sizeof *d->x);
    d->y = mm_malloc(n * sizeof *d->y);
    d->feature = mm_malloc(nf * sizeof *d->feature);
    for (size_t j = 0; j < nf; j++) {
        d->feature[j] = mm_malloc(24);
        snprintf(d->feature[j], 24, "f%zu", j);
    }
    for (size_t i = 0; i < n; i++) {
        d->y[i] = (int)(i % 2);
        for (size_t j = 0; j < nf; j++) {
            uint64_t k = 2 * (i * nf + j);
            double u1 = ((double)(mix(k) >> 11) + 0.5) / 9007199254740992.0;
            double u2 = ((double)(mix(k + 1) >> 11) + 0.5) / 9007199254740992.0;
            double g = sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2);
            d->x[i * nf + j] = g + (j < 20 ? (d->y[i] ? 0.25 : -0.25) : 0);
        }
    }
}

/* Each column to mean 0, variance 1 (ddof 0, StandardScaler's). */
static void zscore(data *d)
{
    for (size_t j = 0; j < d->nf; j++) {
        double mu = 0, ss = 0;
        for (size_t i = 0; i < d->n; i++)
            mu += d->x[i * d->nf + j];
        mu /= (double)d->n;
        for (size_t i = 0; i < d->n; i++) {
            double v = d->x[i * d->nf + j] - mu;
            ss += v * v;
        }
        double sd = sqrt(ss / (double)d->n);
        if (sd == 0)
            sd = 1; /* StandardScaler leaves a constant column at 0 */
        for (size_t i = 0; i < d->n; i++)
            d->x[i * d->nf + j] = (d->x[i * d->nf + j] - mu) / sd;
    }
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fputs(usage_text, stderr);
        return 2;
    }
    const char *label = "lineage", *out = NULL;
    mm_linear_opts o;
    mm_linear_opts_init(&o);
    mm_rfe_opts r = {.n_select = 100, .step = 0.1, .cv = 5, .min_features = 1};
    int raw = 0;
    for (int a = 4; a < argc; a++) {
        const char *v = a + 1 < argc ? argv[a + 1] : NULL;
        if (!strcmp(argv[a], "--raw")) {
            raw = 1;
            continue;
        }
        if (!v) {
            fputs(usage_text, stderr);
            return 2;
        }
        if (!strcmp(argv[a], "--label"))
            label = v;
        else if (!strcmp(argv[a], "--select"))
            r.n_select = (size_t)atol(v);
        else if (!strcmp(argv[a], "--step"))
            r.step = atof(v);
        else if (!strcmp(argv[a], "--estimator"))
            o.estimator = !strcmp(v, "logreg") ? MM_EST_LOGREG : MM_EST_SVM;
        else if (!strcmp(argv[a], "--tol"))
            o.tol = atof(v);
        else if (!strcmp(argv[a], "--threads"))
            o.threads = atoi(v);
        else if (!strcmp(argv[a], "--out"))
            out = v;
        else {
            fputs(usage_text, stderr);
            return 2;
        }
        a++;
    }
    data d;
    memset(&d, 0, sizeof d);
    double t0 = now();
    if (!strcmp(argv[1], "all")) {
        read_expr(argv[2], &d);
        read_labels(argv[3], label, &d);
    } else if (!strcmp(argv[1], "synth")) {
        synth((size_t)atol(argv[2]), (size_t)atol(argv[3]), &d);
    } else {
        fputs(usage_text, stderr);
        return 2;
    }
    double t1 = now();
    if (!raw)
        zscore(&d);
    double t2 = now();

    /* one fit on all features, then RFE */
    mm_linear_model m;
    if (mm_linear_fit(d.x, d.n, d.nf, d.y, d.nclass, NULL, 0, &o, NULL, &m) != 0)
        die(mm_strerror(), NULL);
    double t3 = now();
    size_t *rank = mm_malloc(d.nf * sizeof *rank);
    if (mm_rfe(d.x, d.n, d.nf, d.y, d.nclass, &r, &o, rank) != 0)
        die(mm_strerror(), NULL);
    double t4 = now();

    printf("n_samples=%zu\nn_features=%zu\nn_classes=%d\n", d.n, d.nf, d.nclass);
    printf("read_seconds=%.4f\nscale_seconds=%.4f\n", t1 - t0, t2 - t1);
    printf("fit_seconds=%.4f\nfit_iters=%d\nfit_converged=%d\n", t3 - t2, m.iters, m.converged);
    printf("compute_seconds=%.4f\n", t4 - t3);
    mm_linear_free(&m);
    if (out) {
        FILE *fp = fopen(out, "w");
        if (!fp)
            die("cannot write", out);
        for (size_t j = 0; j < d.nf; j++)
            if (rank[j] == 1)
                fprintf(fp, "%s\n", d.feature[j]);
        if (fclose(fp) != 0)
            die("cannot write", out);
    }
    free(rank);
    return 0;
}
