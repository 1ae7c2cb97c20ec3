/* t-safetensors.c: safetensors read/write (lib/safetensors.c): round trips,
 * dtype conversion on load, a file the Python package wrote
 * (tests/fixtures/safetensors/ref.safetensors), our writer's bytes against a
 * golden the package accepts and reproduces (ours.safetensors; MM_REGEN=1
 * rewrites it), and every malformed header with its one-line message.
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mm/safetensors.h"
#include "../tap.h"

static char dir[] = "/tmp/t-safetensors.XXXXXX";
static char fix_dir[512];

static const char *tmp(const char *name)
{
    static char p[8][600];
    static int k;
    k = (k + 1) % 8;
    snprintf(p[k], sizeof p[k], "%s/%s", dir, name);
    return p[k];
}

static void write_bytes(const char *path, const void *b, size_t n)
{
    FILE *fp = fopen(path, "wb");
    if (!fp || fwrite(b, 1, n, fp) != n || fclose(fp) != 0) abort();
}

/* a safetensors file from a header string and a data buffer; HN overrides
 * the header length when nonzero */
static const char *raw(const char *name, const char *json, const void *data,
                       size_t dn, uint64_t hn)
{
    size_t jn = strlen(json);
    unsigned char *b = malloc(8 + jn + dn + 1);
    if (!hn) hn = jn;
    for (int k = 0; k < 8; k++) b[k] = (unsigned char)(hn >> 8 * k);
    memcpy(b + 8, json, jn);
    if (dn) memcpy(b + 8 + jn, data, dn);
    const char *p = tmp(name);
    write_bytes(p, b, 8 + jn + dn);
    free(b);
    return p;
}

static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    long len = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)len + 1);
    *n = fread(b, 1, (size_t)len, fp);
    fclose(fp);
    return b;
}

static int bits_eq32(float a, float b) { return memcmp(&a, &b, 4) == 0; }

// ---- round trip

