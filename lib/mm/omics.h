/* mm/omics.h: expression matrices for rna-select: reading (TSV/CSV in either
 * orientation, GDC STAR-counts files, gzip), joining blocks by sample id,
 * transforms, imputation and unsupervised filters, each fitted on training
 * samples only when asked. Values are double (scikit-learn computes in
 * float64 and our results must equal its); streams store f32.
 * Supervised selection is mm/linear.h; Cox ranking is mm/cox.h.
 * SPDX-License-Identifier: MIT */
#ifndef MM_OMICS_H
#define MM_OMICS_H

#include <stddef.h>

#include "mm/defs.h"

typedef struct {
    size_t ns, nf;        /* samples, features */
    char **sample;        /* ns ids (strings: leading zeros kept) */
    char **feature;       /* nf ids */
    double *x;            /* ns x nf, sample-major; NAN = missing */
} mm_omx;

enum { MM_ORIENT_AUTO, MM_ORIENT_GENES_IN_ROWS, MM_ORIENT_GENES_IN_COLUMNS };

/* Read a matrix from a TSV/CSV file (gzip-compressed or not; "-" = stdin).
 * ORIENT AUTO decides from the ids: a first column of TCGA-like sample ids,
 * or a header of them, tells; otherwise the longer side is genes. A first
 * header cell that is empty is a pandas index (mm/table.h). NA, empty and
 * NaN cells are missing. A non-numeric value is an error naming file, line
 * and column. *HOW (may be NULL) gets a line saying what was decided.
 * @return 0, or -1 with the reason in mm_strerror(). */
int mm_omx_read(const char *path, int orient, mm_omx *out, char *how, size_t hown)
    MM_RESULT_USED;

/* Read a samples-in-rows table that mixes clinical and omics columns, as
 * PORPOISE's and MCAT's (case_id, slide_id, age, ..., GENE_rnaseq, ...):
 * the features are the columns whose names end in SUFFIX (kept whole as
 * ids), the sample ids come from column ID_COL (NULL: "case_id", else a
 * column named "id", else the pandas index). Rows repeating an id (one row
 * per slide) are dropped after the first; when their values differ from
 * the first's the read fails naming both lines. *HOW says how many repeats
 * were dropped. @return 0, or -1 (mm_strerror()). */
int mm_omx_read_columns(const char *path, const char *id_col, const char *suffix,
                        mm_omx *out, char *how, size_t hown) MM_RESULT_USED;

/* Read GDC STAR-counts files (one sample each: "# ..." comment lines, a
 * header gene_id gene_name gene_type unstranded ... tpm_unstranded
 * fpkm_unstranded fpkm_uq_unstranded, and N_* summary rows, which are
 * skipped). COLUMN picks the value column. The sample id is the file name
 * without directory and extensions (.tsv, .gz, .rna_seq...). Every file must
 * list the same genes in the same order. PATHS has N entries.
 * @return 0, or -1 (mm_strerror()). */
int mm_omx_read_gdc(char *const *paths, size_t n, const char *column, mm_omx *out)
    MM_RESULT_USED;

/* Join B's features onto A for the samples both have (A's order), prefixing
 * nothing: feature ids must not collide. Samples in only one are listed in
 * *MISSING (a malloc'ed "id1,id2,..." or NULL), and dropped.
 * @return 0, or -1 (mm_strerror()). */
int mm_omx_join(mm_omx *a, const mm_omx *b, char **missing) MM_RESULT_USED;

void mm_omx_free(mm_omx *m);
/* Keep only features with KEEP[j] != 0, in order. */
void mm_omx_keep_features(mm_omx *m, const unsigned char *keep);
/* Keep only samples with KEEP[i] != 0, in order. */
void mm_omx_keep_samples(mm_omx *m, const unsigned char *keep);
/* Index of feature/sample ID, or -1. */
long mm_omx_find_feature(const mm_omx *m, const char *id);
long mm_omx_find_sample(const mm_omx *m, const char *id);

/* TRAIN: ns flags, 1 = a training sample (NULL = all samples). Statistics
 * (means, variances, neighbours) come from training samples only and are
 * applied to every sample. */

/* log2(x + PSEUDO) (PSEUDO = 1 for --log2p1). Values <= -PSEUDO are an
 * error. */
int mm_omx_log2(mm_omx *m, double pseudo) MM_RESULT_USED;
/* Per feature (x - mean) / sd with sd the population sd (ddof 0, as
 * StandardScaler) over TRAIN; a zero sd leaves x - mean. NAN stays NAN. */
void mm_omx_zscore(mm_omx *m, const unsigned char *train);

enum { MM_IMPUTE_KNN, MM_IMPUTE_MEAN, MM_IMPUTE_ZERO };
/* Fill NANs. KNN as scikit-learn's KNNImputer(n_neighbors=K,
 * weights="uniform", metric="nan_euclidean") fitted on TRAIN: donors are
 * training samples with the feature observed, distances use the
 * coordinates both observed scaled by sqrt(nf / n_common); a feature that
 * is missing in every training sample is dropped (as keep_empty_features=
 * False) and reported in *DROPPED (count). MEAN uses the training mean.
 * @return 0, or -1 (mm_strerror()). */
int mm_omx_impute(mm_omx *m, int how, int k, const unsigned char *train,
                  size_t *dropped) MM_RESULT_USED;

/* Per-feature variance over TRAIN (population, ddof 0, NANs ignored, as
 * VarianceThreshold on imputed data). VAR gets nf values. */
void mm_omx_variance(const mm_omx *m, const unsigned char *train, double *var);
/* Filters, each marking KEEP[j] = 0 for features it drops (a feature
 * already dropped stays dropped):
 *   constant:   variance == 0 (VarianceThreshold())
 *   min_var:    variance <= X is dropped (VarianceThreshold(X) keeps > X)
 *   top_var:    the K largest variances are kept (ties: lower index first)
 *   max_missing: fraction of NAN over TRAIN > F is dropped */
void mm_omx_filter_constant(const mm_omx *m, const unsigned char *train, unsigned char *keep);
void mm_omx_filter_min_var(const mm_omx *m, const unsigned char *train, double x,
                           unsigned char *keep);
void mm_omx_filter_top_var(const mm_omx *m, const unsigned char *train, size_t k,
                           unsigned char *keep);
void mm_omx_filter_max_missing(const mm_omx *m, const unsigned char *train, double f,
                               unsigned char *keep);

#endif
