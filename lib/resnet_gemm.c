/* resnet_gemm.c: the GEMM under the ResNet convolutions (resnet_gemm.h).
 *
 * Why an own kernel: the 1x1 convolutions of layer1 are GEMMs with K or N
 * = 64, where OpenBLAS's sgemm (packing both operands per call, then a
 * separate pass for bias/ReLU/residual) reaches only 60-75 % of its large
 * shape speed. Here B, the weights, is packed once at load time into
 * panels of 32 columns (K x 32, zero padded), A, the activations, is read
 * in place, and each 14 x 32 tile of C is accumulated over the whole K in
 * 28 zmm registers and leaves them through the epilogue. Rows go in blocks
 * whose part of A stays in L2 while every panel of B passes over it.
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <cblas.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mm/defs.h"
#include "resnet_gemm.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_AVX512_KERNEL 1
#endif

enum { MR = 14, NR = 32 };

struct mm__gemm_b {
    int k, n;
    float *b;  /* row-major B for the fallback, or NULL */
    void *raw; /* the panels' allocation; p is it aligned to 64 */
    float *p;  /* (ceil(n / 32), k, 32) for the kernel, or NULL */
};

static int cpu_avx512(void)
{
#ifdef HAVE_AVX512_KERNEL
    static int have = -1;
    if (have < 0) have = __builtin_cpu_supports("avx512f") ? 1 : 0;
    return have;
#else
    return 0;
#endif
}

static int use_kernel = 1;

int mm__gemm_kernel(void) { return use_kernel && cpu_avx512(); }
void mm__gemm_set_kernel(int on) { use_kernel = on != 0; }

mm__gemm_b *mm__gemm_pack(const float *b, int k, int n)
{
    mm__gemm_b *pb = mm_calloc(1, sizeof *pb);
    pb->k = k;
    pb->n = n;
    if (!mm__gemm_kernel()) {
        pb->b = mm_malloc((size_t)k * n * sizeof *pb->b);
        memcpy(pb->b, b, (size_t)k * n * sizeof *pb->b);
        return pb;
    }
    size_t np = (size_t)(n + NR - 1) / NR;
    pb->raw = mm_calloc(np * k * NR + 16, sizeof(float));
    pb->p = (float *)(((uintptr_t)pb->raw + 63) & ~(uintptr_t)63);
    for (size_t j = 0; j < np; j++)
        for (int i = 0; i < k; i++) {
            float *d = pb->p + (j * k + i) * NR;
            size_t c0 = j * NR, w = n - c0 < NR ? n - c0 : NR;
            memcpy(d, b + (size_t)i * n + c0, w * sizeof *d);
        }
    return pb;
}

void mm__gemm_free(mm__gemm_b *pb)
{
    if (!pb) return;
    free(pb->b);
    free(pb->raw);
    free(pb);
}

/* 4 floats: GCC/Clang vector extension, SSE on x86-64, NEON on arm64 */
typedef float v4 __attribute__((vector_size(16)));
typedef int32_t v4i __attribute__((vector_size(16)));

/* the portable path: sgemm, then one pass for bias, add and ReLU */
static void gemm_blas(int m, const float *a, int lda, const mm__gemm_b *b,
                      const float *bias, int flags, float *c, int ldc)
{
    int n = b->n, relu = flags & MM__GEMM_RELU;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, b->k, 1.0f,
                a, lda, b->b, n, flags & MM__GEMM_ACC ? 1.0f : 0.0f, c, ldc);
    if (!bias && !relu) return;
    const v4 z = {0, 0, 0, 0};
    for (int i = 0; i < m; i++) {
        float *r = c + (size_t)i * ldc;
        int j = 0;
        for (; j + 4 <= n; j += 4) {
            v4 v, bb = z;
            memcpy(&v, r + j, sizeof v);
            if (bias) memcpy(&bb, bias + j, sizeof bb);
            v += bb;
            if (relu) v = (v4)((v4i)v & (v > z));
            memcpy(r + j, &v, sizeof v);
        }
        for (; j < n; j++) {
            float v = r[j] + (bias ? bias[j] : 0);
            r[j] = relu && !(v > 0) ? 0 : v;
        }
    }
}

#ifdef HAVE_AVX512_KERNEL
#define AVX512 __attribute__((target("avx512f,fma")))

/* C[0..R) x [0..32) under masks M0, M1 (the last panel's ragged columns)
 * += A[0..R) x [0..K) P, one block of K: the sum starts from C when INIT
 * (a later block of K, or the residual add) else from 0, and when FIN
 * (the last block) gets the bias and the ReLU before it is stored. R is a
 * constant after inlining, so the accumulators live in registers. */