static void test_roundtrip(void)
{
    const char *p = tmp("rt.safetensors");
    float f32[6] = {1.5f, -2.25f, 3.0f, 0.1f, 1e-7f, -0.0f};
    double f64[3] = {3.141592653589793, -1e300, 5e-324};
    uint16_t f16[3] = {mm_f32_to_f16(1.0f), mm_f32_to_f16(-0.5f), 0x7bff};
    int64_t i64[4] = {-1, INT64_C(1) << 40, 0, INT64_MAX};
    unsigned char u8[5] = {0, 1, 2, 254, 255};
    int32_t i32 = -7;
    int64_t s23[2] = {2, 3}, s3[1] = {3}, s22[2] = {2, 2}, s5[1] = {5},
            s04[2] = {0, 4};

    mm_st_writer *w = mm_st_create(p);
    ok(w != NULL, "create");
    ok(mm_st_add(w, "x.f32", MM_F32, 2, s23, f32) == 0 &&
       mm_st_add(w, "x.f64", MM_F64, 1, s3, f64) == 0 &&
       mm_st_add(w, "x.f16", MM_F16, 1, s3, f16) == 0 &&
       mm_st_add(w, "x.i64", MM_I64, 2, s22, i64) == 0 &&
       mm_st_add(w, "x.u8", MM_U8, 1, s5, u8) == 0 &&
       mm_st_add(w, "scalar", MM_I32, 0, NULL, &i32) == 0 &&
       mm_st_add(w, "empty", MM_F32, 2, s04, NULL) == 0,
       "add 7 tensors (a scalar, an empty one)");
    ok(mm_st_set_metadata(w, "format", "pt") == 0 &&
       mm_st_set_metadata(w, "b", "first") == 0 &&
       mm_st_set_metadata(w, "b", "q\"\\\n\x01 \xc3\xa9/") == 0,
       "metadata, one key replaced");
    struct stat sb;
    ok(stat(p, &sb) != 0, "nothing at the final name before close");
    ok(mm_st_write_close(w) == 0, "write_close");

    mm_st *st = mm_st_open(p);
    if (!ok(st != NULL, "open what we wrote")) {
        diag("%s", mm_strerror());
        return;
    }
    is_int(mm_st_count(st), 7, "7 tensors");
    is_str(mm_st_name(st, 0), "empty", "names in strcmp order");
    is_str(mm_st_name(st, 6), "x.u8", "... to the last");
    ok(mm_st_name(st, 7) == NULL && mm_st_name(st, -1) == NULL,
       "name out of range: NULL");
    ok(mm_st_find(st, "x.f64") >= 0 && mm_st_find(st, "nope") == -1,
       "find");
    is_int(mm_st_meta_count(st), 2, "2 metadata keys");
    is_str(mm_st_meta_key(st, 0), "b", "metadata keys sorted");
    is_str(mm_st_metadata(st, "b"), "q\"\\\n\x01 \xc3\xa9/",
           "metadata value with escapes and UTF-8 survives");
    is_str(mm_st_metadata(st, "format"), "pt", "metadata 'format'");
    ok(mm_st_metadata(st, "zz") == NULL, "absent metadata key: NULL");

    const char *dt;
    int nd;
    int64_t sh[MM_ST_MAX_DIM];
    ok(mm_st_info(st, "x.f32", &dt, &nd, sh) == 0 && !strcmp(dt, "F32") &&
       nd == 2 && sh[0] == 2 && sh[1] == 3, "info: F32 [2, 3]");
    ok(mm_st_info(st, "scalar", &dt, &nd, sh) == 0 && !strcmp(dt, "I32") &&
       nd == 0, "info: scalar I32 []");
    is_int(mm_st_numel(st, mm_st_find(st, "scalar")), 1, "a scalar has 1 element");
    is_int(mm_st_numel(st, mm_st_find(st, "empty")), 0, "empty has 0");

    float g32[6];
    double g64[3];
    uint16_t g16[3];
    int64_t gi64[4];
    unsigned char gu8[5];
    int32_t gi32 = 0;
    ok(mm_st_read(st, "x.f32", MM_F32, 2, s23, g32) == 0 &&
       memcmp(g32, f32, sizeof f32) == 0, "f32 bit for bit");
    ok(mm_st_read(st, "x.f64", MM_F64, 1, s3, g64) == 0 &&
       memcmp(g64, f64, sizeof f64) == 0, "f64 bit for bit");
    ok(mm_st_read(st, "x.f16", MM_F16, 1, s3, g16) == 0 &&
       memcmp(g16, f16, sizeof f16) == 0, "f16 bit for bit");
    ok(mm_st_read(st, "x.i64", MM_I64, 2, s22, gi64) == 0 &&
       memcmp(gi64, i64, sizeof i64) == 0, "i64");
    ok(mm_st_read(st, "x.u8", MM_U8, 1, s5, gu8) == 0 &&
       memcmp(gu8, u8, sizeof u8) == 0, "u8");
    ok(mm_st_read(st, "scalar", MM_I32, 0, NULL, &gi32) == 0 && gi32 == -7,
       "scalar i32");
    ok(mm_st_read(st, "empty", MM_F32, 2, s04, g32) == 0, "empty tensor");
    ok(mm_st_read(st, "x.f32", MM_F32, -1, NULL, g32) == 0,
       "ndim -1 accepts any shape");
    is_str(mm_st_error(st), "", "no error after successful reads");
    mm_st_close(st);
    mm_st_close(NULL);
}

// ---- conversion on load

