/* stream.c: the segment layer of mpk streams (mm/stream.h): headers,
 * records and trailers as msgpack maps over mm_zio, with the trailer's
 * count and XXH64 digest checked on read. Bounded memory: one record (at
 * most MM_REC_MAX) is buffered at a time.
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xxhash.h>

#include "mm/stream.h"
#include "mm/zio.h"

enum { ST_START, ST_SEG, ST_ENDED };

struct mm_stream {
    mm_zio *z;
    int writing;
    int state;
    int64_t nseg, count;
    XXH64_state_t *xs;
    char digest[17];
    mm_rec *hdr, *trl, *scratch;
    /* reading */
    unsigned char *buf;
    size_t cap, pos, end;
    int eof;
    /* writing */
    unsigned char *enc;
    size_t enc_cap;
    int level, level_explicit;
    mm_rec *parents;         /* root map {"parents": [...]} for the trailer */
    int err_code;
    char err[600];
};

static int serr(mm_stream *s, int code, const char *fmt, ...) MM_PRINTF(3, 4);
static int serr(mm_stream *s, int code, const char *fmt, ...)
{
    if (s->err[0]) return s->err_code;
    int n = snprintf(s->err, sizeof s->err, "%s: ", mm_zio_name(s->z));
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->err + n, sizeof s->err - (size_t)n, fmt, ap);
    va_end(ap);
    s->err_code = code;
    return code;
}

static mm_stream *stream_new(mm_io *io, const char *mode)
{
    mm_stream *s = mm_calloc(1, sizeof *s);
    s->writing = mode[0] == 'w';
    s->z = mm_zio_new(io, mode);
    s->xs = XXH64_createState();
    MM_ASSERT(s->xs);
    XXH64_reset(s->xs, 0);
    s->hdr = mm_rec_new();
    s->trl = mm_rec_new();
    s->scratch = mm_rec_new();
    s->parents = mm_rec_new();
    s->level = 3;
    return s;
}

mm_stream *mm_stream_open(const char *path, const char *mode)
{
    int writing = mode && mode[0] == 'w';
    if (writing && strcmp(path, "-") == 0 && isatty(STDOUT_FILENO)) {
        mm__set_error("refusing to write a binary stream to a terminal "
                      "(redirect it or use -o FILE)");
        return NULL;
    }
    mm_io *io = mm_io_open(path, writing ? "w" : "r");
    if (!io) return NULL;
    return stream_new(io, writing ? "w" : "r");
}

mm_stream *mm_stream_open_mem(const void *buf, size_t n, const char *name)
{
    return stream_new(mm_io_open_mem(buf, n, name), "r");
}

// ---------------------------------------------------------------- reading

int mm_stream_sniff(const char *path)
{
    unsigned char m[4] = {0};
    FILE *fp = strcmp(path, "-") ? fopen(path, "rb") : NULL;
    if (!fp) return 0;
    size_t k = fread(m, 1, 4, fp);
    fclose(fp);
    return k == 4 && m[0] == 0x28 && m[1] == 0xb5 && m[2] == 0x2f && m[3] == 0xfd;
}

/* Read the next msgpack object into R. @return 0, -1 at a clean end of
 * input (no byte left), < -1 on error. */
