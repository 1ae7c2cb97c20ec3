/* ops.cu: the CUDA backend of the tensor library (mm/tensor.h), f32:
 * cuBLAS strided-batched GEMM for matmul and linear, and our own kernels
 * for everything else. tensor.c owns the tensors, the arenas and the tape;
 * this file only computes (cuda/ops.h).
 *
 * Parity with the CPU backend: every kernel does the arithmetic of the CPU
 * loop it replaces in the same order (a reduction runs in one thread over
 * the reduced index, as the CPU's does), with the full-precision libm
 * functions (expf, erff, tanhf; no --use_fast_math). What still differs
 * is FMA contraction (nvcc fuses a*b+c) and the libm ulps, so elementwise
 * results agree to about 1e-6 relative; cuBLAS sums its dot products in
 * another order than OpenBLAS (1e-5 relative for the sizes in the tests),
 * and TF32, when asked for, rounds the products' inputs to 10 bits.
 *
 * Rows that one thread reduces are the simple choice for correctness; a
 * very long softmax row (ABMIL's attention over 10^4 patches) runs in one
 * thread, which is slow but small next to the matmuls around it.
 * SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "cuda/ops.h"

static char err_msg[256];
static cublasHandle_t blas;
static int use_tf32;

static int set_err(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err_msg, sizeof err_msg, fmt, ap);
    va_end(ap);
    return -1;
}

static int cuda_ok(cudaError_t e)
{
    return e == cudaSuccess ? 0 : set_err("CUDA: %s", cudaGetErrorString(e));
}

/* After a launch: a bad configuration shows here, a fault in the kernel
 * at the next synchronising call (a copy back), which reports it too. */
static int launched(void) { return cuda_ok(cudaGetLastError()); }

#define THREADS 256
static unsigned grid_for(int64_t n)
{
    int64_t b = (n + THREADS - 1) / THREADS;
    if (b > (1 << 20)) b = 1 << 20; /* grid-stride loops do the rest */
    return b < 1 ? 1u : (unsigned)b;
}

#define LOOP(i, n) \
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; \
         i < (n); i += (int64_t)blockDim.x * gridDim.x)

#define LAUNCH(n, kernel, ...) \
    do { \
        if ((n) <= 0) return 0; \
        kernel<<<grid_for(n), THREADS>>>(__VA_ARGS__); \
        return launched(); \
    } while (0)

extern "C" const char *mm__cu_error(void) { return err_msg; }

extern "C" int mm__cu_available(char *why, size_t n)
{
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count == 0) {
        snprintf(why, n, "no CUDA device (%s)",
                 e == cudaSuccess ? "none found" : cudaGetErrorString(e));
        cudaGetLastError(); /* clear it: later calls must not see it */
        return 0;
    }
    return count;
}

extern "C" int mm__cu_set_tf32(int on)
{
    int old = use_tf32;
    use_tf32 = on != 0;
    return old;
}

extern "C" void *mm__cu_malloc(size_t n)
{
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, n);
    if (e != cudaSuccess) {
        fprintf(stderr, "mmpath: cudaMalloc of %zu bytes: %s\n", n,
                cudaGetErrorString(e));
        abort();
    }
    return p;
}

extern "C" void mm__cu_free(void *p)
{
    if (p) cudaFree(p);
}

extern "C" int mm__cu_zero(void *p, size_t n)
{
    return cuda_ok(cudaMemset(p, 0, n));
}

extern "C" int mm__cu_h2d(void *dst, const void *src, size_t n)
{
    return cuda_ok(cudaMemcpy(dst, src, n, cudaMemcpyHostToDevice));
}

extern "C" int mm__cu_d2h(void *dst, const void *src, size_t n)
{
    return cuda_ok(cudaMemcpy(dst, src, n, cudaMemcpyDeviceToHost));
}

// ---- strided copies ----------------------------------------------------------

__device__ static int64_t offset4(int64_t i, const mm__cu_i4 &ne,
                                  const mm__cu_i4 &nb)
{
    int64_t i3 = i % ne.v[3], r = i / ne.v[3];
    int64_t i2 = r % ne.v[2];
    r /= ne.v[2];
    int64_t i1 = r % ne.v[1], i0 = r / ne.v[1];
    return i0 * nb.v[0] + i1 * nb.v[1] + i2 * nb.v[2] + i3 * nb.v[3];
}

static int64_t numel4(const mm__cu_i4 &ne)
{
    return ne.v[0] * ne.v[1] * ne.v[2] * ne.v[3];
}

__global__ static void k_copy_strided(float *d, const float *s, mm__cu_i4 ne,
                                      mm__cu_i4 nb, int64_t n)
{
    LOOP(i, n) d[i] = s[offset4(i, ne, nb)];
}

extern "C" int mm__cu_copy_strided(float *dst, const float *src,
                                   mm__cu_i4 ne, mm__cu_i4 nb)
{
    int64_t n = numel4(ne);
    LAUNCH(n, k_copy_strided, dst, src, ne, nb, n);
}

__global__ static void k_add_strided(float *d, mm__cu_i4 ne, mm__cu_i4 nb,
                                     const float *s, int64_t n)
{
    LOOP(i, n) d[offset4(i, ne, nb)] += s[i];
}

extern "C" int mm__cu_add_strided(float *dst, mm__cu_i4 ne, mm__cu_i4 nb,
                                  const float *src)
{
    int64_t n = numel4(ne);
    LAUNCH(n, k_add_strided, dst, ne, nb, src, n);
}

__global__ static void k_add_flat(float *d, const float *s, int64_t n)
{
    LOOP(i, n) d[i] += s[i];
}

extern "C" int mm__cu_add_flat(float *dst, const float *src, int64_t n)
{
    LAUNCH(n, k_add_flat, dst, src, n);
}

