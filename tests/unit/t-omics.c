/* t-omics.c: expression matrices (mm/omics.h). Imputation, scaling and the
 * variance filters against scikit-learn 1.9.1 on the committed fixtures of
 * tests/gen/omics_refs.py (a TCGA-BLCA slice with values knocked out, rebuilt
 * here from the real table and its recipe by tests/gen/omics_inputs.sh since
 * the table is licensed and never committed; ALL top1000var); reading both
 * orientations from the real ALL and BLCA tables,
 * gzip, GDC STAR-counts files, joins, and the one-line errors of bad input.
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "mm/omics.h"
#include "../tap.h"

static char dir[] = "/tmp/t-omics.XXXXXX";
static char top_dir[1024], fix_dir[1100], data_dir[1024];

static const char *put(const char *name, const char *text)
{
    static char p[1200];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *fp = fopen(p, "wb");
    fputs(text, fp);
    fclose(fp);
    return p;
}

static const char *path_in(const char *d, const char *name)
{
    static char p[2100];
    snprintf(p, sizeof p, "%s/%s", d, name);
    return p;
}

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    return system(cmd);
}

static double at(const mm_omx *m, const char *sample, const char *feature)
{
    long i = mm_omx_find_sample(m, sample), j = mm_omx_find_feature(m, feature);
    return i < 0 || j < 0 ? -12345 : m->x[(size_t)i * m->nf + (size_t)j];
}

static void copy_omx(mm_omx *dst, const mm_omx *src)
{
    dst->ns = src->ns;
    dst->nf = src->nf;
    dst->sample = malloc(src->ns * sizeof(char *));
    dst->feature = malloc(src->nf * sizeof(char *));
    for (size_t i = 0; i < src->ns; i++) dst->sample[i] = strdup(src->sample[i]);
    for (size_t j = 0; j < src->nf; j++) dst->feature[j] = strdup(src->feature[j]);
    dst->x = malloc(src->ns * src->nf * sizeof(double));
    memcpy(dst->x, src->x, src->ns * src->nf * sizeof(double));
}

// ---------------------------------------------------------------- refs

typedef struct {
    size_t n;
    char **kind, **key, **val;
    char *text;
} refs;

static int refs_load(refs *r, const char *path)
{
    memset(r, 0, sizeof *r);
    FILE *fp = fopen(path, "rb");
    if (!fp) return -1;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    rewind(fp);
    r->text = malloc((size_t)n + 1);
    size_t got = fread(r->text, 1, (size_t)n, fp);
    fclose(fp);
    r->text[got] = 0;
    if (strncmp(r->text, "# mmpath omics fixture v1:", 26) != 0) return -1;
    size_t cap = 4096;
    r->kind = malloc(cap * sizeof(char *));
    r->key = malloc(cap * sizeof(char *));
    r->val = malloc(cap * sizeof(char *));
    char *save, *line = strtok_r(r->text, "\n", &save);
    for (int l = 0; line; line = strtok_r(NULL, "\n", &save), l++) {
        if (l < 2) continue; /* magic, header */
        char *a = line, *b = strchr(a, '\t'), *c = b ? strchr(b + 1, '\t') : NULL;
        if (!c) return -1;
        *b = *c = 0;
        if (r->n == cap) {
            cap *= 2;
            r->kind = realloc(r->kind, cap * sizeof(char *));
            r->key = realloc(r->key, cap * sizeof(char *));
            r->val = realloc(r->val, cap * sizeof(char *));
        }
        r->kind[r->n] = a;
        r->key[r->n] = b + 1;
        r->val[r->n++] = c + 1;
    }
    return 0;
}

static const char *ref(const refs *r, const char *kind, const char *key)
{
    for (size_t i = 0; i < r->n; i++)
        if (!strcmp(r->kind[i], kind) && !strcmp(r->key[i], key)) return r->val[i];
    return NULL;
}

static double refnum(const refs *r, const char *kind, const char *key)
{
    const char *s = ref(r, kind, key);
    return s ? strtod(s, NULL) : NAN;
}

static void refs_free(refs *r)
{
    free(r->kind);
    free(r->key);
    free(r->val);
    free(r->text);
}

/* max |got - want| over many values, reported once (llm.c check_tensor) */
typedef struct {
    double max;
    size_t n, bad;
    char where[200];
} maxdiff;

static void md_add(maxdiff *md, double got, double want, const char *where)
{
    double d = fabs(got - want);
    if (isnan(got) != isnan(want) || isnan(d)) d = INFINITY;
    if (isnan(got) && isnan(want)) d = 0;
    md->n++;
    if (d > md->max || (md->n == 1)) {
        if (d > md->max) md->max = d;
        snprintf(md->where, sizeof md->where, "%s (got %.17g, want %.17g)", where, got, want);
    }
}

static void md_ok(const maxdiff *md, double tol, const char *what)
{
    ok(md->n > 0 && md->max <= tol, "%s: %zu values, max |diff| %.3g (tol %g)", what, md->n,
       md->max, tol);
    if (md->max > 0) diag("largest at %s", md->where);
}

