/* safetensors.c: safetensors files (mm/safetensors.h): a strict parser for
 * the JSON subset a header holds, the layout checks the Python package
 * makes, reads by name with dtype conversion (pread: the file is never read
 * whole) and a deterministic writer. Not a JSON library, and no mmap.
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mm/io.h"
#include "mm/safetensors.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c copies little-endian data as is: port it first"
#endif

// ---- the format's dtypes

/* What a dtype's elements are, for conversion. K_NONE: known to the format
 * (so a file holding one still opens) but not converted by us. */
enum { K_NONE, K_BOOL, K_UINT, K_INT, K_FLOAT };

enum {
    ST_BOOL, ST_U8, ST_I8, ST_U16, ST_I16, ST_U32, ST_I32, ST_U64, ST_I64,
    ST_F16, ST_BF16, ST_F32, ST_F64, ST_F8_E4M3, ST_F8_E5M2,
    ST_F4, ST_F6_E2M3, ST_F6_E3M2, ST_F8_E8M0, ST_F8_E4M3FNUZ,
    ST_F8_E5M2FNUZ, ST_C64, ST_NDTYPES
};

/* The list safetensors 0.8.0 knows; BITS as in its Dtype::bitsize. */
static const struct { const char *name; int bits, kind; } st_dtypes[] = {
    [ST_BOOL] = {"BOOL", 8, K_BOOL},     [ST_U8] = {"U8", 8, K_UINT},
    [ST_I8] = {"I8", 8, K_INT},          [ST_U16] = {"U16", 16, K_UINT},
    [ST_I16] = {"I16", 16, K_INT},       [ST_U32] = {"U32", 32, K_UINT},
    [ST_I32] = {"I32", 32, K_INT},       [ST_U64] = {"U64", 64, K_UINT},
    [ST_I64] = {"I64", 64, K_INT},       [ST_F16] = {"F16", 16, K_FLOAT},
    [ST_BF16] = {"BF16", 16, K_FLOAT},   [ST_F32] = {"F32", 32, K_FLOAT},
    [ST_F64] = {"F64", 64, K_FLOAT},
    [ST_F8_E4M3] = {"F8_E4M3", 8, K_FLOAT},
    [ST_F8_E5M2] = {"F8_E5M2", 8, K_FLOAT},
    [ST_F4] = {"F4", 4, K_NONE},
    [ST_F6_E2M3] = {"F6_E2M3", 6, K_NONE},
    [ST_F6_E3M2] = {"F6_E3M2", 6, K_NONE},
    [ST_F8_E8M0] = {"F8_E8M0", 8, K_NONE},
    [ST_F8_E4M3FNUZ] = {"F8_E4M3FNUZ", 8, K_NONE},
    [ST_F8_E5M2FNUZ] = {"F8_E5M2FNUZ", 8, K_NONE},
    [ST_C64] = {"C64", 64, K_NONE},
};

/* mm_dtype -> the format's dtype */
static const int st_of_mm[MM_DTYPE_COUNT] = {
    [MM_F32] = ST_F32, [MM_F64] = ST_F64, [MM_F16] = ST_F16,
    [MM_U8] = ST_U8, [MM_I32] = ST_I32, [MM_I64] = ST_I64,
};

static int st_dtype_lookup(const char *s)
{
    for (int i = 0; i < ST_NDTYPES; i++)
        if (strcmp(s, st_dtypes[i].name) == 0) return i;
    return -1;
}

/* Valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF)? Returns the
 * length of the sequence at P (1..4), or 0 when it is not valid. */
static int utf8_seq(const unsigned char *p, size_t n)
{
    unsigned c = p[0];
    if (c < 0x80) return 1;
    int len;
    uint32_t cp, min;
    if (c >= 0xc2 && c <= 0xdf) { len = 2; cp = c & 0x1f; min = 0x80; }
    else if (c >= 0xe0 && c <= 0xef) { len = 3; cp = c & 0x0f; min = 0x800; }
    else if (c >= 0xf0 && c <= 0xf4) { len = 4; cp = c & 0x07; min = 0x10000; }
    else return 0;
    if ((size_t)len > n) return 0;
    for (int k = 1; k < len; k++) {
        if ((p[k] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (p[k] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return len;
}

static int utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    while (n > 0) {
        int k = utf8_seq(p, n);
        if (!k) return 0;
        p += k;
        n -= (size_t)k;
    }
    return 1;
}

// ---- the reader's handle

typedef struct {
    char *name;
    int dt;                  /* ST_* */
    int ndim;
    int64_t shape[MM_ST_MAX_DIM];
    uint64_t begin, end;     /* data_offsets, relative to the data buffer */
    int seen;                /* parser: which fields were present */
} st_tensor;

typedef struct { char *key, *val; } st_kv;

static int cmp_kv(const void *a, const void *b)
{
    return strcmp(((const st_kv *)a)->key, ((const st_kv *)b)->key);
}

struct mm_st {
    char *path;
    int fd;
    uint64_t data_start;     /* 8 + header length */
    uint64_t data_len;
    st_tensor *t;            /* sorted by name */
    int n, cap;
    st_kv *meta;             /* sorted by key */
    int nmeta, mcap;
    int have_meta;
    char err[1024];
};

static int st_fail(mm_st *st, const char *fmt, ...) MM_PRINTF(2, 3);
static int st_fail(mm_st *st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->err, sizeof st->err, fmt, ap);
    va_end(ap);
    mm__set_error("%s", st->err);
    return -1;
}

static void st_free(mm_st *st)
{
    if (!st) return;
    for (int i = 0; i < st->n; i++) free(st->t[i].name);
    free(st->t);
    for (int i = 0; i < st->nmeta; i++) {
        free(st->meta[i].key);
        free(st->meta[i].val);
    }
    free(st->meta);
    free(st->path);
    free(st);
}

// ---- JSON: exactly what a header may hold

/* Nesting limit: a header needs 3 levels; unknown fields of a tensor are
 * skipped, nested at most this deep, so a hostile header cannot blow the
 * stack. */
#define JSON_MAX_DEPTH 64

typedef struct {
    const unsigned char *s;
    size_t n, i;
    int depth;
    char err[256];
} jp;

static int jfail(jp *p, const char *fmt, ...) MM_PRINTF(2, 3);
static int jfail(jp *p, const char *fmt, ...)
{
    if (p->err[0]) return -1;
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (p->i >= p->n)
        snprintf(p->err, sizeof p->err, "%s at the end of the JSON", msg);
    else
        snprintf(p->err, sizeof p->err, "%s at byte %zu of the JSON", msg,
                 p->i);
    return -1;
}

static int jpeek(jp *p)
{
    while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' ||
                           p->s[p->i] == '\n' || p->s[p->i] == '\r'))
        p->i++;
    return p->i < p->n ? p->s[p->i] : -1;
}