__global__ static void k_fill(float *d, mm__cu_i4 ne, mm__cu_i4 nb, float v,
                              int64_t n)
{
    LOOP(i, n) d[offset4(i, ne, nb)] = v;
}

extern "C" int mm__cu_fill(float *dst, mm__cu_i4 ne, mm__cu_i4 nb, float v)
{
    int64_t n = numel4(ne);
    LAUNCH(n, k_fill, dst, ne, nb, v, n);
}

// ---- matmul --------------------------------------------------------------------

extern "C" int mm__cu_gemm(int ta, int tb, int m, int n, int k,
                           const float *a, int lda, int64_t sa,
                           const float *b, int ldb, int64_t sb, float beta,
                           float *c, int ldc, int64_t sc, int batch)
{
    cublasStatus_t st;
    if (!blas && (st = cublasCreate(&blas)) != CUBLAS_STATUS_SUCCESS)
        return set_err("cuBLAS: %s", cublasGetStatusString(st));
    const float one = 1.0f;
    /* row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T:
     * swap the operands and M/N, keep the leading dimensions */
    st = cublasGemmStridedBatchedEx(
        blas, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N,
        n, m, k, &one, b, CUDA_R_32F, ldb, sb, a, CUDA_R_32F, lda, sa, &beta,
        c, CUDA_R_32F, ldc, sc, batch,
        use_tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F,
        CUBLAS_GEMM_DEFAULT);
    if (st != CUBLAS_STATUS_SUCCESS)
        return set_err("cuBLAS: %s", cublasGetStatusString(st));
    return 0;
}

// ---- elementwise -----------------------------------------------------------------

__device__ static float bin_op(int op, float x, float y)
{
    switch (op) {
    case MM_CU_ADD: return x + y;
    case MM_CU_SUB: return x - y;
    case MM_CU_MUL: return x * y;
    default: return x / y;
    }
}

/* d(out)/d(source WHICH) times G: tensor.c's BIN_PARTIAL */
__device__ static float bin_partial(int op, int which, float g, float x,
                                    float y)
{
    switch (op) {
    case MM_CU_ADD: return g;
    case MM_CU_SUB: return which ? -g : g;
    case MM_CU_MUL: return which ? g * x : g * y;
    default: return which ? -g * x / (y * y) : g / y;
    }
}

__global__ static void k_binary(int op, float *z, const float *x,
                                const float *y, mm__cu_i4 ne, mm__cu_i4 sa,
                                mm__cu_i4 sb, int64_t n)
{
    LOOP(i, n) z[i] = bin_op(op, x[offset4(i, ne, sa)], y[offset4(i, ne, sb)]);
}

extern "C" int mm__cu_binary(int op, float *z, const float *x,
                             const float *y, mm__cu_i4 ne, mm__cu_i4 sa,
                             mm__cu_i4 sb)
{
    int64_t n = numel4(ne);
    LAUNCH(n, k_binary, op, z, x, y, ne, sa, sb, n);
}

/* One thread per source element J: the output elements it feeds vary over
 * the broadcast dimensions only; visited in the output's logical order, as
 * the CPU's loop adds them. */
__global__ static void k_binary_back(int op, int which, float *gs,
                                     mm__cu_i4 sne, const float *x,
                                     const float *y, const float *g,
                                     mm__cu_i4 ne, mm__cu_i4 sa,
                                     mm__cu_i4 sb, int64_t n)
{
    LOOP(j, n) {
        int64_t jd[4], r = j;
        for (int d = 3; d >= 0; d--) {
            jd[d] = r % sne.v[d];
            r /= sne.v[d];
        }
        int64_t lim[4];
        for (int d = 0; d < 4; d++)
            lim[d] = sne.v[d] == 1 && ne.v[d] != 1 ? ne.v[d] : 1;
        float acc = gs[j];
        int64_t id[4];
        for (int64_t r0 = 0; r0 < lim[0]; r0++)
            for (int64_t r1 = 0; r1 < lim[1]; r1++)
                for (int64_t r2 = 0; r2 < lim[2]; r2++)
                    for (int64_t r3 = 0; r3 < lim[3]; r3++) {
                        const int64_t rr[4] = {r0, r1, r2, r3};
                        for (int d = 0; d < 4; d++)
                            id[d] = lim[d] > 1 ? rr[d] : jd[d];
                        int64_t o = ((id[0] * ne.v[1] + id[1]) * ne.v[2] +
                                     id[2]) * ne.v[3] + id[3];
                        int64_t xo = 0, yo = 0;
                        for (int d = 0; d < 4; d++) {
                            xo += id[d] * sa.v[d];
                            yo += id[d] * sb.v[d];
                        }
                        acc += bin_partial(op, which, g[o], x[xo], y[yo]);
                    }
        gs[j] = acc;
    }
}

extern "C" int mm__cu_binary_back(int op, int which, float *gs,
                                  mm__cu_i4 sne, const float *x,
                                  const float *y, const float *g,
                                  mm__cu_i4 ne, mm__cu_i4 sa, mm__cu_i4 sb)
{
    int64_t n = numel4(sne);
    LAUNCH(n, k_binary_back, op, which, gs, sne, x, y, g, ne, sa, sb, n);
}

#define INV_SQRT2 0.70710678118654752440f
#define INV_SQRT_2PI 0.39894228040143267794f