static void test_convert(void)
{
    const char *p = tmp("conv.safetensors");
    double d[4] = {0.1, -1e300, 1.0 + 0x1p-30, 65520.0};
    uint16_t h[3] = {0x3c00, 0x0001, 0xfbff}; /* 1, 2^-24, -65504 */
    float f[3] = {1.0f, 0.333333343f, 1e10f};
    int64_t i[4] = {-5, 0, 255, INT64_C(1) << 53};
    unsigned char u[2] = {3, 250};
    int64_t s4[1] = {4}, s3[1] = {3}, s2[1] = {2};
    mm_st_writer *w = mm_st_create(p);
    ok(w && mm_st_add(w, "d", MM_F64, 1, s4, d) == 0 &&
       mm_st_add(w, "h", MM_F16, 1, s3, h) == 0 &&
       mm_st_add(w, "f", MM_F32, 1, s3, f) == 0 &&
       mm_st_add(w, "i", MM_I64, 1, s4, i) == 0 &&
       mm_st_add(w, "u", MM_U8, 1, s2, u) == 0 &&
       mm_st_write_close(w) == 0, "write the conversion inputs");
    mm_st *st = mm_st_open(p);
    if (!ok(st != NULL, "open")) return;
    float g[4];
    double gd[4];
    uint16_t gh[4];
    int32_t gi[4];
    int64_t gl[4];
    unsigned char gu[4];
    ok(mm_st_read(st, "d", MM_F32, 1, s4, g) == 0 && g[0] == 0.1f &&
       g[1] == -INFINITY && g[2] == 1.0f && g[3] == 65520.0f,
       "F64 -> F32 rounds to nearest (overflow to -inf)");
    ok(mm_st_read(st, "h", MM_F32, 1, s3, g) == 0 && g[0] == 1.0f &&
       g[1] == 0x1p-24f && g[2] == -65504.0f, "F16 -> F32 exact (subnormal)");
    ok(mm_st_read(st, "h", MM_F64, 1, s3, gd) == 0 && gd[1] == 0x1p-24,
       "F16 -> F64");
    ok(mm_st_read(st, "f", MM_F16, 1, s3, gh) == 0 && gh[0] == 0x3c00 &&
       gh[1] == 0x3555 && gh[2] == 0x7c00, "F32 -> F16 (1/3 rounds, 1e10 -> inf)");
    ok(mm_st_read(st, "f", MM_F64, 1, s3, gd) == 0 && gd[1] == (double)f[1],
       "F32 -> F64 exact");
    ok(mm_st_read(st, "i", MM_F32, 1, s4, g) == 0 && g[0] == -5.0f &&
       g[3] == 0x1p53f, "I64 -> F32");
    ok(mm_st_read(st, "i", MM_I32, 1, s4, gi) == -1 &&
       tap_has(mm_st_error(st), "element 3 (9007199254740992) does not fit i32"),
       "I64 -> I32: 2^53 out of range");
    ok(mm_st_read(st, "u", MM_I32, 1, s2, gi) == 0 && gi[1] == 250, "U8 -> I32");
    ok(mm_st_read(st, "u", MM_I64, 1, s2, gl) == 0 && gl[0] == 3 && gl[1] == 250,
       "U8 -> I64");
    ok(mm_st_read(st, "u", MM_F64, 1, s2, gd) == 0 && gd[1] == 250.0,
       "U8 -> F64");
    char want[700];
    ok(mm_st_read(st, "i", MM_U8, 1, s4, gu) == -1, "I64 -> U8 with -5: fails");
    snprintf(want, sizeof want, "%s: tensor 'i': element 0 (-5) does not fit u8", p);
    is_str(mm_st_error(st), want, "names the element and value");
    ok(mm_st_read(st, "f", MM_I64, 1, s3, gl) == -1, "F32 -> I64 refused");
    snprintf(want, sizeof want,
             "%s: tensor 'f' is F32, cannot load it as i64 (would truncate)", p);
    is_str(mm_st_error(st), want, "... saying why");
    is_str(mm_strerror(), want, "... also in mm_strerror()");
    ok(mm_st_read(st, "u", MM_U8, 1, s2, gu) == 0 && gu[1] == 250,
       "the handle still works after failed reads");
    mm_st_close(st);
}

// ---- a file written by the Python package

