/* fixture.h: what the C tests that read TSV fixtures and the real data
 * share: a whole-file TSV reader ('#' lines skipped, the first other line
 * is the header), the paths of and the gate on files under
 * $MMPATH_TEST_DATA, and the runner of tests/gen/real_inputs.sh, which
 * rebuilds the real-data inputs from $MMPATH_TEST_DATA into a temporary
 * directory (the data itself is never committed). Header-only, like tap.h,
 * and included after it; a test uses what it needs (hence `unused`).
 * SPDX-License-Identifier: MIT */
#ifndef MM_FIXTURE_H
#define MM_FIXTURE_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// ---------------------------------------------------------------- TSV files

/* A whole TSV file: lines starting with '#' are skipped, the first other
 * line is the header. Cells point into BUF. */
typedef struct {
    char *buf;
    int ncol;
    char **head;
    size_t nrow;
    char ***cell;        /* (nrow, ncol) */
} tsv;

__attribute__((unused)) static void tsv_free(tsv *t)
{
    if (!t) return;
    for (size_t r = 0; r < t->nrow; r++) free(t->cell[r]);
    free(t->cell);
    free(t->head);
    free(t->buf);
    free(t);
}

/* Split LINE at tabs into at most MAX cells; returns the count. */
static int split_tabs(char *line, char **out, int max)
{
    int n = 0;
    for (char *p = line;;) {
        char *tab = strchr(p, '\t');
        if (n < max) out[n] = p;
        n++;
        if (!tab) break;
        *tab = '\0';
        p = tab + 1;
    }
    return n;
}

__attribute__((unused)) static tsv *tsv_read(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    long len = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    tsv *t = calloc(1, sizeof *t);
    t->buf = malloc((size_t)len + 1);
    size_t got = fread(t->buf, 1, (size_t)len, fp);
    fclose(fp);
    t->buf[got] = '\0';

    size_t cap = 0;
    for (char *line = t->buf, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = '\0';
        size_t l = strlen(line);
        if (l && line[l - 1] == '\r') line[l - 1] = '\0';
        if (line[0] == '#' || line[0] == '\0') continue;
        if (!t->head) {
            int nc = 1;
            for (const char *q = line; *q; q++) nc += *q == '\t';
            t->head = malloc((size_t)nc * sizeof *t->head);
            t->ncol = split_tabs(line, t->head, nc);
            continue;
        }
        if (t->nrow == cap) {
            cap = cap ? 2 * cap : 64;
            t->cell = realloc(t->cell, cap * sizeof *t->cell);
        }
        char **row = calloc((size_t)t->ncol, sizeof *row);
        if (split_tabs(line, row, t->ncol) != t->ncol) {
            fprintf(stderr, "%s: a row without %d cells\n", path, t->ncol);
            free(row);
            tsv_free(t);
            return NULL;
        }
        t->cell[t->nrow++] = row;
    }
    return t;
}

__attribute__((unused)) static int tsv_col(const tsv *t, const char *name)
{
    for (int c = 0; c < t->ncol; c++)
        if (strcmp(t->head[c], name) == 0) return c;
    fprintf(stderr, "no column '%s'\n", name);
    abort();
}

__attribute__((unused)) static const char *tsv_str(const tsv *t, size_t r, const char *name)
{
    return t->cell[r][tsv_col(t, name)];
}

/* R writes NA as "NA"; strtod reads "NaN", "Inf", "-Inf" */
__attribute__((unused)) static double tsv_num(const tsv *t, size_t r, const char *name)
{
    const char *s = tsv_str(t, r, name);
    if (strcmp(s, "NA") == 0) return NAN;
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end) {
        fprintf(stderr, "not a number: '%s' in column %s\n", s, name);
        abort();
    }
    return v;
}

// ---------------------------------------------------------------- real data

// ------------------------------------------------------- real data files

/* $MMPATH_TEST_DATA/REL, in one of 4 rotating buffers (a call may take
 * a few paths at once). */