static int jexpect(jp *p, int c, const char *what)
{
    if (jpeek(p) != c) return jfail(p, "expected %s", what);
    p->i++;
    return 0;
}

static int hex4(jp *p, uint32_t *v)
{
    *v = 0;
    for (int k = 0; k < 4; k++, p->i++) {
        if (p->i >= p->n) return jfail(p, "truncated \\u escape");
        int c = p->s[p->i], d;
        if (c >= '0' && c <= '9') d = c - '0';
        else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
        else return jfail(p, "bad \\u escape");
        *v = *v << 4 | (uint32_t)d;
    }
    return 0;
}

/* A string into *OUT (NUL-terminated, malloc'd), or skipped when OUT is
 * NULL. Refuses raw control characters, invalid UTF-8, lone surrogates and
 * \u0000 (names are C strings). */
static int jstring(jp *p, char **out)
{
    if (jexpect(p, '"', "a string")) return -1;
    size_t len = 0, cap = 32;
    char *b = out ? mm_malloc(cap) : NULL;
    for (;;) {
        if (p->i >= p->n) {
            free(b);
            return jfail(p, "unterminated string");
        }
        unsigned char c = p->s[p->i];
        unsigned char enc[4];
        int k = 1;
        if (c == '"') {
            p->i++;
            break;
        } else if (c < 0x20) {
            free(b);
            return jfail(p, "control character in a string");
        } else if (c == '\\') {
            if (++p->i >= p->n) {
                free(b);
                return jfail(p, "unterminated string");
            }
            c = p->s[p->i++];
            switch (c) {
            case '"': case '\\': case '/': enc[0] = c; break;
            case 'b': enc[0] = '\b'; break;
            case 'f': enc[0] = '\f'; break;
            case 'n': enc[0] = '\n'; break;
            case 'r': enc[0] = '\r'; break;
            case 't': enc[0] = '\t'; break;
            case 'u': {
                uint32_t cp, lo;
                if (hex4(p, &cp)) { free(b); return -1; }
                if (cp >= 0xdc00 && cp <= 0xdfff) {
                    free(b);
                    return jfail(p, "lone surrogate in a \\u escape");
                }
                if (cp >= 0xd800 && cp <= 0xdbff) {
                    if (p->i + 1 >= p->n || p->s[p->i] != '\\' ||
                        p->s[p->i + 1] != 'u') {
                        free(b);
                        return jfail(p, "lone surrogate in a \\u escape");
                    }
                    p->i += 2;
                    if (hex4(p, &lo)) { free(b); return -1; }
                    if (lo < 0xdc00 || lo > 0xdfff) {
                        free(b);
                        return jfail(p, "lone surrogate in a \\u escape");
                    }
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                }
                if (cp == 0) {
                    free(b);
                    return jfail(p, "\\u0000 in a string");
                }
                if (cp < 0x80) {
                    enc[0] = (unsigned char)cp;
                } else if (cp < 0x800) {
                    enc[0] = (unsigned char)(0xc0 | cp >> 6);
                    enc[1] = (unsigned char)(0x80 | (cp & 0x3f));
                    k = 2;
                } else if (cp < 0x10000) {
                    enc[0] = (unsigned char)(0xe0 | cp >> 12);
                    enc[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
                    enc[2] = (unsigned char)(0x80 | (cp & 0x3f));
                    k = 3;
                } else {
                    enc[0] = (unsigned char)(0xf0 | cp >> 18);
                    enc[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3f));
                    enc[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
                    enc[3] = (unsigned char)(0x80 | (cp & 0x3f));
                    k = 4;
                }
                break;
            }
            default:
                p->i--;
                free(b);
                return jfail(p, "bad escape '\\%c'", c);
            }
        } else {
            k = utf8_seq(p->s + p->i, p->n - p->i);
            if (!k) {
                free(b);
                return jfail(p, "invalid UTF-8");
            }
            memcpy(enc, p->s + p->i, (size_t)k);
            p->i += (size_t)k;
        }
        if (b) {
            if (len + (size_t)k + 1 > cap) {
                cap *= 2;
                b = mm_realloc(b, cap);
            }
            memcpy(b + len, enc, (size_t)k);
            len += (size_t)k;
        }
    }
    if (b) {
        b[len] = 0;
        *out = b;
    }
    return 0;
}

/* A non-negative integer that fits in 64 bits (no sign, fraction or
 * exponent: shapes and offsets are counts). */
static int juint(jp *p, uint64_t *v)
{
    int c = jpeek(p);
    if (c == '-') return jfail(p, "negative number");
    if (c < '0' || c > '9') return jfail(p, "expected a non-negative integer");
    if (c == '0' && p->i + 1 < p->n && p->s[p->i + 1] >= '0' &&
        p->s[p->i + 1] <= '9')
        return jfail(p, "number with a leading zero");
    uint64_t x = 0;
    while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') {
        unsigned d = p->s[p->i] - '0';
        if (x > (UINT64_MAX - d) / 10) return jfail(p, "number too large");
        x = x * 10 + d;
        p->i++;
    }
    if (p->i < p->n && (p->s[p->i] == '.' || p->s[p->i] == 'e' ||
                        p->s[p->i] == 'E'))
        return jfail(p, "expected an integer");
    *v = x;
    return 0;
}