__global__ static void k_unary(int op, float *y, const float *x, int64_t n,
                               float sc, float s2)
{
    LOOP(i, n) {
        float v = x[i], r;
        switch (op) {
        case MM_CU_SCALE: r = sc * v; break;
        case MM_CU_ABS: r = fabsf(v); break;
        case MM_CU_CLAMP: r = v < sc ? sc : v > s2 ? s2 : v; break;
        case MM_CU_RSQRT: r = 1 / sqrtf(v); break;
        case MM_CU_SQUARE: r = v * v; break;
        case MM_CU_ELU: r = v > 0 ? v : sc * expm1f(v); break;
        case MM_CU_SILU: r = v / (1 + expf(-v)); break;
        case MM_CU_SOFTPLUS: r = v > 20 ? v : log1pf(expf(v)); break;
        case MM_CU_EXP: r = expf(v); break;
        case MM_CU_LOG: r = logf(v); break;
        case MM_CU_SQRT: r = sqrtf(v); break;
        case MM_CU_TANH: r = tanhf(v); break;
        case MM_CU_SIGMOID: r = 1 / (1 + expf(-v)); break;
        case MM_CU_RELU: r = v > 0 ? v : 0; break;
        case MM_CU_GELU: r = 0.5f * v * (1 + erff(v * INV_SQRT2)); break;
        default: r = 0; break;
        }
        y[i] = r;
    }
}

extern "C" int mm__cu_unary(int op, float *y, const float *x, int64_t n,
                            float s, float s2)
{
    LAUNCH(n, k_unary, op, y, x, n, s, s2);
}

__global__ static void k_unary_back(int op, float *gx, const float *x,
                                    const float *y, const float *g,
                                    int64_t n, float sc, float s2)
{
    LOOP(i, n) {
        float v = x[i], o = y[i], gi = g[i], d;
        switch (op) {
        case MM_CU_SCALE: d = sc * gi; break;
        case MM_CU_ABS: d = v > 0 ? gi : v < 0 ? -gi : 0; break;
        case MM_CU_CLAMP: d = v >= sc && v <= s2 ? gi : 0; break;
        case MM_CU_RSQRT: d = -0.5f * gi * o * o * o; break;
        case MM_CU_SQUARE: d = 2 * gi * v; break;
        case MM_CU_ELU: d = v > 0 ? gi : gi * sc * expf(v); break;
        case MM_CU_SILU: {
            float sg = 1 / (1 + expf(-v));
            d = gi * sg * (1 + v * (1 - sg));
            break;
        }
        case MM_CU_SOFTPLUS: d = v > 20 ? gi : gi / (1 + expf(-v)); break;
        case MM_CU_EXP: d = gi * o; break;
        case MM_CU_LOG: d = gi / v; break;
        case MM_CU_SQRT: d = gi * 0.5f / o; break;
        case MM_CU_TANH: d = gi * (1 - o * o); break;
        case MM_CU_SIGMOID: d = gi * o * (1 - o); break;
        case MM_CU_RELU: d = v > 0 ? gi : 0; break;
        case MM_CU_GELU: {
            float cdf = 0.5f * (1 + erff(v * INV_SQRT2));
            float pdf = expf(-0.5f * v * v) * INV_SQRT_2PI;
            d = gi * (cdf + v * pdf);
            break;
        }
        default: d = 0; break;
        }
        gx[i] += d;
    }
}

extern "C" int mm__cu_unary_back(int op, float *gx, const float *x,
                                 const float *y, const float *g, int64_t n,
                                 float s, float s2)
{
    LAUNCH(n, k_unary_back, op, gx, x, y, g, n, s, s2);
}

// ---- reductions over an axis ---------------------------------------------------

__global__ static void k_reduce(float *y, const float *x, int64_t outer,
                                int64_t len, int64_t inner, float sc)
{
    LOOP(j, outer * inner) {
        int64_t o = j / inner, i = j % inner;
        const float *xo = x + o * len * inner + i;
        float acc = 0;
        for (int64_t k = 0; k < len; k++) acc += xo[k * inner];
        y[j] = acc * sc;
    }
}

extern "C" int mm__cu_reduce(float *y, const float *x, int64_t outer,
                             int64_t len, int64_t inner, float sc)
{
    LAUNCH(outer * inner, k_reduce, y, x, outer, len, inner, sc);
}

__global__ static void k_reduce_back(float *gx, const float *g,
                                     int64_t len, int64_t inner, float sc,
                                     int64_t n)
{
    LOOP(i, n) gx[i] += sc * g[i / (len * inner) * inner + i % inner];
}

extern "C" int mm__cu_reduce_back(float *gx, const float *g, int64_t outer,
                                  int64_t len, int64_t inner, float sc)
{
    int64_t n = outer * len * inner;
    LAUNCH(n, k_reduce_back, gx, g, len, inner, sc, n);
}

__global__ static void k_max(float *y, int64_t *arg, const float *x,
                             int64_t outer, int64_t len, int64_t inner)
{
    LOOP(j, outer * inner) {
        int64_t o = j / inner, i = j % inner;
        const float *xo = x + o * len * inner + i;
        int64_t best = 0;
        for (int64_t k = 1; k < len; k++) /* first argmax wins */
            if (xo[k * inner] > xo[best * inner]) best = k;
        y[j] = xo[best * inner];
        arg[j] = best;
    }
}

extern "C" int mm__cu_max(float *y, int64_t *arg, const float *x,
                          int64_t outer, int64_t len, int64_t inner)
{
    LAUNCH(outer * inner, k_max, y, arg, x, outer, len, inner);
}

__global__ static void k_max_back(float *gx, const float *g,
                                  const int64_t *arg, int64_t len,
                                  int64_t inner, int64_t n)
{
    LOOP(j, n) {
        int64_t o = j / inner, i = j % inner;
        gx[o * len * inner + i + arg[j] * inner] += g[j];
    }
}

extern "C" int mm__cu_max_back(float *gx, const float *g, const int64_t *arg,
                               int64_t outer, int64_t len, int64_t inner)
{
    LAUNCH(outer * inner, k_max_back, gx, g, arg, len, inner, outer * inner);
}

// ---- softmax, layernorm, cross-entropy -------------------------------------------

