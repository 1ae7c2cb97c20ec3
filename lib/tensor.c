/* tensor.c: contexts (arena + tape), tensors and views, the CPU kernels of
 * every op with their backward, parameter blocks and Adam/AdamW.
 * Not here: the CUDA backend (ops refuse tensors on MM_CUDA), file I/O.
 * Kernels are written once over `real` and instantiated for f32 and f64
 * by FOR_REAL; <tgmath.h> picks expf/exp to match.
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <cblas.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tgmath.h>

#include "mm/tensor.h"

#ifdef _OPENMP
#define OMP_FOR _Pragma("omp parallel for schedule(static)")
#else
#define OMP_FOR
#endif

/* Run the statements once with `real` = float (F32), else double (F64). */
#define FOR_REAL(dt, ...) \
    do { \
        if ((dt) == MM_F32) { typedef float real; __VA_ARGS__ } \
        else { typedef double real; __VA_ARGS__ } \
    } while (0)

enum {
    OP_NONE, OP_VIEW_RESHAPE, OP_VIEW_TRANSPOSE, OP_VIEW_SLICE, OP_CONT,
    OP_MATMUL, OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_SCALE, OP_EXP, OP_LOG,
    OP_SQRT, OP_TANH, OP_SIGMOID, OP_RELU, OP_GELU, OP_SUM, OP_MEAN,
    OP_SOFTMAX, OP_LOG_SOFTMAX, OP_LAYERNORM, OP_CROSS_ENTROPY
};

struct mm_tensor {
    mm_dtype dtype;
    mm_device device;
    int ndim;
    int64_t ne[MM_MAX_DIMS]; /* shape, numpy order */
    int64_t nb[MM_MAX_DIMS]; /* strides in elements */
    void *data;              /* first element */
    mm_tensor *grad;         /* contiguous, same shape and dtype */
    mm_ctx *ctx;             /* NULL for parameters */
    int requires_grad;
    /* autograd record */
    int op;
    mm_tensor *src[3];
    mm_tensor *tape_prev;
    double fp;      /* scalar parameter (scale, eps, smoothing) */
    int64_t ip[4];  /* integer parameters (axis, flags, ...) */
    void *aux;      /* saved forward state (layernorm stats, probs) */
};

// ---- arena -----------------------------------------------------------------

#define ARENA_ALIGN 64
#define ARENA_MIN ((size_t)1 << 20)

typedef struct block {
    struct block *next;
    size_t cap, used;
    unsigned char *base; /* aligned start */
    unsigned char mem[];
} block;

struct mm_ctx {
    block *blocks; /* newest first */
    size_t used, high_water, capacity, n_blocks;
    mm_tensor *tape; /* last recorded op */
    int no_grad;
    int failed;
    char err[512];
};

static block *block_new(size_t cap)
{
    block *b = mm_malloc(sizeof *b + cap + ARENA_ALIGN);
    uintptr_t p = (uintptr_t)b->mem;
    b->base = b->mem + ((ARENA_ALIGN - p % ARENA_ALIGN) % ARENA_ALIGN);
    b->cap = cap;
    b->used = 0;
    b->next = NULL;
    return b;
}

static void *arena_alloc(mm_ctx *ctx, size_t n)
{
    n = (n + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
    block *b = ctx->blocks;
    if (!b || b->cap - b->used < n) {
        size_t cap = b ? 2 * b->cap : ARENA_MIN;
        if (cap < n) cap = n;
        b = block_new(cap);
        b->next = ctx->blocks;
        ctx->blocks = b;
        ctx->capacity += cap;
        ctx->n_blocks++;
    }
    void *p = b->base + b->used;
    b->used += n;
    ctx->used += n;
    if (ctx->used > ctx->high_water) ctx->high_water = ctx->used;
    return p;
}

mm_ctx *mm_ctx_new(void)
{
    mm_ctx *ctx = mm_calloc(1, sizeof *ctx);
    return ctx;
}

void mm_ctx_free(mm_ctx *ctx)
{
    if (!ctx) return;
    for (block *b = ctx->blocks, *nx; b; b = nx) {
        nx = b->next;
        free(b);
    }
    free(ctx);
}

void mm_ctx_reset(mm_ctx *ctx)
{
    /* More than one block: replace them by one that holds them all, so the
     * next step with the same shapes fits without a malloc. */
    if (ctx->blocks && ctx->blocks->next) {
        size_t cap = 0;
        for (block *b = ctx->blocks, *nx; b; b = nx) {
            nx = b->next;
            cap += b->cap;
            free(b);
        }
        ctx->blocks = block_new(cap);
        ctx->capacity = cap;
        ctx->n_blocks++;
    }
    if (ctx->blocks) ctx->blocks->used = 0;
    ctx->used = 0;
    ctx->tape = NULL;
    ctx->failed = 0;
    ctx->err[0] = '\0';
}

int mm_ctx_no_grad(mm_ctx *ctx, int on)
{
    int old = ctx->no_grad;
    ctx->no_grad = on != 0;
    return old;
}

const char *mm_ctx_error(const mm_ctx *ctx)
{
    return ctx->failed ? ctx->err : NULL;
}

void mm_ctx_stats(const mm_ctx *ctx, mm_arena_stats *st)
{
    st->used = ctx->used;
    st->high_water = ctx->high_water;
    st->capacity = ctx->capacity;
    st->n_blocks = ctx->n_blocks;
}

static void *fail(mm_ctx *ctx, const char *fmt, ...) MM_PRINTF(2, 3);
static void *fail(mm_ctx *ctx, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (ctx && !ctx->failed) {
        ctx->failed = 1;
        memcpy(ctx->err, msg, sizeof msg);
    }
    mm__set_error("%s", msg);
    return NULL;
}

// ---- tensors ---------------------------------------------------------------

static int64_t numel_of(int ndim, const int64_t *ne)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= ne[i];
    return n;
}

static void set_contig_strides(mm_tensor *t)
{
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        t->nb[i] = s;
        s *= t->ne[i];
    }
}

static mm_tensor *header(mm_ctx *ctx, mm_dtype dt, int ndim,
                         const int64_t *shape)
{
    mm_tensor *t = arena_alloc(ctx, sizeof *t);
    memset(t, 0, sizeof *t);
    t->dtype = dt;
    t->device = MM_CPU;
    t->ndim = ndim;
    t->ctx = ctx;
    for (int i = 0; i < ndim; i++) t->ne[i] = shape[i];
    set_contig_strides(t);
    return t;
}

static int check_shape(mm_ctx *ctx, const char *what, int ndim,
                       const int64_t *shape)
{
    if (ndim < 0 || ndim > MM_MAX_DIMS) {
        fail(ctx, "%s: %d dimensions, expected 0 to %d", what, ndim,
             MM_MAX_DIMS);
        return -1;
    }
    for (int i = 0; i < ndim; i++)
        if (shape[i] < 1) {
            fail(ctx, "%s: dimension %d has size %lld, expected >= 1", what,
                 i, (long long)shape[i]);
            return -1;
        }
    return 0;
}

/* A zero-filled contiguous tensor without shape checks (internal). */
static mm_tensor *tnew(mm_ctx *ctx, mm_dtype dt, int ndim,
                       const int64_t *shape)
{
    mm_tensor *t = header(ctx, dt, ndim, shape);
    size_t n = (size_t)numel_of(ndim, shape) * mm_dtype_size(dt);
    t->data = arena_alloc(ctx, n);
    memset(t->data, 0, n);
    return t;
}

mm_tensor *mm_tensor_new(mm_ctx *ctx, mm_dtype dt, int ndim,
                         const int64_t *shape)
{
    if ((int)dt < 0 || dt >= MM_DTYPE_COUNT)
        return fail(ctx, "tensor: unknown dtype %d", (int)dt);
    if (check_shape(ctx, "tensor", ndim, shape)) return NULL;
    return tnew(ctx, dt, ndim, shape);
}

mm_tensor *mm_tensor_new1(mm_ctx *ctx, mm_dtype dt, int64_t n0)
{
    return mm_tensor_new(ctx, dt, 1, (int64_t[]){n0});
}

