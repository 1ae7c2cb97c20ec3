/* mm/stream.h: mpk streams (STREAM.md, mmpath-stream(5)): segments of
 * header, records and trailer, as msgpack maps inside zstd frames.
 * The top layer; tools use only this (and mm/val.h for the records).
 *
 *   mm_stream *s = mm_stream_open(path, "r");    // NULL: mm_strerror()
 *   mm_rec *r = mm_rec_new();
 *   while ((ret = mm_stream_next(s)) == 0) {      // each segment
 *       const mm_rec *h = mm_stream_header(s);
 *       while ((ret = mm_stream_read(s, r)) >= 0) ...
 *       if (ret < -1) break;
 *   }
 *   if (ret < -1) fail(mm_stream_error(s));
 *
 * SPDX-License-Identifier: MIT */
#ifndef MM_STREAM_H
#define MM_STREAM_H

#include <stdint.h>

#include "mm/defs.h"
#include "mm/val.h"

typedef struct mm_stream mm_stream;

#define MM_STREAM_VERSION 1

/* Open PATH ("-" = stdin/stdout) for reading ("r") or writing ("w").
 * Writing refuses a terminal, and writes a path through a temporary name
 * that mm_stream_close renames into place.
 * @return the handle, or NULL with the reason in mm_strerror(). */
mm_stream *mm_stream_open(const char *path, const char *mode) MM_RESULT_USED;
/* Read a stream from memory (tests, fuzzing). BUF must outlive it. */
mm_stream *mm_stream_open_mem(const void *buf, size_t n, const char *name);

// ---- reading

/* Decode the stream's zstd frames on N threads (mm_zio_set_threads): for
 * readers that would otherwise wait on decompression (patch-embed feeding a
 * GPU). Call before the first read; the records are the same. */
void mm_stream_set_threads(mm_stream *s, int n);

/* 1 when the file at PATH starts with a zstd frame (an mpk stream, or
 * something that will fail as one); 0 for "-", unreadable or other files.
 * For tools that take a stream or a table as the same argument. */
int mm_stream_sniff(const char *path);

/* Move to the next segment and read its header (skipping what is left of
 * the current one, checked as it is skipped).
 * @return 0 a segment, -1 the end of the stream, < -1 an error. A stream
 * with no segment at all is an error (MM_EFORMAT). */
int mm_stream_next(mm_stream *s) MM_RESULT_USED;

/* Header of the current segment (the map with "mpk"), or NULL. */
const mm_rec *mm_stream_header(const mm_stream *s);

/* Read the next record of the current segment into R (opening the first
 * segment if none is open yet). The trailer is checked (count, digest)
 * before the end is reported.
 * @return >= 0 the record's index in the segment, -1 the end of the
 * segment, < -1 an error (MM_ETRUNC, MM_ECORRUPT, MM_EFORMAT, MM_ERR). */
int64_t mm_stream_read(mm_stream *s, mm_rec *r) MM_RESULT_USED;

/* The trailer of the segment that just ended, or NULL. */
const mm_rec *mm_stream_trailer(const mm_stream *s);

// ---- writing

/* Compression level for what follows (default: mm_stream_level(kind) at
 * mm_stream_begin; an explicit level sticks). */
void mm_stream_set_level(mm_stream *s, int level);
/* Compress on N threads besides the writer's (mm_zio_set_workers): the
 * bytes are the same for every N >= 1 (and differ from N = 0). */
void mm_stream_set_workers(mm_stream *s, int n);
/* STREAM.md defaults: 1 for tensor-heavy kinds (tiles, features, views),
 * 3 otherwise. */
int mm_stream_level(const char *kind);

/* Start a segment with header H (a map with "mpk", "kind", "id"; see
 * mm_hdr_init). @return 0 or < 0. */
int mm_stream_begin(mm_stream *s, const mm_rec *h) MM_RESULT_USED;
/* Write one record (a map, no key starting with "mpk", at most
 * MM_REC_MAX bytes encoded). @return 0 or < 0. */
int mm_stream_write(mm_stream *s, const mm_rec *r) MM_RESULT_USED;
/* Write a record from its msgpack bytes (passing records on unchanged). */
int mm_stream_write_raw(mm_stream *s, const void *p, size_t n) MM_RESULT_USED;
/* Name an input's digest in the trailer of the open segment. */
void mm_stream_add_parent(mm_stream *s, const char *kind, const char *id,
                          const char *digest);
/* Write the trailer and end the zstd frame. @return 0 or < 0. */
int mm_stream_end(mm_stream *s) MM_RESULT_USED;

/* Close. For output: an open segment is an error and the output is thrown
 * away; otherwise a path output is renamed into place.
 * @return 0, or -1 with the reason in mm_strerror(). Frees S. */
int mm_stream_close(mm_stream *s) MM_RESULT_USED;
/* Close and throw the output away (nothing half-written is left). */
void mm_stream_discard(mm_stream *s);

// ---- state

/* First error on the handle ("FILE: truncated stream", ...), or "". */
const char *mm_stream_error(const mm_stream *s);
const char *mm_stream_name(const mm_stream *s);
/* Segments begun so far (reading or writing). */
int64_t mm_stream_segments(const mm_stream *s);
/* Records in the current (or last) segment so far. */
int64_t mm_stream_count(const mm_stream *s);
/* XXH64 of the current (or last) segment's records, 16 hex digits. */
const char *mm_stream_digest(mm_stream *s);
/* Compressed and decompressed bytes so far. */
uint64_t mm_stream_raw_bytes(const mm_stream *s);
uint64_t mm_stream_data_bytes(const mm_stream *s);

// ---- headers

/* Fill H as a header: {"mpk": 1, "kind", "id", "tool": {}, "parents": [],
 * "meta": {}}. */
void mm_hdr_init(mm_rec *h, const char *kind, const char *id);
/* "tool": {"name", "version", "argv": ARGV[0..ARGC)}. */
void mm_hdr_set_tool(mm_rec *h, const char *name, int argc, char *const *argv);
void mm_hdr_add_parent(mm_rec *h, const char *kind, const char *id);
/* The "meta" map, to fill with mm_map_put. */
mm_val *mm_hdr_meta(mm_rec *h);
const char *mm_hdr_kind(const mm_rec *h);
const char *mm_hdr_id(const mm_rec *h);

/* Rows of ROW_BYTES each that fit one chunk record (a few MiB, never over
 * MM_REC_MAX; at least 1). */
int64_t mm_chunk_rows(size_t row_bytes);

/* Write NT tensors that share their first dimension (a slide's "xy" and
 * "f") as chunk records of at most mm_chunk_rows() rows: each record holds
 * the keys of EXTRA (may be NULL), "chunk": its index, and KEYS[i]: rows
 * [r0, r1) of T[i]. Readers concatenate the chunks in order.
 * @return the number of chunk records written, or < 0. */
int64_t mm_stream_write_rows(mm_stream *s, const mm_rec *extra, int nt,
                             const char *const *keys, const mm_nd *t) MM_RESULT_USED;

#endif