__global__ static void k_softmax(float *yb, const float *xb, int64_t rows,
                                 int64_t n, int64_t inner, int lg)
{
    LOOP(r, rows) {
        int64_t base = r / inner * n * inner + r % inner;
        const float *x = xb + base;
        float *y = yb + base;
        float mx = x[0], s = 0;
        for (int64_t i = 1; i < n; i++)
            mx = x[i * inner] > mx ? x[i * inner] : mx;
        for (int64_t i = 0; i < n; i++) {
            y[i * inner] = expf(x[i * inner] - mx);
            s += y[i * inner];
        }
        if (lg) {
            float ls = mx + logf(s);
            for (int64_t i = 0; i < n; i++) y[i * inner] = x[i * inner] - ls;
        } else {
            for (int64_t i = 0; i < n; i++) y[i * inner] /= s;
        }
    }
}

extern "C" int mm__cu_softmax(float *y, const float *x, int64_t rows,
                              int64_t n, int64_t inner, int lg)
{
    LAUNCH(rows, k_softmax, y, x, rows, n, inner, lg);
}

__global__ static void k_softmax_back(float *gxb, const float *yb,
                                      const float *gb, int64_t rows,
                                      int64_t n, int64_t inner, int lg)
{
    LOOP(r, rows) {
        int64_t base = r / inner * n * inner + r % inner;
        const float *y = yb + base, *g = gb + base;
        float *gx = gxb + base;
        float s = 0;
        if (lg) {
            for (int64_t i = 0; i < n; i++) s += g[i * inner];
            for (int64_t i = 0; i < n; i++)
                gx[i * inner] += g[i * inner] - expf(y[i * inner]) * s;
        } else {
            for (int64_t i = 0; i < n; i++) s += g[i * inner] * y[i * inner];
            for (int64_t i = 0; i < n; i++)
                gx[i * inner] += y[i * inner] * (g[i * inner] - s);
        }
    }
}

extern "C" int mm__cu_softmax_back(float *gx, const float *y, const float *g,
                                   int64_t rows, int64_t n, int64_t inner,
                                   int lg)
{
    LAUNCH(rows, k_softmax_back, gx, y, g, rows, n, inner, lg);
}

__global__ static void k_layernorm(float *yb, float *st, const float *xb,
                                   const float *w, const float *b,
                                   int64_t rows, int64_t n, float eps)
{
    float *xh = st + 2 * rows;
    LOOP(r, rows) {
        const float *x = xb + r * n;
        float *y = yb + r * n, *h = xh + r * n;
        float m = 0, v = 0;
        for (int64_t i = 0; i < n; i++) m += x[i];
        m /= (float)n;
        for (int64_t i = 0; i < n; i++) v += (x[i] - m) * (x[i] - m);
        v /= (float)n;
        float rs = 1 / sqrtf(v + eps);
        st[2 * r] = m;
        st[2 * r + 1] = rs;
        for (int64_t i = 0; i < n; i++) {
            h[i] = (x[i] - m) * rs;
            y[i] = h[i] * (w ? w[i] : 1) + (b ? b[i] : 0);
        }
    }
}

extern "C" int mm__cu_layernorm(float *y, float *aux, const float *x,
                                const float *w, const float *b, int64_t rows,
                                int64_t n, float eps)
{
    LAUNCH(rows, k_layernorm, y, aux, x, w, b, rows, n, eps);
}

/* weight and bias gradients: one thread per column, rows in order */
__global__ static void k_layernorm_wb(float *gw, float *gb, const float *xh,
                                      const float *g, int64_t rows,
                                      int64_t n)
{
    LOOP(i, n) {
        if (gw) {
            float acc = gw[i];
            for (int64_t r = 0; r < rows; r++) acc += g[r * n + i] * xh[r * n + i];
            gw[i] = acc;
        }
        if (gb) {
            float acc = gb[i];
            for (int64_t r = 0; r < rows; r++) acc += g[r * n + i];
            gb[i] = acc;
        }
    }
}

__global__ static void k_layernorm_x(float *gxb, const float *st,
                                     const float *g, const float *w,
                                     int64_t rows, int64_t n)
{
    const float *xh = st + 2 * rows;
    LOOP(r, rows) {
        const float *gr = g + r * n, *hr = xh + r * n;
        float *gx = gxb + r * n;
        float m1 = 0, m2 = 0;
        for (int64_t i = 0; i < n; i++) {
            float gh = gr[i] * (w ? w[i] : 1);
            m1 += gh;
            m2 += gh * hr[i];
        }
        m1 /= (float)n;
        m2 /= (float)n;
        float rs = st[2 * r + 1];
        for (int64_t i = 0; i < n; i++) {
            float gh = gr[i] * (w ? w[i] : 1);
            gx[i] += rs * (gh - m1 - hr[i] * m2);
        }
    }
}

extern "C" int mm__cu_layernorm_back(float *gx, float *gw, float *gb,
                                     const float *aux, const float *g,
                                     const float *w, int64_t rows, int64_t n)
{
    if (gw || gb) {
        k_layernorm_wb<<<grid_for(n), THREADS>>>(gw, gb, aux + 2 * rows, g,
                                                 rows, n);
        if (launched()) return -1;
    }
    if (gx) {
        k_layernorm_x<<<grid_for(rows), THREADS>>>(gx, aux, g, w, rows, n);
        if (launched()) return -1;
    }
    return 0;
}

__global__ static void k_ce_rows(float *L, const float *xb,
                                 const int64_t *lab, int64_t B, int64_t C,
                                 float eps)
{
    float *row = L + B * C;
    LOOP(r, B) {
        const float *x = xb + r * C;
        float *l = L + r * C;
        float mx = x[0], s = 0, sl = 0;
        for (int64_t c = 1; c < C; c++) mx = x[c] > mx ? x[c] : mx;
        for (int64_t c = 0; c < C; c++) s += expf(x[c] - mx);
        float ls = mx + logf(s);
        for (int64_t c = 0; c < C; c++) {
            l[c] = x[c] - ls;
            sl += l[c];
        }
        row[r] = -(1 - eps) * l[lab[r]] - eps * sl / (float)C;
    }
}

