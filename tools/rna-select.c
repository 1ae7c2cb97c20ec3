/* rna-select: expression tables in, selected omics stream out. Reads
 * TSV/CSV matrices or GDC STAR-counts files, then runs the steps given on
 * the command line in their order (transforms, imputation, filters,
 * supervised selection), fitting each on the training samples only, and
 * writes one record per sample with the selection trail in the header.
 * The numerics live in lib/omics.c, lib/linear.c and lib/cox.c.
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mm/clinical.h"
#include "mm/cox.h"
#include "mm/linear.h"
#include "mm/omics.h"
#include "mm/stream.h"
#include "toolutil.h"

static void usage(FILE *fp)
{
    fprintf(fp,
"Usage: rna-select [options] INPUT...\n"
"\n"
"Expression matrices (TSV/CSV, gzip or not; several are joined by sample id)\n"
"or GDC STAR-counts files (--gdc-column) in; an omics stream out, one record\n"
"per sample. Steps run in the order given, each fitted on the training\n"
"samples (--train-ids) and applied to all.\n"
"\n"
"Input and output:\n"
"  -o, --output FILE        the omics stream [stdout]\n"
"      --list               print the selected feature ids instead\n"
"      --genes-in rows|columns  orientation [detected from the ids]\n"
"      --gdc-column COL     inputs are GDC STAR-counts files or directories;\n"
"                           COL: tpm_unstranded, fpkm_unstranded, unstranded...\n"
"      --feature-suffix S   mixed tables (PORPOISE, MCAT): samples in rows, the\n"
"                           features are the columns ending in S (_rnaseq)\n"
"      --sample-col COL     their sample id column [case_id]; repeated rows of\n"
"                           an id (one per slide) are dropped when equal\n"
"      --block NAME         omics type of the block (mRNA, miRNA, ...) [mRNA]\n"
"      --id NAME            segment id [the first input's name]\n"
"      --train-ids FILE     fit every step on these samples only (one id a line)\n"
"      --keep FILE          feature ids always kept (one a line)\n"
"Steps (in command-line order):\n"
"      --log2p1             log2(x + 1)\n"
"      --log2 PSEUDO        log2(x + PSEUDO)\n"
"      --zscore             per feature, training mean and population sd\n"
"      --impute M           knn, mean or zero (--knn-k K [5])\n"
"      --drop-constant      drop zero-variance features\n"
"      --min-var X          keep variance > X (VarianceThreshold)\n"
"      --top-var K          keep the K most variable features\n"
"      --max-missing F      drop features missing in more than a fraction F\n"
"      --rfe K              recursive feature elimination down to K\n"
"      --rfecv              RFE with cross-validated feature count\n"
"      --cox-top K          the K features with the smallest univariate Cox\n"
"                           Wald p (Efron ties, as R's coxph)\n"
"Supervised steps:\n"
"      --labels FILE        clinical table or stream; --id-col, --label-col,\n"
"                           --time-col, --event-col, --event-value,\n"
"                           --censored-value as everywhere (mmpath(7))\n"
"      --estimator E        svm (LinearSVC) or logreg [svm]\n"
"      --C X                inverse regularisation [1]\n"
"      --step S             features dropped per round: a count, or a\n"
"                           fraction of those entering RFE [1]\n"
"      --cv K               RFECV folds (stratified) [5]\n"
"      --min-features N     RFECV's smallest count [1]\n"
"      --max-iter N         solver iterations [100000]\n"
"  -@, --threads N          threads for the solvers [1]\n"
"  -v, -q, -h, -V           more/less on stderr, help, version\n"
"Exit status: 0 ok, 1 bad input, 2 bad usage.\n");
}

enum { S_LOG2, S_ZSCORE, S_IMPUTE, S_CONST, S_MINVAR, S_TOPVAR, S_MAXMISS, S_RFE,
       S_RFECV, S_COX };
static const char *step_name[] = {"log2", "zscore", "impute", "drop_constant", "min_var",
                                  "top_var", "max_missing", "rfe", "rfecv", "cox_top"};
typedef struct {
    int kind;
    double x;        /* PSEUDO, X, F */
    long long k;     /* K, impute method */
} step;

