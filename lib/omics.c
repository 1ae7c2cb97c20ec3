/* omics.c: expression matrices for rna-select (mm/omics.h): TSV/CSV in
 * either orientation (through mm/table.h), GDC STAR-counts files, joins by
 * sample id, log2 and z-scores, KNN / mean / zero imputation, and the
 * variance and missingness filters, each with scikit-learn's arithmetic
 * (summation order included) so that results compare bit for bit.
 * Not a model: supervised selection is linear.c, Cox ranking cox.c.
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "mm/omics.h"
#include "mm/table.h"

// ---------------------------------------------------------------- ids

/* A set of string ids: open addressing over indices into KEY. */
typedef struct {
    size_t cap;            /* power of two */
    size_t *slot;          /* index + 1, 0 = empty */
    char *const *key;
} idset;

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* Index of S in H, or -1. */
static long ids_find(const idset *h, const char *s)
{
    for (size_t i = hash_str(s) & (h->cap - 1);; i = (i + 1) & (h->cap - 1)) {
        if (!h->slot[i]) return -1;
        if (strcmp(h->key[h->slot[i] - 1], s) == 0) return (long)(h->slot[i] - 1);
    }
}

/* Build the set of KEY[0..N-1]. @return -1, or the index of the first id
 * that repeats one before it (*FIRST gets that earlier index; nothing is
 * left to free). */
static long ids_build(idset *h, char *const *key, size_t n, size_t *first)
{
    h->cap = 16;
    while (h->cap < 2 * n) h->cap *= 2;
    h->slot = mm_calloc(h->cap, sizeof *h->slot);
    h->key = key;
    for (size_t k = 0; k < n; k++) {
        size_t i = hash_str(key[k]) & (h->cap - 1);
        for (; h->slot[i]; i = (i + 1) & (h->cap - 1))
            if (strcmp(key[h->slot[i] - 1], key[k]) == 0) {
                if (first) *first = h->slot[i] - 1;
                free(h->slot);
                h->slot = NULL;
                return (long)k;
            }
        h->slot[i] = k + 1;
    }
    return -1;
}

static void ids_free(idset *h) { free(h->slot); }

static void free_strs(char **s, size_t n)
{
    if (!s) return;
    for (size_t i = 0; i < n; i++) free(s[i]);
    free(s);
}

void mm_omx_free(mm_omx *m)
{
    if (!m) return;
    free_strs(m->sample, m->ns);
    free_strs(m->feature, m->nf);
    free(m->x);
    memset(m, 0, sizeof *m);
}

long mm_omx_find_feature(const mm_omx *m, const char *id)
{
    for (size_t j = 0; j < m->nf; j++)
        if (strcmp(m->feature[j], id) == 0) return (long)j;
    return -1;
}

long mm_omx_find_sample(const mm_omx *m, const char *id)
{
    for (size_t i = 0; i < m->ns; i++)
        if (strcmp(m->sample[i], id) == 0) return (long)i;
    return -1;
}

/* A cell: NA-like -> NAN; else a finite number. @return 0 or -1. */
static int cell_value(const char *s, double *x)
{
    if (mm_cell_is_na(s)) {
        *x = NAN;
        return 0;
    }
    return mm_cell_number(s, x) == 0 && isfinite(*x) ? 0 : -1;
}

// ---------------------------------------------------------------- TSV/CSV

/* TCGA barcode: TCGA-XX-XXXX (letters or digits), then anything. */
static int is_tcga(const char *s)
{
    if (strncmp(s, "TCGA-", 5) != 0) return 0;
    s += 5;
    for (int i = 0; i < 7; i++) {
        int c = (unsigned char)s[i];
        if (i == 2 ? c != '-' : !isalnum(c)) return 0;
    }
    return s[7] == 0 || s[7] == '-' || s[7] == '.';
}

