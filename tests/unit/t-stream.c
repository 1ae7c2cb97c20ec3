/* t-stream.c: the segment layer, end to end through zstd: round trips,
 * concatenation, truncation at every layer, corruption (every byte of a
 * small stream flipped), trailer checks, the 64 MiB record limit and
 * bounded read memory. Includes stream.c to see the read buffer.
 * SPDX-License-Identifier: MIT */
#include "../../lib/stream.c"

#include <stdint.h>
#include <sys/stat.h>
#include <zstd.h>

#include "../tap.h"

static char tmpdir[] = "/tmp/t-stream.XXXXXX";

static char *path(const char *name)
{
    static char buf[256];
    snprintf(buf, sizeof buf, "%s/%s", tmpdir, name);
    return buf;
}

static unsigned char *slurp(const char *p, size_t *n)
{
    FILE *fp = fopen(p, "rb");
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    long len = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    unsigned char *buf = mm_malloc((size_t)len + 1);
    *n = fread(buf, 1, (size_t)len, fp);
    fclose(fp);
    return buf;
}

/* A stream with NSEG segments of N records: {"i": k, "s": "rec k",
 * "f": f32 [4]} */
static int write_stream(const char *p, int nseg, int n, int level)
{
    mm_stream *s = mm_stream_open(p, "w");
    if (!s) return -1;
    if (level) mm_stream_set_level(s, level);
    mm_rec *h = mm_rec_new(), *r = mm_rec_new();
    int ret = 0;
    for (int g = 0; g < nseg && ret == 0; g++) {
        char id[32];
        snprintf(id, sizeof id, "seg%d", g);
        mm_hdr_init(h, "features", id);
        char *argv[] = {"t-stream", "--flag"};
        mm_hdr_set_tool(h, "t-stream", 2, argv);
        mm_hdr_add_parent(h, "tiles", id);
        mm_val_set_int(mm_map_put(h, mm_hdr_meta(h), "n"), n);
        ret |= mm_stream_begin(s, h);
        for (int k = 0; k < n && ret == 0; k++) {
            mm_rec_clear(r);
            mm_val_set_int(mm_rec_put(r, "i"), k);
            char str[32];
            snprintf(str, sizeof str, "rec %d", k);
            mm_val_set_str(r, mm_rec_put(r, "s"), str);
            float f[4] = {(float)k, -0.5f * (float)k, 1e-3f, (float)g};
            int64_t shape[1] = {4};
            mm_val_set_nd(r, mm_rec_put(r, "f"), MM_F32, 1, shape, f, 1);
            ret |= mm_stream_write(s, r);
        }
        mm_stream_add_parent(s, "tiles", id, "0123456789abcdef");
        ret |= mm_stream_end(s);
    }
    mm_rec_free(h);
    mm_rec_free(r);
    if (ret) {
        mm_stream_discard(s);
        return -1;
    }
    return mm_stream_close(s);
}

/* Read everything. @return the final code (-1 at a clean end, < -1 error);
 * *NSEG, *NREC, and the XOR of digests so two reads can be compared. */
static int read_all(mm_stream *s, int64_t *nseg, int64_t *nrec, int check_values)
{
    mm_rec *r = mm_rec_new();
    int ret;
    int64_t k = 0;
    *nrec = 0;
    int values_ok = 1;
    while ((ret = mm_stream_next(s)) == 0) {
        while ((k = mm_stream_read(s, r)) >= 0) {
            ++*nrec;
            if (check_values) {
                int64_t i;
                mm_nd t;
                float f[4];
                if (mm_val_int(mm_rec_get(r, "i"), &i) != 0 || i != k ||
                    mm_val_nd(mm_rec_get(r, "f"), &t) != 0 || t.count != 4) {
                    values_ok = 0;
                    continue;
                }
                mm_nd_get_f32(&t, f);
                if (f[0] != (float)k || f[1] != -0.5f * (float)k) values_ok = 0;
            }
        }
        if (k < -1) { ret = (int)k; break; }
    }
    *nseg = mm_stream_segments(s);
    mm_rec_free(r);
    if (!values_ok) return -99;
    return ret;
}