static void test_ref(void)
{
    char p[600];
    snprintf(p, sizeof p, "%s/ref.safetensors", fix_dir);
    mm_st *st = mm_st_open(p);
    if (!ok(st != NULL, "open ref.safetensors (written by safetensors 0.8.0)")) {
        diag("%s", mm_strerror());
        return;
    }
    is_int(mm_st_count(st), 16, "16 tensors");
    is_str(mm_st_metadata(st, "source"), "tests/gen/safetensors_ref.py",
           "metadata");
    float g[18];
    double gd[4];
    int64_t gl[4];
    int32_t gi[3];
    unsigned char gu[3];
    int64_t s23[2] = {2, 3}, s3[1] = {3}, s4[1] = {4}, s22[2] = {2, 2},
            s2[1] = {2}, s2133[4] = {2, 1, 3, 3}, s03[2] = {0, 3};
    float a[6] = {1.5f, -2.25f, 3.0f, 0.1f, 1e-7f, -0.0f};
    int same = mm_st_read(st, "a.f32", MM_F32, 2, s23, g) == 0;
    for (int k = 0; same && k < 6; k++) same = bits_eq32(g[k], a[k]);
    ok(same, "F32 bit for bit (-0 too)");
    ok(mm_st_read(st, "b.f64", MM_F64, 1, s3, gd) == 0 &&
       gd[0] == 3.141592653589793 && gd[1] == -1e300 && gd[2] == 5e-324,
       "F64 (subnormal too)");
    ok(mm_st_read(st, "b.f64", MM_F32, 1, s3, g) == 0 &&
       g[0] == 3.14159274f && g[1] == -INFINITY && g[2] == 0.0f,
       "F64 -> F32");
    ok(mm_st_read(st, "c.f16", MM_F32, 1, s4, g) == 0 && g[0] == 1.0f &&
       g[1] == -0.5f && g[2] == 65504.0f && g[3] == 0x1p-24f, "F16 -> F32");
    ok(mm_st_read(st, "d.bf16", MM_F32, 1, s3, g) == 0 && g[0] == 1.5f &&
       g[1] == -3.140625f && g[2] == INFINITY, "BF16 -> F32");
    ok(mm_st_read(st, "d.bf16", MM_F64, 1, s3, gd) == 0 && gd[1] == -3.140625,
       "BF16 -> F64");
    ok(mm_st_read(st, "e.i64", MM_I64, 2, s22, gl) == 0 && gl[0] == -1 &&
       gl[1] == INT64_C(1) << 40 && gl[2] == 0 && gl[3] == 9, "I64");
    ok(mm_st_read(st, "f.i32", MM_I32, 1, s3, gi) == 0 && gi[0] == -7 &&
       gi[2] == INT32_MAX, "I32");
    ok(mm_st_read(st, "g.u8", MM_U8, 1, s2, gu) == 0 && gu[0] == 0 &&
       gu[1] == 255, "U8");
    ok(mm_st_read(st, "h.bool", MM_U8, 1, s3, gu) == 0 && gu[0] == 1 &&
       gu[1] == 0 && gu[2] == 1, "BOOL -> U8");
    ok(mm_st_read(st, "i.i8", MM_F32, 1, s2, g) == 0 && g[0] == -128.0f &&
       g[1] == 127.0f, "I8 -> F32");
    ok(mm_st_read(st, "j.i16", MM_I32, 1, s2, gi) == 0 && gi[0] == -300 &&
       gi[1] == 300, "I16 -> I32");
    ok(mm_st_read(st, "k.u64", MM_I64, 1, s2, gl) == -1 &&
       tap_has(mm_st_error(st), "element 0 (18446744073709551615) does not fit i64"),
       "U64 above INT64_MAX -> I64: refused");
    ok(mm_st_read(st, "k.u64", MM_F64, 1, s2, gd) == 0 && gd[0] == 0x1p64 &&
       gd[1] == 5.0, "U64 -> F64");
    ok(mm_st_read(st, "l.f8e4m3", MM_F32, 1, s4, g) == 0 && g[0] == 1.0f &&
       g[1] == -0.5f && g[2] == 448.0f && g[3] == 0x1p-9f, "F8_E4M3 -> F32");
    ok(mm_st_read(st, "m.f8e5m2", MM_F32, 1, s3, g) == 0 && g[0] == 1.0f &&
       g[1] == 57344.0f && g[2] == 0x1p-16f, "F8_E5M2 -> F32");
    same = mm_st_read(st, "conv.weight", MM_F32, 4, s2133, g) == 0;
    for (int k = 0; same && k < 18; k++) same = g[k] == (float)k * 0.25f - 2;
    ok(same, "conv.weight [2, 1, 3, 3] by name");
    ok(mm_st_read(st, "scalar", MM_I64, 0, NULL, gl) == 0 && gl[0] == 42,
       "scalar I64 shape []");
    ok(mm_st_read(st, "empty", MM_F32, 2, s03, g) == 0, "empty [0, 3]");
    mm_st_close(st);
}

// ---- our bytes against the golden

static const char *write_golden(const char *p)
{
    float f32[6];
    for (int k = 0; k < 6; k++) f32[k] = (float)k * 0.5f - 1;
    double f64[3] = {0.1, -2.5, 1e300};
    uint16_t f16[4] = {mm_f32_to_f16(1.0f), mm_f32_to_f16(-0.5f),
                       mm_f32_to_f16(65504.0f), mm_f32_to_f16(0x1p-14f)};
    int64_t i64[2] = {-3, INT64_C(1) << 40};
    unsigned char u8[5] = {0, 1, 2, 254, 255};
    int32_t n = 7;
    int64_t s23[2] = {2, 3}, s3[1] = {3}, s22[2] = {2, 2}, s2[1] = {2},
            s5[1] = {5}, s04[2] = {0, 4};
    mm_st_writer *w = mm_st_create(p);
    if (!w) return mm_strerror();
    /* added out of order on purpose: the writer sorts */
    if (mm_st_add(w, "n.i32", MM_I32, 0, NULL, &n) ||
        mm_st_add(w, "w.f16", MM_F16, 2, s22, f16) ||
        mm_st_add(w, "mask.u8", MM_U8, 1, s5, u8) ||
        mm_st_add(w, "w.f32", MM_F32, 2, s23, f32) ||
        mm_st_add(w, "empty", MM_F32, 2, s04, NULL) ||
        mm_st_add(w, "idx.i64", MM_I64, 1, s2, i64) ||
        mm_st_add(w, "w.f64", MM_F64, 1, s3, f64) ||
        mm_st_set_metadata(w, "mmpath", "t-safetensors golden v1")) {
        mm_st_discard(w);
        return mm_strerror();
    }
    return mm_st_write_close(w) ? mm_strerror() : NULL;
}

