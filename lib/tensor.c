/* tensor.c: contexts (arena + tape), tensors and views, the CPU kernels of
 * every op with their backward, parameter blocks and Adam/AdamW.
 * Tensors on MM_CUDA (f32) run the kernels of lib/cuda/ops.cu at the same
 * switches (#ifdef MM_HAVE_CUDA blocks): device memory comes from a second
 * arena per context. Every op has a CUDA form (the Cox loss computes on
 * the host from a copy of its B risks; bn_fold is host only).
 * Not here: file I/O.
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
#include <sys/mman.h>
#include <tgmath.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

#include "mm/rng.h"
#include "mm/tensor.h"
#include "tensor_internal.h"
#ifdef MM_HAVE_CUDA
#include "cuda/ops.h"
#endif

#ifdef _OPENMP
#include <omp.h>
#define OMP_FOR _Pragma("omp parallel for schedule(static)")
#define OMP_FOR_SIMD _Pragma("omp parallel for simd schedule(static)")
#else
#define OMP_FOR
#define OMP_FOR_SIMD
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
    OP_SOFTMAX, OP_LOG_SOFTMAX, OP_LAYERNORM, OP_CROSS_ENTROPY,
    OP_ABS, OP_CLAMP, OP_RSQRT, OP_SQUARE, OP_ELU, OP_SILU, OP_SOFTPLUS,
    OP_MAX, OP_CUMSUM, OP_CUMPROD, OP_CONCAT, OP_INDEX_SELECT, OP_GATHER,
    OP_REPEAT, OP_PAD, OP_DROPOUT, OP_CONV1D_DW, OP_CONV2D_DW, OP_COX,
    OP_TO_DEVICE, OP_ATTENTION, OP_ADDMM
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
    double fp;      /* scalar parameter (scale, eps, smoothing, lo) */
    double fq;      /* a second one (clamp's hi) */
    int64_t ip[4];  /* integer parameters (axis, flags, ...) */
    void *aux;      /* saved forward state (layernorm stats, probs) */
};

#ifdef MM_HAVE_CUDA
static mm__cu_i4 i4(const int64_t v[4])
{
    mm__cu_i4 r;
    memcpy(r.v, v, sizeof r.v);
    return r;
}
#endif

// ---- arena -----------------------------------------------------------------

#define ARENA_ALIGN 64
#define ARENA_MIN ((size_t)1 << 20)

typedef struct block {
    struct block *next;
    size_t cap, used;
    unsigned char *base; /* aligned start */
    unsigned char mem[];
} block;

/* Device memory of a context: cudaMalloc'd blocks handed out in order
 * like the host arena (no managed memory), coalesced at reset. */
typedef struct dblock {
    struct dblock *next;
    size_t cap, used;
    unsigned char *base; /* device pointer */
} dblock;

struct mm_ctx {
    block *blocks; /* newest first */
    size_t used, high_water, capacity, n_blocks;
    dblock *dblocks; /* newest first; NULL until a tensor lives on CUDA */
    mm_tensor *tape; /* last recorded op */
    int no_grad;
    int failed;
    char err[512];
};

/* Blocks of 8 MiB and more sit on 2 MiB boundaries and ask Linux for
 * transparent huge pages (its default is "madvise": only when asked). A
 * TransMIL step sweeps about 1.8 GiB of its arena; with 4 KiB pages the
 * TLB misses made the memory-bound ops (copies, element-wise, gradient
 * sums) up to 1.5x slower, and the first step took 500 times the page
 * faults. Without THP the advice is ignored. */
#define ARENA_HUGE ((size_t)8 << 20)
#define HUGE_PAGE ((size_t)2 << 20)

static block *block_new(size_t cap)
{
    size_t total = sizeof(block) + cap + ARENA_ALIGN;
    block *b;
    if (cap >= ARENA_HUGE) {
        b = mm_malloc_aligned(HUGE_PAGE, total);
#ifdef MADV_HUGEPAGE
        madvise(b, total / HUGE_PAGE * HUGE_PAGE, MADV_HUGEPAGE);
#endif
    } else {
        b = mm_malloc(total);
    }
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

#ifdef MM_HAVE_CUDA
static dblock *dblock_new(size_t cap)
{
    dblock *b = mm_malloc(sizeof *b);
    b->base = mm__cu_malloc(cap);
    b->cap = cap;
    b->used = 0;
    b->next = NULL;
    return b;
}

static void *dev_alloc(mm_ctx *ctx, size_t n)
{
    n = (n + 255) / 256 * 256; /* cudaMalloc's alignment */
    dblock *b = ctx->dblocks;
    if (!b || b->cap - b->used < n) {
        size_t cap = b ? 2 * b->cap : ARENA_MIN;
        if (cap < n) cap = n;
        b = dblock_new(cap);
        b->next = ctx->dblocks;
        ctx->dblocks = b;
    }
    void *p = b->base + b->used;
    b->used += n;
    return p;
}

/* Zeroing fails only in a broken CUDA context (a kernel faulted): every
 * later call would fail too, so stop here with the reason, as OOM does. */
static void dev_zero(void *p, size_t n)
{
    if (mm__cu_zero(p, n)) {
        fprintf(stderr, "mmpath: %s\n", mm__cu_error());
        abort();
    }
}
#endif

static void dblocks_free(dblock *b)
{
    for (dblock *nx; b; b = nx) {
        nx = b->next;
#ifdef MM_HAVE_CUDA
        mm__cu_free(b->base);
#endif
        free(b);
    }
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
    dblocks_free(ctx->dblocks);
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
#ifdef MM_HAVE_CUDA
    if (ctx->dblocks && ctx->dblocks->next) {
        size_t cap = 0;
        for (dblock *b = ctx->dblocks; b; b = b->next) cap += b->cap;
        dblocks_free(ctx->dblocks);
        ctx->dblocks = dblock_new(cap);
    }
    if (ctx->dblocks) ctx->dblocks->used = 0;
#endif
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

/* memset(P, 0, N), by the OpenMP threads in 256 KiB pieces when N is
 * large: the gradients' zero-fill ran on one thread while the others
 * waited at the next barrier. */
static void zero_fill(void *p, size_t n)
{
    const size_t piece = (size_t)256 << 10;
    if (n < 4 * piece) {
        memset(p, 0, n);
        return;
    }
    int64_t pieces = (int64_t)((n + piece - 1) / piece);
    OMP_FOR
    for (int64_t i = 0; i < pieces; i++) {
        size_t o = (size_t)i * piece;
        memset((char *)p + o, 0, n - o < piece ? n - o : piece);
    }
}

/* A zero-filled contiguous tensor on DEV without shape checks. */
static mm_tensor *tnew_on(mm_ctx *ctx, mm_dtype dt, int ndim,
                          const int64_t *shape, mm_device dev)
{
    mm_tensor *t = header(ctx, dt, ndim, shape);
    size_t n = (size_t)numel_of(ndim, shape) * mm_dtype_size(dt);
#ifdef MM_HAVE_CUDA
    if (dev == MM_CUDA) {
        t->device = MM_CUDA;
        t->data = dev_alloc(ctx, n);
        dev_zero(t->data, n);
        return t;
    }
#endif
    (void)dev;
    t->data = arena_alloc(ctx, n);
    zero_fill(t->data, n);
    return t;
}

/* ... on the CPU (internal). */
static mm_tensor *tnew(mm_ctx *ctx, mm_dtype dt, int ndim,
                       const int64_t *shape)
{
    return tnew_on(ctx, dt, ndim, shape, MM_CPU);
}

/* ... on the device of A, in A's dtype. */
static mm_tensor *tnew_like(mm_ctx *ctx, const mm_tensor *a, int ndim,
                            const int64_t *shape)
{
    return tnew_on(ctx, a->dtype, ndim, shape, a->device);
}

/* The same on the CPU, uninitialised: for an op's output that its kernel
 * writes in full (zeroing it first cost 6% of a transformer step, plus
 * the page traffic). */
static mm_tensor *tnew_raw(mm_ctx *ctx, mm_dtype dt, int ndim,
                           const int64_t *shape)
{
    mm_tensor *t = header(ctx, dt, ndim, shape);
    t->data = arena_alloc(ctx, (size_t)numel_of(ndim, shape) * mm_dtype_size(dt));
    return t;
}

/* tnew_like, uninitialised on the CPU (zeroed on CUDA, as before). */
static mm_tensor *tnew_like_raw(mm_ctx *ctx, const mm_tensor *a, int ndim,
                                const int64_t *shape)
{
    if (a->device == MM_CPU) return tnew_raw(ctx, a->dtype, ndim, shape);
    return tnew_like(ctx, a, ndim, shape);
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

/* Element accessors on a CUDA tensor (f32) copy through the host: one
 * copy for a contiguous tensor, one per element for a strided view. */
#ifdef MM_HAVE_CUDA
static int cu_get(const mm_tensor *t, double *dst, int64_t n)
{
    float *h = mm_malloc((size_t)n * sizeof *h);
    int rc = 0;
    if (mm_tensor_is_contiguous(t))
        rc = mm__cu_d2h(h, t->data, (size_t)n * sizeof *h);
    else
        for (int64_t i = 0; i < n && !rc; i++)
            rc = mm__cu_d2h(h + i, (const float *)t->data + offset_of(t, i),
                            sizeof *h);
    for (int64_t i = 0; i < n; i++) dst[i] = h[i];
    free(h);
    if (rc) mm__set_error("tensor: %s", mm__cu_error());
    return rc ? -1 : 0;
}

static int cu_set(mm_tensor *t, const double *src, int64_t n)
{
    float *h = mm_malloc((size_t)n * sizeof *h);
    int rc = 0;
    for (int64_t i = 0; i < n; i++) h[i] = (float)src[i];
    if (mm_tensor_is_contiguous(t))
        rc = mm__cu_h2d(t->data, h, (size_t)n * sizeof *h);
    else
        for (int64_t i = 0; i < n && !rc; i++)
            rc = mm__cu_h2d((float *)t->data + offset_of(t, i), h + i,
                            sizeof *h);
    free(h);
    if (rc) mm__set_error("tensor: %s", mm__cu_error());
    return rc ? -1 : 0;
}
#endif

double mm_tensor_get1(const mm_tensor *t, int64_t i)
{
#ifdef MM_HAVE_CUDA
    if (t->device == MM_CUDA) {
        float v;
        if (mm__cu_d2h(&v, (const float *)t->data + offset_of(t, i),
                       sizeof v))
            return NAN;
        return v;
    }
#endif
    return load(t->dtype, t->data, offset_of(t, i));
}

int mm_tensor_set_f64(mm_tensor *t, const double *src, int64_t n)
{
    if (n != mm_tensor_numel(t)) {
        mm__set_error("tensor: %lld values for %lld elements", (long long)n,
                      (long long)mm_tensor_numel(t));
        return -1;
    }
#ifdef MM_HAVE_CUDA
    if (t->device == MM_CUDA) return cu_set(t, src, n);
#endif
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
#ifdef MM_HAVE_CUDA
    if (t->device == MM_CUDA) return cu_get(t, dst, n);
#endif
    for (int64_t i = 0; i < n; i++)
        dst[i] = load(t->dtype, t->data, offset_of(t, i));
    return 0;
}

void mm_tensor_fill(mm_tensor *t, double v)
{
#ifdef MM_HAVE_CUDA
    if (t->device == MM_CUDA) { /* a failure shows at the next copy */
        int64_t ne[4], nb[4];
        pad4(t, ne, nb);
        mm__cu_fill(t->data, i4(ne), i4(nb), (float)v);
        return;
    }
#endif
    int64_t n = mm_tensor_numel(t);
    for (int64_t i = 0; i < n; i++)
        store(t->dtype, t->data, offset_of(t, i), v);
}

// ---- op plumbing -------------------------------------------------------------

static int is_real(mm_dtype dt) { return dt == MM_F32 || dt == MM_F64; }

/* Inputs of a real op: on one backend, real, one dtype. Every op has
 * CUDA kernels (lib/cuda/ops.cu), so a CUDA input is fine anywhere; CUDA
 * tensors are all f32 (mm_tensor_to_device). */
static int check_inputs(mm_ctx *ctx, const char *op, mm_tensor *a,
                        mm_tensor *b)
{
    if (b && b->device != a->device) {
        fail(ctx, "%s: inputs on the CPU and on CUDA (move one with "
                  "mm_tensor_to_device)", op);
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

#ifdef MM_HAVE_CUDA
/* RC of a CUDA call: 0, or -1 with the reason on CTX. */
static int cu_check(mm_ctx *ctx, const char *op, int rc)
{
    if (rc) fail(ctx, "%s: %s", op, mm__cu_error());
    return rc ? -1 : 0;
}
#endif

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
    if (!t->grad) t->grad = tnew_like(ctx, t, t->ndim, t->ne);
    return t->grad;
}

/* grad_of for a kernel that can write its first contribution instead of
 * adding it: a new CPU gradient is left uninitialised and *FRESH set (the
 * zero-fill of every gradient was 4% of a TransMIL step). */
static mm_tensor *grad_of_fresh(mm_ctx *ctx, mm_tensor *t, int *fresh)
{
    *fresh = !t->grad && t->device == MM_CPU;
    if (*fresh) t->grad = tnew_raw(ctx, t->dtype, t->ndim, t->ne);
    return grad_of(ctx, t);
}

static int norm_axis(int axis, int ndim)
{
    if (axis < 0) axis += ndim;
    return axis >= 0 && axis < ndim ? axis : -1;
}

/* DST[k] = SRC at logical index k (SRC strided, DST contiguous). */
/* The transposed case of copy_to_contig (ADD 0: contiguous D = strided
 * S) and add_strided (ADD 1: strided D += contiguous S), where the
 * strided side (strides NB, shape NE) has its last two axes swapped: NB[2]
 * 1, NB[3] not. Element by element that strides one side by NB[3]; in
 * tiles of TT x TT both sides stay in L1. Each element is still written
 * (or added) once. @return 0 when the case does not apply. */
enum { TT = 32 };
static int transpose_tiled(mm_dtype dt, void *d, const void *s,
                           const int64_t ne[4], const int64_t nb[4], int add)
{
    if (nb[2] != 1 || nb[3] == 1 || ne[2] < TT || ne[3] < TT) return 0;
    int64_t t2 = (ne[2] + TT - 1) / TT, tasks = ne[0] * ne[1] * t2;
    FOR_REAL(dt, {
        real *dp = d;
        const real *sp = s;
        OMP_FOR
        for (int64_t t = 0; t < tasks; t++) {
            int64_t i01 = t / t2, a = t % t2 * TT;
            int64_t i0 = i01 / ne[1], i1 = i01 % ne[1];
            int64_t e = a + TT < ne[2] ? a + TT : ne[2];
            int64_t str = i0 * nb[0] + i1 * nb[1];  /* strided side */
            int64_t con = i01 * ne[2] * ne[3];       /* contiguous side */
            for (int64_t b = 0; b < ne[3]; b += TT) {
                int64_t f = b + TT < ne[3] ? b + TT : ne[3];
                for (int64_t i2 = a; i2 < e; i2++)
                    for (int64_t i3 = b; i3 < f; i3++) {
                        int64_t so = str + i2 + i3 * nb[3],
                                co = con + i2 * ne[3] + i3;
                        if (add) dp[so] += sp[co];
                        else dp[co] = sp[so];
                    }
            }
        }
    });
    return 1;
}

static void copy_to_contig(mm_dtype dt, void *dst, const mm_tensor *src)
{
    int64_t ne[4], nb[4];
    pad4(src, ne, nb);
    if (transpose_tiled(dt, dst, src->data, ne, nb, 0)) return;
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
            if (nb[3] == 1) memcpy(dr, sr, (size_t)ne[3] * sizeof *dr);
            else for (int64_t i3 = 0; i3 < ne[3]; i3++) dr[i3] = sr[i3 * nb[3]];
        }
    });
}

/* DST at element strides NB (shape NE, 4-D) += contiguous SRC. Distinct
 * logical indices map to distinct DST elements (views never alias). */
static void add_strided(mm_dtype dt, void *dst, const int64_t ne[4],
                        const int64_t nb[4], const void *src)
{
    if (transpose_tiled(dt, dst, src, ne, nb, 1)) return;
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
            if (nb[3] == 1) {
                _Pragma("omp simd")
                for (int64_t i3 = 0; i3 < ne[3]; i3++) dr[i3] += sr[i3];
            } else {
                for (int64_t i3 = 0; i3 < ne[3]; i3++) dr[i3 * nb[3]] += sr[i3];
            }
        }
    });
}

static void add_flat(mm_dtype dt, void *dst, const void *src, int64_t n)
{
    FOR_REAL(dt, {
        real *d = dst;
        const real *s = src;
        OMP_FOR_SIMD
        for (int64_t i = 0; i < n; i++) d[i] += s[i];
    });
}

// ---- views -------------------------------------------------------------------

mm_tensor *mm_tensor_contiguous(mm_ctx *ctx, mm_tensor *a)
{
    if (!a) return NULL;
    if (mm_tensor_is_contiguous(a)) return a;
    if (check_inputs(ctx, "contiguous", a, NULL)) return NULL;
    mm_tensor *out = tnew_like_raw(ctx, a, a->ndim, a->ne);
#ifdef MM_HAVE_CUDA
    if (a->device == MM_CUDA) {
        int64_t ne[4], nb[4];
        pad4(a, ne, nb);
        if (cu_check(ctx, "contiguous",
                     mm__cu_copy_strided(out->data, a->data, i4(ne), i4(nb))))
            return NULL;
        return record(ctx, out, OP_CONT, a, NULL, NULL);
    }
#endif
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
#ifdef MM_HAVE_CUDA
    if (a->device == MM_CUDA) { /* CUDA tensors are f32: a copy */
        if (dt != MM_F32)
            return fail(ctx, "cast: CUDA tensors are f32, not %s (move the "
                             "input to the CPU with mm_tensor_to_device)",
                        mm_dtype_name(dt));
        int64_t ne[4], nb[4];
        pad4(a, ne, nb);
        mm_tensor *o = tnew_on(ctx, MM_F32, a->ndim, a->ne, MM_CUDA);
        if (cu_check(ctx, "cast",
                     mm__cu_copy_strided(o->data, a->data, i4(ne), i4(nb))))
            return NULL;
        return o;
    }
#endif
    mm_tensor *out = tnew(ctx, dt, a->ndim, a->ne);
    int64_t n = mm_tensor_numel(a);
    for (int64_t i = 0; i < n; i++)
        store(dt, out->data, i, load(a->dtype, a->data, offset_of(a, i)));
    return out;
}

// ---- devices ---------------------------------------------------------------

int mm_cuda_available(char *why, size_t n)
{
#ifdef MM_HAVE_CUDA
    static int count = -1;
    static char reason[200];
    if (count < 0) count = mm__cu_available(reason, sizeof reason);
    if (count == 0 && why) snprintf(why, n, "%s", reason);
    return count;
#else
    if (why)
        snprintf(why, n, "CUDA backend not built (configure found no CUDA "
                         "toolkit, or --without-cuda)");
    return 0;
#endif
}

int mm_cuda_tf32(int on)
{
#ifdef MM_HAVE_CUDA
    return mm__cu_set_tf32(on);
#else
    (void)on;
    return 0;
#endif
}

mm_tensor *mm_tensor_to_device(mm_ctx *ctx, mm_tensor *a, mm_device dev)
{
    if (!a) return NULL;
    if (dev != MM_CPU && dev != MM_CUDA)
        return fail(ctx, "to_device: unknown device %d", (int)dev);
    if (a->device == dev) return a;
    char why[256];
    if (mm_cuda_available(why, sizeof why) <= 0)
        return fail(ctx, "to_device: %s", why);
    if (a->dtype != MM_F32)
        return fail(ctx, "to_device: CUDA tensors are f32, got %s (cast "
                         "first)", mm_dtype_name(a->dtype));
#ifdef MM_HAVE_CUDA
    a = mm_tensor_contiguous(ctx, a);
    if (!a) return NULL;
    mm_tensor *out = tnew_on(ctx, a->dtype, a->ndim, a->ne, dev);
    size_t nb = (size_t)mm_tensor_numel(a) * sizeof(float);
    int rc = dev == MM_CUDA ? mm__cu_h2d(out->data, a->data, nb)
                            : mm__cu_d2h(out->data, a->data, nb);
    if (cu_check(ctx, "to_device", rc)) return NULL;
    return record(ctx, out, OP_TO_DEVICE, a, NULL, NULL);
#else
    return NULL; /* not reached: no device without the backend */
#endif
}

#ifdef MM_HAVE_CUDA
/* The gradient crosses back: copied to the source's device (a scratch
 * buffer in the context's arena there) and added. */
static void backward_to_device(mm_tensor *t)
{
    mm_tensor *a = t->src[0];
    int64_t n = mm_tensor_numel(t);
    size_t nb = (size_t)n * sizeof(float);
    float *ga = grad_of(t->ctx, a)->data;
    if (a->device == MM_CPU) {
        float *tmp = arena_alloc(t->ctx, nb);
        if (!cu_check(t->ctx, "backward", mm__cu_d2h(tmp, t->grad->data, nb)))
            add_flat(MM_F32, ga, tmp, n);
    } else {
        float *tmp = dev_alloc(t->ctx, nb);
        if (!cu_check(t->ctx, "backward", mm__cu_h2d(tmp, t->grad->data, nb)))
            cu_check(t->ctx, "backward", mm__cu_add_flat(ga, tmp, n));
    }
}
#endif