mm_tensor *mm_tensor_new2(mm_ctx *ctx, mm_dtype dt, int64_t n0, int64_t n1)
{
    return mm_tensor_new(ctx, dt, 2, (int64_t[]){n0, n1});
}

mm_tensor *mm_tensor_new3(mm_ctx *ctx, mm_dtype dt, int64_t n0, int64_t n1,
                          int64_t n2)
{
    return mm_tensor_new(ctx, dt, 3, (int64_t[]){n0, n1, n2});
}

mm_dtype mm_tensor_dtype(const mm_tensor *t) { return t->dtype; }
mm_device mm_tensor_device(const mm_tensor *t) { return t->device; }
int mm_tensor_ndim(const mm_tensor *t) { return t->ndim; }
int64_t mm_tensor_numel(const mm_tensor *t)
{
    return numel_of(t->ndim, t->ne);
}
void *mm_tensor_data(mm_tensor *t) { return t->data; }
mm_tensor *mm_tensor_grad(mm_tensor *t) { return t->grad; }
int mm_tensor_requires_grad(const mm_tensor *t) { return t->requires_grad; }

void mm_tensor_set_requires_grad(mm_tensor *t, int on)
{
    t->requires_grad = on != 0;
}

int64_t mm_tensor_dim(const mm_tensor *t, int i)
{
    if (i < 0) i += t->ndim;
    return i >= 0 && i < t->ndim ? t->ne[i] : 1;
}

int64_t mm_tensor_stride(const mm_tensor *t, int i)
{
    if (i < 0) i += t->ndim;
    return i >= 0 && i < t->ndim ? t->nb[i] : 1;
}

int mm_tensor_is_contiguous(const mm_tensor *t)
{
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->ne[i] != 1 && t->nb[i] != s) return 0;
        s *= t->ne[i];
    }
    return 1;
}

/* Shape and strides padded on the left to 4 dimensions. */
static void pad4(const mm_tensor *t, int64_t ne[4], int64_t nb[4])
{
    int off = 4 - t->ndim;
    for (int i = 0; i < 4; i++) {
        ne[i] = i < off ? 1 : t->ne[i - off];
        nb[i] = i < off ? 0 : t->nb[i - off];
    }
}

/* Element offset of the logical index I. */
static int64_t offset_of(const mm_tensor *t, int64_t i)
{
    int64_t off = 0;
    for (int d = t->ndim - 1; d >= 0; d--) {
        off += (i % t->ne[d]) * t->nb[d];
        i /= t->ne[d];
    }
    return off;
}

static double load(mm_dtype dt, const void *p, int64_t k)
{
    switch (dt) {
    case MM_F32: return ((const float *)p)[k];
    case MM_F64: return ((const double *)p)[k];
    case MM_F16: return mm_f16_to_f32(((const uint16_t *)p)[k]);
    case MM_U8: return ((const uint8_t *)p)[k];
    case MM_I32: return ((const int32_t *)p)[k];
    case MM_I64: return (double)((const int64_t *)p)[k];
    default: return 0;
    }
}

static void store(mm_dtype dt, void *p, int64_t k, double v)
{
    switch (dt) {
    case MM_F32: ((float *)p)[k] = (float)v; break;
    case MM_F64: ((double *)p)[k] = v; break;
    case MM_F16: ((uint16_t *)p)[k] = mm_f32_to_f16((float)v); break;
    case MM_U8: ((uint8_t *)p)[k] = (uint8_t)v; break;
    case MM_I32: ((int32_t *)p)[k] = (int32_t)v; break;
    case MM_I64: ((int64_t *)p)[k] = (int64_t)v; break;
    default: break;
    }
}

double mm_tensor_get1(const mm_tensor *t, int64_t i)
{
    return load(t->dtype, t->data, offset_of(t, i));
}

int mm_tensor_set_f64(mm_tensor *t, const double *src, int64_t n)
{
    if (n != mm_tensor_numel(t)) {
        mm__set_error("tensor: %lld values for %lld elements", (long long)n,
                      (long long)mm_tensor_numel(t));
        return -1;
    }
    for (int64_t i = 0; i < n; i++)
        store(t->dtype, t->data, offset_of(t, i), src[i]);
    return 0;
}

int mm_tensor_get_f64(const mm_tensor *t, double *dst, int64_t n)
{
    if (n != mm_tensor_numel(t)) {
        mm__set_error("tensor: %lld values for %lld elements", (long long)n,
                      (long long)mm_tensor_numel(t));
        return -1;
    }
    for (int64_t i = 0; i < n; i++)
        dst[i] = load(t->dtype, t->data, offset_of(t, i));
    return 0;
}

void mm_tensor_fill(mm_tensor *t, double v)
{
    int64_t n = mm_tensor_numel(t);
    for (int64_t i = 0; i < n; i++)
        store(t->dtype, t->data, offset_of(t, i), v);
}

// ---- op plumbing -------------------------------------------------------------

static int is_real(mm_dtype dt) { return dt == MM_F32 || dt == MM_F64; }

/* Inputs of a real op: on one backend, real, one dtype. The backend switch
 * lives here: a CUDA tensor has no kernels yet. */
static int check_inputs(mm_ctx *ctx, const char *op, mm_tensor *a,
                        mm_tensor *b)
{
    if (a->device != MM_CPU || (b && b->device != MM_CPU)) {
        fail(ctx, "%s: no CUDA kernel in this build", op);
        return -1;
    }
    if (!is_real(a->dtype) || (b && b->dtype != a->dtype)) {
        fail(ctx, "%s: expected f32 or f64 inputs of one dtype, got %s%s%s",
             op, mm_dtype_name(a->dtype), b ? " and " : "",
             b ? mm_dtype_name(b->dtype) : "");
        return -1;
    }
    return 0;
}

/* Record OUT on the tape when grad mode is on and a source needs grad. */
static mm_tensor *record(mm_ctx *ctx, mm_tensor *out, int op, mm_tensor *a,
                         mm_tensor *b, mm_tensor *c)
{
    out->op = op;
    out->src[0] = a;
    out->src[1] = b;
    out->src[2] = c;
    int need = (a && a->requires_grad) || (b && b->requires_grad) ||
               (c && c->requires_grad);
    if (need && !ctx->no_grad) {
        out->requires_grad = 1;
        out->tape_prev = ctx->tape;
        ctx->tape = out;
    }
    return out;
}

static mm_tensor *grad_of(mm_ctx *ctx, mm_tensor *t)
{
    if (!t->grad) t->grad = tnew(ctx, t->dtype, t->ndim, t->ne);
    return t->grad;
}

static int norm_axis(int axis, int ndim)
{
    if (axis < 0) axis += ndim;
    return axis >= 0 && axis < ndim ? axis : -1;
}

/* DST[k] = SRC at logical index k (SRC strided, DST contiguous). */
static void copy_to_contig(mm_dtype dt, void *dst, const mm_tensor *src)
{
    int64_t ne[4], nb[4];
    pad4(src, ne, nb);
    int64_t rows = ne[0] * ne[1] * ne[2];
    FOR_REAL(dt, {
        real *d = dst;
        const real *s = src->data;
        OMP_FOR
        for (int64_t r = 0; r < rows; r++) {
            int64_t i2 = r % ne[2], i1 = r / ne[2] % ne[1],
                    i0 = r / ne[2] / ne[1];
            const real *sr = s + i0 * nb[0] + i1 * nb[1] + i2 * nb[2];
            real *dr = d + r * ne[3];
            for (int64_t i3 = 0; i3 < ne[3]; i3++) dr[i3] = sr[i3 * nb[3]];
        }
    });
}

/* DST at element strides NB (shape NE, 4-D) += contiguous SRC. Distinct
 * logical indices map to distinct DST elements (views never alias). */
static void add_strided(mm_dtype dt, void *dst, const int64_t ne[4],
                        const int64_t nb[4], const void *src)
{
    int64_t rows = ne[0] * ne[1] * ne[2];
    FOR_REAL(dt, {
        real *d = dst;
        const real *s = src;
        OMP_FOR
        for (int64_t r = 0; r < rows; r++) {
            int64_t i2 = r % ne[2], i1 = r / ne[2] % ne[1],
                    i0 = r / ne[2] / ne[1];
            real *dr = d + i0 * nb[0] + i1 * nb[1] + i2 * nb[2];
            const real *sr = s + r * ne[3];
            for (int64_t i3 = 0; i3 < ne[3]; i3++) dr[i3 * nb[3]] += sr[i3];
        }
    });
}