static void test_golden(void)
{
    char golden[600];
    snprintf(golden, sizeof golden, "%s/ours.safetensors", fix_dir);
    const char *regen = getenv("MM_REGEN");
    if (regen && strcmp(regen, "1") == 0) {
        mkdir(fix_dir, 0777);
        const char *e = write_golden(golden);
        ok(e == NULL, "rewrote %s (check it: tests/gen/safetensors_ref.py)",
           golden);
        return;
    }
    const char *p = tmp("golden.safetensors");
    const char *e = write_golden(p);
    if (!ok(e == NULL, "write the golden tensors")) diag("%s", e);
    size_t n = 0, wn = 0;
    unsigned char *got = slurp(p, &n), *want = slurp(golden, &wn);
    if (!ok(got && want && n == wn && memcmp(got, want, n) == 0,
            "byte for byte the golden %s", golden))
        diag("wrote %zu bytes, golden %zu; MM_REGEN=1 rewrites it", n, wn);
    /* header padded to 8 and data aligned: F64/I64 first at offset 0 */
    ok(n >= 8 && (got[0] | got[1] << 8) % 8 == 0, "header length a multiple of 8");
    ok(got && tap_has((char *)got + 8, "{\"__metadata__\":{\"mmpath\":"
                      "\"t-safetensors golden v1\"},\"idx.i64\":{\"dtype\":"
                      "\"I64\",\"shape\":[2],\"data_offsets\":[0,16]},"),
       "metadata first, then tensors by element size and name, compact JSON");
    free(got);
    free(want);
}

// ---- errors

static void expect_open_fail(const char *path, const char *msg, const char *what)
{
    mm_st *st = mm_st_open(path);
    ok(st == NULL, "%s: refused", what);
    char want[1200];
    snprintf(want, sizeof want, "%s: %s", path, msg);
    if (msg[strlen(msg) - 1] == '*') { /* prefix match */
        want[strlen(want) - 1] = 0;
        if (!ok(strncmp(mm_strerror(), want, strlen(want)) == 0, "%s: message",
                what))
            diag("got '%s', want '%s...'", mm_strerror(), want);
    } else {
        is_str(mm_strerror(), want, "%s: message", what);
    }
    mm_st_close(st);
}

static const char T1[] = "\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}";

