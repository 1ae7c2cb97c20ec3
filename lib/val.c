/* val.c: the msgpack value tree (mm/val.h): an arena per record, a decoder
 * that checks every length against the bytes present before it allocates,
 * encoding through msgpack-c's packer, tensors, and JSON for mpk cat.
 * We decode ourselves rather than with msgpack_unpacker because the latter
 * allocates an array's storage from the count in its header before the
 * elements arrive, so one corrupt byte can ask for gigabytes.
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <msgpack.h>

#include "mm/val.h"

// ---------------------------------------------------------------- arena

struct block {
    struct block *next;
    size_t size, used;
    _Alignas(16) unsigned char data[];
};

struct mm_rec {
    mm_val root;
    struct block *blocks;
    unsigned char *raw;   /* bytes the tree was decoded from */
    size_t raw_n, raw_cap;
    int raw_valid;
};

static void *arena_alloc(mm_rec *r, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    struct block *b = r->blocks;
    if (!b || b->size - b->used < n) {
        size_t size = n > 16384 ? n : 16384;
        if (b && size < b->size * 2 && n <= b->size * 2) size = b->size * 2;
        b = mm_malloc(sizeof *b + size);
        b->size = size;
        b->used = 0;
        b->next = r->blocks;
        r->blocks = b;
    }
    void *p = b->data + b->used;
    b->used += n;
    return p;
}

mm_rec *mm_rec_new(void)
{
    mm_rec *r = mm_calloc(1, sizeof *r);
    r->root.type = MM_MAP;
    return r;
}

void mm_rec_clear(mm_rec *r)
{
    /* keep the newest (largest) block, free the rest */
    struct block *b = r->blocks;
    if (b) {
        struct block *n = b->next;
        while (n) {
            struct block *t = n->next;
            free(n);
            n = t;
        }
        b->next = NULL;
        b->used = 0;
    }
    memset(&r->root, 0, sizeof r->root);
    r->root.type = MM_MAP;
    r->raw_valid = 0;
}

void mm_rec_free(mm_rec *r)
{
    if (!r) return;
    mm_rec_clear(r);
    free(r->blocks);
    free(r->raw);
    free(r);
}

mm_val *mm_rec_root(mm_rec *r)
{
    r->raw_valid = 0;
    return &r->root;
}

const mm_val *mm_rec_croot(const mm_rec *r) { return &r->root; }

const unsigned char *mm_rec_bytes(const mm_rec *r, size_t *n)
{
    if (!r->raw_valid) return NULL;
    *n = r->raw_n;
    return r->raw;
}

// ---------------------------------------------------------------- reading

const mm_val *mm_map_get(const mm_val *map, const char *key)
{
    if (!map || map->type != MM_MAP) return NULL;
    size_t kn = strlen(key);
    for (size_t i = 0; i < map->u.m.n; i++) {
        const mm_val *k = &map->u.m.kv[i].k;
        if (k->type == MM_STR && k->u.s.n == kn && memcmp(k->u.s.p, key, kn) == 0)
            return &map->u.m.kv[i].v;
    }
    return NULL;
}

const mm_val *mm_rec_get(const mm_rec *r, const char *key)
{
    return mm_map_get(&r->root, key);
}

const char *mm_val_str(const mm_val *v)
{
    return v && v->type == MM_STR ? v->u.s.p : NULL;
}

int mm_val_int(const mm_val *v, int64_t *out)
{
    if (!v) return -1;
    switch (v->type) {
    case MM_INT: *out = v->u.i; return 0;
    case MM_BOOL: *out = v->u.b; return 0;
    case MM_FLOAT:
        if (isfinite(v->u.f) && v->u.f == floor(v->u.f) &&
            fabs(v->u.f) < 9.2e18) {
            *out = (int64_t)v->u.f;
            return 0;
        }
        return -1;
    default: return -1;
    }
}