// ---------------------------------------------------------------- sklearn

static unsigned char *train_of(const refs *r, const mm_omx *m)
{
    unsigned char *tr = calloc(m->ns, 1);
    for (size_t i = 0; i < m->ns; i++) tr[i] = ref(r, "train", m->sample[i]) != NULL;
    return tr;
}

static void test_knn(const refs *r, const mm_omx *orig, const unsigned char *tr, int k,
                     double tol, mm_omx *keep_result)
{
    mm_omx m;
    copy_omx(&m, orig);
    size_t dropped = 99;
    char kind[16], key[400];
    snprintf(kind, sizeof kind, "knn%d", k);
    is_int(mm_omx_impute(&m, MM_IMPUTE_KNN, k, tr, &dropped), 0, "KNN k=%d", k);
    is_int(dropped, 1, "k=%d: one feature missing in every training sample dropped", k);
    is_int(m.nf, orig->nf - 1, "k=%d: %zu features left", k, orig->nf - 1);
    for (size_t i = 0; i < r->n; i++)
        if (!strcmp(r->kind[i], "dropped"))
            is_int(mm_omx_find_feature(&m, r->key[i]), -1, "k=%d: '%s' dropped as sklearn", k,
                   r->key[i]);
    maxdiff md = {0}, same = {0};
    size_t nan_left = 0;
    for (size_t i = 0; i < m.ns; i++)
        for (size_t j = 0; j < m.nf; j++) {
            double got = m.x[i * m.nf + j], was = at(orig, m.sample[i], m.feature[j]);
            nan_left += isnan(got);
            snprintf(key, sizeof key, "%s|%s", m.sample[i], m.feature[j]);
            if (!isnan(was)) {
                md_add(&same, got, was, key);
                continue;
            }
            const char *want = ref(r, kind, key);
            md_add(&md, got, want ? strtod(want, NULL) : NAN, key);
        }
    is_int(nan_left, 0, "k=%d: no value left missing", k);
    md_ok(&same, 0, "observed values untouched");
    char what[64];
    snprintf(what, sizeof what, "KNNImputer(n_neighbors=%d), imputed cells", k);
    md_ok(&md, tol, what);
    if (keep_result) *keep_result = m;
    else mm_omx_free(&m);
}

static void test_scaler(const refs *r, const mm_omx *orig, const unsigned char *tr,
                        const char *kind)
{
    mm_omx m;
    copy_omx(&m, orig);
    mm_omx_zscore(&m, tr);
    maxdiff md = {0};
    char km[32], ks[32], where[400];
    snprintf(km, sizeof km, "%s_mean", kind);
    snprintf(ks, sizeof ks, "%s_scale", kind);
    for (size_t j = 0; j < m.nf; j++) {
        double mean = refnum(r, km, m.feature[j]), scale = refnum(r, ks, m.feature[j]);
        for (size_t i = 0; i < m.ns; i++) {
            snprintf(where, sizeof where, "%s|%s", m.sample[i], m.feature[j]);
            md_add(&md, m.x[i * m.nf + j], (orig->x[i * m.nf + j] - mean) / scale, where);
        }
    }
    char what[96];
    snprintf(what, sizeof what, "StandardScaler fitted on training samples (%s)", kind);
    md_ok(&md, 0, what);
    mm_omx_free(&m);
}

/* "1,5,7" -> flags over N */
static void index_flags(const char *s, unsigned char *f, size_t n)
{
    memset(f, 0, n);
    while (s && *s) {
        char *e;
        long j = strtol(s, &e, 10);
        if (j >= 0 && (size_t)j < n) f[j] = 1;
        s = *e == ',' ? e + 1 : e + strlen(e);
    }
}