static void test_roundtrip(void)
{
    ok(write_stream(path("a.mpk"), 3, 1000, 0) == 0, "write 3 segments of 1000 records");
    struct stat st;
    ok(stat(path("a.mpk"), &st) == 0, "output renamed into place");
    mm_stream *s = mm_stream_open(path("a.mpk"), "r");
    ok(s != NULL, "open for reading");
    mm_rec *r = mm_rec_new();
    int64_t k = mm_stream_read(s, r);
    is_int(k, 0, "first read opens the first segment");
    const mm_rec *h = mm_stream_header(s);
    is_str(mm_hdr_kind(h), "features", "header kind");
    is_str(mm_hdr_id(h), "seg0", "header id");
    int64_t n;
    ok(mm_val_int(mm_map_get(mm_rec_get(h, "meta"), "n"), &n) == 0 && n == 1000, "meta n");
    const mm_val *argv = mm_map_get(mm_rec_get(h, "tool"), "argv");
    ok(argv && argv->type == MM_ARRAY && argv->u.a.n == 2 &&
       !strcmp(mm_val_str(&argv->u.a.v[1]), "--flag"), "tool argv kept");
    while ((k = mm_stream_read(s, r)) >= 0) {}
    is_int(k, -1, "segment ends cleanly");
    is_int(mm_stream_read(s, r), -1, "read after the end of a segment stays -1");
    const mm_rec *t = mm_stream_trailer(s);
    ok(t != NULL, "trailer available");
    int64_t cnt;
    ok(mm_val_int(mm_rec_get(t, "mpk_end"), &cnt) == 0 && cnt == 1000, "trailer count");
    const mm_val *par = mm_rec_get(t, "parents");
    ok(par && par->type == MM_ARRAY && par->u.a.n == 1 &&
       !strcmp(mm_val_str(mm_map_get(&par->u.a.v[0], "digest")), "0123456789abcdef"),
       "trailer parents with digest");
    is_str(mm_val_str(mm_rec_get(t, "digest")), mm_stream_digest(s), "digest matches");
    is_int(mm_stream_next(s), 0, "next segment");
    is_str(mm_hdr_id(mm_stream_header(s)), "seg1", "second header");
    is_int(mm_stream_next(s), 0, "next skips (and checks) the rest");
    is_str(mm_hdr_id(mm_stream_header(s)), "seg2", "third header");
    is_int(mm_stream_next(s), -1, "end of stream");
    mm_rec_free(r);
    ok(mm_stream_close(s) == 0, "close reader");

    int64_t nseg, nrec;
    s = mm_stream_open(path("a.mpk"), "r");
    is_int(read_all(s, &nseg, &nrec, 1), -1, "values read back");
    is_int(nseg, 3, "3 segments");
    is_int(nrec, 3000, "3000 records");
    mm_stream_discard(s);

    /* same inputs, same bytes */
    ok(write_stream(path("b.mpk"), 3, 1000, 0) == 0, "write again");
    size_t na, nb;
    unsigned char *a = slurp(path("a.mpk"), &na), *b = slurp(path("b.mpk"), &nb);
    ok(na == nb && memcmp(a, b, na) == 0, "deterministic bytes");

    /* concatenation reads as one stream */
    unsigned char *cat = mm_malloc(na + nb);
    memcpy(cat, a, na);
    memcpy(cat + na, b, nb);
    s = mm_stream_open_mem(cat, na + nb, "cat");
    is_int(read_all(s, &nseg, &nrec, 1), -1, "concatenated streams read");
    is_int(nseg, 6, "6 segments");
    mm_stream_discard(s);
    free(cat);
    free(a);
    free(b);
}