int mm_omx_read(const char *path, int orient, mm_omx *out, char *how, size_t hown)
{
    memset(out, 0, sizeof *out);
    if (how && hown) how[0] = 0;
    if (orient != MM_ORIENT_AUTO && orient != MM_ORIENT_GENES_IN_ROWS &&
        orient != MM_ORIENT_GENES_IN_COLUMNS) {
        mm__set_error("%s: unknown orientation %d", path, orient);
        return -1;
    }
    mm_table *t = mm_table_read(path);
    if (!t) return -1;
    int nc = mm_table_ncol(t);
    size_t nr = mm_table_nrow(t);
    /* row ids: the pandas index column, else the first column */
    int idc = mm_table_index_col(t) >= 0 ? mm_table_index_col(t) : 0;
    if (nc < 2 || nr == 0) {
        mm__set_error("%s: %s", path, nc < 2 ? "needs an id column and at least "
                      "one value column" : "no data rows");
        mm_table_free(t);
        return -1;
    }
    size_t nv = (size_t)nc - 1;
    int rows = orient == MM_ORIENT_GENES_IN_ROWS;
    char why[160];
    if (orient != MM_ORIENT_AUTO) {
        snprintf(why, sizeof why, "as --genes-in %s", rows ? "rows" : "columns");
    } else {
        size_t th = 0, tc = 0;
        for (int j = 0; j < nc; j++)
            if (j != idc) th += is_tcga(mm_table_colname(t, j));
        for (size_t r = 0; r < nr; r++) tc += is_tcga(mm_table_cell(t, r, idc));
        if (2 * th > nv) {
            rows = 1;
            snprintf(why, sizeof why, "header holds TCGA sample ids");
        } else if (2 * tc > nr) {
            rows = 0;
            snprintf(why, sizeof why, "first column holds TCGA sample ids");
        } else {
            rows = nr > nv;
            snprintf(why, sizeof why, "%zu rows %s %zu value columns: genes are the "
                     "longer side", nr, rows ? ">" : "<=", nv);
        }
    }
    if (how && hown)
        snprintf(how, hown, "%s (%s)", rows ? "genes in rows" : "samples in rows", why);

    mm_omx m = {0};
    m.ns = rows ? nv : nr;
    m.nf = rows ? nr : nv;
    char ***colids = rows ? &m.sample : &m.feature;
    char ***rowids = rows ? &m.feature : &m.sample;
    *colids = mm_malloc(nv * sizeof(char *));
    *rowids = mm_malloc(nr * sizeof(char *));
    for (int j = 0, k = 0; j < nc; j++)
        if (j != idc) (*colids)[k++] = mm_strdup(mm_table_colname(t, j));
    for (size_t r = 0; r < nr; r++) (*rowids)[r] = mm_strdup(mm_table_cell(t, r, idc));
    m.x = mm_malloc(m.ns * m.nf * sizeof(double));
    int ret = 0;
    for (size_t r = 0; r < nr && ret == 0; r++) {
        if (!(*rowids)[r][0]) {
            mm__set_error("%s:%zu: empty id", path, mm_table_line(t, r));
            ret = -1;
            break;
        }
        size_t k = 0;
        for (int j = 0; j < nc; j++) {
            if (j == idc) continue;
            const char *s = mm_table_cell(t, r, j);
            double x;
            if (cell_value(s, &x) != 0) {
                mm__set_error("%s:%zu: column '%s': not a number: '%s'", path,
                              mm_table_line(t, r), mm_table_colname(t, j), s);
                ret = -1;
                break;
            }
            m.x[rows ? k * m.nf + r : r * m.nf + k] = x;
            k++;
        }
    }
    /* ids are unique on both sides */
    idset h;
    size_t first;
    long dup;
    if (ret == 0 && (dup = ids_build(&h, *rowids, nr, &first)) >= 0) {
        mm__set_error("%s:%zu: %s id '%s' repeats line %zu", path,
                      mm_table_line(t, (size_t)dup), rows ? "feature" : "sample",
                      (*rowids)[dup], mm_table_line(t, first));
        ret = -1;
    }
    if (ret == 0) ids_free(&h);
    if (ret == 0 && (dup = ids_build(&h, *colids, nv, &first)) >= 0) {
        mm__set_error("%s:1: %s id '%s' appears twice in the header", path,
                      rows ? "sample" : "feature", (*colids)[dup]);
        ret = -1;
    }
    if (ret == 0) ids_free(&h);
    mm_table_free(t);
    if (ret != 0) {
        mm_omx_free(&m);
        return -1;
    }
    *out = m;
    return 0;
}

// ---------------------------------------------------------------- mixed tables

