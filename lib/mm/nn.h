/* mm/nn.h: the first model-level modules, built only from the ops of
 * mm/tensor.h (so autograd comes with them): multi-head self-attention, the
 * MLP, the pre-LN transformer block, Nystrom attention (METHODS.md B3) and
 * TransMIL's TransLayer. Not here: dropout inside the modules (eval only;
 * callers add mm_tensor_dropout where training needs it), masks, KV caches,
 * drop-path, whole models (TransMIL, ViT), initialisation (mm/optim.h).
 *
 * A module is a plain struct of parameter pointers into an mm_params,
 * declared by mm_<module>_init under PREFIX with torch's names, so a torch
 * state_dict maps 1:1 ("blocks.0.attn.qkv.weight" ...). Declare every
 * module, then mm_params_alloc(), then load or initialise the data.
 *
 * Shape letters: B batch, N tokens, D model width, H heads, Dh = D / H.
 * Inputs are (B, N, D) of the params' dtype; every forward returns a new
 * (B, N, D) tensor in CTX, or NULL with the error on CTX (a NULL input
 * gives NULL without a new message, as the ops).
 * SPDX-License-Identifier: MIT */
#ifndef MM_NN_H
#define MM_NN_H

#include "mm/defs.h"
#include "mm/tensor.h"

/* Longest PREFIX + parameter name accepted by the init calls. */
#define MM_NN_NAME_MAX 256

// ---- multi-head self-attention (timm Attention, torch names) ---------------

/* qkv = Linear(D -> 3D, bias QKV_BIAS); q, k, v = the three D-wide column
 * blocks, each split into H heads of Dh; att = softmax(q k^T / sqrt(Dh));
 * y = att v, heads merged; proj = Linear(D -> D, bias).
 * Parameters: PREFIX.qkv.weight (3D, D), PREFIX.qkv.bias (3D) when
 * QKV_BIAS, PREFIX.proj.weight (D, D), PREFIX.proj.bias (D). */
typedef struct {
    int dim, heads;
    mm_tensor *qkv_w, *qkv_b; /* qkv_b NULL without bias */
    mm_tensor *proj_w, *proj_b;
} mm_mha;
/* @return 0, or -1 (D not divisible by H, name too long, duplicate) with
 * the reason in mm_strerror(). */
int mm_mha_init(mm_mha *m, mm_params *p, const char *prefix, int dim,
                int heads, int qkv_bias) MM_RESULT_USED;
mm_tensor *mm_mha_forward(mm_ctx *ctx, const mm_mha *m, mm_tensor *x);

// ---- MLP (timm Mlp) --------------------------------------------------------

/* fc2(gelu(fc1(x))), GELU the erf form. Parameters: PREFIX.fc1.weight
 * (HIDDEN, D), PREFIX.fc1.bias (HIDDEN), PREFIX.fc2.weight (D, HIDDEN),
 * PREFIX.fc2.bias (D). */
typedef struct {
    int dim, hidden;
    mm_tensor *fc1_w, *fc1_b, *fc2_w, *fc2_b;
} mm_mlp;
int mm_mlp_init(mm_mlp *m, mm_params *p, const char *prefix, int dim,
                int hidden) MM_RESULT_USED;
mm_tensor *mm_mlp_forward(mm_ctx *ctx, const mm_mlp *m, mm_tensor *x);

// ---- pre-LN transformer block (timm Block) ---------------------------------

/* x = x + attn(norm1(x)); x = x + mlp(norm2(x)), LayerNorm with EPS
 * (torch 1e-5, timm ViT 1e-6). Parameters: PREFIX.norm1.{weight,bias},
 * PREFIX.attn.*, PREFIX.norm2.{weight,bias}, PREFIX.mlp.*. */
typedef struct {
    double eps;
    mm_tensor *norm1_w, *norm1_b, *norm2_w, *norm2_b;
    mm_mha attn;
    mm_mlp mlp;
} mm_block;
int mm_block_init(mm_block *b, mm_params *p, const char *prefix, int dim,
                  int heads, int mlp_hidden, int qkv_bias,
                  double eps) MM_RESULT_USED;
mm_tensor *mm_block_forward(mm_ctx *ctx, const mm_block *b, mm_tensor *x);

// ---- Nystrom attention (lucidrains nystrom-attention 0.0.14, B3) ----------

/* For x (B, N, D): left-pad with zero rows to N' = M l, l = ceil(N / M);
 * q, k, v = to_qkv(x) (no bias), split into H heads; q *= Dh^-1/2;
 * landmarks = means of consecutive groups of l rows of q and k;
 * A1 = softmax(q kl^T), A2 = softmax(ql kl^T), A3 = softmax(ql k^T);
 * A2+ by PINV_ITERS Moore-Penrose steps from
 * z0 = A2^T / (max colsum|A2| * max rowsum|A2|) (maxima over the whole
 * tensor); out = (A1 A2+)(A3 v) + depthwise conv (K, 1) of v per head
 * (when RES_KERNEL > 0); heads merged, to_out (bias), out[:, -N:] (the
 * fixed version; PAD_BUG 1 takes out[:, :N] as <= 0.0.9 and official
 * TransMIL did). Parameters: PREFIX.to_qkv.weight (3 H Dh, D),
 * PREFIX.to_out.0.weight (D, H Dh), PREFIX.to_out.0.bias (D),
 * PREFIX.res_conv.weight (H, 1, K, 1). */
typedef struct {
    int dim, heads, dim_head, landmarks, pinv_iters, res_kernel, pad_bug;
    mm_tensor *qkv_w, *out_w, *out_b, *res_w; /* res_w NULL without conv */
} mm_nystrom;
int mm_nystrom_init(mm_nystrom *m, mm_params *p, const char *prefix,
                    int dim, int heads, int dim_head, int landmarks,
                    int pinv_iters, int res_kernel) MM_RESULT_USED;
mm_tensor *mm_nystrom_forward(mm_ctx *ctx, const mm_nystrom *m,
                              mm_tensor *x);
/* Rows [R0, R0 + NR) of mm_nystrom_forward(X), (B, NR, D), computed alone:
 * k, v, the landmarks and A2+ (A3 v) still need every row of x, but q is
 * made for those rows and the landmarks only (the q landmarks as to_q of
 * the means of x), and A1, the residual conv, to_out and the gradients
 * through them run on those rows only (TransMIL's last layer feeds only
 * its cls row on). Equal to the rows of the whole output up to rounding. */
mm_tensor *mm_nystrom_forward_rows(mm_ctx *ctx, const mm_nystrom *m,
                                   mm_tensor *x, int64_t r0, int64_t nr);
/* The Moore-Penrose iteration alone, for A (..., M, M) with batch dims
 * of at most 2 (B, H): as moore_penrose_iter_pinv in nystrom_attention. */
mm_tensor *mm_nn_pinv(mm_ctx *ctx, mm_tensor *a, int iters);

// ---- TransMIL TransLayer ----------------------------------------------------

/* x + attn(norm(x)), LayerNorm eps 1e-5, no FFN (METHODS.md B4).
 * Parameters: PREFIX.norm.{weight,bias}, PREFIX.attn.* (mm_nystrom). */
typedef struct {
    double eps;
    mm_tensor *norm_w, *norm_b;
    mm_nystrom attn;
} mm_translayer;
int mm_translayer_init(mm_translayer *t, mm_params *p, const char *prefix,
                       int dim, int heads, int landmarks,
                       int pinv_iters) MM_RESULT_USED;
mm_tensor *mm_translayer_forward(mm_ctx *ctx, const mm_translayer *t,
                                 mm_tensor *x);

#endif
