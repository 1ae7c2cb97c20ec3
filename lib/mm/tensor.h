/* mm/tensor.h: dense tensors (f32 compute, f64 reference, f16/u8/i32/i64
 * storage) up to 4-D, an arena per context, reverse-mode autograd on a tape,
 * parameter blocks and Adam/AdamW. CPU backend (OpenBLAS + OpenMP) and a
 * CUDA one (f32, cuBLAS and our kernels).
 *
 * What is here (issue 4):
 *   - mm_ctx arena (reset between steps; repeated shapes allocate nothing),
 *     mm_tensor (opaque) with views: reshape, transpose, slice, contiguous
 *   - ops, forward + backward, f32 and f64: matmul (batched, transposes),
 *     add/sub/mul/div (numpy broadcasting), scale, exp, log, sqrt, tanh,
 *     sigmoid, relu, gelu (erf), sum/mean over an axis, softmax and
 *     log_softmax (any axis), layernorm (last axis), linear, cross-entropy
 *     (integer labels, label smoothing); cast (no grad)
 *   - elementwise neg, abs, clamp, rsqrt, square, elu, silu, softplus; max
 *     over an axis; cumsum and cumprod over an axis
 *   - concat, index_select, gather, repeat, zero pad along a dimension
 *   - dropout and alpha dropout with a counter-based RNG (splitmix64)
 *   - depthwise conv1d (Nystrom residual) and conv2d (TransMIL PPEG)
 *   - discrete-time survival NLL (PORPOISE) and Cox partial likelihood
 *     (inclusive or strict risk set)
 *   - inference only (no backward, error in grad mode): dense conv2d
 *     (im2col + BLAS), BatchNorm folding into a conv, max_pool2d, global
 *     average pooling (adaptive_avg_pool2d to 1x1): the ResNet-50 trunk
 *   - PyTorch parity fixtures (tests/gen/loss_refs.py, t-losses.c): every
 *     loss here (cross-entropy, survival NLL, Cox) with its gradient, and
 *     the inference ops above
 *   - mm_params: parameters, gradients and Adam state in one block, named
 *   - Adam (L2, torch.optim.Adam) and AdamW (decoupled) steps
 *   - the CUDA backend (issue 11, lib/cuda/ops.cu), f32: tensors moved
 *     with mm_tensor_to_device (recorded, so gradients flow back to CPU
 *     parameters); on CUDA, forward and backward: views and contiguous,
 *     matmul and linear (cuBLAS; TF32 by mm_cuda_tf32), add/sub/mul/div
 *     with broadcasting, scale, neg, exp, log, sqrt, rsqrt, tanh, sigmoid,
 *     relu, gelu, elu, silu, softplus, abs, clamp, square, sum/mean/max
 *     over an axis, sum_all, softmax/log_softmax (any axis), layernorm,
 *     cross-entropy, cumsum/cumprod, concat, index_select, gather,
 *     repeat, pad, dropout and alpha dropout (the CPU's masks bit for
 *     bit), depthwise conv1d/conv2d, surv_nll and cox_nll (index, label,
 *     time and event tensors stay on the CPU; Cox's sort and sums run on
 *     the host from a copy of the B risks, in the CPU's double
 *     arithmetic), cast to f32; inference only: dense conv2d (im2col
 *     kernel + cuBLAS), max_pool2d, global_avg_pool2d. bn_fold is host
 *     only (fold, then move the weights); f64 is refused on CUDA.
 * What is not here yet: backward of dense conv and pooling (training a
 *   CNN), grouped or dilated conv, ceil-mode pooling, BatchNorm in
 *   training mode, Nystrom pinv helpers, L2 normalize, RMSNorm, other
 *   losses (BCE, InfoNCE, triplet, KL, MSE/L1), argsort/argmax and
 *   sampling, benchmark.
 *   Named-tensor files are lib/safetensors.c (mm/safetensors.h); optimizer
 *   extras, schedules and initialisers live in lib/optim.c (mm/optim.h).
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
 * runs the kernel of that backend: inputs on two devices are an error (no
 * silent copies); index, label, time and event tensors stay on the CPU
 * (they are read on the host) even when the op's data are on CUDA. A
 * CUDA tensor's memory comes from its context's device arena (plain
 * cudaMalloc blocks, reused after mm_ctx_reset like the host arena);
 * mm_tensor_data() of one is a device pointer, and the element accessors
 * (set_f64, get_f64, get1, fill) copy through the host. CUDA kernels run
 * in order on the default stream; a copy back waits for them. Parity with
 * the CPU (t-tensor-cuda): the kernels do the CPU loops' arithmetic in the
 * same order, so elementwise ops agree to ~1e-6 relative, reductions too;
 * cuBLAS matmuls sum in another order (~1e-5 relative in f32; TF32 off by
 * default).
 *
 * Determinism: our own kernels (everything but the BLAS calls) split work
 * across OpenMP threads only over independent outputs; every sum over a
 * reduced index runs in one thread in a fixed order, so their bits depend
 * on the inputs alone, not on the thread count (t-tensor checks 1 against
 * 4 threads on such a chain). The BLAS calls are the exception: matmul,
 * linear and dense conv2d go to OpenBLAS sgemm/dgemm. Its threaded level-3
 * driver (driver/level3/level3_thread.c) splits C over M and N and blocks
 * K the same way (GEMM_Q) in every thread, so it does not split one dot
 * product across threads; but the thread count decides whether a call
 * runs threaded at all and where the M/N partitions fall, hence which
 * micro-kernel (full tile or edge) computes an element, and OpenBLAS
 * promises no bit-equality across thread counts (nor across CPUs picked by
 * DYNAMIC_ARCH). So a different OPENBLAS_NUM_THREADS (or OMP_NUM_THREADS
 * for an OpenMP build) may change the last bits of any result downstream
 * of a matmul; the same inputs, build, CPU and thread counts give the same
 * bits. The tests that compare bits either stay in one process (one thread
 * count) or avoid BLAS ops; to compare bits of separate runs that use
 * matmul, fix OPENBLAS_NUM_THREADS (and OMP_NUM_THREADS) for both.
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
/* Pointer to the first element (views point into their base): host
 * memory, or device memory for a tensor on MM_CUDA. */