int mm_omx_read_columns(const char *path, const char *id_col, const char *suffix,
                        mm_omx *out, char *how, size_t hown)
{
    memset(out, 0, sizeof *out);
    if (how && hown) how[0] = 0;
    mm_table *t = mm_table_read(path);
    if (!t) return -1;
    int nc = mm_table_ncol(t);
    size_t nr = mm_table_nrow(t), sl = strlen(suffix);
    int idc = id_col ? mm_table_find(t, id_col) : mm_table_find(t, "case_id");
    if (!id_col && idc < 0) idc = mm_table_find(t, "id");
    if (!id_col && idc < 0) idc = mm_table_index_col(t);
    if (idc < 0) {
        mm__set_error("%s: no id column '%s' (--id-col)", path, id_col ? id_col : "case_id");
        mm_table_free(t);
        return -1;
    }
    int *cols = mm_malloc((size_t)nc * sizeof(int));
    size_t nf = 0;
    for (int j = 0; j < nc; j++) {
        const char *nm = mm_table_colname(t, j);
        size_t l = strlen(nm);
        if (j != idc && l >= sl && strcmp(nm + l - sl, suffix) == 0) cols[nf++] = j;
    }
    if (nf == 0 || nr == 0) {
        mm__set_error("%s: %s", path, nf ? "no data rows" : "no column name ends in the suffix");
        free(cols);
        mm_table_free(t);
        return -1;
    }
    /* first row of each id; later repeats must agree with it */
    char **ids = mm_malloc(nr * sizeof(char *));
    for (size_t r = 0; r < nr; r++) ids[r] = (char *)mm_table_cell(t, r, idc);
    size_t *firstrow = mm_malloc(nr * sizeof(size_t)), ns = 0, repeats = 0;
    idset h = {0};
    h.cap = 16;
    while (h.cap < 2 * nr) h.cap *= 2;
    h.slot = mm_calloc(h.cap, sizeof *h.slot);
    h.key = ids;
    long *rowof = mm_malloc(nr * sizeof(long));
    int ret = 0;
    mm_omx m = {0};
    m.nf = nf;
    m.x = mm_malloc(nr * nf * sizeof(double));
    for (size_t r = 0; r < nr && ret == 0; r++) {
        if (!ids[r][0]) {
            mm__set_error("%s:%zu: empty id", path, mm_table_line(t, r));
            ret = -1;
            break;
        }
        long prev = ids_find(&h, ids[r]);
        double *row = m.x + (prev >= 0 ? (size_t)rowof[prev] : ns) * nf;
        for (size_t k = 0; k < nf && ret == 0; k++) {
            const char *c = mm_table_cell(t, r, cols[k]);
            double x;
            if (cell_value(c, &x) != 0) {
                mm__set_error("%s:%zu: column '%s': not a number: '%s'", path,
                              mm_table_line(t, r), mm_table_colname(t, cols[k]), c);
                ret = -1;
            } else if (prev < 0) {
                row[k] = x;
            } else if (!(row[k] == x || (isnan(row[k]) && isnan(x)))) {
                mm__set_error("%s:%zu: id '%s' repeats line %zu with other values "
                              "(column '%s')", path, mm_table_line(t, r), ids[r],
                              mm_table_line(t, firstrow[rowof[prev]]),
                              mm_table_colname(t, cols[k]));
                ret = -1;
            }
        }
        if (ret != 0) break;
        if (prev >= 0) {
            repeats++;
            continue;
        }
        /* insert r into the hash (ids_find looks it up by h.key[slot]) */
        size_t mask = h.cap - 1, i = (size_t)hash_str(ids[r]) & mask;
        while (h.slot[i]) i = (i + 1) & mask;
        h.slot[i] = r + 1;
        rowof[r] = (long)ns;
        firstrow[ns++] = r;
    }
    if (ret == 0) {
        m.ns = ns;
        m.sample = mm_malloc(ns * sizeof(char *));
        m.feature = mm_malloc(nf * sizeof(char *));
        for (size_t i = 0; i < ns; i++) m.sample[i] = mm_strdup(ids[firstrow[i]]);
        for (size_t k = 0; k < nf; k++) m.feature[k] = mm_strdup(mm_table_colname(t, cols[k]));
        if (how && hown)
            snprintf(how, hown, "samples in rows, %zu columns ending in '%s', ids from '%s'",
                     nf, suffix, mm_table_colname(t, idc)[0] ? mm_table_colname(t, idc) : "(index)");
        if (how && hown && repeats)
            snprintf(how + strlen(how), hown - strlen(how),
                     "; %zu repeated rows (same id, same values) dropped", repeats);
    }
    free(h.slot);
    free(rowof);
    free(firstrow);
    free(ids);
    free(cols);
    mm_table_free(t);
    if (ret != 0) {
        free(m.x);
        return -1;
    }
    *out = m;
    return 0;
}

// ---------------------------------------------------------------- GDC

/* The whole file through zlib (plain files are read as they are).
 * @return the text (NUL-terminated) or NULL (mm_strerror()). */
static char *slurp(const char *path, size_t *n)
{
    errno = 0;
    gzFile gz = gzopen(path, "rb");
    if (!gz) {
        mm__set_error("%s: %s", path, errno ? strerror(errno) : "cannot open");
        return NULL;
    }
    size_t cap = 1 << 20, len = 0;
    char *buf = mm_malloc(cap);
    for (;;) {
        if (cap - len < (1 << 19)) buf = mm_realloc(buf, cap *= 2);
        size_t room = cap - len - 1 < INT32_MAX ? cap - len - 1 : INT32_MAX;
        int r = gzread(gz, buf + len, (unsigned)room);
        if (r <= 0) break;
        len += (size_t)r;
    }
    int err;
    const char *msg = gzerror(gz, &err);
    if (err != Z_OK) {
        mm__set_error("%s: %s", path, err == Z_BUF_ERROR ? "truncated gzip input" :
                      err == Z_ERRNO ? strerror(errno) : msg);
        gzclose(gz);
        free(buf);
        return NULL;
    }
    gzclose(gz);
    buf[len] = 0;
    *n = len;
    return buf;
}

/* Split the line at S on tabs in place (CR at the end dropped); FIELDS gets
 * up to MAXF. @return the field count; *NEXT = the next line. */
static int split_tabs(char *s, char **fields, int maxf, char **next)
{
    char *e = strchr(s, '\n');
    *next = e ? e + 1 : s + strlen(s);
    if (e) *e = 0;
    else e = s + strlen(s);
    if (e > s && e[-1] == '\r') e[-1] = 0;
    int n = 0;
    for (char *p = s;; n++) {
        if (n < maxf) fields[n] = p;
        char *tab = strchr(p, '\t');
        if (!tab) break;
        *tab = 0;
        p = tab + 1;
    }
    return n + 1;
}

static int has_suffix(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

typedef struct {
    char **v;
    size_t n, cap;
} strlist;

static void sl_push(strlist *l, char *s)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 16;
        l->v = mm_realloc(l->v, l->cap * sizeof(char *));
    }
    l->v[l->n++] = s;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Files under DIR named *.tsv or *.tsv.gz, at any depth (gdc-client puts
 * each file in a directory named by its UUID), skipping dot files. */