int mm_val_num(const mm_val *v, double *out)
{
    if (!v) return -1;
    switch (v->type) {
    case MM_INT: *out = (double)v->u.i; return 0;
    case MM_UINT: *out = (double)v->u.u; return 0;
    case MM_FLOAT: *out = v->u.f; return 0;
    case MM_BOOL: *out = v->u.b; return 0;
    default: return -1;
    }
}

// ---------------------------------------------------------------- building

mm_val *mm_map_put(mm_rec *r, mm_val *map, const char *key)
{
    MM_ASSERT(map->type == MM_MAP);
    r->raw_valid = 0;
    size_t kn = strlen(key);
    for (size_t i = 0; i < map->u.m.n; i++) {
        mm_val *k = &map->u.m.kv[i].k;
        if (k->type == MM_STR && k->u.s.n == kn && memcmp(k->u.s.p, key, kn) == 0) {
            memset(&map->u.m.kv[i].v, 0, sizeof(mm_val));
            return &map->u.m.kv[i].v;
        }
    }
    if (map->u.m.n == map->u.m.cap) {
        size_t cap = map->u.m.cap ? map->u.m.cap * 2 : 8;
        mm_kv *kv = arena_alloc(r, cap * sizeof *kv);
        if (map->u.m.n) memcpy(kv, map->u.m.kv, map->u.m.n * sizeof *kv);
        map->u.m.kv = kv;
        map->u.m.cap = cap;
    }
    mm_kv *kv = &map->u.m.kv[map->u.m.n++];
    memset(kv, 0, sizeof *kv);
    mm_val_set_strn(r, &kv->k, key, kn);
    return &kv->v;
}

mm_val *mm_rec_put(mm_rec *r, const char *key)
{
    return mm_map_put(r, &r->root, key);
}

int mm_map_del(mm_val *map, const char *key)
{
    if (!map || map->type != MM_MAP) return 0;
    size_t kn = strlen(key);
    for (size_t i = 0; i < map->u.m.n; i++) {
        mm_val *k = &map->u.m.kv[i].k;
        if (k->type == MM_STR && k->u.s.n == kn && memcmp(k->u.s.p, key, kn) == 0) {
            memmove(&map->u.m.kv[i], &map->u.m.kv[i + 1],
                    (map->u.m.n - i - 1) * sizeof(mm_kv));
            map->u.m.n--;
            return 1;
        }
    }
    return 0;
}

void mm_val_set_nil(mm_val *v) { memset(v, 0, sizeof *v); }
void mm_val_set_bool(mm_val *v, int b) { mm_val_set_nil(v); v->type = MM_BOOL; v->u.b = !!b; }
void mm_val_set_int(mm_val *v, int64_t i) { mm_val_set_nil(v); v->type = MM_INT; v->u.i = i; }
void mm_val_set_float(mm_val *v, double f) { mm_val_set_nil(v); v->type = MM_FLOAT; v->u.f = f; }
void mm_val_set_float32(mm_val *v, float f)
{
    mm_val_set_float(v, f);
    v->f32 = 1;
}