static void add_flat(mm_dtype dt, void *dst, const void *src, int64_t n)
{
    FOR_REAL(dt, {
        real *d = dst;
        const real *s = src;
        OMP_FOR
        for (int64_t i = 0; i < n; i++) d[i] += s[i];
    });
}

// ---- views -------------------------------------------------------------------

mm_tensor *mm_tensor_contiguous(mm_ctx *ctx, mm_tensor *a)
{
    if (!a) return NULL;
    if (mm_tensor_is_contiguous(a)) return a;
    if (check_inputs(ctx, "contiguous", a, NULL)) return NULL;
    mm_tensor *out = tnew(ctx, a->dtype, a->ndim, a->ne);
    copy_to_contig(a->dtype, out->data, a);
    return record(ctx, out, OP_CONT, a, NULL, NULL);
}

static mm_tensor *view_of(mm_ctx *ctx, mm_tensor *a)
{
    mm_tensor *v = header(ctx, a->dtype, a->ndim, a->ne);
    memcpy(v->nb, a->nb, sizeof v->nb);
    v->data = a->data;
    v->device = a->device;
    return v;
}

mm_tensor *mm_tensor_reshape(mm_ctx *ctx, mm_tensor *a, int ndim,
                             const int64_t *shape)
{
    if (!a) return NULL;
    if (ndim < 0 || ndim > MM_MAX_DIMS)
        return fail(ctx, "reshape: %d dimensions, expected 0 to %d", ndim,
                    MM_MAX_DIMS);
    int64_t ne[MM_MAX_DIMS], known = 1;
    int infer = -1;
    for (int i = 0; i < ndim; i++) {
        ne[i] = shape[i];
        if (shape[i] == -1 && infer < 0) infer = i;
        else if (shape[i] < 1)
            return fail(ctx, "reshape: bad size %lld in dimension %d",
                        (long long)shape[i], i);
        else known *= shape[i];
    }
    int64_t n = mm_tensor_numel(a);
    if (infer >= 0) {
        if (n % known)
            return fail(ctx, "reshape: %lld elements do not divide by %lld",
                        (long long)n, (long long)known);
        ne[infer] = n / known;
        known = n;
    }
    if (known != n)
        return fail(ctx, "reshape: %lld elements into a shape of %lld",
                    (long long)n, (long long)known);
    mm_tensor *c = mm_tensor_contiguous(ctx, a);
    if (!c) return NULL;
    mm_tensor *v = header(ctx, a->dtype, ndim, ne);
    v->data = c->data;
    v->device = c->device;
    return record(ctx, v, OP_VIEW_RESHAPE, c, NULL, NULL);
}

mm_tensor *mm_tensor_transpose(mm_ctx *ctx, mm_tensor *a, int d0, int d1)
{
    if (!a) return NULL;
    int i = norm_axis(d0, a->ndim), j = norm_axis(d1, a->ndim);
    if (i < 0 || j < 0)
        return fail(ctx, "transpose: dimensions %d, %d of a %d-D tensor", d0,
                    d1, a->ndim);
    mm_tensor *v = view_of(ctx, a);
    v->ne[i] = a->ne[j];
    v->ne[j] = a->ne[i];
    v->nb[i] = a->nb[j];
    v->nb[j] = a->nb[i];
    v->ip[0] = i;
    v->ip[1] = j;
    return record(ctx, v, OP_VIEW_TRANSPOSE, a, NULL, NULL);
}

mm_tensor *mm_tensor_slice(mm_ctx *ctx, mm_tensor *a, int dim, int64_t start,
                           int64_t len)
{
    if (!a) return NULL;
    int d = norm_axis(dim, a->ndim);
    if (d < 0)
        return fail(ctx, "slice: dimension %d of a %d-D tensor", dim,
                    a->ndim);
    if (start < 0 || len < 1 || start + len > a->ne[d])
        return fail(ctx, "slice: [%lld, %lld) outside 0..%lld",
                    (long long)start, (long long)(start + len),
                    (long long)a->ne[d]);
    mm_tensor *v = view_of(ctx, a);
    v->ne[d] = len;
    v->data = (char *)a->data + start * a->nb[d] * mm_dtype_size(a->dtype);
    v->ip[0] = d;
    v->ip[1] = start;
    return record(ctx, v, OP_VIEW_SLICE, a, NULL, NULL);
}

mm_tensor *mm_tensor_cast(mm_ctx *ctx, mm_tensor *a, mm_dtype dt)
{
    if (!a) return NULL;
    if ((int)dt < 0 || dt >= MM_DTYPE_COUNT)
        return fail(ctx, "cast: unknown dtype %d", (int)dt);
    if (a->device != MM_CPU)
        return fail(ctx, "cast: no CUDA kernel in this build");
    mm_tensor *out = tnew(ctx, dt, a->ndim, a->ne);
    int64_t n = mm_tensor_numel(a);
    for (int64_t i = 0; i < n; i++)
        store(dt, out->data, i, load(a->dtype, a->data, offset_of(a, i)));
    return out;
}

static void backward_view(mm_tensor *t)
{
    mm_tensor *a = t->src[0];
    mm_tensor *ga = grad_of(t->ctx, a);
    int64_t n = mm_tensor_numel(t);
    if (t->op == OP_VIEW_RESHAPE || t->op == OP_CONT) {
        add_flat(a->dtype, ga->data, t->grad->data, n);
        return;
    }
    /* the grad of A is contiguous in A's logical order: address it with
     * the view's shape and A's contiguous strides, rearranged */
    mm_tensor tmp = *ga;
    char *base = ga->data;
    if (t->op == OP_VIEW_TRANSPOSE) {
        int i = (int)t->ip[0], j = (int)t->ip[1];
        int64_t s = tmp.nb[i];
        tmp.nb[i] = tmp.nb[j];
        tmp.nb[j] = s;
        tmp.ne[i] = t->ne[i];
        tmp.ne[j] = t->ne[j];
    } else { /* slice */
        int d = (int)t->ip[0];
        base += t->ip[1] * tmp.nb[d] * mm_dtype_size(a->dtype);
        tmp.ne[d] = t->ne[d];
    }
    int64_t ne[4], nb[4];
    pad4(&tmp, ne, nb);
    add_strided(a->dtype, base, ne, nb, t->grad->data);
}

// ---- matmul ------------------------------------------------------------------

static void gemm(mm_dtype dt, int ta, int tb, int m, int n, int k,
                 const void *a, int lda, const void *b, int ldb, double beta,
                 void *c, int ldc)
{
    enum CBLAS_TRANSPOSE ca = ta ? CblasTrans : CblasNoTrans;
    enum CBLAS_TRANSPOSE cb = tb ? CblasTrans : CblasNoTrans;
    if (dt == MM_F32)
        cblas_sgemm(CblasRowMajor, ca, cb, m, n, k, 1.0f, a, lda, b, ldb,
                    (float)beta, c, ldc);
    else
        cblas_dgemm(CblasRowMajor, ca, cb, m, n, k, 1.0, a, lda, b, ldb,
                    beta, c, ldc);
}

/* The geometry of a matmul, from its (contiguous) operands. */
typedef struct {
    int64_t batch, m, n, k, sa, sb; /* sa/sb: batch strides, 0 = shared */
} mmgeo;

static mmgeo geometry(const mm_tensor *a, const mm_tensor *b, int ta, int tb)
{
    mmgeo g;
    int64_t ar = a->ne[a->ndim - 2], ac = a->ne[a->ndim - 1];
    int64_t br = b->ne[b->ndim - 2], bc = b->ne[b->ndim - 1];
    g.m = ta ? ac : ar;
    g.k = ta ? ar : ac;
    g.n = tb ? br : bc;
    int64_t ba = numel_of(a->ndim - 2, a->ne), bb = numel_of(b->ndim - 2,
                                                              b->ne);
    g.batch = ba > bb ? ba : bb;
    g.sa = ba > 1 || bb == 1 ? ar * ac : 0;
    g.sb = bb > 1 || ba == 1 ? br * bc : 0;
    if (b->ndim == 2 && !ta && ba > 1) { /* fold A's batch into M */
        g.m *= ba;
        g.batch = 1;
    }
    return g;
}