static void test_all_var(const refs *r)
{
    char how[200];
    mm_omx m;
    const char *p = path_in(data_dir, "expression/ALL/ALL_exprs_top1000var.tsv");
    if (mm_omx_read(p, MM_ORIENT_AUTO, &m, how, sizeof how) != 0) {
        ok(0, "read ALL top1000var: %s", mm_strerror());
        return;
    }
    is_str(how, "genes in rows (1000 rows > 128 value columns: genes are the longer side)",
           "ALL top1000var: orientation from the longer side");
    unsigned char *tr = malloc(m.ns), *keep = malloc(m.nf), *want = malloc(m.nf);
    for (size_t i = 0; i < m.ns; i++) tr[i] = i % 4 != 0;
    for (int pass = 0; pass < 2; pass++) {
        const char *nm = pass ? "alltr" : "all";
        const unsigned char *t = pass ? tr : NULL;
        char kind[32];
        memset(keep, 1, m.nf);
        mm_omx_filter_constant(&m, t, keep);
        size_t n = 0;
        for (size_t j = 0; j < m.nf; j++) n += keep[j];
        snprintf(kind, sizeof kind, "%s_vt0_keep", nm);
        is_int(n, (long long)refnum(r, kind, "count"), "%s: VarianceThreshold(0) support", nm);
        snprintf(kind, sizeof kind, "%s_vtx", nm);
        double thr = refnum(r, kind, "threshold");
        size_t b = (size_t)refnum(r, kind, "boundary");
        double *var = malloc(m.nf * sizeof(double));
        mm_omx_variance(&m, t, var);
        ok(var[b] == thr, "%s: variance of probe %zu is sklearn's bit for bit (%.17g)", nm, b,
           var[b]);
        free(var);
        memset(keep, 1, m.nf);
        mm_omx_filter_min_var(&m, t, thr, keep);
        snprintf(kind, sizeof kind, "%s_vtx_keep", nm);
        index_flags(ref(r, kind, "indices"), want, m.nf);
        ok(!memcmp(keep, want, m.nf) && !keep[b],
           "%s: VarianceThreshold(%.17g) support equal (boundary probe dropped)", nm, thr);
        memset(keep, 1, m.nf);
        mm_omx_filter_top_var(&m, t, 100, keep);
        snprintf(kind, sizeof kind, "%s_top100", nm);
        index_flags(ref(r, kind, "indices"), want, m.nf);
        ok(!memcmp(keep, want, m.nf), "%s: top 100 by np.var equal", nm);
    }
    free(tr);
    free(keep);
    free(want);
    mm_omx_free(&m);
}

static void test_fixtures(void)
{
    refs r;
    if (refs_load(&r, path_in(fix_dir, "refs.tsv")) != 0) {
        ok(0, "fixture %s/refs.tsv readable with its magic line", fix_dir);
        return;
    }
    if (!data_dir[0]) { /* main() has failed already under CI=true */
        ok(1, "# SKIP BLCA fixture: no test data to rebuild blca60x40.tsv from");
        refs_free(&r);
        return;
    }
    /* the slice itself is not committed (licensed data): rebuild it */
    char tsv[1100];
    snprintf(tsv, sizeof tsv, "%s/blca60x40.tsv", dir);
    if (sh("sh '%s/tests/gen/omics_inputs.sh' '%s' '%s/blca60x40.recipe' '%s'", top_dir,
           data_dir, fix_dir, tsv) != 0) {
        ok(0, "rebuild blca60x40.tsv with tests/gen/omics_inputs.sh from %s", data_dir);
        refs_free(&r);
        return;
    }
    mm_omx m;
    char how[200];
    if (mm_omx_read(tsv, MM_ORIENT_AUTO, &m, how, sizeof how)) {
        ok(0, "read blca60x40.tsv: %s", mm_strerror());
        refs_free(&r);
        return;
    }
    is_str(how, "samples in rows (first column holds TCGA sample ids)", "fixture orientation");
    ok(m.ns == 60 && m.nf == 40, "fixture: 60 samples x 40 genes");
    unsigned char *tr = train_of(&r, &m);
    size_t nt = 0;
    for (size_t i = 0; i < m.ns; i++) nt += tr[i];
    is_int(nt, 47, "47 training samples");

    mm_omx knn;
    test_knn(&r, &m, tr, 5, 1e-6, &knn);

    /* SimpleImputer(strategy="mean") */
    mm_omx mi;
    copy_omx(&mi, &m);
    size_t dropped = 0;
    is_int(mm_omx_impute(&mi, MM_IMPUTE_MEAN, 0, tr, &dropped), 0, "mean imputation");
    is_int(dropped, 1, "mean: the all-missing feature dropped");
    maxdiff md = {0};
    for (size_t j = 0; j < mi.nf; j++)
        for (size_t i = 0; i < mi.ns; i++)
            if (isnan(at(&m, mi.sample[i], mi.feature[j])))
                md_add(&md, mi.x[i * mi.nf + j], refnum(&r, "mean", mi.feature[j]),
                       mi.feature[j]);
    md_ok(&md, 0, "SimpleImputer(mean) statistics_");
    mm_omx_free(&mi);

    /* StandardScaler on the raw values (NaN-aware), all-missing feature off */
    mm_omx raw;
    copy_omx(&raw, &m);
    unsigned char *keep = malloc(raw.nf);
    for (size_t j = 0; j < raw.nf; j++) keep[j] = ref(&r, "dropped", raw.feature[j]) == NULL;
    mm_omx_keep_features(&raw, keep);
    test_scaler(&r, &raw, tr, "sc_raw");
    test_scaler(&r, &knn, tr, "sc_knn");
    mm_omx_free(&raw);

    /* variances and VarianceThreshold(0) on the KNN-imputed training rows */
    double *var = malloc(knn.nf * sizeof(double));
    mm_omx_variance(&knn, tr, var);
    md = (maxdiff){0};
    for (size_t j = 0; j < knn.nf; j++)
        md_add(&md, var[j], refnum(&r, "var_knn", knn.feature[j]), knn.feature[j]);
    md_ok(&md, 0, "VarianceThreshold.variances_ (np.nanvar)");
    memset(keep, 1, knn.nf);
    mm_omx_filter_constant(&knn, tr, keep);
    size_t agree = 0, dropped_c = 0;
    for (size_t j = 0; j < knn.nf; j++) {
        agree += keep[j] == (refnum(&r, "vt0_knn", knn.feature[j]) == 1);
        dropped_c += !keep[j];
    }
    ok(agree == knn.nf && dropped_c == 1, "VarianceThreshold(0) support equal (%zu dropped)",
       dropped_c);
    free(var);
    free(keep);
    mm_omx_free(&knn);
    free(tr);
    mm_omx_free(&m);

    if (data_dir[0]) test_all_var(&r);
    refs_free(&r);
}