void mm_val_set_strn(mm_rec *r, mm_val *v, const char *s, size_t n)
{
    char *p = arena_alloc(r, n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    mm_val_set_nil(v);
    v->type = MM_STR;
    v->u.s.p = p;
    v->u.s.n = n;
}

void mm_val_set_str(mm_rec *r, mm_val *v, const char *s)
{
    mm_val_set_strn(r, v, s, strlen(s));
}

void mm_val_set_bin_ref(mm_val *v, const void *p, size_t n)
{
    mm_val_set_nil(v);
    v->type = MM_BIN;
    v->u.s.p = p;
    v->u.s.n = n;
}

void mm_val_set_bin(mm_rec *r, mm_val *v, const void *p, size_t n)
{
    void *q = arena_alloc(r, n);
    if (n) memcpy(q, p, n);
    mm_val_set_bin_ref(v, q, n);
}

void mm_val_set_array(mm_val *v) { mm_val_set_nil(v); v->type = MM_ARRAY; }
void mm_val_set_map(mm_val *v) { mm_val_set_nil(v); v->type = MM_MAP; }

mm_val *mm_array_push(mm_rec *r, mm_val *arr)
{
    MM_ASSERT(arr->type == MM_ARRAY);
    r->raw_valid = 0;
    if (arr->u.a.n == arr->u.a.cap) {
        size_t cap = arr->u.a.cap ? arr->u.a.cap * 2 : 8;
        mm_val *v = arena_alloc(r, cap * sizeof *v);
        if (arr->u.a.n) memcpy(v, arr->u.a.v, arr->u.a.n * sizeof *v);
        arr->u.a.v = v;
        arr->u.a.cap = cap;
    }
    mm_val *v = &arr->u.a.v[arr->u.a.n++];
    mm_val_set_nil(v);
    return v;
}

void mm_val_copy(mm_rec *r, mm_val *dst, const mm_val *src)
{
    switch (src->type) {
    case MM_STR:
        mm_val_set_strn(r, dst, src->u.s.p, src->u.s.n);
        break;
    case MM_BIN:
    case MM_EXT: {
        int8_t ext = src->ext;
        mm_type t = src->type;
        mm_val_set_bin(r, dst, src->u.s.p, src->u.s.n);
        dst->type = t;
        dst->ext = ext;
        break;
    }
    case MM_ARRAY: {
        size_t n = src->u.a.n;
        mm_val *v = arena_alloc(r, (n ? n : 1) * sizeof *v);
        for (size_t i = 0; i < n; i++) mm_val_copy(r, &v[i], &src->u.a.v[i]);
        mm_val_set_array(dst);
        dst->u.a.v = v;
        dst->u.a.n = dst->u.a.cap = n;
        break;
    }
    case MM_MAP: {
        size_t n = src->u.m.n;
        mm_kv *kv = arena_alloc(r, (n ? n : 1) * sizeof *kv);
        for (size_t i = 0; i < n; i++) {
            mm_val_copy(r, &kv[i].k, &src->u.m.kv[i].k);
            mm_val_copy(r, &kv[i].v, &src->u.m.kv[i].v);
        }
        mm_val_set_map(dst);
        dst->u.m.kv = kv;
        dst->u.m.n = dst->u.m.cap = n;
        break;
    }
    default:
        *dst = *src;
    }
}

// ---------------------------------------------------------------- tensors

void mm_val_set_nd(mm_rec *r, mm_val *v, mm_dtype dt, int ndim,
                   const int64_t *shape, const void *data, int copy)
{
    MM_ASSERT(ndim >= 0 && ndim <= MM_ND_MAXDIM);
    size_t count = 1;
    mm_val_set_map(v);
    mm_val_set_bool(mm_map_put(r, v, "nd"), 1);
    mm_val_set_str(r, mm_map_put(r, v, "type"), mm_dtype_typestr(dt));
    mm_val_set_str(r, mm_map_put(r, v, "kind"), "");
    mm_val *sh = mm_map_put(r, v, "shape");
    mm_val_set_array(sh);
    for (int i = 0; i < ndim; i++) {
        MM_ASSERT(shape[i] >= 0);
        mm_val_set_int(mm_array_push(r, sh), shape[i]);
        count *= (size_t)shape[i];
    }
    mm_val *d = mm_map_put(r, v, "data");
    size_t nbytes = count * mm_dtype_size(dt);
    if (copy)
        mm_val_set_bin(r, d, data, nbytes);
    else
        mm_val_set_bin_ref(d, data, nbytes);
}

int mm_val_is_nd(const mm_val *v)
{
    const mm_val *nd = mm_map_get(v, "nd");
    return nd && nd->type == MM_BOOL && nd->u.b;
}

int mm_val_nd(const mm_val *v, mm_nd *out)
{
    if (!mm_val_is_nd(v)) return -1;
    int dt = mm_dtype_from_typestr(mm_val_str(mm_map_get(v, "type")));
    const mm_val *sh = mm_map_get(v, "shape"), *d = mm_map_get(v, "data");
    if (dt < 0 || !sh || sh->type != MM_ARRAY || sh->u.a.n > MM_ND_MAXDIM ||
        !d || (d->type != MM_BIN && d->type != MM_STR))
        return -1;
    memset(out, 0, sizeof *out);
    out->dtype = (mm_dtype)dt;
    out->ndim = (int)sh->u.a.n;
    uint64_t count = 1;
    for (int i = 0; i < out->ndim; i++) {
        int64_t s;
        if (mm_val_int(&sh->u.a.v[i], &s) != 0 || s < 0 || s > (int64_t)1 << 40)
            return -1;
        out->shape[i] = s;
        count *= (uint64_t)s;
        if (count > (uint64_t)1 << 40) return -1;
    }
    out->count = (int64_t)count;
    out->data = d->u.s.p;
    out->nbytes = d->u.s.n;
    return count * mm_dtype_size(out->dtype) == d->u.s.n ? 0 : -1;
}

double mm_nd_at(const mm_nd *t, int64_t i)
{
    const unsigned char *p = (const unsigned char *)t->data + (size_t)i * mm_dtype_size(t->dtype);
    switch (t->dtype) {
    case MM_F32: { float x; memcpy(&x, p, 4); return x; }
    case MM_F64: { double x; memcpy(&x, p, 8); return x; }
    case MM_F16: { uint16_t x; memcpy(&x, p, 2); return mm_f16_to_f32(x); }
    case MM_U8: return *p;
    case MM_I32: { int32_t x; memcpy(&x, p, 4); return x; }
    case MM_I64: { int64_t x; memcpy(&x, p, 8); return (double)x; }
    default: return NAN;
    }
}

void mm_nd_get_f32(const mm_nd *t, float *dst)
{
    if (t->dtype == MM_F32) {
        memcpy(dst, t->data, t->nbytes);
        return;
    }
    for (int64_t i = 0; i < t->count; i++) dst[i] = (float)mm_nd_at(t, i);
}

void mm_nd_get_f64(const mm_nd *t, double *dst)
{
    if (t->dtype == MM_F64) {
        memcpy(dst, t->data, t->nbytes);
        return;
    }
    for (int64_t i = 0; i < t->count; i++) dst[i] = mm_nd_at(t, i);
}

// ---------------------------------------------------------------- msgpack

struct wbuf {
    unsigned char **buf;
    size_t *cap, n;
};

static int wbuf_write(void *data, const char *p, size_t n)
{
    struct wbuf *w = data;
    if (w->n + n > *w->cap) {
        size_t cap = *w->cap ? *w->cap : 4096;
        while (cap < w->n + n) cap *= 2;
        *w->buf = mm_realloc(*w->buf, cap);
        *w->cap = cap;
    }
    memcpy(*w->buf + w->n, p, n);
    w->n += n;
    return 0;
}

static void pack(msgpack_packer *pk, const mm_val *v)
{
    switch (v->type) {
    case MM_NIL: msgpack_pack_nil(pk); break;
    case MM_BOOL: v->u.b ? msgpack_pack_true(pk) : msgpack_pack_false(pk); break;
    case MM_INT: msgpack_pack_int64(pk, v->u.i); break;
    case MM_UINT: msgpack_pack_uint64(pk, v->u.u); break;
    case MM_FLOAT:
        if (v->f32) msgpack_pack_float(pk, (float)v->u.f);
        else msgpack_pack_double(pk, v->u.f);
        break;
    case MM_STR:
        msgpack_pack_str(pk, v->u.s.n);
        msgpack_pack_str_body(pk, v->u.s.p, v->u.s.n);
        break;
    case MM_BIN:
        msgpack_pack_bin(pk, v->u.s.n);
        msgpack_pack_bin_body(pk, v->u.s.p, v->u.s.n);
        break;
    case MM_EXT:
        msgpack_pack_ext(pk, v->u.s.n, v->ext);
        msgpack_pack_ext_body(pk, v->u.s.p, v->u.s.n);
        break;
    case MM_ARRAY:
        msgpack_pack_array(pk, v->u.a.n);
        for (size_t i = 0; i < v->u.a.n; i++) pack(pk, &v->u.a.v[i]);
        break;
    case MM_MAP:
        msgpack_pack_map(pk, v->u.m.n);
        for (size_t i = 0; i < v->u.m.n; i++) {
            pack(pk, &v->u.m.kv[i].k);
            pack(pk, &v->u.m.kv[i].v);
        }
        break;
    }
}

size_t mm_val_encode(const mm_val *v, unsigned char **buf, size_t *cap)
{
    struct wbuf w = {buf, cap, 0};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &w, wbuf_write);
    pack(&pk, v);
    return w.n;
}