static char **read_lines(const char *path, size_t *n)
{
    FILE *fp = fopen(path, "r");
    if (!fp) mm_die_errno("%s", path);
    char *line = NULL;
    size_t cap = 0, k = 0, acap = 64;
    ssize_t len;
    char **out = mm_malloc(acap * sizeof(char *));
    while ((len = getline(&line, &cap, fp)) >= 0) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r' || line[len - 1] == ' '))
            line[--len] = 0;
        if (len == 0 || line[0] == '#') continue;
        char *tab = strpbrk(line, "\t,");
        if (tab) *tab = 0; /* first column only */
        if (k == acap) out = mm_realloc(out, (acap *= 2) * sizeof(char *));
        out[k++] = mm_strdup(line);
    }
    free(line);
    fclose(fp);
    *n = k;
    return out;
}

/* GDC inputs: files, or directories holding *.tsv / *.tsv.gz files */
static char **gdc_paths(char **in, int nin, size_t *n)
{
    size_t k = 0, cap = 64;
    char **out = mm_malloc(cap * sizeof(char *));
    for (int i = 0; i < nin; i++) {
        struct stat st;
        if (stat(in[i], &st) != 0) mm_die_errno("%s", in[i]);
        if (!S_ISDIR(st.st_mode)) {
            if (k == cap) out = mm_realloc(out, (cap *= 2) * sizeof(char *));
            out[k++] = mm_strdup(in[i]);
            continue;
        }
        struct dirent **ents;
        int ne = scandir(in[i], &ents, NULL, alphasort);
        if (ne < 0) mm_die_errno("%s", in[i]);
        for (int e = 0; e < ne; e++) {
            const char *nm = ents[e]->d_name;
            size_t l = strlen(nm);
            if (nm[0] != '.' && ((l > 4 && !strcmp(nm + l - 4, ".tsv")) ||
                                 (l > 7 && !strcmp(nm + l - 7, ".tsv.gz")))) {
                if (k == cap) out = mm_realloc(out, (cap *= 2) * sizeof(char *));
                size_t pl = strlen(in[i]) + l + 2;
                out[k] = mm_malloc(pl);
                snprintf(out[k++], pl, "%s/%s", in[i], nm);
            }
            free(ents[e]);
        }
        free(ents);
    }
    if (k == 0) mm_die("no GDC STAR-counts files (*.tsv, *.tsv.gz) in the inputs");
    *n = k;
    return out;
}

static void trail_add(mm_rec *h, mm_val *trail, const step *s, size_t in, size_t out,
                      const char *extra_key, const char *extra)
{
    mm_val *m = mm_array_push(h, trail);
    mm_val_set_map(m);
    mm_val_set_str(h, mm_map_put(h, m, "step"), step_name[s->kind]);
    switch (s->kind) {
    case S_LOG2: mm_val_set_float(mm_map_put(h, m, "pseudo"), s->x); break;
    case S_MINVAR: mm_val_set_float(mm_map_put(h, m, "threshold"), s->x); break;
    case S_MAXMISS: mm_val_set_float(mm_map_put(h, m, "fraction"), s->x); break;
    case S_TOPVAR: case S_RFE: case S_COX: mm_val_set_int(mm_map_put(h, m, "k"), s->k); break;
    default: break;
    }
    if (extra_key) mm_val_set_str(h, mm_map_put(h, m, extra_key), extra);
    mm_val_set_int(mm_map_put(h, m, "features_in"), (int64_t)in);
    mm_val_set_int(mm_map_put(h, m, "features_out"), (int64_t)out);
}

static int cmp_idx_p;
static const double *g_p;
static int cmp_by_p(const void *a, const void *b)
{
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    double x = g_p[i], y = g_p[j];
    (void)cmp_idx_p;
    if (isnan(x) != isnan(y)) return isnan(x) ? 1 : -1;
    if (x < y) return -1;
    if (x > y) return 1;
    return (i > j) - (i < j);
}