static inline __attribute__((always_inline)) AVX512 void
tile(const int r, int k, const float *a, size_t lda, const float *p,
     const float *bias, int init, int fin, int relu, float *c, size_t ldc,
     __mmask16 m0, __mmask16 m1)
{
    __m512 c0[MR], c1[MR];
#pragma GCC unroll 14
    for (int i = 0; i < r; i++) {
        c0[i] = init ? _mm512_maskz_loadu_ps(m0, c + i * ldc)
                     : _mm512_setzero_ps();
        c1[i] = init ? _mm512_maskz_loadu_ps(m1, c + i * ldc + 16)
                     : _mm512_setzero_ps();
    }
    for (int q = 0; q < k; q++) {
        __m512 b0 = _mm512_load_ps(p + (size_t)q * NR);
        __m512 b1 = _mm512_load_ps(p + (size_t)q * NR + 16);
#pragma GCC unroll 14
        for (int i = 0; i < r; i++) {
            __m512 av = _mm512_set1_ps(a[i * lda + q]);
            c0[i] = _mm512_fmadd_ps(av, b0, c0[i]);
            c1[i] = _mm512_fmadd_ps(av, b1, c1[i]);
        }
    }
    __m512 bb0 = _mm512_setzero_ps(), bb1 = _mm512_setzero_ps();
    if (fin && bias) {
        bb0 = _mm512_maskz_loadu_ps(m0, bias);
        bb1 = _mm512_maskz_loadu_ps(m1, bias + 16);
    }
    __m512 z = _mm512_setzero_ps();
#pragma GCC unroll 14
    for (int i = 0; i < r; i++) {
        float *o = c + i * ldc;
        __m512 v0 = c0[i], v1 = c1[i];
        if (fin) {
            v0 = _mm512_add_ps(v0, bb0);
            v1 = _mm512_add_ps(v1, bb1);
            if (relu) {
                v0 = _mm512_max_ps(v0, z);
                v1 = _mm512_max_ps(v1, z);
            }
        }
        _mm512_mask_storeu_ps(o, m0, v0);
        _mm512_mask_storeu_ps(o + 16, m1, v1);
    }
}

#define TILE(R)                                                               \
    case R:                                                                   \
        tile(R, k, a, lda, p, bias, init, fin, relu, c, ldc, m0, m1);         \
        break

static AVX512 void tile_any(int r, int k, const float *a, size_t lda,
                            const float *p, const float *bias, int init,
                            int fin, int relu, float *c, size_t ldc,
                            __mmask16 m0, __mmask16 m1)
{
    switch (r) {
        TILE(1); TILE(2); TILE(3); TILE(4); TILE(5); TILE(6); TILE(7);
        TILE(8); TILE(9); TILE(10); TILE(11); TILE(12); TILE(13);
    default:
        tile(MR, k, a, lda, p, bias, init, fin, relu, c, ldc, m0, m1);
    }
}

static AVX512 void gemm_avx512(int m, const float *a, int lda,
                               const mm__gemm_b *b, const float *bias,
                               int flags, float *c, int ldc)
{
    int k = b->k, n = b->n, np = (n + NR - 1) / NR;
    int relu = (flags & MM__GEMM_RELU) != 0;
    /* K in even blocks of at most 256: a block of a panel (32 KiB) stays
     * in L1 while the tiles of a row block pass over it; rows in blocks
     * whose part of A and of C (768 KiB together) stay in L2 */
    int nk = (k + 255) / 256, kc = (k + nk - 1) / nk;
    int mb = (int)(((size_t)192 << 10) / (k + n)) / MR * MR;
    if (mb < MR) mb = MR;
    for (int i0 = 0; i0 < m; i0 += mb) {
        int ie = m - i0 < mb ? m : i0 + mb;
        for (int k0 = 0; k0 < k; k0 += kc) {
            int kb = k - k0 < kc ? k - k0 : kc;
            int init = k0 > 0 || (flags & MM__GEMM_ACC), fin = k0 + kb >= k;
            for (int j = 0; j < np; j++) {
                int w = n - j * NR < NR ? n - j * NR : NR;
                __mmask16 m0 = (__mmask16)(w >= 16 ? 0xffff : (1u << w) - 1);
                __mmask16 m1 = (__mmask16)(w >= 32   ? 0xffff
                                           : w <= 16 ? 0
                                                     : (1u << (w - 16)) - 1);
                const float *p = b->p + ((size_t)j * k + k0) * NR;
                const float *bj = bias ? bias + j * NR : NULL;
                for (int i = i0; i < ie; i += MR)
                    tile_any(ie - i < MR ? ie - i : MR, kb,
                             a + (size_t)i * lda + k0, lda, p, bj, init, fin,
                             relu, c + (size_t)i * ldc + j * NR, ldc, m0,
                             m1);
            }
        }
    }
}
#endif

void mm__gemm(int m, const float *a, int lda, const mm__gemm_b *b,
              const float *bias, int flags, float *c, int ldc)
{
    if (m <= 0 || b->n <= 0) return;
#ifdef HAVE_AVX512_KERNEL
    if (b->p) {
        gemm_avx512(m, a, lda, b, bias, flags, c, ldc);
        return;
    }
#endif
    gemm_blas(m, a, lda, b, bias, flags, c, ldc);
}
