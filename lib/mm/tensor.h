/* mm/tensor.h: dense tensors (f32 compute, f64 reference, f16/u8/i32/i64
 * storage) up to 4-D, an arena per context, reverse-mode autograd on a tape,
 * parameter blocks and Adam/AdamW. CPU backend only (OpenBLAS + OpenMP).
 *
 * What is here (first slice of issue 4):
 *   - mm_ctx arena (reset between steps; repeated shapes allocate nothing),
 *     mm_tensor (opaque) with views: reshape, transpose, slice, contiguous
 *   - ops, forward + backward, f32 and f64: matmul (batched, transposes),
 *     add/sub/mul/div (numpy broadcasting), scale, exp, log, sqrt, tanh,
 *     sigmoid, relu, gelu (erf), sum/mean over an axis, softmax and
 *     log_softmax (last axis), layernorm (last axis), linear, cross-entropy
 *     (integer labels, label smoothing); cast (no grad)
 *   - mm_params: parameters, gradients and Adam state in one block, named
 *   - Adam (L2, torch.optim.Adam) and AdamW (decoupled) steps
 * What is not here yet: the CUDA backend (ops fail with an error for
 *   tensors on MM_CUDA), conv/pooling, Nystrom pinv helpers, concat/gather/
 *   index ops, max/cumsum/cumprod, dropout and RNG, survival and other
 *   losses, RAdam/Lookahead, LR schedules, grad clipping, initialisers,
 *   safetensors I/O (lib/safetensors.c), PyTorch parity fixtures, benchmark.
 *
 * Conventions. Shapes are numpy order: shape[ndim-1] is the innermost,
 * fastest-varying dimension; strides are in elements. A 0-D tensor is a
 * scalar with one element. Ops take F32 or F64 inputs of one dtype and
 * return the same dtype; integer tensors are only labels and storage.
 *
 * Why opaque: a tensor carries its autograd record (op, sources, saved
 * state) and, later, device residency; callers that read fields would
 * break when CUDA moves data off the host (htslib's htsFile warning).
 * Accessors are cheap; mm_tensor_data() gives the host pointer.
 *
 * Errors: an op returns NULL and keeps the first message on its context
 * (mm_ctx_error, also mm_strerror()). An op given a NULL input returns NULL
 * without a new message, so a model can chain ops and check once at the end
 * (OpenSlide's sticky error). Misuse of the API (bad axis index on a tensor
 * the caller built) is an error too, never an abort; OOM aborts.
 *
 * Dispatch: every op checks where its inputs live (mm_tensor_device) and
 * runs the kernel of that backend; only MM_CPU has kernels, so the CUDA
 * backend slots in at those switches without touching model code.
 *
 * Determinism: kernels split work across OpenMP threads only over
 * independent outputs; every sum over a reduced index runs in one thread in
 * a fixed order, so the same inputs and thread count give the same bits.
 * SPDX-License-Identifier: MIT */
#ifndef MM_TENSOR_H
#define MM_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "mm/defs.h"
#include "mm/dtype.h"

#define MM_MAX_DIMS 4

typedef enum { MM_CPU, MM_CUDA } mm_device;

typedef struct mm_ctx mm_ctx;
typedef struct mm_tensor mm_tensor;
typedef struct mm_params mm_params;

// ---- contexts (arena + tape) -----------------------------------------------

/* A context owns every tensor made in it and the tape of ops recorded while
 * grad mode is on. Memory comes from an arena; mm_ctx_reset() forgets every
 * tensor and the tape but keeps the memory (coalesced into one block), so a
 * training step that repeats its shapes allocates nothing after the first. */
mm_ctx *mm_ctx_new(void);
void mm_ctx_free(mm_ctx *ctx); /* NULL is a no-op */
void mm_ctx_reset(mm_ctx *ctx);
/* Turn no-grad mode on (1) or off (0): no tape is recorded while on.
 * @return the previous setting. */
int mm_ctx_no_grad(mm_ctx *ctx, int on);
/* @return the first error since the last reset, or NULL. */
const char *mm_ctx_error(const mm_ctx *ctx);

typedef struct {
    size_t used;       /* bytes handed out since the last reset */
    size_t high_water; /* most bytes ever in use at once */
    size_t capacity;   /* bytes held by the arena */
    size_t n_blocks;   /* blocks ever malloc'd (stops growing once warm) */
} mm_arena_stats;
void mm_ctx_stats(const mm_ctx *ctx, mm_arena_stats *st);

// ---- tensors ---------------------------------------------------------------

/* A new zero-filled contiguous tensor on the CPU. ndim 0..4; shape entries
 * >= 1. @return the tensor, or NULL (bad shape) with the error on ctx. */
mm_tensor *mm_tensor_new(mm_ctx *ctx, mm_dtype dt, int ndim,
                         const int64_t *shape);