/* Decompress a whole stream; return the msgpack bytes. */
static unsigned char *inflate_all(const unsigned char *p, size_t n, size_t *out)
{
    size_t cap = 1 << 20, len = 0;
    unsigned char *buf = mm_malloc(cap);
    ZSTD_DCtx *d = ZSTD_createDCtx();
    ZSTD_inBuffer in = {p, n, 0};
    while (in.pos < in.size) {
        if (cap - len < 65536) buf = mm_realloc(buf, cap *= 2);
        ZSTD_outBuffer o = {buf + len, cap - len, 0};
        size_t r = ZSTD_decompressStream(d, &o, &in);
        MM_ASSERT(!ZSTD_isError(r));
        len += o.pos;
    }
    ZSTD_freeDCtx(d);
    *out = len;
    return buf;
}

static unsigned char *deflate_all(const unsigned char *p, size_t n, size_t *out)
{
    size_t cap = ZSTD_compressBound(n);
    unsigned char *buf = mm_malloc(cap);
    ZSTD_CCtx *c = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1);
    *out = ZSTD_compress2(c, buf, cap, p, n);
    MM_ASSERT(!ZSTD_isError(*out));
    ZSTD_freeCCtx(c);
    return buf;
}

static int read_mem(const void *p, size_t n, char *msg, size_t msgn)
{
    int64_t nseg, nrec;
    mm_stream *s = mm_stream_open_mem(p, n, "x.mpk");
    int ret = read_all(s, &nseg, &nrec, 0);
    snprintf(msg, msgn, "%s", mm_stream_error(s));
    mm_stream_discard(s);
    return ret;
}

static void test_truncation(void)
{
    char msg[700];
    /* A segment of ~12 MiB data spans several 4 MiB frames. */
    mm_stream *s = mm_stream_open(path("big.mpk"), "w");
    mm_rec *h = mm_rec_new(), *r = mm_rec_new();
    mm_hdr_init(h, "features", "big");
    int ret = mm_stream_begin(s, h);
    float *f = mm_calloc(256 * 1024, sizeof(float));
    for (int k = 0; k < 12 && ret == 0; k++) {
        for (int i = 0; i < 256 * 1024; i++) f[i] = (float)((i * 7919 + k) % 1000) / 7.0f;
        mm_rec_clear(r);
        int64_t shape[2] = {256, 1024};
        mm_val_set_nd(r, mm_rec_put(r, "f"), MM_F32, 2, shape, f, 0);
        ret |= mm_stream_write(s, r);
    }
    ret |= mm_stream_end(s);
    ok(ret == 0 && mm_stream_close(s) == 0, "write a 12 MiB segment");
    free(f);
    size_t n, nz;
    unsigned char *z = slurp(path("big.mpk"), &n);
    /* frame boundaries */
    size_t ends[64], nf = 0, at = 0;
    while (at < n && nf < 64) {
        size_t fs = ZSTD_findFrameCompressedSize(z + at, n - at);
        MM_ASSERT(!ZSTD_isError(fs));
        at += fs;
        ends[nf++] = at;
    }
    ok(nf >= 3, "segment spans %zu frames", nf);
    is_int(read_mem(z, n, msg, sizeof msg), -1, "whole stream reads");
    is_int(read_mem(z, n / 2, msg, sizeof msg), MM_ETRUNC, "cut mid-frame: truncated");
    like(msg, "x.mpk: truncated stream", "cut mid-frame: message");
    is_int(read_mem(z, ends[0], msg, sizeof msg), MM_ETRUNC, "cut between frames of a segment");
    like(msg, "truncated stream", "cut between frames: message");
    is_int(read_mem(z, n - 1, msg, sizeof msg), MM_ETRUNC, "cut one byte short");
    is_int(read_mem(z, 3, msg, sizeof msg), MM_EFORMAT, "3 bytes: not a stream");

    /* cut just before the trailer (re-compressed without it) */
    unsigned char *raw = inflate_all(z, n, &nz);
    size_t pos = 0, last = 0;
    while (pos < nz) {
        int64_t len = mm__msgpack_span(raw + pos, nz - pos, MM_REC_MAX);
        MM_ASSERT(len > 0);
        last = pos;
        pos += (size_t)len;
    }
    size_t nc;
    unsigned char *c = deflate_all(raw, last, &nc);
    is_int(read_mem(c, nc, msg, sizeof msg), MM_ETRUNC, "no trailer: truncated");
    like(msg, "truncated stream (segment 'big' ends without a trailer after 12 records)",
         "no trailer: message names the segment");
    free(c);

    /* a cut exactly between segments is a shorter valid stream */
    ok(write_stream(path("two.mpk"), 2, 10, 0) == 0, "two small segments");
    size_t n2;
    unsigned char *z2 = slurp(path("two.mpk"), &n2);
    size_t first = ZSTD_findFrameCompressedSize(z2, n2);
    is_int(read_mem(z2, first, msg, sizeof msg), -1, "cut between segments: valid");
    free(z2);
    free(raw);
    free(z);
    mm_rec_free(h);
    mm_rec_free(r);
}