static uint64_t be(const unsigned char *p, int n)
{
    uint64_t x = 0;
    for (int i = 0; i < n; i++) x = x << 8 | p[i];
    return x;
}

/* Header of the object at P: its header length, payload length and how
 * many child objects follow. -1 for the unused byte 0xc1. */
static int head(const unsigned char *p, size_t avail, size_t *hlen,
                uint64_t *payload, uint64_t *children)
{
    unsigned c = p[0];
    *payload = 0;
    *children = 0;
    *hlen = 1;
    if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3) return 0;
    if ((c & 0xf0) == 0x80) { *children = 2 * (uint64_t)(c & 0x0f); return 0; }
    if ((c & 0xf0) == 0x90) { *children = c & 0x0f; return 0; }
    if ((c & 0xe0) == 0xa0) { *payload = c & 0x1f; return 0; }
    int ln;
    switch (c) {
    case 0xcc: case 0xd0: *payload = 1; return 0;
    case 0xcd: case 0xd1: *payload = 2; return 0;
    case 0xca: case 0xce: case 0xd2: *payload = 4; return 0;
    case 0xcb: case 0xcf: case 0xd3: *payload = 8; return 0;
    case 0xd4: *payload = 2; return 0;  /* fixext: type byte + data */
    case 0xd5: *payload = 3; return 0;
    case 0xd6: *payload = 5; return 0;
    case 0xd7: *payload = 9; return 0;
    case 0xd8: *payload = 17; return 0;
    case 0xc4: case 0xd9: ln = 1; break;
    case 0xc5: case 0xda: ln = 2; break;
    case 0xc6: case 0xdb: ln = 4; break;
    case 0xc7: ln = 1; break;
    case 0xc8: ln = 2; break;
    case 0xc9: ln = 4; break;
    case 0xdc: ln = 2; break;
    case 0xdd: ln = 4; break;
    case 0xde: ln = 2; break;
    case 0xdf: ln = 4; break;
    default: return -1; /* 0xc1 */
    }
    *hlen = 1 + (size_t)ln;
    if (avail < *hlen) return 1; /* need more */
    uint64_t n = be(p + 1, ln);
    if (c == 0xdc || c == 0xdd) *children = n;
    else if (c == 0xde || c == 0xdf) *children = 2 * n;
    else if (c >= 0xc7 && c <= 0xc9) *payload = n + 1; /* ext type byte */
    else *payload = n;
    return 0;
}