static int next_obj(mm_stream *s, mm_rec *r)
{
    for (;;) {
        size_t avail = s->end - s->pos;
        if (avail) {
            int64_t len = mm__msgpack_span(s->buf + s->pos, avail, MM_REC_MAX);
            if (len < 0) {
                if (s->nseg == 0 && s->state == ST_START)
                    return serr(s, MM_EFORMAT, "not an mpk stream (not msgpack)");
                return serr(s, MM_ECORRUPT, "corrupt stream: bad msgpack, or a "
                            "record larger than 64 MiB");
            }
            if (len > 0) {
                if (mm_rec_decode(r, s->buf + s->pos, (size_t)len) != 0)
                    return serr(s, MM_ECORRUPT, "corrupt stream: bad msgpack");
                s->pos += (size_t)len;
                return 0;
            }
        }
        if (s->eof) {
            if (avail == 0) return -1;
            return serr(s, MM_ETRUNC, "truncated stream (input ends inside a record)");
        }
        /* need more: read at least as much again (so a long record is
         * scanned a logarithmic number of times), compacting only when the
         * room after the unread bytes is too small */
        size_t want = avail + (avail > 65536 ? avail : 65536);
        if (want > MM_REC_MAX + 65536) want = MM_REC_MAX + 65536;
        if (s->pos + want > s->cap) {
            if (s->pos) {
                memmove(s->buf, s->buf + s->pos, avail);
                s->end = avail;
                s->pos = 0;
            }
            if (want > s->cap) {
                s->cap = want;
                s->buf = mm_realloc(s->buf, s->cap);
            }
        }
        want += s->pos;
        while (s->end < want && !s->eof) {
            ssize_t got = mm_zio_read(s->z, s->buf + s->end, s->cap - s->end);
            if (got < 0) return serr(s, (int)got, "%s", mm_zio_error(s->z) +
                                     strlen(mm_zio_name(s->z)) + 2);
            if (got == 0) s->eof = 1;
            s->end += (size_t)got;
        }
    }
}

static void digest_hex(mm_stream *s)
{
    snprintf(s->digest, sizeof s->digest, "%016llx",
             (unsigned long long)XXH64_digest(s->xs));
}

static const char *seg_id(const mm_stream *s)
{
    const char *id = mm_hdr_id(s->hdr);
    return id ? id : "?";
}

int mm_stream_next(mm_stream *s)
{
    int64_t ret;
    if (s->err[0]) return s->err_code;
    MM_ASSERT(!s->writing);
    while (s->state == ST_SEG)
        if ((ret = mm_stream_read(s, s->scratch)) < -1) return (int)ret;
    int r = next_obj(s, s->hdr);
    if (r == -1) {
        mm_rec_clear(s->hdr);
        if (s->nseg == 0) return serr(s, MM_EFORMAT, "not an mpk stream (empty)");
        s->state = ST_ENDED;
        return -1;
    }
    if (r < 0) return r;
    const mm_val *root = mm_rec_croot(s->hdr), *v = mm_rec_get(s->hdr, "mpk");
    int64_t version;
    if (root->type != MM_MAP || !v) {
        if (s->nseg == 0)
            return serr(s, MM_EFORMAT, "not an mpk stream (no header)");
        return serr(s, MM_ECORRUPT, "corrupt stream: expected a segment header");
    }
    if (mm_val_int(v, &version) != 0)
        return serr(s, MM_EFORMAT, "unsupported mpk version (not a number)");
    if (version != MM_STREAM_VERSION)
        return serr(s, MM_EFORMAT, "unsupported mpk version %lld (this reader "
                    "knows %d)", (long long)version, MM_STREAM_VERSION);
    s->state = ST_SEG;
    s->nseg++;
    s->count = 0;
    XXH64_reset(s->xs, 0);
    mm_rec_clear(s->trl);
    return 0;
}

const mm_rec *mm_stream_header(const mm_stream *s)
{
    return s->state == ST_START ? NULL : s->hdr;
}

const mm_rec *mm_stream_trailer(const mm_stream *s)
{
    return s->state == ST_ENDED && mm_rec_get(s->trl, "mpk_end") ? s->trl : NULL;
}