void *mm_tensor_data(mm_tensor *t);
/* The gradient (a contiguous tensor of the same shape), or NULL before
 * backward reached T or when T does not require grad. For a reshape or
 * contiguous copy T of a tensor A, or T = A + B or A - B with A of T's
 * size, backward may hand T's gradient buffer on to A when A is not a
 * parameter: after backward, T's gradient then holds A's (T's plus A's
 * other uses). Parameters and leaves read as documented. */
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

// ---- devices ---------------------------------------------------------------

/* @return the number of CUDA devices (> 0), or 0 with the reason in WHY
 * (N bytes; may be NULL): no device, or a build without the backend. */
int mm_cuda_available(char *why, size_t n);
/* cuBLAS matmuls on CUDA in TF32 (1: faster, ~1e-3 relative) or full f32
 * (0, the default). Process-wide. @return the previous setting. */
int mm_cuda_tf32(int on);
/* A on DEV: A itself when already there, else a contiguous copy on DEV,
 * recorded on the tape (backward copies the gradient back and adds it).
 * CUDA holds f32 only. @return NULL with one line on ctx when no GPU, a
 * build without CUDA, or another dtype. */
mm_tensor *mm_tensor_to_device(mm_ctx *ctx, mm_tensor *a, mm_device dev);

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
/* BETA C + ALPHA op(A) op(B) in one GEMM pass (BLAS's own alpha and
 * beta): C is (M, N), shared by every matrix of a batch, or the product's
 * shape; C NULL: ALPHA op(A) op(B). The Moore-Penrose steps of Nystrom
 * attention (15I - xz t, ...) use it. On CUDA it is the composition of
 * matmul, scale and add. */
mm_tensor *mm_tensor_addmm(mm_ctx *ctx, mm_tensor *c, mm_tensor *a,
                           mm_tensor *b, int ta, int tb, double alpha,
                           double beta);
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
/* Softmax / log-softmax over AXIS (negative counts from the end; ABMIL's
 * attention softmaxes over N, axis 0 of its (N, 1) or 1 of (1, N) scores).
 * The plain forms are over the last axis (AXIS -1). Any axis runs the same
 * kernel: a row's LEN values are read at its stride, never transposed. */