static void test_corruption(void)
{
    char msg[700];
    ok(write_stream(path("small.mpk"), 2, 20, 0) == 0, "small stream");
    size_t n;
    unsigned char *z = slurp(path("small.mpk"), &n);
    int64_t nseg0, nrec0;
    mm_stream *s = mm_stream_open_mem(z, n, "x");
    read_all(s, &nseg0, &nrec0, 0);
    mm_stream_discard(s);
    /* every byte flipped: an error, or (where the flip only touches an
     * unused bit of a frame header) the very same records */
    int silent = 0, errors = 0, corrupt_msgs = 0;
    unsigned char *y = mm_malloc(n);
    for (size_t i = 0; i < n; i++) {
        for (int bit = 0; bit < 8; bit += 3) {
            memcpy(y, z, n);
            y[i] ^= (unsigned char)(1u << bit);
            int64_t nseg, nrec;
            s = mm_stream_open_mem(y, n, "x");
            int ret = read_all(s, &nseg, &nrec, 1);
            const char *e = mm_stream_error(s);
            if (ret < -1) {
                errors++;
                if (strstr(e, "corrupt stream") || strstr(e, "truncated stream") ||
                    strstr(e, "not an mpk stream") || strstr(e, "unsupported"))
                    corrupt_msgs++;
                else
                    diag("flip %zu/%d: unexpected message '%s'", i, bit, e);
            } else if (nseg != nseg0 || nrec != nrec0 || ret == -99) {
                silent++;
                diag("flip at byte %zu bit %d read silently", i, bit);
            }
            mm_stream_discard(s);
        }
    }
    is_int(silent, 0, "no flipped bit changes the records silently (%d errors)", errors);
    is_int(corrupt_msgs, errors, "every error is named truncated/corrupt/not mpk");
    memcpy(y, z, n);
    y[n / 2] ^= 0x40;
    ok(read_mem(y, n, msg, sizeof msg) < -1, "flip in the middle fails");
    like(msg, "corrupt stream", "flip in the middle: corrupt stream");
    free(y);
    free(z);
}

/* Write raw msgpack maps (header, records, trailer) compressed. */
static void write_raw(const char *p, mm_rec **maps, int n)
{
    mm_zio *z = mm_zio_new(mm_io_open(p, "w"), "w");
    unsigned char *buf = NULL;
    size_t cap = 0;
    for (int i = 0; i < n; i++) {
        size_t len = mm_val_encode(mm_rec_croot(maps[i]), &buf, &cap);
        MM_ASSERT(mm_zio_write(z, buf, len) == 0);
    }
    MM_ASSERT(mm_zio_close(z) == 0);
    free(buf);
}