static int collect(const char *dir, strlist *l, int depth)
{
    DIR *d = opendir(dir);
    if (!d) {
        mm__set_error("%s: %s", dir, strerror(errno));
        return -1;
    }
    struct dirent *e;
    int ret = 0;
    while (ret == 0 && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        size_t n = strlen(dir) + strlen(e->d_name) + 2;
        char *p = mm_malloc(n);
        snprintf(p, n, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(p, &st) == 0 && S_ISDIR(st.st_mode) && depth < 8) {
            ret = collect(p, l, depth + 1);
            free(p);
        } else if (stat(p, &st) == 0 && S_ISREG(st.st_mode) &&
                   (has_suffix(p, ".tsv") || has_suffix(p, ".tsv.gz"))) {
            sl_push(l, p);
        } else {
            free(p);
        }
    }
    closedir(d);
    return ret;
}

/* The sample id of a GDC file: the base name up to its first '.'. */
static char *gdc_sample_id(const char *path)
{
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    const char *dot = strchr(b + 1, '.');
    size_t n = dot ? (size_t)(dot - b) : strlen(b);
    char *s = mm_malloc(n + 1);
    memcpy(s, b, n);
    s[n] = 0;
    return s;
}

/* One GDC file into column I of M (genes checked against M's, or taken
 * when I is 0). VALS grows with the genes of the first file. */
static int gdc_one(const char *path, const char *column, size_t i, mm_omx *m,
                   double **vals, size_t *cap, const char *first_path)
{
    size_t n;
    char *text = slurp(path, &n);
    if (!text) return -1;
    int ret = -1, maxf = 64, gi = -1, vi = -1;
    char *fields[64], *p = text, *next;
    size_t line = 0, g = 0;
    /* comment lines, then the header */
    for (;;) {
        if (!*p) {
            mm__set_error("%s: no header line (gene_id ...)", path);
            goto done;
        }
        line++;
        if (*p != '#') break;
        char *e = strchr(p, '\n');
        p = e ? e + 1 : p + strlen(p);
    }
    int nf = split_tabs(p, fields, maxf, &next);
    p = next;
    if (nf > maxf) nf = maxf;
    for (int j = 0; j < nf; j++) {
        if (strcmp(fields[j], "gene_id") == 0) gi = j;
        if (strcmp(fields[j], column) == 0) vi = j;
    }
    if (gi < 0) {
        mm__set_error("%s:%zu: not a GDC STAR-counts file (no gene_id column)", path, line);
        goto done;
    }
    if (vi < 0 || vi == gi || !strcmp(column, "gene_name") ||
        !strcmp(column, "gene_type")) {
        char list[512] = "";
        for (int j = 0; j < nf; j++) {
            if (j == gi || !strcmp(fields[j], "gene_name") ||
                !strcmp(fields[j], "gene_type"))
                continue;
            size_t l = strlen(list);
            snprintf(list + l, sizeof list - l, "%s%s", l ? ", " : "", fields[j]);
        }
        mm__set_error("%s: no value column '%s' (valid: %s)", path, column, list);
        goto done;
    }
    while (*p) {
        line++;
        if (*p == '\n' || (*p == '\r' && p[1] == '\n')) {
            p += *p == '\r' ? 2 : 1;
            continue;
        }
        int k = split_tabs(p, fields, maxf, &next);
        p = next;
        if (k != nf) {
            mm__set_error("%s:%zu: expected %d fields, found %d", path, line, nf, k);
            goto done;
        }
        const char *id = fields[gi];
        if (strncmp(id, "N_", 2) == 0) continue; /* N_unmapped ... summary rows */
        if (i == 0) {
            if (m->nf == *cap) {
                *cap = *cap ? 2 * *cap : 1024;
                m->feature = mm_realloc(m->feature, *cap * sizeof(char *));
                *vals = mm_realloc(*vals, *cap * sizeof(double));
            }
            m->feature[m->nf++] = mm_strdup(id);
        } else if (g >= m->nf || strcmp(m->feature[g], id) != 0) {
            if (g >= m->nf)
                mm__set_error("%s:%zu: gene '%s' beyond the %zu genes of %s", path, line,
                              id, m->nf, first_path);
            else
                mm__set_error("%s:%zu: gene '%s' where %s has '%s' (files must list the "
                              "same genes in the same order)", path, line, id, first_path,
                              m->feature[g]);
            goto done;
        }
        double x;
        if (cell_value(fields[vi], &x) != 0) {
            mm__set_error("%s:%zu: column '%s': not a number: '%s'", path, line, column,
                          fields[vi]);
            goto done;
        }
        (*vals)[i * *cap + g] = x;
        g++;
    }
    if (g == 0) {
        mm__set_error("%s: no gene rows", path);
        goto done;
    }
    if (i > 0 && g != m->nf) {
        mm__set_error("%s: %zu genes where %s has %zu", path, g, first_path, m->nf);
        goto done;
    }
    ret = 0;
done:
    free(text);
    return ret;
}

