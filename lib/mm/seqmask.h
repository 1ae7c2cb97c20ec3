/* mm/seqmask.h: masking and sampling of patch-feature sequences (GiMP's
 * masked patch modeling crop, MIRROR's token sampling and retention mask,
 * POMP's masked omics block). One pure function, mm_seqmask_view, decides a
 * view from (options, id, base seed, view index, token count) with no I/O,
 * so seq-mask(1) and mm-train's on-the-fly masking compute the same view.
 * Not a reader or writer of streams; mm_seqgather only copies rows.
 *
 * The algorithm (seq-mask(1) states it for other implementations):
 *   view seed  S = XXH64(id bytes, no NUL, seed = base) XOR (view * 0x9E3779B97F4A7C15)
 *   generator  xoshiro256** whose four state words are the first four
 *              outputs of splitmix64 started at S
 *   U(m)       uniform in [0, m), m >= 1: t = (2^64 - m) mod m; draw 64-bit
 *              x until x >= t; return x mod m
 *   H(R, len)  hidden count = floor(R * len + 0.5) (double arithmetic)
 *   mask       p = [0, 1, ..., len-1]; for i in 0..H-1: j = i + U(len - i);
 *              swap p[i], p[j]; mask[p[i]] = 1
 *   contiguous start = U(max(n - L, 0) + 1); idx[j] = (start + j) mod n,
 *              j < L (so a slide shorter than L is repeated in order from
 *              its first token: start is 0, still one draw); then the mask
 *   sample     n >= N: q = [0..n-1]; for i < N: j = i + U(n - i); swap
 *              q[i], q[j]; idx[i] = q[i] (draw order, not sorted);
 *              n < N: idx[i] = U(n) for i < N; then the mask
 *   random     idx[j] = j, j < n; then the mask over n positions
 *   omics      block = U(K); nothing else
 * Each view uses a fresh generator; the draws happen in the order above.
 * SPDX-License-Identifier: MIT */
#ifndef MM_SEQMASK_H
#define MM_SEQMASK_H

#include <stddef.h>
#include <stdint.h>

#include "mm/defs.h"
#include "mm/rng.h"

typedef enum {
    MM_SEQMASK_CONTIGUOUS, MM_SEQMASK_SAMPLE, MM_SEQMASK_RANDOM, MM_SEQMASK_OMICS
} mm_seqmask_mode;

typedef struct {
    mm_seqmask_mode mode;
    int64_t length;  /* contiguous: tokens per view, L [6000] */
    int64_t count;   /* sample: tokens per view, N [2048] */
    double ratio;    /* hidden fraction in [0, 1) [0.5; sample 0] */
    int64_t blocks;  /* omics: number of blocks K [0: set it] */
} mm_seqmask_opts;

/* Defaults of MODE (GiMP: L 6000, R 0.5; MIRROR: N 2048, no mask). */
void mm_seqmask_opts_init(mm_seqmask_opts *o, mm_seqmask_mode mode);
/* @return 0, or -1 with the reason in mm_strerror() (ratio outside [0, 1),
 * a length, count or block count out of [1, INT32_MAX]). */
int mm_seqmask_check(const mm_seqmask_opts *o) MM_RESULT_USED;
/* "contiguous", "sample", "random", "omics"; parse returns -1 if unknown. */
const char *mm_seqmask_mode_name(mm_seqmask_mode m);
int mm_seqmask_mode_parse(const char *s);

/* The view's own seed S (above). */
uint64_t mm_seqmask_seed(const char *id, uint64_t base_seed, int64_t view);
/* Tokens in a view of a sequence of N tokens: L, N, n, or 0 (omics). */
int64_t mm_seqmask_len(const mm_seqmask_opts *o, int64_t n);
/* Hidden positions among LEN: floor(RATIO * LEN + 0.5). */
int64_t mm_seqmask_hidden(double ratio, int64_t len);

/* Decide view VIEW of sequence ID (N tokens; unused for omics).
 * IDX and MASK hold mm_seqmask_len(o, n) elements (NULL for omics); MASK
 * gets 1 at hidden positions, 0 elsewhere. *BLOCK (may be NULL) gets the
 * zeroed block for omics, -1 otherwise. *SEED (may be NULL) gets S.
 * @return 0, or -1 with mm_strerror() (bad options; n < 1 or n > INT32_MAX
 * for a token mode). Allocates scratch, never prints. */
int mm_seqmask_view(const mm_seqmask_opts *o, const char *id, uint64_t base_seed,
                    int64_t view, int64_t n, int32_t *idx, uint8_t *mask,
                    int64_t *block, uint64_t *seed) MM_RESULT_USED;
/* The same from the view seed S itself. */
int mm_seqmask_draw(const mm_seqmask_opts *o, uint64_t seed, int64_t n,
                    int32_t *idx, uint8_t *mask, int64_t *block) MM_RESULT_USED;

// ---- gathering rows for views while a sequence streams past once

typedef struct mm_seqgather mm_seqgather;

/* Bytes a gather for NVIEWS views of LEN rows of ROW_BYTES holds (the rows,
 * their xy, the plan), so a caller can check it against a cap first. */
size_t mm_seqgather_bytes(int64_t n, int64_t nviews, int64_t len, size_t row_bytes);
/* Plan the copies: view v's row j is source row IDX[v * LEN + j], each in
 * [0, N). Rows are ROW_BYTES bytes; xy are 2 int32 per row. */
mm_seqgather *mm_seqgather_new(int64_t n, int64_t nviews, int64_t len,
                               const int32_t *idx, size_t row_bytes);
/* Source rows [R0, R0 + K): ROWS (K * row_bytes bytes) and XY (2K int32,
 * may be NULL). Rows at or beyond N are ignored. */
void mm_seqgather_feed(mm_seqgather *g, int64_t r0, int64_t k, const void *rows,
                       const int32_t *xy);
/* View V's LEN rows and xy (LEN x 2), filled as the sources went past. */
const void *mm_seqgather_rows(const mm_seqgather *g, int64_t v);
const int32_t *mm_seqgather_xy(const mm_seqgather *g, int64_t v);
void mm_seqgather_free(mm_seqgather *g);

#endif