__attribute__((unused)) static char *data_path(const char *rel)
{
    static char buf[4][1200];
    static int k;
    const char *d = getenv("MMPATH_TEST_DATA");
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", d ? d : "", rel);
    return buf[k];
}

/* Whether $MMPATH_TEST_DATA holds REL (readable). When it does not: with
 * CI=true a failed test (CI has the data), else a diag that WHAT is
 * skipped; the caller goes on with the tests that need no data. */
__attribute__((unused)) static int data_has(const char *rel, const char *what)
{
    const char *d = getenv("MMPATH_TEST_DATA"), *ci = getenv("CI");
    if (d && *d && access(data_path(rel), R_OK) == 0) return 1;
    if (ci && !strcmp(ci, "true"))
        ok(0, "test data missing in CI: %s", d && *d ? data_path(rel) : "MMPATH_TEST_DATA unset");
    else
        diag("SKIP %s: no %s", what, d && *d ? data_path(rel) : "MMPATH_TEST_DATA");
    return 0;
}

/* The real-data inputs are never committed (the SurvPath BLCA tables are
 * licensed non-commercial): tests/gen/real_inputs.sh rebuilds them from
 * $MMPATH_TEST_DATA into a temporary directory, removed at exit. Without
 * the data the whole program is skipped (with CI=true: a failure). */
static char real_dir[1100];

static void real_cleanup(void)
{
    static const char *const f[] = { "lung_input.tsv", "blca_input.tsv",
                                     "lung_cox_lp.tsv" };
    char p[1200];
    if (!*real_dir) return;
    for (size_t i = 0; i < sizeof f / sizeof *f; i++) {
        snprintf(p, sizeof p, "%s/%s", real_dir, f[i]);
        remove(p);
    }
    rmdir(real_dir);
}

static void real_skip(const char *why)
{
    const char *ci = getenv("CI");
    if (ci && !strcmp(ci, "true")) {
        printf("1..1\nnot ok 1 - test data missing in CI: %s\n", why);
        exit(1);
    }
    printf("1..0 # SKIP test data not found: %s\n", why);
    exit(0);
}

/* SRC: the files under $MMPATH_TEST_DATA the inputs come from (NULL
 * ended); FILES: the real_inputs.sh outputs to build. Returns their
 * directory. */
__attribute__((unused)) static const char *real_inputs(const char *const *src, const char *files)
{
    const char *d = getenv("MMPATH_TEST_DATA"), *top = getenv("top_srcdir");
    const char *tmp = getenv("TMPDIR");
    char p[1200], cmd[4200];
    if (!d || !*d) real_skip("MMPATH_TEST_DATA unset");
    for (; *src; src++) {
        snprintf(p, sizeof p, "%s/%s", d, *src);
        FILE *fp = fopen(p, "rb");
        if (!fp) real_skip(p);
        fclose(fp);
    }
    if (!top || !*top) top = ".";
    if (!tmp || !*tmp) tmp = "/tmp";
    if (strchr(d, '\'') || strchr(top, '\'')) {
        printf("Bail out! a quote in MMPATH_TEST_DATA or top_srcdir\n");
        exit(1);
    }
    snprintf(real_dir, sizeof real_dir, "%s/mmpath-real.XXXXXX", tmp);
    if (strchr(real_dir, '\'') || !mkdtemp(real_dir)) {
        printf("Bail out! cannot make a temporary directory in %s\n", tmp);
        exit(1);
    }
    atexit(real_cleanup);
    snprintf(cmd, sizeof cmd, "sh '%s/tests/gen/real_inputs.sh' '%s' '%s' %s",
             top, d, real_dir, files);
    fflush(stdout);
    int rc = system(cmd);
    if (rc != 0) {
        printf("Bail out! %s: status %d\n", cmd, rc);
        exit(1);
    }
    return real_dir;
}

#endif