/* Skip any JSON value (unknown fields of a tensor). */
static int jskip(jp *p)
{
    int c = jpeek(p);
    if (c == '"') return jstring(p, NULL);
    if (c == '{' || c == '[') {
        int close = c == '{' ? '}' : ']';
        if (++p->depth > JSON_MAX_DEPTH) return jfail(p, "nested too deep");
        p->i++;
        if (jpeek(p) == close) {
            p->i++;
            p->depth--;
            return 0;
        }
        for (;;) {
            if (c == '{') {
                if (jstring(p, NULL) || jexpect(p, ':', "':'")) return -1;
            }
            if (jskip(p)) return -1;
            int d = jpeek(p);
            if (d == ',') {
                p->i++;
                continue;
            }
            if (d == close) {
                p->i++;
                break;
            }
            return jfail(p, "expected ',' or '%c'", close);
        }
        p->depth--;
        return 0;
    }
    if (c == '-' || (c >= '0' && c <= '9')) { /* RFC 8259 number */
        const unsigned char *s = p->s;
        if (c == '-') p->i++;
        if (p->i >= p->n || s[p->i] < '0' || s[p->i] > '9')
            return jfail(p, "bad number");
        if (s[p->i] == '0') p->i++;
        else while (p->i < p->n && s[p->i] >= '0' && s[p->i] <= '9') p->i++;
        if (p->i < p->n && s[p->i] == '.') {
            p->i++;
            if (p->i >= p->n || s[p->i] < '0' || s[p->i] > '9')
                return jfail(p, "bad number");
            while (p->i < p->n && s[p->i] >= '0' && s[p->i] <= '9') p->i++;
        }
        if (p->i < p->n && (s[p->i] == 'e' || s[p->i] == 'E')) {
            p->i++;
            if (p->i < p->n && (s[p->i] == '+' || s[p->i] == '-')) p->i++;
            if (p->i >= p->n || s[p->i] < '0' || s[p->i] > '9')
                return jfail(p, "bad number");
            while (p->i < p->n && s[p->i] >= '0' && s[p->i] <= '9') p->i++;
        }
        return 0;
    }
    static const char *const words[] = {"true", "false", "null"};
    for (int k = 0; k < 3; k++) {
        size_t len = strlen(words[k]);
        if (p->n - p->i >= len && memcmp(p->s + p->i, words[k], len) == 0) {
            p->i += len;
            return 0;
        }
    }
    return jfail(p, "expected a JSON value");
}

/* "__metadata__": {str: str} (or null). */
static int parse_meta(jp *p, mm_st *st)
{
    if (st->have_meta) return jfail(p, "duplicate key '__metadata__'");
    st->have_meta = 1;
    if (jpeek(p) == 'n') return jskip(p);
    if (jexpect(p, '{', "'{' or null after \"__metadata__\"")) return -1;
    if (jpeek(p) == '}') {
        p->i++;
        return 0;
    }
    for (;;) {
        char *k = NULL, *v = NULL;
        if (jstring(p, &k)) return -1;
        if (jexpect(p, ':', "':'") ||
            (jpeek(p) != '"' && jfail(p, "metadata value of '%s' is not a "
                                         "string", k)) ||
            jstring(p, &v)) {
            free(k);
            return -1;
        }
        if (st->nmeta == st->mcap) {
            st->mcap = st->mcap ? 2 * st->mcap : 8;
            st->meta = mm_realloc(st->meta, (size_t)st->mcap * sizeof *st->meta);
        }
        st->meta[st->nmeta].key = k;
        st->meta[st->nmeta++].val = v;
        int c = jpeek(p);
        if (c == ',') {
            p->i++;
            continue;
        }
        if (c == '}') {
            p->i++;
            return 0;
        }
        return jfail(p, "expected ',' or '}'");
    }
}

enum { F_DTYPE = 1, F_SHAPE = 2, F_OFFSETS = 4 };

/* NAME: {"dtype": "F32", "shape": [..], "data_offsets": [b, e]} */
static int parse_tensor(jp *p, st_tensor *t)
{
    if (jexpect(p, '{', "'{' (a tensor's description)")) return -1;
    p->depth++; /* the top object is depth 1 */
    if (jpeek(p) == '}') {
        p->i++;
        p->depth--;
        return 0;
    }
    for (;;) {
        char *key = NULL;
        if (jstring(p, &key) || jexpect(p, ':', "':'")) {
            free(key);
            return -1;
        }
        int field = strcmp(key, "dtype") == 0 ? F_DTYPE
                  : strcmp(key, "shape") == 0 ? F_SHAPE
                  : strcmp(key, "data_offsets") == 0 ? F_OFFSETS : 0;
        if (field && (t->seen & field)) {
            jfail(p, "tensor '%s': duplicate field '%s'", t->name, key);
            free(key);
            return -1;
        }
        free(key);
        t->seen |= field;
        if (field == F_DTYPE) {
            char *s = NULL;
            if (jstring(p, &s)) return -1;
            t->dt = st_dtype_lookup(s);
            if (t->dt < 0) {
                jfail(p, "tensor '%s': unknown dtype '%.40s'", t->name, s);
                free(s);
                return -1;
            }
            free(s);
        } else if (field == F_SHAPE) {
            if (jexpect(p, '[', "'[' (a shape)")) return -1;
            t->ndim = 0;
            if (jpeek(p) == ']') {
                p->i++;
            } else {
                for (;;) {
                    uint64_t v;
                    if (t->ndim == MM_ST_MAX_DIM)
                        return jfail(p, "tensor '%s' has more than %d "
                                     "dimensions", t->name, MM_ST_MAX_DIM);
                    if (juint(p, &v)) return -1;
                    if (v > INT64_MAX)
                        return jfail(p, "tensor '%s': extent too large",
                                     t->name);
                    t->shape[t->ndim++] = (int64_t)v;
                    int c = jpeek(p);
                    if (c == ',') {
                        p->i++;
                        continue;
                    }
                    if (c == ']') {
                        p->i++;
                        break;
                    }
                    return jfail(p, "expected ',' or ']'");
                }
            }
        } else if (field == F_OFFSETS) {
            if (jexpect(p, '[', "'[' (data_offsets)") || juint(p, &t->begin) ||
                jexpect(p, ',', "',' (data_offsets has two numbers)") ||
                juint(p, &t->end) ||
                jexpect(p, ']', "']' (data_offsets has two numbers)"))
                return -1;
        } else if (jskip(p)) {
            return -1;
        }
        int c = jpeek(p);
        if (c == ',') {
            p->i++;
            continue;
        }
        if (c == '}') {
            p->i++;
            break;
        }
        return jfail(p, "expected ',' or '}'");
    }
    p->depth--;
    return 0;
}

