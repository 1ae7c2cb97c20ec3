/* t-val.c: the value tree: building, msgpack bytes against known
 * encodings, decoding with every length checked, tensors, JSON.
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <math.h>
#include <stdlib.h>

#include "mm/val.h"
#include "../tap.h"

static char *json(const mm_val *v, int flags)
{
    static char *buf;
    size_t n;
    free(buf);
    buf = NULL;
    FILE *m = open_memstream(&buf, &n);
    mm_val_print_json(m, v, flags);
    fclose(m);
    return buf;
}

static int bytes_are(const unsigned char *p, size_t n, const char *hex)
{
    char got[512] = "";
    for (size_t i = 0; i < n && i < 200; i++) sprintf(got + 2 * i, "%02x", p[i]);
    if (strcmp(got, hex) != 0) diag("bytes %s, want %s", got, hex);
    return strcmp(got, hex) == 0;
}

int main(void)
{
    mm_rec *r = mm_rec_new(), *q = mm_rec_new();
    unsigned char *buf = NULL;
    size_t cap = 0, n;

    /* known encodings (msgpack spec; same bytes as Python msgpack.packb) */
    mm_val_set_int(mm_rec_put(r, "a"), 1);
    n = mm_val_encode(mm_rec_croot(r), &buf, &cap);
    ok(bytes_are(buf, n, "81a16101"), "{\"a\": 1}");
    mm_rec_clear(r);
    mm_val_set_int(mm_rec_put(r, "i"), -33);
    mm_val_set_float(mm_rec_put(r, "d"), 0.5);
    mm_val_set_float32(mm_rec_put(r, "f"), 0.5f);
    mm_val_set_bool(mm_rec_put(r, "b"), 1);
    mm_rec_put(r, "n");
    n = mm_val_encode(mm_rec_croot(r), &buf, &cap);
    ok(bytes_are(buf, n, "85a169d0dfa164cb3fe0000000000000a166ca3f000000a162c3a16ec0"),
       "int8, float64, float32, true, nil");

    /* decode what we encoded */
    mm_rec_clear(r);
    mm_val_set_str(r, mm_rec_put(r, "id"), "TCGA-AB-1234");
    mm_val_set_int(mm_rec_put(r, "big"), 5000000000LL);
    mm_val_set_int(mm_rec_put(r, "neg"), -5000000000LL);
    mm_val *arr = mm_rec_put(r, "arr");
    mm_val_set_array(arr);
    for (int i = 0; i < 20; i++) mm_val_set_int(mm_array_push(r, arr), i * i);
    mm_val *m = mm_rec_put(r, "m");
    mm_val_set_map(m);
    mm_val_set_str(r, mm_map_put(r, m, "k"), "v");
    mm_val_set_bin(r, mm_rec_put(r, "bin"), "\x00\x01\x02", 3);
    float f[6] = {1, 2, 3, 4, 5, -6.5f};
    int64_t shape[2] = {2, 3};
    mm_val_set_nd(r, mm_rec_put(r, "t"), MM_F32, 2, shape, f, 0);
    n = mm_val_encode(mm_rec_croot(r), &buf, &cap);
    is_int(mm__msgpack_span(buf, n, MM_REC_MAX), n, "span = encoded length");
    is_int(mm__msgpack_span(buf, n - 1, MM_REC_MAX), 0, "one byte short: need more");
    is_int(mm__msgpack_span(buf, n, n - 1), -1, "over the limit: refused");
    ok(mm_rec_decode(q, buf, n) == 0, "decode");
    is_str(mm_val_str(mm_rec_get(q, "id")), "TCGA-AB-1234", "string");
    int64_t i;
    ok(mm_val_int(mm_rec_get(q, "big"), &i) == 0 && i == 5000000000LL, "uint32+ value");
    ok(mm_val_int(mm_rec_get(q, "neg"), &i) == 0 && i == -5000000000LL, "int64 value");
    const mm_val *a2 = mm_rec_get(q, "arr");
    ok(a2 && a2->type == MM_ARRAY && a2->u.a.n == 20 && a2->u.a.v[19].u.i == 361, "array");
    is_str(mm_val_str(mm_map_get(mm_rec_get(q, "m"), "k")), "v", "nested map");
    const mm_val *b = mm_rec_get(q, "bin");
    ok(b && b->type == MM_BIN && b->u.s.n == 3 && b->u.s.p[2] == 2, "bin");
    mm_nd t;
    ok(mm_val_nd(mm_rec_get(q, "t"), &t) == 0, "tensor");
    ok(t.dtype == MM_F32 && t.ndim == 2 && t.shape[0] == 2 && t.shape[1] == 3 && t.count == 6,
       "tensor dtype and shape");
    float g[6];
    mm_nd_get_f32(&t, g);
    ok(memcmp(f, g, sizeof f) == 0, "tensor values");
    is_close(mm_nd_at(&t, 5), -6.5, 0, "mm_nd_at");
    size_t rn;
    const unsigned char *raw = mm_rec_bytes(q, &rn);
    ok(raw && rn == n && memcmp(raw, buf, n) == 0, "decoded record keeps its bytes");
    unsigned char *buf2 = NULL;
    size_t cap2 = 0, n2 = mm_val_encode(mm_rec_croot(q), &buf2, &cap2);
    ok(n2 == n && memcmp(buf, buf2, n) == 0, "re-encoding gives the same bytes");
    free(buf2);
    mm_rec_put(q, "x");
    ok(mm_rec_bytes(q, &rn) == NULL, "a changed record forgets its bytes");

    /* copy survives the source being cleared */
    mm_rec *c = mm_rec_new();
    mm_val_copy(c, mm_rec_root(c), mm_rec_croot(r));
    mm_rec_clear(r);
    is_str(mm_val_str(mm_rec_get(c, "id")), "TCGA-AB-1234", "deep copy");
    ok(mm_val_nd(mm_rec_get(c, "t"), &t) == 0 && mm_nd_at(&t, 1) == 2, "deep copy of a tensor");
    ok(mm_map_del(mm_rec_root(c), "id") == 1 && !mm_rec_get(c, "id"), "delete a key");
    mm_val_set_int(mm_rec_put(c, "arr"), 7);
    ok(mm_val_int(mm_rec_get(c, "arr"), &i) == 0 && i == 7, "put replaces a key");
    mm_rec_free(c);

    /* bad bytes */
    static const unsigned char c1[] = {0xc1};
    ok(mm_rec_decode(q, c1, 1) != 0, "0xc1 refused");
    is_int(mm__msgpack_span(c1, 1, 100), -1, "span refuses 0xc1");
    static const unsigned char huge[] = {0xdd, 0xff, 0xff, 0xff, 0xff, 0x01};
    ok(mm_rec_decode(q, huge, sizeof huge) != 0, "array count beyond the bytes refused");
    is_int(mm__msgpack_span(huge, sizeof huge, 1000), -1, "span: 4G elements over a 1000-byte limit");
    static const unsigned char two[] = {0x01, 0x02};
    ok(mm_rec_decode(q, two, 2) != 0, "trailing bytes refused");
    unsigned char deep[100];
    memset(deep, 0x91, sizeof deep);
    deep[99] = 0x01;
    ok(mm_rec_decode(q, deep, sizeof deep) != 0, "nesting deeper than 64 refused");
    is_int(mm__msgpack_span(deep, sizeof deep, 1000), 100, "span handles deep nesting");
    static const unsigned char badnd[] = {0x84, 0xa2, 'n', 'd', 0xc3, 0xa4, 't', 'y', 'p', 'e',
                                          0xa3, '<', 'f', '4', 0xa5, 's', 'h', 'a', 'p', 'e',
                                          0x91, 0x02, 0xa4, 'd', 'a', 't', 'a', 0xc4, 0x04,
                                          0, 0, 0, 0};
    ok(mm_rec_decode(q, badnd, sizeof badnd) == 0, "tensor with short data decodes as a map");
    ok(mm_val_nd(mm_rec_croot(q), &t) != 0, "but is refused as a tensor (4 bytes for 2 f32)");

    /* JSON */
    mm_rec_clear(r);
    mm_val_set_str(r, mm_rec_put(r, "s"), "a\"b\\c\n\x01");
    mm_val_set_float(mm_rec_put(r, "x"), 0.1);
    mm_val_set_float32(mm_rec_put(r, "y"), 0.1f);
    mm_val_set_float(mm_rec_put(r, "z"), 3);
    mm_val_set_float(mm_rec_put(r, "nan"), NAN);
    mm_val_set_nd(r, mm_rec_put(r, "t"), MM_F32, 2, shape, f, 0);
    mm_val_set_bin_ref(mm_rec_put(r, "b"), "abcd", 4);
    is_str(json(mm_rec_croot(r), 0),
           "{\"s\":\"a\\\"b\\\\c\\n\\u0001\",\"x\":0.1,\"y\":0.1,\"z\":3.0,\"nan\":null,"
           "\"t\":{\"tensor\":\"f32\",\"shape\":[2,3],\"min\":-6.5,\"max\":5.0,\"mean\":1.4166666666666667},"
           "\"b\":{\"bin\":4}}", "JSON summary");
    is_str(json(mm_rec_get(r, "t"), MM_JSON_FULL),
           "{\"tensor\":\"f32\",\"shape\":[2,3],\"data\":[[1.0,2.0,3.0],[4.0,5.0,-6.5]]}",
           "JSON full tensor");
    is_str(json(mm_rec_get(r, "b"), MM_JSON_FULL), "{\"bin\":\"YWJjZA==\"}", "JSON base64");
    uint16_t h[2] = {0x3c00, 0xc000};
    int64_t s1[1] = {2};
    mm_val_set_nd(r, mm_rec_put(r, "h"), MM_F16, 1, s1, h, 1);
    is_str(json(mm_rec_get(r, "h"), MM_JSON_FULL), "{\"tensor\":\"f16\",\"shape\":[2],\"data\":[1.0,-2.0]}",
           "JSON f16 tensor");

    /* non-string keys: scalars quoted, compound keys named, never expanded
     * (a 60-deep chain of map keys once printed 2^60 backslashes) */
    unsigned char keys[140] = {0x82, 0x01, 0xc3};
    size_t kn = 3;
    for (int d = 0; d < 60; d++) keys[kn++] = 0x81;
    keys[kn++] = 0x01;
    for (int d = 0; d < 60; d++) keys[kn++] = 0x02;
    keys[kn++] = 0x03;
    ok(mm_rec_decode(q, keys, kn) == 0, "map with an int key and a deep map key");
    is_str(json(mm_rec_croot(q), 0), "{\"1\":true,\"<map key>\":3}", "JSON of non-string keys");

    free(buf);
    mm_rec_free(r);
    mm_rec_free(q);
    return done_testing();
}