/* Shorthand for 1-D, 2-D, 3-D tensors. */
mm_tensor *mm_tensor_new1(mm_ctx *ctx, mm_dtype dt, int64_t n0);
mm_tensor *mm_tensor_new2(mm_ctx *ctx, mm_dtype dt, int64_t n0, int64_t n1);
mm_tensor *mm_tensor_new3(mm_ctx *ctx, mm_dtype dt, int64_t n0, int64_t n1,
                          int64_t n2);

mm_dtype mm_tensor_dtype(const mm_tensor *t);
mm_device mm_tensor_device(const mm_tensor *t);
int mm_tensor_ndim(const mm_tensor *t);
/* Size of dimension I; negative I counts from the end. */
int64_t mm_tensor_dim(const mm_tensor *t, int i);
int64_t mm_tensor_stride(const mm_tensor *t, int i); /* in elements */
int64_t mm_tensor_numel(const mm_tensor *t);
int mm_tensor_is_contiguous(const mm_tensor *t);
/* Host pointer to the first element (views point into their base). */
void *mm_tensor_data(mm_tensor *t);
/* The gradient (a contiguous tensor of the same shape), or NULL before
 * backward reached T or when T does not require grad. */
mm_tensor *mm_tensor_grad(mm_tensor *t);
/* Mark a leaf made in a context as needing its gradient (inputs of a
 * gradient check). Parameters in mm_params always need theirs. */
void mm_tensor_set_requires_grad(mm_tensor *t, int on);
int mm_tensor_requires_grad(const mm_tensor *t);

/* Copy N values from SRC into T in logical (row-major) order, converting
 * to T's dtype (f16 rounds to nearest even; integers truncate).
 * @return 0, or -1 if N != numel. */
int mm_tensor_set_f64(mm_tensor *t, const double *src, int64_t n);
int mm_tensor_get_f64(const mm_tensor *t, double *dst, int64_t n);
void mm_tensor_fill(mm_tensor *t, double v);
/* Element I in logical order, as a double. */
double mm_tensor_get1(const mm_tensor *t, int64_t i);

// ---- views (no copy when the layout allows) --------------------------------

/* New shape with the same number of elements; one entry may be -1. A
 * non-contiguous input is copied first (mm_tensor_contiguous). */
mm_tensor *mm_tensor_reshape(mm_ctx *ctx, mm_tensor *a, int ndim,
                             const int64_t *shape);
/* Swap dimensions D0 and D1 (negative counts from the end): a view. */
mm_tensor *mm_tensor_transpose(mm_ctx *ctx, mm_tensor *a, int d0, int d1);
/* Elements START..START+LEN-1 along DIM: a view. */
mm_tensor *mm_tensor_slice(mm_ctx *ctx, mm_tensor *a, int dim, int64_t start,
                           int64_t len);
/* A contiguous copy, or A itself when already contiguous. */
mm_tensor *mm_tensor_contiguous(mm_ctx *ctx, mm_tensor *a);
/* Convert to DT (any dtypes); not recorded on the tape. */
mm_tensor *mm_tensor_cast(mm_ctx *ctx, mm_tensor *a, mm_dtype dt);

// ---- ops (forward recorded on the tape; backward in mm_tensor_backward) ----

/* C = op(A) op(B), op = transpose when TA/TB. A (..., M, K) or (..., K, M)
 * with TA; B (..., K, N) or (..., N, K) with TB; C (..., M, N). The batch
 * dims of A and B are equal, or one of them is 2-D and is shared. */
mm_tensor *mm_tensor_matmul(mm_ctx *ctx, mm_tensor *a, mm_tensor *b, int ta,
                            int tb);
/* Elementwise with numpy broadcasting (shapes aligned at the last dim). */
mm_tensor *mm_tensor_add(mm_ctx *ctx, mm_tensor *a, mm_tensor *b);
mm_tensor *mm_tensor_sub(mm_ctx *ctx, mm_tensor *a, mm_tensor *b);
mm_tensor *mm_tensor_mul(mm_ctx *ctx, mm_tensor *a, mm_tensor *b);
mm_tensor *mm_tensor_div(mm_ctx *ctx, mm_tensor *a, mm_tensor *b);
mm_tensor *mm_tensor_scale(mm_ctx *ctx, mm_tensor *a, double s);
mm_tensor *mm_tensor_exp(mm_ctx *ctx, mm_tensor *a);
mm_tensor *mm_tensor_log(mm_ctx *ctx, mm_tensor *a);
mm_tensor *mm_tensor_sqrt(mm_ctx *ctx, mm_tensor *a);
mm_tensor *mm_tensor_tanh(mm_ctx *ctx, mm_tensor *a);
mm_tensor *mm_tensor_sigmoid(mm_ctx *ctx, mm_tensor *a);
mm_tensor *mm_tensor_relu(mm_ctx *ctx, mm_tensor *a);
/* 0.5 x (1 + erf(x / sqrt 2)), torch's default (not the tanh form). */
mm_tensor *mm_tensor_gelu(mm_ctx *ctx, mm_tensor *a);
/* Sum / mean over AXIS (negative counts from the end). KEEPDIM keeps it as
 * size 1; otherwise it is dropped (a 1-D input gives a 0-D scalar). */
