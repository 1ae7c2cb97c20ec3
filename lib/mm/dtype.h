/* mm/dtype.h: element types shared by stream tensors and the tensor library,
 * with numpy's type strings and IEEE half conversion.
 * SPDX-License-Identifier: MIT */
#ifndef MM_DTYPE_H
#define MM_DTYPE_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    MM_F32, MM_F64, MM_F16, MM_U8, MM_I32, MM_I64, MM_DTYPE_COUNT
} mm_dtype;

size_t mm_dtype_size(mm_dtype dt);
/* numpy type string: "<f4", "<f8", "<f2", "|u1", "<i4", "<i8". */
const char *mm_dtype_typestr(mm_dtype dt);
/* short name: "f32", "f64", "f16", "u8", "i32", "i64" */
const char *mm_dtype_name(mm_dtype dt);
/* @return the dtype for a numpy type string (also "<u1", "u1", "=f4"...),
 * or -1. */
int mm_dtype_from_typestr(const char *s);

float mm_f16_to_f32(uint16_t h);
uint16_t mm_f32_to_f16(float f); /* round to nearest even, saturates to inf */

#endif