/* the batch mean in one thread, rows in order (the CPU's sum) */
__global__ static void k_ce_mean(float *out, const float *row, int64_t B)
{
    float tot = 0;
    for (int64_t r = 0; r < B; r++) tot += row[r];
    *out = tot / (float)B;
}

extern "C" int mm__cu_cross_entropy(float *out, float *L, const float *x,
                                    const int64_t *lab, int64_t B, int64_t C,
                                    float eps)
{
    k_ce_rows<<<grid_for(B), THREADS>>>(L, x, lab, B, C, eps);
    if (launched()) return -1;
    k_ce_mean<<<1, 1>>>(out, L + B * C, B);
    return launched();
}

__global__ static void k_ce_back(float *gx, const float *L,
                                 const int64_t *lab, const float *gp,
                                 int64_t B, int64_t C, float eps)
{
    float g = *gp / (float)B;
    LOOP(j, B * C) {
        int64_t r = j / C, c = j % C;
        float q = eps / (float)C + (c == lab[r] ? 1 - eps : 0);
        gx[j] += g * (expf(L[j]) - q);
    }
}

extern "C" int mm__cu_cross_entropy_back(float *gx, const float *L,
                                         const int64_t *lab, const float *g,
                                         int64_t B, int64_t C, float eps)
{
    LAUNCH(B * C, k_ce_back, gx, L, lab, g, B, C, eps);
}

// ---- scans, block copies, index ops, repeat ------------------------------------

/* cumsum (PROD 0) or cumprod over LEN: one thread per (outer, inner) fiber,
 * the CPU's running accumulator. */
__global__ static void k_scan(float *y, const float *x, int64_t outer,
                              int64_t len, int64_t inner, int prod)
{
    LOOP(j, outer * inner) {
        int64_t base = j / inner * len * inner + j % inner;
        float acc = prod ? 1 : 0;
        for (int64_t k = 0; k < len; k++) {
            acc = prod ? acc * x[base + k * inner] : acc + x[base + k * inner];
            y[base + k * inner] = acc;
        }
    }
}

extern "C" int mm__cu_scan(float *y, const float *x, int64_t outer,
                           int64_t len, int64_t inner, int prod)
{
    LAUNCH(outer * inner, k_scan, y, x, outer, len, inner, prod);
}

/* cumsum: a reverse running sum; cumprod: R (in RS) then E R, as
 * tensor.c's backward_scan. */
__global__ static void k_scan_back(float *gx, float *rs, const float *x,
                                   const float *g, int64_t outer,
                                   int64_t len, int64_t inner, int prod)
{
    LOOP(j, outer * inner) {
        int64_t base = j / inner * len * inner + j % inner;
        if (!prod) {
            float acc = 0;
            for (int64_t k = len - 1; k >= 0; k--) {
                acc += g[base + k * inner];
                gx[base + k * inner] += acc;
            }
            continue;
        }
        float r = 0, e = 1;
        for (int64_t k = len - 1; k >= 0; k--) {
            r = g[base + k * inner] +
                (k + 1 < len ? x[base + (k + 1) * inner] * r : 0);
            rs[base + k * inner] = r;
        }
        for (int64_t k = 0; k < len; k++) {
            gx[base + k * inner] += e * rs[base + k * inner];
            e *= x[base + k * inner];
        }
    }
}

extern "C" int mm__cu_scan_back(float *gx, float *scratch, const float *x,
                                const float *g, int64_t outer, int64_t len,
                                int64_t inner, int prod)
{
    LAUNCH(outer * inner, k_scan_back, gx, scratch, x, g, outer, len, inner,
           prod);
}

__global__ static void k_blocks(float *d, int64_t ds, const float *s,
                                int64_t ss, int64_t blk, int add, int64_t n)
{
    LOOP(j, n) {
        int64_t o = j / blk, i = j % blk;
        if (add) d[o * ds + i] += s[o * ss + i];
        else d[o * ds + i] = s[o * ss + i];
    }
}

extern "C" int mm__cu_blocks(float *dst, int64_t ds, const float *src,
                             int64_t ss, int64_t outer, int64_t blk, int add)
{
    LAUNCH(outer * blk, k_blocks, dst, ds, src, ss, blk, add, outer * blk);
}

__global__ static void k_index_select(float *y, const float *x,
                                      const int64_t *ix, int64_t len,
                                      int64_t m, int64_t inner, int64_t n)
{
    LOOP(q, n) { /* q = (o m + j) inner + i */
        int64_t i = q % inner, r = q / inner, j = r % m, o = r / m;
        y[q] = x[(o * len + ix[j]) * inner + i];
    }
}

extern "C" int mm__cu_index_select(float *y, const float *x,
                                   const int64_t *ix, int64_t outer,
                                   int64_t len, int64_t m, int64_t inner)
{
    int64_t n = outer * m * inner;
    LAUNCH(n, k_index_select, y, x, ix, len, m, inner, n);
}

/* One thread per element of GX: the rows J that picked it, in order of J
 * (the CPU adds them in that order), listed by the host: rows
 * PERM[START[l]] .. PERM[START[l + 1] - 1] picked source row l. */
__global__ static void k_index_select_back(float *gx, const float *g,
                                           const int64_t *start,
                                           const int64_t *perm, int64_t len,
                                           int64_t m, int64_t inner,
                                           int64_t n)
{
    LOOP(q, n) { /* q = (o len + l) inner + i */
        int64_t i = q % inner, r = q / inner, l = r % len, o = r / len;
        float acc = gx[q];
        for (int64_t t = start[l]; t < start[l + 1]; t++)
            acc += g[(o * m + perm[t]) * inner + i];
        gx[q] = acc;
    }
}

