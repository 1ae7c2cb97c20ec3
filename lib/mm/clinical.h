/* mm/clinical.h: clinical data (ids, labels, survival) from a table or a
 * clinical stream, with the shared column options (mm/table.h), and the
 * patient-id rule of STREAM.md "Ids and joins". For the tools that join
 * clinical data onto samples (rna-select, mm-train).
 * SPDX-License-Identifier: MIT */
#ifndef MM_CLINICAL_H
#define MM_CLINICAL_H

#include <stddef.h>

#include "mm/defs.h"
#include "mm/table.h"

typedef struct {
    size_t n;
    char **id;        /* n ids */
    char **label;     /* n labels (NULL entries when missing or no label column) */
    double *time;     /* n times (NAN when missing or no time column) */
    int *event;       /* n events: 1, 0, or -1 when missing */
    int has_label, has_time, has_event;
    char note[256];   /* how the event coding was read */
} mm_clin_data;

/* Load PATH: a clinical mpk stream (records {"id", "label", "time",
 * "event"}) or a TSV/CSV table read with the column options O.
 * @return 0, or -1 (mm_strerror()). */
int mm_clin_load(const char *path, const mm_colopts *o, mm_clin_data *out)
    MM_RESULT_USED;
void mm_clin_data_free(mm_clin_data *d);

/* The patient an id belongs to: a TCGA barcode (case-insensitive
 * ^TCGA-XX-XXXX) gives its first 12 characters in upper case; any other id
 * is its own patient. Writes into BUF (N bytes) and returns it. */
const char *mm_patient_id(const char *id, char *buf, size_t n);
/* TCGA sample type (characters 14-15) of ID, or -1 when it has none. */
int mm_tcga_sample_type(const char *id);

/* Index of the record of D that sample ID belongs to: the same id, else
 * the same patient (mm_patient_id), else -1. */
long mm_clin_find(const mm_clin_data *d, const char *id);

#endif