static int parse_header(jp *p, mm_st *st)
{
    if (jexpect(p, '{', "'{'")) return -1;
    p->depth = 1;
    if (jpeek(p) == '}') {
        p->i++;
    } else {
        for (;;) {
            char *key = NULL;
            if (jstring(p, &key) || jexpect(p, ':', "':'")) {
                free(key);
                return -1;
            }
            if (strcmp(key, "__metadata__") == 0) {
                free(key);
                if (parse_meta(p, st)) return -1;
            } else {
                if (st->n == st->cap) {
                    st->cap = st->cap ? 2 * st->cap : 16;
                    st->t = mm_realloc(st->t, (size_t)st->cap * sizeof *st->t);
                }
                st_tensor *t = &st->t[st->n++];
                memset(t, 0, sizeof *t);
                t->name = key;
                if (parse_tensor(p, t)) return -1;
                if (t->seen != (F_DTYPE | F_SHAPE | F_OFFSETS)) {
                    const char *what = !(t->seen & F_DTYPE) ? "dtype"
                                     : !(t->seen & F_SHAPE) ? "shape"
                                     : "data_offsets";
                    snprintf(p->err, sizeof p->err, "tensor '%s' has no %s",
                             t->name, what);
                    return -1;
                }
            }
            int c = jpeek(p);
            if (c == ',') {
                p->i++;
                continue;
            }
            if (c == '}') {
                p->i++;
                break;
            }
            return jfail(p, "expected ',' or '}'");
        }
    }
    if (jpeek(p) != -1) return jfail(p, "bytes after the JSON object");
    return 0;
}

// ---- layout checks

static int cmp_name(const void *a, const void *b)
{
    return strcmp(((const st_tensor *)a)->name, ((const st_tensor *)b)->name);
}

/* Bytes of tensor T from shape x dtype; -1 on overflow or a bit count that
 * is not whole bytes. */
static int tensor_nbytes(const st_tensor *t, uint64_t *nbytes)
{
    uint64_t n = 1;
    for (int d = 0; d < t->ndim; d++) {
        uint64_t e = (uint64_t)t->shape[d];
        if (e && n > UINT64_MAX / e) return -1;
        n *= e;
    }
    uint64_t bits = (uint64_t)st_dtypes[t->dt].bits;
    if (n > UINT64_MAX / bits) return -1;
    if (n * bits % 8) return -2;
    *nbytes = n * bits / 8;
    return 0;
}

