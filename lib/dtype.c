/* dtype.c: element sizes, numpy type strings, IEEE 754 half <-> single.
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <string.h>

#include "mm/dtype.h"

static const struct { const char *typestr, *name; size_t size; } dtypes[] = {
    [MM_F32] = {"<f4", "f32", 4}, [MM_F64] = {"<f8", "f64", 8},
    [MM_F16] = {"<f2", "f16", 2}, [MM_U8] = {"|u1", "u8", 1},
    [MM_I32] = {"<i4", "i32", 4}, [MM_I64] = {"<i8", "i64", 8},
};

size_t mm_dtype_size(mm_dtype dt) { return dtypes[dt].size; }
const char *mm_dtype_typestr(mm_dtype dt) { return dtypes[dt].typestr; }
const char *mm_dtype_name(mm_dtype dt) { return dtypes[dt].name; }

int mm_dtype_from_typestr(const char *s)
{
    if (!s) return -1;
    /* byte order: '<' little, '|' not applicable, '=' native (we are LE);
     * no prefix is numpy's shorthand for native too. '>' is refused. */
    if (s[0] == '<' || s[0] == '|' || s[0] == '=') s++;
    for (int i = 0; i < MM_DTYPE_COUNT; i++)
        if (strcmp(s, dtypes[i].typestr + 1) == 0) return i;
    return -1;
}

float mm_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: normalise */
            int e = -1;
            do { e++; man <<= 1; } while (!(man & 0x400));
            bits = sign | (uint32_t)(127 - 15 - e) << 23 | (man & 0x3ff) << 13;
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | man << 13;
    } else {
        bits = sign | (exp + 127 - 15) << 23 | man << 13;
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t mm_f32_to_f16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t exp = (x >> 23) & 0xff, man = x & 0x7fffff;
    if (exp == 0xff) /* inf or nan (keep nan quiet and non-zero) */
        return (uint16_t)(sign | 0x7c00 | (man ? 0x200 | (man >> 13) : 0));
    int e = (int)exp - 127 + 15;
    if (e >= 31) return (uint16_t)(sign | 0x7c00);
    if (e <= 0) {
        if (e < -10) return (uint16_t)sign;
        man |= 0x800000;
        int shift = 14 - e;
        uint32_t h = man >> shift, rem = man & ((1u << shift) - 1),
                 half = 1u << (shift - 1);
        if (rem > half || (rem == half && (h & 1))) h++;
        return (uint16_t)(sign | h);
    }
    uint32_t h = (uint32_t)e << 10 | man >> 13, rem = man & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++; /* may carry to inf */
    return (uint16_t)(sign | h);
}