static void test_errors(void)
{
    float eight[4] = {1, 2, 3, 4};
    int64_t s2[1] = {2}, s3[1] = {3}, s4[4] = {64, 64, 3, 3};
    char want[1200];

    /* missing and mis-shaped tensors */
    const char *p = tmp("resnet.safetensors");
    float *wbuf = calloc(64 * 64, sizeof(float));
    int64_t s1[4] = {64, 64, 1, 1};
    mm_st_writer *w = mm_st_create(p);
    ok(w && mm_st_add(w, "layer1.0.conv1.weight", MM_F32, 4, s1, wbuf) == 0 &&
       mm_st_write_close(w) == 0, "write a 1x1 conv weight");
    mm_st *st = mm_st_open(p);
    float *dst = malloc(64 * 64 * 9 * sizeof(float));
    ok(mm_st_read(st, "layer1.0.conv1.weight", MM_F32, 4, s4, dst) == -1,
       "wrong shape: -1");
    snprintf(want, sizeof want, "%s: tensor 'layer1.0.conv1.weight' has shape "
             "[64, 64, 1, 1], expected [64, 64, 3, 3]", p);
    is_str(mm_st_error(st), want, "wrong shape: message");
    ok(mm_st_read(st, "layer1.0.conv1.weight", MM_F32, 2, s4, dst) == -1,
       "wrong rank: -1");
    snprintf(want, sizeof want, "%s: tensor 'layer1.0.conv1.weight' has shape "
             "[64, 64, 1, 1], expected [64, 64]", p);
    is_str(mm_st_error(st), want, "wrong rank: message");
    ok(mm_st_read(st, "x", MM_F32, 1, s2, dst) == -1, "missing tensor: -1");
    snprintf(want, sizeof want, "%s: no tensor 'x'", p);
    is_str(mm_st_error(st), want, "missing tensor: message");
    const char *dt;
    ok(mm_st_info(st, "x", &dt, NULL, NULL) == -1 &&
       !strcmp(mm_st_error(st), want), "info on a missing tensor");
    mm_st_close(st);
    free(wbuf);
    free(dst);

    /* not a safetensors file */
    expect_open_fail(tmp("nope"), "No such file or directory", "missing file");
    expect_open_fail(dir, "is a directory", "a directory");
    write_bytes(tmp("short"), "abc", 3);
    expect_open_fail(tmp("short"), "not a safetensors file (3 bytes, shorter "
                     "than the 8-byte header length)", "3-byte file");
    write_bytes(tmp("zip"), "PK\3\4\0\0\0\0\0\0\0\0", 12);
    expect_open_fail(tmp("zip"), "not a safetensors file (header length "
                     "67324752 runs past the end of the 12-byte file: "
                     "truncated?)", "a zip (torch.save) file");
    p = raw("len-beyond", "{}", NULL, 0, 100);
    expect_open_fail(p, "not a safetensors file (header length 100 runs past "
                     "the end of the 10-byte file: truncated?)",
                     "header length beyond the file");
    p = raw("len-huge", "{}", NULL, 0, UINT64_C(1) << 62);
    expect_open_fail(p, "not a safetensors file (header length "
                     "4611686018427387904 is over the 100000000-byte limit)",
                     "header length over 100 MB");
    p = raw("brace", "[1]", NULL, 0, 0);
    expect_open_fail(p, "not a safetensors file (the header does not start "
                     "with '{')", "header not an object");
    p = raw("zero", "", NULL, 0, 0);
    expect_open_fail(p, "not a safetensors file (the header does not start "
                     "with '{')", "header length 0");

    /* truncated: a valid file cut inside the data */
    snprintf(want, sizeof want, "{%s}", T1);
    p = raw("trunc", want, eight, 5, 0);
    expect_open_fail(p, "corrupt safetensors header: tensor 't' ends at data "
                     "byte 8, past the end of the file's 5 data bytes "
                     "(truncated file?)", "truncated data");
    p = raw("trailing", want, eight, 12, 0);
    expect_open_fail(p, "corrupt safetensors header: data bytes 8..12 at the "
                     "end belong to no tensor", "bytes after the last tensor");

    /* bad JSON */
    static const struct { const char *json, *msg, *what; } bad[] = {
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}",
         "expected ',' or '}' at the end of the JSON", "unclosed object"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},}",
         "expected a string at byte 54 of the JSON", "trailing comma"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}x",
         "bytes after the JSON object at byte 54 of the JSON", "junk after"},
        {"{\"t\" {}}", "expected ':' at byte 5 of the JSON", "missing colon"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}",
         "negative number at byte 29 of the JSON", "negative extent"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}",
         "expected an integer at byte 30 of the JSON", "fractional extent"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[02],\"data_offsets\":[0,8]}}",
         "number with a leading zero at byte 29 of the JSON", "leading zero"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999],"
         "\"data_offsets\":[0,8]}}",
         "number too large at byte 48 of the JSON", "extent over 2^64"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,9]}}",
         "expected ']' (data_offsets has two numbers) at byte 51 of the JSON",
         "three offsets"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"t\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,8]}}",
         "duplicate tensor 't'", "duplicate tensor"},
        {"{\"t\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[2],"
         "\"data_offsets\":[0,8]}}",
         "tensor 't': duplicate field 'dtype' at byte 28 of the JSON",
         "duplicate field"},
        {"{\"t\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}",
         "tensor 't' has no shape", "missing shape"},
        {"{\"t\":{\"dtype\":\"F7\",\"shape\":[2],\"data_offsets\":[0,8]}}",
         "tensor 't': unknown dtype 'F7' at byte 18 of the JSON",
         "unknown dtype"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"u\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
         "tensors 't' and 'u' overlap", "overlapping offsets"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
         "data bytes 0..4 before tensor 't' belong to no tensor", "a hole"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,0]}}",
         "tensor 't': data_offsets [8, 0] run backwards", "backwards offsets"},
        {"{\"t\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[0,8]}}",
         "tensor 't': data_offsets [0, 8] hold 8 bytes, its dtype and shape "
         "need 16", "offsets disagree with shape x dtype"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,2],"
         "\"data_offsets\":[0,8]}}",
         "tensor 't': shape overflows", "shape overflows 64 bits"},
        {"{\"__metadata__\":{\"a\":1},"
         "\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
         "metadata value of 'a' is not a string at byte 21 of the JSON",
         "metadata value not a string"},
        {"{\"__metadata__\":{},\"__metadata__\":{},"
         "\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
         "duplicate key '__metadata__' at byte 34 of the JSON",
         "two metadata objects"},
        {"{\"__metadata__\":{\"a\":\"1\",\"a\":\"2\"},"
         "\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
         "duplicate metadata key 'a'", "duplicate metadata key"},
        {"{\"t\\ud800\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
         "lone surrogate in a \\u escape at byte 9 of the JSON",
         "lone surrogate"},
        {"{\"t\\u0000\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
         "\\u0000 in a string at byte 9 of the JSON", "NUL in a name"},
        {"{\"t\xff\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
         "invalid UTF-8 at byte 3 of the JSON", "invalid UTF-8"},
        {"{\"t\xc0\xaf\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
         "invalid UTF-8 at byte 3 of the JSON", "overlong UTF-8"},
        {"{\"t\n\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
         "control character in a string at byte 3 of the JSON",
         "raw newline in a string"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],"
         "\"x\":tru}}",
         "expected a JSON value at byte 57 of the JSON", "bad literal"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,"
         "15,16,17],\"data_offsets\":[0,8]}}",
         "tensor 't' has more than 16 dimensions at byte 68 of the JSON",
         "17 dimensions"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"u\":[]}",
         "expected '{' (a tensor's description) at byte 58 of the JSON",
         "tensor not an object"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        char name[32], msg[600];
        snprintf(name, sizeof name, "bad%zu", k);
        p = raw(name, bad[k].json, eight, 8, 0);
        snprintf(msg, sizeof msg, "corrupt safetensors header: %s", bad[k].msg);
        expect_open_fail(p, msg, bad[k].what);
    }

    /* nesting: unknown fields are skipped up to a depth limit */
    char deep[400];
    snprintf(deep, sizeof deep, "{\"t\":{\"x\":{\"y\":[1,-2.5e3,true,null,"
             "\"s\",{}]},\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}");
    p = raw("unknown-field", deep, eight, 8, 0);
    st = mm_st_open(p);
    ok(st != NULL, "unknown fields in a tensor are skipped");
    mm_st_close(st);
    char *bomb = malloc(200000);
    strcpy(bomb, "{\"t\":{\"x\":");
    size_t bn = strlen(bomb);
    for (int k = 0; k < 90000; k++) bomb[bn++] = '[';
    bomb[bn] = 0;
    p = raw("deep", bomb, NULL, 0, 0);
    expect_open_fail(p, "corrupt safetensors header: nested too deep at byte "
                     "72 of the JSON", "90000 nested arrays");
    free(bomb);

    /* a dtype the format has but we do not convert: opens, refuses to read */
    p = raw("f4", "{\"t\":{\"dtype\":\"F4\",\"shape\":[4],\"data_offsets\":[0,2]}}",
            eight, 2, 0);
    st = mm_st_open(p);
    ok(st != NULL, "an F4 tensor opens");
    if (st) {
        float g[4];
        ok(mm_st_read(st, "t", MM_F32, -1, NULL, g) == -1, "... but is not read");
        snprintf(want, sizeof want, "%s: tensor 't' is F4, which mmpath cannot "
                 "convert", p);
        is_str(mm_st_error(st), want, "... saying so");
        mm_st_close(st);
    }
    p = raw("f4odd", "{\"t\":{\"dtype\":\"F4\",\"shape\":[3],\"data_offsets\":[0,2]}}",
            eight, 2, 0);
    expect_open_fail(p, "corrupt safetensors header: tensor 't': F4 elements do "
                     "not fill whole bytes", "3 F4 values");

    /* padding and an empty file list are fine */
    p = raw("empty", "{}      ", NULL, 0, 0);
    st = mm_st_open(p);
    ok(st && mm_st_count(st) == 0 && mm_st_meta_count(st) == 0,
       "'{}' padded with spaces: no tensors");
    mm_st_close(st);
    p = raw("nullmeta", "{\"__metadata__\":null}", NULL, 0, 0);
    st = mm_st_open(p);
    ok(st && mm_st_meta_count(st) == 0, "\"__metadata__\": null");
    mm_st_close(st);

    /* the file shrinks after open */
    p = tmp("shrink.safetensors");
    w = mm_st_create(p);
    ok(w && mm_st_add(w, "t", MM_F32, 1, s3, eight) == 0 &&
       mm_st_write_close(w) == 0, "write");
    st = mm_st_open(p);
    ok(st != NULL && truncate(p, 10) == 0, "open, then truncate the file");
    if (st) {
        float g[3];
        ok(mm_st_read(st, "t", MM_F32, 1, s3, g) == -1 &&
           tap_has(mm_st_error(st), "file truncated since it was opened"),
           "read after truncation: an error, not garbage");
        mm_st_close(st);
    }
}