mm_tensor *mm_tensor_sum(mm_ctx *ctx, mm_tensor *a, int axis, int keepdim);
mm_tensor *mm_tensor_mean(mm_ctx *ctx, mm_tensor *a, int axis, int keepdim);
/* Sum of every element: a 0-D scalar. */
mm_tensor *mm_tensor_sum_all(mm_ctx *ctx, mm_tensor *a);
/* Over the last axis. */
mm_tensor *mm_tensor_softmax(mm_ctx *ctx, mm_tensor *a);
mm_tensor *mm_tensor_log_softmax(mm_ctx *ctx, mm_tensor *a);
/* LayerNorm over the last axis (D): (x - mean) / sqrt(var + eps) * w + b,
 * biased variance as torch. W and B are (D) or NULL. */
mm_tensor *mm_tensor_layernorm(mm_ctx *ctx, mm_tensor *x, mm_tensor *w,
                               mm_tensor *b, double eps);
/* X (..., IN) W^T + B: W (OUT, IN), B (OUT) or NULL (torch nn.Linear). */
mm_tensor *mm_tensor_linear(mm_ctx *ctx, mm_tensor *x, mm_tensor *w,
                            mm_tensor *b);
/* Mean over the batch of cross-entropy: LOGITS (B, C) real, LABELS (B) I32
 * or I64 in [0, C); SMOOTHING in [0, 1) as torch's label_smoothing.
 * @return a 0-D scalar, or NULL (a label out of range is an error). */
mm_tensor *mm_tensor_cross_entropy(mm_ctx *ctx, mm_tensor *logits,
                                   mm_tensor *labels, double smoothing);

/* Seed LOSS's gradient with 1 (it has one element) and run the tape in
 * reverse, accumulating (+=) into every gradient it reaches, parameters'
 * included. @return 0, or -1 with the error on ctx. */
int mm_tensor_backward(mm_ctx *ctx, mm_tensor *loss) MM_RESULT_USED;

// ---- parameters ------------------------------------------------------------

/* A set of named parameters of one dtype (F32, or F64 for checks). Add them
 * all, then mm_params_alloc() carves one zeroed block: every parameter,
 * then every gradient, then Adam's first and second moments, so a
 * checkpoint is a plain save of the named tensors (mm_params_named). */
mm_params *mm_params_new(mm_dtype dt);
void mm_params_free(mm_params *p); /* NULL is a no-op */
/* Declare a parameter. Its data exist only after mm_params_alloc().
 * @return the tensor, or NULL (duplicate name, bad shape, already
 * allocated) with the reason in mm_strerror(). */
mm_tensor *mm_params_add(mm_params *p, const char *name, int ndim,
                         const int64_t *shape);
int mm_params_alloc(mm_params *p) MM_RESULT_USED;
int mm_params_count(const mm_params *p);
mm_tensor *mm_params_get(mm_params *p, int i);
const char *mm_params_name(const mm_params *p, int i);
mm_tensor *mm_params_find(mm_params *p, const char *name); /* or NULL */
int64_t mm_params_numel(const mm_params *p); /* parameters only */
void mm_params_zero_grad(mm_params *p);
/* Every tensor to save, 4 per parameter: "NAME", "NAME.grad",
 * "NAME.exp_avg", "NAME.exp_avg_sq" (torch's state names), I in
 * [0, 4 * count). */
int mm_params_n_named(const mm_params *p);
mm_tensor *mm_params_named(mm_params *p, int i, const char **name);
/* Optimizer steps taken (torch's state "step"); settable for resuming. */
int64_t mm_params_step(const mm_params *p);
void mm_params_set_step(mm_params *p, int64_t step);

// ---- optimizers ------------------------------------------------------------

typedef struct {
    double lr, beta1, beta2, eps, weight_decay;
} mm_adam_opts;
/* torch defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-8, and weight decay
 * 0 for Adam, 1e-2 for AdamW. */
mm_adam_opts mm_adam_defaults(void);
mm_adam_opts mm_adamw_defaults(void);
/* One step over every parameter with its gradient, as torch.optim.Adam
 * (weight decay added to the gradient) and torch.optim.AdamW (decoupled:
 * p *= 1 - lr wd), both with bias correction 1 - beta^t.
 * @return 0, or -1 when P is not allocated. */
int mm_adam_step(mm_params *p, const mm_adam_opts *o);
int mm_adamw_step(mm_params *p, const mm_adam_opts *o);

#endif
