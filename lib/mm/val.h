/* mm/val.h: msgpack values as a small tree (records, headers, trailers), the
 * tensors inside them (msgpack-numpy maps), and their encoding.
 * A mm_rec owns one tree and the memory under it; values read from a stream
 * point into the record's own copy of the bytes, so a record stays valid
 * until it is cleared or read into again. Not a general JSON library.
 * SPDX-License-Identifier: MIT */
#ifndef MM_VAL_H
#define MM_VAL_H

#include <stdint.h>
#include <stdio.h>

#include "mm/defs.h"
#include "mm/dtype.h"

typedef enum {
    MM_NIL, MM_BOOL, MM_INT, MM_UINT, MM_FLOAT, MM_STR, MM_BIN, MM_ARRAY,
    MM_MAP, MM_EXT
} mm_type;

typedef struct mm_val mm_val;
typedef struct mm_kv mm_kv;

struct mm_val {
    mm_type type;
    uint8_t f32;     /* MM_FLOAT: was (or is to be written as) float32 */
    int8_t ext;      /* MM_EXT: the extension type */
    union {
        int b;
        int64_t i;   /* MM_INT: any value that fits int64 */
        uint64_t u;  /* MM_UINT: only values above INT64_MAX */
        double f;
        struct { const char *p; size_t n; } s;   /* STR (NUL-terminated), BIN, EXT */
        struct { mm_val *v; size_t n, cap; } a;  /* ARRAY */
        struct { mm_kv *kv; size_t n, cap; } m;  /* MAP, keys in order */
    } u;
};

struct mm_kv {
    mm_val k, v;
};

typedef struct mm_rec mm_rec;

mm_rec *mm_rec_new(void);
void mm_rec_free(mm_rec *r);
/* Empty the record: its root becomes an empty map. Frees what it held. */
void mm_rec_clear(mm_rec *r);
mm_val *mm_rec_root(mm_rec *r);
const mm_val *mm_rec_croot(const mm_rec *r);

/* ---- reading values (all accept NULL and return the failure value) */

/* The value under KEY (a string key) in MAP, or NULL. */
const mm_val *mm_map_get(const mm_val *map, const char *key);
const mm_val *mm_rec_get(const mm_rec *r, const char *key);
/* The string, or NULL when V is not a string. */
const char *mm_val_str(const mm_val *v);
/* 0 and *OUT when V is an integer (or an integral float) in range, else -1. */
int mm_val_int(const mm_val *v, int64_t *out);
/* 0 and *OUT when V is a number (nil is not a number), else -1. */
int mm_val_num(const mm_val *v, double *out);

/* ---- building values. Strings and copied bins live in the record. */

/* Put KEY in MAP (replacing its value when present) and return the value
 * slot, set to nil. */
mm_val *mm_map_put(mm_rec *r, mm_val *map, const char *key);
mm_val *mm_rec_put(mm_rec *r, const char *key);
void mm_val_set_nil(mm_val *v);
void mm_val_set_bool(mm_val *v, int b);
void mm_val_set_int(mm_val *v, int64_t i);
void mm_val_set_float(mm_val *v, double f);
void mm_val_set_float32(mm_val *v, float f);
void mm_val_set_str(mm_rec *r, mm_val *v, const char *s);
void mm_val_set_strn(mm_rec *r, mm_val *v, const char *s, size_t n);
/* A bin that borrows P: it must stay valid until the record is written. */
void mm_val_set_bin_ref(mm_val *v, const void *p, size_t n);
void mm_val_set_bin(mm_rec *r, mm_val *v, const void *p, size_t n);
void mm_val_set_array(mm_val *v);
void mm_val_set_map(mm_val *v);
/* Append a nil element to array ARR and return it. */
mm_val *mm_array_push(mm_rec *r, mm_val *arr);
/* Deep-copy SRC into DST, which belongs to R (bins are copied too). */
void mm_val_copy(mm_rec *r, mm_val *dst, const mm_val *src);
/* Remove KEY from MAP. @return 1 when it was there. */
int mm_map_del(mm_val *map, const char *key);

/* ---- tensors: {"nd": true, "type": "<f4", "kind": "", "shape": [...],
 * "data": bin} (msgpack-numpy), little-endian, C order. */

#define MM_ND_MAXDIM 8

typedef struct {
    mm_dtype dtype;
    int ndim;
    int64_t shape[MM_ND_MAXDIM];
    int64_t count;     /* product of the shape */
    const void *data;  /* may be unaligned: copy with mm_nd_get_* */
    size_t nbytes;
} mm_nd;

/* Store a tensor in V. COPY = 0 borrows DATA until the record is written. */
void mm_val_set_nd(mm_rec *r, mm_val *v, mm_dtype dt, int ndim,
                   const int64_t *shape, const void *data, int copy);
/* 1 when V is a map with "nd": true. */
int mm_val_is_nd(const mm_val *v);
/* Read a tensor. @return 0, or -1 when V is not a well-formed tensor (the
 * data length must equal the shape's product times the element size). */
int mm_val_nd(const mm_val *v, mm_nd *out) MM_RESULT_USED;
/* Convert element I.. of any numeric tensor. */
void mm_nd_get_f32(const mm_nd *t, float *dst);   /* all t->count elements */
void mm_nd_get_f64(const mm_nd *t, double *dst);
double mm_nd_at(const mm_nd *t, int64_t i);

/* ---- msgpack */

/* Encode V (msgpack-c packer). @return bytes, into *BUF grown as needed. */
size_t mm_val_encode(const mm_val *v, unsigned char **buf, size_t *cap);
/* Length of the msgpack object at P (at most N bytes), without decoding.
 * @return > 0 the length, 0 when more bytes are needed, -1 when the bytes
 * cannot be msgpack or the object would exceed LIMIT bytes. */
int64_t mm__msgpack_span(const unsigned char *p, size_t n, size_t limit);
/* Decode the N bytes at P into R's root (R takes a copy of the bytes).
 * @return 0, or -1 when they are not exactly one msgpack object. */
int mm_rec_decode(mm_rec *r, const void *p, size_t n) MM_RESULT_USED;
/* The bytes R was decoded from (NULL after any change through mm_rec_put/
 * mm_rec_clear). */
const unsigned char *mm_rec_bytes(const mm_rec *r, size_t *n);

/* ---- JSON (mpk cat) */

enum {
    MM_JSON_FULL = 1,  /* print every tensor element, not a summary */
};
/* Write V as one line of JSON (no newline). NaN and infinities print as
 * null; bins that are not tensors print as {"bin": length}, or base64 with
 * MM_JSON_FULL. */
void mm_val_print_json(FILE *fp, const mm_val *v, int flags);

#endif
