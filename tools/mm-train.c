/* mm-train: supervised training, cross-validation, evaluation and
 * prediction of the MIL and omics baselines (ABMIL, TransMIL, SNN,
 * ABMIL+SNN, linear probe; mm/mil.h) on feature, omics and clinical
 * streams joined by patient. The command line; the data join is
 * mm-train-data.c, the trainer mm-train-fit.c.
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "mm/metrics.h"
#include "mm/stream.h"
#include "mm-train.h"
#include "toolutil.h"

#ifndef MM_PKGDATADIR
#define MM_PKGDATADIR "/usr/local/share/mmpath"
#endif

static void usage(FILE *fp, const char *sub)
{
    if (!sub) {
        fprintf(fp,
"Usage: mm-train COMMAND [options]\n"
"\n"
"Train and evaluate MIL and omics models on feature, omics and clinical\n"
"streams joined by patient.\n"
"\n"
"Commands:\n"
"  train      train a model (from scratch)\n"
"  finetune   train starting from a checkpoint's weights (fresh optimizer)\n"
"  cv         k-fold cross-validation; one summary line on stdout\n"
"  eval       metrics of a checkpoint on labelled patients\n"
"  predict    a predictions stream from a checkpoint\n"
"  pretrain   self-supervised pre-training (a later release)\n"
"\n"
"'mm-train COMMAND --help' lists a command's options.\n"
"Exit status: 0 ok, 1 bad input or failure, 2 bad usage.\n");
        return;
    }
    fprintf(fp, "Usage: mm-train %s [options]\n\n", sub);
    fprintf(fp,
"Inputs (joined by patient, STREAM.md \"Ids and joins\"):\n"
"      --slides PATH        feature streams: a file, a directory of *.mpk or a\n"
"                           list file of paths; repeatable\n"
"      --omics FILE         omics stream (rna-select)\n"
"      --clinical FILE      clinical table or stream: --id-col, --label-col,\n"
"                           --time-col, --event-col, --event-value,\n"
"                           --censored-value, --time-unit (mmpath(7))\n"
"      --patient-map FILE   two columns: id, patient\n"
"      --keep-normal        keep TCGA normal samples (types 10-19)\n"
"      --require all|any    patients missing a modality: dropped (all) or kept\n"
"                           with zeros for it (any) [all]\n");
    if (!strcmp(sub, "train") || !strcmp(sub, "finetune") || !strcmp(sub, "cv"))
        fprintf(fp,
"Model and training (key = value; see mm-train(1) for every key):\n"
"      --model NAME         abmil, transmil, snn, abmil+snn, linear%s [abmil]\n"
"      --config FILE        key = value file [share/mmpath/MODEL.conf]\n"
"      --set KEY=VALUE      any key, after the config file; repeatable\n"
"      --task T             subtype or survival [subtype]\n"
"      --loss L             survival: nll (4 bins) or cox [nll]\n"
"      --epochs N, --lr X, --weight-decay X, --optimizer adam|adamw|radam,\n"
"      --batch N, --accum N, --schedule cosine|constant, --warmup-epochs N,\n"
"      --label-smoothing X, --bins-from train|all, --monitor M, --patience N,\n"
"      --select last|best, --standardize none|train, --clip X, --seed N\n"
"                           the keys of the same names\n",
                !strcmp(sub, "cv") ? " (a comma list: one run each)" : "");
    if (!strcmp(sub, "finetune"))
        fprintf(fp, "      --init CKPT          start from this checkpoint's weights\n");
    if (!strcmp(sub, "train") || !strcmp(sub, "finetune"))
        fprintf(fp,
"Run:\n"
"  -o, --output DIR         last.safetensors, best.safetensors, log.tsv\n"
"      --resume             continue DIR's run exactly where it stopped\n");
    if (!strcmp(sub, "cv"))
        fprintf(fp,
"Run:\n"
"  -o, --output DIR         DIR/MODEL/fold_K/..., DIR/MODEL/splits_K.csv,\n"
"                           DIR/MODEL/predictions.mpk\n"
"      --resume             continue each fold's run\n"
"      --splits PATH        split files (CLAM splits_K.csv or MIRROR train/val),\n"
"                           or a directory of them; repeatable\n");
    if (!strcmp(sub, "eval") || !strcmp(sub, "predict"))
        fprintf(fp,
"Model:\n"
"      --checkpoint CKPT    the model (mm-train's safetensors)\n"
"%s"
"      --role R             patients of the split: train, val, test or all\n"
"                           [test, else val; all without a split]\n",
                !strcmp(sub, "predict") ? "  -o, --output FILE        the predictions stream [stdout]\n" : "");
    fprintf(fp,
"Patients%s:\n"
"      --split FILE         a split file (train, val[, test] columns)\n"
"      --folds K, --fold F  generated folds: stratified by label or event, by\n"
"                           patient, with --seed S [1]\n",
            !strcmp(sub, "cv") ? " (generated folds when no --splits)" : "");
    fprintf(fp,
"  -@, --threads N          threads [1]\n"
"  -v, -q, -h, -V           more/less on stderr, help, version\n"
"Exit status: 0 ok, 1 bad input or failure, 2 bad usage.\n");
}

typedef struct {
    char *key, *value;
} kv;

typedef struct {
    mt_inputs in;
    char *models;
    const char *config, *out, *init, *ckpt, *split, *role;
    kv *sets;
    int nsets;
    char **splits;
    int nsplits;
    int folds, fold, resume, stop_after;
    long long fold_seed;
} args;

static void add_set(args *a, const char *k, const char *v)
{
    a->sets = mm_realloc(a->sets, (size_t)(a->nsets + 1) * sizeof(kv));
    a->sets[a->nsets].key = mm_strdup(k);
    a->sets[a->nsets++].value = mm_strdup(v);
}

/* plain options that are keys: --weight-decay X is --set weight_decay=X */
static const char *const plain[] = {"task", "loss", "epochs", "lr", "weight-decay", "optimizer",
                                    "batch", "accum", "schedule", "warmup-epochs",
                                    "label-smoothing", "bins-from", "monitor", "patience",
                                    "select", "standardize", "clip", "seed", NULL};