static void test_trailer_and_format(void)
{
    char msg[700];
    mm_rec *m[4];
    for (int i = 0; i < 4; i++) m[i] = mm_rec_new();
    mm_hdr_init(m[0], "clinical", "c");
    mm_val_set_int(mm_rec_put(m[1], "a"), 1);
    mm_val_set_int(mm_rec_put(m[2], "a"), 2);
    /* the digest of records 1 and 2 */
    unsigned char *buf = NULL;
    size_t cap = 0;
    XXH64_state_t *xs = XXH64_createState();
    XXH64_reset(xs, 0);
    for (int i = 1; i <= 2; i++) {
        size_t len = mm_val_encode(mm_rec_croot(m[i]), &buf, &cap);
        XXH64_update(xs, buf, len);
    }
    char hex[17];
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)XXH64_digest(xs));
    XXH64_freeState(xs);
    free(buf);

    mm_val_set_int(mm_rec_put(m[3], "mpk_end"), 2);
    mm_val_set_str(m[3], mm_rec_put(m[3], "digest"), hex);
    write_raw(path("ok.mpk"), m, 4);
    int64_t nseg, nrec;
    mm_stream *s = mm_stream_open(path("ok.mpk"), "r");
    is_int(read_all(s, &nseg, &nrec, 0), -1, "hand-made stream with right digest reads");
    mm_stream_discard(s);

    mm_val_set_int(mm_rec_put(m[3], "mpk_end"), 3);
    write_raw(path("count.mpk"), m, 4);
    s = mm_stream_open(path("count.mpk"), "r");
    is_int(read_all(s, &nseg, &nrec, 0), MM_ECORRUPT, "wrong count");
    like(mm_stream_error(s), "count.mpk: corrupt stream: segment 'c' has 2 records but "
         "its trailer says 3", "wrong count: message");
    mm_stream_discard(s);

    mm_val_set_int(mm_rec_put(m[3], "mpk_end"), 2);
    mm_val_set_str(m[3], mm_rec_put(m[3], "digest"), "0000000000000000");
    write_raw(path("digest.mpk"), m, 4);
    s = mm_stream_open(path("digest.mpk"), "r");
    is_int(read_all(s, &nseg, &nrec, 0), MM_ECORRUPT, "wrong digest");
    like(mm_stream_error(s), "digest mismatch", "wrong digest: message");
    mm_stream_discard(s);

    mm_val_set_int(mm_rec_put(m[0], "mpk"), 2);
    write_raw(path("v2.mpk"), m, 4);
    s = mm_stream_open(path("v2.mpk"), "r");
    is_int(read_all(s, &nseg, &nrec, 0), MM_EFORMAT, "unknown version");
    like(mm_stream_error(s), "v2.mpk: unsupported mpk version 2", "unknown version: message");
    mm_stream_discard(s);

    /* first map is a record: not an mpk stream */
    write_raw(path("nohdr.mpk"), m + 1, 3);
    s = mm_stream_open(path("nohdr.mpk"), "r");
    is_int(read_all(s, &nseg, &nrec, 0), MM_EFORMAT, "no header");
    like(mm_stream_error(s), "not an mpk stream (no header)", "no header: message");
    mm_stream_discard(s);

    is_int(read_mem("hello, world\n", 13, msg, sizeof msg), MM_EFORMAT, "text");
    like(msg, "x.mpk: not an mpk stream (not zstd-compressed)", "text: message");
    is_int(read_mem("", 0, msg, sizeof msg), MM_EFORMAT, "empty input");
    like(msg, "not an mpk stream (empty)", "empty: message");
    size_t nc;
    unsigned char junk[] = {0xc1, 0xc1, 0xc1};
    unsigned char *c = deflate_all(junk, sizeof junk, &nc);
    is_int(read_mem(c, nc, msg, sizeof msg), MM_EFORMAT, "zstd of non-msgpack");
    like(msg, "not an mpk stream (not msgpack)", "non-msgpack: message");
    free(c);
    for (int i = 0; i < 4; i++) mm_rec_free(m[i]);
}