mm_tensor *mm_tensor_matmul(mm_ctx *ctx, mm_tensor *a, mm_tensor *b, int ta,
                            int tb)
{
    if (!a || !b) return NULL;
    if (check_inputs(ctx, "matmul", a, b)) return NULL;
    if (a->ndim < 2 || b->ndim < 2)
        return fail(ctx, "matmul: operands must have >= 2 dimensions, got "
                         "%d and %d", a->ndim, b->ndim);
    int64_t ka = ta ? a->ne[a->ndim - 2] : a->ne[a->ndim - 1];
    int64_t kb = tb ? b->ne[b->ndim - 1] : b->ne[b->ndim - 2];
    if (ka != kb)
        return fail(ctx, "matmul: inner sizes differ (%lld vs %lld)",
                    (long long)ka, (long long)kb);
    if (a->ndim > 2 && b->ndim > 2 &&
        (a->ndim != b->ndim ||
         memcmp(a->ne, b->ne, (size_t)(a->ndim - 2) * sizeof a->ne[0])))
        return fail(ctx, "matmul: batch dimensions differ");
    a = mm_tensor_contiguous(ctx, a);
    b = mm_tensor_contiguous(ctx, b);
    if (!a || !b) return NULL;
    mmgeo g = geometry(a, b, ta, tb);
    const mm_tensor *lead = a->ndim >= b->ndim ? a : b;
    int64_t ne[MM_MAX_DIMS];
    int nd = lead->ndim;
    memcpy(ne, lead->ne, sizeof ne);
    ne[nd - 2] = ta ? a->ne[a->ndim - 1] : a->ne[a->ndim - 2];
    ne[nd - 1] = g.n;
    mm_tensor *out = tnew(ctx, a->dtype, nd, ne);
    size_t es = mm_dtype_size(a->dtype);
    int lda = (int)(ta ? g.m : g.k), ldb = (int)(tb ? g.k : g.n);
    for (int64_t i = 0; i < g.batch; i++)
        gemm(a->dtype, ta, tb, (int)g.m, (int)g.n, (int)g.k,
             (char *)a->data + i * g.sa * es, lda,
             (char *)b->data + i * g.sb * es, ldb, 0.0,
             (char *)out->data + i * g.m * g.n * es, (int)g.n);
    out->ip[0] = ta;
    out->ip[1] = tb;
    return record(ctx, out, OP_MATMUL, a, b, NULL);
}

static void backward_matmul(mm_tensor *t)
{
    mm_tensor *a = t->src[0], *b = t->src[1];
    int ta = (int)t->ip[0], tb = (int)t->ip[1];
    mmgeo g = geometry(a, b, ta, tb);
    size_t es = mm_dtype_size(a->dtype);
    int M = (int)g.m, N = (int)g.n, K = (int)g.k;
    int lda = ta ? M : K, ldb = tb ? K : N;
    const char *gc = t->grad->data;
    /* Batches run in order, so a shared operand's grad sums in a fixed
     * order (beta = 1 accumulates). */
    if (a->requires_grad) {
        char *ga = grad_of(t->ctx, a)->data;
        for (int64_t i = 0; i < g.batch; i++) {
            const char *bi = (char *)b->data + i * g.sb * es;
            const char *ci = gc + i * g.m * g.n * es;
            char *gai = ga + i * g.sa * es;
            if (!ta) /* dA = dC op(B)^T */
                gemm(a->dtype, 0, !tb, M, K, N, ci, N, bi, ldb, 1.0, gai, K);
            else     /* dA = op(B) dC^T */
                gemm(a->dtype, tb, 1, K, M, N, bi, ldb, ci, N, 1.0, gai, M);
        }
    }
    if (b->requires_grad) {
        char *gb = grad_of(t->ctx, b)->data;
        for (int64_t i = 0; i < g.batch; i++) {
            const char *ai = (char *)a->data + i * g.sa * es;
            const char *ci = gc + i * g.m * g.n * es;
            char *gbi = gb + i * g.sb * es;
            if (!tb) /* dB = op(A)^T dC */
                gemm(a->dtype, !ta, 0, K, N, M, ai, lda, ci, N, 1.0, gbi, N);
            else     /* dB = dC^T op(A) */
                gemm(a->dtype, 1, ta, N, K, M, ci, N, ai, lda, 1.0, gbi, K);
        }
    }
}

// ---- broadcasting binary ops ---------------------------------------------------

/* Broadcast strides of T against the 4-D output shape NE. */
static void bcast4(const mm_tensor *t, const int64_t ne[4], int64_t nb[4])
{
    int64_t tne[4], tnb[4];
    pad4(t, tne, tnb);
    int64_t s = 1;
    for (int i = 3; i >= 0; i--) {
        nb[i] = tne[i] == 1 && ne[i] != 1 ? 0 : s;
        s *= tne[i];
    }
}

static mm_tensor *binary(mm_ctx *ctx, int op, const char *name, mm_tensor *a,
                         mm_tensor *b)
{
    if (!a || !b) return NULL;
    if (check_inputs(ctx, name, a, b)) return NULL;
    int nd = a->ndim > b->ndim ? a->ndim : b->ndim;
    int64_t ne[MM_MAX_DIMS];
    for (int i = 0; i < nd; i++) {
        int ia = i - (nd - a->ndim), ib = i - (nd - b->ndim);
        int64_t x = ia >= 0 ? a->ne[ia] : 1, y = ib >= 0 ? b->ne[ib] : 1;
        if (x != y && x != 1 && y != 1)
            return fail(ctx, "%s: shapes do not broadcast (dimension %d: "
                             "%lld vs %lld)", name, i, (long long)x,
                        (long long)y);
        ne[i] = x > y ? x : y;
    }
    a = mm_tensor_contiguous(ctx, a);
    b = mm_tensor_contiguous(ctx, b);
    if (!a || !b) return NULL;
    mm_tensor *out = tnew(ctx, a->dtype, nd, ne);
    int64_t n4[4], sa[4], sb[4];
    pad4(out, n4, sa);
    bcast4(a, n4, sa);
    bcast4(b, n4, sb);
    int64_t rows = n4[0] * n4[1] * n4[2];
    FOR_REAL(a->dtype, {
        const real *x = a->data, *y = b->data;
        real *z = out->data;
        OMP_FOR
        for (int64_t r = 0; r < rows; r++) {
            int64_t i2 = r % n4[2], i1 = r / n4[2] % n4[1],
                    i0 = r / n4[2] / n4[1];
            const real *xr = x + i0 * sa[0] + i1 * sa[1] + i2 * sa[2];
            const real *yr = y + i0 * sb[0] + i1 * sb[1] + i2 * sb[2];
            real *zr = z + r * n4[3];
            int64_t s3 = sa[3], t3 = sb[3];
            switch (op) {
            case OP_ADD:
                for (int64_t i = 0; i < n4[3]; i++)
                    zr[i] = xr[i * s3] + yr[i * t3];
                break;
            case OP_SUB:
                for (int64_t i = 0; i < n4[3]; i++)
                    zr[i] = xr[i * s3] - yr[i * t3];
                break;
            case OP_MUL:
                for (int64_t i = 0; i < n4[3]; i++)
                    zr[i] = xr[i * s3] * yr[i * t3];
                break;
            default:
                for (int64_t i = 0; i < n4[3]; i++)
                    zr[i] = xr[i * s3] / yr[i * t3];
                break;
            }
        }
    });
    return record(ctx, out, op, a, b, NULL);
}

mm_tensor *mm_tensor_add(mm_ctx *ctx, mm_tensor *a, mm_tensor *b)
{
    return binary(ctx, OP_ADD, "add", a, b);
}
mm_tensor *mm_tensor_sub(mm_ctx *ctx, mm_tensor *a, mm_tensor *b)
{
    return binary(ctx, OP_SUB, "sub", a, b);
}
mm_tensor *mm_tensor_mul(mm_ctx *ctx, mm_tensor *a, mm_tensor *b)
{
    return binary(ctx, OP_MUL, "mul", a, b);
}
mm_tensor *mm_tensor_div(mm_ctx *ctx, mm_tensor *a, mm_tensor *b)
{
    return binary(ctx, OP_DIV, "div", a, b);
}