int64_t mm_stream_read(mm_stream *s, mm_rec *r)
{
    if (s->err[0]) return s->err_code;
    if (s->state == ST_START) {
        int ret = mm_stream_next(s);
        if (ret < 0) return ret;
    }
    if (s->state == ST_ENDED) return -1;
    int ret = next_obj(s, r);
    if (ret == -1)
        return serr(s, MM_ETRUNC, "truncated stream (segment '%s' ends without "
                    "a trailer after %lld records)", seg_id(s), (long long)s->count);
    if (ret < 0) return ret;
    const mm_val *root = mm_rec_croot(r);
    if (root->type != MM_MAP)
        return serr(s, MM_ECORRUPT, "corrupt stream: record %lld of segment '%s' "
                    "is not a map", (long long)s->count, seg_id(s));
    const mm_val *end = mm_rec_get(r, "mpk_end");
    if (end) {
        size_t n;
        const unsigned char *raw = mm_rec_bytes(r, &n);
        if (mm_rec_decode(s->trl, raw, n) != 0) return serr(s, MM_ERR, "internal");
        mm_rec_clear(r);
        int64_t want;
        digest_hex(s);
        if (mm_val_int(end, &want) != 0)
            return serr(s, MM_ECORRUPT, "corrupt stream: segment '%s' trailer "
                        "has no record count", seg_id(s));
        if (want != s->count)
            return serr(s, MM_ECORRUPT, "corrupt stream: segment '%s' has %lld "
                        "records but its trailer says %lld", seg_id(s),
                        (long long)s->count, (long long)want);
        const char *d = mm_val_str(mm_rec_get(s->trl, "digest"));
        if (d && strcmp(d, s->digest) != 0)
            return serr(s, MM_ECORRUPT, "corrupt stream: segment '%s' digest "
                        "mismatch (trailer %s, records %s)", seg_id(s), d, s->digest);
        s->state = ST_ENDED;
        return -1;
    }
    if (mm_rec_get(r, "mpk"))
        return serr(s, MM_ETRUNC, "truncated stream (segment '%s' ends without "
                    "a trailer after %lld records)", seg_id(s), (long long)s->count);
    size_t n;
    const unsigned char *raw = mm_rec_bytes(r, &n);
    XXH64_update(s->xs, raw, n);
    return s->count++;
}

// ---------------------------------------------------------------- writing

int mm_stream_level(const char *kind)
{
    if (kind && (!strcmp(kind, "tiles") || !strcmp(kind, "features") ||
                 !strcmp(kind, "views")))
        return 1;
    return 3;
}

void mm_stream_set_threads(mm_stream *s, int n)
{
    if (!s->writing) mm_zio_set_threads(s->z, n);
}

void mm_stream_set_level(mm_stream *s, int level)
{
    s->level = level;
    s->level_explicit = 1;
    mm_zio_set_level(s->z, level);
}

void mm_stream_set_workers(mm_stream *s, int n) { mm_zio_set_workers(s->z, n); }

static int write_bytes(mm_stream *s, const void *p, size_t n)
{
    if (mm_zio_write(s->z, p, n) != 0)
        return serr(s, MM_ERR, "%s", mm_zio_error(s->z) + strlen(mm_zio_name(s->z)) + 2);
    return 0;
}

int mm_stream_begin(mm_stream *s, const mm_rec *h)
{
    MM_ASSERT(s->writing);
    if (s->err[0]) return s->err_code;
    if (s->state == ST_SEG) return serr(s, MM_ERR, "segment begun inside a segment");
    const char *kind = mm_hdr_kind(h);
    int64_t v;
    if (mm_val_int(mm_rec_get(h, "mpk"), &v) != 0 || v != MM_STREAM_VERSION || !kind)
        return serr(s, MM_ERR, "header lacks \"mpk\" or \"kind\"");
    if (!s->level_explicit) mm_zio_set_level(s->z, mm_stream_level(kind));
    size_t n = mm_val_encode(mm_rec_croot(h), &s->enc, &s->enc_cap);
    if (n > MM_REC_MAX) return serr(s, MM_ERR, "header larger than 64 MiB");
    int ret = write_bytes(s, s->enc, n);
    if (ret) return ret;
    s->state = ST_SEG;
    s->nseg++;
    s->count = 0;
    XXH64_reset(s->xs, 0);
    mm_rec_clear(s->parents);
    mm_val_set_array(mm_rec_put(s->parents, "parents"));
    return 0;
}

int mm_stream_write_raw(mm_stream *s, const void *p, size_t n)
{
    if (s->err[0]) return s->err_code;
    if (s->state != ST_SEG) return serr(s, MM_ERR, "record written outside a segment");
    if (n > MM_REC_MAX)
        return serr(s, MM_ERR, "record of %zu bytes exceeds the 64 MiB limit "
                    "(write it as chunks)", n);
    int ret = write_bytes(s, p, n);
    if (ret) return ret;
    XXH64_update(s->xs, p, n);
    s->count++;
    return 0;
}