int mm_omx_read_gdc(char *const *paths, size_t n, const char *column, mm_omx *out)
{
    memset(out, 0, sizeof *out);
    strlist files = {0};
    int ret = 0;
    for (size_t k = 0; k < n && ret == 0; k++) {
        struct stat st;
        if (stat(paths[k], &st) == 0 && S_ISDIR(st.st_mode)) {
            size_t before = files.n;
            ret = collect(paths[k], &files, 0);
            qsort(files.v + before, files.n - before, sizeof(char *), cmp_str);
            if (ret == 0 && files.n == before) {
                mm__set_error("%s: no *.tsv or *.tsv.gz files in the directory", paths[k]);
                ret = -1;
            }
        } else {
            sl_push(&files, mm_strdup(paths[k]));
        }
    }
    if (ret == 0 && files.n == 0) {
        mm__set_error("no GDC files given");
        ret = -1;
    }
    mm_omx m = {0};
    double *vals = NULL; /* sample-major, CAP per sample until the genes are known */
    size_t cap = 0;
    if (ret == 0) {
        m.sample = mm_calloc(files.n, sizeof(char *));
        ret = gdc_one(files.v[0], column, 0, &m, &vals, &cap, files.v[0]);
        m.ns = 1;
        m.sample[0] = gdc_sample_id(files.v[0]);
    }
    if (ret == 0) {
        /* the genes are known: one row of NF per sample from here on */
        double *v = mm_malloc(files.n * m.nf * sizeof(double));
        memcpy(v, vals, m.nf * sizeof(double));
        free(vals);
        vals = v;
        cap = m.nf;
    }
    for (size_t i = 1; i < files.n && ret == 0; i++) {
        m.sample[i] = gdc_sample_id(files.v[i]);
        m.ns = i + 1;
        ret = gdc_one(files.v[i], column, i, &m, &vals, &cap, files.v[0]);
    }
    idset h;
    size_t first;
    long dup;
    if (ret == 0 && (dup = ids_build(&h, m.sample, m.ns, &first)) >= 0) {
        mm__set_error("%s: sample id '%s' repeats %s", files.v[dup], m.sample[dup],
                      files.v[first]);
        ret = -1;
    }
    if (ret == 0) ids_free(&h);
    if (ret == 0 && (dup = ids_build(&h, m.feature, m.nf, &first)) >= 0) {
        mm__set_error("%s: gene '%s' listed twice", files.v[0], m.feature[dup]);
        ret = -1;
    }
    if (ret == 0) ids_free(&h);
    free_strs(files.v, files.n);
    m.x = vals;
    if (ret != 0) {
        mm_omx_free(&m);
        return -1;
    }
    *out = m;
    return 0;
}

// ---------------------------------------------------------------- join

int mm_omx_join(mm_omx *a, const mm_omx *b, char **missing)
{
    *missing = NULL;
    idset ha, hb;
    long dup;
    if ((dup = ids_build(&ha, a->feature, a->nf, NULL)) >= 0) {
        mm__set_error("feature '%s' repeats in the first block", a->feature[dup]);
        return -1;
    }
    for (size_t j = 0; j < b->nf; j++)
        if (ids_find(&ha, b->feature[j]) >= 0) {
            mm__set_error("feature '%s' is in both blocks", b->feature[j]);
            ids_free(&ha);
            return -1;
        }
    ids_free(&ha);
    if ((dup = ids_build(&hb, b->sample, b->ns, NULL)) >= 0) {
        mm__set_error("sample '%s' repeats in the second block", b->sample[dup]);
        return -1;
    }
    long *to = mm_malloc((a->ns ? a->ns : 1) * sizeof(long));
    unsigned char *inb = mm_calloc(b->ns, 1);
    size_t ns = 0, len = 0;
    for (size_t i = 0; i < a->ns; i++) {
        to[i] = ids_find(&hb, a->sample[i]);
        if (to[i] >= 0) {
            inb[to[i]] = 1;
            ns++;
        } else {
            len += strlen(a->sample[i]) + 1;
        }
    }
    for (size_t i = 0; i < b->ns; i++)
        if (!inb[i]) len += strlen(b->sample[i]) + 1;
    ids_free(&hb);
    if (ns == 0) {
        mm__set_error("the blocks share no sample id (first ids: '%s' and '%s')",
                      a->ns ? a->sample[0] : "", b->ns ? b->sample[0] : "");
        free(to);
        free(inb);
        return -1;
    }
    if (len) {
        char *s = mm_malloc(len), *w = s;
        for (size_t i = 0; i < a->ns; i++)
            if (to[i] < 0) w += sprintf(w, "%s%s", w == s ? "" : ",", a->sample[i]);
        for (size_t i = 0; i < b->ns; i++)
            if (!inb[i]) w += sprintf(w, "%s%s", w == s ? "" : ",", b->sample[i]);
        *missing = s;
    }
    size_t nf = a->nf + b->nf, k = 0;
    double *x = mm_malloc(ns * nf * sizeof(double));
    char **sample = mm_malloc(ns * sizeof(char *));
    for (size_t i = 0; i < a->ns; i++) {
        if (to[i] < 0) {
            free(a->sample[i]);
            continue;
        }
        memcpy(x + k * nf, a->x + i * a->nf, a->nf * sizeof(double));
        memcpy(x + k * nf + a->nf, b->x + (size_t)to[i] * b->nf, b->nf * sizeof(double));
        sample[k++] = a->sample[i];
    }
    a->feature = mm_realloc(a->feature, (nf ? nf : 1) * sizeof(char *));
    for (size_t j = 0; j < b->nf; j++) a->feature[a->nf + j] = mm_strdup(b->feature[j]);
    free(a->sample);
    free(a->x);
    a->sample = sample;
    a->x = x;
    a->ns = ns;
    a->nf = nf;
    free(to);
    free(inb);
    return 0;
}

