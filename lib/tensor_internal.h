/* tensor_internal.h: switches of lib/tensor.c for the tests, not part of
 * the public API (lib/mm/tensor.h).
 * SPDX-License-Identifier: MIT */
#ifndef MM_TENSOR_INTERNAL_H
#define MM_TENSOR_INTERNAL_H

/* mm__dwconv_simd(0) makes the f32 depthwise convolutions (conv1d_dw,
 * conv2d_dw, forward and backward) take the generic loops even where the
 * CPU has AVX-512; (1) restores the default, the AVX-512 kernels when the
 * CPU has them. For tests comparing the two; not thread-safe. */
void mm__dwconv_simd(int on);

#endif