int mm_stream_write(mm_stream *s, const mm_rec *r)
{
    const mm_val *root = mm_rec_croot(r);
    MM_ASSERT(root->type == MM_MAP);
    for (size_t i = 0; i < root->u.m.n; i++) {
        const mm_val *k = &root->u.m.kv[i].k;
        if (k->type == MM_STR && strncmp(k->u.s.p, "mpk", 3) == 0)
            return serr(s, MM_ERR, "record key '%s' is reserved", k->u.s.p);
    }
    size_t n = mm_val_encode(root, &s->enc, &s->enc_cap);
    return mm_stream_write_raw(s, s->enc, n);
}

void mm_stream_add_parent(mm_stream *s, const char *kind, const char *id,
                          const char *digest)
{
    mm_val *arr = (mm_val *)mm_rec_get(s->parents, "parents");
    MM_ASSERT(arr && arr->type == MM_ARRAY);
    mm_val *m = mm_array_push(s->parents, arr);
    mm_val_set_map(m);
    mm_val_set_str(s->parents, mm_map_put(s->parents, m, "kind"), kind);
    mm_val_set_str(s->parents, mm_map_put(s->parents, m, "id"), id);
    mm_val_set_str(s->parents, mm_map_put(s->parents, m, "digest"), digest);
}

int mm_stream_end(mm_stream *s)
{
    if (s->err[0]) return s->err_code;
    if (s->state != ST_SEG) return serr(s, MM_ERR, "segment ended twice");
    digest_hex(s);
    mm_rec *t = s->trl;
    mm_rec_clear(t);
    mm_val_set_int(mm_rec_put(t, "mpk_end"), s->count);
    mm_val_set_str(t, mm_rec_put(t, "digest"), s->digest);
    mm_val_copy(t, mm_rec_put(t, "parents"), mm_rec_get(s->parents, "parents"));
    size_t n = mm_val_encode(mm_rec_croot(t), &s->enc, &s->enc_cap);
    int ret = write_bytes(s, s->enc, n);
    if (ret) return ret;
    if (mm_zio_end_frame(s->z) != 0)
        return serr(s, MM_ERR, "%s", mm_zio_error(s->z) + strlen(mm_zio_name(s->z)) + 2);
    s->state = ST_ENDED;
    return 0;
}

static void stream_free(mm_stream *s)
{
    XXH64_freeState(s->xs);
    mm_rec_free(s->hdr);
    mm_rec_free(s->trl);
    mm_rec_free(s->scratch);
    mm_rec_free(s->parents);
    free(s->buf);
    free(s->enc);
    free(s);
}

int mm_stream_close(mm_stream *s)
{
    if (!s) return 0;
    int ret = 0;
    if (s->writing && s->state == ST_SEG)
        serr(s, MM_ERR, "output closed inside a segment; nothing written");
    if (s->writing && s->err[0]) {
        mm__set_error("%s", s->err);
        mm_zio_discard(s->z);
        ret = -1;
    } else if (s->writing) {
        ret = mm_zio_close(s->z);
    } else {
        mm_zio_discard(s->z);
    }
    stream_free(s);
    return ret;
}

void mm_stream_discard(mm_stream *s)
{
    if (!s) return;
    mm_zio_discard(s->z);
    stream_free(s);
}

const char *mm_stream_error(const mm_stream *s) { return s->err; }
const char *mm_stream_name(const mm_stream *s) { return mm_zio_name(s->z); }
int64_t mm_stream_segments(const mm_stream *s) { return s->nseg; }
int64_t mm_stream_count(const mm_stream *s) { return s->count; }
uint64_t mm_stream_raw_bytes(const mm_stream *s) { return mm_zio_raw_bytes(s->z); }
uint64_t mm_stream_data_bytes(const mm_stream *s) { return mm_zio_data_bytes(s->z); }

const char *mm_stream_digest(mm_stream *s)
{
    if (s->state == ST_SEG) digest_hex(s);
    return s->digest;
}

// ---------------------------------------------------------------- headers