static void test_writer_rules(void)
{
    mm_stream *s = mm_stream_open(path("w.mpk"), "w");
    mm_rec *h = mm_rec_new(), *r = mm_rec_new();
    mm_hdr_init(h, "tiles", "w");
    ok(mm_stream_begin(s, h) == 0, "begin");
    mm_val_set_int(mm_rec_put(r, "mpk_x"), 1);
    ok(mm_stream_write(s, r) < -1, "reserved key refused");
    like(mm_stream_error(s), "record key 'mpk_x' is reserved", "reserved key: message");
    mm_stream_discard(s);
    struct stat st;
    ok(stat(path("w.mpk"), &st) != 0, "discarded output leaves no file");

    s = mm_stream_open(path("w2.mpk"), "w");
    ok(mm_stream_begin(s, h) == 0, "begin");
    mm_rec_clear(r);
    size_t big = MM_REC_MAX + 1;
    unsigned char *p = mm_calloc(big, 1);
    mm_val_set_bin_ref(mm_rec_put(r, "b"), p, big);
    ok(mm_stream_write(s, r) < -1, "record over 64 MiB refused");
    like(mm_stream_error(s), "exceeds the 64 MiB limit", "over 64 MiB: message");
    mm_stream_discard(s);
    mm_rec_clear(r);

    /* a record just under the limit passes, and the reader takes it */
    s = mm_stream_open(path("w3.mpk"), "w");
    ok(mm_stream_begin(s, h) == 0, "begin");
    mm_val_set_bin_ref(mm_rec_put(r, "b"), p, MM_REC_MAX - 64);
    ok(mm_stream_write(s, r) == 0, "record just under 64 MiB written");
    ok(mm_stream_end(s) == 0 && mm_stream_close(s) == 0, "closed");
    free(p);
    s = mm_stream_open(path("w3.mpk"), "r");
    int64_t nseg, nrec;
    is_int(read_all(s, &nseg, &nrec, 0), -1, "record just under 64 MiB read");
    mm_stream_discard(s);

    /* closing inside a segment: error, nothing left behind */
    s = mm_stream_open(path("w4.mpk"), "w");
    ok(mm_stream_begin(s, h) == 0, "begin");
    ok(mm_stream_close(s) != 0, "close inside a segment fails");
    like(mm_strerror(), "closed inside a segment", "close inside: message");
    ok(stat(path("w4.mpk"), &st) != 0, "no half-written file");
    mm_rec_free(h);
    mm_rec_free(r);
}

static void test_bounded_memory(void)
{
    /* 256 MiB of records (1 MiB each, compressible): the reader's buffer
     * stays near one record, however long the stream. */
    mm_stream *s = mm_stream_open(path("long.mpk"), "w");
    mm_rec *h = mm_rec_new(), *r = mm_rec_new();
    mm_hdr_init(h, "features", "long");
    int ret = mm_stream_begin(s, h);
    unsigned char *p = mm_calloc(1 << 20, 1);
    for (int k = 0; k < 256 && ret == 0; k++) {
        mm_rec_clear(r);
        p[k] = (unsigned char)k;
        mm_val_set_bin_ref(mm_rec_put(r, "b"), p, 1 << 20);
        ret |= mm_stream_write(s, r);
    }
    ret |= mm_stream_end(s);
    ok(ret == 0 && mm_stream_close(s) == 0, "write 256 MiB of records");
    s = mm_stream_open(path("long.mpk"), "r");
    int64_t nseg, nrec;
    is_int(read_all(s, &nseg, &nrec, 0), -1, "read it back");
    is_int(nrec, 256, "256 records");
    ok(s->cap <= (3u << 20), "read buffer stays at %zu bytes (<= 3 MiB)", s->cap);
    ok(mm_stream_data_bytes(s) > (256u << 20), "%llu bytes decompressed",
       (unsigned long long)mm_stream_data_bytes(s));
    mm_stream_discard(s);
    free(p);
    mm_rec_free(h);
    mm_rec_free(r);
}