mm_tensor *mm_tensor_softmax_axis(mm_ctx *ctx, mm_tensor *a, int axis);
mm_tensor *mm_tensor_log_softmax_axis(mm_ctx *ctx, mm_tensor *a, int axis);
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

/* Elementwise, torch's definitions. clamp: gradient 1 where lo <= x <= hi,
 * else 0 (either bound may be infinite; lo > hi is an error). elu:
 * x > 0 ? x : alpha (exp(x) - 1). silu: x sigmoid(x). softplus: torch's
 * beta 1, threshold 20 (x above 20 passes through). abs: gradient 0 at 0. */
mm_tensor *mm_tensor_neg(mm_ctx *ctx, mm_tensor *a);
mm_tensor *mm_tensor_abs(mm_ctx *ctx, mm_tensor *a);
mm_tensor *mm_tensor_clamp(mm_ctx *ctx, mm_tensor *a, double lo, double hi);
mm_tensor *mm_tensor_rsqrt(mm_ctx *ctx, mm_tensor *a);
mm_tensor *mm_tensor_square(mm_ctx *ctx, mm_tensor *a); /* pow2 */
mm_tensor *mm_tensor_elu(mm_ctx *ctx, mm_tensor *a, double alpha);
mm_tensor *mm_tensor_silu(mm_ctx *ctx, mm_tensor *a);
mm_tensor *mm_tensor_softplus(mm_ctx *ctx, mm_tensor *a);
/* Max over AXIS, KEEPDIM as mm_tensor_sum; the gradient goes to the first
 * index holding the maximum. */
mm_tensor *mm_tensor_max(mm_ctx *ctx, mm_tensor *a, int axis, int keepdim);
/* Inclusive running sum / product along AXIS; same shape. cumprod's
 * backward never divides by x, so zeros in x are fine. */
mm_tensor *mm_tensor_cumsum(mm_ctx *ctx, mm_tensor *a, int axis);
mm_tensor *mm_tensor_cumprod(mm_ctx *ctx, mm_tensor *a, int axis);

/* The N tensors TS joined along DIM: one dtype and rank, equal sizes in
 * every other dimension. */
mm_tensor *mm_tensor_concat(mm_ctx *ctx, int n, mm_tensor *const *ts,
                            int dim);
/* Rows of A along DIM picked by INDEX (1-D, i32 or i64, repeats allowed):
 * the output has INDEX's length in DIM. Backward scatter-adds. An index
 * outside [0, size) is an error. */
mm_tensor *mm_tensor_index_select(mm_ctx *ctx, mm_tensor *a, int dim,
                                  mm_tensor *index);
/* torch.gather: INDEX (i32/i64) has A's rank, sizes <= A's in every dim
 * but DIM; out[..i..] = A[..index[..i..] in DIM..], shape of INDEX. */
mm_tensor *mm_tensor_gather(mm_ctx *ctx, mm_tensor *a, int dim,
                            mm_tensor *index);
/* torch's .repeat: NREP counts (>= A's rank, <= 4; A is padded with
 * leading 1s); dimension i of the output is size_i * reps[i]. */
mm_tensor *mm_tensor_repeat(mm_ctx *ctx, mm_tensor *a, int nrep,
                            const int64_t *reps);
/* FRONT zeros before and BACK zeros after A along DIM (Nystrom's front
 * pad of x (B, n, D) to a multiple of m: mm_tensor_pad(ctx, x, 1,
 * (m - n % m) % m, 0)); always a new tensor. */
mm_tensor *mm_tensor_pad(mm_ctx *ctx, mm_tensor *a, int dim, int64_t front,
                         int64_t back);

/* The counter-based RNG behind dropout: output I (from 0) of splitmix64
 * started at SEED, as a double in [0, 1) (top 53 bits). A mask element
 * depends only on (SEED, its logical index), never on the thread count;
 * give each dropout site and step its own seed. */
double mm_rand_u01(uint64_t seed, uint64_t i);
/* Training-mode dropout as torch: element i is kept when
 * mm_rand_u01(SEED, i) >= P and scaled by 1 / (1 - P); P = 1 gives zeros.
 * alpha_dropout as torch's AlphaDropout (SNN): kept x -> a x + A a P,
 * dropped -> A a (P - 1), A = 1.7580993408473766,
 * a = 1 / sqrt((A^2 P + 1)(1 - P)). With P = 0 or TRAIN = 0 both return
 * X itself (eval). No-grad mode does not switch training off: pass TRAIN. */
