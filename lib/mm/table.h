/* mm/table.h: TSV/CSV tables (clinical tables, expression matrices) and the
 * clinical column options every tool shares (STREAM.md "Ids and joins"),
 * with packing into clinical and omics streams.
 * Tables are read whole into memory; they are small next to slides.
 * Not a general CSV library: one header line, RFC 4180 quoting.
 * SPDX-License-Identifier: MIT */
#ifndef MM_TABLE_H
#define MM_TABLE_H

#include <stddef.h>

#include "mm/defs.h"
#include "mm/stream.h"

typedef struct mm_table mm_table;

/* Read PATH ("-" = stdin): tab-separated when the header line has a tab,
 * else comma-separated. A first header cell that is empty is a pandas index
 * column: dropped when its values are 0..n-1, else kept as the id column.
 * @return the table, or NULL with "PATH:LINE: ..." in mm_strerror(). */
mm_table *mm_table_read(const char *path) MM_RESULT_USED;
void mm_table_free(mm_table *t);

const char *mm_table_path(const mm_table *t);
int mm_table_ncol(const mm_table *t);
size_t mm_table_nrow(const mm_table *t);
const char *mm_table_colname(const mm_table *t, int col);
const char *mm_table_cell(const mm_table *t, size_t row, int col);
/* Line of the input file ROW came from (1-based, header = line 1). */
size_t mm_table_line(const mm_table *t, size_t row);
/* Column called NAME (exact match first, then ignoring case), or -1. */
int mm_table_find(const mm_table *t, const char *name);
/* The pandas index column kept as ids (first header cell empty), or -1. */
int mm_table_index_col(const mm_table *t);
/* "" "NA" "NaN" "nan" "N/A" "null" "NULL" */
int mm_cell_is_na(const char *s);
/* Whole-string number. @return 0, or -1 when S is not one. */
int mm_cell_number(const char *s, double *out);

/* The shared clinical column options (--id-col ... --time-unit). NULL
 * fields mean "not given". */
typedef struct {
    const char *id_col, *label_col, *time_col, *event_col;
    const char *event_value, *censored_value, *time_unit;
} mm_colopts;

enum { MM_EV_VALUE, MM_EV_CENSORED, MM_EV_01, MM_EV_CENSOR01, MM_EV_R12,
       MM_EV_CBIO, MM_EV_WORDS };

/* The columns a clinical table resolved to, and how "event" is read. */
typedef struct {
    int id, label, time, event;  /* column indices, -1 when absent */
    int event_mode;              /* MM_EV_* */
    const char *value;           /* MM_EV_VALUE / MM_EV_CENSORED */
    char note[256];              /* what was assumed, for the user */
} mm_clin_cols;

/* Resolve the columns of T from O (guessing time and event columns by
 * their usual names when not given) and decide the event coding.
 * @return 0, or -1 with the reason in mm_strerror(). */
int mm_clin_resolve(const mm_table *t, const mm_colopts *o, mm_clin_cols *c)
    MM_RESULT_USED;
/* Read an event cell: 0 and *EVENT (0/1); 1 when the cell is NA; -1 when
 * the value is not one the coding knows. */
int mm_clin_event(const mm_clin_cols *c, const char *cell, int *event);

/* Write T to OUT as one segment of kind "clinical" (records {"id",
 * "label", "time", "event", other columns typed}) with header H (already
 * mm_hdr_init'ed; meta is filled here). NOTE gets a line on what was
 * assumed. @return 0, or -1 with the reason in mm_strerror(). */
int mm_pack_clinical(const mm_table *t, const mm_colopts *o, mm_rec *h,
                     mm_stream *out, char *note, size_t note_n) MM_RESULT_USED;

/* Write T to OUT as one segment of kind "omics" ({"id", "v": f32 [F]}).
 * GENES_IN_ROWS: features are rows (first or id column) and samples are
 * columns, as Xena and Bioconductor export; else samples are rows.
 * BLOCK names the omics type. @return 0, or -1 (mm_strerror()). */
int mm_pack_omics(const mm_table *t, const mm_colopts *o, int genes_in_rows,
                  const char *block, mm_rec *h, mm_stream *out) MM_RESULT_USED;

#endif