static void test_chunks(void)
{
    /* 100 MiB of features (25600 rows x 1024 f32) with their xy: split into
     * chunk records under 64 MiB that concatenate back to the original */
    int64_t rows = 25600, dim = 1024;
    float *f = mm_malloc((size_t)(rows * dim) * sizeof(float));
    int32_t *xy = mm_malloc((size_t)rows * 2 * sizeof(int32_t));
    for (int64_t i = 0; i < rows * dim; i++) f[i] = (float)(i % 9973) * 0.25f;
    for (int64_t i = 0; i < rows * 2; i++) xy[i] = (int32_t)(i * 256);
    mm_nd t[2] = {{.dtype = MM_I32, .ndim = 2, .shape = {rows, 2}, .count = rows * 2,
                   .data = xy, .nbytes = (size_t)rows * 8},
                  {.dtype = MM_F32, .ndim = 2, .shape = {rows, dim}, .count = rows * dim,
                   .data = f, .nbytes = (size_t)(rows * dim) * 4}};
    const char *keys[2] = {"xy", "f"};
    mm_stream *s = mm_stream_open(path("chunks.mpk"), "w");
    mm_rec *h = mm_rec_new(), *extra = mm_rec_new(), *r = mm_rec_new();
    mm_hdr_init(h, "features", "slide");
    mm_val_set_str(extra, mm_rec_put(extra, "id"), "slide");
    ok(mm_stream_begin(s, h) == 0, "begin");
    int64_t nchunks = mm_stream_write_rows(s, extra, 2, keys, t);
    ok(nchunks >= 25, "100 MiB written as %lld chunk records", (long long)nchunks);
    ok(mm_stream_end(s) == 0 && mm_stream_close(s) == 0, "closed");
    s = mm_stream_open(path("chunks.mpk"), "r");
    int64_t k, row = 0, bad = 0, maxbytes = 0;
    while ((k = mm_stream_read(s, r)) >= 0) {
        size_t n;
        mm_rec_bytes(r, &n);
        if ((int64_t)n > maxbytes) maxbytes = (int64_t)n;
        int64_t c;
        mm_nd a, b;
        if (mm_val_int(mm_rec_get(r, "chunk"), &c) != 0 || c != k ||
            strcmp(mm_val_str(mm_rec_get(r, "id")), "slide") != 0 ||
            mm_val_nd(mm_rec_get(r, "xy"), &a) != 0 || mm_val_nd(mm_rec_get(r, "f"), &b) != 0 ||
            a.shape[0] != b.shape[0] || b.shape[1] != dim ||
            memcmp(b.data, f + row * dim, b.nbytes) != 0 ||
            memcmp(a.data, xy + row * 2, a.nbytes) != 0) {
            bad++;
            continue;
        }
        row += b.shape[0];
    }
    is_int(k, -1, "chunks read to the end");
    is_int(bad, 0, "every chunk carries id, its index and the right rows");
    is_int(row, rows, "chunks concatenate to all %lld rows", (long long)rows);
    ok(maxbytes <= (int64_t)MM_REC_MAX, "largest chunk %lld bytes <= 64 MiB", (long long)maxbytes);
    mm_stream_discard(s);
    free(f);
    free(xy);
    mm_rec_free(h);
    mm_rec_free(extra);
    mm_rec_free(r);
}

static void test_open_errors(void)
{
    ok(mm_stream_open("/nonexistent/x.mpk", "r") == NULL, "missing file");
    like(mm_strerror(), "/nonexistent/x.mpk: No such file", "missing file: message");
    ok(mm_stream_open("/nonexistent/x.mpk", "w") == NULL, "uncreatable output");
    like(mm_strerror(), "/nonexistent/x.mpk: cannot create", "uncreatable: message");
}

int main(void)
{
    if (!mkdtemp(tmpdir)) return 99;
    test_roundtrip();
    test_truncation();
    test_corruption();
    test_trailer_and_format();
    test_writer_rules();
    test_bounded_memory();
    test_chunks();
    test_open_errors();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) diag("could not remove %s", tmpdir);
    return done_testing();
}