static void backward_view(mm_tensor *t)
{
    mm_tensor *a = t->src[0];
    if ((t->op == OP_VIEW_RESHAPE || t->op == OP_CONT) && !a->grad) {
        /* the gradient of A is T's in A's shape, element for element:
         * share T's buffer (T's own backward is done) instead of a zeroed
         * copy plus an add */
        mm_tensor *g = header(t->ctx, a->dtype, a->ndim, a->ne);
        g->data = t->grad->data;
        g->device = t->grad->device;
        a->grad = g;
        return;
    }
    mm_tensor *ga = grad_of(t->ctx, a);
    int64_t n = mm_tensor_numel(t);
    if (t->op == OP_VIEW_RESHAPE || t->op == OP_CONT) {
#ifdef MM_HAVE_CUDA
        if (t->device == MM_CUDA) {
            cu_check(t->ctx, "backward", mm__cu_add_flat(ga->data,
                                                          t->grad->data, n));
            return;
        }
#endif
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
#ifdef MM_HAVE_CUDA
    if (t->device == MM_CUDA) {
        cu_check(t->ctx, "backward",
                 mm__cu_add_strided((float *)base, i4(ne), i4(nb),
                                    t->grad->data));
        return;
    }
#endif
    add_strided(a->dtype, base, ne, nb, t->grad->data);
}

// ---- matmul ------------------------------------------------------------------

/* C = ALPHA op(A) op(B) + BETA C, row-major. */
static void gemm_ab(mm_dtype dt, int ta, int tb, int m, int n, int k,
                    double alpha, const void *a, int lda, const void *b,
                    int ldb, double beta, void *c, int ldc)
{
    enum CBLAS_TRANSPOSE ca = ta ? CblasTrans : CblasNoTrans;
    enum CBLAS_TRANSPOSE cb = tb ? CblasTrans : CblasNoTrans;
    if (dt == MM_F32)
        cblas_sgemm(CblasRowMajor, ca, cb, m, n, k, (float)alpha, a, lda, b,
                    ldb, (float)beta, c, ldc);
    else
        cblas_dgemm(CblasRowMajor, ca, cb, m, n, k, alpha, a, lda, b, ldb,
                    beta, c, ldc);
}

static void gemm(mm_dtype dt, int ta, int tb, int m, int n, int k,
                 const void *a, int lda, const void *b, int ldb, double beta,
                 void *c, int ldc)
{
    gemm_ab(dt, ta, tb, m, n, k, 1.0, a, lda, b, ldb, beta, c, ldc);
}

/* One thread pool. The OpenMP threads split a (batched) matmul into
 * tasks, each one cblas call on one BLAS thread: OpenBLAS's own pthreads
 * would otherwise spin and yield against the OpenMP threads on the same
 * cores (13% + 9% of a transformer step in perf). Weak symbols: another
 * CBLAS is called as it is. */
extern void openblas_set_num_threads(int) __attribute__((weak));
extern int openblas_get_num_threads(void) __attribute__((weak));

/* OpenBLAS on one thread while the OpenMP threads each run their own
 * GEMMs (gemm_batch, the attention); @return the count to restore. */
static int blas_single(void)
{
    int old = openblas_get_num_threads ? openblas_get_num_threads() : 1;
    if (old != 1 && openblas_set_num_threads) openblas_set_num_threads(1);
    return old;
}

static void blas_restore(int old)
{
    if (old != 1 && openblas_set_num_threads) openblas_set_num_threads(old);
}

static int n_threads(void)
{
#ifdef _OPENMP
    return omp_in_parallel() ? 1 : omp_get_max_threads();
#else
    return 1;
#endif
}

/* C_i = op(A_i) op(B_i) + beta C_i (M x N, row-major) for i < BATCH, the
 * operands SA, SB, SC elements apart (SA or SB 0: shared). Tasks are whole
 * matrices when there are enough of them, else each matrix is cut into
 * row (or column) bands, one per thread; an element is still one cblas
 * dot over K, so only the blocking of M and N depends on the thread
 * count. A shared output (SC 0, a gradient summed over the batch) is
 * accumulated batch by batch, in order. */
static void gemm_batch(mm_dtype dt, int ta, int tb, int64_t batch, int m,
                       int n, int k, double alpha, const void *a, int64_t sa, int lda,
                       const void *b, int64_t sb, int ldb, double beta,
                       void *c, int64_t sc, int ldc)
{
    size_t es = mm_dtype_size(dt);
    int nt = n_threads();
    double flops = 2.0 * (double)batch * m * n * k;
    if (nt == 1 || flops < 4e6) {
        for (int64_t i = 0; i < batch; i++)
            gemm_ab(dt, ta, tb, m, n, k, alpha, (const char *)a + i * sa * es, lda,
                 (const char *)b + i * sb * es, ldb, beta,
                 (char *)c + i * sc * es, ldc);
        return;
    }
    if (sc == 0 && batch > 1) {
        for (int64_t i = 0; i < batch; i++)
            gemm_batch(dt, ta, tb, 1, m, n, k, alpha, (const char *)a + i * sa * es,
                       0, lda, (const char *)b + i * sb * es, 0, ldb, beta,
                       c, 0, ldc);
        return;
    }
    /* bands per matrix: enough tasks for every thread */
    int64_t parts = batch >= nt ? 1 : (nt + batch - 1) / batch;
    int rows = m >= n; /* cut the longer side */
    int64_t side = rows ? m : n;
    if (parts > side / 16) parts = side / 16 > 0 ? side / 16 : 1;
    int64_t band = (side + parts - 1) / parts;
    band = (band + 15) / 16 * 16;
    parts = (side + band - 1) / band;
    int old = blas_single();
    int64_t tasks = batch * parts;
    _Pragma("omp parallel for schedule(static)")
    for (int64_t t = 0; t < tasks; t++) {
        int64_t i = t / parts, p0 = t % parts * band;
        int len = (int)(p0 + band <= side ? band : side - p0);
        const char *ai = (const char *)a + i * sa * es;
        const char *bi = (const char *)b + i * sb * es;
        char *ci = (char *)c + i * sc * es;
        if (rows) /* rows p0.. of op(A) and of C */
            gemm_ab(dt, ta, tb, len, n, k, alpha, ai + p0 * (ta ? 1 : lda) * es, lda,
                 bi, ldb, beta, ci + p0 * ldc * es, ldc);
        else      /* columns p0.. of op(B) and of C */
            gemm_ab(dt, ta, tb, m, len, k, alpha, ai, lda,
                 bi + p0 * (tb ? ldb : 1) * es, ldb, beta, ci + p0 * es, ldc);
    }
    blas_restore(old);
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

#ifdef MM_HAVE_CUDA
/* cuBLAS for a batch of GEMMs with strides SA, SB, SC (elements). A zero
 * stride (a shared operand, or the gradient of one) runs the batch as
 * separate calls in order, as the CPU does: a shared gradient then sums in
 * a fixed order, and cuBLAS never sees outputs that alias. */
static int cu_gemm(mm_ctx *ctx, const char *op, int ta, int tb, int m, int n,
                   int k, const float *a, int lda, int64_t sa,
                   const float *b, int ldb, int64_t sb, float beta, float *c,
                   int ldc, int64_t sc, int64_t batch)
{
    if (batch == 1 || (sa && sb && sc))
        return cu_check(ctx, op, mm__cu_gemm(ta, tb, m, n, k, a, lda, sa, b,
                                             ldb, sb, beta, c, ldc, sc,
                                             (int)batch));
    for (int64_t i = 0; i < batch; i++)
        if (cu_check(ctx, op, mm__cu_gemm(ta, tb, m, n, k, a + i * sa, lda,
                                          0, b + i * sb, ldb, 0, beta,
                                          c + i * sc, ldc, 0, 1)))
            return -1;
    return 0;
}
#endif

/* BETA C + ALPHA op(A) op(B); C NULL for a plain matmul (ALPHA 1). */
static mm_tensor *matmul_op(mm_ctx *ctx, mm_tensor *c, mm_tensor *a,
                            mm_tensor *b, int ta, int tb, double alpha,
                            double beta)
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
    if (c) {
        if (check_inputs(ctx, "addmm", a, c)) return NULL;
        if (!(c->ndim == 2 && c->ne[0] == ne[nd - 2] && c->ne[1] == ne[nd - 1]) &&
            !(c->ndim == nd && !memcmp(c->ne, ne, (size_t)nd * sizeof ne[0])))
            return fail(ctx, "addmm: C must be (M, N) or the product's shape");
        if (a->device == MM_CUDA) /* the composition, on the device */
            return mm_tensor_add(ctx, matmul_op(ctx, NULL, a, b, ta, tb, alpha, 0),
                                 mm_tensor_scale(ctx, c, beta));
        c = mm_tensor_contiguous(ctx, c);
        if (!c) return NULL;
    }
    if (a->device == MM_CUDA && alpha != 1)
        return mm_tensor_scale(ctx, matmul_op(ctx, NULL, a, b, ta, tb, 1, 0), alpha);
    mm_tensor *out = tnew_like_raw(ctx, a, nd, ne);
    int lda = (int)(ta ? g.m : g.k), ldb = (int)(tb ? g.k : g.n);
#ifdef MM_HAVE_CUDA
    if (a->device == MM_CUDA) {
        if (cu_gemm(ctx, "matmul", ta, tb, (int)g.m, (int)g.n, (int)g.k,
                    a->data, lda, g.sa, b->data, ldb, g.sb, 0.0f, out->data,
                    (int)g.n, g.m * g.n, g.batch))
            return NULL;
        out->ip[0] = ta;
        out->ip[1] = tb;
        return record(ctx, out, OP_MATMUL, a, b, NULL);
    }
#endif
    int64_t mn = g.m * g.n, cb = c && c->ndim == nd ? mn : 0;
    if (c) { /* out = beta C, each matrix, then beta 1 in the GEMMs */
        FOR_REAL(a->dtype, {
            const real *cs = c->data;
            real *o = out->data, bt = (real)beta;
            for (int64_t i = 0; i < g.batch; i++)
                for (int64_t j = 0; j < mn; j++) o[i * mn + j] = bt * cs[i * cb + j];
        });
    }
    gemm_batch(a->dtype, ta, tb, g.batch, (int)g.m, (int)g.n, (int)g.k, alpha,
               a->data, g.sa, lda, b->data, g.sb, ldb, c ? 1.0 : 0.0, out->data,
               mn, (int)g.n);
    out->ip[0] = ta;
    out->ip[1] = tb;
    out->fp = alpha;
    out->fq = beta;
    return record(ctx, out, c || alpha != 1 ? OP_ADDMM : OP_MATMUL, a, b, c);
}

mm_tensor *mm_tensor_matmul(mm_ctx *ctx, mm_tensor *a, mm_tensor *b, int ta,
                            int tb)
{
    return matmul_op(ctx, NULL, a, b, ta, tb, 1.0, 0.0);
}

mm_tensor *mm_tensor_addmm(mm_ctx *ctx, mm_tensor *c, mm_tensor *a,
                           mm_tensor *b, int ta, int tb, double alpha,
                           double beta)
{
    return matmul_op(ctx, c, a, b, ta, tb, alpha, c ? beta : 0.0);
}

static void backward_matmul(mm_tensor *t)
{
    mm_tensor *a = t->src[0], *b = t->src[1];
    int ta = (int)t->ip[0], tb = (int)t->ip[1];
    mmgeo g = geometry(a, b, ta, tb);
    int M = (int)g.m, N = (int)g.n, K = (int)g.k;
    int lda = ta ? M : K, ldb = tb ? K : N;
    double al = t->op == OP_ADDMM ? t->fp : 1.0;
    mm_tensor *c = t->op == OP_ADDMM ? t->src[2] : NULL;
    if (c && c->requires_grad) { /* dC = beta dOut, summed where shared */
        int64_t mn = g.m * g.n, cb = c->ndim == t->ndim ? mn : 0;
        FOR_REAL(t->dtype, {
            const real *go = t->grad->data;
            real *gc = grad_of(t->ctx, c)->data, bt = (real)t->fq;
            for (int64_t i = 0; i < g.batch; i++)
                for (int64_t j = 0; j < mn; j++) gc[i * cb + j] += bt * go[i * mn + j];
        });
    }
#ifdef MM_HAVE_CUDA
    if (t->device == MM_CUDA) {
        const float *C = t->grad->data, *A = a->data, *B = b->data;
        int64_t smn = g.m * g.n;
        if (a->requires_grad) {
            float *GA = grad_of(t->ctx, a)->data;
            if (!ta) /* dA = dC op(B)^T */
                cu_gemm(t->ctx, "matmul", 0, !tb, M, K, N, C, N, smn, B, ldb,
                        g.sb, 1.0f, GA, K, g.sa, g.batch);
            else     /* dA = op(B) dC^T */
                cu_gemm(t->ctx, "matmul", tb, 1, K, M, N, B, ldb, g.sb, C, N,
                        smn, 1.0f, GA, M, g.sa, g.batch);
        }
        if (b->requires_grad) {
            float *GB = grad_of(t->ctx, b)->data;
            if (!tb) /* dB = op(A)^T dC */
                cu_gemm(t->ctx, "matmul", !ta, 0, K, N, M, A, lda, g.sa, C, N,
                        smn, 1.0f, GB, N, g.sb, g.batch);
            else     /* dB = dC^T op(A) */
                cu_gemm(t->ctx, "matmul", 1, ta, N, K, M, C, N, smn, A, lda,
                        g.sa, 1.0f, GB, K, g.sb, g.batch);
        }
        return;
    }
#endif
    const char *gc = t->grad->data;
    /* a shared operand's grad sums over the batches in order (beta = 1
     * accumulates; gemm_batch keeps that order); a new gradient is
     * written with beta = 0, or zeroed first when shared */
    size_t es = mm_dtype_size(a->dtype);
    if (a->requires_grad) {
        int fresh;
        char *ga = grad_of_fresh(t->ctx, a, &fresh)->data;
        double beta = fresh ? 0.0 : 1.0;
        if (fresh && g.sa == 0 && g.batch > 1) {
            zero_fill(ga, (size_t)mm_tensor_numel(a) * es);
            beta = 1.0;
        }
        if (!ta) /* dA = dC op(B)^T */
            gemm_batch(a->dtype, 0, !tb, g.batch, M, K, N, al, gc, g.m * g.n, N,
                       b->data, g.sb, ldb, beta, ga, g.sa, K);
        else     /* dA = op(B) dC^T */
            gemm_batch(a->dtype, tb, 1, g.batch, K, M, N, al, b->data, g.sb, ldb,
                       gc, g.m * g.n, N, beta, ga, g.sa, M);
    }
    if (b->requires_grad) {
        int fresh;
        char *gb = grad_of_fresh(t->ctx, b, &fresh)->data;
        double beta = fresh ? 0.0 : 1.0;
        if (fresh && g.sb == 0 && g.batch > 1) {
            zero_fill(gb, (size_t)mm_tensor_numel(b) * es);
            beta = 1.0;
        }
        if (!tb) /* dB = op(A)^T dC */
            gemm_batch(a->dtype, !ta, 0, g.batch, K, N, M, al, a->data, g.sa, lda,
                       gc, g.m * g.n, N, beta, gb, g.sb, N);
        else     /* dB = dC^T op(A) */
            gemm_batch(a->dtype, 1, ta, g.batch, N, K, M, al, gc, g.m * g.n, N,
                       a->data, g.sa, lda, beta, gb, g.sb, K);
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

#ifdef MM_HAVE_CUDA
/* Our elementwise op codes as cuda/ops.h numbers them. */
static int cu_op(int op)
{
    switch (op) {
    case OP_ADD: return MM_CU_ADD;
    case OP_SUB: return MM_CU_SUB;
    case OP_MUL: return MM_CU_MUL;
    case OP_DIV: return MM_CU_DIV;
    case OP_SCALE: return MM_CU_SCALE;
    case OP_EXP: return MM_CU_EXP;
    case OP_LOG: return MM_CU_LOG;
    case OP_SQRT: return MM_CU_SQRT;
    case OP_TANH: return MM_CU_TANH;
    case OP_SIGMOID: return MM_CU_SIGMOID;
    case OP_RELU: return MM_CU_RELU;
    case OP_GELU: return MM_CU_GELU;
    case OP_ABS: return MM_CU_ABS;
    case OP_CLAMP: return MM_CU_CLAMP;
    case OP_RSQRT: return MM_CU_RSQRT;
    case OP_SQUARE: return MM_CU_SQUARE;
    case OP_ELU: return MM_CU_ELU;
    case OP_SILU: return MM_CU_SILU;
    default: return MM_CU_SOFTPLUS;
    }
}
#endif

/* One row of a binary op on contiguous rows: the loops vectorise. */
#define BIN_ROW(real)                                                          \
    static inline void bin_row_##real(int op, const real *x, const real *y,   \
                                      real *z, int64_t n)                     \
    {                                                                          \
        switch (op) {                                                          \
        case OP_ADD:                                                           \
            _Pragma("omp simd") for (int64_t i = 0; i < n; i++) z[i] = x[i] + y[i]; \
            break;                                                             \
        case OP_SUB:                                                           \
            _Pragma("omp simd") for (int64_t i = 0; i < n; i++) z[i] = x[i] - y[i]; \
            break;                                                             \
        case OP_MUL:                                                           \
            _Pragma("omp simd") for (int64_t i = 0; i < n; i++) z[i] = x[i] * y[i]; \
            break;                                                             \
        default:                                                               \
            _Pragma("omp simd") for (int64_t i = 0; i < n; i++) z[i] = x[i] / y[i]; \
            break;                                                             \
        }                                                                      \
    }
BIN_ROW(float)
BIN_ROW(double)
#undef BIN_ROW
#define bin_row(op, x, y, z, n)                                                \
    _Generic((z), float *: bin_row_float, double *: bin_row_double)(op, x, y, z, n)

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
    mm_tensor *out = tnew_like_raw(ctx, a, nd, ne);
    int64_t n4[4], sa[4], sb[4];
    pad4(out, n4, sa);
    bcast4(a, n4, sa);
    bcast4(b, n4, sb);
#ifdef MM_HAVE_CUDA
    if (a->device == MM_CUDA) {
        if (cu_check(ctx, name, mm__cu_binary(cu_op(op), out->data, a->data,
                                              b->data, i4(n4), i4(sa),
                                              i4(sb))))
            return NULL;
        return record(ctx, out, op, a, b, NULL);
    }
#endif
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
            if (s3 == 1 && t3 == 1) { /* rows of both inputs contiguous */
                bin_row(op, xr, yr, zr, n4[3]);
                continue;
            }
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

/* One row of BIN_PARTIAL added into GS, all rows contiguous: each case
 * is BIN_PARTIAL's expression, in a loop that vectorises. */
#define BIN_BACK_ROW(real)                                                     \
    static inline void bin_back_row_##real(int op, int w, const real *g,      \
                                           const real *x, const real *y,      \
                                           real *gs, int64_t n)               \
    {                                                                          \
        if (op == OP_ADD || (op == OP_SUB && !w)) {                            \
            _Pragma("omp simd") for (int64_t i = 0; i < n; i++) gs[i] += g[i]; \
        } else if (op == OP_SUB) {                                             \
            _Pragma("omp simd") for (int64_t i = 0; i < n; i++) gs[i] += -g[i]; \
        } else if (op == OP_MUL) {                                             \
            const real *o = w ? x : y;                                         \
            _Pragma("omp simd") for (int64_t i = 0; i < n; i++) gs[i] += g[i] * o[i]; \
        } else if (w) {                                                        \
            _Pragma("omp simd") for (int64_t i = 0; i < n; i++)                \
                gs[i] += -g[i] * x[i] / (y[i] * y[i]);                         \
        } else {                                                               \
            _Pragma("omp simd") for (int64_t i = 0; i < n; i++) gs[i] += g[i] / y[i]; \
        }                                                                      \
    }
BIN_BACK_ROW(float)
BIN_BACK_ROW(double)
#undef BIN_BACK_ROW
#define bin_back_row(op, w, g, x, y, gs, n)                                    \
    _Generic((gs), float *: bin_back_row_float,                                \
             double *: bin_back_row_double)(op, w, g, x, y, gs, n)

/* Hand T's gradient to SRC, a full-size source of T = SRC + y (or
 * SRC - y) whose gradient is not made yet: it is T's gradient element for
 * element, so SRC shares the buffer (T's own backward is done) instead of
 * a zeroed one plus an add. @return 1 when handed. */
static int grad_handover(mm_tensor *t, mm_tensor *src)
{
    if (src->grad || t->device != MM_CPU ||
        mm_tensor_numel(src) != mm_tensor_numel(t))
        return 0;
    mm_tensor *g = header(t->ctx, src->dtype, src->ndim, src->ne);
    g->data = t->grad->data;
    src->grad = g;
    return 1;
}

static void backward_binary(mm_tensor *t)
{
    int op = t->op;
    int64_t n4[4], s[2][4], ignore[4];
    pad4(t, n4, ignore);
    int64_t rows = n4[0] * n4[1] * n4[2];
    /* one source at most: two sharing one buffer would see each other's
     * later contributions (x + x is fine: the second adds into it) */
    int handed = 0;
    for (int w = 0; w < 2; w++) {
        mm_tensor *src = t->src[w];
        if (!src->requires_grad) continue;
        if (!handed && (op == OP_ADD || (op == OP_SUB && w == 0)) &&
            grad_handover(t, src)) {
            handed = 1;
            continue;
        }
        bcast4(t->src[0], n4, s[0]);
        bcast4(t->src[1], n4, s[1]);
#ifdef MM_HAVE_CUDA
        if (t->device == MM_CUDA) {
            int64_t sne[4], snb[4];
            pad4(src, sne, snb);
            cu_check(t->ctx, "backward",
                     mm__cu_binary_back(cu_op(op), w,
                                        grad_of(t->ctx, src)->data, i4(sne),
                                        t->src[0]->data, t->src[1]->data,
                                        t->grad->data, i4(n4), i4(s[0]),
                                        i4(s[1])));
            continue;
        }
#endif
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
                    if (d[3] == 1 && p[3] == 1 && q[3] == 1) {
                        bin_back_row(op, w, g, xr, yr, gr, n4[3]);
                        continue;
                    }
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

#if defined(__x86_64__) && defined(__GNUC__)
/* AVX-512 kernels (16 floats), picked at run time: the library is built
 * for baseline x86-64. The f32 softmax rows: where exp4 (below) runs in SSE2,
 * exp16 does exp4's operations in the same order (no FMA: -std=c11 keeps
 * GCC from contracting them), so each lane gives exp4's bits; only the
 * sum of a row runs 16 lanes wide (folded to 4 lanes, then summed as the
 * SSE2 path does). */
#define MM_AVX512 __attribute__((target("avx512f")))

static int have_avx512(void)
{
    static int have = -1;
    if (have < 0) have = __builtin_cpu_supports("avx512f") ? 1 : 0;
    return have;
}

#define S16 _mm512_set1_ps
MM_AVX512 static inline __m512 exp16(__m512 x)
{
    /* max/min with the bound first: a NaN in X stays NaN, as in exp4 */
    x = _mm512_max_ps(S16(-87.3f), x);
    x = _mm512_min_ps(S16(88.3f), x);
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, S16(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT |
                                        _MM_FROUND_NO_EXC);
    __m512 r = _mm512_sub_ps(x, _mm512_mul_ps(n, S16(0.693359375f)));
    r = _mm512_sub_ps(r, _mm512_mul_ps(n, S16(-2.12194440e-4f)));
    __m512 z = _mm512_mul_ps(r, r);
    __m512 p = S16(1.9875691500e-4f);
    p = _mm512_add_ps(_mm512_mul_ps(p, r), S16(1.3981999507e-3f));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), S16(8.3334519073e-3f));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), S16(4.1665795894e-2f));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), S16(1.6666665459e-1f));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), S16(5.0000001201e-1f));
    p = _mm512_add_ps(_mm512_add_ps(_mm512_mul_ps(p, z), r), S16(1.0f));
    return _mm512_scalef_ps(p, n); /* p 2^n, exact as exp4's multiply */
}

/* Sum of 16 lanes: folded to 4 lanes, then (a0 + a1) + (a2 + a3). */
MM_AVX512 static inline float hsum16(__m512 a)
{
    __m128 q = _mm_add_ps(_mm_add_ps(_mm512_extractf32x4_ps(a, 0),
                                     _mm512_extractf32x4_ps(a, 1)),
                          _mm_add_ps(_mm512_extractf32x4_ps(a, 2),
                                     _mm512_extractf32x4_ps(a, 3)));
    float f[4];
    _mm_storeu_ps(f, q);
    return (f[0] + f[1]) + (f[2] + f[3]);
}

static inline __mmask16 tail_mask(int64_t left)
{
    return (__mmask16)((1u << left) - 1);
}