int64_t mm__msgpack_span(const unsigned char *p, size_t n, size_t limit)
{
    uint64_t pos = 0, pending = 1;
    while (pending > 0) {
        if (pos >= n) return pos > limit ? -1 : 0;
        size_t hlen;
        uint64_t payload, children;
        int r = head(p + pos, n - pos, &hlen, &payload, &children);
        if (r < 0) return -1;
        if (r > 0) return 0;
        pending = pending - 1 + children;
        pos += hlen + payload;
        /* every pending object takes at least one byte */
        if (pos > limit || pending > limit - (pos < limit ? pos : limit)) return -1;
    }
    return pos > n ? 0 : (int64_t)pos;
}

struct dec {
    mm_rec *r;
    const unsigned char *p, *end;
};

static int decode(struct dec *d, mm_val *v, int depth)
{
    if (depth > 64 || d->p >= d->end) return -1;
    size_t avail = (size_t)(d->end - d->p), hlen;
    uint64_t payload, children;
    if (head(d->p, avail, &hlen, &payload, &children) != 0) return -1;
    if (hlen + payload > avail) return -1;
    const unsigned char *p = d->p, *body = d->p + hlen;
    unsigned c = p[0];
    d->p += hlen + payload;
    mm_val_set_nil(v);
    if (c <= 0x7f) { mm_val_set_int(v, c); return 0; }
    if (c >= 0xe0) { mm_val_set_int(v, (int8_t)c); return 0; }
    if ((c & 0xe0) == 0xa0 || c == 0xd9 || c == 0xda || c == 0xdb) {
        mm_val_set_strn(d->r, v, (const char *)body, payload);
        return 0;
    }
    if (c == 0xc4 || c == 0xc5 || c == 0xc6) {
        mm_val_set_bin_ref(v, body, payload);
        return 0;
    }
    if ((c >= 0xc7 && c <= 0xc9) || (c >= 0xd4 && c <= 0xd8)) {
        mm_val_set_bin_ref(v, body + 1, payload - 1);
        v->type = MM_EXT;
        v->ext = (int8_t)body[0];
        return 0;
    }
    if ((c & 0xf0) == 0x90 || c == 0xdc || c == 0xdd) {
        if (children > (uint64_t)(d->end - d->p)) return -1;
        mm_val_set_array(v);
        if (children) {
            v->u.a.v = arena_alloc(d->r, children * sizeof(mm_val));
            v->u.a.cap = children;
        }
        for (uint64_t i = 0; i < children; i++) {
            if (decode(d, &v->u.a.v[i], depth + 1) != 0) return -1;
            v->u.a.n++;
        }
        return 0;
    }
    if ((c & 0xf0) == 0x80 || c == 0xde || c == 0xdf) {
        uint64_t n = children / 2;
        if (children > (uint64_t)(d->end - d->p)) return -1;
        mm_val_set_map(v);
        if (n) {
            v->u.m.kv = arena_alloc(d->r, n * sizeof(mm_kv));
            v->u.m.cap = n;
        }
        for (uint64_t i = 0; i < n; i++) {
            if (decode(d, &v->u.m.kv[i].k, depth + 1) != 0 ||
                decode(d, &v->u.m.kv[i].v, depth + 1) != 0)
                return -1;
            v->u.m.n++;
        }
        return 0;
    }
    switch (c) {
    case 0xc0: return 0;
    case 0xc2: mm_val_set_bool(v, 0); return 0;
    case 0xc3: mm_val_set_bool(v, 1); return 0;
    case 0xcc: case 0xcd: case 0xce: case 0xcf: {
        uint64_t x = be(body, (int)payload);
        if (x > INT64_MAX) { v->type = MM_UINT; v->u.u = x; }
        else mm_val_set_int(v, (int64_t)x);
        return 0;
    }
    case 0xd0: mm_val_set_int(v, (int8_t)body[0]); return 0;
    case 0xd1: mm_val_set_int(v, (int16_t)be(body, 2)); return 0;
    case 0xd2: mm_val_set_int(v, (int32_t)be(body, 4)); return 0;
    case 0xd3: mm_val_set_int(v, (int64_t)be(body, 8)); return 0;
    case 0xca: {
        uint32_t x = (uint32_t)be(body, 4);
        float f;
        memcpy(&f, &x, 4);
        mm_val_set_float32(v, f);
        return 0;
    }
    case 0xcb: {
        uint64_t x = be(body, 8);
        double f;
        memcpy(&f, &x, 8);
        mm_val_set_float(v, f);
        return 0;
    }
    }
    return -1;
}

