/* mm-train.h: what the parts of mm-train share (not a library header):
 * the cohort joined by patient (mm-train-data.c), the trainer's options and
 * the fit / evaluate / checkpoint code (mm-train-fit.c), and the command
 * line (mm-train.c). The models are lib/mil.c (mm/mil.h).
 * SPDX-License-Identifier: MIT */
#ifndef MM_TRAIN_TOOL_H
#define MM_TRAIN_TOOL_H

#include <stddef.h>
#include <stdint.h>

#include "mm/clinical.h"
#include "mm/mil.h"
#include "mm/table.h"

// ---- cohort (mm-train-data.c)

typedef struct {
    char *id;          /* patient id */
    int nslides;
    char **slides;     /* slide ids, sorted (the order of the bag's rows) */
    int64_t n;         /* patch rows (0: no slides) */
    float *x;          /* n x dim, the slides' features stacked, or NULL */
    float *omic;       /* omic_dim values, or NULL */
    int has_clin;
    char *label;       /* class name, or NULL */
    int y;             /* class index, or -1 */
    double time;       /* NAN when unknown */
    int event;         /* 1, 0, -1 unknown */
} mt_patient;

typedef struct {
    int np;
    mt_patient *p;     /* sorted by id */
    int dim;           /* patch feature width, 0 without slides */
    int omic_dim;      /* 0 without omics */
    int nclass;
    char **classes;    /* sorted (scikit-learn's classes_ order) */
    char time_unit[64];
    char slides_src[512], omics_src[512], clin_src[512];
} mt_cohort;

typedef struct {
    char **slides;     /* --slides arguments */
    int nslides;
    const char *omics, *clinical, *patient_map;
    mm_colopts co;
    int keep_normal;   /* keep TCGA normal samples (types 10-19) */
    int need_slides, need_omics, need_clin;
    int require_all;   /* --require all (1) or any (0) */
} mt_inputs;

/* Load and join. Patients missing a needed modality are reported by id on
 * stderr and dropped (--require all) or kept with zeros (any, as long as
 * they have slides or omics). Exits with a one-line error on bad input. */
void mt_cohort_load(const mt_inputs *in, mt_cohort *c);
void mt_cohort_free(mt_cohort *c);
/* Patient index of a sample, slide or patient id, or -1. */
int mt_cohort_find(const mt_cohort *c, const char *id);

/* Roles in a split: */
enum { MT_NONE = -1, MT_TRAIN = 0, MT_VAL = 1, MT_TEST = 2 };
/* Read a CLAM splits_k.csv (columns train, val, test) or MIRROR's
 * train/val layout into ROLE[np]. Exits on a patient listed twice. */
void mt_split_read(const mt_cohort *c, const char *path, int *role);
/* Write ROLE as a CLAM splits_k.csv (patient ids). */
void mt_split_write(const mt_cohort *c, const int *role, const char *path);

// ---- trainer (mm-train-fit.c)

enum { MT_SUBTYPE, MT_SURVIVAL };
enum { MT_NLL, MT_COX };

typedef struct {
    int task, loss;
    char optimizer[16];          /* adam | adamw | radam (+ Lookahead) */
    double lr, weight_decay, beta1, beta2, eps;
    int la_k;
    double la_alpha;
    char schedule[16];           /* cosine | constant */
    int warmup_epochs;
    double warmup_from, min_lr;
    int epochs, batch, accum;
    double clip;
    double label_smoothing;
    double alpha_surv;
    int bins;
    char bins_from[16];          /* train | all */
    char cox_norm[16];           /* events | all | events+1 */
    char cox_risk[16];           /* inclusive | strict */
    char monitor[24];            /* loss accuracy balanced_accuracy f1 auroc cindex auto */
    int patience;
    char select[8];              /* last | best */
    char standardize[8];         /* none | train: z-score omics and patch features on the training patients */
    long long seed;
} mt_opts;

void mt_opts_defaults(mt_opts *o);
/* Set KEY of the trainer (the fields above) or, failing that, of the model
 * config. @return 0, or -1 with a message in ERR. */
int mt_set(mt_opts *o, mm_model_cfg *mc, const char *key, const char *value,
           char *err, size_t errn);
/* Read a key = value file into O and MC. Exits on a bad line. */
void mt_read_conf(const char *path, mt_opts *o, mm_model_cfg *mc);
/* "key=value ..." of every trainer option. */
void mt_opts_format(const mt_opts *o, char *buf, size_t n);

typedef struct {
    double loss, accuracy, balanced_accuracy, f1, auroc, cindex;
    int n;
} mt_metrics;

/* One fit: train on the patients with ROLE == MT_TRAIN, validate on
 * MT_VAL (none: no validation, no early stopping), writing
 * OUTDIR/{last,best}.safetensors and OUTDIR/log.tsv. INIT: a checkpoint
 * whose weights start the run (finetune), or NULL. RESUME: continue from
 * OUTDIR/last.safetensors. STOP_AFTER > 0: stop after that epoch (tests).
 * FOLD names the run in messages (-1: none). */
typedef struct {
    const char *outdir, *init;
    int resume, stop_after, fold;
} mt_fit_args;
void mt_fit(const mt_cohort *c, const mt_opts *o, const mm_model_cfg *mc,
            const int *role, const mt_fit_args *a);

/* A loaded checkpoint: its model and what predicting needs. */
typedef struct {
    mm_params *p;
    mm_model *m;
    mt_opts o;
    mm_model_cfg mc;
    int nclass;
    char **classes;
    double *omic_mean, *omic_sd;   /* standardisation, or NULL */
    double *x_mean, *x_sd;         /* the same for patch features (per dimension) */
    double *edges;                 /* survival bin edges (bins + 1), or NULL */
    char digest[32];
    char *config;                  /* the recorded hyper-parameters */
} mt_ckpt;
void mt_ckpt_load(const char *path, mt_ckpt *k);
void mt_ckpt_free(mt_ckpt *k);
/* Check C fits K (dimensions, classes) and map C's labels onto K's
 * classes. Exits on a mismatch. */
void mt_ckpt_check(mt_ckpt *k, mt_cohort *c);

/* Outputs for the patients IDX[0..n): OUT gets n x n_out values. */
void mt_predict(const mt_ckpt *k, const mt_cohort *c, const int *idx, int n,
                double *out);
/* Metrics of OUT (from mt_predict) on IDX against the cohort's labels or
 * survival. */
void mt_metrics_of(const mt_ckpt *k, const mt_cohort *c, const int *idx, int n,
                   const double *out, mt_metrics *m);

/* Shared with mm-train.c */
extern int mt_progress_on;
const char *mt_task_name(const mt_opts *o);

#endif