static int cmp_offset(const void *a, const void *b)
{
    const st_tensor *x = *(const st_tensor *const *)a,
                    *y = *(const st_tensor *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* Names unique; each tensor's bytes match its shape and dtype; sorted by
 * offset, tensors tile [0, data_len) exactly. ERR gets the reason. */
static int check_layout(mm_st *st, char *err, size_t errn)
{
    if (st->n) qsort(st->t, (size_t)st->n, sizeof *st->t, cmp_name);
    for (int i = 1; i < st->n; i++)
        if (strcmp(st->t[i - 1].name, st->t[i].name) == 0) {
            snprintf(err, errn, "duplicate tensor '%s'", st->t[i].name);
            return -1;
        }
    if (st->nmeta) qsort(st->meta, (size_t)st->nmeta, sizeof *st->meta, cmp_kv);
    for (int i = 1; i < st->nmeta; i++)
        if (strcmp(st->meta[i - 1].key, st->meta[i].key) == 0) {
            snprintf(err, errn, "duplicate metadata key '%s'", st->meta[i].key);
            return -1;
        }
    const st_tensor **o = mm_malloc((size_t)(st->n ? st->n : 1) * sizeof *o);
    for (int i = 0; i < st->n; i++) o[i] = &st->t[i];
    if (st->n) qsort(o, (size_t)st->n, sizeof *o, cmp_offset);
    uint64_t at = 0;
    int ret = -1;
    for (int i = 0; i < st->n; i++) {
        const st_tensor *t = o[i];
        uint64_t nb;
        if (t->end < t->begin) {
            snprintf(err, errn, "tensor '%s': data_offsets [%" PRIu64 ", %"
                     PRIu64 "] run backwards", t->name, t->begin, t->end);
            goto out;
        }
        if (t->begin < at) {
            snprintf(err, errn, "tensors '%s' and '%s' overlap", o[i - 1]->name,
                     t->name);
            goto out;
        }
        if (t->begin > at) {
            snprintf(err, errn, "data bytes %" PRIu64 "..%" PRIu64 " before "
                     "tensor '%s' belong to no tensor", at, t->begin, t->name);
            goto out;
        }
        int r = tensor_nbytes(t, &nb);
        if (r == -1) {
            snprintf(err, errn, "tensor '%s': shape overflows", t->name);
            goto out;
        }
        if (r == -2) {
            snprintf(err, errn, "tensor '%s': %s elements do not fill whole "
                     "bytes", t->name, st_dtypes[t->dt].name);
            goto out;
        }
        if (t->end - t->begin != nb) {
            snprintf(err, errn, "tensor '%s': data_offsets [%" PRIu64 ", %"
                     PRIu64 "] hold %" PRIu64 " bytes, its dtype and shape "
                     "need %" PRIu64, t->name, t->begin, t->end,
                     t->end - t->begin, nb);
            goto out;
        }
        if (t->end > st->data_len) {
            snprintf(err, errn, "tensor '%s' ends at data byte %" PRIu64
                     ", past the end of the file's %" PRIu64 " data bytes "
                     "(truncated file?)", t->name, t->end, st->data_len);
            goto out;
        }
        at = t->end;
    }
    if (at != st->data_len) {
        snprintf(err, errn, "data bytes %" PRIu64 "..%" PRIu64 " at the end "
                 "belong to no tensor", at, st->data_len);
        goto out;
    }
    ret = 0;
out:
    free(o);
    return ret;
}

// ---- opening

static int pread_full(int fd, void *buf, size_t n, uint64_t off)
{
    char *p = buf;
    while (n > 0) {
        ssize_t r = pread(fd, p, n, (off_t)off);
        if (r < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (r == 0) {
            errno = 0; /* end of file: the caller says "truncated" */
            return -1;
        }
        p += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

mm_st *mm_st_open(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        mm__set_error("%s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        mm__set_error("%s: %s", path, strerror(errno));
        close(fd);
        return NULL;
    }
    if (S_ISDIR(sb.st_mode)) {
        mm__set_error("%s: is a directory", path);
        close(fd);
        return NULL;
    }
    if (!S_ISREG(sb.st_mode)) {
        mm__set_error("%s: not a regular file (safetensors are read at "
                      "offsets)", path);
        close(fd);
        return NULL;
    }
    uint64_t fsize = (uint64_t)sb.st_size;
    unsigned char len8[8];
    if (fsize < 8) {
        mm__set_error("%s: not a safetensors file (%" PRIu64 " bytes, "
                      "shorter than the 8-byte header length)", path, fsize);
        close(fd);
        return NULL;
    }
    if (pread_full(fd, len8, 8, 0) != 0) {
        mm__set_error("%s: read error: %s", path,
                      errno ? strerror(errno) : "file shrank");
        close(fd);
        return NULL;
    }
    uint64_t hn = 0;
    for (int k = 7; k >= 0; k--) hn = hn << 8 | len8[k];
    if (hn > MM_ST_HEADER_MAX) {
        mm__set_error("%s: not a safetensors file (header length %" PRIu64
                      " is over the %u-byte limit)", path, hn,
                      MM_ST_HEADER_MAX);
        close(fd);
        return NULL;
    }
    if (hn > fsize - 8) {
        mm__set_error("%s: not a safetensors file (header length %" PRIu64
                      " runs past the end of the %" PRIu64 "-byte file: "
                      "truncated?)", path, hn, fsize);
        close(fd);
        return NULL;
    }
    unsigned char *h = mm_malloc(hn ? (size_t)hn : 1);
    if (hn && pread_full(fd, h, (size_t)hn, 8) != 0) {
        mm__set_error("%s: read error: %s", path,
                      errno ? strerror(errno) : "file shrank");
        free(h);
        close(fd);
        return NULL;
    }
    if (hn == 0 || h[0] != '{') {
        mm__set_error("%s: not a safetensors file (the header does not start "
                      "with '{')", path);
        free(h);
        close(fd);
        return NULL;
    }
    mm_st *st = mm_calloc(1, sizeof *st);
    st->path = mm_strdup(path);
    st->fd = fd;
    st->data_start = 8 + hn;
    st->data_len = fsize - 8 - hn;
    jp p = {.s = h, .n = (size_t)hn};
    char err[512];
    if (parse_header(&p, st) != 0) {
        mm__set_error("%s: corrupt safetensors header: %s", path, p.err);
        goto fail;
    }
    if (check_layout(st, err, sizeof err) != 0) {
        mm__set_error("%s: corrupt safetensors header: %s", path, err);
        goto fail;
    }
    free(h);
    return st;
fail:
    free(h);
    close(fd);
    st_free(st);
    return NULL;
}

void mm_st_close(mm_st *st)
{
    if (!st) return;
    close(st->fd);
    st_free(st);
}

int mm_st_count(const mm_st *st) { return st->n; }

const char *mm_st_name(const mm_st *st, int i)
{
    return i >= 0 && i < st->n ? st->t[i].name : NULL;
}

int mm_st_find(const mm_st *st, const char *name)
{
    int lo = 0, hi = st->n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2, c = strcmp(name, st->t[mid].name);
        if (c == 0) return mid;
        if (c < 0) hi = mid - 1;
        else lo = mid + 1;
    }
    return -1;
}

int mm_st_info(mm_st *st, const char *name, const char **dtype, int *ndim,
               int64_t *shape)
{
    int i = mm_st_find(st, name);
    if (i < 0) return st_fail(st, "%s: no tensor '%s'", st->path, name);
    const st_tensor *t = &st->t[i];
    if (dtype) *dtype = st_dtypes[t->dt].name;
    if (ndim) *ndim = t->ndim;
    if (shape) memcpy(shape, t->shape, (size_t)t->ndim * sizeof *shape);
    return 0;
}

int64_t mm_st_numel(const mm_st *st, int i)
{
    if (i < 0 || i >= st->n) return -1;
    int64_t n = 1;
    for (int d = 0; d < st->t[i].ndim; d++) n *= st->t[i].shape[d];
    return n; /* fits: check_layout bounded the byte count by the file */
}

const char *mm_st_error(const mm_st *st) { return st->err; }
int mm_st_meta_count(const mm_st *st) { return st->nmeta; }

const char *mm_st_meta_key(const mm_st *st, int i)
{
    return i >= 0 && i < st->nmeta ? st->meta[i].key : NULL;
}

const char *mm_st_metadata(const mm_st *st, const char *key)
{
    st_kv k = {.key = (char *)key}, *f;
    f = st->nmeta ? bsearch(&k, st->meta, (size_t)st->nmeta, sizeof k, cmp_kv)
                  : NULL;
    return f ? f->val : NULL;
}

// ---- reading tensors

static void shape_str(char *buf, size_t n, int ndim, const int64_t *shape)
{
    size_t at = (size_t)snprintf(buf, n, "[");
    for (int d = 0; d < ndim && at < n; d++)
        at += (size_t)snprintf(buf + at, n - at, "%s%" PRId64, d ? ", " : "",
                               shape[d]);
    if (at < n) snprintf(buf + at, n - at, "]");
}

/* OCP FP8 E4M3 ("fn": no infinities; S.1111.111 is NaN), bias 7. */
static float f8_e4m3_to_f32(uint8_t b)
{
    int sign = b >> 7, e = (b >> 3) & 0xf, m = b & 7;
    float v;
    if (e == 0xf && m == 7) v = NAN;
    else if (e == 0) v = ldexpf((float)m, -9);              /* m/8 * 2^-6 */
    else v = ldexpf((float)(8 + m), e - 10);                /* 1.m * 2^(e-7) */
    return sign ? -v : v;
}

static double load_float(int dt, const unsigned char *p)
{
    uint16_t h;
    uint32_t u;
    float f;
    double d;
    switch (dt) {
    case ST_F16:
        memcpy(&h, p, 2);
        return mm_f16_to_f32(h);
    case ST_BF16:
        memcpy(&h, p, 2);
        u = (uint32_t)h << 16;
        memcpy(&f, &u, 4);
        return f;
    case ST_F32:
        memcpy(&f, p, 4);
        return f;
    case ST_F64:
        memcpy(&d, p, 8);
        return d;
    case ST_F8_E5M2: /* the top byte of an IEEE half */
        return mm_f16_to_f32((uint16_t)(p[0] << 8));
    case ST_F8_E4M3:
        return f8_e4m3_to_f32(p[0]);
    }
    MM_ASSERT(0);
    return 0;
}

/* An integer element: *BIG set when it is a U64 above INT64_MAX (then *U
 * holds it), else *S. */
static void load_int(int dt, const unsigned char *p, int64_t *s, uint64_t *u,
                     int *big)
{
    *big = 0;
    switch (dt) {
    case ST_BOOL: *s = p[0] != 0; return;
    case ST_U8: *s = p[0]; return;
    case ST_I8: *s = (int8_t)p[0]; return;
    case ST_U16: { uint16_t v; memcpy(&v, p, 2); *s = v; return; }
    case ST_I16: { int16_t v; memcpy(&v, p, 2); *s = v; return; }
    case ST_U32: { uint32_t v; memcpy(&v, p, 4); *s = v; return; }
    case ST_I32: { int32_t v; memcpy(&v, p, 4); *s = v; return; }
    case ST_I64: { int64_t v; memcpy(&v, p, 8); *s = v; return; }
    case ST_U64: {
        uint64_t v;
        memcpy(&v, p, 8);
        if (v > INT64_MAX) {
            *big = 1;
            *u = v;
        } else {
            *s = (int64_t)v;
        }
        return;
    }
    }
    MM_ASSERT(0);
}

static void store_float(mm_dtype want, void *dst, size_t i, double v)
{
    if (want == MM_F32) {
        float f = (float)v;
        memcpy((char *)dst + 4 * i, &f, 4);
    } else if (want == MM_F64) {
        memcpy((char *)dst + 8 * i, &v, 8);
    } else {
        /* via float: F64 -> F16 rounds twice, which can differ from one
         * rounding in the last bit of rare halfway cases */
        uint16_t h = mm_f32_to_f16((float)v);
        memcpy((char *)dst + 2 * i, &h, 2);
    }
}

/* Convert N elements of dtype SDT at SRC into DST (as WANT) from element
 * FIRST on. @return -1 - (index within the chunk) of the first element
 * out of WANT's range, or 0. */
static int64_t convert(int sdt, const unsigned char *src, size_t n,
                       mm_dtype want, void *dst, size_t first)
{
    size_t es = (size_t)st_dtypes[sdt].bits / 8;
    int kind = st_dtypes[sdt].kind;
    for (size_t i = 0; i < n; i++) {
        const unsigned char *p = src + i * es;
        size_t j = first + i;
        if (kind == K_FLOAT) {
            store_float(want, dst, j, load_float(sdt, p));
            continue;
        }
        int64_t s = 0;
        uint64_t u = 0;
        int big;
        load_int(sdt, p, &s, &u, &big);
        switch (want) {
        case MM_F32: case MM_F64: case MM_F16:
            store_float(want, dst, j, big ? (double)u : (double)s);
            break;
        case MM_I64:
            if (big) return -1 - (int64_t)i;
            memcpy((char *)dst + 8 * j, &s, 8);
            break;
        case MM_I32: {
            if (big || s < INT32_MIN || s > INT32_MAX) return -1 - (int64_t)i;
            int32_t v = (int32_t)s;
            memcpy((char *)dst + 4 * j, &v, 4);
            break;
        }
        case MM_U8:
            if (big || s < 0 || s > 255) return -1 - (int64_t)i;
            ((unsigned char *)dst)[j] = (unsigned char)s;
            break;
        default:
            MM_ASSERT(0);
        }
    }
    return 0;
}

int mm_st_read(mm_st *st, const char *name, mm_dtype want, int ndim,
               const int64_t *shape, void *dst)
{
    MM_ASSERT((unsigned)want < MM_DTYPE_COUNT && (ndim <= 0 || shape));
    int i = mm_st_find(st, name);
    if (i < 0) return st_fail(st, "%s: no tensor '%s'", st->path, name);
    const st_tensor *t = &st->t[i];
    int same = ndim < 0 || ndim == t->ndim;
    for (int d = 0; same && d < ndim; d++) same = shape[d] == t->shape[d];
    if (!same) {
        char has[512], exp[512];
        shape_str(has, sizeof has, t->ndim, t->shape);
        shape_str(exp, sizeof exp, ndim, shape);
        return st_fail(st, "%s: tensor '%s' has shape %s, expected %s",
                       st->path, name, has, exp);
    }
    int kind = st_dtypes[t->dt].kind;
    int want_float = want == MM_F32 || want == MM_F64 || want == MM_F16;
    if (kind == K_NONE)
        return st_fail(st, "%s: tensor '%s' is %s, which mmpath cannot "
                       "convert", st->path, name, st_dtypes[t->dt].name);
    if (kind == K_FLOAT && !want_float)
        return st_fail(st, "%s: tensor '%s' is %s, cannot load it as %s "
                       "(would truncate)", st->path, name,
                       st_dtypes[t->dt].name, mm_dtype_name(want));
    uint64_t nbytes = t->end - t->begin, off = st->data_start + t->begin;
    if (st_of_mm[want] == t->dt) {
        if (pread_full(st->fd, dst, (size_t)nbytes, off) != 0)
            return st_fail(st, "%s: tensor '%s': %s", st->path, name,
                           errno ? strerror(errno) : "file truncated since "
                           "it was opened");
        return 0;
    }
    size_t es = (size_t)st_dtypes[t->dt].bits / 8;
    size_t chunk = (size_t)1 << 20; /* bytes of source per pread */
    if (chunk > nbytes) chunk = (size_t)nbytes;
    chunk -= chunk % es;
    unsigned char *buf = mm_malloc(chunk ? chunk : 1);
    uint64_t done = 0; /* source bytes */
    int ret = 0;
    while (done < nbytes) {
        size_t k = nbytes - done < chunk ? (size_t)(nbytes - done) : chunk;
        if (pread_full(st->fd, buf, k, off + done) != 0) {
            ret = st_fail(st, "%s: tensor '%s': %s", st->path, name,
                          errno ? strerror(errno) : "file truncated since "
                          "it was opened");
            break;
        }
        int64_t r = convert(t->dt, buf, k / es, want, dst, done / es);
        if (r < 0) {
            size_t at = (size_t)(-1 - r);
            int64_t s = 0;
            uint64_t u = 0;
            int big;
            load_int(t->dt, buf + at * es, &s, &u, &big);
            char v[32];
            if (big) snprintf(v, sizeof v, "%" PRIu64, u);
            else snprintf(v, sizeof v, "%" PRId64, s);
            ret = st_fail(st, "%s: tensor '%s': element %" PRIu64 " (%s) "
                          "does not fit %s", st->path, name,
                          done / es + at, v, mm_dtype_name(want));
            break;
        }
        done += k;
    }
    free(buf);
    return ret;
}

// ---- writing

typedef struct {
    char *name;
    mm_dtype dt;
    int ndim;
    int64_t shape[MM_ST_MAX_DIM];
    const void *data;
    uint64_t nbytes;
} st_out;

struct mm_st_writer {
    mm_io *io;
    char *path;
    st_out *t;
    int n, cap;
    st_kv *meta;
    int nmeta, mcap;
    char err[1024];
};

static int w_fail(mm_st_writer *w, const char *fmt, ...) MM_PRINTF(2, 3);
static int w_fail(mm_st_writer *w, const char *fmt, ...)
{
    if (w->err[0]) return -1; /* first error wins */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->err, sizeof w->err, fmt, ap);
    va_end(ap);
    mm__set_error("%s", w->err);
    return -1;
}

mm_st_writer *mm_st_create(const char *path)
{
    mm_io *io = mm_io_open(path, "w");
    if (!io) return NULL;
    mm_st_writer *w = mm_calloc(1, sizeof *w);
    w->io = io;
    w->path = mm_strdup(path);
    return w;
}

int mm_st_add(mm_st_writer *w, const char *name, mm_dtype dt, int ndim,
              const int64_t *shape, const void *data)
{
    MM_ASSERT((unsigned)dt < MM_DTYPE_COUNT);
    if (!name || !*name || strcmp(name, "__metadata__") == 0 ||
        !utf8_valid(name))
        return w_fail(w, "%s: bad tensor name '%s'", w->path,
                      name ? name : "(null)");
    if (ndim < 0 || ndim > MM_ST_MAX_DIM)
        return w_fail(w, "%s: tensor '%s': %d dimensions (0..%d allowed)",
                      w->path, name, ndim, MM_ST_MAX_DIM);
    for (int i = 0; i < w->n; i++)
        if (strcmp(w->t[i].name, name) == 0)
            return w_fail(w, "%s: duplicate tensor '%s'", w->path, name);
    uint64_t n = mm_dtype_size(dt);
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0)
            return w_fail(w, "%s: tensor '%s': negative extent", w->path,
                          name);
        if (shape[d] && n > (uint64_t)INT64_MAX / (uint64_t)shape[d])
            return w_fail(w, "%s: tensor '%s': shape overflows", w->path,
                          name);
        n *= (uint64_t)shape[d];
    }
    if (n && !data)
        return w_fail(w, "%s: tensor '%s': no data", w->path, name);
    if (w->n == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 16;
        w->t = mm_realloc(w->t, (size_t)w->cap * sizeof *w->t);
    }
    st_out *t = &w->t[w->n++];
    memset(t, 0, sizeof *t);
    t->name = mm_strdup(name);
    t->dt = dt;
    t->ndim = ndim;
    if (ndim) memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
    t->data = data;
    t->nbytes = n;
    return 0;
}

int mm_st_set_metadata(mm_st_writer *w, const char *key, const char *value)
{
    if (!key || !*key || !value || !utf8_valid(key) || !utf8_valid(value))
        return w_fail(w, "%s: bad metadata key or value", w->path);
    for (int i = 0; i < w->nmeta; i++)
        if (strcmp(w->meta[i].key, key) == 0) {
            free(w->meta[i].val);
            w->meta[i].val = mm_strdup(value);
            return 0;
        }
    if (w->nmeta == w->mcap) {
        w->mcap = w->mcap ? 2 * w->mcap : 8;
        w->meta = mm_realloc(w->meta, (size_t)w->mcap * sizeof *w->meta);
    }
    w->meta[w->nmeta].key = mm_strdup(key);
    w->meta[w->nmeta++].val = mm_strdup(value);
    return 0;
}

static void w_free(mm_st_writer *w)
{
    for (int i = 0; i < w->n; i++) free(w->t[i].name);
    free(w->t);
    for (int i = 0; i < w->nmeta; i++) {
        free(w->meta[i].key);
        free(w->meta[i].val);
    }
    free(w->meta);
    free(w->path);
    free(w);
}

void mm_st_discard(mm_st_writer *w)
{
    if (!w) return;
    mm_io_discard(w->io);
    w_free(w);
}

typedef struct { char *b; size_t n, cap; } sbuf;

static void sb_put(sbuf *s, const char *p, size_t n)
{
    if (s->n + n + 1 > s->cap) {
        while (s->n + n + 1 > s->cap) s->cap = s->cap ? 2 * s->cap : 1024;
        s->b = mm_realloc(s->b, s->cap);
    }
    memcpy(s->b + s->n, p, n);
    s->n += n;
}

static void sb_puts(sbuf *s, const char *p) { sb_put(s, p, strlen(p)); }

/* A JSON string as serde_json writes it (the Python package's writer). */
static void sb_json_str(sbuf *s, const char *str)
{
    static const char hex[] = "0123456789abcdef";
    sb_put(s, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)str; *p; p++) {
        char e[7];
        switch (*p) {
        case '"': sb_put(s, "\\\"", 2); break;
        case '\\': sb_put(s, "\\\\", 2); break;
        case '\b': sb_put(s, "\\b", 2); break;
        case '\f': sb_put(s, "\\f", 2); break;
        case '\n': sb_put(s, "\\n", 2); break;
        case '\r': sb_put(s, "\\r", 2); break;
        case '\t': sb_put(s, "\\t", 2); break;
        default:
            if (*p < 0x20) {
                memcpy(e, "\\u00", 4);
                e[4] = hex[*p >> 4];
                e[5] = hex[*p & 15];
                sb_put(s, e, 6);
            } else {
                sb_put(s, (const char *)p, 1);
            }
        }
    }
    sb_put(s, "\"", 1);
}