void mm_omx_keep_features(mm_omx *m, const unsigned char *keep)
{
    size_t nf = 0;
    for (size_t j = 0; j < m->nf; j++) {
        if (keep[j]) m->feature[nf++] = m->feature[j];
        else free(m->feature[j]);
    }
    for (size_t i = 0; i < m->ns; i++) {
        const double *src = m->x + i * m->nf;
        double *dst = m->x + i * nf;
        for (size_t j = 0, k = 0; j < m->nf; j++)
            if (keep[j]) dst[k++] = src[j];
    }
    m->nf = nf;
}

void mm_omx_keep_samples(mm_omx *m, const unsigned char *keep)
{
    size_t ns = 0;
    for (size_t i = 0; i < m->ns; i++) {
        if (!keep[i]) {
            free(m->sample[i]);
            continue;
        }
        if (ns != i) memmove(m->x + ns * m->nf, m->x + i * m->nf, m->nf * sizeof(double));
        m->sample[ns++] = m->sample[i];
    }
    m->ns = ns;
}

// ---------------------------------------------------------------- transforms

int mm_omx_log2(mm_omx *m, double pseudo)
{
    size_t n = m->ns * m->nf;
    if (!(pseudo >= 0) || !isfinite(pseudo)) {
        mm__set_error("log2 pseudo-count must be a number >= 0, got %g", pseudo);
        return -1;
    }
    for (size_t k = 0; k < n; k++)
        if (m->x[k] + pseudo <= 0) { /* NAN compares false */
            mm__set_error("log2(x + %g) undefined: feature '%s' of sample '%s' is %g",
                          pseudo, m->feature[k % m->nf], m->sample[k / m->nf], m->x[k]);
            return -1;
        }
    for (size_t k = 0; k < n; k++) m->x[k] = log2(m->x[k] + pseudo);
    return 0;
}

static int is_train(const unsigned char *train, size_t i) { return !train || train[i]; }

void mm_omx_zscore(mm_omx *m, const unsigned char *train)
{
    /* StandardScaler: sklearn's _incremental_mean_and_var from zero (the
     * corrected two-pass variance) and _is_constant_feature, summed along
     * samples in order as numpy does for C-ordered arrays */
    size_t ns = m->ns, nf = m->nf;
    double *sum = mm_calloc(nf, sizeof(double)), *cor = mm_calloc(nf, sizeof(double));
    double *ss = mm_calloc(nf, sizeof(double)), *cnt = mm_calloc(nf, sizeof(double));
    for (size_t i = 0; i < ns; i++) {
        if (!is_train(train, i)) continue;
        const double *x = m->x + i * nf;
        for (size_t j = 0; j < nf; j++)
            if (!isnan(x[j])) {
                sum[j] += x[j];
                cnt[j] += 1;
            }
    }
    for (size_t i = 0; i < ns; i++) {
        if (!is_train(train, i)) continue;
        const double *x = m->x + i * nf;
        for (size_t j = 0; j < nf; j++)
            if (!isnan(x[j])) {
                double d = x[j] - sum[j] / cnt[j];
                cor[j] += d;
                ss[j] += d * d;
            }
    }
    for (size_t j = 0; j < nf; j++) {
        double mean = sum[j] / cnt[j];
        double var = (ss[j] - cor[j] * cor[j] / cnt[j]) / cnt[j];
        double ub = cnt[j] * DBL_EPSILON * var +
                    (cnt[j] * mean * DBL_EPSILON) * (cnt[j] * mean * DBL_EPSILON);
        sum[j] = mean;
        ss[j] = var <= ub ? 1.0 : sqrt(var); /* constant: x - mean */
    }
    for (size_t i = 0; i < ns; i++) {
        double *x = m->x + i * nf;
        for (size_t j = 0; j < nf; j++) x[j] = (x[j] - sum[j]) / ss[j];
    }
    free(sum);
    free(cor);
    free(ss);
    free(cnt);
}

// ---------------------------------------------------------------- imputation

/* numpy's pairwise summation (umath loops_utils pairwise_sum) of A[0..N-1]
 * added to 0, as np.sum of a contiguous 1-D float64 array. */
static double pairwise_sum(const double *a, size_t n)
{
    if (n < 8) {
        double res = 0.;
        for (size_t i = 0; i < n; i++) res += a[i];
        return res;
    }
    if (n <= 128) {
        double r[8];
        size_t i;
        for (i = 0; i < 8; i++) r[i] = a[i];
        for (i = 8; i < n - (n % 8); i += 8)
            for (size_t k = 0; k < 8; k++) r[k] += a[i + k];
        double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < n; i++) res += a[i];
        return res;
    }
    size_t n2 = n / 2;
    n2 -= n2 % 8;
    return pairwise_sum(a, n2) + pairwise_sum(a + n2, n - n2);
}

typedef struct {
    double d;
    size_t t;
} donor;

/* Ascending distance, NAN last, then index: a stable order where numpy's
 * argpartition leaves ties to its introselect. */