int main(int argc, char **argv)
{
    enum { O_LIST = 256, O_GENES, O_GDC, O_BLOCK, O_ID, O_TRAIN, O_KEEP, O_LOG2P1, O_LOG2,
           O_ZSCORE, O_IMPUTE, O_KNNK, O_CONST, O_MINVAR, O_TOPVAR, O_MAXMISS, O_RFE,
           O_RFECV, O_COX, O_LABELS, O_EST, O_C, O_STEP, O_CV, O_MINF, O_MAXIT, O_IDCOL,
           O_LABEL, O_TIME, O_EVENT, O_EVV, O_CENS, O_UNIT, O_SUFFIX, O_SAMPLECOL };
    static const struct option lopts[] = {
        {"output", required_argument, NULL, 'o'}, {"list", no_argument, NULL, O_LIST},
        {"genes-in", required_argument, NULL, O_GENES},
        {"gdc-column", required_argument, NULL, O_GDC},
        {"feature-suffix", required_argument, NULL, O_SUFFIX},
        {"sample-col", required_argument, NULL, O_SAMPLECOL},
        {"block", required_argument, NULL, O_BLOCK}, {"id", required_argument, NULL, O_ID},
        {"train-ids", required_argument, NULL, O_TRAIN},
        {"keep", required_argument, NULL, O_KEEP}, {"log2p1", no_argument, NULL, O_LOG2P1},
        {"log2", required_argument, NULL, O_LOG2}, {"zscore", no_argument, NULL, O_ZSCORE},
        {"impute", required_argument, NULL, O_IMPUTE},
        {"knn-k", required_argument, NULL, O_KNNK},
        {"drop-constant", no_argument, NULL, O_CONST},
        {"min-var", required_argument, NULL, O_MINVAR},
        {"top-var", required_argument, NULL, O_TOPVAR},
        {"max-missing", required_argument, NULL, O_MAXMISS},
        {"rfe", required_argument, NULL, O_RFE}, {"rfecv", no_argument, NULL, O_RFECV},
        {"cox-top", required_argument, NULL, O_COX},
        {"labels", required_argument, NULL, O_LABELS},
        {"estimator", required_argument, NULL, O_EST}, {"C", required_argument, NULL, O_C},
        {"step", required_argument, NULL, O_STEP}, {"cv", required_argument, NULL, O_CV},
        {"min-features", required_argument, NULL, O_MINF},
        {"max-iter", required_argument, NULL, O_MAXIT},
        {"id-col", required_argument, NULL, O_IDCOL},
        {"label-col", required_argument, NULL, O_LABEL},
        {"time-col", required_argument, NULL, O_TIME},
        {"event-col", required_argument, NULL, O_EVENT},
        {"event-value", required_argument, NULL, O_EVV},
        {"censored-value", required_argument, NULL, O_CENS},
        {"time-unit", required_argument, NULL, O_UNIT},
        MM_COMMON_LONGOPTS, {NULL, 0, NULL, 0}};
    const char *optstring = "o:@:vqhV";
    const char *out = "-", *gdc = NULL, *block = "mRNA", *id = NULL, *train_path = NULL;
    const char *keep_path = NULL, *labels_path = NULL, *suffix = NULL, *sample_col = NULL;
    int list = 0, orient = MM_ORIENT_AUTO, knn_k = 5;
    mm_colopts co = {0};
    mm_linear_opts lo;
    mm_linear_opts_init(&lo);
    mm_rfe_opts ro = {.n_select = 0, .step = 1, .cv = 5, .min_features = 1};
    step steps[64];
    int nsteps = 0, c;
    mm_tool_init("rna-select");
    mm_blas_tune(argv);
#define ADD(K, X, N) do { if (nsteps == 64) mm_die_usage("too many steps"); \
        steps[nsteps++] = (step){(K), (X), (N)}; } while (0)
    while ((c = getopt_long(argc, argv, optstring, lopts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case O_LIST: list = 1; break;
        case O_GENES:
            if (!strcmp(optarg, "rows")) orient = MM_ORIENT_GENES_IN_ROWS;
            else if (!strcmp(optarg, "columns")) orient = MM_ORIENT_GENES_IN_COLUMNS;
            else mm_die_usage("--genes-in: expected rows or columns, got '%s'", optarg);
            break;
        case O_GDC: gdc = optarg; break;
        case O_SUFFIX: suffix = optarg; break;
        case O_SAMPLECOL: sample_col = optarg; break;
        case O_BLOCK: block = optarg; break;
        case O_ID: id = optarg; break;
        case O_TRAIN: train_path = optarg; break;
        case O_KEEP: keep_path = optarg; break;
        case O_LOG2P1: ADD(S_LOG2, 1, 0); break;
        case O_LOG2: ADD(S_LOG2, mm_opt_double("--log2", optarg, 1e-300, 1e300), 0); break;
        case O_ZSCORE: ADD(S_ZSCORE, 0, 0); break;
        case O_IMPUTE:
            if (!strcmp(optarg, "knn")) ADD(S_IMPUTE, 0, MM_IMPUTE_KNN);
            else if (!strcmp(optarg, "mean")) ADD(S_IMPUTE, 0, MM_IMPUTE_MEAN);
            else if (!strcmp(optarg, "zero")) ADD(S_IMPUTE, 0, MM_IMPUTE_ZERO);
            else mm_die_usage("--impute: expected knn, mean or zero, got '%s'", optarg);
            break;
        case O_KNNK: knn_k = (int)mm_opt_int("--knn-k", optarg, 1, 1000); break;
        case O_CONST: ADD(S_CONST, 0, 0); break;
        case O_MINVAR: ADD(S_MINVAR, mm_opt_double("--min-var", optarg, 0, 1e300), 0); break;
        case O_TOPVAR: ADD(S_TOPVAR, 0, mm_opt_int("--top-var", optarg, 1, 100000000)); break;
        case O_MAXMISS: ADD(S_MAXMISS, mm_opt_double("--max-missing", optarg, 0, 1), 0); break;
        case O_RFE: ADD(S_RFE, 0, mm_opt_int("--rfe", optarg, 1, 100000000)); break;
        case O_RFECV: ADD(S_RFECV, 0, 0); break;
        case O_COX: ADD(S_COX, 0, mm_opt_int("--cox-top", optarg, 1, 100000000)); break;
        case O_LABELS: labels_path = optarg; break;
        case O_EST:
            if (!strcmp(optarg, "svm")) lo.estimator = MM_EST_SVM;
            else if (!strcmp(optarg, "logreg")) lo.estimator = MM_EST_LOGREG;
            else mm_die_usage("--estimator: expected svm or logreg, got '%s'", optarg);
            break;
        case O_C: lo.C = mm_opt_double("--C", optarg, 1e-12, 1e12); break;
        case O_STEP: ro.step = mm_opt_double("--step", optarg, 1e-9, 1e9);
            if (ro.step >= 1 && ro.step != floor(ro.step))
                mm_die_usage("--step: a count (integer >= 1) or a fraction in (0, 1), got '%s'", optarg);
            break;
        case O_CV: ro.cv = (int)mm_opt_int("--cv", optarg, 2, 100); break;
        case O_MINF: ro.min_features = (size_t)mm_opt_int("--min-features", optarg, 1, 100000000); break;
        case O_MAXIT: lo.max_iter = (int)mm_opt_int("--max-iter", optarg, 1, 100000000); break;
        case O_IDCOL: co.id_col = optarg; break;
        case O_LABEL: co.label_col = optarg; break;
        case O_TIME: co.time_col = optarg; break;
        case O_EVENT: co.event_col = optarg; break;
        case O_EVV: co.event_value = optarg; break;
        case O_CENS: co.censored_value = optarg; break;
        case O_UNIT: co.time_unit = optarg; break;
        case 'h': usage(stdout); return mm_tool_exit(0);
        case 'V': mm_print_version("rna-select"); return mm_tool_exit(0);
        default:
            if (mm_common_opt(c, optarg)) break;
            usage(stderr);
            return MM_EXIT_USAGE;
        }
    }
    lo.threads = mm_threads;
    if (optind == argc) {
        usage(stderr);
        return MM_EXIT_USAGE;
    }
    int supervised = 0;
    for (int i = 0; i < nsteps; i++)
        if (steps[i].kind == S_RFE || steps[i].kind == S_RFECV || steps[i].kind == S_COX) supervised = 1;
    if (supervised && !labels_path) mm_die_usage("--rfe, --rfecv and --cox-top need --labels FILE");
    if (co.event_value && co.censored_value)
        mm_die_usage("--event-value and --censored-value exclude each other");
    if (!list) mm_refuse_tty(out);
    if (sample_col && !suffix) mm_die_usage("--sample-col goes with --feature-suffix");
    if (suffix && gdc) mm_die_usage("--feature-suffix and --gdc-column exclude each other");

    /* ---- read and join */
    mm_omx m = {0};
    char how[256] = "";
    if (gdc) {
        size_t np;
        char **paths = gdc_paths(argv + optind, argc - optind, &np);
        if (mm_omx_read_gdc(paths, np, gdc, &m) != 0) mm_die("%s", mm_strerror());
        mm_note(2, "%zu GDC STAR-counts files, column %s: %zu genes", np, gdc, m.nf);
        for (size_t i = 0; i < np; i++) free(paths[i]);
        free(paths);
    } else {
        for (int i = optind; i < argc; i++) {
            mm_omx b = {0};
            int r = suffix ? mm_omx_read_columns(argv[i], sample_col, suffix,
                                                 i == optind ? &m : &b, how, sizeof how)
                           : mm_omx_read(argv[i], orient, i == optind ? &m : &b, how, sizeof how);
            if (r != 0) mm_die("%s", mm_strerror());
            mm_note(3, "%s: %s", argv[i], how);
            if (i == optind) continue;
            char *missing = NULL;
            if (mm_omx_join(&m, &b, &missing) != 0) mm_die("%s", mm_strerror());
            if (missing) mm_warn("samples not in every input, dropped: %s", missing);
            free(missing);
            mm_omx_free(&b);
        }
    }
    if (m.ns == 0 || m.nf == 0) mm_die("%s: no samples or no features", argv[optind]);

    /* ---- training samples */
    unsigned char *train = NULL;
    size_t ntrain = m.ns;
    if (train_path) {
        size_t n;
        char **ids = read_lines(train_path, &n);
        train = mm_calloc(m.ns, 1);
        ntrain = 0;
        for (size_t i = 0; i < n; i++) {
            long s = mm_omx_find_sample(&m, ids[i]);
            if (s < 0) mm_warn("%s: training id '%s' is not a sample", train_path, ids[i]);
            else if (!train[s]) { train[s] = 1; ntrain++; }
            free(ids[i]);
        }
        free(ids);
        if (ntrain == 0) mm_die("%s: no training sample among the inputs", train_path);
    }
    /* ---- kept features */
    unsigned char *forced = mm_calloc(m.nf, 1);
    if (keep_path) {
        size_t n, found = 0;
        char **ids = read_lines(keep_path, &n);
        for (size_t i = 0; i < n; i++) {
            long f = mm_omx_find_feature(&m, ids[i]);
            if (f >= 0) { forced[f] = 1; found++; }
            free(ids[i]);
        }
        free(ids);
        mm_note(2, "%s: %zu of %zu listed features present, always kept", keep_path, found, n);
    }
    /* ---- labels */
    mm_clin_data cd = {0};
    int *y = NULL, nclass = 0;
    char **classes = NULL;
    double *stime = NULL;
    int *sevent = NULL;
    unsigned char *labelled = NULL;
    if (labels_path) {
        if (mm_clin_load(labels_path, &co, &cd) != 0) mm_die("%s", mm_strerror());
        y = mm_malloc(m.ns * sizeof(int));
        stime = mm_malloc(m.ns * sizeof(double));
        sevent = mm_malloc(m.ns * sizeof(int));
        labelled = mm_calloc(m.ns, 1);
        classes = mm_malloc((cd.n + 1) * sizeof(char *));
        size_t nomatch = 0;
        char *nomatch_ids = NULL;
        size_t nml = 0;
        for (size_t i = 0; i < m.ns; i++) {
            long r = mm_clin_find(&cd, m.sample[i]);
            y[i] = -1;
            stime[i] = NAN;
            sevent[i] = -1;
            if (r < 0) {
                nomatch++;
                size_t l = strlen(m.sample[i]);
                nomatch_ids = mm_realloc(nomatch_ids, nml + l + 2);
                memcpy(nomatch_ids + nml, m.sample[i], l);
                nml += l;
                nomatch_ids[nml++] = ',';
                nomatch_ids[nml] = 0;
                continue;
            }
            stime[i] = cd.time[r];
            sevent[i] = cd.event[r];
            if (cd.label[r]) {
                int k = 0;
                while (k < nclass && strcmp(classes[k], cd.label[r]) != 0) k++;
                if (k == nclass) classes[nclass++] = cd.label[r];
                y[i] = k;
            }
            labelled[i] = 1;
        }
        if (nomatch) {
            nomatch_ids[nml - 1] = 0;
            mm_warn("%zu samples have no row in %s: %s", nomatch, labels_path, nomatch_ids);
        }
        free(nomatch_ids);
        /* classes in sorted order, as scikit-learn's classes_ */
        for (int a = 0; a < nclass; a++)
            for (int b = a + 1; b < nclass; b++)
                if (strcmp(classes[b], classes[a]) < 0) {
                    char *t = classes[a]; classes[a] = classes[b]; classes[b] = t;
                    for (size_t i = 0; i < m.ns; i++)
                        if (y[i] == a) y[i] = b; else if (y[i] == b) y[i] = a;
                }
        if (cd.note[0]) mm_note(3, "%s: %s", labels_path, cd.note);
    }

    /* ---- the steps */
    mm_rec *h = mm_rec_new();
    mm_val *trail_tmp = NULL;
    mm_rec *tr = mm_rec_new();
    trail_tmp = mm_rec_put(tr, "trail");
    mm_val_set_array(trail_tmp);
    char transform[256] = "";
    for (int si = 0; si < nsteps; si++) {
        step *s = &steps[si];
        size_t in = m.nf;
        unsigned char *keep = mm_malloc(m.nf);
        memset(keep, 1, m.nf);
        char extra[128] = "";
        const char *extra_key = NULL;
        switch (s->kind) {
        case S_LOG2:
            if (mm_omx_log2(&m, s->x) != 0) mm_die("%s", mm_strerror());
            snprintf(transform + strlen(transform), sizeof transform - strlen(transform),
                     "%slog2(x+%g)", transform[0] ? ", " : "", s->x);
            break;
        case S_ZSCORE:
            mm_omx_zscore(&m, train);
            snprintf(transform + strlen(transform), sizeof transform - strlen(transform),
                     "%szscore(%s)", transform[0] ? ", " : "", train ? "training samples" : "all samples");
            break;
        case S_IMPUTE: {
            size_t dropped = 0;
            if (mm_omx_impute(&m, (int)s->k, knn_k, train, &dropped) != 0)
                mm_die("%s", mm_strerror());
            extra_key = "method";
            snprintf(extra, sizeof extra, "%s", s->k == MM_IMPUTE_KNN ? "knn" :
                     s->k == MM_IMPUTE_MEAN ? "mean" : "zero");
            if (s->k == MM_IMPUTE_KNN) {
                snprintf(extra + strlen(extra), sizeof extra - strlen(extra), " k=%d", knn_k);
            }
            if (dropped) mm_warn("--impute: %zu features missing in every training sample dropped", dropped);
            in += 0;
            break;
        }
        case S_CONST: mm_omx_filter_constant(&m, train, keep); break;
        case S_MINVAR: mm_omx_filter_min_var(&m, train, s->x, keep); break;
        case S_TOPVAR: mm_omx_filter_top_var(&m, train, (size_t)s->k, keep); break;
        case S_MAXMISS: mm_omx_filter_max_missing(&m, train, s->x, keep); break;
        case S_RFE:
        case S_RFECV: {
            /* rows: training samples with a label */
            size_t n = 0;
            for (size_t i = 0; i < m.ns; i++)
                if ((!train || train[i]) && y[i] >= 0) n++;
            if (n < 2 || nclass < 2)
                mm_die("--%s: needs labelled training samples of 2 or more classes (%zu samples, %d classes; --label-col?)",
                       s->kind == S_RFE ? "rfe" : "rfecv", n, nclass);
            double *x = mm_malloc(n * m.nf * sizeof(double));
            int *yy = mm_malloc(n * sizeof(int));
            size_t r = 0;
            for (size_t i = 0; i < m.ns; i++) {
                if (!((!train || train[i]) && y[i] >= 0)) continue;
                for (size_t j = 0; j < m.nf; j++) {
                    double v = m.x[i * m.nf + j];
                    if (isnan(v)) mm_die("--%s: missing values; impute first (--impute knn|mean|zero)",
                                         s->kind == S_RFE ? "rfe" : "rfecv");
                    x[r * m.nf + j] = v;
                }
                yy[r++] = y[i];
            }
            size_t *rank = mm_malloc(m.nf * sizeof(size_t));
            if (s->kind == S_RFE) {
                ro.n_select = (size_t)s->k < m.nf ? (size_t)s->k : m.nf;
                if (mm_rfe(x, n, m.nf, yy, nclass, &ro, &lo, rank) != 0) mm_die("%s", mm_strerror());
            } else {
                size_t best = mm_rfecv(x, n, m.nf, yy, nclass, &ro, &lo, rank, NULL);
                if (best == 0) mm_die("%s", mm_strerror());
                s->k = (long long)best;
            }
            for (size_t j = 0; j < m.nf; j++) keep[j] = rank[j] == 1;
            extra_key = "estimator";
            snprintf(extra, sizeof extra, "%s C=%g step=%g%s", lo.estimator == MM_EST_SVM ?
                     "LinearSVC" : "LogisticRegression", lo.C, ro.step,
                     s->kind == S_RFECV ? " (cv)" : "");
            free(rank);
            free(x);
            free(yy);
            break;
        }
        case S_COX: {
            double *p = mm_malloc(m.nf * sizeof(double));
            double *tt = mm_malloc(m.ns * sizeof(double)), *xx = mm_malloc(m.ns * sizeof(double));
            int *ee = mm_malloc(m.ns * sizeof(int));
            size_t n = 0;
            for (size_t i = 0; i < m.ns; i++)
                if ((!train || train[i]) && !isnan(stime[i]) && sevent[i] >= 0) {
                    tt[n] = stime[i];
                    ee[n] = sevent[i];
                    n++;
                }
            if (n < 2) mm_die("--cox-top: no training samples with a time and an event (--time-col, --event-col?)");
            for (size_t j = 0; j < m.nf; j++) {
                size_t k = 0;
                for (size_t i = 0; i < m.ns; i++)
                    if ((!train || train[i]) && !isnan(stime[i]) && sevent[i] >= 0)
                        xx[k++] = m.x[i * m.nf + j];
                mm_cox_fit f;
                if (mm_cox_univariate(tt, ee, xx, n, 0, &f) != 0) mm_die("%s", mm_strerror());
                p[j] = f.p;
            }
            size_t *ord = mm_malloc(m.nf * sizeof(size_t));
            for (size_t j = 0; j < m.nf; j++) ord[j] = j;
            g_p = p;
            qsort(ord, m.nf, sizeof(size_t), cmp_by_p);
            memset(keep, 0, m.nf);
            for (size_t j = 0; j < m.nf && j < (size_t)s->k; j++) keep[ord[j]] = 1;
            extra_key = "test";
            snprintf(extra, sizeof extra, "univariate coxph, Efron ties, Wald p");
            free(ord);
            free(p);
            free(tt);
            free(xx);
            free(ee);
            break;
        }
        }
        /* --keep: listed features survive every filter and selection */
        size_t nkept = 0;
        for (size_t j = 0; j < m.nf; j++) {
            if (forced[j]) keep[j] = 1;
            nkept += keep[j] != 0;
        }
        if (s->kind != S_LOG2 && s->kind != S_ZSCORE && s->kind != S_IMPUTE) {
            unsigned char *nf_forced = mm_malloc(nkept ? nkept : 1);
            size_t k = 0;
            for (size_t j = 0; j < m.nf; j++)
                if (keep[j]) nf_forced[k++] = forced[j];
            mm_omx_keep_features(&m, keep);
            free(forced);
            forced = nf_forced;
        } else if (s->kind == S_IMPUTE && m.nf != in) {
            /* KNN dropped all-missing features; --keep cannot save them */
            free(forced);
            forced = mm_calloc(m.nf, 1);
        }
        trail_add(tr, trail_tmp, s, in, m.nf, extra_key, extra);
        mm_note(3, "%s: %zu -> %zu features", step_name[s->kind], in, m.nf);
        free(keep);
        if (m.nf == 0) mm_die("%s left no feature", step_name[s->kind]);
    }

    /* ---- output */
    if (list) {
        for (size_t j = 0; j < m.nf; j++) printf("%s\n", m.feature[j]);
    } else {
        char idbuf[256];
        if (!id) {
            const char *b = strrchr(argv[optind], '/');
            b = b ? b + 1 : argv[optind];
            snprintf(idbuf, sizeof idbuf, "%s", strcmp(argv[optind], "-") ? b : "stdin");
            char *dot = strchr(idbuf, '.');
            if (dot && dot != idbuf) *dot = 0;
            id = idbuf;
        }
        mm_hdr_init(h, "omics", id);
        int pn;
        char **pargv = mm_argv_provenance(argc, argv, optstring, lopts, &pn);
        pargv[0] = "rna-select"; /* not the path it was run by */
        mm_hdr_set_tool(h, "rna-select", pn, pargv);
        free(pargv);
        if (labels_path) mm_hdr_add_parent(h, "clinical", labels_path);
        mm_val *meta = mm_hdr_meta(h);
        mm_val *fa = mm_map_put(h, meta, "features");
        mm_val_set_array(fa);
        for (size_t j = 0; j < m.nf; j++) mm_val_set_str(h, mm_array_push(h, fa), m.feature[j]);
        mm_val_set_str(h, mm_map_put(h, meta, "block"), block);
        mm_val_set_str(h, mm_map_put(h, meta, "transform"), transform[0] ? transform : "none");
        mm_val_copy(h, mm_map_put(h, meta, "selection"), trail_tmp);
        mm_val_set_int(mm_map_put(h, meta, "training_samples"), (int64_t)ntrain);
        if (classes && nclass) {
            mm_val *ca = mm_map_put(h, meta, "classes");
            mm_val_set_array(ca);
            for (int k = 0; k < nclass; k++) mm_val_set_str(h, mm_array_push(h, ca), classes[k]);
        }
        mm_stream *s = mm_stream_open(out, "w");
        if (!s) mm_die("%s", mm_strerror());
        int ret = mm_stream_begin(s, h);
        mm_rec *r = mm_rec_new();
        float *v = mm_malloc(m.nf * sizeof(float));
        int64_t shape[1] = {(int64_t)m.nf};
        for (size_t i = 0; i < m.ns && ret == 0; i++) {
            mm_rec_clear(r);
            for (size_t j = 0; j < m.nf; j++) v[j] = (float)m.x[i * m.nf + j];
            mm_val_set_str(r, mm_rec_put(r, "id"), m.sample[i]);
            mm_val_set_nd(r, mm_rec_put(r, "v"), MM_F32, 1, shape, v, 0);
            ret = mm_stream_write(s, r);
        }
        if (ret == 0) ret = mm_stream_end(s);
        if (ret != 0) {
            fprintf(stderr, "rna-select: %s\n", mm_stream_error(s));
            mm_stream_discard(s);
            return MM_EXIT_FAIL;
        }
        if (mm_stream_close(s) != 0) mm_die("%s", mm_strerror());
        mm_rec_free(r);
        free(v);
    }
    mm_rec_free(h);
    mm_rec_free(tr);
    mm_omx_free(&m);
    if (labels_path) mm_clin_data_free(&cd);
    free(classes);
    free(y);
    free(stime);
    free(sevent);
    free(labelled);
    free(train);
    free(forced);
    return mm_tool_exit(0);
}