/* d(out)/d(src WHICH) times G, for one element. */
#define BIN_PARTIAL(op, which, g, x, y) \
    ((op) == OP_ADD ? (g) \
     : (op) == OP_SUB ? ((which) ? -(g) : (g)) \
     : (op) == OP_MUL ? ((which) ? (g) * (x) : (g) * (y)) \
     : ((which) ? -(g) * (x) / ((y) * (y)) : (g) / (y)))

static void backward_binary(mm_tensor *t)
{
    int op = t->op;
    int64_t n4[4], s[2][4], ignore[4];
    pad4(t, n4, ignore);
    int64_t rows = n4[0] * n4[1] * n4[2];
    for (int w = 0; w < 2; w++) {
        mm_tensor *src = t->src[w];
        if (!src->requires_grad) continue;
        bcast4(t->src[0], n4, s[0]);
        bcast4(t->src[1], n4, s[1]);
        int same = mm_tensor_numel(src) == mm_tensor_numel(t);
        FOR_REAL(t->dtype, {
            const real *x = t->src[0]->data, *y = t->src[1]->data;
            const real *gz = t->grad->data;
            real *gs = grad_of(t->ctx, src)->data;
            const int64_t *p = s[0], *q = s[1], *d = s[w];
            /* a broadcast source sums over repeated rows: one thread, in
             * order; a full-size one writes distinct elements in parallel */
            if (same) {
                OMP_FOR
                for (int64_t r = 0; r < rows; r++) {
                    int64_t i2 = r % n4[2], i1 = r / n4[2] % n4[1],
                            i0 = r / n4[2] / n4[1];
                    const real *xr = x + i0 * p[0] + i1 * p[1] + i2 * p[2];
                    const real *yr = y + i0 * q[0] + i1 * q[1] + i2 * q[2];
                    real *gr = gs + i0 * d[0] + i1 * d[1] + i2 * d[2];
                    const real *g = gz + r * n4[3];
                    for (int64_t i = 0; i < n4[3]; i++)
                        gr[i * d[3]] += BIN_PARTIAL(op, w, g[i],
                                                    xr[i * p[3]],
                                                    yr[i * q[3]]);
                }
            } else {
                for (int64_t r = 0; r < rows; r++) {
                    int64_t i2 = r % n4[2], i1 = r / n4[2] % n4[1],
                            i0 = r / n4[2] / n4[1];
                    const real *xr = x + i0 * p[0] + i1 * p[1] + i2 * p[2];
                    const real *yr = y + i0 * q[0] + i1 * q[1] + i2 * q[2];
                    real *gr = gs + i0 * d[0] + i1 * d[1] + i2 * d[2];
                    const real *g = gz + r * n4[3];
                    for (int64_t i = 0; i < n4[3]; i++)
                        gr[i * d[3]] += BIN_PARTIAL(op, w, g[i],
                                                    xr[i * p[3]],
                                                    yr[i * q[3]]);
                }
            }
        });
    }
}

// ---- unary ops -----------------------------------------------------------------

static mm_tensor *unary(mm_ctx *ctx, int op, const char *name, mm_tensor *a,
                        double s)
{
    if (!a) return NULL;
    if (check_inputs(ctx, name, a, NULL)) return NULL;
    a = mm_tensor_contiguous(ctx, a);
    if (!a) return NULL;
    mm_tensor *out = tnew(ctx, a->dtype, a->ndim, a->ne);
    int64_t n = mm_tensor_numel(a);
    FOR_REAL(a->dtype, {
        const real *x = a->data;
        real *y = out->data;
        real sc = (real)s;
        switch (op) {
        case OP_SCALE:
            OMP_FOR for (int64_t i = 0; i < n; i++) y[i] = sc * x[i];
            break;
        case OP_EXP:
            OMP_FOR for (int64_t i = 0; i < n; i++) y[i] = exp(x[i]);
            break;
        case OP_LOG:
            OMP_FOR for (int64_t i = 0; i < n; i++) y[i] = log(x[i]);
            break;
        case OP_SQRT:
            OMP_FOR for (int64_t i = 0; i < n; i++) y[i] = sqrt(x[i]);
            break;
        case OP_TANH:
            OMP_FOR for (int64_t i = 0; i < n; i++) y[i] = tanh(x[i]);
            break;
        case OP_SIGMOID:
            OMP_FOR for (int64_t i = 0; i < n; i++)
                y[i] = 1 / (1 + exp(-x[i]));
            break;
        case OP_RELU:
            OMP_FOR for (int64_t i = 0; i < n; i++)
                y[i] = x[i] > 0 ? x[i] : 0;
            break;
        case OP_GELU:
            OMP_FOR for (int64_t i = 0; i < n; i++)
                y[i] = (real)0.5 * x[i] *
                       (1 + erf(x[i] * (real)0.70710678118654752440));
            break;
        default: break;
        }
    });
    out->fp = s;
    return record(ctx, out, op, a, NULL, NULL);
}

mm_tensor *mm_tensor_scale(mm_ctx *ctx, mm_tensor *a, double s)
{
    return unary(ctx, OP_SCALE, "scale", a, s);
}
mm_tensor *mm_tensor_exp(mm_ctx *ctx, mm_tensor *a)
{
    return unary(ctx, OP_EXP, "exp", a, 0);
}
mm_tensor *mm_tensor_log(mm_ctx *ctx, mm_tensor *a)
{
    return unary(ctx, OP_LOG, "log", a, 0);
}
mm_tensor *mm_tensor_sqrt(mm_ctx *ctx, mm_tensor *a)
{
    return unary(ctx, OP_SQRT, "sqrt", a, 0);
}
mm_tensor *mm_tensor_tanh(mm_ctx *ctx, mm_tensor *a)
{
    return unary(ctx, OP_TANH, "tanh", a, 0);
}
mm_tensor *mm_tensor_sigmoid(mm_ctx *ctx, mm_tensor *a)
{
    return unary(ctx, OP_SIGMOID, "sigmoid", a, 0);
}
mm_tensor *mm_tensor_relu(mm_ctx *ctx, mm_tensor *a)
{
    return unary(ctx, OP_RELU, "relu", a, 0);
}
mm_tensor *mm_tensor_gelu(mm_ctx *ctx, mm_tensor *a)
{
    return unary(ctx, OP_GELU, "gelu", a, 0);
}

static void backward_unary(mm_tensor *t)
{
    mm_tensor *a = t->src[0];
    int64_t n = mm_tensor_numel(t);
    int op = t->op;
    FOR_REAL(t->dtype, {
        const real *x = a->data, *y = t->data, *g = t->grad->data;
        real *gx = grad_of(t->ctx, a)->data;
        real sc = (real)t->fp;
        switch (op) {
        case OP_SCALE:
            OMP_FOR for (int64_t i = 0; i < n; i++) gx[i] += sc * g[i];
            break;
        case OP_EXP:
            OMP_FOR for (int64_t i = 0; i < n; i++) gx[i] += g[i] * y[i];
            break;
        case OP_LOG:
            OMP_FOR for (int64_t i = 0; i < n; i++) gx[i] += g[i] / x[i];
            break;
        case OP_SQRT:
            OMP_FOR for (int64_t i = 0; i < n; i++)
                gx[i] += g[i] * (real)0.5 / y[i];
            break;
        case OP_TANH:
            OMP_FOR for (int64_t i = 0; i < n; i++)
                gx[i] += g[i] * (1 - y[i] * y[i]);
            break;
        case OP_SIGMOID:
            OMP_FOR for (int64_t i = 0; i < n; i++)
                gx[i] += g[i] * y[i] * (1 - y[i]);
            break;
        case OP_RELU:
            OMP_FOR for (int64_t i = 0; i < n; i++)
                gx[i] += x[i] > 0 ? g[i] : 0;
            break;
        case OP_GELU:
            OMP_FOR for (int64_t i = 0; i < n; i++) {
                real cdf = (real)0.5 *
                           (1 + erf(x[i] * (real)0.70710678118654752440));
                real pdf = exp((real)-0.5 * x[i] * x[i]) *
                           (real)0.39894228040143267794;
                gx[i] += g[i] * (cdf + x[i] * pdf);
            }
            break;
        default: break;
        }
    });
}