MM_AVX512 static void softmax_row_f32_512(const float *x, float *y,
                                          int64_t n, float *st)
{
    __m512 m = _mm512_set1_ps(-INFINITY);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) m = _mm512_max_ps(m, _mm512_loadu_ps(x + i));
    if (i < n)
        m = _mm512_max_ps(m, _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY),
                                                  tail_mask(n - i), x + i));
    float mx = _mm512_reduce_max_ps(m);
    __m512 m16 = _mm512_set1_ps(mx), acc = _mm512_setzero_ps();
    for (i = 0; i + 16 <= n; i += 16) {
        __m512 v = exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i), m16));
        _mm512_storeu_ps(y + i, v);
        acc = _mm512_add_ps(acc, v);
    }
    if (i < n) {
        __mmask16 k = tail_mask(n - i);
        __m512 v = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), m16));
        _mm512_mask_storeu_ps(y + i, k, v);
        acc = _mm512_mask_add_ps(acc, k, acc, v);
    }
    float inv = 1 / hsum16(acc);
    __m512 i16 = _mm512_set1_ps(inv);
    for (i = 0; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i, _mm512_mul_ps(_mm512_loadu_ps(y + i), i16));
    if (i < n) {
        __mmask16 k = tail_mask(n - i);
        _mm512_mask_storeu_ps(y + i, k,
                              _mm512_mul_ps(_mm512_maskz_loadu_ps(k, y + i), i16));
    }
    if (st) {
        st[0] = mx;
        st[1] = inv;
    }
}

MM_AVX512 static void softmax_row_f32_again_512(float *x, int64_t n,
                                                const float *st)
{
    __m512 m16 = _mm512_set1_ps(st[0]), i16 = _mm512_set1_ps(st[1]);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 v = exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i), m16));
        _mm512_storeu_ps(x + i, _mm512_mul_ps(v, i16));
    }
    if (i < n) {
        __mmask16 k = tail_mask(n - i);
        __m512 v = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), m16));
        _mm512_mask_storeu_ps(x + i, k, _mm512_mul_ps(v, i16));
    }
}

/* GELU (erf form) on 16 lanes: Phi(x) = erfc(-x / sqrt 2) / 2 with
 * erfc(|z|) = t P(t) exp(-z^2), t = 1 / (1 + p |z|) (Abramowitz-Stegun
 * 7.1.26, |error| < 1.5e-7 in erf), and exp16. Scalar libm erff was 5% of
 * a transformer step. D (backward only): Phi(x) + x phi(x), where
 * phi(x) = exp(-z^2) / sqrt(2 pi) shares the exponential. */
MM_AVX512 static inline __m512 phi16(__m512 x, __m512 *dcdf)
{
    __m512 z = _mm512_mul_ps(x, S16(0.70710678118654752440f));
    __m512 az = _mm512_abs_ps(z);
    __m512 t = _mm512_div_ps(S16(1.0f),
                             _mm512_fmadd_ps(az, S16(0.3275911f), S16(1.0f)));
    __m512 p = S16(1.061405429f);
    p = _mm512_fmadd_ps(p, t, S16(-1.453152027f));
    p = _mm512_fmadd_ps(p, t, S16(1.421413741f));
    p = _mm512_fmadd_ps(p, t, S16(-0.284496736f));
    p = _mm512_fmadd_ps(p, t, S16(0.254829592f));
    __m512 e = exp16(_mm512_mul_ps(_mm512_sub_ps(_mm512_setzero_ps(), az), az));
    __m512 half_erfc = _mm512_mul_ps(_mm512_mul_ps(p, t),
                                     _mm512_mul_ps(e, S16(0.5f)));
    __mmask16 neg = _mm512_cmp_ps_mask(z, _mm512_setzero_ps(), _CMP_LT_OQ);
    __m512 cdf = _mm512_mask_blend_ps(neg, _mm512_sub_ps(S16(1.0f), half_erfc),
                                      half_erfc);
    if (dcdf)
        *dcdf = _mm512_fmadd_ps(_mm512_mul_ps(x, e),
                                S16(0.39894228040143267794f), cdf);
    return cdf;
}

/* Y = gelu(X) over N floats. */
MM_AVX512 static void gelu_f32_512(const float *x, float *y, int64_t n)
{
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 v = _mm512_loadu_ps(x + i);
        _mm512_storeu_ps(y + i, _mm512_mul_ps(v, phi16(v, NULL)));
    }
    if (i < n) {
        __mmask16 k = tail_mask(n - i);
        __m512 v = _mm512_maskz_loadu_ps(k, x + i);
        _mm512_mask_storeu_ps(y + i, k, _mm512_mul_ps(v, phi16(v, NULL)));
    }
}

/* GX += G gelu'(X) over N floats. */
MM_AVX512 static void gelu_back_f32_512(const float *x, const float *g,
                                        float *gx, int64_t n)
{
    int64_t i = 0;
    __m512 d;
    for (; i + 16 <= n; i += 16) {
        phi16(_mm512_loadu_ps(x + i), &d);
        _mm512_storeu_ps(gx + i, _mm512_fmadd_ps(_mm512_loadu_ps(g + i), d,
                                                 _mm512_loadu_ps(gx + i)));
    }
    if (i < n) {
        __mmask16 k = tail_mask(n - i);
        phi16(_mm512_maskz_loadu_ps(k, x + i), &d);
        _mm512_mask_storeu_ps(gx + i, k,
                              _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k, g + i), d,
                                              _mm512_maskz_loadu_ps(k, gx + i)));
    }
}
#endif

// ---- unary ops -----------------------------------------------------------------