mm_tensor *mm_tensor_dropout(mm_ctx *ctx, mm_tensor *x, double p,
                             uint64_t seed, int train);
mm_tensor *mm_tensor_alpha_dropout(mm_ctx *ctx, mm_tensor *x, double p,
                                   uint64_t seed, int train);

/* softmax(SCALE Q K^T) V, fused and blocked (flash-attention style on the
 * CPU): Q (..., M, D), K (..., N, D), V (..., N, Dv) with equal batch dims
 * (0 to 2 of them); the result is (..., M, Dv). The softmax is over N.
 * Inputs may be strided views (the last dimension must have stride 1, else
 * they are copied). The M x N scores are never kept: the forward saves
 * each row's max and normaliser, and the backward recomputes each block of
 * probabilities. The forward splits (batch, block of query rows) over the
 * threads; the backward splits over the batch (each batch item's blocks in
 * order, so dK and dV sum in a fixed order), and with fewer batch items
 * than threads runs them one by one on threaded BLAS. Except in that last
 * case every GEMM runs on one BLAS thread, so the bits do not depend on
 * the thread count. On CUDA it is the composition matmul, scale, softmax,
 * matmul. */
mm_tensor *mm_tensor_attention(mm_ctx *ctx, mm_tensor *q, mm_tensor *k,
                               mm_tensor *v, double scale);
/* Depthwise 1-D convolution along L, no bias, zero padding K/2 each side
 * (K odd, so the length is kept): X (B, C, L) or (B, C, L, D), W (C, K);
 * y[b,c,i,d] = sum_k W[c,k] X[b,c,i+k-K/2,d]. The 4-D form is Nystrom's
 * residual Conv2d(h, h, (K, 1), groups=h) on v (B, h, n, dh) as is. */
mm_tensor *mm_tensor_conv1d_dw(mm_ctx *ctx, mm_tensor *x, mm_tensor *w);
/* Depthwise 2-D convolution, stride 1, zero padding k/2 (k odd): X
 * (B, C, H, W), W (C, k, k), B (C) or NULL: torch's Conv2d(C, C, k, 1,
 * k // 2, groups=C) (TransMIL PPEG). */
mm_tensor *mm_tensor_conv2d_dw(mm_ctx *ctx, mm_tensor *x, mm_tensor *w,
                               mm_tensor *b);

/* Inference only (ResNet-50 trunk, METHODS.md B2): no backward. They
 * record nothing on the tape; in grad mode an input that requires grad
 * (parameters always do) is an error ("inference only"), so run them
 * under mm_ctx_no_grad(ctx, 1). A missing gradient never passes silently.
 *
 * Dense 2-D convolution as torch's F.conv2d (groups 1, dilation 1, zero
 * padding): X (N, C, H, W), W (O, C, kh, kw), B (O) or NULL; stride SH, SW
 * >= 1 and padding PH, PW >= 0 per side; output (N, O, OH, OW),
 * OH = (H + 2 PH - kh) / SH + 1 (floor). im2col + one sgemm/dgemm per
 * image (a 1x1, stride 1, unpadded conv skips im2col); the im2col buffer,
 * C kh kw x OH OW values, comes from the arena. */
mm_tensor *mm_tensor_conv2d(mm_ctx *ctx, mm_tensor *x, mm_tensor *w,
                            mm_tensor *b, int sh, int sw, int ph, int pw);
/* Fold an eval-mode BatchNorm that follows a conv into the conv, in place:
 * s = GAMMA / sqrt(VAR + EPS), W[o, ...] *= s[o], B[o] = (B[o] - MEAN[o])
 * s[o] + BETA[o]. W (O, ...) and B (O) are real (F32/F64) CPU tensors (zero
 * B first for a conv without bias); MEAN, VAR, GAMMA, BETA are (O) of any
 * dtype, GAMMA / BETA NULL for affine=False (1 / 0). Computed in double.
 * Then conv2d(x, W, B) = batch_norm(conv2d(x, W0, B0)) (torch's
 * fuse_conv_bn_weights). Not an op: no context, nothing recorded.
 * @return 0, or -1 with the reason in mm_strerror(). */