static int cmp_donor(const void *pa, const void *pb)
{
    const donor *a = pa, *b = pb;
    int na = isnan(a->d), nb = isnan(b->d);
    if (na != nb) return na - nb;
    if (!na && a->d != b->d) return a->d < b->d ? -1 : 1;
    return a->t < b->t ? -1 : a->t > b->t;
}

/* KNNImputer(n_neighbors=K) fitted on the NT rows of FIT (NT x NF, the
 * training samples before imputation); fills the NANs of M in valid
 * columns. CMEAN: the column means it falls back on.
 * Distances are summed directly over the shared coordinates; sklearn
 * expands |x|^2 - 2 x.y + |y|^2, so the two differ by rounding (~1e-13
 * relative) and donors at (nearly) equal distances may be picked
 * differently: sklearn's argpartition leaves exact ties unspecified, we
 * take the lower training index. The k values are averaged in distance
 * order, sklearn in argpartition's order (last-bit differences). */
static void knn_fill(mm_omx *m, const double *fit, size_t nt, size_t k,
                     const unsigned char *valid, const double *cmean)
{
    size_t nf = m->nf;
    long ns = (long)m->ns;
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1)
#endif
    for (long i = 0; i < ns; i++) {
        double *x = m->x + (size_t)i * nf;
        size_t j;
        for (j = 0; j < nf; j++)
            if (valid[j] && isnan(x[j])) break;
        if (j == nf) continue; /* not a receiver */
        /* nan_euclidean_distances: the coordinates both observed, scaled
         * by (all features, dropped ones included) / (coordinates used) */
        double *dist = mm_malloc(nt * sizeof(double));
        donor *don = mm_malloc(nt * sizeof(donor));
        for (size_t t = 0; t < nt; t++) {
            const double *y = fit + t * nf;
            double s = 0;
            size_t c = 0;
            for (size_t f = 0; f < nf; f++)
                if (!isnan(x[f]) && !isnan(y[f])) {
                    double d = x[f] - y[f];
                    s += d * d;
                    c++;
                }
            dist[t] = c ? sqrt(s / (double)c * (double)nf) : NAN;
        }
        for (; j < nf; j++) {
            if (!valid[j] || !isnan(x[j])) continue;
            size_t nd = 0, finite = 0;
            for (size_t t = 0; t < nt; t++)
                if (!isnan(fit[t * nf + j])) {
                    don[nd].d = dist[t];
                    don[nd++].t = t;
                    finite += !isnan(dist[t]);
                }
            if (finite == 0) { /* no distance to any donor: the column mean */
                x[j] = cmean[j];
                continue;
            }
            qsort(don, nd, sizeof *don, cmp_donor);
            size_t use = k < nd ? k : nd, w = 0;
            double s = 0;
            for (size_t q = 0; q < use; q++)
                if (!isnan(don[q].d)) { /* weight 0 for NAN distances */
                    s += fit[don[q].t * nf + j];
                    w++;
                }
            x[j] = s / (double)w;
        }
        free(dist);
        free(don);
    }
}

int mm_omx_impute(mm_omx *m, int how, int k, const unsigned char *train, size_t *dropped)
{
    size_t ns = m->ns, nf = m->nf, nt = 0;
    if (dropped) *dropped = 0;
    if (how != MM_IMPUTE_KNN && how != MM_IMPUTE_MEAN && how != MM_IMPUTE_ZERO) {
        mm__set_error("unknown imputation method %d", how);
        return -1;
    }
    if (how == MM_IMPUTE_KNN && k < 1) {
        mm__set_error("KNN imputation needs k >= 1, got %d", k);
        return -1;
    }
    for (size_t i = 0; i < ns; i++) nt += is_train(train, i);
    if (nt == 0) {
        mm__set_error("imputation: no training samples");
        return -1;
    }
    if (how == MM_IMPUTE_ZERO) { /* SimpleImputer(strategy="constant", fill_value=0) */
        for (size_t q = 0; q < ns * nf; q++)
            if (isnan(m->x[q])) m->x[q] = 0;
        return 0;
    }
    /* the training rows as they are now (donors and statistics) */
    double *fit = mm_malloc(nt * nf * sizeof(double));
    for (size_t i = 0, t = 0; i < ns; i++)
        if (is_train(train, i)) memcpy(fit + t++ * nf, m->x + i * nf, nf * sizeof(double));
    unsigned char *valid = mm_malloc(nf ? nf : 1);
    double *mean = mm_malloc((nf ? nf : 1) * sizeof(double));
    double *col = mm_malloc(nt * sizeof(double));
    size_t nvalid = 0;
    for (size_t j = 0; j < nf; j++) {
        /* np.ma mean: the masked values count as 0 in the sum. KNNImputer
         * takes it of one column (numpy's pairwise sum); SimpleImputer of the
         * matrix along axis 0 (sample by sample). */
        size_t c = 0;
        double s = 0;
        for (size_t t = 0; t < nt; t++) {
            double v = fit[t * nf + j];
            col[t] = isnan(v) ? 0 : v;
            s += col[t];
            c += !isnan(v);
        }
        valid[j] = c > 0;
        nvalid += valid[j];
        if (how == MM_IMPUTE_KNN) s = pairwise_sum(col, nt);
        mean[j] = c ? s * 1. / (double)c : NAN;
    }
    free(col);
    if (how == MM_IMPUTE_KNN) {
        knn_fill(m, fit, nt, (size_t)k, valid, mean);
    } else {
        for (size_t i = 0; i < ns; i++)
            for (size_t j = 0; j < nf; j++)
                if (valid[j] && isnan(m->x[i * nf + j])) m->x[i * nf + j] = mean[j];
    }
    if (nvalid < nf) mm_omx_keep_features(m, valid);
    if (dropped) *dropped = nf - nvalid;
    free(fit);
    free(valid);
    free(mean);
    return 0;
}