static void test_writer_errors(void)
{
    float x[2] = {1, 2};
    int64_t s2[1] = {2}, neg[1] = {-1};
    const char *p = tmp("werr.safetensors");
    mm_st_writer *w = mm_st_create(p);
    ok(w && mm_st_add(w, "a", MM_F32, 1, s2, x) == 0, "add a");
    ok(mm_st_add(w, "a", MM_F32, 1, s2, x) == -1, "duplicate name: -1");
    ok(mm_st_add(w, "__metadata__", MM_F32, 1, s2, x) == -1, "__metadata__: -1");
    ok(mm_st_add(w, "", MM_F32, 1, s2, x) == -1, "empty name: -1");
    ok(mm_st_add(w, "b", MM_F32, 1, neg, x) == -1, "negative extent: -1");
    ok(mm_st_write_close(w) == -1, "write_close fails after a bad add");
    char want[700];
    snprintf(want, sizeof want, "%s: duplicate tensor 'a'", p);
    is_str(mm_strerror(), want, "with the first error");
    struct stat sb;
    ok(stat(p, &sb) != 0, "and leaves nothing at PATH");
    ok(mm_st_create(tmp("no/such/dir/x.safetensors")) == NULL &&
       tap_has(mm_strerror(), "cannot create"), "create in a missing directory");
    w = mm_st_create(p);
    mm_st_discard(w);
    ok(stat(p, &sb) != 0, "discard leaves nothing");
    mm_st_discard(NULL);
}