static int model_reads_patches(int kind, const mt_cohort *c)
{
    if (kind == MM_MODEL_LINEAR) return c->dim > 0;
    return kind != MM_MODEL_SNN;
}

static int model_reads_omics(int kind, const mt_cohort *c)
{
    if (kind == MM_MODEL_LINEAR) return c->omic_dim > 0;
    return kind == MM_MODEL_SNN || kind == MM_MODEL_ABMIL_SNN;
}

/* the config of model KIND: defaults, its config file, then the command line */
static void build_config(const args *a, int kind, const mt_cohort *c, mt_opts *o,
                         mm_model_cfg *mc)
{
    mt_opts_defaults(o);
    mm_model_cfg_defaults(mc, (mm_model_kind)kind);
    char path[4096];
    if (a->config) mt_read_conf(a->config, o, mc);
    else {
        const char *dir = getenv("MMPATH_DATADIR");
        char name[64];
        snprintf(name, sizeof name, "%s", mm_model_kind_name((mm_model_kind)kind));
        for (char *p = name; *p; p++) if (*p == '+') *p = '_';
        snprintf(path, sizeof path, "%s/%s.conf", dir && *dir ? dir : MM_PKGDATADIR, name);
        struct stat st;
        if (stat(path, &st) == 0) {
            mt_read_conf(path, o, mc);
            mm_note(3, "config %s", path);
        } else mm_note(2, "no %s: built-in defaults (set MMPATH_DATADIR or --config)", path);
    }
    char err[512];
    for (int i = 0; i < a->nsets; i++)
        if (mt_set(o, mc, a->sets[i].key, a->sets[i].value, err, sizeof err) != 0)
            mm_die_usage("--set %s=%s: %s", a->sets[i].key, a->sets[i].value, err);
    if ((int)mc->kind != kind) mm_die_usage("--set kind=...: use --model");
    if (o->task == MT_SUBTYPE) {
        if (c->nclass < 2)
            mm_die("subtype: %d class%s among the patients: nothing to learn (--label-col? --task survival?)",
                   c->nclass, c->nclass == 1 ? "" : "es");
        mc->head = MM_HEAD_CLASS;
        mc->n_classes = c->nclass;
    } else if (o->loss == MT_COX) {
        mc->head = MM_HEAD_COX;
        mc->n_classes = 1;
    } else {
        mc->head = MM_HEAD_SURV;
        mc->n_classes = o->bins;
    }
    mc->in_dim = model_reads_patches(kind, c) ? c->dim : 0;
    mc->omic_dim = model_reads_omics(kind, c) ? c->omic_dim : 0;
}

// ---- folds

/* ROLE[np] for fold F of the run: a split file, or generated folds */
static void fold_roles(const args *a, const mt_cohort *c, int f,
                       const int *gen, int *role)
{
    if (a->nsplits) {
        mt_split_read(c, a->splits[f], role);
        return;
    }
    if (a->split) {
        mt_split_read(c, a->split, role);
        return;
    }
    if (!gen) {
        for (int i = 0; i < c->np; i++) role[i] = MT_TRAIN;
        return;
    }
    for (int i = 0; i < c->np; i++) role[i] = gen[i] == f ? MT_VAL : MT_TRAIN;
}