// ---------------------------------------------------------------- filters

void mm_omx_variance(const mm_omx *m, const unsigned char *train, double *var)
{
    /* np.nanvar along axis 0 of a C-ordered matrix: mean = sum / n, then
     * sum((x - mean)^2) / n, both summed sample by sample */
    size_t ns = m->ns, nf = m->nf;
    double *sum = mm_calloc(nf ? nf : 1, sizeof(double));
    size_t *cnt = mm_calloc(nf ? nf : 1, sizeof(size_t));
    for (size_t i = 0; i < ns; i++) {
        if (!is_train(train, i)) continue;
        const double *x = m->x + i * nf;
        for (size_t j = 0; j < nf; j++)
            if (!isnan(x[j])) {
                sum[j] += x[j];
                cnt[j]++;
            }
    }
    for (size_t j = 0; j < nf; j++) {
        sum[j] = sum[j] / (double)cnt[j];
        var[j] = 0;
    }
    for (size_t i = 0; i < ns; i++) {
        if (!is_train(train, i)) continue;
        const double *x = m->x + i * nf;
        for (size_t j = 0; j < nf; j++)
            if (!isnan(x[j])) {
                double d = x[j] - sum[j];
                var[j] += d * d;
            }
    }
    for (size_t j = 0; j < nf; j++) var[j] = cnt[j] ? var[j] / (double)cnt[j] : NAN;
    free(sum);
    free(cnt);
}

void mm_omx_filter_constant(const mm_omx *m, const unsigned char *train,
                            unsigned char *keep)
{
    /* VarianceThreshold(0) keeps min(var, peak-to-peak) > 0; here the
     * peak-to-peak is taken over the observed values, so a constant feature
     * with missing values is dropped too (sklearn's NAN peak-to-peak then
     * leaves it to a variance that rounding can make positive) */
    size_t nf = m->nf;
    double *var = mm_malloc((nf ? nf : 1) * sizeof(double));
    mm_omx_variance(m, train, var);
    for (size_t j = 0; j < nf; j++) {
        double lo = INFINITY, hi = -INFINITY;
        for (size_t i = 0; i < m->ns; i++) {
            double v = m->x[i * nf + j];
            if (!is_train(train, i) || isnan(v)) continue;
            if (v < lo) lo = v;
            if (v > hi) hi = v;
        }
        if (!(var[j] > 0 && hi - lo > 0)) keep[j] = 0;
    }
    free(var);
}

void mm_omx_filter_min_var(const mm_omx *m, const unsigned char *train, double x,
                           unsigned char *keep)
{
    double *var = mm_malloc((m->nf ? m->nf : 1) * sizeof(double));
    mm_omx_variance(m, train, var);
    for (size_t j = 0; j < m->nf; j++)
        if (!(var[j] > x)) keep[j] = 0;
    free(var);
}

/* Descending variance, NAN last, then index. */
static int cmp_top(const void *pa, const void *pb)
{
    const donor *a = pa, *b = pb;
    int na = isnan(a->d), nb = isnan(b->d);
    if (na != nb) return na - nb;
    if (!na && a->d != b->d) return a->d > b->d ? -1 : 1;
    return a->t < b->t ? -1 : a->t > b->t;
}

void mm_omx_filter_top_var(const mm_omx *m, const unsigned char *train, size_t k,
                           unsigned char *keep)
{
    /* among the features still kept: the K largest variances, ties by
     * index (np.argsort(-var, kind="stable")[:K]); NAN variances last */
    size_t nf = m->nf, n = 0;
    double *var = mm_malloc((nf ? nf : 1) * sizeof(double));
    donor *idx = mm_malloc((nf ? nf : 1) * sizeof(donor));
    mm_omx_variance(m, train, var);
    for (size_t j = 0; j < nf; j++)
        if (keep[j]) {
            idx[n].d = var[j];
            idx[n++].t = j;
        }
    qsort(idx, n, sizeof *idx, cmp_top);
    for (size_t q = k; q < n; q++) keep[idx[q].t] = 0;
    free(var);
    free(idx);
}

void mm_omx_filter_max_missing(const mm_omx *m, const unsigned char *train, double f,
                               unsigned char *keep)
{
    size_t nt = 0;
    for (size_t i = 0; i < m->ns; i++) nt += is_train(train, i);
    for (size_t j = 0; j < m->nf; j++) {
        size_t miss = 0;
        for (size_t i = 0; i < m->ns; i++)
            miss += is_train(train, i) && isnan(m->x[i * m->nf + j]);
        if (nt && (double)miss / (double)nt > f) keep[j] = 0;
    }
}