extern "C" int mm__cu_index_select_back(float *gx, const float *g,
                                        const int64_t *start,
                                        const int64_t *perm, int64_t outer,
                                        int64_t len, int64_t m,
                                        int64_t inner)
{
    int64_t n = outer * len * inner;
    LAUNCH(n, k_index_select_back, gx, g, start, perm, len, m, inner, n);
}

/* gather over the padded 4-D shapes: ONE the output's sizes, XB the
 * input's strides, D the gathered dimension (0..3). */
__global__ static void k_gather(float *y, const float *x, const int64_t *ix,
                                mm__cu_i4 one, mm__cu_i4 xb, int d,
                                int64_t n)
{
    LOOP(i, n) {
        int64_t r = i, off = 0;
        for (int k = 3; k >= 0; k--) {
            int64_t c = r % one.v[k];
            r /= one.v[k];
            off += (k == d ? ix[i] : c) * xb.v[k];
        }
        y[i] = x[off];
    }
}

extern "C" int mm__cu_gather(float *y, const float *x, const int64_t *ix,
                             mm__cu_i4 one, mm__cu_i4 xb, int d)
{
    int64_t n = numel4(one);
    LAUNCH(n, k_gather, y, x, ix, one, xb, d, n);
}

/* One thread per fiber along D (distinct fibers hit distinct elements of
 * GX: they differ in a coordinate other than D), J in order. */
__global__ static void k_gather_back(float *gx, const float *g,
                                     const int64_t *ix, mm__cu_i4 one,
                                     mm__cu_i4 xb, int d, int64_t fibers)
{
    int64_t m = one.v[d], inner = 1;
    for (int k = d + 1; k < 4; k++) inner *= one.v[k];
    LOOP(f, fibers) {
        int64_t o = f / inner, i = f % inner;
        int64_t r = o * m * inner + i, off = 0;
        for (int k = 3; k >= 0; k--) {
            off += r % one.v[k] * xb.v[k];
            r /= one.v[k];
        }
        for (int64_t j = 0; j < m; j++) {
            int64_t q = (o * m + j) * inner + i;
            gx[off + ix[q] * xb.v[d]] += g[q];
        }
    }
}

extern "C" int mm__cu_gather_back(float *gx, const float *g,
                                  const int64_t *ix, mm__cu_i4 one,
                                  mm__cu_i4 xb, int d)
{
    int64_t fibers = numel4(one) / one.v[d];
    LAUNCH(fibers, k_gather_back, gx, g, ix, one, xb, d, fibers);
}

__global__ static void k_repeat(float *y, const float *x, mm__cu_i4 on,
                                mm__cu_i4 an, mm__cu_i4 ab, int64_t n)
{
    LOOP(i, n) {
        int64_t r = i, off = 0;
        for (int k = 3; k >= 0; k--) {
            off += (r % on.v[k]) % an.v[k] * ab.v[k];
            r /= on.v[k];
        }
        y[i] = x[off];
    }
}

extern "C" int mm__cu_repeat(float *y, const float *x, mm__cu_i4 on,
                             mm__cu_i4 an, mm__cu_i4 ab)
{
    int64_t n = numel4(on);
    LAUNCH(n, k_repeat, y, x, on, an, ab, n);
}

/* One thread per input element: its copies in the CPU's order. */
__global__ static void k_repeat_back(float *gx, const float *g, mm__cu_i4 on,
                                     mm__cu_i4 ob, mm__cu_i4 an, int64_t n)
{
    LOOP(e, n) {
        int64_t c[4], rp[4], r = e;
        for (int k = 3; k >= 0; k--) {
            c[k] = r % an.v[k];
            r /= an.v[k];
            rp[k] = on.v[k] / an.v[k];
        }
        float s = 0;
        for (int64_t r0 = 0; r0 < rp[0]; r0++)
            for (int64_t r1 = 0; r1 < rp[1]; r1++)
                for (int64_t r2 = 0; r2 < rp[2]; r2++)
                    for (int64_t r3 = 0; r3 < rp[3]; r3++)
                        s += g[(c[0] + r0 * an.v[0]) * ob.v[0] +
                               (c[1] + r1 * an.v[1]) * ob.v[1] +
                               (c[2] + r2 * an.v[2]) * ob.v[2] +
                               (c[3] + r3 * an.v[3]) * ob.v[3]];
        gx[e] += s;
    }
}

extern "C" int mm__cu_repeat_back(float *gx, const float *g, mm__cu_i4 on,
                                  mm__cu_i4 ob, mm__cu_i4 an)
{
    int64_t n = numel4(an);
    LAUNCH(n, k_repeat_back, gx, g, on, ob, an, n);
}

// ---- dropout ---------------------------------------------------------------------

/* mm_rand_u01 (lib/tensor.c) and mm_splitmix64 (lib/rng.c): integer mixing
 * and an exact conversion, so the draws are the CPU's bit for bit. */
__device__ static double rand_u01(uint64_t seed, uint64_t i)
{
    uint64_t z = seed + i * 0x9E3779B97F4A7C15ull + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (double)(z >> 11) * 0x1p-53;
}

/* M (the mask) and Y = X M + B; MK, BK for a kept element, MD, BD for a
 * dropped one (computed on the host as the CPU does). The product is
 * rounded before the add (__fmul_rn: no FMA), as on the CPU. */
__global__ static void k_dropout(float *y, float *m, const float *x,
                                 int64_t n, double p, uint64_t seed,
                                 float mk, float bk, float md, float bd)
{
    LOOP(i, n) {
        int keep = p < 1 && rand_u01(seed, (uint64_t)i) >= p;
        float mi = keep ? mk : md, bi = keep ? bk : bd;
        m[i] = mi;
        y[i] = __fmul_rn(x[i], mi) + bi;
    }
}