/* The Python package's order: its Dtype enum descending (U64 I64 F64 C64
 * F32 U32 I32 BF16 F16 ... U8 BOOL, so larger elements first), then name. */
static int cmp_out(const void *a, const void *b)
{
    static const int rank[MM_DTYPE_COUNT] = {
        [MM_I64] = 0, [MM_F64] = 1, [MM_F32] = 2, [MM_I32] = 3, [MM_F16] = 4,
        [MM_U8] = 5,
    };
    const st_out *x = a, *y = b;
    if (x->dt != y->dt) return rank[x->dt] - rank[y->dt];
    return strcmp(x->name, y->name);
}

int mm_st_write_close(mm_st_writer *w)
{
    if (w->err[0]) {
        mm__set_error("%s", w->err);
        mm_st_discard(w);
        return -1;
    }
    if (w->n) qsort(w->t, (size_t)w->n, sizeof *w->t, cmp_out);
    sbuf h = {0};
    char num[64];
    sb_puts(&h, "{");
    if (w->nmeta) {
        qsort(w->meta, (size_t)w->nmeta, sizeof *w->meta, cmp_kv);
        sb_puts(&h, "\"__metadata__\":{");
        for (int i = 0; i < w->nmeta; i++) {
            if (i) sb_puts(&h, ",");
            sb_json_str(&h, w->meta[i].key);
            sb_puts(&h, ":");
            sb_json_str(&h, w->meta[i].val);
        }
        sb_puts(&h, "}");
    }
    uint64_t at = 0;
    for (int i = 0; i < w->n; i++) {
        const st_out *t = &w->t[i];
        if (i || w->nmeta) sb_puts(&h, ",");
        sb_json_str(&h, t->name);
        sb_puts(&h, ":{\"dtype\":\"");
        sb_puts(&h, st_dtypes[st_of_mm[t->dt]].name);
        sb_puts(&h, "\",\"shape\":[");
        for (int d = 0; d < t->ndim; d++) {
            snprintf(num, sizeof num, "%s%" PRId64, d ? "," : "", t->shape[d]);
            sb_puts(&h, num);
        }
        snprintf(num, sizeof num, "],\"data_offsets\":[%" PRIu64 ",%" PRIu64
                 "]}", at, at + t->nbytes);
        sb_puts(&h, num);
        at += t->nbytes;
    }
    sb_puts(&h, "}");
    while (h.n % 8) sb_put(&h, " ", 1);
    unsigned char len8[8];
    for (int k = 0; k < 8; k++) len8[k] = (unsigned char)((uint64_t)h.n >> 8 * k);
    int ret = 0;
    if (h.n > MM_ST_HEADER_MAX) {
        mm__set_error("%s: header of %zu bytes is over the %u-byte limit",
                      w->path, h.n, MM_ST_HEADER_MAX);
        ret = -1;
    }
    if (ret == 0 && (mm_io_write(w->io, len8, 8) != 0 ||
                     mm_io_write(w->io, h.b, h.n) != 0))
        ret = -1;
    for (int i = 0; ret == 0 && i < w->n; i++)
        if (w->t[i].nbytes &&
            mm_io_write(w->io, w->t[i].data, (size_t)w->t[i].nbytes) != 0)
            ret = -1;
    free(h.b);
    if (ret != 0) {
        if (mm_io_error(w->io)[0]) mm__set_error("%s", mm_io_error(w->io));
        mm_io_discard(w->io);
    } else {
        ret = mm_io_close(w->io); /* sets mm_strerror on failure */
    }
    w_free(w);
    return ret;
}