int mm_rec_decode(mm_rec *r, const void *p, size_t n)
{
    mm_rec_clear(r);
    if (n > r->raw_cap) {
        free(r->raw);
        r->raw_cap = n;
        r->raw = mm_malloc(n);
    }
    if (n) memcpy(r->raw, p, n);
    r->raw_n = n;
    struct dec d = {r, r->raw, r->raw + n};
    if (decode(&d, &r->root, 0) != 0 || d.p != d.end) {
        mm_rec_clear(r);
        return -1;
    }
    r->raw_valid = 1;
    return 0;
}

// ---------------------------------------------------------------- JSON

static void json_str(FILE *fp, const char *s, size_t n)
{
    fputc('"', fp);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"': fputs("\\\"", fp); break;
        case '\\': fputs("\\\\", fp); break;
        case '\n': fputs("\\n", fp); break;
        case '\t': fputs("\\t", fp); break;
        case '\r': fputs("\\r", fp); break;
        default:
            if (c < 0x20 || c == 0x7f) fprintf(fp, "\\u%04x", c);
            else fputc(c, fp);
        }
    }
    fputc('"', fp);
}

/* Shortest decimal that reads back to the same float (or double). */
static void json_num(FILE *fp, double x, int single)
{
    if (!isfinite(x)) {
        fputs("null", fp);
        return;
    }
    char buf[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, x);
        double y = strtod(buf, NULL);
        if (single ? (float)y == (float)x : y == x) break;
    }
    /* plain notation for ordinary magnitudes: 1010, not 1.01e+03 */
    double ax = fabs(x);
    if (strchr(buf, 'e') && ax >= 1e-5 && ax < 1e16) {
        int digits = 0;
        for (const char *c = buf; *c && *c != 'e'; c++) digits += *c >= '0' && *c <= '9';
        int dec = digits - 1 - (int)floor(log10(ax));
        snprintf(buf, sizeof buf, "%.*f", dec > 0 ? dec : 0, x);
    }
    /* keep it a JSON number that reads as float: 1 -> 1.0 */
    if (!strpbrk(buf, ".eEn")) strcat(buf, ".0");
    fputs(buf, fp);
}