// ---- reductions ------------------------------------------------------------------

static mm_tensor *reduce(mm_ctx *ctx, int op, const char *name, mm_tensor *a,
                         int axis, int keepdim)
{
    if (!a) return NULL;
    if (check_inputs(ctx, name, a, NULL)) return NULL;
    int ax = norm_axis(axis, a->ndim);
    if (ax < 0)
        return fail(ctx, "%s: axis %d of a %d-D tensor", name, axis,
                    a->ndim);
    a = mm_tensor_contiguous(ctx, a);
    if (!a) return NULL;
    int64_t ne[MM_MAX_DIMS];
    int nd = 0;
    for (int i = 0; i < a->ndim; i++)
        if (i != ax) ne[nd++] = a->ne[i];
        else if (keepdim) ne[nd++] = 1;
    mm_tensor *out = tnew(ctx, a->dtype, nd, ne);
    int64_t outer = numel_of(ax, a->ne), len = a->ne[ax];
    int64_t inner = numel_of(a->ndim - ax - 1, a->ne + ax + 1);
    double sc = op == OP_MEAN ? 1.0 / (double)len : 1.0;
    FOR_REAL(a->dtype, {
        const real *x = a->data;
        real *y = out->data;
        OMP_FOR
        for (int64_t o = 0; o < outer; o++) {
            real *yo = y + o * inner;
            for (int64_t k = 0; k < len; k++) {
                const real *xk = x + (o * len + k) * inner;
                for (int64_t i = 0; i < inner; i++) yo[i] += xk[i];
            }
            for (int64_t i = 0; i < inner; i++) yo[i] *= (real)sc;
        }
    });
    out->ip[0] = ax;
    out->fp = sc;
    return record(ctx, out, op, a, NULL, NULL);
}

mm_tensor *mm_tensor_sum(mm_ctx *ctx, mm_tensor *a, int axis, int keepdim)
{
    return reduce(ctx, OP_SUM, "sum", a, axis, keepdim);
}
mm_tensor *mm_tensor_mean(mm_ctx *ctx, mm_tensor *a, int axis, int keepdim)
{
    return reduce(ctx, OP_MEAN, "mean", a, axis, keepdim);
}

mm_tensor *mm_tensor_sum_all(mm_ctx *ctx, mm_tensor *a)
{
    mm_tensor *f = mm_tensor_reshape(ctx, a, 1, (int64_t[]){-1});
    return mm_tensor_sum(ctx, f, 0, 0);
}

static void backward_reduce(mm_tensor *t)
{
    mm_tensor *a = t->src[0];
    int ax = (int)t->ip[0];
    int64_t outer = numel_of(ax, a->ne), len = a->ne[ax];
    int64_t inner = numel_of(a->ndim - ax - 1, a->ne + ax + 1);
    FOR_REAL(t->dtype, {
        const real *g = t->grad->data;
        real *gx = grad_of(t->ctx, a)->data;
        real sc = (real)t->fp;
        OMP_FOR
        for (int64_t o = 0; o < outer; o++)
            for (int64_t k = 0; k < len; k++) {
                real *gk = gx + (o * len + k) * inner;
                const real *go = g + o * inner;
                for (int64_t i = 0; i < inner; i++) gk[i] += sc * go[i];
            }
    });
}

// ---- softmax, layernorm ---------------------------------------------------------

static mm_tensor *softmax_op(mm_ctx *ctx, int op, const char *name,
                             mm_tensor *a)
{
    if (!a) return NULL;
    if (check_inputs(ctx, name, a, NULL)) return NULL;
    if (a->ndim < 1) return fail(ctx, "%s: a scalar has no last axis", name);
    a = mm_tensor_contiguous(ctx, a);
    if (!a) return NULL;
    mm_tensor *out = tnew(ctx, a->dtype, a->ndim, a->ne);
    int64_t n = a->ne[a->ndim - 1], rows = mm_tensor_numel(a) / n;
    int lg = op == OP_LOG_SOFTMAX;
    FOR_REAL(a->dtype, {
        OMP_FOR
        for (int64_t r = 0; r < rows; r++) {
            const real *x = (const real *)a->data + r * n;
            real *y = (real *)out->data + r * n;
            real mx = x[0], s = 0;
            for (int64_t i = 1; i < n; i++) mx = x[i] > mx ? x[i] : mx;
            for (int64_t i = 0; i < n; i++) {
                y[i] = exp(x[i] - mx);
                s += y[i];
            }
            if (lg) {
                real ls = mx + log(s);
                for (int64_t i = 0; i < n; i++) y[i] = x[i] - ls;
            } else {
                for (int64_t i = 0; i < n; i++) y[i] /= s;
            }
        }
    });
    return record(ctx, out, op, a, NULL, NULL);
}

mm_tensor *mm_tensor_softmax(mm_ctx *ctx, mm_tensor *a)
{
    return softmax_op(ctx, OP_SOFTMAX, "softmax", a);
}
mm_tensor *mm_tensor_log_softmax(mm_ctx *ctx, mm_tensor *a)
{
    return softmax_op(ctx, OP_LOG_SOFTMAX, "log_softmax", a);
}

static void backward_softmax(mm_tensor *t)
{
    mm_tensor *a = t->src[0];
    int64_t n = t->ne[t->ndim - 1], rows = mm_tensor_numel(t) / n;
    int lg = t->op == OP_LOG_SOFTMAX;
    FOR_REAL(t->dtype, {
        real *gxa = grad_of(t->ctx, a)->data;
        OMP_FOR
        for (int64_t r = 0; r < rows; r++) {
            const real *y = (const real *)t->data + r * n;
            const real *g = (const real *)t->grad->data + r * n;
            real *gx = gxa + r * n;
            real s = 0;
            if (lg) {
                for (int64_t i = 0; i < n; i++) s += g[i];
                for (int64_t i = 0; i < n; i++) gx[i] += g[i] - exp(y[i]) * s;
            } else {
                for (int64_t i = 0; i < n; i++) s += g[i] * y[i];
                for (int64_t i = 0; i < n; i++) gx[i] += y[i] * (g[i] - s);
            }
        }
    });
}

mm_tensor *mm_tensor_layernorm(mm_ctx *ctx, mm_tensor *x, mm_tensor *w,
                               mm_tensor *b, double eps)
{
    if (!x) return NULL;
    if (check_inputs(ctx, "layernorm", x, w) ||
        check_inputs(ctx, "layernorm", x, b))
        return NULL;
    if (x->ndim < 1) return fail(ctx, "layernorm: a scalar has no last axis");
    int64_t n = x->ne[x->ndim - 1], rows = mm_tensor_numel(x) / n;
    if ((w && (w->ndim != 1 || w->ne[0] != n)) ||
        (b && (b->ndim != 1 || b->ne[0] != n)))
        return fail(ctx, "layernorm: weight and bias must be (%lld)",
                    (long long)n);
    x = mm_tensor_contiguous(ctx, x);
    w = w ? mm_tensor_contiguous(ctx, w) : NULL;
    b = b ? mm_tensor_contiguous(ctx, b) : NULL;
    if (!x) return NULL;
    mm_tensor *out = tnew(ctx, x->dtype, x->ndim, x->ne);
    /* saved per row: mean, rstd; and xhat (N) for the backward */
    size_t es = mm_dtype_size(x->dtype);
    out->aux = arena_alloc(ctx, (size_t)(rows * (2 + n)) * es);
    FOR_REAL(x->dtype, {
        real *st = out->aux, *xh = st + 2 * rows;
        const real *wp = w ? w->data : NULL, *bp = b ? b->data : NULL;
        OMP_FOR
        for (int64_t r = 0; r < rows; r++) {
            const real *xr = (const real *)x->data + r * n;
            real *yr = (real *)out->data + r * n, *hr = xh + r * n;
            real m = 0, v = 0;
            for (int64_t i = 0; i < n; i++) m += xr[i];
            m /= (real)n;
            for (int64_t i = 0; i < n; i++) v += (xr[i] - m) * (xr[i] - m);
            v /= (real)n;
            real rs = 1 / sqrt(v + (real)eps);
            st[2 * r] = m;
            st[2 * r + 1] = rs;
            for (int64_t i = 0; i < n; i++) {
                hr[i] = (xr[i] - m) * rs;
                yr[i] = hr[i] * (wp ? wp[i] : 1) + (bp ? bp[i] : 0);
            }
        }
    });
    out->fp = eps;
    return record(ctx, out, OP_LAYERNORM, x, w, b);
}