extern "C" int mm__cu_dropout(float *y, float *m, const float *x, int64_t n,
                              double p, uint64_t seed, float mk, float bk,
                              float md, float bd)
{
    LAUNCH(n, k_dropout, y, m, x, n, p, seed, mk, bk, md, bd);
}

__global__ static void k_mul_acc(float *gx, const float *g, const float *m,
                                 int64_t n)
{
    LOOP(i, n) gx[i] += __fmul_rn(g[i], m[i]);
}

extern "C" int mm__cu_mul_acc(float *gx, const float *g, const float *m,
                              int64_t n)
{
    LAUNCH(n, k_mul_acc, gx, g, m, n);
}

// ---- depthwise convolutions ------------------------------------------------------

/* conv1d_dw: X (BC, L, D), W (C, K); one thread per output element, taps
 * in order from zero (the CPU's accumulation into the zeroed output). */
__global__ static void k_conv1d(float *y, const float *x, const float *w,
                                int64_t C, int64_t L, int64_t D, int64_t K,
                                int64_t n)
{
    int64_t P = K / 2;
    LOOP(q, n) {
        int64_t e = q % D, r = q / D, bc = r / L, i = r % L;
        const float *xs = x + bc * L * D, *wc = w + bc % C * K;
        float acc = 0;
        for (int64_t k = 0; k < K; k++) {
            int64_t j = i + k - P;
            if (j < 0 || j >= L) continue;
            acc += wc[k] * xs[j * D + e];
        }
        y[q] = acc;
    }
}

extern "C" int mm__cu_conv1d_dw(float *y, const float *x, const float *w,
                                int64_t BC, int64_t C, int64_t L, int64_t D,
                                int64_t K)
{
    int64_t n = BC * L * D;
    LAUNCH(n, k_conv1d, y, x, w, C, L, D, K, n);
}

__global__ static void k_conv1d_bx(float *gx, const float *g, const float *w,
                                   int64_t C, int64_t L, int64_t D,
                                   int64_t K, int64_t n)
{
    int64_t P = K / 2;
    LOOP(q, n) {
        int64_t e = q % D, r = q / D, bc = r / L, j = r % L;
        const float *gs = g + bc * L * D, *wc = w + bc % C * K;
        float acc = gx[q];
        for (int64_t k = 0; k < K; k++) {
            int64_t i = j - k + P;
            if (i < 0 || i >= L) continue;
            acc += wc[k] * gs[i * D + e];
        }
        gx[q] = acc;
    }
}

__global__ static void k_conv1d_bw(float *gw, const float *g, const float *x,
                                   int64_t B, int64_t C, int64_t L,
                                   int64_t D, int64_t K)
{
    int64_t P = K / 2;
    LOOP(ck, C * K) {
        int64_t c = ck / K, k = ck % K;
        float s = 0;
        for (int64_t b = 0; b < B; b++) {
            const float *gs = g + (b * C + c) * L * D;
            const float *xs = x + (b * C + c) * L * D;
            for (int64_t i = 0; i < L; i++) {
                int64_t j = i + k - P;
                if (j < 0 || j >= L) continue;
                for (int64_t e = 0; e < D; e++) s += gs[i * D + e] * xs[j * D + e];
            }
        }
        gw[ck] += s;
    }
}

extern "C" int mm__cu_conv1d_dw_back(float *gx, float *gw, const float *x,
                                     const float *w, const float *g,
                                     int64_t B, int64_t C, int64_t L,
                                     int64_t D, int64_t K)
{
    if (gx) {
        int64_t n = B * C * L * D;
        k_conv1d_bx<<<grid_for(n), THREADS>>>(gx, g, w, C, L, D, K, n);
        if (launched()) return -1;
    }
    if (gw) {
        k_conv1d_bw<<<grid_for(C * K), THREADS>>>(gw, g, x, B, C, L, D, K);
        if (launched()) return -1;
    }
    return 0;
}

/* conv2d_dw: X (BC, H, W), W (C, k, k), bias (C) or NULL; stride 1, zero
 * padding k/2. One thread per output element. */
__global__ static void k_conv2d_dw(float *y, const float *x, const float *w,
                                   const float *b, int64_t C, int64_t H,
                                   int64_t W, int64_t k, int64_t n)
{
    int64_t P = k / 2;
    LOOP(q, n) {
        int64_t c = q % W, r = q / W % H, bc = q / (H * W);
        const float *xs = x + bc * H * W, *wc = w + bc % C * k * k;
        float s = b ? b[bc % C] : 0;
        for (int64_t u = 0; u < k; u++) {
            int64_t rr = r + u - P;
            if (rr < 0 || rr >= H) continue;
            for (int64_t v = 0; v < k; v++) {
                int64_t cc = c + v - P;
                if (cc >= 0 && cc < W) s += wc[u * k + v] * xs[rr * W + cc];
            }
        }
        y[q] = s;
    }
}

extern "C" int mm__cu_conv2d_dw(float *y, const float *x, const float *w,
                                const float *b, int64_t BC, int64_t C,
                                int64_t H, int64_t W, int64_t k)
{
    int64_t n = BC * H * W;
    LAUNCH(n, k_conv2d_dw, y, x, w, b, C, H, W, k, n);
}

__global__ static void k_conv2d_dw_bx(float *gx, const float *g,
                                      const float *w, int64_t C, int64_t H,
                                      int64_t W, int64_t k, int64_t n)
{
    int64_t P = k / 2;
    LOOP(q, n) {
        int64_t c = q % W, r = q / W % H, bc = q / (H * W);
        const float *gs = g + bc * H * W, *wc = w + bc % C * k * k;
        float s = 0;
        for (int64_t u = 0; u < k; u++) {
            int64_t rr = r - u + P;
            if (rr < 0 || rr >= H) continue;
            for (int64_t v = 0; v < k; v++) {
                int64_t cc = c - v + P;
                if (cc >= 0 && cc < W) s += wc[u * k + v] * gs[rr * W + cc];
            }
        }
        gx[q] += s;
    }
}