// ---------------------------------------------------------------- real tables

static int same_omx(const mm_omx *a, const mm_omx *b)
{
    if (a->ns != b->ns || a->nf != b->nf) return 0;
    for (size_t i = 0; i < a->ns; i++)
        if (strcmp(a->sample[i], b->sample[i])) return 0;
    for (size_t j = 0; j < a->nf; j++)
        if (strcmp(a->feature[j], b->feature[j])) return 0;
    for (size_t q = 0; q < a->ns * a->nf; q++)
        if (a->x[q] != b->x[q] && !(isnan(a->x[q]) && isnan(b->x[q]))) return 0;
    return 1;
}

static void test_real(void)
{
    mm_omx m, z, top;
    char how[200];
    /* ALL: probes in rows, sample ids with leading zeros in the header */
    is_int(mm_omx_read(path_in(data_dir, "expression/ALL/ALL_exprs.tsv"), MM_ORIENT_AUTO, &m,
                       how, sizeof how), 0, "read ALL_exprs.tsv");
    is_str(how, "genes in rows (12625 rows > 128 value columns: genes are the longer side)",
           "ALL: genes in rows");
    ok(m.ns == 128 && m.nf == 12625, "ALL: 128 samples x 12625 probes");
    is_str(m.sample[0], "01005", "ALL: sample ids keep leading zeros");
    is_str(m.feature[0], "1000_at", "ALL: probe ids from the first column");
    ok(at(&m, "01010", "1000_at") == 7.47944534570288, "ALL: a value read exactly");
    /* the 1000 most variable probes are those of the derived file */
    if (mm_omx_read(path_in(data_dir, "expression/ALL/ALL_exprs_top1000var.tsv"),
                    MM_ORIENT_AUTO, &top, NULL, 0) == 0) {
        unsigned char *keep = malloc(m.nf);
        memset(keep, 1, m.nf);
        mm_omx_filter_top_var(&m, NULL, 1000, keep);
        size_t hit = 0, n = 0;
        for (size_t j = 0; j < m.nf; j++)
            if (keep[j]) {
                n++;
                hit += mm_omx_find_feature(&top, m.feature[j]) >= 0;
            }
        ok(n == 1000 && hit == 1000, "ALL: top 1000 by variance = ALL_exprs_top1000var.tsv "
           "(%zu of %zu)", hit, n);
        free(keep);
        mm_omx_free(&top);
    }
    mm_omx_free(&m);

    /* BLCA: patients in rows, TCGA ids in a pandas index column */
    const char *blca = path_in(data_dir, "paired/survpath_blca/tcga_blca_xena_rna_clean.csv");
    is_int(mm_omx_read(blca, MM_ORIENT_AUTO, &m, how, sizeof how), 0, "read BLCA RNA");
    is_str(how, "samples in rows (first column holds TCGA sample ids)", "BLCA: samples in rows");
    ok(m.ns == 360 && m.nf == 1577, "BLCA: 360 patients x 1577 genes");
    is_str(m.sample[0], "TCGA-MV-A51V", "BLCA: ids from the pandas index");
    is_str(m.feature[0], "FMO2", "BLCA: first gene");
    ok(m.x[0] == -1.9379, "BLCA: first value");
    if (sh("gzip -c '%s' > %s/blca.csv.gz", blca, dir) == 0) {
        char p[1100];
        snprintf(p, sizeof p, "%s/blca.csv.gz", dir);
        is_int(mm_omx_read(p, MM_ORIENT_AUTO, &z, NULL, 0), 0, "read BLCA gzip copy");
        ok(same_omx(&m, &z), "gzip copy reads the same matrix");
        mm_omx_free(&z);
    } else {
        ok(1, "# SKIP gzip(1) not available");
    }
    /* forced the other way: 1577 samples named by gene */
    is_int(mm_omx_read(blca, MM_ORIENT_GENES_IN_ROWS, &z, how, sizeof how), 0,
           "BLCA read as --genes-in rows");
    ok(z.ns == 1577 && z.nf == 360 && z.x[0] == -1.9379 && !strcmp(z.sample[0], "FMO2"),
       "transposed as told (%s)", how);
    mm_omx_free(&z);
    mm_omx_free(&m);
}

// ---------------------------------------------------------------- synthetic