/* Mutated and cut copies of ref.safetensors must open or fail cleanly, and
 * whatever opens must read (a crash here is the bug; run under ASan). */
static void test_mutations(void)
{
    char ref[600];
    snprintf(ref, sizeof ref, "%s/ref.safetensors", fix_dir);
    size_t n = 0;
    unsigned char *orig = slurp(ref, &n);
    if (!orig) {
        ok(0, "read %s", ref);
        return;
    }
    unsigned char *b = malloc(n);
    const char *p = tmp("mut.safetensors");
    uint64_t seed = 42;
    int opened = 0, runs = 0;
    double *dst = malloc(64 * sizeof(double));
    for (size_t cut = 0; cut <= n; cut += (cut < 600 ? 1 : 97), runs++) {
        write_bytes(p, orig, cut);
        mm_st *st = mm_st_open(p);
        opened += st != NULL;
        mm_st_close(st);
    }
    for (int k = 0; k < 3000; k++, runs++) {
        memcpy(b, orig, n);
        int flips = 1 + k % 4;
        for (int f = 0; f < flips; f++) {
            seed = seed * 6364136223846793005u + 1442695040888963407u;
            size_t at = (size_t)(seed >> 33) % (k % 2 ? n : 600);
            b[at] = (unsigned char)(seed >> 13);
        }
        write_bytes(p, b, n);
        mm_st *st = mm_st_open(p);
        if (st) {
            opened++;
            for (int i = 0; i < mm_st_count(st); i++)
                if (mm_st_numel(st, i) <= 64)
                    (void)!mm_st_read(st, mm_st_name(st, i), MM_F64, -1, NULL, dst);
        }
        mm_st_close(st);
    }
    ok(1, "%d mutated or cut files: no crash (%d opened)", runs, opened);
    free(dst);
    free(b);
    free(orig);
}

int main(void)
{
    if (!mkdtemp(dir)) return 99;
    const char *top = getenv("top_srcdir");
    snprintf(fix_dir, sizeof fix_dir, "%s/tests/fixtures/safetensors",
             top && *top ? top : ".");
    test_roundtrip();
    test_convert();
    test_ref();
    test_golden();
    test_errors();
    test_writer_errors();
    test_mutations();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) diag("could not remove %s", dir);
    return done_testing();
}
