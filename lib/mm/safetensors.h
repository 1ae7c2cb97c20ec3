/* mm/safetensors.h: read and write safetensors files (the format PyTorch
 * users share weights in): named tensors by name, with an expected shape and
 * dtype conversion on load. Independent of any tensor struct: callers hand
 * in plain buffers. Not a general JSON library, not zero-copy (no mmap API).
 *
 *   mm_st *st = mm_st_open("resnet50.safetensors");   // NULL: mm_strerror()
 *   int64_t shape[4] = {64, 3, 7, 7};
 *   if (mm_st_read(st, "conv1.weight", MM_F32, 4, shape, w) != 0)
 *       fail(mm_st_error(st));
 *   mm_st_close(st);
 *
 * The file: an 8-byte little-endian header length N, N bytes of JSON
 * ({"__metadata__": {str: str}, NAME: {"dtype", "shape", "data_offsets"}}),
 * then the data buffer, which the tensors cover exactly (C order, little
 * endian, offsets relative to the buffer).
 * SPDX-License-Identifier: MIT */
#ifndef MM_SAFETENSORS_H
#define MM_SAFETENSORS_H

#include <stdint.h>

#include "mm/defs.h"
#include "mm/dtype.h"

/* Largest header mm_st_open accepts (the Python package's limit too). */
#define MM_ST_HEADER_MAX 100000000u
/* Most dimensions a tensor may have, here and in the files we read. */
#define MM_ST_MAX_DIM 16

// ---- reading

typedef struct mm_st mm_st;

/* Open PATH and read and check its header: well-formed JSON, known dtypes,
 * offsets consistent with shape x dtype size, tensors covering the data
 * buffer without holes or overlap. Tensor data is read on demand (pread).
 * @return the handle, or NULL with the reason in mm_strerror():
 *   "PATH: not a safetensors file (...)" when the first bytes cannot be a
 *   safetensors header, "PATH: corrupt safetensors header: ..." when the
 *   header is wrong, or the system's message for open/read failures. */
mm_st *mm_st_open(const char *path) MM_RESULT_USED;

/* Close and free; NULL is a no-op. */
void mm_st_close(mm_st *st);

/* Number of tensors. */
int mm_st_count(const mm_st *st);

/* Name of tensor I (0 <= I < count), in strcmp order. */
const char *mm_st_name(const mm_st *st, int i);

/* @return the index of tensor NAME, or -1 when there is none (no error is
 * recorded: use it to probe optional tensors). */
int mm_st_find(const mm_st *st, const char *name);

/* Describe tensor NAME. Any output pointer may be NULL. *DTYPE gets the
 * file's dtype string ("F32", "BF16", ...; static storage), *NDIM the number
 * of dimensions (0 for a scalar) and SHAPE[0..ndim) the extents (SHAPE must
 * hold MM_ST_MAX_DIM values).
 * @return 0, or -1 with "PATH: no tensor 'NAME'" in mm_st_error(). */
int mm_st_info(mm_st *st, const char *name, const char **dtype, int *ndim,
               int64_t *shape);

/* Number of elements of tensor I (1 for a scalar); -1 for a bad I. */
int64_t mm_st_numel(const mm_st *st, int i);

/* Read tensor NAME into DST as WANT, converting on the way:
 *   floats (F64 F32 F16 BF16 F8_E4M3 F8_E5M2) to float WANT (F32 F64 F16),
 *     rounding to nearest even where WANT is narrower;
 *   integers and BOOL (I8..I64, U8..U64) to any WANT, integer WANTs checked
 *     for range element by element;
 *   floats to integer WANTs is refused (it would truncate).
 * NDIM and SHAPE are the shape the caller expects and has sized DST for;
 * NDIM < 0 (SHAPE unused) accepts any shape, for callers that sized DST
 * from mm_st_info. DST holds numel x mm_dtype_size(WANT) bytes.
 * @return 0, or -1 with the reason in mm_st_error() (and mm_strerror()):
 *   "PATH: no tensor 'x'",
 *   "PATH: tensor 'x' has shape [64, 64, 1, 1], expected [64, 64, 3, 3]",
 *   "PATH: tensor 'x' is F32, cannot load it as i64 (would truncate)",
 *   "PATH: tensor 'x': element 3 (300) does not fit u8",
 *   or a read error. A failed read leaves the handle usable; DST may have
 *   been partly written. */
int mm_st_read(mm_st *st, const char *name, mm_dtype want, int ndim,
               const int64_t *shape, void *dst) MM_RESULT_USED;

/* The message of the last failed call on ST ("" when none). Unlike a
 * stream's, it does not stick: a missing tensor is the caller's question,
 * not damage to the file, and later calls work as before. */
const char *mm_st_error(const mm_st *st);

/* Metadata ("__metadata__", string to string), in strcmp order of keys.
 * mm_st_metadata returns the value of KEY or NULL when it is absent. */
int mm_st_meta_count(const mm_st *st);
const char *mm_st_meta_key(const mm_st *st, int i);
const char *mm_st_metadata(const mm_st *st, const char *key);

// ---- writing

typedef struct mm_st_writer mm_st_writer;

/* Start a safetensors file at PATH, written through a temporary name that
 * mm_st_write_close renames into place (mm/io.h).
 * @return the handle, or NULL with the reason in mm_strerror(). */
mm_st_writer *mm_st_create(const char *path) MM_RESULT_USED;

/* Add tensor NAME of dtype DT and shape SHAPE[0..NDIM) (NDIM 0: a scalar)
 * whose numel x mm_dtype_size(DT) bytes, C order, are at DATA. NAME and
 * SHAPE are copied; DATA is borrowed until mm_st_write_close.
 * @return 0, or -1 (duplicate or empty name, "__metadata__", bad shape);
 * the first error also fails mm_st_write_close. */
int mm_st_add(mm_st_writer *w, const char *name, mm_dtype dt, int ndim,
              const int64_t *shape, const void *data);

/* Set metadata KEY to VALUE (both copied), replacing an earlier value.
 * @return 0, or -1 for an empty key or a NULL value. */
int mm_st_set_metadata(mm_st_writer *w, const char *key, const char *value);

/* Write the file and close it. The output is deterministic and is the file
 * the Python package writes for the same tensors (its layout: tensors by
 * dtype, I64 F64 F32 I32 F16 U8, then name, so every tensor is aligned to
 * its element size; compact JSON padded with spaces to 8 bytes), except
 * that metadata keys are in strcmp order (Python's are a hash map's).
 * @return 0, or -1 with the reason in mm_strerror(); nothing is left at
 * PATH on failure. The handle is freed either way. */
int mm_st_write_close(mm_st_writer *w) MM_RESULT_USED;

/* Throw the output away and free the handle; NULL is a no-op. */
void mm_st_discard(mm_st_writer *w);

#endif