static mm_tensor *unary(mm_ctx *ctx, int op, const char *name, mm_tensor *a,
                        double s, double s2)
{
    if (!a) return NULL;
    if (check_inputs(ctx, name, a, NULL)) return NULL;
    a = mm_tensor_contiguous(ctx, a);
    if (!a) return NULL;
    mm_tensor *out = tnew_like_raw(ctx, a, a->ndim, a->ne);
    int64_t n = mm_tensor_numel(a);
    out->fp = s;
    out->fq = s2;
#ifdef MM_HAVE_CUDA
    if (a->device == MM_CUDA) {
        if (cu_check(ctx, name, mm__cu_unary(cu_op(op), out->data, a->data,
                                             n, (float)s, (float)s2)))
            return NULL;
        return record(ctx, out, op, a, NULL, NULL);
    }
#endif
#if defined(__x86_64__) && defined(__GNUC__)
    if (op == OP_GELU && a->dtype == MM_F32 && have_avx512()) {
        const float *x = a->data;
        float *y = out->data;
        OMP_FOR for (int64_t i = 0; i < n; i += 4096)
            gelu_f32_512(x + i, y + i, n - i < 4096 ? n - i : 4096);
        return record(ctx, out, op, a, NULL, NULL);
    }
#endif
    FOR_REAL(a->dtype, {
        const real *x = a->data;
        real *y = out->data;
        real sc = (real)s, s2r = (real)s2;
        switch (op) {
        case OP_SCALE:
            OMP_FOR_SIMD for (int64_t i = 0; i < n; i++) y[i] = sc * x[i];
            break;
        case OP_ABS:
            OMP_FOR_SIMD for (int64_t i = 0; i < n; i++) y[i] = fabs(x[i]);
            break;
        case OP_CLAMP:
            OMP_FOR_SIMD for (int64_t i = 0; i < n; i++)
                y[i] = x[i] < sc ? sc : x[i] > s2r ? s2r : x[i];
            break;
        case OP_RSQRT:
            OMP_FOR for (int64_t i = 0; i < n; i++) y[i] = 1 / sqrt(x[i]);
            break;
        case OP_SQUARE:
            OMP_FOR_SIMD for (int64_t i = 0; i < n; i++) y[i] = x[i] * x[i];
            break;
        case OP_ELU:
            OMP_FOR for (int64_t i = 0; i < n; i++)
                y[i] = x[i] > 0 ? x[i] : sc * expm1(x[i]);
            break;
        case OP_SILU:
            OMP_FOR for (int64_t i = 0; i < n; i++)
                y[i] = x[i] / (1 + exp(-x[i]));
            break;
        case OP_SOFTPLUS: /* torch: beta 1, threshold 20 */
            OMP_FOR for (int64_t i = 0; i < n; i++)
                y[i] = x[i] > 20 ? x[i] : log1p(exp(x[i]));
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
            OMP_FOR_SIMD for (int64_t i = 0; i < n; i++)
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
    return record(ctx, out, op, a, NULL, NULL);
}

mm_tensor *mm_tensor_scale(mm_ctx *ctx, mm_tensor *a, double s)
{
    return unary(ctx, OP_SCALE, "scale", a, s, 0);
}
mm_tensor *mm_tensor_exp(mm_ctx *ctx, mm_tensor *a)
{
    return unary(ctx, OP_EXP, "exp", a, 0, 0);
}
mm_tensor *mm_tensor_log(mm_ctx *ctx, mm_tensor *a)
{
    return unary(ctx, OP_LOG, "log", a, 0, 0);
}
mm_tensor *mm_tensor_sqrt(mm_ctx *ctx, mm_tensor *a)
{
    return unary(ctx, OP_SQRT, "sqrt", a, 0, 0);
}
mm_tensor *mm_tensor_tanh(mm_ctx *ctx, mm_tensor *a)
{
    return unary(ctx, OP_TANH, "tanh", a, 0, 0);
}
mm_tensor *mm_tensor_sigmoid(mm_ctx *ctx, mm_tensor *a)
{
    return unary(ctx, OP_SIGMOID, "sigmoid", a, 0, 0);
}
mm_tensor *mm_tensor_relu(mm_ctx *ctx, mm_tensor *a)
{
    return unary(ctx, OP_RELU, "relu", a, 0, 0);
}
mm_tensor *mm_tensor_gelu(mm_ctx *ctx, mm_tensor *a)
{
    return unary(ctx, OP_GELU, "gelu", a, 0, 0);
}
mm_tensor *mm_tensor_neg(mm_ctx *ctx, mm_tensor *a)
{
    return unary(ctx, OP_SCALE, "neg", a, -1, 0);
}
mm_tensor *mm_tensor_abs(mm_ctx *ctx, mm_tensor *a)
{
    return unary(ctx, OP_ABS, "abs", a, 0, 0);
}
mm_tensor *mm_tensor_clamp(mm_ctx *ctx, mm_tensor *a, double lo, double hi)
{
    if (!a) return NULL;
    if (!(lo <= hi))
        return fail(ctx, "clamp: lo %g above hi %g", lo, hi);
    return unary(ctx, OP_CLAMP, "clamp", a, lo, hi);
}
mm_tensor *mm_tensor_rsqrt(mm_ctx *ctx, mm_tensor *a)
{
    return unary(ctx, OP_RSQRT, "rsqrt", a, 0, 0);
}
mm_tensor *mm_tensor_square(mm_ctx *ctx, mm_tensor *a)
{
    return unary(ctx, OP_SQUARE, "square", a, 0, 0);
}
mm_tensor *mm_tensor_elu(mm_ctx *ctx, mm_tensor *a, double alpha)
{
    return unary(ctx, OP_ELU, "elu", a, alpha, 0);
}
mm_tensor *mm_tensor_silu(mm_ctx *ctx, mm_tensor *a)
{
    return unary(ctx, OP_SILU, "silu", a, 0, 0);
}
mm_tensor *mm_tensor_softplus(mm_ctx *ctx, mm_tensor *a)
{
    return unary(ctx, OP_SOFTPLUS, "softplus", a, 0, 0);
}

static void backward_unary(mm_tensor *t)
{
    mm_tensor *a = t->src[0];
    int64_t n = mm_tensor_numel(t);
    int op = t->op;
#ifdef MM_HAVE_CUDA
    if (t->device == MM_CUDA) {
        cu_check(t->ctx, "backward",
                 mm__cu_unary_back(cu_op(op), grad_of(t->ctx, a)->data,
                                   a->data, t->data, t->grad->data, n,
                                   (float)t->fp, (float)t->fq));
        return;
    }
#endif
#if defined(__x86_64__) && defined(__GNUC__)
    if (op == OP_GELU && t->dtype == MM_F32 && have_avx512()) {
        const float *x = a->data, *g = t->grad->data;
        float *gx = grad_of(t->ctx, a)->data;
        OMP_FOR for (int64_t i = 0; i < n; i += 4096)
            gelu_back_f32_512(x + i, g + i, gx + i, n - i < 4096 ? n - i : 4096);
        return;
    }
#endif
    FOR_REAL(t->dtype, {
        const real *x = a->data, *y = t->data, *g = t->grad->data;
        real *gx = grad_of(t->ctx, a)->data;
        real sc = (real)t->fp, s2r = (real)t->fq;
        switch (op) {
        case OP_SCALE:
            OMP_FOR_SIMD for (int64_t i = 0; i < n; i++) gx[i] += sc * g[i];
            break;
        case OP_ABS: /* sign(x), 0 at 0 as torch */
            OMP_FOR_SIMD for (int64_t i = 0; i < n; i++) {
                real gi = g[i]; /* loaded always: the select vectorises */
                gx[i] += x[i] > 0 ? gi : x[i] < 0 ? -gi : 0;
            }
            break;
        case OP_CLAMP: /* passes where lo <= x <= hi, as torch */
            OMP_FOR_SIMD for (int64_t i = 0; i < n; i++) {
                real gi = g[i];
                gx[i] += x[i] >= sc && x[i] <= s2r ? gi : 0;
            }
            break;
        case OP_RSQRT:
            OMP_FOR for (int64_t i = 0; i < n; i++)
                gx[i] += (real)-0.5 * g[i] * y[i] * y[i] * y[i];
            break;
        case OP_SQUARE:
            OMP_FOR_SIMD for (int64_t i = 0; i < n; i++) gx[i] += 2 * g[i] * x[i];
            break;
        case OP_ELU:
            OMP_FOR for (int64_t i = 0; i < n; i++)
                gx[i] += x[i] > 0 ? g[i] : g[i] * sc * exp(x[i]);
            break;
        case OP_SILU:
            OMP_FOR for (int64_t i = 0; i < n; i++) {
                real sg = 1 / (1 + exp(-x[i]));
                gx[i] += g[i] * sg * (1 + x[i] * (1 - sg));
            }
            break;
        case OP_SOFTPLUS:
            OMP_FOR for (int64_t i = 0; i < n; i++)
                gx[i] += x[i] > 20 ? g[i] : g[i] / (1 + exp(-x[i]));
            break;
        case OP_EXP:
            OMP_FOR_SIMD for (int64_t i = 0; i < n; i++) gx[i] += g[i] * y[i];
            break;
        case OP_LOG:
            OMP_FOR_SIMD for (int64_t i = 0; i < n; i++) gx[i] += g[i] / x[i];
            break;
        case OP_SQRT:
            OMP_FOR_SIMD for (int64_t i = 0; i < n; i++)
                gx[i] += g[i] * (real)0.5 / y[i];
            break;
        case OP_TANH:
            OMP_FOR_SIMD for (int64_t i = 0; i < n; i++)
                gx[i] += g[i] * (1 - y[i] * y[i]);
            break;
        case OP_SIGMOID:
            OMP_FOR_SIMD for (int64_t i = 0; i < n; i++)
                gx[i] += g[i] * y[i] * (1 - y[i]);
            break;
        case OP_RELU:
            OMP_FOR_SIMD for (int64_t i = 0; i < n; i++) {
                real gi = g[i];
                gx[i] += x[i] > 0 ? gi : 0;
            }
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
    mm_tensor *out = tnew_like(ctx, a, nd, ne);
    int64_t outer = numel_of(ax, a->ne), len = a->ne[ax];
    int64_t inner = numel_of(a->ndim - ax - 1, a->ne + ax + 1);
    double sc = op == OP_MEAN ? 1.0 / (double)len : 1.0;
    out->ip[0] = ax;
    out->fp = sc;
#ifdef MM_HAVE_CUDA
    if (a->device == MM_CUDA) {
        if (cu_check(ctx, name, mm__cu_reduce(out->data, a->data, outer, len,
                                              inner, (float)sc)))
            return NULL;
        return record(ctx, out, op, a, NULL, NULL);
    }
#endif
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
#ifdef MM_HAVE_CUDA
    if (t->device == MM_CUDA) {
        cu_check(t->ctx, "backward",
                 mm__cu_reduce_back(grad_of(t->ctx, a)->data, t->grad->data,
                                    outer, len, inner, (float)t->fp));
        return;
    }
#endif
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

/* exp of 4 floats (GCC/Clang vector extensions: SSE2 on x86-64, NEON on
 * arm64), for the f32 softmax, whose scalar libm expf call was 16% of a
 * transformer step: Cephes expf (exp(x) = 2^n e^r, n = round(x log2 e),
 * r = x - n ln 2 in two parts, e^r by its degree-7 polynomial), about
 * 1 ulp. X is clamped to [-87.3, 88.3] so that 2^n stays a normal float:
 * below, where expf is under 1.2e-38 or 0, it gives ~1.1e-38. */
typedef float v4f __attribute__((vector_size(16)));
typedef int32_t v4i __attribute__((vector_size(16)));

static inline v4f v4_splat(float a) { return (v4f){a, a, a, a}; }

static inline v4f v4_sel(v4i m, v4f a, v4f b) /* m ? a : b, per lane */
{
    return (v4f)(((v4i)a & m) | ((v4i)b & ~m));
}

static inline v4f exp4(v4f x)
{
    x = v4_sel(x < v4_splat(-87.3f), v4_splat(-87.3f), x);
    x = v4_sel(x > v4_splat(88.3f), v4_splat(88.3f), x);
    const v4f magic = v4_splat(12582912.0f); /* 1.5 2^23: round to nearest */
    v4f n = (x * v4_splat(1.44269504088896341f) + magic) - magic;
    v4f r = x - n * v4_splat(0.693359375f) - n * v4_splat(-2.12194440e-4f);
    v4f z = r * r;
    v4f p = v4_splat(1.9875691500e-4f);
    p = p * r + v4_splat(1.3981999507e-3f);
    p = p * r + v4_splat(8.3334519073e-3f);
    p = p * r + v4_splat(4.1665795894e-2f);
    p = p * r + v4_splat(1.6666665459e-1f);
    p = p * r + v4_splat(5.0000001201e-1f);
    p = p * z + r + v4_splat(1.0f);
    v4i e = (__builtin_convertvector(n, v4i) + 127) << 23;
    return p * (v4f)e;
}


/* Y = softmax(X) over one contiguous f32 row of N (X == Y is fine). With
 * ST, ST[0] = the row's max and ST[1] = 1 / its sum of exponentials, from
 * which softmax_row_f32_again recomputes Y bit for bit. */
static void softmax_row_f32(const float *x, float *y, int64_t n, float *st)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (have_avx512()) {
        softmax_row_f32_512(x, y, n, st);
        return;
    }
#endif
    float mx = x[0];
    for (int64_t i = 1; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    v4f acc = v4_splat(0), m4 = v4_splat(mx);
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        v4f v;
        memcpy(&v, x + i, sizeof v);
        v = exp4(v - m4);
        memcpy(y + i, &v, sizeof v);
        acc += v;
    }
    float s = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    if (i < n) { /* the tail, padded with the max (those lanes dropped) */
        float t[4] = {mx, mx, mx, mx};
        memcpy(t, x + i, (size_t)(n - i) * sizeof *t);
        v4f v;
        memcpy(&v, t, sizeof v);
        v = exp4(v - m4);
        memcpy(t, &v, sizeof v);
        for (int64_t j = 0; i + j < n; j++) {
            y[i + j] = t[j];
            s += t[j];
        }
    }
    float inv = 1 / s;
    _Pragma("omp simd")
    for (int64_t j = 0; j < n; j++) y[j] *= inv;
    if (st) {
        st[0] = mx;
        st[1] = inv;
    }
}

/* X = softmax(X) in place from the ST of softmax_row_f32 on the same X:
 * exp4 works lane by lane, so grouping the row in fours (and padding the
 * tail) gives the same values as the first pass. */
static void softmax_row_f32_again(float *x, int64_t n, const float *st)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (have_avx512()) {
        softmax_row_f32_again_512(x, n, st);
        return;
    }
#endif
    v4f m4 = v4_splat(st[0]);
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        v4f v;
        memcpy(&v, x + i, sizeof v);
        v = exp4(v - m4);
        memcpy(x + i, &v, sizeof v);
    }
    if (i < n) {
        float t[4] = {st[0], st[0], st[0], st[0]};
        memcpy(t, x + i, (size_t)(n - i) * sizeof *t);
        v4f v;
        memcpy(&v, t, sizeof v);
        v = exp4(v - m4);
        memcpy(x + i, &v, (size_t)(n - i) * sizeof *t);
    }
    float inv = st[1];
    _Pragma("omp simd")
    for (int64_t j = 0; j < n; j++) x[j] *= inv;
}

/* Softmax over axis AX of a contiguous tensor: the LEN values of a row are
 * INNER elements apart (INNER = 1 for the last axis, the old loop exactly).
 * Rows are independent (one thread each); each row's max and sum run over
 * k in order. ip[0] keeps the axis for the backward. */
static mm_tensor *softmax_op(mm_ctx *ctx, int op, const char *name,
                             mm_tensor *a, int axis)
{
    if (!a) return NULL;
    if (check_inputs(ctx, name, a, NULL)) return NULL;
    if (a->ndim < 1) return fail(ctx, "%s: a scalar has no axis", name);
    int ax = norm_axis(axis, a->ndim);
    if (ax < 0)
        return fail(ctx, "%s: axis %d of a %d-D tensor", name, axis,
                    a->ndim);
    a = mm_tensor_contiguous(ctx, a);
    if (!a) return NULL;
    mm_tensor *out = tnew_like_raw(ctx, a, a->ndim, a->ne);
    int64_t n = a->ne[ax], inner = numel_of(a->ndim - ax - 1, a->ne + ax + 1);
    int64_t rows = mm_tensor_numel(a) / n;
    int lg = op == OP_LOG_SOFTMAX;
    out->ip[0] = ax;
#ifdef MM_HAVE_CUDA
    if (a->device == MM_CUDA) {
        if (cu_check(ctx, name, mm__cu_softmax(out->data, a->data, rows, n,
                                               inner, lg)))
            return NULL;
        return record(ctx, out, op, a, NULL, NULL);
    }
#endif
    if (a->dtype == MM_F32 && inner == 1 && !lg) {
        const float *x = a->data;
        float *y = out->data;
        OMP_FOR
        for (int64_t r = 0; r < rows; r++)
            softmax_row_f32(x + r * n, y + r * n, n, NULL);
        return record(ctx, out, op, a, NULL, NULL);
    }
    FOR_REAL(a->dtype, {
        OMP_FOR
        for (int64_t r = 0; r < rows; r++) {
            int64_t base = r / inner * n * inner + r % inner;
            const real *x = (const real *)a->data + base;
            real *y = (real *)out->data + base;
            real mx = x[0], s = 0;
            for (int64_t i = 1; i < n; i++)
                mx = x[i * inner] > mx ? x[i * inner] : mx;
            for (int64_t i = 0; i < n; i++) {
                y[i * inner] = exp(x[i * inner] - mx);
                s += y[i * inner];
            }
            if (lg) {
                real ls = mx + log(s);
                for (int64_t i = 0; i < n; i++)
                    y[i * inner] = x[i * inner] - ls;
            } else {
                for (int64_t i = 0; i < n; i++) y[i * inner] /= s;
            }
        }
    });
    return record(ctx, out, op, a, NULL, NULL);
}

mm_tensor *mm_tensor_softmax_axis(mm_ctx *ctx, mm_tensor *a, int axis)
{
    return softmax_op(ctx, OP_SOFTMAX, "softmax", a, axis);
}
mm_tensor *mm_tensor_log_softmax_axis(mm_ctx *ctx, mm_tensor *a, int axis)
{
    return softmax_op(ctx, OP_LOG_SOFTMAX, "log_softmax", a, axis);
}
mm_tensor *mm_tensor_softmax(mm_ctx *ctx, mm_tensor *a)
{
    return softmax_op(ctx, OP_SOFTMAX, "softmax", a, -1);
}
mm_tensor *mm_tensor_log_softmax(mm_ctx *ctx, mm_tensor *a)
{
    return softmax_op(ctx, OP_LOG_SOFTMAX, "log_softmax", a, -1);
}

static void backward_softmax(mm_tensor *t)
{
    mm_tensor *a = t->src[0];
    int ax = (int)t->ip[0];
    int64_t n = t->ne[ax], inner = numel_of(t->ndim - ax - 1, t->ne + ax + 1);
    int64_t rows = mm_tensor_numel(t) / n;
    int lg = t->op == OP_LOG_SOFTMAX;
#ifdef MM_HAVE_CUDA
    if (t->device == MM_CUDA) {
        cu_check(t->ctx, "backward",
                 mm__cu_softmax_back(grad_of(t->ctx, a)->data, t->data,
                                     t->grad->data, rows, n, inner, lg));
        return;
    }
#endif
    FOR_REAL(t->dtype, {
        real *gxa = grad_of(t->ctx, a)->data;
        OMP_FOR
        for (int64_t r = 0; r < rows; r++) {
            int64_t base = r / inner * n * inner + r % inner;
            const real *y = (const real *)t->data + base;
            const real *g = (const real *)t->grad->data + base;
            real *gx = gxa + base;
            real s = 0;
            if (!lg && inner == 1) { /* the common case, vectorised */
                _Pragma("omp simd reduction(+:s)")
                for (int64_t i = 0; i < n; i++) s += g[i] * y[i];
                _Pragma("omp simd")
                for (int64_t i = 0; i < n; i++) gx[i] += y[i] * (g[i] - s);
            } else if (lg) {
                for (int64_t i = 0; i < n; i++) s += g[i * inner];
                for (int64_t i = 0; i < n; i++)
                    gx[i * inner] += g[i * inner] - exp(y[i * inner]) * s;
            } else {
                for (int64_t i = 0; i < n; i++)
                    s += g[i * inner] * y[i * inner];
                for (int64_t i = 0; i < n; i++)
                    gx[i * inner] += y[i * inner] * (g[i * inner] - s);
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
    mm_tensor *out = tnew_like_raw(ctx, x, x->ndim, x->ne);
    /* saved per row: mean, rstd; and xhat (N) for the backward */
    size_t es = mm_dtype_size(x->dtype);
    out->fp = eps;
#ifdef MM_HAVE_CUDA
    if (x->device == MM_CUDA) {
        out->aux = dev_alloc(ctx, (size_t)(rows * (2 + n)) * es);
        if (cu_check(ctx, "layernorm",
                     mm__cu_layernorm(out->data, out->aux, x->data,
                                      w ? w->data : NULL, b ? b->data : NULL,
                                      rows, n, (float)eps)))
            return NULL;
        return record(ctx, out, OP_LAYERNORM, x, w, b);
    }
#endif
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
    return record(ctx, out, OP_LAYERNORM, x, w, b);
}

static void backward_layernorm(mm_tensor *t)
{
    mm_tensor *x = t->src[0], *w = t->src[1], *b = t->src[2];
    int64_t n = t->ne[t->ndim - 1], rows = mm_tensor_numel(t) / n;
#ifdef MM_HAVE_CUDA
    if (t->device == MM_CUDA) {
        float *gx = x->requires_grad ? grad_of(t->ctx, x)->data : NULL;
        float *gw = w && w->requires_grad ? grad_of(t->ctx, w)->data : NULL;
        float *gb = b && b->requires_grad ? grad_of(t->ctx, b)->data : NULL;
        cu_check(t->ctx, "backward",
                 mm__cu_layernorm_back(gx, gw, gb, t->aux, t->grad->data,
                                       w ? w->data : NULL, rows, n));
        return;
    }
#endif
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

// ---- fused attention -----------------------------------------------------------

/* Offset in elements of batch item I of T (its dims 0 .. ndim - 3). */
static int64_t batch_off(const mm_tensor *t, int64_t i)
{
    int64_t o = 0;
    for (int d = t->ndim - 3; d >= 0; d--) {
        o += i % t->ne[d] * t->nb[d];
        i /= t->ne[d];
    }
    return o;
}

/* The row stride BLAS reads T's matrices with, or 0 when it cannot read
 * them in place (elements of a row not adjacent, rows overlapping). */
static int64_t row_ld(const mm_tensor *t)
{
    int64_t c = t->ne[t->ndim - 1], r = t->ne[t->ndim - 2];
    if (c > 1 && t->nb[t->ndim - 1] != 1) return 0;
    if (r == 1) return c;
    return t->nb[t->ndim - 2] >= c ? t->nb[t->ndim - 2] : 0;
}

/* Query rows per block: 256, fewer (down to 64) where a block's scores
 * would pass 8 MiB. The backward's dV and dK are updates of rank = the
 * block's rows, and thin ones are mostly packing and memory traffic: at
 * 1 thread, 256 rows ran Nystrom's attn3 (256 x 6144 keys) 10% faster
 * than 128 and 25% faster than 64, and the others (2048 x 2048, 6144 x
 * 256) as fast as 128; blocks of 32 (256 KB of scores) were 25% slower. */
static int64_t attn_block(int64_t m, int64_t n, size_t es)
{
    int64_t bm = (int64_t)(((size_t)8 << 20) / es) / n / 16 * 16;
    if (bm < 64) bm = 64;
    if (bm > 256) bm = 256;
    return bm < m ? bm : m;
}

typedef struct {
    mm_dtype dt;
    int64_t batch, m, n, d, dv, bm, nblk;
    const mm_tensor *q, *k, *v;
    int64_t ldq, ldk, ldv;
    double scale;
} attn_geo;

static attn_geo attn_geometry(const mm_tensor *q, const mm_tensor *k,
                              const mm_tensor *v, double scale)
{
    attn_geo g;
    int nd = q->ndim;
    g.dt = q->dtype;
    g.batch = numel_of(nd - 2, q->ne);
    g.m = q->ne[nd - 2];
    g.d = q->ne[nd - 1];
    g.n = k->ne[nd - 2];
    g.dv = v->ne[nd - 1];
    g.bm = attn_block(g.m, g.n, mm_dtype_size(g.dt));
    g.nblk = (g.m + g.bm - 1) / g.bm;
    g.q = q;
    g.k = k;
    g.v = v;
    g.ldq = row_ld(q);
    g.ldk = row_ld(k);
    g.ldv = row_ld(v);
    g.scale = scale;
    return g;
}

/* S (ROWS x N, contiguous) = scale Q_b[r0 ..] K_b^T. */
static void attn_scores(const attn_geo *g, int64_t b, int64_t r0,
                        int64_t rows, void *s)
{
    size_t es = mm_dtype_size(g->dt);
    const char *qp = (const char *)g->q->data +
                     (batch_off(g->q, b) + r0 * g->ldq) * es;
    const char *kp = (const char *)g->k->data + batch_off(g->k, b) * es;
    gemm_ab(g->dt, 0, 1, (int)rows, (int)g->n, (int)g->d, g->scale, qp,
            (int)g->ldq, kp, (int)g->ldk, 0.0, s, (int)g->n);
}

/* Softmax of the ROWS rows of S in place. AGAIN = 0: the first pass, which
 * writes each row's (max, normaliser) to ST; AGAIN = 1: the same values
 * again from ST (the backward's recomputation, bit for bit). The f64 rows
 * are the f64 softmax's loop, the f32 ones softmax_row_f32. */
static void attn_probs(mm_dtype dt, void *s, int64_t rows, int64_t n,
                       void *st, int again)
{
    if (dt == MM_F32) {
        float *x = s, *t = st;
        for (int64_t r = 0; r < rows; r++) {
            if (again) softmax_row_f32_again(x + r * n, n, t + 2 * r);
            else softmax_row_f32(x + r * n, x + r * n, n, t + 2 * r);
        }
        return;
    }
    double *x = s, *t = st;
    for (int64_t r = 0; r < rows; r++) {
        double *y = x + r * n, mx, sum = 0;
        if (again) {
            mx = t[2 * r];
            sum = t[2 * r + 1];
        } else {
            mx = y[0];
            for (int64_t i = 1; i < n; i++) mx = y[i] > mx ? y[i] : mx;
        }
        for (int64_t i = 0; i < n; i++) {
            y[i] = exp(y[i] - mx);
            if (!again) sum += y[i];
        }
        for (int64_t i = 0; i < n; i++) y[i] /= sum;
        if (!again) {
            t[2 * r] = mx;
            t[2 * r + 1] = sum;
        }
    }
}

static int thread_num(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

mm_tensor *mm_tensor_attention(mm_ctx *ctx, mm_tensor *q, mm_tensor *k,
                               mm_tensor *v, double scale)
{
    if (!q || !k || !v) return NULL;
    if (check_inputs(ctx, "attention", q, k) ||
        check_inputs(ctx, "attention", q, v))
        return NULL;
    int nd = q->ndim;
    if (nd < 2 || k->ndim != nd || v->ndim != nd)
        return fail(ctx, "attention: Q, K, V must be of one rank >= 2, got "
                         "%d, %d, %d", q->ndim, k->ndim, v->ndim);
    size_t bsz = (size_t)(nd - 2) * sizeof q->ne[0];
    if (memcmp(q->ne, k->ne, bsz) || memcmp(q->ne, v->ne, bsz))
        return fail(ctx, "attention: batch dimensions differ");
    if (k->ne[nd - 1] != q->ne[nd - 1] || v->ne[nd - 2] != k->ne[nd - 2])
        return fail(ctx, "attention: Q (.., %lld, %lld), K (.., %lld, %lld) "
                         "and V (.., %lld, %lld) do not fit",
                    (long long)q->ne[nd - 2], (long long)q->ne[nd - 1],
                    (long long)k->ne[nd - 2], (long long)k->ne[nd - 1],
                    (long long)v->ne[nd - 2], (long long)v->ne[nd - 1]);
    if (q->device == MM_CUDA) {
        mm_tensor *s = mm_tensor_matmul(ctx, q, k, 0, 1);
        s = mm_tensor_softmax(ctx, mm_tensor_scale(ctx, s, scale));
        return mm_tensor_matmul(ctx, s, v, 0, 0);
    }
    if (!row_ld(q)) q = mm_tensor_contiguous(ctx, q);
    if (!row_ld(k)) k = mm_tensor_contiguous(ctx, k);
    if (!row_ld(v)) v = mm_tensor_contiguous(ctx, v);
    if (!q || !k || !v) return NULL;
    attn_geo g = attn_geometry(q, k, v, scale);
    size_t es = mm_dtype_size(g.dt);
    int64_t ne[MM_MAX_DIMS];
    memcpy(ne, q->ne, sizeof ne);
    ne[nd - 1] = g.dv;
    mm_tensor *out = tnew_raw(ctx, g.dt, nd, ne);
    out->aux = arena_alloc(ctx, (size_t)(2 * g.batch * g.m) * es);
    out->fp = scale;
    int nt = n_threads();
    char *scr = arena_alloc(ctx, (size_t)(nt * g.bm * g.n) * es);
    char *st = out->aux, *o = out->data, *vd = v->data;
    int64_t tasks = g.batch * g.nblk;
    int old = blas_single();
    _Pragma("omp parallel for schedule(static) num_threads(nt)")
    for (int64_t t = 0; t < tasks; t++) {
        int64_t b = t / g.nblk, r0 = t % g.nblk * g.bm;
        int64_t rows = g.bm < g.m - r0 ? g.bm : g.m - r0;
        char *s = scr + (size_t)(thread_num() * g.bm * g.n) * es;
        attn_scores(&g, b, r0, rows, s);
        attn_probs(g.dt, s, rows, g.n, st + (size_t)(2 * (b * g.m + r0)) * es,
                   0);
        gemm_ab(g.dt, 0, 0, (int)rows, (int)g.dv, (int)g.n, 1.0, s, (int)g.n,
                vd + batch_off(v, b) * (int64_t)es, (int)g.ldv, 0.0,
                o + (size_t)((b * g.m + r0) * g.dv) * es, (int)g.dv);
    }
    blas_restore(old);
    return record(ctx, out, OP_ATTENTION, q, k, v);
}

/* Backward of batch item B, its query blocks in order: P recomputed from
 * the saved row statistics, then dV += P^T dO, dP = dO V^T,
 * dS = P (dP - rowsum(dO O)), dQ += scale dS K, dK += scale dS^T Q. GQ,
 * GK, GV (contiguous, or NULL when not needed); FRESH[i]: that gradient is
 * new and uninitialised, so its first contribution is written (beta 0);
 * S and DP: scratch of bm x n each. */
static void attn_back_item(const attn_geo *g, const mm_tensor *t, int64_t b,
                           void *gq, void *gk, void *gv, const int fresh[3],
                           void *s, void *dp)
{
    size_t es = mm_dtype_size(g->dt);
    int64_t n = g->n, d = g->d, dv = g->dv;
    const char *kp = (const char *)g->k->data + batch_off(g->k, b) * es;
    const char *vp = (const char *)g->v->data + batch_off(g->v, b) * es;
    for (int64_t blk = 0; blk < g->nblk; blk++) {
        int64_t r0 = blk * g->bm, row0 = b * g->m + r0;
        int64_t rows = g->bm < g->m - r0 ? g->bm : g->m - r0;
        const char *qp = (const char *)g->q->data +
                         (batch_off(g->q, b) + r0 * g->ldq) * es;
        const char *go = (const char *)t->grad->data + row0 * dv * es;
        const char *op = (const char *)t->data + row0 * dv * es;
        attn_scores(g, b, r0, rows, s);
        attn_probs(g->dt, s, rows, n, (char *)t->aux + 2 * row0 * es, 1);
        double first = blk == 0 ? 0.0 : 1.0; /* beta of a fresh dK, dV */
        if (gv)
            gemm_ab(g->dt, 1, 0, (int)n, (int)dv, (int)rows, 1.0, s, (int)n,
                    go, (int)dv, fresh[2] ? first : 1.0,
                    (char *)gv + b * n * dv * es, (int)dv);
        if (!gq && !gk) continue;
        gemm_ab(g->dt, 0, 1, (int)rows, (int)n, (int)dv, 1.0, go, (int)dv, vp,
                (int)g->ldv, 0.0, dp, (int)n);
        FOR_REAL(g->dt, {
            const real *p = s, *gor = (const real *)go, *orr = (const real *)op;
            real *ds = dp;
            for (int64_t r = 0; r < rows; r++) {
                real dd = 0;
                for (int64_t c = 0; c < dv; c++)
                    dd += gor[r * dv + c] * orr[r * dv + c];
                const real *pr = p + r * n;
                real *dr = ds + r * n;
                _Pragma("omp simd")
                for (int64_t j = 0; j < n; j++) dr[j] = pr[j] * (dr[j] - dd);
            }
        });
        if (gq)
            gemm_ab(g->dt, 0, 0, (int)rows, (int)d, (int)n, g->scale, dp,
                    (int)n, kp, (int)g->ldk, fresh[0] ? 0.0 : 1.0,
                    (char *)gq + row0 * d * es, (int)d);
        if (gk)
            gemm_ab(g->dt, 1, 0, (int)n, (int)d, (int)rows, g->scale, dp,
                    (int)n, qp, (int)g->ldq, fresh[1] ? first : 1.0,
                    (char *)gk + b * n * d * es, (int)d);
    }
}

/* Batch items split over the threads, each with one-thread BLAS: every
 * gradient element is summed in one thread in block order, so the bits do
 * not depend on the thread count (as long as it is at most the number of
 * items). With fewer items than threads, the items run one by one and
 * BLAS threads each GEMM. */
static void backward_attention(mm_tensor *t)
{
    mm_tensor *q = t->src[0], *k = t->src[1], *v = t->src[2];
    attn_geo g = attn_geometry(q, k, v, t->fp);
    size_t es = mm_dtype_size(g.dt);
    int fresh[3] = {0, 0, 0};
    void *gq = q->requires_grad ? grad_of_fresh(t->ctx, q, &fresh[0])->data : NULL;
    void *gk = k->requires_grad ? grad_of_fresh(t->ctx, k, &fresh[1])->data : NULL;
    void *gv = v->requires_grad ? grad_of_fresh(t->ctx, v, &fresh[2])->data : NULL;
    if (q == k || q == v || k == v) /* one gradient for two inputs: the
                                        contributions interleave, so zero */
        for (int i = 0; i < 3; i++)
            if (fresh[i]) {
                mm_tensor *x = t->src[i];
                memset(x->grad->data, 0, (size_t)mm_tensor_numel(x) * es);
                fresh[i] = 0;
            }
    int nt = n_threads();
    int par = g.batch >= nt; /* one thread: this path too, one-thread BLAS */
    size_t per = (size_t)(g.bm * g.n) * es;
    char *scr = arena_alloc(t->ctx, (par ? nt : 1) * 2 * per);
    if (!par) {
        for (int64_t b = 0; b < g.batch; b++)
            attn_back_item(&g, t, b, gq, gk, gv, fresh, scr, scr + per);
        return;
    }
    int old = blas_single();
    _Pragma("omp parallel for schedule(static) num_threads(nt)")
    for (int64_t b = 0; b < g.batch; b++) {
        char *s = scr + (size_t)thread_num() * 2 * per;
        attn_back_item(&g, t, b, gq, gk, gv, fresh, s, s + per);
    }
    blas_restore(old);
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
    mm_tensor *out = tnew_like(ctx, logits, 0, NULL);
    out->fp = smoothing;
#ifdef MM_HAVE_CUDA
    if (logits->device == MM_CUDA) { /* the same layout on the device */
        size_t nb = (size_t)B * sizeof *lab + (size_t)(B * C + B) * es;
        int64_t *dlab = dev_alloc(ctx, nb);
        out->aux = dlab;
        if (cu_check(ctx, "cross_entropy",
                     mm__cu_h2d(dlab, lab, (size_t)B * sizeof *lab)) ||
            cu_check(ctx, "cross_entropy",
                     mm__cu_cross_entropy(out->data, (float *)(dlab + B),
                                          logits->data, dlab, B, C,
                                          (float)smoothing)))
            return NULL;
        return record(ctx, out, OP_CROSS_ENTROPY, logits, NULL, NULL);
    }
#endif
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
    return record(ctx, out, OP_CROSS_ENTROPY, logits, NULL, NULL);
}

static void backward_cross_entropy(mm_tensor *t)
{
    mm_tensor *a = t->src[0];
    int64_t B = a->ne[0], C = a->ne[1];
    const int64_t *lab = t->aux;
    double eps = t->fp;
#ifdef MM_HAVE_CUDA
    if (t->device == MM_CUDA) {
        cu_check(t->ctx, "backward",
                 mm__cu_cross_entropy_back(grad_of(t->ctx, a)->data,
                                           (const float *)(lab + B), lab,
                                           t->grad->data, B, C, (float)eps));
        return;
    }
#endif
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

// ---- max, cumsum, cumprod over an axis --------------------------------------

/* A (..., LEN, ...) seen as (OUTER, LEN, INNER) around axis AX. */
static void around(const mm_tensor *a, int ax, int64_t *outer, int64_t *len,
                   int64_t *inner)
{
    *outer = numel_of(ax, a->ne);
    *len = a->ne[ax];
    *inner = numel_of(a->ndim - ax - 1, a->ne + ax + 1);
}

mm_tensor *mm_tensor_max(mm_ctx *ctx, mm_tensor *a, int axis, int keepdim)
{
    if (!a) return NULL;
    if (check_inputs(ctx, "max", a, NULL)) return NULL;
    int ax = norm_axis(axis, a->ndim);
    if (ax < 0)
        return fail(ctx, "max: axis %d of a %d-D tensor", axis, a->ndim);
    a = mm_tensor_contiguous(ctx, a);
    if (!a) return NULL;
    int64_t ne[MM_MAX_DIMS], outer, len, inner;
    int nd = 0;
    for (int i = 0; i < a->ndim; i++)
        if (i != ax) ne[nd++] = a->ne[i];
        else if (keepdim) ne[nd++] = 1;
    around(a, ax, &outer, &len, &inner);
    mm_tensor *out = tnew_like(ctx, a, nd, ne);
    out->ip[0] = ax;
#ifdef MM_HAVE_CUDA
    if (a->device == MM_CUDA) {
        out->aux = dev_alloc(ctx, (size_t)(outer * inner) * sizeof(int64_t));
        if (cu_check(ctx, "max", mm__cu_max(out->data, out->aux, a->data,
                                            outer, len, inner)))
            return NULL;
        return record(ctx, out, OP_MAX, a, NULL, NULL);
    }
#endif
    int64_t *arg = arena_alloc(ctx, (size_t)(outer * inner) * sizeof *arg);
    FOR_REAL(a->dtype, {
        const real *x = a->data;
        real *y = out->data;
        OMP_FOR
        for (int64_t o = 0; o < outer; o++)
            for (int64_t i = 0; i < inner; i++) {
                const real *xo = x + o * len * inner + i;
                int64_t best = 0;
                for (int64_t k = 1; k < len; k++) /* first argmax wins */
                    if (xo[k * inner] > xo[best * inner]) best = k;
                y[o * inner + i] = xo[best * inner];
                arg[o * inner + i] = best;
            }
    });
    out->aux = arg;
    return record(ctx, out, OP_MAX, a, NULL, NULL);
}

static mm_tensor *scan(mm_ctx *ctx, int op, const char *name, mm_tensor *a,
                       int axis)
{
    if (!a) return NULL;
    if (check_inputs(ctx, name, a, NULL)) return NULL;
    int ax = norm_axis(axis, a->ndim);
    if (ax < 0)
        return fail(ctx, "%s: axis %d of a %d-D tensor", name, axis,
                    a->ndim);
    a = mm_tensor_contiguous(ctx, a);
    if (!a) return NULL;
    int64_t outer, len, inner;
    around(a, ax, &outer, &len, &inner);
    mm_tensor *out = tnew_like(ctx, a, a->ndim, a->ne);
    int prod = op == OP_CUMPROD;
#ifdef MM_HAVE_CUDA
    if (a->device == MM_CUDA) {
        out->ip[0] = ax;
        if (cu_check(ctx, name, mm__cu_scan(out->data, a->data, outer, len,
                                            inner, prod)))
            return NULL;
        return record(ctx, out, op, a, NULL, NULL);
    }
#endif
    FOR_REAL(a->dtype, {
        const real *x = a->data;
        real *y = out->data;
        OMP_FOR
        for (int64_t o = 0; o < outer; o++)
            for (int64_t i = 0; i < inner; i++) {
                const real *xo = x + o * len * inner + i;
                real *yo = y + o * len * inner + i;
                real acc = prod ? 1 : 0;
                for (int64_t k = 0; k < len; k++) {
                    acc = prod ? acc * xo[k * inner] : acc + xo[k * inner];
                    yo[k * inner] = acc;
                }
            }
    });
    out->ip[0] = ax;
    return record(ctx, out, op, a, NULL, NULL);
}

mm_tensor *mm_tensor_cumsum(mm_ctx *ctx, mm_tensor *a, int axis)
{
    return scan(ctx, OP_CUMSUM, "cumsum", a, axis);
}
mm_tensor *mm_tensor_cumprod(mm_ctx *ctx, mm_tensor *a, int axis)
{
    return scan(ctx, OP_CUMPROD, "cumprod", a, axis);
}

/* max: the gradient goes to the first argmax. cumsum: a reverse cumsum.
 * cumprod, y_k = prod_{j<=k} x_j, without dividing by x (zeros are fine):
 * dx_i = E_i R_i with E_i = prod_{j<i} x_j (exclusive prefix product) and
 * R_i = g_i + x_{i+1} R_{i+1} (a reverse scan, R_{n-1} = g_{n-1}). */
static void backward_scan(mm_tensor *t)
{
    mm_tensor *a = t->src[0];
    int64_t outer, len, inner;
    around(a, (int)t->ip[0], &outer, &len, &inner);
    int op = t->op;
#ifdef MM_HAVE_CUDA
    if (t->device == MM_CUDA) {
        float *gx = grad_of(t->ctx, a)->data, *rs = NULL;
        if (op == OP_MAX) {
            cu_check(t->ctx, "backward",
                     mm__cu_max_back(gx, t->grad->data, t->aux, outer, len,
                                     inner));
            return;
        }
        if (op == OP_CUMPROD)
            rs = dev_alloc(t->ctx,
                           (size_t)mm_tensor_numel(t) * sizeof(float));
        cu_check(t->ctx, "backward",
                 mm__cu_scan_back(gx, rs, a->data, t->grad->data, outer, len,
                                  inner, op == OP_CUMPROD));
        return;
    }
#endif
    FOR_REAL(t->dtype, {
        const real *x = a->data, *g = t->grad->data;
        real *gx = grad_of(t->ctx, a)->data;
        const int64_t *arg = t->aux;
        real *scratch = op == OP_CUMPROD
            ? arena_alloc(t->ctx, (size_t)mm_tensor_numel(t) * sizeof(real))
            : NULL;
        OMP_FOR
        for (int64_t o = 0; o < outer; o++)
            for (int64_t i = 0; i < inner; i++) {
                int64_t base = o * len * inner + i;
                if (op == OP_MAX) {
                    gx[base + arg[o * inner + i] * inner] +=
                        g[o * inner + i];
                } else if (op == OP_CUMSUM) {
                    real acc = 0;
                    for (int64_t k = len - 1; k >= 0; k--) {
                        acc += g[base + k * inner];
                        gx[base + k * inner] += acc;
                    }
                } else {
                    real *rs = scratch + base, r = 0, e = 1;
                    for (int64_t k = len - 1; k >= 0; k--) {
                        r = g[base + k * inner] +
                            (k + 1 < len ? x[base + (k + 1) * inner] * r : 0);
                        rs[k * inner] = r;
                    }
                    for (int64_t k = 0; k < len; k++) {
                        gx[base + k * inner] += e * rs[k * inner];
                        e *= x[base + k * inner];
                    }
                }
            }
    });
}

// ---- concat, index_select, gather, repeat, pad ------------------------------

#ifdef MM_HAVE_CUDA
/* The CUDA forms of concat, index_select, gather, repeat, pad and dropout:
 * the CPU's checks ran first; outputs on the device, indices copied there
 * (one small copy), the same tape records as the CPU paths. */
static mm_tensor *cu_concat(mm_ctx *ctx, mm_tensor **src, int n, int d,
                            int64_t total, int need)
{
    mm_tensor *a = src[0];
    int64_t ne[MM_MAX_DIMS];
    memcpy(ne, a->ne, sizeof ne);
    ne[d] = total;
    mm_tensor *out = tnew_like(ctx, a, a->ndim, ne);
    int64_t outer = numel_of(d, ne), off = 0;
    int64_t inner = numel_of(a->ndim - d - 1, ne + d + 1);
    for (int k = 0; k < n; k++) {
        int64_t blk = src[k]->ne[d] * inner;
        if (cu_check(ctx, "concat",
                     mm__cu_blocks((float *)out->data + off, total * inner,
                                   src[k]->data, blk, outer, blk, 0)))
            return NULL;
        off += blk;
    }
    out->aux = src;
    out->ip[0] = d;
    out->ip[1] = n;
    record(ctx, out, OP_CONCAT, NULL, NULL, NULL);
    if (need && !ctx->no_grad) {
        out->requires_grad = 1;
        out->tape_prev = ctx->tape;
        ctx->tape = out;
    }
    return out;
}

/* IX (N values, host) copied to the device (arena). */
static int64_t *cu_index(mm_ctx *ctx, const char *op, const int64_t *ix,
                         int64_t n)
{
    int64_t *d = dev_alloc(ctx, (size_t)n * sizeof *d);
    if (cu_check(ctx, op, mm__cu_h2d(d, ix, (size_t)n * sizeof *d)))
        return NULL;
    return d;
}
#endif

mm_tensor *mm_tensor_concat(mm_ctx *ctx, int n, mm_tensor *const *ts, int dim)
{
    if (n < 1) return fail(ctx, "concat: no inputs");
    for (int k = 0; k < n; k++)
        if (!ts[k]) return NULL;
    mm_tensor *a = ts[0];
    int d = norm_axis(dim, a->ndim);
    if (d < 0)
        return fail(ctx, "concat: dimension %d of a %d-D tensor", dim,
                    a->ndim);
    mm_tensor **src = arena_alloc(ctx, (size_t)n * sizeof *src);
    int64_t ne[MM_MAX_DIMS], total = 0;
    int need = 0;
    for (int k = 0; k < n; k++) {
        mm_tensor *b = ts[k];
        if (check_inputs(ctx, "concat", a, b)) return NULL;
        if (b->ndim != a->ndim)
            return fail(ctx, "concat: input %d is %d-D, expected %d-D", k,
                        b->ndim, a->ndim);
        for (int i = 0; i < a->ndim; i++)
            if (i != d && b->ne[i] != a->ne[i])
                return fail(ctx, "concat: input %d has size %lld in "
                                 "dimension %d, expected %lld", k,
                            (long long)b->ne[i], i, (long long)a->ne[i]);
        total += b->ne[d];
    }
    for (int k = 0; k < n; k++) {
        src[k] = mm_tensor_contiguous(ctx, ts[k]);
        need |= src[k]->requires_grad;
    }
#ifdef MM_HAVE_CUDA
    if (a->device == MM_CUDA) return cu_concat(ctx, src, n, d, total, need);
#endif
    memcpy(ne, a->ne, sizeof ne);
    ne[d] = total;
    mm_tensor *out = tnew_raw(ctx, a->dtype, a->ndim, ne);
    int64_t outer = numel_of(d, ne), inner = numel_of(a->ndim - d - 1,
                                                      ne + d + 1);
    size_t es = mm_dtype_size(a->dtype);
    OMP_FOR
    for (int64_t o = 0; o < outer; o++) {
        char *dst = (char *)out->data + (size_t)(o * total * inner) * es;
        for (int k = 0; k < n; k++) {
            size_t blk = (size_t)(src[k]->ne[d] * inner) * es;
            memcpy(dst, (char *)src[k]->data + o * blk, blk);
            dst += blk;
        }
    }
    out->aux = src;
    out->ip[0] = d;
    out->ip[1] = n;
    record(ctx, out, OP_CONCAT, NULL, NULL, NULL);
    if (need && !ctx->no_grad) { /* record() saw no sources: n may be > 3 */
        out->requires_grad = 1;
        out->tape_prev = ctx->tape;
        ctx->tape = out;
    }
    return out;
}

static void backward_concat(mm_tensor *t)
{
    mm_tensor **src = t->aux;
    int d = (int)t->ip[0], n = (int)t->ip[1];
    int64_t total = t->ne[d], outer = numel_of(d, t->ne);
    int64_t inner = numel_of(t->ndim - d - 1, t->ne + d + 1), off = 0;
    for (int k = 0; k < n; k++) {
        int64_t blk = src[k]->ne[d] * inner;
#ifdef MM_HAVE_CUDA
        if (t->device == MM_CUDA) {
            if (src[k]->requires_grad &&
                cu_check(t->ctx, "backward",
                         mm__cu_blocks(grad_of(t->ctx, src[k])->data, blk,
                                       (const float *)t->grad->data + off,
                                       total * inner, outer, blk, 1)))
                return;
            off += blk;
            continue;
        }
#endif
        if (src[k]->requires_grad)
            FOR_REAL(t->dtype, {
                const real *g = t->grad->data;
                real *gx = grad_of(t->ctx, src[k])->data;
                OMP_FOR
                for (int64_t o = 0; o < outer; o++)
                    for (int64_t i = 0; i < blk; i++)
                        gx[o * blk + i] += g[o * total * inner + off + i];
            });
        off += blk;
    }
}

/* The N values of an i32/i64 tensor as int64, each checked to be in
 * [0, LIM). @return them (arena), or NULL with the error on ctx. */
static int64_t *read_index(mm_ctx *ctx, const char *op, const mm_tensor *ix,
                           int64_t lim)
{
    if (ix->dtype != MM_I32 && ix->dtype != MM_I64) {
        fail(ctx, "%s: index must be i32 or i64, got %s", op,
             mm_dtype_name(ix->dtype));
        return NULL;
    }
    int64_t n = mm_tensor_numel(ix);
    int64_t *v = arena_alloc(ctx, (size_t)n * sizeof *v);
    for (int64_t i = 0; i < n; i++) {
        v[i] = (int64_t)load(ix->dtype, ix->data, offset_of(ix, i));
        if (v[i] < 0 || v[i] >= lim) {
            fail(ctx, "%s: index %lld at %lld outside [0, %lld)", op,
                 (long long)v[i], (long long)i, (long long)lim);
            return NULL;
        }
    }
    return v;
}

mm_tensor *mm_tensor_index_select(mm_ctx *ctx, mm_tensor *a, int dim,
                                  mm_tensor *index)
{
    if (!a || !index) return NULL;
    if (check_inputs(ctx, "index_select", a, NULL)) return NULL;
    int d = norm_axis(dim, a->ndim);
    if (d < 0)
        return fail(ctx, "index_select: dimension %d of a %d-D tensor", dim,
                    a->ndim);
    if (index->ndim != 1)
        return fail(ctx, "index_select: index must be 1-D, got %d-D",
                    index->ndim);
    int64_t *ix = read_index(ctx, "index_select", index, a->ne[d]);
    if (!ix) return NULL;
    a = mm_tensor_contiguous(ctx, a);
    if (!a) return NULL;
    int64_t ne[MM_MAX_DIMS], outer, len, inner, m = index->ne[0];
    memcpy(ne, a->ne, sizeof ne);
    ne[d] = m;
    around(a, d, &outer, &len, &inner);
#ifdef MM_HAVE_CUDA
    if (a->device == MM_CUDA) {
        /* IX, then for the backward the rows that picked each source row
         * (a counting sort: START (LEN + 1), PERM (M), j ascending) */
        int64_t *h = arena_alloc(ctx, (size_t)(2 * m + len + 1) * sizeof *h);
        int64_t *start = h + m, *perm = start + len + 1;
        memcpy(h, ix, (size_t)m * sizeof *h);
        memset(start, 0, (size_t)(len + 1) * sizeof *start);
        for (int64_t j = 0; j < m; j++) start[ix[j] + 1]++;
        for (int64_t l = 0; l < len; l++) start[l + 1] += start[l];
        int64_t *next = arena_alloc(ctx, (size_t)len * sizeof *next);
        memcpy(next, start, (size_t)len * sizeof *next);
        for (int64_t j = 0; j < m; j++) perm[next[ix[j]]++] = j;
        mm_tensor *o = tnew_like(ctx, a, a->ndim, ne);
        int64_t *dix = cu_index(ctx, "index_select", h, 2 * m + len + 1);
        if (!dix || cu_check(ctx, "index_select",
                             mm__cu_index_select(o->data, a->data, dix,
                                                 outer, len, m, inner)))
            return NULL;
        o->aux = dix;
        o->ip[0] = d;
        return record(ctx, o, OP_INDEX_SELECT, a, NULL, NULL);
    }
#endif
    mm_tensor *out = tnew(ctx, a->dtype, a->ndim, ne);
    size_t es = mm_dtype_size(a->dtype), row = (size_t)inner * es;
    OMP_FOR
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < m; j++)
            memcpy((char *)out->data + (size_t)(o * m + j) * row,
                   (char *)a->data + (size_t)(o * len + ix[j]) * row, row);
    out->aux = ix;
    out->ip[0] = d;
    return record(ctx, out, OP_INDEX_SELECT, a, NULL, NULL);
}

mm_tensor *mm_tensor_gather(mm_ctx *ctx, mm_tensor *a, int dim,
                            mm_tensor *index)
{
    if (!a || !index) return NULL;
    if (check_inputs(ctx, "gather", a, NULL)) return NULL;
    int d = norm_axis(dim, a->ndim);
    if (d < 0)
        return fail(ctx, "gather: dimension %d of a %d-D tensor", dim,
                    a->ndim);
    if (index->ndim != a->ndim)
        return fail(ctx, "gather: index is %d-D, expected %d-D", index->ndim,
                    a->ndim);
    for (int i = 0; i < a->ndim; i++)
        if (i != d && index->ne[i] > a->ne[i])
            return fail(ctx, "gather: index size %lld in dimension %d above "
                             "the input's %lld", (long long)index->ne[i], i,
                        (long long)a->ne[i]);
    int64_t *ix = read_index(ctx, "gather", index, a->ne[d]);
    if (!ix) return NULL;
    a = mm_tensor_contiguous(ctx, a);
    if (!a) return NULL;
#ifdef MM_HAVE_CUDA
    if (a->device == MM_CUDA) {
        mm_tensor *o = tnew_like(ctx, a, index->ndim, index->ne);
        int64_t one[4], ob[4], an[4], ab[4];
        pad4(o, one, ob);
        pad4(a, an, ab);
        int64_t *dix = cu_index(ctx, "gather", ix, mm_tensor_numel(o));
        if (!dix || cu_check(ctx, "gather",
                             mm__cu_gather(o->data, a->data, dix, i4(one),
                                           i4(ab), d + 4 - a->ndim)))
            return NULL;
        o->aux = dix;
        o->ip[0] = d;
        return record(ctx, o, OP_GATHER, a, NULL, NULL);
    }
#endif
    mm_tensor *out = tnew(ctx, a->dtype, index->ndim, index->ne);
    int64_t n = mm_tensor_numel(out);
    FOR_REAL(a->dtype, {
        const real *x = a->data;
        real *y = out->data;
        OMP_FOR
        for (int64_t i = 0; i < n; i++) {
            /* the source: I's coordinates, with IX[i] along D */
            int64_t r = i, off = 0;
            for (int k = out->ndim - 1; k >= 0; k--) {
                int64_t c = r % out->ne[k];
                r /= out->ne[k];
                off += (k == d ? ix[i] : c) * a->nb[k];
            }
            y[i] = x[off];
        }
    });
    out->aux = ix;
    out->ip[0] = d;
    return record(ctx, out, OP_GATHER, a, NULL, NULL);
}

mm_tensor *mm_tensor_repeat(mm_ctx *ctx, mm_tensor *a, int nrep,
                            const int64_t *reps)
{
    if (!a) return NULL;
    if (check_inputs(ctx, "repeat", a, NULL)) return NULL;
    if (nrep < a->ndim || nrep > MM_MAX_DIMS)
        return fail(ctx, "repeat: %d repeat counts for a %d-D tensor "
                         "(expected %d to %d)", nrep, a->ndim, a->ndim,
                    MM_MAX_DIMS);
    int64_t ne[MM_MAX_DIMS];
    for (int i = 0; i < nrep; i++) {
        if (reps[i] < 1)
            return fail(ctx, "repeat: count %lld in dimension %d, expected "
                             ">= 1", (long long)reps[i], i);
        int j = i - (nrep - a->ndim);
        ne[i] = (j >= 0 ? a->ne[j] : 1) * reps[i];
    }
    a = mm_tensor_contiguous(ctx, a);
    if (!a) return NULL;
#ifdef MM_HAVE_CUDA
    if (a->device == MM_CUDA) {
        mm_tensor *o = tnew_like(ctx, a, nrep, ne);
        int64_t an[4], ab[4], on[4], ob[4];
        pad4(a, an, ab);
        pad4(o, on, ob);
        if (cu_check(ctx, "repeat", mm__cu_repeat(o->data, a->data, i4(on),
                                                  i4(an), i4(ab))))
            return NULL;
        return record(ctx, o, OP_REPEAT, a, NULL, NULL);
    }
#endif
    mm_tensor *out = tnew(ctx, a->dtype, nrep, ne);
    int64_t an[4], ab[4], on[4], ob[4];
    pad4(a, an, ab);
    pad4(out, on, ob);
    int64_t n = mm_tensor_numel(out);
    FOR_REAL(a->dtype, {
        const real *x = a->data;
        real *y = out->data;
        OMP_FOR
        for (int64_t i = 0; i < n; i++) {
            int64_t r = i, off = 0;
            for (int k = 3; k >= 0; k--) {
                off += (r % on[k]) % an[k] * ab[k];
                r /= on[k];
            }
            y[i] = x[off];
        }
    });
    return record(ctx, out, OP_REPEAT, a, NULL, NULL);
}

mm_tensor *mm_tensor_pad(mm_ctx *ctx, mm_tensor *a, int dim, int64_t front,
                         int64_t back)
{
    if (!a) return NULL;
    if (check_inputs(ctx, "pad", a, NULL)) return NULL;
    int d = norm_axis(dim, a->ndim);
    if (d < 0)
        return fail(ctx, "pad: dimension %d of a %d-D tensor", dim, a->ndim);
    if (front < 0 || back < 0)
        return fail(ctx, "pad: negative padding %lld, %lld",
                    (long long)front, (long long)back);
    a = mm_tensor_contiguous(ctx, a);
    if (!a) return NULL;
    int64_t ne[MM_MAX_DIMS], outer, len, inner;
    memcpy(ne, a->ne, sizeof ne);
    ne[d] += front + back;
    around(a, d, &outer, &len, &inner);
#ifdef MM_HAVE_CUDA
    if (a->device == MM_CUDA) { /* the output is zeroed: copy the middle */
        mm_tensor *o = tnew_like(ctx, a, a->ndim, ne);
        if (cu_check(ctx, "pad",
                     mm__cu_blocks((float *)o->data + front * inner,
                                   ne[d] * inner, a->data, len * inner,
                                   outer, len * inner, 0)))
            return NULL;
        o->ip[0] = d;
        o->ip[1] = front;
        return record(ctx, o, OP_PAD, a, NULL, NULL);
    }
#endif
    mm_tensor *out = tnew(ctx, a->dtype, a->ndim, ne);
    size_t es = mm_dtype_size(a->dtype), blk = (size_t)(len * inner) * es;
    OMP_FOR
    for (int64_t o = 0; o < outer; o++)
        memcpy((char *)out->data +
                   (size_t)((o * ne[d] + front) * inner) * es,
               (char *)a->data + o * blk, blk);
    out->ip[0] = d;
    out->ip[1] = front;
    return record(ctx, out, OP_PAD, a, NULL, NULL);
}

// ---- dropout ----------------------------------------------------------------

/* The top 53 bits of output I (from 0) of splitmix64 started at SEED
 * (rng.c's mm_splitmix64, inline here for the dropout loops). */
static inline uint64_t rand_bits53(uint64_t seed, uint64_t i)
{
    uint64_t z = seed + (i + 1) * UINT64_C(0x9E3779B97F4A7C15);
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return (z ^ (z >> 31)) >> 11;
}

double mm_rand_u01(uint64_t seed, uint64_t i)
{
    return (double)rand_bits53(seed, i) * 0x1p-53;
}

#ifdef MM_HAVE_CUDA
/* The kernel draws the keep mask; the two (m, b) pairs, for a kept and a
 * dropped element, are the CPU loop's expressions evaluated here. */
static mm_tensor *cu_dropout(mm_ctx *ctx, const char *name, mm_tensor *x,
                             double p, uint64_t seed, int alpha)
{
    x = mm_tensor_contiguous(ctx, x);
    if (!x) return NULL;
    mm_tensor *out = tnew_like(ctx, x, x->ndim, x->ne);
    int64_t n = mm_tensor_numel(x);
    out->aux = dev_alloc(ctx, (size_t)n * sizeof(float));
    const double A = 1.7580993408473766;
    double a = alpha ? 1 / sqrt((A * A * p + 1) * (1 - p)) : 1 / (1 - p);
    float mb[2][2];
    for (int keep = 0; keep < 2; keep++) {
        double mi = p < 1 && keep ? a : 0, bi = 0;
        if (alpha && p < 1) bi = (keep - 1) * A * a + A * a * p;
        mb[keep][0] = (float)mi;
        mb[keep][1] = (float)bi;
    }
    if (cu_check(ctx, name, mm__cu_dropout(out->data, out->aux, x->data, n, p,
                                           seed, mb[1][0], mb[1][1],
                                           mb[0][0], mb[0][1])))
        return NULL;
    return record(ctx, out, OP_DROPOUT, x, NULL, NULL);
}
#endif

/* y = x m + b per element, m and b from the keep mask (torch's formulas):
 * dropout m = keep / (1 - p), b = 0; alpha dropout with A = 1.7580993408473766
 * (SELU's scale times alpha), a = 1 / sqrt((A^2 p + 1)(1 - p)):
 * m = keep a, b = (keep - 1) A a + A a p. */
static mm_tensor *dropout(mm_ctx *ctx, const char *name, mm_tensor *x,
                          double p, uint64_t seed, int train, int alpha)
{
    if (!x) return NULL;
    if (check_inputs(ctx, name, x, NULL)) return NULL;
    if (!(p >= 0 && p <= 1))
        return fail(ctx, "%s: p %g outside [0, 1]", name, p);
    if (p == 0 || !train) return x;
#ifdef MM_HAVE_CUDA
    if (x->device == MM_CUDA) return cu_dropout(ctx, name, x, p, seed, alpha);
#endif
    x = mm_tensor_contiguous(ctx, x);
    if (!x) return NULL;
    mm_tensor *out = tnew_raw(ctx, x->dtype, x->ndim, x->ne);
    int64_t n = mm_tensor_numel(x);
    out->aux = arena_alloc(ctx, (size_t)n * mm_dtype_size(x->dtype));
    const double A = 1.7580993408473766;
    double a = alpha ? 1 / sqrt((A * A * p + 1) * (1 - p)) : 1 / (1 - p);
    FOR_REAL(x->dtype, {
        const real *xi = x->data;
        real *y = out->data, *m = out->aux;
        /* u * 2^-53 >= p (both exact) is u >= ceil(p 2^53) */
        uint64_t thr = (uint64_t)ceil(p * 0x1p53);
        OMP_FOR
        for (int64_t i = 0; i < n; i++) {
            int keep = p < 1 && rand_bits53(seed, (uint64_t)i) >= thr;
            double mi = p < 1 && keep ? a : 0, bi = 0;
            if (alpha && p < 1) bi = (keep - 1) * A * a + A * a * p;
            m[i] = (real)mi;
            y[i] = xi[i] * (real)mi + (real)bi;
        }
    });
    return record(ctx, out, OP_DROPOUT, x, NULL, NULL);
}

mm_tensor *mm_tensor_dropout(mm_ctx *ctx, mm_tensor *x, double p,
                             uint64_t seed, int train)
{
    return dropout(ctx, "dropout", x, p, seed, train, 0);
}

mm_tensor *mm_tensor_alpha_dropout(mm_ctx *ctx, mm_tensor *x, double p,
                                   uint64_t seed, int train)
{
    return dropout(ctx, "alpha_dropout", x, p, seed, train, 1);
}

#ifdef MM_HAVE_CUDA
/* The CUDA kernels sum in the CPU loops' order (cuda/ops.cu). */
static void cu_backward_index(mm_tensor *t)
{
    mm_tensor *a = t->src[0];
    int d = (int)t->ip[0], rc;
    float *gx = grad_of(t->ctx, a)->data;
    const float *g = t->grad->data;
    int64_t outer, len, inner, an[4], ab[4], on[4], ob[4];
    pad4(a, an, ab);
    pad4(t, on, ob);
    switch (t->op) {
    case OP_INDEX_SELECT: { /* t->aux: IX (M), START (LEN + 1), PERM (M) */
        int64_t m = t->ne[d];
        const int64_t *start = (const int64_t *)t->aux + m;
        around(a, d, &outer, &len, &inner);
        rc = mm__cu_index_select_back(gx, g, start, start + len + 1, outer,
                                      len, m, inner);
        break;
    }
    case OP_PAD:
        around(a, d, &outer, &len, &inner);
        rc = mm__cu_blocks(gx, len * inner, g + t->ip[1] * inner,
                           t->ne[d] * inner, outer, len * inner, 1);
        break;
    case OP_GATHER:
        rc = mm__cu_gather_back(gx, g, t->aux, i4(on), i4(ab),
                                d + 4 - a->ndim);
        break;
    case OP_REPEAT:
        rc = mm__cu_repeat_back(gx, g, i4(on), i4(ob), i4(an));
        break;
    default: /* dropout */
        rc = mm__cu_mul_acc(gx, g, t->aux, mm_tensor_numel(t));
        break;
    }
    cu_check(t->ctx, "backward", rc);
}
#endif

/* index_select, gather, repeat, pad, dropout: each gradient element sums
 * its sources in a fixed order in one thread (scatter-adds run over the
 * independent outer blocks or fibers). */
static void backward_index(mm_tensor *t)
{
    mm_tensor *a = t->src[0];
    int d = (int)t->ip[0];
    const int64_t *ix = t->aux;
    int op = t->op;
#ifdef MM_HAVE_CUDA
    if (t->device == MM_CUDA) {
        cu_backward_index(t);
        return;
    }
#endif
    FOR_REAL(t->dtype, {
        const real *g = t->grad->data;
        real *gx = grad_of(t->ctx, a)->data;
        if (op == OP_INDEX_SELECT || op == OP_PAD) {
            int64_t outer, len, inner, m = t->ne[d], front = t->ip[1];
            around(a, d, &outer, &len, &inner);
            OMP_FOR
            for (int64_t o = 0; o < outer; o++) {
                if (op == OP_PAD) {
                    const real *go = g + (o * m + front) * inner;
                    real *gxo = gx + o * len * inner;
                    for (int64_t i = 0; i < len * inner; i++) gxo[i] += go[i];
                    continue;
                }
                for (int64_t j = 0; j < m; j++) {
                    real *gxo = gx + (o * len + ix[j]) * inner;
                    const real *go = g + (o * m + j) * inner;
                    for (int64_t i = 0; i < inner; i++) gxo[i] += go[i];
                }
            }
        } else if (op == OP_GATHER) {
            int64_t m = t->ne[d];
            int64_t inner = numel_of(t->ndim - d - 1, t->ne + d + 1);
            int64_t fibers = mm_tensor_numel(t) / m;
            OMP_FOR
            for (int64_t f = 0; f < fibers; f++) {
                int64_t o = f / inner, i = f % inner;
                int64_t r = o * m * inner + i, off = 0; /* coordinate d = 0 */
                for (int k = t->ndim - 1; k >= 0; k--) {
                    off += r % t->ne[k] * a->nb[k];
                    r /= t->ne[k];
                }
                for (int64_t j = 0; j < m; j++) {
                    int64_t q = (o * m + j) * inner + i;
                    gx[off + ix[q] * a->nb[d]] += g[q];
                }
            }
        } else if (op == OP_REPEAT) {
            int64_t an[4], ab[4], on[4], ob[4], rp[4];
            pad4(a, an, ab);
            pad4(t, on, ob);
            for (int k = 0; k < 4; k++) rp[k] = on[k] / an[k];
            int64_t n = mm_tensor_numel(a);
            OMP_FOR
            for (int64_t e = 0; e < n; e++) {
                int64_t c[4], r = e;
                for (int k = 3; k >= 0; k--) {
                    c[k] = r % an[k];
                    r /= an[k];
                }
                real s = 0;
                for (int64_t r0 = 0; r0 < rp[0]; r0++)
                    for (int64_t r1 = 0; r1 < rp[1]; r1++)
                        for (int64_t r2 = 0; r2 < rp[2]; r2++)
                            for (int64_t r3 = 0; r3 < rp[3]; r3++)
                                s += g[(c[0] + r0 * an[0]) * ob[0] +
                                       (c[1] + r1 * an[1]) * ob[1] +
                                       (c[2] + r2 * an[2]) * ob[2] +
                                       (c[3] + r3 * an[3]) * ob[3]];
                gx[e] += s;
            }
        } else { /* dropout */
            const real *m = t->aux;
            int64_t n = mm_tensor_numel(t);
            OMP_FOR
            for (int64_t i = 0; i < n; i++) gx[i] += g[i] * m[i];
        }
    });
}

// ---- depthwise convolutions -------------------------------------------------

#if defined(__x86_64__) && defined(__GNUC__)
/* AVX-512 kernels of the f32 depthwise convolutions. Each output vector
 * stays in registers across all its taps, and every output element still
 * sums (bias,) then the taps in the generic loops' order, each a multiply
 * then an add: forward and input gradient give the generic path's bits.
 * A tap outside the input must change nothing, and adding w * 0 instead
 * is not always that (w * 0 is NaN for an infinite w; -0 + 0 is +0):
 * conv1d masks those lanes out of the add, conv2d adds zeros only where
 * that is exact (dw2_exact). The weight and bias gradients sum in 16-lane
 * partial sums instead, folded at the end (t-dwconv holds them to f64). */
#define DW_AVX512_ON 1
static int dw_simd = 1;

void mm__dwconv_simd(int on) { dw_simd = on != 0; }

static int dw_avx512(void) { return dw_simd && have_avx512(); }

/* lanes [lo, hi) of a 16-lane mask */
static inline __mmask16 lanes(int64_t lo, int64_t hi)
{
    if (lo < 0) lo = 0;
    if (hi > 16) hi = 16;
    if (hi <= lo) return 0;
    return (__mmask16)(((1u << hi) - 1) & ~((1u << lo) - 1));
}

/* conv1d_dw as a convolution of each (b, c) slab flattened to N = L D
 * floats with taps D apart: output f takes input f + SGN (t - P) D for
 * tap t, inside [0, N) exactly when the row is. SGN = 1 is the forward,
 * -1 the input gradient. Y[f .. f + 128) of one slab: starts from Y (or
 * 0 when !ACCUM) and adds the taps in order. Only the blocks within P
 * rows of a slab's ends need the masked adds (the input gradient starts
 * from the gradient so far, which may be -0). */
enum { DW1_NB = 8 };
MM_AVX512 static void dw1_block(float *y, const float *x, const float *w,
                                int64_t n, int64_t d, int64_t k, int64_t p,
                                int sgn, int accum, int64_t f0)
{
    __m512 acc[DW1_NB];
    if (f0 >= p * d && f0 + 16 * DW1_NB + p * d <= n) { /* no tap masked */
        _Pragma("GCC unroll 8")
        for (int j = 0; j < DW1_NB; j++)
            acc[j] = accum ? _mm512_loadu_ps(y + f0 + 16 * j)
                           : _mm512_setzero_ps();
        for (int64_t t = 0; t < k; t++) {
            __m512 wv = _mm512_set1_ps(w[t]);
            const float *xs = x + f0 + sgn * (t - p) * d;
            _Pragma("GCC unroll 8")
            for (int j = 0; j < DW1_NB; j++)
                acc[j] = _mm512_add_ps(
                    acc[j], _mm512_mul_ps(wv, _mm512_loadu_ps(xs + 16 * j)));
        }
        _Pragma("GCC unroll 8")
        for (int j = 0; j < DW1_NB; j++) _mm512_storeu_ps(y + f0 + 16 * j, acc[j]);
        return;
    }
    __mmask16 mo[DW1_NB];
    for (int j = 0; j < DW1_NB; j++) {
        mo[j] = lanes(0, n - f0 - 16 * j);
        acc[j] = accum ? _mm512_maskz_loadu_ps(mo[j], y + f0 + 16 * j)
                       : _mm512_setzero_ps();
    }
    for (int64_t t = 0; t < k; t++) {
        __m512 wv = _mm512_set1_ps(w[t]);
        for (int j = 0; j < DW1_NB; j++) {
            int64_t at = f0 + 16 * j + sgn * (t - p) * d;
            __mmask16 m = mo[j] & lanes(-at, n - at);
            __m512 xv = _mm512_maskz_loadu_ps(m, x + at);
            acc[j] = _mm512_mask_add_ps(acc[j], m, acc[j],
                                        _mm512_mul_ps(wv, xv));
        }
    }
    for (int j = 0; j < DW1_NB; j++)
        _mm512_mask_storeu_ps(y + f0 + 16 * j, mo[j], acc[j]);
}

/* Y = conv1d_dw(X, W) (SGN 1, !ACCUM) or Y += its input gradient from
 * X = the output gradient (SGN -1, ACCUM): one item per 128 floats of a
 * slab, so each output element is one thread's. */
static void dw1_f32(float *y, const float *x, const float *w, int64_t bcn,
                    int64_t c, int64_t l, int64_t d, int64_t k, int sgn,
                    int accum)
{
    int64_t n = l * d, nblk = (n + 16 * DW1_NB - 1) / (16 * DW1_NB);
    OMP_FOR
    for (int64_t it = 0; it < bcn * nblk; it++) {
        int64_t bc = it / nblk, f0 = it % nblk * 16 * DW1_NB;
        dw1_block(y + bc * n, x + bc * n, w + bc % c * k, n, d, k, k / 2, sgn,
                  accum, f0);
    }
}

/* The weight gradient's partial sums over floats [FA, FB) of one slab:
 * PART[t] (16 lanes) += G[f] X[f + (t - P) D], 64 floats at a time. */
MM_AVX512 static void dw1_wgrad_seg(float *part, const float *g,
                                    const float *x, int64_t n, int64_t d,
                                    int64_t k, int64_t fa, int64_t fb)
{
    int64_t p = k / 2;
    for (int64_t t = 0; t < k; t++)
        _mm512_storeu_ps(part + 16 * t, _mm512_setzero_ps());
    for (int64_t f0 = fa; f0 < fb; f0 += 64) {
        __m512 gv[4];
        if (f0 >= p * d && f0 + 64 + p * d <= n && f0 + 64 <= fb) {
            _Pragma("GCC unroll 4")
            for (int j = 0; j < 4; j++) gv[j] = _mm512_loadu_ps(g + f0 + 16 * j);
            for (int64_t t = 0; t < k; t++) {
                const float *xs = x + f0 + (t - p) * d;
                __m512 s = _mm512_add_ps(
                    _mm512_add_ps(_mm512_mul_ps(gv[0], _mm512_loadu_ps(xs)),
                                  _mm512_mul_ps(gv[1], _mm512_loadu_ps(xs + 16))),
                    _mm512_add_ps(_mm512_mul_ps(gv[2], _mm512_loadu_ps(xs + 32)),
                                  _mm512_mul_ps(gv[3], _mm512_loadu_ps(xs + 48))));
                _mm512_storeu_ps(part + 16 * t,
                                 _mm512_add_ps(_mm512_loadu_ps(part + 16 * t), s));
            }
            continue;
        }
        __mmask16 mo[4];
        for (int j = 0; j < 4; j++) {
            mo[j] = lanes(0, fb - f0 - 16 * j);
            gv[j] = _mm512_maskz_loadu_ps(mo[j], g + f0 + 16 * j);
        }
        for (int64_t t = 0; t < k; t++) {
            __m512 s = _mm512_setzero_ps();
            for (int j = 0; j < 4; j++) {
                int64_t at = f0 + 16 * j + (t - p) * d;
                __mmask16 m = mo[j] & lanes(-at, n - at);
                s = _mm512_add_ps(s, _mm512_maskz_mul_ps(
                                         m, gv[j], _mm512_maskz_loadu_ps(m, x + at)));
            }
            _mm512_storeu_ps(part + 16 * t,
                             _mm512_add_ps(_mm512_loadu_ps(part + 16 * t), s));
        }
    }
}

/* GW (C, K) += the weight gradient: each slab cut into segments of a fixed
 * length (not the thread count's), each segment's partial sums in PART,
 * added per channel over (b, segment) in order. */
enum { DW1_SEG = 32768 };
MM_AVX512 static void dw1_wgrad_f32(float *gw, const float *g, const float *x,
                                    int64_t b, int64_t c, int64_t l, int64_t d,
                                    int64_t k)
{
    int64_t n = l * d, nseg = (n + DW1_SEG - 1) / DW1_SEG;
    int64_t items = c * b * nseg;
    float *part = mm_malloc((size_t)(items * k * 16) * sizeof *part);
    OMP_FOR
    for (int64_t it = 0; it < items; it++) {
        int64_t ch = it / (b * nseg), bi = it / nseg % b, s = it % nseg;
        const float *gs = g + (bi * c + ch) * n, *xs = x + (bi * c + ch) * n;
        int64_t fa = s * DW1_SEG, fb = fa + DW1_SEG < n ? fa + DW1_SEG : n;
        dw1_wgrad_seg(part + it * k * 16, gs, xs, n, d, k, fa, fb);
    }
    for (int64_t ch = 0; ch < c; ch++)
        for (int64_t t = 0; t < k; t++) {
            __m512 s = _mm512_setzero_ps();
            for (int64_t q = 0; q < b * nseg; q++)
                s = _mm512_add_ps(
                    s, _mm512_loadu_ps(part + ((ch * b * nseg + q) * k + t) * 16));
            gw[ch * k + t] += hsum16(s);
        }
    free(part);
}

/* conv2d_dw works on column strips of NC (1..5) 16-float chunks of DW2_R
 * output rows at a time, all kept in registers; each input row loaded
 * serves the (up to DW2_R) output rows it is a tap of. MK[(o + P) NCT + J]
 * masks chunk J for column offset o: the lanes inside the row both at the
 * output and at the input column. SGN = 1: forward, output row r takes
 * input row r + u - P and column c + v - P; SGN = -1: input gradient,
 * row r - u + P and column c + P - v. Either way the taps of an output go
 * in (u, v) order, which for SGN -1 means input rows from the bottom up.
 * Input lanes outside the row load as zeros and are added: w 0 = +-0
 * leaves the sum's bits as they are when w is finite and the sum is not
 * -0, which it never is from a start of +0 or of a bias other than -0 (in
 * the default rounding an add gives -0 only from two -0). dw2_exact
 * checks the weights and biases. Masking the adds instead would cost a
 * mask move (a uop on one of the two ports the multiplies and adds use)
 * per add; with FULL_MID, the chunks between a strip's first and last are
 * inside the row at every offset and load without a mask either. */
enum { DW2_R = 4, DW2_NC = 5 };
#define DW_INLINE MM_AVX512 static inline __attribute__((always_inline))
DW_INLINE void dw2_strip(int nc, int full_mid, float *ys, const float *xs,
                         const float *wc, const __mmask16 *mk, int64_t nct,
                         int64_t h, int64_t wd, int64_t k, int sgn, int64_t r0,
                         int64_t nr, int64_t j0, float b0, int accum)
{
    int64_t p = k / 2;
    __m512 acc[DW2_R][DW2_NC];
    _Pragma("GCC unroll 4")
    for (int i = 0; i < DW2_R; i++)
        _Pragma("GCC unroll 5")
        for (int j = 0; j < nc; j++) acc[i][j] = _mm512_set1_ps(b0);
    int64_t lo = r0 - p > 0 ? r0 - p : 0;
    int64_t hi = r0 + nr - 1 + p < h - 1 ? r0 + nr - 1 + p : h - 1;
    for (int64_t q = 0; q <= hi - lo; q++) {
        int64_t rr = sgn > 0 ? lo + q : hi - q;
        const float *xr = xs + rr * wd + 16 * j0;
        for (int64_t v = 0; v < k; v++) {
            int64_t o = sgn * (v - p);
            const __mmask16 *m = mk + (o + p) * nct + j0;
            __m512 xv[DW2_NC];
            _Pragma("GCC unroll 5")
            for (int j = 0; j < nc; j++)
                xv[j] = full_mid && j > 0 && j < nc - 1
                            ? _mm512_loadu_ps(xr + 16 * j + o)
                            : _mm512_maskz_loadu_ps(m[j], xr + 16 * j + o);
            _Pragma("GCC unroll 4")
            for (int i = 0; i < DW2_R; i++) {
                int64_t u = sgn * (rr - r0 - i) + p;
                if (i >= nr || u < 0 || u >= k) continue;
                __m512 wv = _mm512_set1_ps(wc[u * k + v]);
                _Pragma("GCC unroll 5")
                for (int j = 0; j < nc; j++)
                    acc[i][j] = _mm512_add_ps(acc[i][j], _mm512_mul_ps(wv, xv[j]));
            }
        }
    }
    _Pragma("GCC unroll 4")
    for (int i = 0; i < DW2_R; i++) {
        if (i >= nr) break;
        float *yr = ys + (r0 + i) * wd + 16 * j0;
        _Pragma("GCC unroll 5")
        for (int j = 0; j < nc; j++) {
            __mmask16 mo = mk[p * nct + j0 + j];
            __m512 a = acc[i][j];
            if (accum)
                a = _mm512_add_ps(_mm512_maskz_loadu_ps(mo, yr + 16 * j), a);
            _mm512_mask_storeu_ps(yr + 16 * j, mo, a);
        }
    }
}

/* The chunk masks of a row of WD columns for the K column offsets; *FULL
 * (may be NULL) = whether all but the row's first and last chunk are full
 * at every offset. */
static __mmask16 *dw2_masks(int64_t wd, int64_t k, int64_t *nct, int *full)
{
    int64_t n = (wd + 15) / 16, p = k / 2;
    __mmask16 *mk = mm_malloc((size_t)(n * k) * sizeof *mk);
    int f = 1;
    for (int64_t oi = 0; oi < k; oi++)
        for (int64_t j = 0; j < n; j++) {
            int64_t at = 16 * j + oi - p;
            mk[oi * n + j] = lanes(0, wd - 16 * j) & lanes(-at, wd - at);
            if (j > 0 && j < n - 1 && mk[oi * n + j] != 0xffff) f = 0;
        }
    *nct = n;
    if (full) *full = f;
    return mk;
}

/* Whether dw2_strip gives the generic loops' bits: the N weights are
 * finite and none of the NB biases is -0. */
static int dw2_exact(const float *w, int64_t n, const float *b, int64_t nb)
{
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(w[i])) return 0;
    for (int64_t i = 0; b && i < nb; i++)
        if (b[i] == 0 && signbit(b[i])) return 0;
    return 1;
}

/* Strips of 4 chunks, the last one 1..5. */
static int dw2_nc(int64_t nct, int64_t j0)
{
    return (int)(nct - j0 <= DW2_NC ? nct - j0 : 4);
}

/* Rows R0 .. R0 + NR of one image, strip by strip. Out of line from the
 * OpenMP loops, as every kernel here: a region's outlined body does not
 * inherit MM_AVX512 (clang). */
MM_AVX512 static void dw2_rows(float *ys, const float *xs, const float *wc,
                               const __mmask16 *mk, int64_t nct, int full,
                               int64_t h, int64_t wd, int64_t k, int sgn,
                               int64_t r0, int64_t nr, float b0, int accum)
{
    for (int64_t j0 = 0; j0 < nct; j0 += dw2_nc(nct, j0)) {
        switch (dw2_nc(nct, j0)) {
#define DW2_CASE(NC) \
        case NC: \
            if (full) \
                dw2_strip(NC, 1, ys, xs, wc, mk, nct, h, wd, k, sgn, r0, nr, \
                          j0, b0, accum); \
            else \
                dw2_strip(NC, 0, ys, xs, wc, mk, nct, h, wd, k, sgn, r0, nr, \
                          j0, b0, accum); \
            break;
        DW2_CASE(1) DW2_CASE(2) DW2_CASE(3) DW2_CASE(4) DW2_CASE(5)
#undef DW2_CASE
        }
    }
}

/* Y = conv2d_dw(X, W) + B (SGN 1, !ACCUM) or Y += its input gradient from
 * X = the output gradient (SGN -1, ACCUM, B NULL): one item per DW2_R
 * rows of an image. */
static void dw2_f32(float *y, const float *x, const float *w, const float *b,
                    int64_t bcn, int64_t c, int64_t h, int64_t wd, int64_t k,
                    int sgn, int accum)
{
    int64_t nct, nrb = (h + DW2_R - 1) / DW2_R;
    int full;
    __mmask16 *mk = dw2_masks(wd, k, &nct, &full);
    OMP_FOR
    for (int64_t it = 0; it < bcn * nrb; it++) {
        int64_t bc = it / nrb, r0 = it % nrb * DW2_R;
        dw2_rows(y + bc * h * wd, x + bc * h * wd, w + bc % c * k * k, mk, nct,
                 full, h, wd, k, sgn, r0, h - r0 < DW2_R ? h - r0 : DW2_R,
                 b ? b[bc % c] : 0, accum);
    }
    free(mk);
}

/* One image's share of the weight and bias gradients over a column strip:
 * ACC[u k + v] (16 lanes) += G[r, col] X[r + u - P, col + v - P] and
 * *DB += G, row by row. FULL_MID as in dw2_strip. */
DW_INLINE void dw2_wgrad_strip(int nc, int full_mid, float *acc, __m512 *db,
                               const float *gs, const float *xs,
                               const __mmask16 *mk, int64_t nct, int64_t h,
                               int64_t wd, int64_t k, int64_t j0)
{
    int64_t p = k / 2;
    for (int64_t r = 0; r < h; r++) {
        const float *gr = gs + r * wd + 16 * j0;
        __m512 gv[DW2_NC];
        _Pragma("GCC unroll 5")
        for (int j = 0; j < nc; j++)
            gv[j] = _mm512_maskz_loadu_ps(mk[p * nct + j0 + j], gr + 16 * j);
        if (db)
            _Pragma("GCC unroll 5")
            for (int j = 0; j < nc; j++) *db = _mm512_add_ps(*db, gv[j]);
        if (!acc) continue;
        /* v outside u: the chunk masks stay put over the u loop */
        for (int64_t v = 0; v < k; v++) {
            __mmask16 m[DW2_NC];
            _Pragma("GCC unroll 5")
            for (int j = 0; j < nc; j++) m[j] = mk[v * nct + j0 + j];
            for (int64_t u = 0; u < k; u++) {
                int64_t rr = r + u - p;
                if (rr < 0 || rr >= h) continue;
                const float *xr = xs + rr * wd + 16 * j0 + v - p;
                __m512 pr[DW2_NC];
                _Pragma("GCC unroll 5")
                for (int j = 0; j < nc; j++)
                    pr[j] = full_mid && j > 0 && j < nc - 1
                                ? _mm512_mul_ps(gv[j], _mm512_loadu_ps(xr + 16 * j))
                                : _mm512_maskz_mul_ps(
                                      m[j], gv[j],
                                      _mm512_maskz_loadu_ps(m[j], xr + 16 * j));
                /* pairwise: a shorter chain of adds */
                _Pragma("GCC unroll 3")
                for (int st = 1; st < nc; st *= 2)
                    _Pragma("GCC unroll 5")
                    for (int j = 0; j + st < nc; j += 2 * st)
                        pr[j] = _mm512_add_ps(pr[j], pr[j + st]);
                __m512 s = pr[0];
                float *a = acc + (u * k + v) * 16;
                _mm512_storeu_ps(a, _mm512_add_ps(_mm512_loadu_ps(a), s));
            }
        }
    }
}

/* GW (k, k) and GB (1) (either may be NULL) of channel CH += its
 * gradients over the B images. */
MM_AVX512 static void dw2_wgrad_channel(float *gw, float *gb, const float *g,
                                        const float *x, int64_t b, int64_t c,
                                        int64_t ch, int64_t h, int64_t wd,
                                        int64_t k, const __mmask16 *mk,
                                        int64_t nct, int full)
{
    float *acc = gw ? mm_malloc((size_t)(k * k * 16) * sizeof *acc) : NULL;
    for (int64_t i = 0; acc && i < k * k * 16; i++) acc[i] = 0;
    __m512 db = _mm512_setzero_ps();
    for (int64_t n = 0; n < b; n++) {
        const float *gs = g + (n * c + ch) * h * wd;
        const float *xs = x + (n * c + ch) * h * wd;
        for (int64_t j0 = 0; j0 < nct; j0 += dw2_nc(nct, j0)) {
            switch (dw2_nc(nct, j0)) {
#define DW2_CASE(NC) \
            case NC: \
                if (full) \
                    dw2_wgrad_strip(NC, 1, acc, gb ? &db : NULL, gs, xs, mk, \
                                    nct, h, wd, k, j0); \
                else \
                    dw2_wgrad_strip(NC, 0, acc, gb ? &db : NULL, gs, xs, mk, \
                                    nct, h, wd, k, j0); \
                break;
            DW2_CASE(1) DW2_CASE(2) DW2_CASE(3) DW2_CASE(4) DW2_CASE(5)
#undef DW2_CASE
            }
        }
    }
    for (int64_t t = 0; acc && t < k * k; t++)
        gw[t] += hsum16(_mm512_loadu_ps(acc + 16 * t));
    if (gb) *gb += hsum16(db);
    free(acc);
}

/* GW (C, k, k) and GB (C) (either may be NULL) += the parameter gradients:
 * one item per channel. */
static void dw2_wgrad_f32(float *gw, float *gb, const float *g, const float *x,
                          int64_t b, int64_t c, int64_t h, int64_t wd,
                          int64_t k)
{
    int64_t nct;
    int full;
    __mmask16 *mk = dw2_masks(wd, k, &nct, &full);
    OMP_FOR
    for (int64_t ch = 0; ch < c; ch++)
        dw2_wgrad_channel(gw ? gw + ch * k * k : NULL, gb ? gb + ch : NULL, g,
                          x, b, c, ch, h, wd, k, mk, nct, full);
    free(mk);
}
#else
void mm__dwconv_simd(int on) { (void)on; }
#endif

mm_tensor *mm_tensor_conv1d_dw(mm_ctx *ctx, mm_tensor *x, mm_tensor *w)
{
    if (!x || !w) return NULL;
    if (check_inputs(ctx, "conv1d_dw", x, w)) return NULL;
    if ((x->ndim != 3 && x->ndim != 4) || w->ndim != 2 ||
        w->ne[0] != x->ne[1] || w->ne[1] % 2 == 0)
        return fail(ctx, "conv1d_dw: expected x (B, C, L) or (B, C, L, D) "
                         "and w (C, K) with K odd");
    x = mm_tensor_contiguous(ctx, x);
    w = mm_tensor_contiguous(ctx, w);
    if (!x || !w) return NULL;
#ifdef MM_HAVE_CUDA
    if (x->device == MM_CUDA) {
        mm_tensor *o = tnew_like(ctx, x, x->ndim, x->ne);
        if (cu_check(ctx, "conv1d_dw",
                     mm__cu_conv1d_dw(o->data, x->data, w->data,
                                      x->ne[0] * x->ne[1], x->ne[1],
                                      x->ne[2], x->ndim == 4 ? x->ne[3] : 1,
                                      w->ne[1])))
            return NULL;
        return record(ctx, o, OP_CONV1D_DW, x, w, NULL);
    }
#endif
    int64_t BC = x->ne[0] * x->ne[1], C = x->ne[1], L = x->ne[2];
    int64_t D = x->ndim == 4 ? x->ne[3] : 1, K = w->ne[1], P = K / 2;
#ifdef DW_AVX512_ON
    if (x->dtype == MM_F32 && dw_avx512()) {
        mm_tensor *out = tnew_raw(ctx, x->dtype, x->ndim, x->ne);
        dw1_f32(out->data, x->data, w->data, BC, C, L, D, K, 1, 0);
        return record(ctx, out, OP_CONV1D_DW, x, w, NULL);
    }
#endif
    mm_tensor *out = tnew(ctx, x->dtype, x->ndim, x->ne);
    FOR_REAL(x->dtype, {
        const real *xp = x->data, *wp = w->data;
        real *yp = out->data;
        OMP_FOR
        for (int64_t r = 0; r < BC * L; r++) { /* one output row each */
            int64_t bc = r / L, i = r % L;
            const real *xs = xp + bc * L * D, *wc = wp + bc % C * K;
            real *yr = yp + r * D;
            for (int64_t k = 0; k < K; k++) {
                int64_t j = i + k - P;
                if (j < 0 || j >= L) continue;
                const real *xj = xs + j * D;
                real wk = wc[k];
                _Pragma("omp simd")
                for (int64_t e = 0; e < D; e++) yr[e] += wk * xj[e];
            }
        }
    });
    return record(ctx, out, OP_CONV1D_DW, x, w, NULL);
}

static void backward_conv1d(mm_tensor *t)
{
    mm_tensor *x = t->src[0], *w = t->src[1];
    int64_t B = x->ne[0], C = x->ne[1], L = x->ne[2];
    int64_t D = x->ndim == 4 ? x->ne[3] : 1, K = w->ne[1], P = K / 2;
#ifdef MM_HAVE_CUDA
    if (t->device == MM_CUDA) {
        cu_check(t->ctx, "backward",
                 mm__cu_conv1d_dw_back(
                     x->requires_grad ? grad_of(t->ctx, x)->data : NULL,
                     w->requires_grad ? grad_of(t->ctx, w)->data : NULL,
                     x->data, w->data, t->grad->data, B, C, L, D, K));
        return;
    }
#endif
#ifdef DW_AVX512_ON
    if (t->dtype == MM_F32 && dw_avx512()) {
        if (x->requires_grad)
            dw1_f32(grad_of(t->ctx, x)->data, t->grad->data, w->data, B * C, C,
                    L, D, K, -1, 1);
        if (w->requires_grad)
            dw1_wgrad_f32(grad_of(t->ctx, w)->data, t->grad->data, x->data, B,
                          C, L, D, K);
        return;
    }
#endif
    FOR_REAL(t->dtype, {
        const real *xp = x->data, *wp = w->data, *g = t->grad->data;
        if (x->requires_grad) {
            real *gx = grad_of(t->ctx, x)->data;
            OMP_FOR
            for (int64_t r = 0; r < B * C * L; r++) {
                int64_t bc = r / L, j = r % L;
                const real *gs = g + bc * L * D, *wc = wp + bc % C * K;
                real *gxr = gx + r * D;
                for (int64_t k = 0; k < K; k++) {
                    int64_t i = j - k + P;
                    if (i < 0 || i >= L) continue;
                    const real *gi = gs + i * D;
                    real wk = wc[k];
                    _Pragma("omp simd")
                    for (int64_t e = 0; e < D; e++) gxr[e] += wk * gi[e];
                }
            }
        }
        if (w->requires_grad) {
            real *gw = grad_of(t->ctx, w)->data;
            OMP_FOR
            for (int64_t ck = 0; ck < C * K; ck++) {
                int64_t c = ck / K, k = ck % K;
                real s = 0;
                for (int64_t b = 0; b < B; b++) {
                    const real *gs = g + (b * C + c) * L * D;
                    const real *xs = xp + (b * C + c) * L * D;
                    /* rows i with j = i + k - P inside [0, L): one
                     * contiguous run of (L - |k - P|) D products */
                    int64_t i0 = P - k > 0 ? P - k : 0;
                    int64_t i1 = L + P - k < L ? L + P - k : L;
                    const real *ga = gs + i0 * D, *xa = xs + (i0 + k - P) * D;
                    int64_t len = (i1 - i0) * D;
                    _Pragma("omp simd reduction(+:s)")
                    for (int64_t e = 0; e < len; e++) s += ga[e] * xa[e];
                }
                gw[c * K + k] += s;
            }
        }
    });
}

#ifdef MM_HAVE_CUDA
static mm_tensor *cu_conv2d_dw(mm_ctx *ctx, mm_tensor *x, mm_tensor *w,
                               mm_tensor *b)
{
    x = mm_tensor_contiguous(ctx, x);
    w = mm_tensor_contiguous(ctx, w);
    b = b ? mm_tensor_contiguous(ctx, b) : NULL;
    if (!x || !w) return NULL;
    mm_tensor *o = tnew_like(ctx, x, 4, x->ne);
    if (cu_check(ctx, "conv2d_dw",
                 mm__cu_conv2d_dw(o->data, x->data, w->data,
                                  b ? b->data : NULL, x->ne[0] * x->ne[1],
                                  x->ne[1], x->ne[2], x->ne[3], w->ne[1])))
        return NULL;
    return record(ctx, o, OP_CONV2D_DW, x, w, b);
}
#endif

mm_tensor *mm_tensor_conv2d_dw(mm_ctx *ctx, mm_tensor *x, mm_tensor *w,
                               mm_tensor *b)
{
    if (!x || !w) return NULL;
    if (check_inputs(ctx, "conv2d_dw", x, w) ||
        (b && check_inputs(ctx, "conv2d_dw", x, b)))
        return NULL;
    if (x->ndim != 4 || w->ndim != 3 || w->ne[0] != x->ne[1] ||
        w->ne[1] != w->ne[2] || w->ne[1] % 2 == 0 ||
        (b && (b->ndim != 1 || b->ne[0] != x->ne[1])))
        return fail(ctx, "conv2d_dw: expected x (B, C, H, W), w (C, k, k) "
                         "with k odd and bias (C) or none");
#ifdef MM_HAVE_CUDA
    if (x->device == MM_CUDA) return cu_conv2d_dw(ctx, x, w, b);
#endif
    x = mm_tensor_contiguous(ctx, x);
    w = mm_tensor_contiguous(ctx, w);
    b = b ? mm_tensor_contiguous(ctx, b) : NULL;
    if (!x || !w) return NULL;
    mm_tensor *out = tnew_raw(ctx, x->dtype, 4, x->ne);
    int64_t C = x->ne[1], H = x->ne[2], W = x->ne[3], BC = x->ne[0] * C;
    int64_t k = w->ne[1], P = k / 2;
#ifdef DW_AVX512_ON
    if (x->dtype == MM_F32 && dw_avx512() &&
        dw2_exact(w->data, C * k * k, b ? b->data : NULL, C)) {
        dw2_f32(out->data, x->data, w->data, b ? b->data : NULL, BC, C, H, W, k,
                1, 0);
        return record(ctx, out, OP_CONV2D_DW, x, w, b);
    }
#endif
    FOR_REAL(x->dtype, {
        const real *xp = x->data, *wp = w->data;
        const real *bp = b ? b->data : NULL;
        real *yp = out->data;
        /* each output element sums bias, then tap (u, v) in order, as
         * the scalar loop did; the taps run along whole rows (simd) */
        OMP_FOR
        for (int64_t bc = 0; bc < BC; bc++) {
            const real *xs = xp + bc * H * W, *wc = wp + bc % C * k * k;
            real *ys = yp + bc * H * W;
            real b0 = bp ? bp[bc % C] : 0;
            for (int64_t r = 0; r < H; r++) {
                real *yr = ys + r * W;
                for (int64_t c = 0; c < W; c++) yr[c] = b0;
                for (int64_t u = 0; u < k; u++) {
                    int64_t rr = r + u - P;
                    if (rr < 0 || rr >= H) continue;
                    for (int64_t v = 0; v < k; v++) {
                        int64_t c0 = P - v > 0 ? P - v : 0;
                        int64_t c1 = W + P - v < W ? W + P - v : W;
                        const real *xr = xs + rr * W + v - P;
                        real wv = wc[u * k + v];
                        _Pragma("omp simd")
                        for (int64_t c = c0; c < c1; c++) yr[c] += wv * xr[c];
                    }
                }
            }
        }
    });
    return record(ctx, out, OP_CONV2D_DW, x, w, b);
}

static void backward_conv2d(mm_tensor *t)
{
    mm_tensor *x = t->src[0], *w = t->src[1], *b = t->src[2];
    int64_t B = x->ne[0], C = x->ne[1], H = x->ne[2], W = x->ne[3];
    int64_t k = w->ne[1], P = k / 2;
#ifdef MM_HAVE_CUDA
    if (t->device == MM_CUDA) {
        cu_check(t->ctx, "backward",
                 mm__cu_conv2d_dw_back(
                     x->requires_grad ? grad_of(t->ctx, x)->data : NULL,
                     w->requires_grad ? grad_of(t->ctx, w)->data : NULL,
                     b && b->requires_grad ? grad_of(t->ctx, b)->data : NULL,
                     x->data, w->data, t->grad->data, B, C, H, W, k));
        return;
    }
#endif
#ifdef DW_AVX512_ON
    if (t->dtype == MM_F32 && dw_avx512() &&
        dw2_exact(w->data, C * k * k, NULL, 0)) {
        if (x->requires_grad)
            dw2_f32(grad_of(t->ctx, x)->data, t->grad->data, w->data, NULL,
                    B * C, C, H, W, k, -1, 1);
        if (w->requires_grad || (b && b->requires_grad))
            dw2_wgrad_f32(w->requires_grad ? grad_of(t->ctx, w)->data : NULL,
                          b && b->requires_grad ? grad_of(t->ctx, b)->data
                                                : NULL,
                          t->grad->data, x->data, B, C, H, W, k);
        return;
    }
#endif
    FOR_REAL(t->dtype, {
        const real *xp = x->data, *wp = w->data, *g = t->grad->data;
        if (x->requires_grad) {
            real *gx = grad_of(t->ctx, x)->data;
            /* per element: the taps' sum in (u, v) order, then added to
             * the gradient once; S holds one row of sums */
            OMP_FOR
            for (int64_t bc = 0; bc < B * C; bc++) {
                const real *gs = g + bc * H * W, *wc = wp + bc % C * k * k;
                real *gxs = gx + bc * H * W;
                real *sr = mm_malloc((size_t)W * sizeof *sr);
                for (int64_t r = 0; r < H; r++) {
                    for (int64_t c = 0; c < W; c++) sr[c] = 0;
                    for (int64_t u = 0; u < k; u++) {
                        int64_t rr = r - u + P;
                        if (rr < 0 || rr >= H) continue;
                        for (int64_t v = 0; v < k; v++) {
                            int64_t c0 = v - P > 0 ? v - P : 0;
                            int64_t c1 = W + v - P < W ? W + v - P : W;
                            const real *gr = gs + rr * W + P - v;
                            real wv = wc[u * k + v];
                            _Pragma("omp simd")
                            for (int64_t c = c0; c < c1; c++) sr[c] += wv * gr[c];
                        }
                    }
                    for (int64_t c = 0; c < W; c++) gxs[r * W + c] += sr[c];
                }
                free(sr);
            }
        }
        int gw_on = w->requires_grad, gb_on = b && b->requires_grad;
        real *gw = gw_on ? grad_of(t->ctx, w)->data : NULL;
        real *gb = gb_on ? grad_of(t->ctx, b)->data : NULL;
        if (gw_on || gb_on) {
            OMP_FOR
            for (int64_t c = 0; c < C; c++) {
                for (int64_t u = 0; gw && u < k; u++)
                    for (int64_t v = 0; v < k; v++) {
                        real s = 0;
                        for (int64_t n = 0; n < B; n++) {
                            const real *gs = g + (n * C + c) * H * W;
                            const real *xs = xp + (n * C + c) * H * W;
                            for (int64_t r = 0; r < H; r++) {
                                int64_t rr = r + u - P;
                                if (rr < 0 || rr >= H) continue;
                                int64_t q0 = P - v > 0 ? P - v : 0;
                                int64_t q1 = W + P - v < W ? W + P - v : W;
                                const real *gr = gs + r * W;
                                const real *xr = xs + rr * W + v - P;
                                _Pragma("omp simd reduction(+:s)")
                                for (int64_t q = q0; q < q1; q++)
                                    s += gr[q] * xr[q];
                            }
                        }
                        gw[(c * k + u) * k + v] += s;
                    }
                if (gb) {
                    real s = 0;
                    for (int64_t n = 0; n < B; n++)
                        for (int64_t i = 0; i < H * W; i++)
                            s += g[(n * C + c) * H * W + i];
                    gb[c] += s;
                }
            }
        }
    });
}

// ---- dense conv2d, BatchNorm folding, pooling (inference only) -------------

/* The ops below have no backward. In grad mode an input that requires grad
 * is an error rather than a silently missing gradient. */
static int infer_only(mm_ctx *ctx, const char *op, const mm_tensor *a,
                      const mm_tensor *b, const mm_tensor *c)
{
    if (ctx->no_grad) return 0;
    if ((a && a->requires_grad) || (b && b->requires_grad) ||
        (c && c->requires_grad)) {
        fail(ctx, "%s: inference only (no backward): an input requires grad; "
                  "call it in no-grad mode (mm_ctx_no_grad)", op);
        return -1;
    }
    return 0;
}

#ifdef MM_HAVE_CUDA
static mm_tensor *cu_conv2d(mm_ctx *ctx, mm_tensor *x, mm_tensor *w,
                            mm_tensor *b, int64_t OH, int64_t OW, int sh,
                            int sw, int ph, int pw)
{
    int64_t N = x->ne[0], C = x->ne[1], H = x->ne[2], W = x->ne[3];
    int64_t O = w->ne[0], kh = w->ne[2], kw = w->ne[3];
    int direct = kh == 1 && kw == 1 && sh == 1 && sw == 1 && ph == 0 &&
                 pw == 0;
    int64_t K = C * kh * kw, P = OH * OW;
    mm_tensor *out = tnew_like(ctx, x, 4, (int64_t[]){N, O, OH, OW});
    float *col = direct ? NULL : dev_alloc(ctx, (size_t)(K * P) * sizeof *col);
    for (int64_t n = 0; n < N; n++) {
        const float *xs = (const float *)x->data + n * C * H * W;
        float *ys = (float *)out->data + n * O * P;
        if (!direct &&
            cu_check(ctx, "conv2d", mm__cu_im2col(col, xs, C, H, W, kh, kw,
                                                  OH, OW, sh, sw, ph, pw)))
            return NULL;
        if (b && cu_check(ctx, "conv2d", mm__cu_bias_rows(ys, b->data, O, P)))
            return NULL;
        if (cu_gemm(ctx, "conv2d", 0, 0, (int)O, (int)P, (int)K, w->data,
                    (int)K, 0, direct ? xs : col, (int)P, 0, b ? 1.0f : 0.0f,
                    ys, (int)P, 0, 1))
            return NULL;
    }
    return out;
}
#endif

mm_tensor *mm_tensor_conv2d(mm_ctx *ctx, mm_tensor *x, mm_tensor *w,
                            mm_tensor *b, int sh, int sw, int ph, int pw)
{
    if (!x || !w) return NULL;
    if (check_inputs(ctx, "conv2d", x, w) ||
        (b && check_inputs(ctx, "conv2d", x, b)) ||
        infer_only(ctx, "conv2d", x, w, b))
        return NULL;
    if (x->ndim != 4 || w->ndim != 4 || w->ne[1] != x->ne[1] ||
        (b && (b->ndim != 1 || b->ne[0] != w->ne[0])))
        return fail(ctx, "conv2d: expected x (N, C, H, W), w (O, C, kh, kw) "
                         "and bias (O) or none");
    if (sh < 1 || sw < 1 || ph < 0 || pw < 0)
        return fail(ctx, "conv2d: stride must be >= 1 and padding >= 0");
    int64_t N = x->ne[0], C = x->ne[1], H = x->ne[2], W = x->ne[3];
    int64_t O = w->ne[0], kh = w->ne[2], kw = w->ne[3];
    if (H + 2 * ph < kh || W + 2 * pw < kw)
        return fail(ctx, "conv2d: kernel %lldx%lld larger than the padded "
                         "input %lldx%lld", (long long)kh, (long long)kw,
                    (long long)(H + 2 * ph), (long long)(W + 2 * pw));
    int64_t OH = (H + 2 * ph - kh) / sh + 1, OW = (W + 2 * pw - kw) / sw + 1;
    int64_t K = C * kh * kw, P = OH * OW;
    if (K > INT32_MAX || P > INT32_MAX || O > INT32_MAX)
        return fail(ctx, "conv2d: too large for one BLAS call");
    x = mm_tensor_contiguous(ctx, x);
    w = mm_tensor_contiguous(ctx, w);
    b = b ? mm_tensor_contiguous(ctx, b) : NULL;
    if (!x || !w) return NULL;
#ifdef MM_HAVE_CUDA
    if (x->device == MM_CUDA) /* the CPU path's steps, cuBLAS for sgemm */
        return cu_conv2d(ctx, x, w, b, OH, OW, sh, sw, ph, pw);
#endif
    mm_tensor *out = tnew(ctx, x->dtype, 4, (int64_t[]){N, O, OH, OW});
    /* a 1x1, stride 1, unpadded conv reads the image as its own im2col */
    int direct = kh == 1 && kw == 1 && sh == 1 && sw == 1 && ph == 0 &&
                 pw == 0;
    size_t esz = mm_dtype_size(x->dtype);
    void *col = direct ? NULL : arena_alloc(ctx, (size_t)(K * P) * esz);
    FOR_REAL(x->dtype, {
        const real *xp = x->data, *bp = b ? b->data : NULL;
        real *yp = out->data, *cp = col;
        for (int64_t n = 0; n < N; n++) {
            const real *xs = xp + n * C * H * W;
            real *ys = yp + n * O * P;
            if (!direct) {
                OMP_FOR
                for (int64_t r = 0; r < K; r++) {
                    int64_t c = r / (kh * kw), u = r / kw % kh, v = r % kw;
                    const real *xc = xs + c * H * W;
                    real *row = cp + r * P;
                    for (int64_t oh = 0; oh < OH; oh++) {
                        int64_t ih = oh * sh - ph + u;
                        real *dst = row + oh * OW;
                        if (ih < 0 || ih >= H) {
                            for (int64_t ow = 0; ow < OW; ow++) dst[ow] = 0;
                            continue;
                        }
                        for (int64_t ow = 0; ow < OW; ow++) {
                            int64_t iw = ow * sw - pw + v;
                            dst[ow] = iw >= 0 && iw < W ? xc[ih * W + iw] : 0;
                        }
                    }
                }
            }
            if (bp)
                for (int64_t o = 0; o < O; o++)
                    for (int64_t q = 0; q < P; q++) ys[o * P + q] = bp[o];
            gemm(x->dtype, 0, 0, (int)O, (int)P, (int)K, w->data, (int)K,
                 direct ? (const void *)xs : (const void *)cp, (int)P,
                 bp ? 1.0 : 0.0, ys, (int)P);
        }
    });
    return out;
}

int mm_tensor_bn_fold(mm_tensor *w, mm_tensor *b, const mm_tensor *mean,
                      const mm_tensor *var, const mm_tensor *gamma,
                      const mm_tensor *beta, double eps)
{
    if (!w || !b || !mean || !var) {
        fail(NULL, "bn_fold: missing weight, bias, mean or variance");
        return -1;
    }
    int64_t O = w->ndim ? w->ne[0] : 0;
    const mm_tensor *vs[4] = {mean, var, gamma, beta};
    int bad = !is_real(w->dtype) || !is_real(b->dtype) || w->ndim < 1 ||
              b->ndim != 1 || b->ne[0] != O;
    for (int i = 0; i < 4; i++)
        if (vs[i] && (vs[i]->ndim != 1 || vs[i]->ne[0] != O)) bad = 1;
    if (bad) {
        fail(NULL, "bn_fold: expected real w (O, ...), b (O) and statistics "
                   "(O)");
        return -1;
    }
    if (w->device != MM_CPU || b->device != MM_CPU) {
        fail(NULL, "bn_fold: host only (fold the CPU weights, then move "
                   "them with mm_tensor_to_device)");
        return -1;
    }
    int64_t per = mm_tensor_numel(w) / O;
    for (int64_t o = 0; o < O; o++) {
        double g = gamma ? load(gamma->dtype, gamma->data, offset_of(gamma, o))
                         : 1;
        double be = beta ? load(beta->dtype, beta->data, offset_of(beta, o))
                         : 0;
        double mu = load(mean->dtype, mean->data, offset_of(mean, o));
        double v = load(var->dtype, var->data, offset_of(var, o));
        double s = g / sqrt(v + eps);
        for (int64_t i = o * per; i < (o + 1) * per; i++) {
            int64_t k = offset_of(w, i);
            store(w->dtype, w->data, k, load(w->dtype, w->data, k) * s);
        }
        int64_t k = offset_of(b, o);
        store(b->dtype, b->data, k, (load(b->dtype, b->data, k) - mu) * s + be);
    }
    return 0;
}

mm_tensor *mm_tensor_max_pool2d(mm_ctx *ctx, mm_tensor *x, int k, int stride,
                                int pad)
{
    if (!x) return NULL;
    if (check_inputs(ctx, "max_pool2d", x, NULL) ||
        infer_only(ctx, "max_pool2d", x, NULL, NULL))
        return NULL;
    if (x->ndim != 4)
        return fail(ctx, "max_pool2d: expected x (N, C, H, W), got %d-D",
                    x->ndim);
    if (k < 1 || stride < 1 || pad < 0 || pad > k / 2)
        return fail(ctx, "max_pool2d: need kernel >= 1, stride >= 1 and "
                         "0 <= padding <= kernel / 2 (torch's rule)");
    int64_t H = x->ne[2], W = x->ne[3];
    if (H + 2 * pad < k || W + 2 * pad < k)
        return fail(ctx, "max_pool2d: kernel %d larger than the padded input",
                    k);
    int64_t OH = (H + 2 * pad - k) / stride + 1;
    int64_t OW = (W + 2 * pad - k) / stride + 1, NC = x->ne[0] * x->ne[1];
    x = mm_tensor_contiguous(ctx, x);
    if (!x) return NULL;
#ifdef MM_HAVE_CUDA
    if (x->device == MM_CUDA) {
        mm_tensor *o = tnew_like(ctx, x, 4,
                                 (int64_t[]){x->ne[0], x->ne[1], OH, OW});
        if (cu_check(ctx, "max_pool2d",
                     mm__cu_max_pool2d(o->data, x->data, NC, H, W, OH, OW, k,
                                       stride, pad)))
            return NULL;
        return o;
    }
#endif
    mm_tensor *out = tnew(ctx, x->dtype, 4,
                          (int64_t[]){x->ne[0], x->ne[1], OH, OW});
    FOR_REAL(x->dtype, {
        const real *xp = x->data;
        real *yp = out->data;
        OMP_FOR
        for (int64_t nc = 0; nc < NC; nc++) {
            const real *xs = xp + nc * H * W;
            real *ys = yp + nc * OH * OW;
            for (int64_t oh = 0; oh < OH; oh++)
                for (int64_t ow = 0; ow < OW; ow++) {
                    real m = -INFINITY;
                    for (int64_t u = 0; u < k; u++) {
                        int64_t ih = oh * stride - pad + u;
                        if (ih < 0 || ih >= H) continue;
                        for (int64_t v = 0; v < k; v++) {
                            int64_t iw = ow * stride - pad + v;
                            if (iw < 0 || iw >= W) continue;
                            real val = xs[ih * W + iw];
                            if (val > m || isnan(val)) m = val;
                        }
                    }
                    ys[oh * OW + ow] = m;
                }
        }
    });
    return out;
}

mm_tensor *mm_tensor_global_avg_pool2d(mm_ctx *ctx, mm_tensor *x)
{
    if (!x) return NULL;
    if (check_inputs(ctx, "global_avg_pool2d", x, NULL) ||
        infer_only(ctx, "global_avg_pool2d", x, NULL, NULL))
        return NULL;
    if (x->ndim != 4)
        return fail(ctx, "global_avg_pool2d: expected x (N, C, H, W), got "
                         "%d-D", x->ndim);
    x = mm_tensor_contiguous(ctx, x);
    if (!x) return NULL;
    int64_t HW = x->ne[2] * x->ne[3], NC = x->ne[0] * x->ne[1];
#ifdef MM_HAVE_CUDA
    if (x->device == MM_CUDA) {
        mm_tensor *o = tnew_like(ctx, x, 4,
                                 (int64_t[]){x->ne[0], x->ne[1], 1, 1});
        if (cu_check(ctx, "global_avg_pool2d",
                     mm__cu_global_avg_pool2d(o->data, x->data, NC, HW)))
            return NULL;
        return o;
    }
#endif
    mm_tensor *out = tnew(ctx, x->dtype, 4,
                          (int64_t[]){x->ne[0], x->ne[1], 1, 1});
    FOR_REAL(x->dtype, {
        const real *xp = x->data;
        real *yp = out->data;
        OMP_FOR
        for (int64_t nc = 0; nc < NC; nc++) {
            real s = 0;
            for (int64_t i = 0; i < HW; i++) s += xp[nc * HW + i];
            yp[nc] = s / (real)HW;
        }
    });
    return out;
}

// ---- survival losses --------------------------------------------------------

/* A tensor of DT and shape (N, 1) (or 0-D when N = 0) holding V. */
static mm_tensor *const_col(mm_ctx *ctx, mm_dtype dt, int64_t n,
                            const double *v)
{
    mm_tensor *t = n ? tnew(ctx, dt, 2, (int64_t[]){n, 1})
                     : tnew(ctx, dt, 0, NULL);
    for (int64_t i = 0; i < (n ? n : 1); i++) store(dt, t->data, i, v[i]);
    return t;
}

mm_tensor *mm_tensor_surv_nll(mm_ctx *ctx, mm_tensor *logits, mm_tensor *y,
                              mm_tensor *c, double alpha, double eps)
{
    if (!logits || !y || !c) return NULL;
    if (check_inputs(ctx, "surv_nll", logits, NULL)) return NULL;
    if (logits->ndim != 2)
        return fail(ctx, "surv_nll: logits must be (B, T), got %d-D",
                    logits->ndim);
    int64_t B = logits->ne[0], T = logits->ne[1];
    if (y->ndim != 1 || y->ne[0] != B || c->ndim != 1 || c->ne[0] != B)
        return fail(ctx, "surv_nll: labels and censorship must be (%lld)",
                    (long long)B);
    if (c->device != MM_CPU || y->device != MM_CPU)
        return fail(ctx, "surv_nll: labels and censorship must be CPU "
                         "tensors (the logits may be on CUDA)");
    int64_t *lab = read_index(ctx, "surv_nll", y, T);
    if (!lab) return NULL;
    mm_dtype dt = logits->dtype;
    double *w = arena_alloc(ctx, (size_t)(2 * B + 1) * sizeof *w);
    double *w1 = w, *w2 = w + B;
    mm_tensor *iy = tnew(ctx, MM_I64, 2, (int64_t[]){B, 1});
    mm_tensor *iy1 = tnew(ctx, MM_I64, 2, (int64_t[]){B, 1});
    for (int64_t i = 0; i < B; i++) {
        double ci = load(c->dtype, c->data, offset_of(c, i));
        w1[i] = -(1 - ci) / (double)B;          /* uncensored, weight 1 */
        w2[i] = -(1 - alpha) * ci / (double)B;  /* censored, 1 - alpha */
        ((int64_t *)iy->data)[i] = lab[i];
        ((int64_t *)iy1->data)[i] = lab[i] + 1;
    }
    w[2 * B] = 1;
    /* on CUDA logits, the constants move there (a no-op on the CPU) */
    mm_device dev = logits->device;
    mm_tensor *one = mm_tensor_to_device(ctx, const_col(ctx, dt, 0, w + 2 * B),
                                         dev);
    mm_tensor *h = mm_tensor_sigmoid(ctx, logits);
    mm_tensor *s = mm_tensor_cumprod(ctx,
                                     mm_tensor_add(ctx, one,
                                                   mm_tensor_neg(ctx, h)),
                                     1);
    mm_tensor *ones = tnew_like(ctx, logits, 2, (int64_t[]){B, 1});
    mm_tensor_fill(ones, 1);
    mm_tensor *sp = mm_tensor_concat(ctx, 2, (mm_tensor *[]){ones, s}, 1);
    mm_tensor *ls = mm_tensor_log(ctx, mm_tensor_clamp(
        ctx, mm_tensor_gather(ctx, sp, 1, iy), eps, INFINITY));
    mm_tensor *lh = mm_tensor_log(ctx, mm_tensor_clamp(
        ctx, mm_tensor_gather(ctx, h, 1, iy), eps, INFINITY));
    mm_tensor *ls1 = mm_tensor_log(ctx, mm_tensor_clamp(
        ctx, mm_tensor_gather(ctx, sp, 1, iy1), eps, INFINITY));
    mm_tensor *unc = mm_tensor_mul(ctx, mm_tensor_add(ctx, ls, lh),
                                   mm_tensor_to_device(ctx,
                                       const_col(ctx, dt, B, w1), dev));
    mm_tensor *cen = mm_tensor_mul(ctx, ls1, mm_tensor_to_device(ctx,
                                       const_col(ctx, dt, B, w2), dev));
    return mm_tensor_sum_all(ctx, mm_tensor_add(ctx, unc, cen));
}

typedef struct {
    double t;
    int64_t i;
} timed;

static int by_time_desc(const void *p, const void *q)
{
    const timed *a = p, *b = q;
    if (a->t != b->t) return a->t > b->t ? -1 : 1;
    return a->i < b->i ? -1 : a->i > b->i;
}

/* Saved: N (the divisor) in fp, the shift m in fq, and per sample
 * A_k = sum over counted events i with k in R(i) of 1 / S_i, where
 * S_i = sum_{j in R(i)} exp(theta_j - m) and R(i) = {j: t_j >= t_i}
 * (inclusive) or {j: t_j > t_i} (strict). dL/dtheta_k =
 * (exp(theta_k - m) A_k - event_k) / N, event_k 0 for a skipped event. */
mm_tensor *mm_tensor_cox_nll_ex(mm_ctx *ctx, mm_tensor *theta,
                                mm_tensor *time, mm_tensor *event,
                                mm_cox_norm norm, mm_cox_risk risk)
{
    if (!theta || !time || !event) return NULL;
    if (check_inputs(ctx, "cox_nll", theta, NULL)) return NULL;
    int64_t B = mm_tensor_numel(theta);
    if (!((theta->ndim == 1) || (theta->ndim == 2 && theta->ne[1] == 1)))
        return fail(ctx, "cox_nll: risks must be (B) or (B, 1), got %d-D",
                    theta->ndim);
    if (mm_tensor_numel(time) != B || mm_tensor_numel(event) != B)
        return fail(ctx, "cox_nll: times and events must have %lld values",
                    (long long)B);
    if (risk != MM_COX_INCLUSIVE && risk != MM_COX_STRICT)
        return fail(ctx, "cox_nll: unknown risk set %d", (int)risk);
    if (time->device != MM_CPU || event->device != MM_CPU)
        return fail(ctx, "cox_nll: times and events must be CPU tensors "
                         "(the risks may be on CUDA)");
    theta = mm_tensor_contiguous(ctx, theta);
    if (!theta) return NULL;
    /* The loss is a sort and running sums over the batch, in double: on
     * CUDA it runs here on a copy of the B risks (the CPU's arithmetic
     * exactly), and only the result goes back to the device. */
    const void *thd = theta->data;
#ifdef MM_HAVE_CUDA
    if (theta->device == MM_CUDA) {
        float *h = arena_alloc(ctx, (size_t)B * sizeof *h);
        if (cu_check(ctx, "cox_nll",
                     mm__cu_d2h(h, theta->data, (size_t)B * sizeof *h)))
            return NULL;
        thd = h;
    }
#endif
    int strict = risk == MM_COX_STRICT;
    timed *ord = arena_alloc(ctx, (size_t)B * sizeof *ord);
    double *ev = arena_alloc(ctx, (size_t)B * sizeof *ev);
    double *th = arena_alloc(ctx, (size_t)B * sizeof *th);
    double *acc = arena_alloc(ctx, (size_t)B * sizeof *acc);
    double m = -INFINITY, nev = 0, loss = 0;
    for (int64_t i = 0; i < B; i++) {
        ord[i].t = load(time->dtype, time->data, offset_of(time, i));
        ord[i].i = i;
        if (isnan(ord[i].t))
            return fail(ctx, "cox_nll: time %lld is NaN", (long long)i);
        ev[i] = load(event->dtype, event->data, offset_of(event, i)) != 0;
        th[i] = load(theta->dtype, thd, i);
        if (th[i] > m) m = th[i];
    }
    qsort(ord, (size_t)B, sizeof *ord, by_time_desc);
    /* descending time: the risk set of a tie group is everything before
     * the group (strict) or up to the group's end (inclusive, Breslow).
     * Strict: the first group (the largest time) has an empty risk set;
     * its events are skipped, as if censored (no term, not counted). */
    double rs = 0;
    for (int64_t s = 0, e; s < B; s = e) {
        double before = rs;
        for (e = s; e < B && ord[e].t == ord[s].t; e++)
            rs += exp(th[ord[e].i] - m);
        double r = strict ? before : rs;
        double lr = s > 0 || !strict ? m + log(r) : 0;
        for (int64_t q = s; q < e; q++) {
            int64_t i = ord[q].i;
            if (strict && s == 0) ev[i] = 0; /* empty risk set: skipped */
            if (ev[i]) loss -= th[i] - lr;
            nev += ev[i];
            acc[q] = ev[i] ? ev[i] / r : 0; /* summed below */
        }
    }
    /* A_k: counted events i with k in R(i): t_i <= t_k (inclusive), or
     * t_i < t_k (strict), i.e. from the end of k's tie group, with or
     * without the group itself */
    double run = 0;
    for (int64_t e = B, s; e > 0; e = s) {
        for (s = e - 1; s > 0 && ord[s - 1].t == ord[e - 1].t; s--) {}
        double nrun = run;
        for (int64_t q = s; q < e; q++) nrun += acc[q];
        for (int64_t q = s; q < e; q++) acc[q] = strict ? run : nrun;
        run = nrun;
    }
    double *A = arena_alloc(ctx, (size_t)B * sizeof *A);
    for (int64_t q = 0; q < B; q++) A[ord[q].i] = acc[q];
    double N = norm == MM_COX_MEAN_ALL ? (double)B
               : norm == MM_COX_EVENTS_PLUS1 ? nev + 1 : nev;
    if (N == 0) N = 1; /* no events: the loss and its gradient are 0 */
    mm_tensor *out = tnew(ctx, theta->dtype, 0, NULL);
    store(out->dtype, out->data, 0, loss / N);
#ifdef MM_HAVE_CUDA
    if (theta->device == MM_CUDA) {
        mm_tensor *o = tnew_like(ctx, theta, 0, NULL);
        if (cu_check(ctx, "cox_nll",
                     mm__cu_h2d(o->data, out->data, sizeof(float))))
            return NULL;
        out = o;
    }
#endif
    double *sv = arena_alloc(ctx, (size_t)B * 2 * sizeof *sv);
    memcpy(sv, A, (size_t)B * sizeof *sv);
    memcpy(sv + B, ev, (size_t)B * sizeof *sv);
    out->aux = sv;
    out->fp = N;
    out->fq = m;
    return record(ctx, out, OP_COX, theta, NULL, NULL);
}

mm_tensor *mm_tensor_cox_nll(mm_ctx *ctx, mm_tensor *theta, mm_tensor *time,
                             mm_tensor *event, mm_cox_norm norm)
{
    return mm_tensor_cox_nll_ex(ctx, theta, time, event, norm,
                                MM_COX_INCLUSIVE);
}

static void backward_cox(mm_tensor *t)
{
    mm_tensor *a = t->src[0];
    int64_t B = mm_tensor_numel(a);
    const double *A = t->aux, *ev = A + B;
#ifdef MM_HAVE_CUDA
    if (t->device == MM_CUDA) { /* the loop below on host copies */
        mm_tensor *ga = grad_of(t->ctx, a);
        float *h = arena_alloc(t->ctx, (size_t)(2 * B + 1) * sizeof *h);
        float *hg = h + B, *gl = h + 2 * B;
        size_t nb = (size_t)B * sizeof *h;
        if (cu_check(t->ctx, "backward", mm__cu_d2h(gl, t->grad->data,
                                                     sizeof *gl)) ||
            cu_check(t->ctx, "backward", mm__cu_d2h(h, a->data, nb)) ||
            cu_check(t->ctx, "backward", mm__cu_d2h(hg, ga->data, nb)))
            return;
        double g = *gl / t->fp, m = t->fq;
        for (int64_t i = 0; i < B; i++)
            hg[i] = (float)(hg[i] + g * (exp(h[i] - m) * A[i] - ev[i]));
        cu_check(t->ctx, "backward", mm__cu_h2d(ga->data, hg, nb));
        return;
    }
#endif
    double g = load(t->dtype, t->grad->data, 0) / t->fp, m = t->fq;
    mm_tensor *ga = grad_of(t->ctx, a);
    for (int64_t i = 0; i < B; i++) {
        double th = load(a->dtype, a->data, i);
        double d = g * (exp(th - m) * A[i] - ev[i]);
        store(ga->dtype, ga->data, i, load(ga->dtype, ga->data, i) + d);
    }
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
#ifdef MM_HAVE_CUDA
    if (g->device == MM_CUDA) {
        float v;
        if (cu_check(ctx, "backward", mm__cu_d2h(&v, g->data, sizeof v)))
            return -1;
        v += 1.0f;
        if (cu_check(ctx, "backward", mm__cu_h2d(g->data, &v, sizeof v)))
            return -1;
    } else
#endif
    store(g->dtype, g->data, 0, load(g->dtype, g->data, 0) + 1.0);
    for (mm_tensor *t = ctx->tape; t && !ctx->failed; t = t->tape_prev) {
        if (!t->grad) continue; /* the loss does not depend on it */
        switch (t->op) {
        case OP_VIEW_RESHAPE: case OP_VIEW_TRANSPOSE: case OP_VIEW_SLICE:
        case OP_CONT:
            if (t->src[0]->requires_grad) backward_view(t);
            break;
        case OP_MATMUL: case OP_ADDMM: backward_matmul(t); break;
        case OP_ADD: case OP_SUB: case OP_MUL: case OP_DIV:
            backward_binary(t);
            break;
        case OP_SCALE: case OP_EXP: case OP_LOG: case OP_SQRT: case OP_TANH:
        case OP_SIGMOID: case OP_RELU: case OP_GELU: case OP_ABS:
        case OP_CLAMP: case OP_RSQRT: case OP_SQUARE: case OP_ELU:
        case OP_SILU: case OP_SOFTPLUS:
            if (t->src[0]->requires_grad) backward_unary(t);
            break;
        case OP_MAX: case OP_CUMSUM: case OP_CUMPROD:
            if (t->src[0]->requires_grad) backward_scan(t);
            break;
        case OP_CONCAT: backward_concat(t); break;
        case OP_INDEX_SELECT: case OP_GATHER: case OP_REPEAT: case OP_PAD:
        case OP_DROPOUT:
            if (t->src[0]->requires_grad) backward_index(t);
            break;
        case OP_CONV1D_DW: backward_conv1d(t); break;
        case OP_CONV2D_DW: backward_conv2d(t); break;
        case OP_COX:
            if (t->src[0]->requires_grad) backward_cox(t);
            break;
        case OP_SUM: case OP_MEAN:
            if (t->src[0]->requires_grad) backward_reduce(t);
            break;
        case OP_SOFTMAX: case OP_LOG_SOFTMAX:
            if (t->src[0]->requires_grad) backward_softmax(t);
            break;
        case OP_LAYERNORM: backward_layernorm(t); break;
        case OP_ATTENTION: backward_attention(t); break;
        case OP_CROSS_ENTROPY:
            if (t->src[0]->requires_grad) backward_cross_entropy(t);
            break;
#ifdef MM_HAVE_CUDA
        case OP_TO_DEVICE:
            if (t->src[0]->requires_grad) backward_to_device(t);
            break;
#endif
        default: MM_ASSERT(!"unknown op on the tape");
        }
    }
    return ctx->failed ? -1 : 0; /* a CUDA call failed on the way */
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