static void backward_layernorm(mm_tensor *t)
{
    mm_tensor *x = t->src[0], *w = t->src[1], *b = t->src[2];
    int64_t n = t->ne[t->ndim - 1], rows = mm_tensor_numel(t) / n;
    FOR_REAL(t->dtype, {
        const real *st = t->aux, *xh = st + 2 * rows;
        const real *g = t->grad->data;
        const real *wp = w ? w->data : NULL;
        if (w && w->requires_grad) {
            real *gw = grad_of(t->ctx, w)->data;
            for (int64_t r = 0; r < rows; r++)
                for (int64_t i = 0; i < n; i++)
                    gw[i] += g[r * n + i] * xh[r * n + i];
        }
        if (b && b->requires_grad) {
            real *gb = grad_of(t->ctx, b)->data;
            for (int64_t r = 0; r < rows; r++)
                for (int64_t i = 0; i < n; i++) gb[i] += g[r * n + i];
        }
        if (x->requires_grad) {
            real *gxa = grad_of(t->ctx, x)->data;
            OMP_FOR
            for (int64_t r = 0; r < rows; r++) {
                const real *gr = g + r * n, *hr = xh + r * n;
                real *gx = gxa + r * n;
                real m1 = 0, m2 = 0;
                for (int64_t i = 0; i < n; i++) {
                    real gh = gr[i] * (wp ? wp[i] : 1);
                    m1 += gh;
                    m2 += gh * hr[i];
                }
                m1 /= (real)n;
                m2 /= (real)n;
                real rs = st[2 * r + 1];
                for (int64_t i = 0; i < n; i++) {
                    real gh = gr[i] * (wp ? wp[i] : 1);
                    gx[i] += rs * (gh - m1 - hr[i] * m2);
                }
            }
        }
    });
}

mm_tensor *mm_tensor_linear(mm_ctx *ctx, mm_tensor *x, mm_tensor *w,
                            mm_tensor *b)
{
    if (!x || !w) return NULL;
    if (w->ndim != 2)
        return fail(ctx, "linear: weight must be 2-D (OUT, IN), got %d-D",
                    w->ndim);
    if (x->ndim < 2) { /* (IN) -> (1, IN) */
        x = mm_tensor_reshape(ctx, x, 2, (int64_t[]){1, -1});
        mm_tensor *y = mm_tensor_linear(ctx, x, w, b);
        return mm_tensor_reshape(ctx, y, 1, (int64_t[]){-1});
    }
    mm_tensor *y = mm_tensor_matmul(ctx, x, w, 0, 1); /* (..., OUT) */
    return b ? mm_tensor_add(ctx, y, b) : y;
}

// ---- cross-entropy -----------------------------------------------------------------

mm_tensor *mm_tensor_cross_entropy(mm_ctx *ctx, mm_tensor *logits,
                                   mm_tensor *labels, double smoothing)
{
    if (!logits || !labels) return NULL;
    if (check_inputs(ctx, "cross_entropy", logits, NULL)) return NULL;
    if (logits->ndim != 2)
        return fail(ctx, "cross_entropy: logits must be (B, C), got %d-D",
                    logits->ndim);
    int64_t B = logits->ne[0], C = logits->ne[1];
    if ((labels->dtype != MM_I32 && labels->dtype != MM_I64) ||
        labels->ndim != 1 || labels->ne[0] != B)
        return fail(ctx, "cross_entropy: labels must be i32/i64 (%lld)",
                    (long long)B);
    if (!(smoothing >= 0 && smoothing < 1))
        return fail(ctx, "cross_entropy: smoothing %g outside [0, 1)",
                    smoothing);
    logits = mm_tensor_contiguous(ctx, logits);
    if (!logits) return NULL;
    /* saved: labels (B), then log-probabilities (B, C) and row losses (B) */
    size_t es = mm_dtype_size(logits->dtype);
    int64_t *lab = arena_alloc(ctx, (size_t)B * sizeof *lab +
                                        (size_t)(B * C + B) * es);
    void *lp = lab + B;
    for (int64_t i = 0; i < B; i++) {
        lab[i] = (int64_t)load(labels->dtype, labels->data,
                               offset_of(labels, i));
        if (lab[i] < 0 || lab[i] >= C)
            return fail(ctx, "cross_entropy: label %lld of row %lld outside "
                             "[0, %lld)", (long long)lab[i], (long long)i,
                        (long long)C);
    }
    mm_tensor *out = tnew(ctx, logits->dtype, 0, NULL);
    out->aux = lab;
    double eps = smoothing;
    FOR_REAL(logits->dtype, {
        real *L = lp, *row = L + B * C;
        OMP_FOR
        for (int64_t r = 0; r < B; r++) {
            const real *x = (const real *)logits->data + r * C;
            real *l = L + r * C;
            real mx = x[0], s = 0, sl = 0;
            for (int64_t c = 1; c < C; c++) mx = x[c] > mx ? x[c] : mx;
            for (int64_t c = 0; c < C; c++) s += exp(x[c] - mx);
            real ls = mx + log(s);
            for (int64_t c = 0; c < C; c++) {
                l[c] = x[c] - ls;
                sl += l[c];
            }
            row[r] = -(1 - (real)eps) * l[lab[r]] - (real)eps * sl / (real)C;
        }
        real tot = 0;
        for (int64_t r = 0; r < B; r++) tot += row[r];
        *(real *)out->data = tot / (real)B;
    });
    out->fp = smoothing;
    return record(ctx, out, OP_CROSS_ENTROPY, logits, NULL, NULL);
}

static void backward_cross_entropy(mm_tensor *t)
{
    mm_tensor *a = t->src[0];
    int64_t B = a->ne[0], C = a->ne[1];
    const int64_t *lab = t->aux;
    double eps = t->fp;
    FOR_REAL(t->dtype, {
        const real *L = (const real *)(lab + B);
        real g = *(const real *)t->grad->data / (real)B;
        real *gxa = grad_of(t->ctx, a)->data;
        OMP_FOR
        for (int64_t r = 0; r < B; r++) {
            real *gx = gxa + r * C;
            const real *l = L + r * C;
            for (int64_t c = 0; c < C; c++) {
                real q = (real)eps / (real)C + (c == lab[r] ? 1 - (real)eps : 0);
                gx[c] += g * (exp(l[c]) - q);
            }
        }
    });
}

// ---- backward ------------------------------------------------------------------------

int mm_tensor_backward(mm_ctx *ctx, mm_tensor *loss)
{
    if (!loss) {
        fail(ctx, "backward: no loss (an earlier op failed)");
        return -1;
    }
    if (ctx->failed) return -1;
    if (mm_tensor_numel(loss) != 1 || !is_real(loss->dtype)) {
        fail(ctx, "backward: the loss must be one real element");
        return -1;
    }
    if (!loss->requires_grad) {
        fail(ctx, "backward: the loss does not depend on anything that "
                  "requires grad (or no-grad mode was on)");
        return -1;
    }
    mm_tensor *g = grad_of(ctx, loss);
    store(g->dtype, g->data, 0, load(g->dtype, g->data, 0) + 1.0);
    for (mm_tensor *t = ctx->tape; t; t = t->tape_prev) {
        if (!t->grad) continue; /* the loss does not depend on it */
        switch (t->op) {
        case OP_VIEW_RESHAPE: case OP_VIEW_TRANSPOSE: case OP_VIEW_SLICE:
        case OP_CONT:
            if (t->src[0]->requires_grad) backward_view(t);
            break;
        case OP_MATMUL: backward_matmul(t); break;
        case OP_ADD: case OP_SUB: case OP_MUL: case OP_DIV:
            backward_binary(t);
            break;
        case OP_SCALE: case OP_EXP: case OP_LOG: case OP_SQRT: case OP_TANH:
        case OP_SIGMOID: case OP_RELU: case OP_GELU:
            if (t->src[0]->requires_grad) backward_unary(t);
            break;
        case OP_SUM: case OP_MEAN:
            if (t->src[0]->requires_grad) backward_reduce(t);
            break;
        case OP_SOFTMAX: case OP_LOG_SOFTMAX:
            if (t->src[0]->requires_grad) backward_softmax(t);
            break;
        case OP_LAYERNORM: backward_layernorm(t); break;
        case OP_CROSS_ENTROPY:
            if (t->src[0]->requires_grad) backward_cross_entropy(t);
            break;
        default: MM_ASSERT(!"unknown op on the tape");
        }
    }
    return 0;
}