static void test_read_small(void)
{
    mm_omx m;
    char how[200];
    const char *p = put("x.tsv", "gene\tTCGA-AA-0001-01A\tTCGA-AA-0002-01A\tTCGA-AA-0003-01A\n"
                                 "TP53\t1\tNA\t3\nEGFR\t\tNaN\t-2.5e-1\n");
    is_int(mm_omx_read(p, MM_ORIENT_AUTO, &m, how, sizeof how), 0, "read small TSV");
    is_str(how, "genes in rows (header holds TCGA sample ids)", "TCGA header: genes in rows");
    ok(m.ns == 3 && m.nf == 2, "3 samples x 2 genes");
    ok(at(&m, "TCGA-AA-0003-01A", "EGFR") == -0.25 && at(&m, "TCGA-AA-0001-01A", "TP53") == 1,
       "values transposed to sample-major");
    ok(isnan(at(&m, "TCGA-AA-0002-01A", "TP53")) && isnan(at(&m, "TCGA-AA-0001-01A", "EGFR")) &&
       isnan(at(&m, "TCGA-AA-0002-01A", "EGFR")), "NA, empty and NaN are missing");
    is_int(mm_omx_find_sample(&m, "nope"), -1, "find: absent id");
    mm_omx_free(&m);

    /* pandas index, samples in rows, ids with leading zeros */
    p = put("pi.csv", ",g1,g2,g3\n007,1,2,3\n008,4,5,6\n");
    is_int(mm_omx_read(p, MM_ORIENT_AUTO, &m, how, sizeof how), 0, "read pandas CSV");
    is_str(how, "samples in rows (2 rows <= 3 value columns: genes are the longer side)",
           "no TCGA ids: the longer side is genes");
    is_str(m.sample[0], "007", "leading zeros kept");
    mm_omx_free(&m);
    is_int(mm_omx_read(p, MM_ORIENT_GENES_IN_ROWS, &m, how, sizeof how), 0, "forced");
    is_str(how, "genes in rows (as --genes-in rows)", "forced: how");
    ok(m.ns == 3 && m.nf == 2 && !strcmp(m.feature[1], "008") && m.x[1 * 2 + 1] == 5,
       "forced: g2 of 008 = 5");
    mm_omx_free(&m);

    /* bad input: one line each, naming file and line */
    static const struct {
        const char *name, *text, *msg;
    } bad[] = {
        {"short.tsv", "id\ta\tb\ns1\t1\t2\ns2\t3\n", "short.tsv:3: expected 3 fields, found 2"},
        {"word.tsv", "id\ta\tb\ns1\t1\tabc\n", "word.tsv:2: column 'b': not a number: 'abc'"},
        {"inf.tsv", "id\ta\ns1\tinf\n", "inf.tsv:2: column 'a': not a number: 'inf'"},
        {"dup.tsv", "id\ta\tb\ts1\n7\t1\t2\t3\n7\t1\t2\t3\n",
         "dup.tsv:3: sample id '7' repeats line 2"},
        {"duph.tsv", "id\ta\ta\ns1\t1\t2\n", "duph.tsv:1: feature id 'a' appears twice"},
        {"noid.tsv", "id\ta\n\t1\n", "noid.tsv:2: empty id"},
        {"one.tsv", "id\ns1\n", "one.tsv: needs an id column and at least one value column"},
        {"none.tsv", "id\ta\n", "none.tsv: no data rows"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        ok(mm_omx_read(put(bad[k].name, bad[k].text), MM_ORIENT_AUTO, &m, NULL, 0) == -1 &&
           m.x == NULL, "%s refused", bad[k].name);
        like(mm_strerror(), bad[k].msg, "%s: message", bad[k].name);
    }
    ok(mm_omx_read(path_in(dir, "absent.tsv"), MM_ORIENT_AUTO, &m, NULL, 0) == -1 &&
       tap_has(mm_strerror(), "absent.tsv"), "missing file: %s", mm_strerror());
}

static const char *gdc_head =
    "# gene-model: GENCODE v36\n"
    "gene_id\tgene_name\tgene_type\tunstranded\tstranded_first\tstranded_second\t"
    "tpm_unstranded\tfpkm_unstranded\tfpkm_uq_unstranded\n"
    "N_unmapped\t\t\t2212871\t2212871\t2212871\t\t\t\n"
    "N_multimapping\t\t\t3373417\t3373417\t3373417\t\t\t\n"
    "N_noFeature\t\t\t1391431\t28722316\t28802099\t\t\t\n"
    "N_ambiguous\t\t\t3124013\t639211\t642092\t\t\t\n";

static void gdc_file(const char *name, const char *genes)
{
    char text[2048];
    snprintf(text, sizeof text, "%s%s", gdc_head, genes);
    put(name, text);
}

static void test_gdc(void)
{
    char d[1100], sub[1200];
    snprintf(d, sizeof d, "%s/gdc", dir);
    snprintf(sub, sizeof sub, "%s/gdc/4c7b-uuid", dir);
    mkdir(d, 0700);
    mkdir(sub, 0700);
    gdc_file("gdc/a1.rna_seq.augmented_star_gene_counts.tsv",
             "ENSG00000000003.15\tTSPAN6\tprotein_coding\t2806\t1405\t1401\t37.9\t11.1\t9.5\n"
             "ENSG00000000005.6\tTNMD\tprotein_coding\t0\t0\t0\t0.0\t0.0\t0.0\n"
             "ENSG00000000419.13\tDPM1\tprotein_coding\t1200\t600\t600\t81.5\t23.9\t20.4\n");
    gdc_file("gdc/4c7b-uuid/b2.rna_seq.augmented_star_gene_counts.tsv",
             "ENSG00000000003.15\tTSPAN6\tprotein_coding\t10\t5\t5\t1.5\t0.5\t0.4\n"
             "ENSG00000000005.6\tTNMD\tprotein_coding\t3\t1\t2\t0.25\t0.1\t0.1\n"
             "ENSG00000000419.13\tDPM1\tprotein_coding\t7\t3\t4\t2\t1\t1\n");
    gdc_file("c3.rna_seq.augmented_star_gene_counts.tsv",
             "ENSG00000000003.15\tTSPAN6\tprotein_coding\t1\t1\t0\t0.125\t0.5\t0.4\n"
             "ENSG00000000005.6\tTNMD\tprotein_coding\t4\t2\t2\tNA\t0.1\t0.1\n"
             "ENSG00000000419.13\tDPM1\tprotein_coding\t5\t3\t2\t3\t1\t1\n");
    int gz = sh("gzip %s/c3.rna_seq.augmented_star_gene_counts.tsv", dir) == 0;
    char c3[1200];
    snprintf(c3, sizeof c3, "%s/c3.rna_seq.augmented_star_gene_counts.tsv%s", dir,
             gz ? ".gz" : "");
    char *paths[2] = {d, c3};
    mm_omx m;
    is_int(mm_omx_read_gdc(paths, 2, "tpm_unstranded", &m), 0, "GDC: a directory and a file%s",
           gz ? " (gzip)" : "");
    ok(m.ns == 3 && m.nf == 3, "GDC: 3 samples x 3 genes (N_* rows skipped)");
    ok(m.ns == 3 && !strcmp(m.sample[0], "b2") && !strcmp(m.sample[1], "a1") &&
       !strcmp(m.sample[2], "c3"), "GDC: sample ids from file names, directory sorted");
    is_str(m.nf ? m.feature[2] : NULL, "ENSG00000000419.13", "GDC: gene_id as feature id");
    ok(at(&m, "a1", "ENSG00000000419.13") == 81.5 && at(&m, "c3", "ENSG00000000003.15") == 0.125 &&
       isnan(at(&m, "c3", "ENSG00000000005.6")), "GDC: tpm_unstranded values, NA missing");
    mm_omx_free(&m);
    is_int(mm_omx_read_gdc(paths, 2, "unstranded", &m), 0, "GDC: --gdc-column unstranded");
    ok(at(&m, "b2", "ENSG00000000005.6") == 3, "GDC: unstranded counts");
    mm_omx_free(&m);

    ok(mm_omx_read_gdc(paths, 2, "tpm", &m) == -1, "GDC: unknown column refused");
    like(mm_strerror(), "no value column 'tpm' (valid: unstranded, stranded_first, "
         "stranded_second, tpm_unstranded, fpkm_unstranded, fpkm_uq_unstranded)",
         "GDC: unknown column lists the valid ones");
    gdc_file("d4.tsv", "ENSG00000000003.15\tTSPAN6\tprotein_coding\t1\t1\t0\t0.1\t0.5\t0.4\n"
                       "ENSG00000000457.14\tSCYL3\tprotein_coding\t4\t2\t2\t1\t0.1\t0.1\n");
    char d4[1200];
    snprintf(d4, sizeof d4, "%s/d4.tsv", dir);
    char *p2[2] = {c3, d4};
    ok(mm_omx_read_gdc(p2, 2, "tpm_unstranded", &m) == -1, "GDC: different genes refused");
    like(mm_strerror(), "d4.tsv:8: gene 'ENSG00000000457.14' where", "GDC: names file and line");
    gdc_file("e5.tsv", "ENSG00000000003.15\tTSPAN6\tprotein_coding\t1\t1\n");
    snprintf(d4, sizeof d4, "%s/e5.tsv", dir);
    char *p3[1] = {d4};
    ok(mm_omx_read_gdc(p3, 1, "unstranded", &m) == -1, "GDC: short row refused");
    like(mm_strerror(), "e5.tsv:7: expected 9 fields, found 5", "GDC: short row message");
    put("f6.tsv", "a\tb\n1\t2\n");
    snprintf(d4, sizeof d4, "%s/f6.tsv", dir);
    ok(mm_omx_read_gdc(p3, 1, "unstranded", &m) == -1, "GDC: not a GDC file");
    like(mm_strerror(), "f6.tsv:1: not a GDC STAR-counts file", "GDC: no gene_id message");
    char *p4[2] = {c3, c3};
    ok(mm_omx_read_gdc(p4, 2, "unstranded", &m) == -1, "GDC: same sample twice refused");
    like(mm_strerror(), "sample id 'c3' repeats", "GDC: repeated sample message");
}

static mm_omx small(const char *name, const char *text)
{
    mm_omx m;
    if (mm_omx_read(put(name, text), MM_ORIENT_GENES_IN_COLUMNS, &m, NULL, 0) != 0) {
        ok(0, "read %s: %s", name, mm_strerror());
        memset(&m, 0, sizeof m);
    }
    return m;
}

static void test_join(void)
{
    mm_omx a = small("ja.tsv", "id\tg1\tg2\nS1\t1\t2\nS2\t3\t4\nS3\t5\t6\n");
    mm_omx b = small("jb.tsv", "id\tm1\nS3\t30\nS4\t40\nS1\t10\n");
    char *missing = (char *)"x";
    is_int(mm_omx_join(&a, &b, &missing), 0, "join");
    ok(a.ns == 2 && a.nf == 3 && !strcmp(a.sample[0], "S1") && !strcmp(a.sample[1], "S3"),
       "inner join in A's order");
    ok(a.x[0] == 1 && a.x[2] == 10 && a.x[3] == 5 && a.x[5] == 30, "rows matched by id");
    is_str(a.feature[2], "m1", "B's features after A's");
    is_str(missing, "S2,S4", "dropped ids listed");
    free(missing);
    ok(mm_omx_join(&a, &b, &missing) == -1 && missing == NULL, "feature collision refused");
    like(mm_strerror(), "feature 'm1' is in both blocks", "collision: message");
    mm_omx c = small("jc.tsv", "id\tk1\nX1\t1\n");
    ok(mm_omx_join(&a, &c, &missing) == -1 && a.ns == 2, "no common sample refused, A intact");
    like(mm_strerror(), "share no sample id", "no common sample: message");
    mm_omx_free(&c);
    c = small("jd.tsv", "id\tk1\nS1\t1\nS3\t2\n");
    is_int(mm_omx_join(&a, &c, &missing), 0, "join with all samples in common");
    ok(missing == NULL && a.nf == 4, "nothing missing: NULL");
    unsigned char ks[2] = {0, 1}, kf[4] = {1, 0, 1, 1};
    mm_omx_keep_samples(&a, ks);
    mm_omx_keep_features(&a, kf);
    ok(a.ns == 1 && a.nf == 3 && !strcmp(a.sample[0], "S3") && a.x[0] == 5 && a.x[1] == 30 &&
       a.x[2] == 2 && !strcmp(a.feature[1], "m1"), "keep samples / features");
    mm_omx_free(&a);
    mm_omx_free(&b);
    mm_omx_free(&c);
    mm_omx_free(&c); /* twice is harmless */
}

static void test_transforms(void)
{
    mm_omx m = small("lg.tsv", "id\ta\tb\ns1\t0\t3\ns2\t1\tNA\ns3\t7\t-0.5\n");
    is_int(mm_omx_log2(&m, 1), 0, "log2p1");
    ok(m.x[0] == 0 && m.x[1] == 2 && m.x[2] == 1 && isnan(m.x[3]) && m.x[4] == 3 &&
       m.x[5] == -1, "log2(x + 1), NA stays NA");
    ok(mm_omx_log2(&m, 1) == -1 && m.x[5] == -1, "x <= -1 refused, matrix intact");
    like(mm_strerror(), "log2(x + 1) undefined: feature 'b' of sample 's3' is -1",
         "log2: message");
    mm_omx_free(&m);

    m = small("zs.tsv", "id\ta\tb\tc\ns1\t1\t5\tNA\ns2\t2\t5\t1\ns3\t3\t5\t3\ns4\t10\t7\t100\n");
    unsigned char tr[4] = {1, 1, 1, 0};
    mm_omx_zscore(&m, tr);
    double sd = sqrt(2.0 / 3);
    ok(fabs(m.x[0] + 1 / sd) < 1e-15 && m.x[3] == 0 && fabs(m.x[9] - 8 / sd) < 1e-14,
       "z-score with training mean and population sd");
    ok(m.x[1] == 0 && m.x[10] == 2, "constant in training: x - mean");
    ok(isnan(m.x[2]) && m.x[5] == -1 && m.x[8] == 1, "NaN-aware statistics, NAN stays");
    mm_omx_free(&m);
}

static void test_impute_small(void)
{
    /* f3: one training donor; s5 has nothing in common with the donors of
     * f1 and gets their mean; f4 is missing in all training samples */
    const char *text = "id\tf1\tf2\tf3\tf4\n"
                       "s1\t1\t0\tNA\tNA\n"
                       "s2\t2\t1\t7\tNA\n"
                       "s3\t4\t3\tNA\tNA\n"
                       "s4\tNA\t2.9\t9\t1\n"
                       "s5\tNA\tNA\tNA\t2\n";
    unsigned char tr[5] = {1, 1, 1, 0, 0};
    mm_omx m = small("ki.tsv", text);
    size_t dropped = 0;
    is_int(mm_omx_impute(&m, MM_IMPUTE_KNN, 2, tr, &dropped), 0, "KNN k=2 small");
    is_int(dropped, 1, "f4 dropped");
    ok(m.nf == 3 && mm_omx_find_feature(&m, "f4") == -1, "f4 gone");
    ok(m.x[3 * 3 + 0] == (4 + 2) / 2.0, "s4.f1: the two nearest donors on f2 (s3, s2)");
    ok(m.x[4 * 3 + 0] == 7.0 / 3, "s5.f1: no distance to any donor: training mean");
    ok(m.x[4 * 3 + 1] == 4.0 / 3, "s5.f2: training mean");
    ok(m.x[0 * 3 + 2] == 7 && m.x[2 * 3 + 2] == 7, "f3: fewer donors than k: the one there is");
    mm_omx_free(&m);

    m = small("ki.tsv", text);
    is_int(mm_omx_impute(&m, MM_IMPUTE_ZERO, 0, tr, &dropped), 0, "zero imputation");
    ok(dropped == 0 && m.nf == 4 && m.x[3] == 0 && m.x[16] == 0, "zero: all features kept");
    mm_omx_free(&m);
    m = small("ki.tsv", text);
    is_int(mm_omx_impute(&m, MM_IMPUTE_MEAN, 0, NULL, &dropped), 0, "mean, all samples train");
    ok(dropped == 0 && m.x[3 * 4] == 7.0 / 3 && m.x[3] == 1.5, "mean over all samples");
    ok(mm_omx_impute(&m, MM_IMPUTE_KNN, 0, NULL, &dropped) == -1, "k = 0 refused");
    like(mm_strerror(), "k >= 1", "k: message");
    unsigned char none[5] = {0};
    ok(mm_omx_impute(&m, MM_IMPUTE_MEAN, 0, none, &dropped) == -1, "no training sample refused");
    mm_omx_free(&m);
}

static void test_filters(void)
{
    mm_omx m = small("fl.tsv", "id\tc\tcn\tv1\tv2\tv3\tmiss\n"
                               "s1\t0.1\t0.1\t1\t0\t1\tNA\n"
                               "s2\t0.1\tNA\t2\t1\t3\tNA\n"
                               "s3\t0.1\t0.1\t3\t2\t5\t1\n"
                               "s4\t0.1\t0.1\t4\t3\t7\t2\n");
    unsigned char keep[6];
    memset(keep, 1, 6);
    mm_omx_filter_constant(&m, NULL, keep);
    ok(!keep[0] && !keep[1] && keep[2] && keep[5], "constant dropped, with or without NA");
    memset(keep, 1, 6);
    mm_omx_filter_min_var(&m, NULL, 1.25, keep);
    ok(!keep[2] && !keep[3] && keep[4] && keep[5] == 0, "min-var: var <= 1.25 dropped");
    memset(keep, 1, 6);
    keep[4] = 0;
    mm_omx_filter_top_var(&m, NULL, 2, keep);
    ok(keep[2] && keep[3] && !keep[4] && !keep[5] && !keep[0],
       "top-var: ties by index, a dropped feature stays dropped");
    memset(keep, 1, 6);
    mm_omx_filter_max_missing(&m, NULL, 0.25, keep);
    ok(keep[1] && !keep[5] && keep[0], "max-missing: 2/4 > 0.25 dropped, 1/4 kept");
    unsigned char tr[4] = {0, 0, 1, 1};
    memset(keep, 1, 6);
    mm_omx_filter_max_missing(&m, tr, 0, keep);
    ok(keep[5] && keep[1], "max-missing over training samples only");
    double var[6];
    mm_omx_variance(&m, tr, var);
    ok(var[2] == 0.25 && var[5] == 0.25, "variance over training samples");
    mm_omx_free(&m);
}

int main(void)
{
    if (!mkdtemp(dir)) return 99;
    const char *top = getenv("top_srcdir"), *d = getenv("MMPATH_TEST_DATA"), *ci = getenv("CI");
    snprintf(top_dir, sizeof top_dir, "%s", top && *top ? top : ".");
    snprintf(fix_dir, sizeof fix_dir, "%s/tests/fixtures/omics", top_dir);
    if (d && *d) snprintf(data_dir, sizeof data_dir, "%s", d);
    else snprintf(data_dir, sizeof data_dir, "%s/../shared/data", top && *top ? top : ".");
    struct stat st;
    if (stat(path_in(data_dir, "expression/ALL/ALL_exprs.tsv"), &st) != 0) {
        if (ci && !strcmp(ci, "true")) ok(0, "test data missing in CI: %s", data_dir);
        else diag("SKIP real-data tests: no %s/expression/ALL", data_dir);
        data_dir[0] = 0;
    }

    test_read_small();
    test_gdc();
    test_join();
    test_transforms();
    test_impute_small();
    test_filters();
    test_fixtures();
    if (data_dir[0]) test_real();

    if (sh("rm -rf %s", dir) != 0) diag("cleanup failed");
    return done_testing();
}