static void base64(FILE *fp, const unsigned char *p, size_t n)
{
    static const char tab[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    fputc('"', fp);
    for (size_t i = 0; i < n; i += 3) {
        uint32_t x = (uint32_t)p[i] << 16;
        if (i + 1 < n) x |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n) x |= p[i + 2];
        fputc(tab[x >> 18 & 63], fp);
        fputc(tab[x >> 12 & 63], fp);
        fputc(i + 1 < n ? tab[x >> 6 & 63] : '=', fp);
        fputc(i + 2 < n ? tab[x & 63] : '=', fp);
    }
    fputc('"', fp);
}

static void json_nd_values(FILE *fp, const mm_nd *t, int dim, int64_t *idx)
{
    fputc('[', fp);
    for (int64_t i = 0; i < t->shape[dim]; i++) {
        if (i) fputc(',', fp);
        if (dim + 1 < t->ndim) {
            json_nd_values(fp, t, dim + 1, idx);
        } else {
            double x = mm_nd_at(t, (*idx)++);
            if (t->dtype == MM_F32 || t->dtype == MM_F16 || t->dtype == MM_F64)
                json_num(fp, x, t->dtype != MM_F64);
            else
                fprintf(fp, "%.0f", x);
        }
    }
    fputc(']', fp);
}