int mm_tensor_bn_fold(mm_tensor *w, mm_tensor *b, const mm_tensor *mean,
                      const mm_tensor *var, const mm_tensor *gamma,
                      const mm_tensor *beta, double eps);
/* torch's F.max_pool2d(x, K, STRIDE, PAD) (dilation 1, floor mode):
 * X (N, C, H, W); padding counts as -inf, so it never wins; a NaN in a
 * window wins (torch). 0 <= PAD <= K / 2, as torch requires. */
mm_tensor *mm_tensor_max_pool2d(mm_ctx *ctx, mm_tensor *x, int k, int stride,
                                int pad);
/* torch's F.adaptive_avg_pool2d(x, 1): X (N, C, H, W) -> (N, C, 1, 1), the
 * mean of each plane (summed in a fixed order in the input's dtype). */
mm_tensor *mm_tensor_global_avg_pool2d(mm_ctx *ctx, mm_tensor *x);

/* Discrete-time survival NLL (PORPOISE nll_loss, METHODS.md B9): LOGITS
 * (B, T) -> h = sigmoid, S = cumprod(1 - h), S_pad = [1, S]; Y (B) bin
 * labels i32/i64 in [0, T); C (B) censorship, 1 = censored (PORPOISE's
 * convention; MIRROR passes 1 - its flag), any dtype. Per sample
 * unc = -(1 - c)(log max(S_pad[y], eps) + log max(h[y], eps)),
 * cen = -c log max(S_pad[y + 1], eps); loss = mean over the batch of
 * (1 - ALPHA)(unc + cen) + ALPHA unc. PORPOISE: alpha 0, eps 1e-7.
 * @return a 0-D scalar (built from recorded ops), or NULL. */
mm_tensor *mm_tensor_surv_nll(mm_ctx *ctx, mm_tensor *logits, mm_tensor *y,
                              mm_tensor *c, double alpha, double eps);

/* Divisor of the Cox loss: number of events (POMP Eq. 15), batch size
 * (Pathomic Fusion / PORPOISE CoxSurvLoss), events + 1 (MMAE-HIMO). */
typedef enum {
    MM_COX_MEAN_EVENTS, MM_COX_MEAN_ALL, MM_COX_EVENTS_PLUS1
} mm_cox_norm;
/* Cox negative partial log-likelihood, Breslow ties, inclusive risk set:
 * -(1/N) sum over events i of (theta_i - log sum_{t_j >= t_i} e^theta_j).
 * THETA (B) or (B, 1) real; TIME and EVENT (B values, any dtype; EVENT
 * non-zero = observed). With no events the loss is 0 (gradient 0).
 * @return a 0-D scalar, or NULL. */
mm_tensor *mm_tensor_cox_nll(mm_ctx *ctx, mm_tensor *theta, mm_tensor *time,
                             mm_tensor *event, mm_cox_norm norm);
/* The risk set R(i) of the Cox loss (METHODS.md B10). INCLUSIVE:
 * {j: t_j >= t_i}, Breslow ties (Pathomic Fusion, PORPOISE, MMAE-HIMO;
 * the default). STRICT: {j: t_j > t_i}, POMP Eq. 15. */
typedef enum { MM_COX_INCLUSIVE, MM_COX_STRICT } mm_cox_risk;
/* mm_tensor_cox_nll with the risk set chosen:
 * -(1/N) sum over counted events i of
 * (theta_i - log sum_{j in R(i)} e^theta_j). With STRICT, an event whose
 * risk set is empty (tied at the largest time of the batch) is skipped,
 * as if censored: it adds no term, is not counted among the events of
 * MM_COX_MEAN_EVENTS / MM_COX_EVENTS_PLUS1, and its theta gets gradient
 * only as a member of other events' risk sets. mm_tensor_cox_nll(...) is
 * mm_tensor_cox_nll_ex(..., MM_COX_INCLUSIVE). */
mm_tensor *mm_tensor_cox_nll_ex(mm_ctx *ctx, mm_tensor *theta,
                                mm_tensor *time, mm_tensor *event,
                                mm_cox_norm norm, mm_cox_risk risk);

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
