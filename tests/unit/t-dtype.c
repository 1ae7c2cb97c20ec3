/* t-dtype.c: element sizes, numpy type strings, and IEEE half conversion
 * (every one of the 65536 halves round-trips; rounding to nearest even).
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <math.h>

#include "mm/dtype.h"
#include "../tap.h"

int main(void)
{
    is_int(mm_dtype_size(MM_F16), 2, "f16 size");
    is_int(mm_dtype_size(MM_I64), 8, "i64 size");
    is_str(mm_dtype_typestr(MM_U8), "|u1", "u8 typestr");
    is_int(mm_dtype_from_typestr("<f4"), MM_F32, "<f4");
    is_int(mm_dtype_from_typestr("f8"), MM_F64, "f8 (native)");
    is_int(mm_dtype_from_typestr("<u1"), MM_U8, "<u1");
    is_int(mm_dtype_from_typestr(">f4"), -1, "big-endian refused");
    is_int(mm_dtype_from_typestr("<c8"), -1, "complex refused");

    is_int(mm_f32_to_f16(1.0f), 0x3c00, "1.0");
    is_int(mm_f32_to_f16(-2.0f), 0xc000, "-2.0");
    is_int(mm_f32_to_f16(65504.0f), 0x7bff, "max half");
    is_int(mm_f32_to_f16(65520.0f), 0x7c00, "65520 rounds to inf");
    is_int(mm_f32_to_f16(1e-8f), 0x0000, "1e-8 underflows to 0");
    is_int(mm_f32_to_f16(5.9604645e-08f), 0x0001, "smallest subnormal");
    is_int(mm_f32_to_f16(1.0f + 1.0f / 2048), 0x3c00, "tie rounds to even (down)");
    is_int(mm_f32_to_f16(1.0f + 3.0f / 2048), 0x3c02, "tie rounds to even (up)");
    ok(isnan(mm_f16_to_f32(mm_f32_to_f16(NAN))), "nan stays nan");
    is_close(mm_f16_to_f32(0x3555), 0.333251953125, 0, "0x3555");
    is_close(mm_f16_to_f32(0x0200), 3.0517578125e-05, 0, "subnormal 0x0200");

    int bad = 0;
    for (unsigned h = 0; h < 65536; h++) {
        float f = mm_f16_to_f32((uint16_t)h);
        if (isnan(f)) continue;
        if (mm_f32_to_f16(f) != h) bad++;
    }
    is_int(bad, 0, "all non-nan halves round-trip");
    return done_testing();
}