/* one thread per weight (c, u, v), or per channel for the bias (gw NULL) */
__global__ static void k_conv2d_dw_bw(float *gw, float *gb, const float *g,
                                      const float *x, int64_t B, int64_t C,
                                      int64_t H, int64_t W, int64_t k,
                                      int64_t n)
{
    int64_t P = k / 2;
    LOOP(q, n) {
        if (!gw) { /* the bias of channel q */
            float s = 0;
            for (int64_t b = 0; b < B; b++)
                for (int64_t i = 0; i < H * W; i++)
                    s += g[(b * C + q) * H * W + i];
            gb[q] += s;
            continue;
        }
        int64_t c = q / (k * k), u = q / k % k, v = q % k;
        float s = 0;
        for (int64_t b = 0; b < B; b++) {
            const float *gs = g + (b * C + c) * H * W;
            const float *xs = x + (b * C + c) * H * W;
            for (int64_t r = 0; r < H; r++) {
                int64_t rr = r + u - P;
                if (rr < 0 || rr >= H) continue;
                for (int64_t cl = 0; cl < W; cl++) {
                    int64_t cc = cl + v - P;
                    if (cc >= 0 && cc < W) s += gs[r * W + cl] * xs[rr * W + cc];
                }
            }
        }
        gw[q] += s;
    }
}

extern "C" int mm__cu_conv2d_dw_back(float *gx, float *gw, float *gb,
                                     const float *x, const float *w,
                                     const float *g, int64_t B, int64_t C,
                                     int64_t H, int64_t W, int64_t k)
{
    if (gx) {
        int64_t n = B * C * H * W;
        k_conv2d_dw_bx<<<grid_for(n), THREADS>>>(gx, g, w, C, H, W, k, n);
        if (launched()) return -1;
    }
    if (gw) {
        k_conv2d_dw_bw<<<grid_for(C * k * k), THREADS>>>(gw, NULL, g, x, B,
                                                          C, H, W, k,
                                                          C * k * k);
        if (launched()) return -1;
    }
    if (gb) {
        k_conv2d_dw_bw<<<grid_for(C), THREADS>>>(NULL, gb, g, x, B, C, H, W,
                                                  k, C);
        if (launched()) return -1;
    }
    return 0;
}

// ---- inference-only: im2col, pooling ---------------------------------------------

/* The CPU's im2col of one image X (C, H, W) into COL (C kh kw, OH OW). */
__global__ static void k_im2col(float *col, const float *x, int64_t H,
                                int64_t W, int64_t kh, int64_t kw,
                                int64_t OH, int64_t OW, int sh, int sw,
                                int ph, int pw, int64_t n)
{
    LOOP(q, n) {
        int64_t P = OH * OW, r = q / P, p = q % P;
        int64_t c = r / (kh * kw), u = r / kw % kh, v = r % kw;
        int64_t ih = p / OW * sh - ph + u, iw = p % OW * sw - pw + v;
        col[q] = ih >= 0 && ih < H && iw >= 0 && iw < W
                     ? x[(c * H + ih) * W + iw] : 0;
    }
}

extern "C" int mm__cu_im2col(float *col, const float *x, int64_t C,
                             int64_t H, int64_t W, int64_t kh, int64_t kw,
                             int64_t OH, int64_t OW, int sh, int sw, int ph,
                             int pw)
{
    int64_t n = C * kh * kw * OH * OW;
    LAUNCH(n, k_im2col, col, x, H, W, kh, kw, OH, OW, sh, sw, ph, pw, n);
}

/* Y (O, P) = bias[o] for every column (the CPU's fill before its GEMM). */
__global__ static void k_bias_rows(float *y, const float *b, int64_t P,
                                   int64_t n)
{
    LOOP(q, n) y[q] = b[q / P];
}

extern "C" int mm__cu_bias_rows(float *y, const float *b, int64_t O,
                                int64_t P)
{
    LAUNCH(O * P, k_bias_rows, y, b, P, O * P);
}

__global__ static void k_max_pool(float *y, const float *x, int64_t H,
                                  int64_t W, int64_t OH, int64_t OW, int k,
                                  int stride, int pad, int64_t n)
{
    LOOP(q, n) {
        int64_t ow = q % OW, oh = q / OW % OH, nc = q / (OH * OW);
        const float *xs = x + nc * H * W;
        float m = -INFINITY;
        for (int64_t u = 0; u < k; u++) {
            int64_t ih = oh * stride - pad + u;
            if (ih < 0 || ih >= H) continue;
            for (int64_t v = 0; v < k; v++) {
                int64_t iw = ow * stride - pad + v;
                if (iw < 0 || iw >= W) continue;
                float val = xs[ih * W + iw];
                if (val > m || val != val) m = val; /* NaN wins (torch) */
            }
        }
        y[q] = m;
    }
}

extern "C" int mm__cu_max_pool2d(float *y, const float *x, int64_t NC,
                                 int64_t H, int64_t W, int64_t OH,
                                 int64_t OW, int k, int stride, int pad)
{
    int64_t n = NC * OH * OW;
    LAUNCH(n, k_max_pool, y, x, H, W, OH, OW, k, stride, pad, n);
}

__global__ static void k_plane_mean(float *y, const float *x, int64_t HW,
                                    int64_t n)
{
    LOOP(nc, n) {
        float s = 0;
        for (int64_t i = 0; i < HW; i++) s += x[nc * HW + i];
        y[nc] = s / (float)HW;
    }
}

extern "C" int mm__cu_global_avg_pool2d(float *y, const float *x,
                                        int64_t NC, int64_t HW)
{
    LAUNCH(NC, k_plane_mean, y, x, HW, NC);
}