static void json_nd(FILE *fp, const mm_nd *t, int flags)
{
    fprintf(fp, "{\"tensor\":\"%s\",\"shape\":[", mm_dtype_name(t->dtype));
    for (int i = 0; i < t->ndim; i++) fprintf(fp, "%s%lld", i ? "," : "", (long long)t->shape[i]);
    fputc(']', fp);
    if (flags & MM_JSON_FULL) {
        fputs(",\"data\":", fp);
        int64_t idx = 0;
        if (t->ndim == 0) {
            double x = mm_nd_at(t, 0);
            json_num(fp, x, t->dtype != MM_F64);
        } else {
            json_nd_values(fp, t, 0, &idx);
        }
    } else if (t->count > 0) {
        double lo = INFINITY, hi = -INFINITY, sum = 0;
        int64_t nan = 0;
        for (int64_t i = 0; i < t->count; i++) {
            double x = mm_nd_at(t, i);
            if (isnan(x)) { nan++; continue; }
            if (x < lo) lo = x;
            if (x > hi) hi = x;
            sum += x;
        }
        int single = t->dtype != MM_F64;
        fputs(",\"min\":", fp);
        json_num(fp, nan == t->count ? NAN : lo, single);
        fputs(",\"max\":", fp);
        json_num(fp, nan == t->count ? NAN : hi, single);
        fputs(",\"mean\":", fp);
        json_num(fp, nan == t->count ? NAN : sum / (double)(t->count - nan), 0);
        if (nan) fprintf(fp, ",\"nan\":%lld", (long long)nan);
    }
    fputc('}', fp);
}

void mm_val_print_json(FILE *fp, const mm_val *v, int flags)
{
    switch (v->type) {
    case MM_NIL: fputs("null", fp); break;
    case MM_BOOL: fputs(v->u.b ? "true" : "false", fp); break;
    case MM_INT: fprintf(fp, "%lld", (long long)v->u.i); break;
    case MM_UINT: fprintf(fp, "%llu", (unsigned long long)v->u.u); break;
    case MM_FLOAT: json_num(fp, v->u.f, v->f32); break;
    case MM_STR: json_str(fp, v->u.s.p, v->u.s.n); break;
    case MM_BIN:
    case MM_EXT:
        if (flags & MM_JSON_FULL) {
            fputs("{\"bin\":", fp);
            base64(fp, (const unsigned char *)v->u.s.p, v->u.s.n);
            fputc('}', fp);
        } else {
            fprintf(fp, "{\"bin\":%zu}", v->u.s.n);
        }
        break;
    case MM_ARRAY:
        fputc('[', fp);
        for (size_t i = 0; i < v->u.a.n; i++) {
            if (i) fputc(',', fp);
            mm_val_print_json(fp, &v->u.a.v[i], flags);
        }
        fputc(']', fp);
        break;
    case MM_MAP: {
        mm_nd t;
        if (mm_val_is_nd(v) && mm_val_nd(v, &t) == 0) {
            json_nd(fp, &t, flags);
            break;
        }
        fputc('{', fp);
        for (size_t i = 0; i < v->u.m.n; i++) {
            const mm_val *k = &v->u.m.kv[i].k;
            if (i) fputc(',', fp);
            if (k->type == MM_STR) {
                json_str(fp, k->u.s.p, k->u.s.n);
            } else if (k->type == MM_ARRAY || k->type == MM_MAP || k->type == MM_BIN ||
                       k->type == MM_EXT) {
                /* JSON keys are strings; a compound key is named, not
                 * printed (printing it escaped grows 2^depth) */
                fprintf(fp, "\"<%s key>\"", k->type == MM_ARRAY ? "array" :
                        k->type == MM_MAP ? "map" : "bin");
            } else {
                fputc('"', fp);
                mm_val_print_json(fp, k, flags);
                fputc('"', fp);
            }
            fputc(':', fp);
            mm_val_print_json(fp, &v->u.m.kv[i].v, flags);
        }
        fputc('}', fp);
        break;
    }
    }
}