static int *gen_folds(const mt_cohort *c, int task, int k, long long seed)
{
    int *st = mm_malloc((size_t)c->np * sizeof(int)), *fold = mm_malloc((size_t)c->np * sizeof(int));
    for (int i = 0; i < c->np; i++) st[i] = task == MT_SUBTYPE ? c->p[i].y : c->p[i].event;
    if (mm_kfold_assign(st, c->np, k, (uint64_t)seed, fold) != 0)
        mm_die("--folds %d: %s (%d patients)", k, mm_strerror(), c->np);
    free(st);
    return fold;
}

static int cmp_str(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

/* --splits DIR: its *.csv in name order */
static void expand_splits(args *a)
{
    char **out = NULL;
    int n = 0;
    for (int i = 0; i < a->nsplits; i++) {
        struct stat st;
        if (stat(a->splits[i], &st) != 0) mm_die_errno("%s", a->splits[i]);
        if (!S_ISDIR(st.st_mode)) {
            out = mm_realloc(out, (size_t)(n + 1) * sizeof(char *));
            out[n++] = mm_strdup(a->splits[i]);
            continue;
        }
        char **names = NULL;
        int nn = 0;
        struct dirent **ents;
        int ne = scandir(a->splits[i], &ents, NULL, alphasort);
        if (ne < 0) mm_die_errno("%s", a->splits[i]);
        for (int e = 0; e < ne; e++) {
            const char *nm = ents[e]->d_name;
            size_t l = strlen(nm);
            if (nm[0] != '.' && l > 4 && !strcmp(nm + l - 4, ".csv")) {
                names = mm_realloc(names, (size_t)(nn + 1) * sizeof(char *));
                size_t pl = strlen(a->splits[i]) + l + 2;
                names[nn] = mm_malloc(pl);
                snprintf(names[nn++], pl, "%s/%s", a->splits[i], nm);
            }
            free(ents[e]);
        }
        free(ents);
        if (!nn) mm_die("%s: no split files (*.csv)", a->splits[i]);
        qsort(names, (size_t)nn, sizeof(char *), cmp_str);
        out = mm_realloc(out, (size_t)(n + nn) * sizeof(char *));
        for (int j = 0; j < nn; j++) out[n++] = names[j];
        free(names);
    }
    for (int i = 0; i < a->nsplits; i++) free(a->splits[i]);
    free(a->splits);
    a->splits = out;
    a->nsplits = n;
}

// ---- predictions

typedef struct {
    int patient, fold;
    double *out;
} pred;

static void write_predictions(const char *path, const mt_cohort *c, const mt_ckpt *k,
                              const pred *pr, int n, int argc, char **argv,
                              const char *optstring, const struct option *lopts,
                              char **digests, int ndig)
{
    mm_stream *s = mm_stream_open(path, "w");
    if (!s) mm_die("%s", mm_strerror());
    mm_rec *h = mm_rec_new(), *r = mm_rec_new();
    const char *b = strrchr(path, '/');
    char id[256];
    snprintf(id, sizeof id, "%s", strcmp(path, "-") ? (b ? b + 1 : path) : "mm-train");
    char *dot = strchr(id, '.');
    if (dot && dot != id) *dot = 0;
    mm_hdr_init(h, "predictions", id);
    int pn;
    char **pargv = mm_argv_provenance(argc, argv, optstring, lopts, &pn);
    pargv[0] = "mm-train";
    mm_hdr_set_tool(h, "mm-train", pn, pargv);
    free(pargv);
    if (c->slides_src[0]) mm_hdr_add_parent(h, "features", c->slides_src);
    if (c->omics_src[0]) mm_hdr_add_parent(h, "omics", c->omics_src);
    if (c->clin_src[0]) mm_hdr_add_parent(h, "clinical", c->clin_src);
    mm_val *m = mm_hdr_meta(h);
    mm_val_set_str(h, mm_map_put(h, m, "model"), mm_model_kind_name(k->mc.kind));
    mm_val_set_str(h, mm_map_put(h, m, "method"), "supervised");
    mm_val *dg = mm_map_put(h, m, "checkpoint_digest");
    if (ndig == 1) mm_val_set_str(h, dg, digests[0]);
    else {
        mm_val_set_array(dg);
        for (int i = 0; i < ndig; i++) mm_val_set_str(h, mm_array_push(h, dg), digests[i]);
    }
    mm_val_set_str(h, mm_map_put(h, m, "task"), mt_task_name(&k->o));
    mm_val_set_str(h, mm_map_put(h, m, "head"), mm_head_kind_name(k->mc.head));
    if (k->o.task == MT_SUBTYPE) {
        mm_val *ca = mm_map_put(h, m, "classes");
        mm_val_set_array(ca);
        for (int i = 0; i < k->nclass; i++) mm_val_set_str(h, mm_array_push(h, ca), k->classes[i]);
    }
    if (c->time_unit[0]) mm_val_set_str(h, mm_map_put(h, m, "time_unit"), c->time_unit);
    mm_val_set_str(h, mm_map_put(h, m, "config"), k->config);
    if (mm_stream_begin(s, h) != 0) mm_die("%s", mm_stream_error(s));
    int no = mm_model_n_out(k->m);
    float *v = mm_malloc((size_t)(no + 1) * sizeof(float));
    for (int i = 0; i < n; i++) {
        const mt_patient *p = &c->p[pr[i].patient];
        const double *o = pr[i].out;
        mm_rec_clear(r);
        mm_val_set_str(r, mm_rec_put(r, "id"), p->id);
        mm_val_set_int(mm_rec_put(r, "fold"), pr[i].fold);
        if (p->label) mm_val_set_str(r, mm_rec_put(r, "label"), p->label);
        int64_t shape[1] = {no};
        if (k->o.task == MT_SUBTYPE) {
            double mx = o[0], sum = 0;
            int best = 0;
            for (int j = 1; j < no; j++) if (o[j] > mx) mx = o[j];
            for (int j = 0; j < no; j++) sum += exp(o[j] - mx);
            for (int j = 0; j < no; j++) {
                v[j] = (float)(exp(o[j] - mx) / sum);
                if (v[j] > v[best]) best = j;
            }
            mm_val_set_nd(r, mm_rec_put(r, "prob"), MM_F32, 1, shape, v, 1);
            mm_val_set_str(r, mm_rec_put(r, "pred"), k->classes[best]);
            if (no == 2) mm_val_set_float(mm_rec_put(r, "risk"), v[1]);
        } else if (k->mc.head == MM_HEAD_COX) {
            mm_val_set_float(mm_rec_put(r, "risk"), o[0]);
        } else {
            double surv = 1;
            for (int j = 0; j < no; j++) {
                surv *= 1 - 1 / (1 + exp(-o[j]));
                v[j] = (float)surv;
            }
            mm_val_set_nd(r, mm_rec_put(r, "surv"), MM_F32, 1, shape, v, 1);
            mm_val_set_float(mm_rec_put(r, "risk"), mm_surv_risk(o, no));
        }
        if (!isnan(p->time)) mm_val_set_float(mm_rec_put(r, "time"), p->time);
        if (p->event >= 0) mm_val_set_int(mm_rec_put(r, "event"), p->event);
        if (mm_stream_write(s, r) != 0) mm_die("%s", mm_stream_error(s));
    }
    if (mm_stream_end(s) != 0) mm_die("%s", mm_stream_error(s));
    if (mm_stream_close(s) != 0) mm_die("%s", mm_strerror());
    free(v);
    mm_rec_free(h);
    mm_rec_free(r);
}

/* patients of ROLE usable for metrics */
static int usable(const mt_ckpt *k, const mt_patient *p)
{
    return k->o.task == MT_SUBTYPE ? p->y >= 0 : !isnan(p->time) && p->event >= 0;
}

static void print_metrics(const char *prefix, const mt_ckpt *k, const mt_metrics *m)
{
    printf("%smodel=%s task=%s n=%d loss=%.17g", prefix, mm_model_kind_name(k->mc.kind),
           mt_task_name(&k->o), m->n, m->loss);
    if (k->o.task == MT_SUBTYPE)
        printf(" accuracy=%.17g balanced_accuracy=%.17g f1=%.17g auroc=%.17g\n", m->accuracy,
               m->balanced_accuracy, m->f1, m->auroc);
    else printf(" cindex=%.17g\n", m->cindex);
}

static void mean_sd(const double *x, int n, double *mean, double *sd)
{
    double s = 0, ss = 0;
    int k = 0;
    for (int i = 0; i < n; i++) if (!isnan(x[i])) { s += x[i]; k++; }
    *mean = k ? s / k : NAN;
    for (int i = 0; i < n; i++) if (!isnan(x[i])) ss += (x[i] - *mean) * (x[i] - *mean);
    *sd = k > 1 ? sqrt(ss / (k - 1)) : NAN;
}

int main(int argc, char **argv)
{
    mm_tool_init("mm-train");
    mm_blas_tune(argv);
    if (argc < 2) {
        usage(stderr, NULL);
        return MM_EXIT_USAGE;
    }
    const char *sub = argv[1];
    if (!strcmp(sub, "-h") || !strcmp(sub, "--help")) {
        usage(stdout, NULL);
        return mm_tool_exit(0);
    }
    if (!strcmp(sub, "-V") || !strcmp(sub, "--version")) {
        mm_print_version("mm-train");
        return mm_tool_exit(0);
    }
    if (!strcmp(sub, "pretrain")) {
        if (argc > 2 && (!strcmp(argv[2], "-h") || !strcmp(argv[2], "--help"))) {
            printf("Usage: mm-train pretrain\n\nSelf-supervised pre-training (GiMP, POMP, MIRROR, MGI) "
                   "comes in a later release.\n");
            return mm_tool_exit(0);
        }
        mm_die_usage("pretrain: the self-supervised methods (GiMP, POMP, MIRROR, MGI) come in a later release");
    }
    int is_train = !strcmp(sub, "train"), is_ft = !strcmp(sub, "finetune"), is_cv = !strcmp(sub, "cv");
    int is_eval = !strcmp(sub, "eval"), is_pred = !strcmp(sub, "predict");
    if (!is_train && !is_ft && !is_cv && !is_eval && !is_pred) {
        fprintf(stderr, "mm-train: unknown command '%s'\n", sub);
        usage(stderr, NULL);
        return MM_EXIT_USAGE;
    }
    char prog[64];
    snprintf(prog, sizeof prog, "mm-train %s", sub);
    mm_tool_init(prog);

    enum { O_SLIDES = 256, O_OMICS, O_CLIN, O_PMAP, O_KEEPN, O_REQ, O_IDCOL, O_LABEL, O_TIME,
           O_EVENT, O_EVV, O_CENS, O_UNIT, O_MODEL, O_CONFIG, O_SET, O_INIT, O_RESUME, O_STOP,
           O_SPLITS, O_SPLIT, O_FOLDS, O_FOLD, O_CKPT, O_ROLE, O_PLAIN };
    struct option lopts[64] = {
        {"output", required_argument, NULL, 'o'},
        {"slides", required_argument, NULL, O_SLIDES}, {"omics", required_argument, NULL, O_OMICS},
        {"clinical", required_argument, NULL, O_CLIN},
        {"patient-map", required_argument, NULL, O_PMAP},
        {"keep-normal", no_argument, NULL, O_KEEPN}, {"require", required_argument, NULL, O_REQ},
        {"id-col", required_argument, NULL, O_IDCOL}, {"label-col", required_argument, NULL, O_LABEL},
        {"time-col", required_argument, NULL, O_TIME}, {"event-col", required_argument, NULL, O_EVENT},
        {"event-value", required_argument, NULL, O_EVV},
        {"censored-value", required_argument, NULL, O_CENS},
        {"time-unit", required_argument, NULL, O_UNIT},
        {"model", required_argument, NULL, O_MODEL}, {"config", required_argument, NULL, O_CONFIG},
        {"set", required_argument, NULL, O_SET}, {"init", required_argument, NULL, O_INIT},
        {"resume", no_argument, NULL, O_RESUME}, {"stop-after", required_argument, NULL, O_STOP},
        {"splits", required_argument, NULL, O_SPLITS}, {"split", required_argument, NULL, O_SPLIT},
        {"folds", required_argument, NULL, O_FOLDS}, {"fold", required_argument, NULL, O_FOLD},
        {"checkpoint", required_argument, NULL, O_CKPT}, {"role", required_argument, NULL, O_ROLE},
        MM_COMMON_LONGOPTS};
    int nl = 0;
    while (lopts[nl].name) nl++;
    for (int i = 0; plain[i]; i++) lopts[nl++] = (struct option){plain[i], required_argument, NULL, O_PLAIN + i};
    lopts[nl] = (struct option){NULL, 0, NULL, 0};
    const char *optstring = "o:@:vqhV";
    args a;
    memset(&a, 0, sizeof a);
    a.in.require_all = 1;
    a.fold = -1;
    a.fold_seed = 1;
    int c;
    argv[1] = prog;
    int sargc = argc - 1;
    char **sargv = argv + 1;
    while ((c = getopt_long(sargc, sargv, optstring, lopts, NULL)) != -1) {
        switch (c) {
        case 'o': a.out = optarg; break;
        case O_SLIDES:
            a.in.slides = mm_realloc(a.in.slides, (size_t)(a.in.nslides + 1) * sizeof(char *));
            a.in.slides[a.in.nslides++] = optarg;
            break;
        case O_OMICS: a.in.omics = optarg; break;
        case O_CLIN: a.in.clinical = optarg; break;
        case O_PMAP: a.in.patient_map = optarg; break;
        case O_KEEPN: a.in.keep_normal = 1; break;
        case O_REQ:
            if (!strcmp(optarg, "all")) a.in.require_all = 1;
            else if (!strcmp(optarg, "any")) a.in.require_all = 0;
            else mm_die_usage("--require: expected all or any, got '%s'", optarg);
            break;
        case O_IDCOL: a.in.co.id_col = optarg; break;
        case O_LABEL: a.in.co.label_col = optarg; break;
        case O_TIME: a.in.co.time_col = optarg; break;
        case O_EVENT: a.in.co.event_col = optarg; break;
        case O_EVV: a.in.co.event_value = optarg; break;
        case O_CENS: a.in.co.censored_value = optarg; break;
        case O_UNIT: a.in.co.time_unit = optarg; break;
        case O_MODEL: free(a.models); a.models = mm_strdup(optarg); break;
        case O_CONFIG: a.config = optarg; break;
        case O_SET: {
            char *eq = strchr(optarg, '=');
            if (!eq || eq == optarg) mm_die_usage("--set: expected KEY=VALUE, got '%s'", optarg);
            *eq = 0;
            add_set(&a, optarg, eq + 1);
            *eq = '=';
            break;
        }
        case O_INIT: a.init = optarg; break;
        case O_RESUME: a.resume = 1; break;
        case O_STOP: a.stop_after = (int)mm_opt_int("--stop-after", optarg, 1, 1000000); break;
        case O_SPLITS:
            a.splits = mm_realloc(a.splits, (size_t)(a.nsplits + 1) * sizeof(char *));
            a.splits[a.nsplits++] = mm_strdup(optarg);
            break;
        case O_SPLIT: a.split = optarg; break;
        case O_FOLDS: a.folds = (int)mm_opt_int("--folds", optarg, 2, 1000); break;
        case O_FOLD: a.fold = (int)mm_opt_int("--fold", optarg, 0, 999); break;
        case O_CKPT: a.ckpt = optarg; break;
        case O_ROLE:
            if (strcmp(optarg, "train") && strcmp(optarg, "val") && strcmp(optarg, "test") && strcmp(optarg, "all"))
                mm_die_usage("--role: expected train, val, test or all, got '%s'", optarg);
            a.role = optarg;
            break;
        case 'h': usage(stdout, sub); return mm_tool_exit(0);
        case 'V': mm_print_version("mm-train"); return mm_tool_exit(0);
        default:
            if (c >= O_PLAIN && c < O_PLAIN + 64) {
                char key[64];
                snprintf(key, sizeof key, "%s", plain[c - O_PLAIN]);
                for (char *p = key; *p; p++) if (*p == '-') *p = '_';
                add_set(&a, key, optarg);
                if (!strcmp(key, "seed")) {
                    a.fold_seed = mm_opt_int("--seed", optarg, 0, INT64_MAX);
                }
                break;
            }
            if (mm_common_opt(c, optarg)) break;
            usage(stderr, sub);
            return MM_EXIT_USAGE;
        }
    }
    if (optind < sargc) mm_die_usage("unexpected argument '%s'", sargv[optind]);
    if (a.in.co.event_value && a.in.co.censored_value)
        mm_die_usage("--event-value and --censored-value exclude each other");
    if (!a.in.nslides && !a.in.omics) mm_die_usage("no inputs: --slides and/or --omics");
    if ((is_eval || is_pred) && !a.ckpt) mm_die_usage("--checkpoint CKPT is required");
    if (is_ft && !a.init) mm_die_usage("--init CKPT is required");
    if ((is_train || is_ft || is_cv) && !a.out) mm_die_usage("-o DIR is required");
    if ((is_train || is_ft || is_cv) && !a.in.clinical) mm_die_usage("--clinical FILE is required");
    if (is_eval && !a.in.clinical) mm_die_usage("--clinical FILE is required");
    if (a.fold >= 0 && !a.folds) mm_die_usage("--fold needs --folds K");
    if (a.folds && a.fold >= a.folds) mm_die_usage("--fold %d: only %d folds", a.fold, a.folds);
    if (is_cv && !a.folds && !a.nsplits) mm_die_usage("cv needs --folds K or --splits");
    if (!is_cv && a.nsplits) mm_die_usage("--splits is for cv (use --split FILE)");
    if (a.split && a.folds) mm_die_usage("--split and --folds exclude each other");
    if (is_pred) mm_refuse_tty(a.out ? a.out : "-");
#ifdef _OPENMP
    /* -@ decides, not the machine's core count: results then depend on
     * the options alone (mm/tensor.h "Determinism") */
    omp_set_num_threads(mm_threads);
#endif
    mt_progress_on = 1;

    /* which inputs the model needs */
    mt_ckpt k;
    memset(&k, 0, sizeof k);
    if (is_eval || is_pred) {
        mt_ckpt_load(a.ckpt, &k);
        a.in.need_slides = k.mc.in_dim > 0;
        a.in.need_omics = k.mc.omic_dim > 0;
        a.in.need_clin = is_eval;
    } else {
        a.in.need_slides = a.in.nslides > 0;
        a.in.need_omics = a.in.omics != NULL;
        a.in.need_clin = 1;
    }
    if (a.in.need_slides && !a.in.nslides) mm_die_usage("the model reads patch features: --slides");
    if (a.in.need_omics && !a.in.omics) mm_die_usage("the model reads omics: --omics");
    if (!a.models) a.models = mm_strdup("abmil");

    mt_cohort co;
    mt_cohort_load(&a.in, &co);
    mm_note(3, "%d patients%s%s", co.np, co.dim ? ", patch features" : "", co.omic_dim ? ", omics" : "");
    int *role = mm_malloc((size_t)co.np * sizeof(int));
    int ret = 0;

    if (is_eval || is_pred) {
        mt_ckpt_check(&k, &co);
        int *gen = a.folds ? gen_folds(&co, k.o.task, a.folds, a.fold_seed) : NULL;
        int f = a.fold >= 0 ? a.fold : 0;
        fold_roles(&a, &co, f, gen, role);
        int want;
        const char *rname = a.role;
        if (!rname) {
            int has_test = 0, has_val = 0;
            for (int i = 0; i < co.np; i++) { has_test |= role[i] == MT_TEST; has_val |= role[i] == MT_VAL; }
            rname = !(a.split || gen) ? "all" : has_test ? "test" : has_val ? "val" : "all";
        }
        want = !strcmp(rname, "train") ? MT_TRAIN : !strcmp(rname, "val") ? MT_VAL :
               !strcmp(rname, "test") ? MT_TEST : -2;
        if (gen && a.fold < 0) mm_die_usage("--folds K needs --fold F here");
        int *idx = mm_malloc((size_t)co.np * sizeof(int)), n = 0;
        for (int i = 0; i < co.np; i++)
            if ((want == -2 || role[i] == want) && (is_pred || usable(&k, &co.p[i]))) idx[n++] = i;
        if (n == 0) mm_die("no patient to %s (role %s)", is_pred ? "predict" : "evaluate", rname);
        int no = mm_model_n_out(k.m);
        double *out = mm_malloc((size_t)n * (size_t)no * sizeof(double));
        mt_predict(&k, &co, idx, n, out);
        if (is_eval) {
            mt_metrics m;
            mt_metrics_of(&k, &co, idx, n, out, &m);
            print_metrics("", &k, &m);
        } else {
            pred *pr = mm_malloc((size_t)n * sizeof(pred));
            for (int i = 0; i < n; i++) pr[i] = (pred){idx[i], a.fold >= 0 ? a.fold : 0, out + (size_t)i * no};
            char *dg = k.digest;
            write_predictions(a.out ? a.out : "-", &co, &k, pr, n, sargc, sargv, optstring, lopts, &dg, 1);
            free(pr);
        }
        free(out);
        free(idx);
        free(gen);
        mt_ckpt_free(&k);
    } else if (is_train || is_ft) {
        int kind = mm_model_kind_from_name(a.models);
        if (kind < 0) mm_die_usage("--model: unknown model '%s'", a.models);
        mt_opts o;
        mm_model_cfg mc;
        build_config(&a, kind, &co, &o, &mc);
        int *gen = a.folds ? gen_folds(&co, o.task, a.folds, a.fold_seed) : NULL;
        if (gen && a.fold < 0) mm_die_usage("--folds K needs --fold F here");
        fold_roles(&a, &co, a.fold, gen, role);
        mt_fit_args fa = {a.out, is_ft ? a.init : NULL, a.resume, a.stop_after, -1};
        mt_fit(&co, &o, &mc, role, &fa);
        free(gen);
    } else {
        /* cv */
        if (a.nsplits) expand_splits(&a);
        int K = a.nsplits ? a.nsplits : a.folds;
        char *save = NULL;
        for (char *mn = strtok_r(a.models, ",", &save); mn; mn = strtok_r(NULL, ",", &save)) {
            int kind = mm_model_kind_from_name(mn);
            if (kind < 0) mm_die_usage("--model: unknown model '%s'", mn);
            mt_opts o;
            mm_model_cfg mc;
            build_config(&a, kind, &co, &o, &mc);
            int *gen = a.nsplits ? NULL : gen_folds(&co, o.task, K, a.fold_seed);
            char dir[2048], fdir[3072], p[4096];
            if (mkdir(a.out, 0777) != 0 && errno != EEXIST) mm_die_errno("%s", a.out);
            if (snprintf(dir, sizeof dir, "%s/%s", a.out, mn) >= (int)sizeof dir) mm_die("%s: path too long", a.out);
            for (char *q = dir + strlen(a.out); *q; q++) if (*q == '+') *q = '_';
            if (mkdir(dir, 0777) != 0 && errno != EEXIST) mm_die_errno("%s", dir);
            double *acc = mm_malloc((size_t)K * sizeof(double)), *bacc = mm_malloc((size_t)K * sizeof(double));
            double *f1 = mm_malloc((size_t)K * sizeof(double)), *auc = mm_malloc((size_t)K * sizeof(double));
            double *ci = mm_malloc((size_t)K * sizeof(double));
            pred *pr = NULL;
            int npred = 0;
            double **outs = mm_malloc((size_t)K * sizeof(double *));
            char **dig = mm_malloc((size_t)K * sizeof(char *));
            mt_ckpt last;
            for (int f = 0; f < K; f++) {
                fold_roles(&a, &co, f, gen, role);
                snprintf(fdir, sizeof fdir, "%s/fold_%d", dir, f);
                snprintf(p, sizeof p, "%s/splits_%d.csv", dir, f);
                mt_split_write(&co, role, p);
                mt_fit_args fa = {fdir, NULL, a.resume, a.stop_after, f};
                mt_fit(&co, &o, &mc, role, &fa);
                snprintf(p, sizeof p, "%s/%s.safetensors", fdir, o.select);
                struct stat sb;
                if (stat(p, &sb) != 0) snprintf(p, sizeof p, "%s/last.safetensors", fdir);
                mt_ckpt_load(p, &k);
                dig[f] = mm_strdup(k.digest);
                int has_test = 0;
                for (int i = 0; i < co.np; i++) has_test |= role[i] == MT_TEST;
                int held = has_test ? MT_TEST : MT_VAL;
                int *idx = mm_malloc((size_t)co.np * sizeof(int)), n = 0, nm = 0;
                int *midx = mm_malloc((size_t)co.np * sizeof(int));
                for (int i = 0; i < co.np; i++)
                    if (role[i] == held) idx[n++] = i;
                int no = mm_model_n_out(k.m);
                outs[f] = mm_malloc((size_t)(n + 1) * (size_t)no * sizeof(double));
                mt_predict(&k, &co, idx, n, outs[f]);
                double *mo = mm_malloc((size_t)(n + 1) * (size_t)no * sizeof(double));
                for (int i = 0; i < n; i++) {
                    if (usable(&k, &co.p[idx[i]])) {
                        memcpy(mo + (size_t)nm * no, outs[f] + (size_t)i * no, (size_t)no * sizeof(double));
                        midx[nm++] = idx[i];
                    }
                    pr = mm_realloc(pr, (size_t)(npred + 1) * sizeof(pred));
                    pr[npred++] = (pred){idx[i], f, outs[f] + (size_t)i * no};
                }
                mt_metrics m;
                mt_metrics_of(&k, &co, midx, nm, mo, &m);
                acc[f] = m.accuracy; bacc[f] = m.balanced_accuracy; f1[f] = m.f1; auc[f] = m.auroc;
                ci[f] = m.cindex;
                mm_note(2, "fold %d: %d held-out patients, %s %.6g", f, nm,
                        o.task == MT_SUBTYPE ? "accuracy" : "C-index",
                        o.task == MT_SUBTYPE ? m.accuracy : m.cindex);
                free(idx); free(midx); free(mo);
                if (f < K - 1) mt_ckpt_free(&k);
            }
            last = k;
            snprintf(p, sizeof p, "%s/predictions.mpk", dir);
            write_predictions(p, &co, &last, pr, npred, sargc, sargv, optstring, lopts, dig, K);
            double mu, sd;
            printf("model=%s task=%s folds=%d", mn, mt_task_name(&o), K);
            if (o.task == MT_SUBTYPE) {
                mean_sd(acc, K, &mu, &sd); printf(" accuracy_mean=%.17g accuracy_sd=%.17g", mu, sd);
                mean_sd(bacc, K, &mu, &sd); printf(" balanced_accuracy_mean=%.17g balanced_accuracy_sd=%.17g", mu, sd);
                mean_sd(f1, K, &mu, &sd); printf(" f1_mean=%.17g f1_sd=%.17g", mu, sd);
                mean_sd(auc, K, &mu, &sd); printf(" auroc_mean=%.17g auroc_sd=%.17g", mu, sd);
            } else {
                mean_sd(ci, K, &mu, &sd); printf(" cindex_mean=%.17g cindex_sd=%.17g", mu, sd);
            }
            printf("\n");
            fflush(stdout);
            mt_ckpt_free(&last);
            for (int f = 0; f < K; f++) { free(outs[f]); free(dig[f]); }
            free(outs); free(dig); free(pr);
            free(acc); free(bacc); free(f1); free(auc); free(ci); free(gen);
        }
    }
    free(role);
    mt_cohort_free(&co);
    for (int i = 0; i < a.nsets; i++) { free(a.sets[i].key); free(a.sets[i].value); }
    free(a.sets);
    for (int i = 0; i < a.nsplits; i++) free(a.splits[i]);
    free(a.splits);
    free(a.in.slides);
    free(a.models);
    return mm_tool_exit(ret);
}