void mm_hdr_init(mm_rec *h, const char *kind, const char *id)
{
    mm_rec_clear(h);
    mm_val_set_int(mm_rec_put(h, "mpk"), MM_STREAM_VERSION);
    mm_val_set_str(h, mm_rec_put(h, "kind"), kind);
    mm_val_set_str(h, mm_rec_put(h, "id"), id);
    mm_val_set_map(mm_rec_put(h, "tool"));
    mm_val_set_array(mm_rec_put(h, "parents"));
    mm_val_set_map(mm_rec_put(h, "meta"));
}

void mm_hdr_set_tool(mm_rec *h, const char *name, int argc, char *const *argv)
{
    mm_val *t = mm_rec_put(h, "tool");
    mm_val_set_map(t);
    mm_val_set_str(h, mm_map_put(h, t, "name"), name);
    mm_val_set_str(h, mm_map_put(h, t, "version"), mm_version());
    mm_val *a = mm_map_put(h, t, "argv");
    mm_val_set_array(a);
    for (int i = 0; i < argc; i++) mm_val_set_str(h, mm_array_push(h, a), argv[i]);
}

void mm_hdr_add_parent(mm_rec *h, const char *kind, const char *id)
{
    mm_val *p = (mm_val *)mm_rec_get(h, "parents");
    if (!p || p->type != MM_ARRAY) {
        p = mm_rec_put(h, "parents");
        mm_val_set_array(p);
    }
    mm_val *m = mm_array_push(h, p);
    mm_val_set_map(m);
    mm_val_set_str(h, mm_map_put(h, m, "kind"), kind);
    mm_val_set_str(h, mm_map_put(h, m, "id"), id);
}

mm_val *mm_hdr_meta(mm_rec *h)
{
    mm_val *m = (mm_val *)mm_rec_get(h, "meta");
    if (!m || m->type != MM_MAP) {
        m = mm_rec_put(h, "meta");
        mm_val_set_map(m);
    }
    return m;
}

const char *mm_hdr_kind(const mm_rec *h) { return mm_val_str(mm_rec_get(h, "kind")); }
const char *mm_hdr_id(const mm_rec *h) { return mm_val_str(mm_rec_get(h, "id")); }

int64_t mm_chunk_rows(size_t row_bytes)
{
    size_t target = (size_t)4 << 20;
    if (row_bytes == 0 || row_bytes >= target) return 1;
    return (int64_t)(target / row_bytes);
}

int64_t mm_stream_write_rows(mm_stream *s, const mm_rec *extra, int nt,
                             const char *const *keys, const mm_nd *t)
{
    MM_ASSERT(nt >= 1 && t[0].ndim >= 1);
    int64_t rows = t[0].shape[0];
    size_t row_bytes = 0;
    for (int i = 0; i < nt; i++) {
        MM_ASSERT(t[i].ndim >= 1 && t[i].shape[0] == rows);
        row_bytes += rows ? t[i].nbytes / (size_t)rows : 0;
    }
    int64_t step = mm_chunk_rows(row_bytes), chunk = 0;
    mm_rec *r = mm_rec_new();
    int ret = 0;
    for (int64_t r0 = 0; r0 < rows || (rows == 0 && chunk == 0); r0 += step) {
        int64_t r1 = r0 + step < rows ? r0 + step : rows;
        mm_rec_clear(r);
        if (extra) mm_val_copy(r, mm_rec_root(r), mm_rec_croot(extra));
        mm_val_set_int(mm_rec_put(r, "chunk"), chunk);
        for (int i = 0; i < nt; i++) {
            int64_t shape[MM_ND_MAXDIM];
            memcpy(shape, t[i].shape, sizeof shape);
            shape[0] = r1 - r0;
            size_t rb = rows ? t[i].nbytes / (size_t)rows : 0;
            mm_val_set_nd(r, mm_rec_put(r, keys[i]), t[i].dtype, t[i].ndim, shape,
                          (const char *)t[i].data + (size_t)r0 * rb, 0);
        }
        if ((ret = mm_stream_write(s, r)) != 0) break;
        chunk++;
        if (rows == 0) break;
    }
    mm_rec_free(r);
    return ret ? ret : chunk;
}