// ---- parameters ------------------------------------------------------------------------

enum { P_DATA, P_GRAD, P_M, P_V, P_KINDS };
static const char *const kind_suffix[P_KINDS] = {
    "", ".grad", ".exp_avg", ".exp_avg_sq"
};

typedef struct {
    char *names[P_KINDS];
    mm_tensor t[P_KINDS];
} pentry;

struct mm_params {
    mm_dtype dtype;
    int n, cap;
    pentry **e;
    void *block;
    int64_t step;
};

mm_params *mm_params_new(mm_dtype dt)
{
    MM_ASSERT(is_real(dt));
    mm_params *p = mm_calloc(1, sizeof *p);
    p->dtype = dt;
    return p;
}

void mm_params_free(mm_params *p)
{
    if (!p) return;
    for (int i = 0; i < p->n; i++) {
        for (int k = 0; k < P_KINDS; k++) free(p->e[i]->names[k]);
        free(p->e[i]);
    }
    free(p->e);
    free(p->block);
    free(p);
}

mm_tensor *mm_params_add(mm_params *p, const char *name, int ndim,
                         const int64_t *shape)
{
    if (p->block) return fail(NULL, "params: %s added after alloc", name);
    if (check_shape(NULL, name, ndim, shape)) return NULL;
    if (mm_params_find(p, name))
        return fail(NULL, "params: duplicate name %s", name);
    if (p->n == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 16;
        p->e = mm_realloc(p->e, (size_t)p->cap * sizeof *p->e);
    }
    pentry *e = mm_calloc(1, sizeof *e);
    size_t len = strlen(name);
    for (int k = 0; k < P_KINDS; k++) {
        e->names[k] = mm_malloc(len + strlen(kind_suffix[k]) + 1);
        memcpy(e->names[k], name, len);
        strcpy(e->names[k] + len, kind_suffix[k]);
        mm_tensor *t = &e->t[k];
        t->dtype = p->dtype;
        t->device = MM_CPU;
        t->ndim = ndim;
        for (int d = 0; d < ndim; d++) t->ne[d] = shape[d];
        set_contig_strides(t);
    }
    e->t[P_DATA].requires_grad = 1;
    e->t[P_DATA].grad = &e->t[P_GRAD];
    p->e[p->n++] = e;
    return &e->t[P_DATA];
}

static size_t padded(size_t n)
{
    return (n + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
}

int mm_params_alloc(mm_params *p)
{
    if (p->block) {
        mm__set_error("params: already allocated");
        return -1;
    }
    size_t es = mm_dtype_size(p->dtype), total = 0;
    for (int i = 0; i < p->n; i++)
        total += padded((size_t)mm_tensor_numel(&p->e[i]->t[0]) * es);
    /* one block: all parameters, then all grads, then m, then v */
    unsigned char *blk = mm_calloc(1, P_KINDS * total + ARENA_ALIGN);
    p->block = blk;
    unsigned char *base =
        blk + (ARENA_ALIGN - (uintptr_t)blk % ARENA_ALIGN) % ARENA_ALIGN;
    for (int k = 0; k < P_KINDS; k++) {
        size_t off = (size_t)k * total;
        for (int i = 0; i < p->n; i++) {
            mm_tensor *t = &p->e[i]->t[k];
            t->data = base + off;
            off += padded((size_t)mm_tensor_numel(t) * es);
        }
    }
    return 0;
}

int mm_params_count(const mm_params *p) { return p->n; }

mm_tensor *mm_params_get(mm_params *p, int i)
{
    return i >= 0 && i < p->n ? &p->e[i]->t[P_DATA] : NULL;
}

const char *mm_params_name(const mm_params *p, int i)
{
    return i >= 0 && i < p->n ? p->e[i]->names[P_DATA] : NULL;
}

mm_tensor *mm_params_find(mm_params *p, const char *name)
{
    for (int i = 0; i < p->n; i++)
        if (strcmp(p->e[i]->names[P_DATA], name) == 0)
            return &p->e[i]->t[P_DATA];
    return NULL;
}

int64_t mm_params_numel(const mm_params *p)
{
    int64_t n = 0;
    for (int i = 0; i < p->n; i++) n += mm_tensor_numel(&p->e[i]->t[0]);
    return n;
}

void mm_params_zero_grad(mm_params *p)
{
    if (!p->block) return;
    size_t es = mm_dtype_size(p->dtype);
    for (int i = 0; i < p->n; i++) {
        mm_tensor *g = &p->e[i]->t[P_GRAD];
        memset(g->data, 0, (size_t)mm_tensor_numel(g) * es);
    }
}

int mm_params_n_named(const mm_params *p) { return P_KINDS * p->n; }

mm_tensor *mm_params_named(mm_params *p, int i, const char **name)
{
    if (i < 0 || i >= P_KINDS * p->n) return NULL;
    pentry *e = p->e[i / P_KINDS];
    if (name) *name = e->names[i % P_KINDS];
    return &e->t[i % P_KINDS];
}

int64_t mm_params_step(const mm_params *p) { return p->step; }
void mm_params_set_step(mm_params *p, int64_t step) { p->step = step; }

// ---- optimizers ------------------------------------------------------------------------

mm_adam_opts mm_adam_defaults(void)
{
    return (mm_adam_opts){1e-3, 0.9, 0.999, 1e-8, 0.0};
}

mm_adam_opts mm_adamw_defaults(void)
{
    return (mm_adam_opts){1e-3, 0.9, 0.999, 1e-8, 1e-2};
}

/* torch's single-tensor Adam/AdamW: step_size = lr / (1 - b1^t),
 * denom = sqrt(v) / sqrt(1 - b2^t) + eps. */
static int adam(mm_params *p, const mm_adam_opts *o, int decoupled)
{
    if (!p->block) {
        mm__set_error("adam: parameters not allocated");
        return -1;
    }
    p->step++;
    double t = (double)p->step;
    double bc1 = 1 - pow(o->beta1, t), bc2 = 1 - pow(o->beta2, t);
    double step_size = o->lr / bc1, bc2s = sqrt(bc2);
    for (int e = 0; e < p->n; e++) {
        pentry *pe = p->e[e];
        int64_t n = mm_tensor_numel(&pe->t[0]);
        FOR_REAL(p->dtype, {
            real *w = pe->t[P_DATA].data, *g = pe->t[P_GRAD].data;
            real *m = pe->t[P_M].data, *v = pe->t[P_V].data;
            real b1 = (real)o->beta1, b2 = (real)o->beta2;
            real wd = (real)o->weight_decay, lr = (real)o->lr;
            real ss = (real)step_size, bs = (real)bc2s, ep = (real)o->eps;
            OMP_FOR
            for (int64_t i = 0; i < n; i++) {
                real gi = g[i];
                if (decoupled) w[i] *= 1 - lr * wd;
                else gi += wd * w[i];
                m[i] = b1 * m[i] + (1 - b1) * gi;
                v[i] = b2 * v[i] + (1 - b2) * gi * gi;
                w[i] -= ss * m[i] / (sqrt(v[i]) / bs + ep);
            }
        });
    }
    return 0;
}

int mm_adam_step(mm_params *p, const mm_adam_opts *o)
{
    return adam(p, o, 0);
}

int mm_adamw_step(mm_params *p, const mm_adam_opts *o)
{
    return adam(p, o, 1);
}
