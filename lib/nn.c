/* nn.c: model-level modules (attention, MLP, pre-LN block, Nystrom
 * attention, TransLayer) composed from mm/tensor.h ops; their backward is
 * the ops' backward on the tape. No kernels of its own, no dropout.
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "mm/nn.h"

// ---- helpers ---------------------------------------------------------------

/* Declare PREFIX.NAME (or NAME when PREFIX is empty) in P. */
static mm_tensor *padd(mm_params *p, const char *prefix, const char *name,
                       int nd, const int64_t *shape)
{
    char full[MM_NN_NAME_MAX];
    int n = prefix && *prefix
                ? snprintf(full, sizeof full, "%s.%s", prefix, name)
                : snprintf(full, sizeof full, "%s", name);
    if (n < 0 || (size_t)n >= sizeof full) {
        mm__set_error("nn: parameter name %s.%s longer than %d", prefix, name,
                      MM_NN_NAME_MAX - 1);
        return NULL;
    }
    return mm_params_add(p, full, nd, shape);
}

/* PREFIX.SUB into BUF (for nested modules); -1 when too long. */
static int subname(char *buf, const char *prefix, const char *sub)
{
    int n = prefix && *prefix
                ? snprintf(buf, MM_NN_NAME_MAX, "%s.%s", prefix, sub)
                : snprintf(buf, MM_NN_NAME_MAX, "%s", sub);
    if (n < 0 || n >= MM_NN_NAME_MAX) {
        mm__set_error("nn: module name %s.%s longer than %d", prefix, sub,
                      MM_NN_NAME_MAX - 1);
        return -1;
    }
    return 0;
}

/* X (B, N, 3 W) (q, k, v side by side) as three head views
 * (B, H, N, W / H): one reshape to (B, N, 3 H, W / H), then a slice and a
 * transpose each; strided views, no copies, and one gradient buffer for
 * the reshape in backward. */
static void split_heads(mm_ctx *ctx, mm_tensor *x, int64_t w, int h,
                        mm_tensor *out[3])
{
    out[0] = out[1] = out[2] = NULL;
    if (!x) return;
    int64_t b = mm_tensor_dim(x, 0), n = mm_tensor_dim(x, 1);
    mm_tensor *r = mm_tensor_reshape(ctx, x, 4, (int64_t[]){b, n, 3 * h, w / h});
    for (int i = 0; i < 3; i++)
        out[i] = mm_tensor_transpose(ctx, mm_tensor_slice(ctx, r, 2, i * h, h),
                                     1, 2);
}

/* Y (B, R, H Dh) as the head view (B, H, R, Dh): a reshape and a
 * transpose, no copy. */
static mm_tensor *head_view(mm_ctx *ctx, mm_tensor *y, int64_t h)
{
    if (!y) return NULL;
    int64_t b = mm_tensor_dim(y, 0), r = mm_tensor_dim(y, 1),
            dh = mm_tensor_dim(y, 2) / h;
    y = mm_tensor_reshape(ctx, y, 4, (int64_t[]){b, r, h, dh});
    return mm_tensor_transpose(ctx, y, 1, 2);
}

/* (B, H, N, Dh) -> (B, N, H Dh). */
static mm_tensor *merge_heads(mm_ctx *ctx, mm_tensor *y)
{
    if (!y) return NULL;
    int64_t b = mm_tensor_dim(y, 0), h = mm_tensor_dim(y, 1),
            n = mm_tensor_dim(y, 2), dh = mm_tensor_dim(y, 3);
    y = mm_tensor_transpose(ctx, y, 1, 2);
    return mm_tensor_reshape(ctx, y, 3, (int64_t[]){b, n, h * dh});
}

static int check_x(const mm_tensor *x, int dim, const char *who)
{
    if (!x) return -1;
    if (mm_tensor_ndim(x) != 3 || mm_tensor_dim(x, 2) != dim) {
        mm__set_error("%s: input must be (B, N, %d), got %d-D with last "
                      "size %lld", who, dim, mm_tensor_ndim(x),
                      (long long)mm_tensor_dim(x, -1));
        return -1;
    }
    return 0;
}

// ---- multi-head self-attention ---------------------------------------------

int mm_mha_init(mm_mha *m, mm_params *p, const char *prefix, int dim,
                int heads, int qkv_bias)
{
    memset(m, 0, sizeof *m);
    if (dim < 1 || heads < 1 || dim % heads) {
        mm__set_error("mha: dim %d is not a positive multiple of heads %d",
                      dim, heads);
        return -1;
    }
    m->dim = dim;
    m->heads = heads;
    m->qkv_w = padd(p, prefix, "qkv.weight", 2, (int64_t[]){3 * dim, dim});
    if (!m->qkv_w) return -1;
    if (qkv_bias &&
        !(m->qkv_b = padd(p, prefix, "qkv.bias", 1, (int64_t[]){3 * dim})))
        return -1;
    m->proj_w = padd(p, prefix, "proj.weight", 2, (int64_t[]){dim, dim});
    m->proj_b = padd(p, prefix, "proj.bias", 1, (int64_t[]){dim});
    return m->proj_w && m->proj_b ? 0 : -1;
}

mm_tensor *mm_mha_forward(mm_ctx *ctx, const mm_mha *m, mm_tensor *x)
{
    if (check_x(x, m->dim, "mha")) return NULL;
    int64_t dh = m->dim / m->heads;
    mm_tensor *qkv = mm_tensor_linear(ctx, x, m->qkv_w, m->qkv_b);
    mm_tensor *hd[3];
    split_heads(ctx, qkv, m->dim, m->heads, hd);
    mm_tensor *q = hd[0], *k = hd[1], *v = hd[2];
    /* softmax(q k^T / sqrt(dh)) v, fused: no (B, H, N, N) on the tape */
    mm_tensor *y = merge_heads(
        ctx, mm_tensor_attention(ctx, q, k, v, 1 / sqrt((double)dh)));
    return mm_tensor_linear(ctx, y, m->proj_w, m->proj_b);
}

// ---- MLP -------------------------------------------------------------------

int mm_mlp_init(mm_mlp *m, mm_params *p, const char *prefix, int dim,
                int hidden)
{
    memset(m, 0, sizeof *m);
    m->dim = dim;
    m->hidden = hidden;
    m->fc1_w = padd(p, prefix, "fc1.weight", 2, (int64_t[]){hidden, dim});
    if (!m->fc1_w) return -1;
    m->fc1_b = padd(p, prefix, "fc1.bias", 1, (int64_t[]){hidden});
    if (!m->fc1_b) return -1;
    m->fc2_w = padd(p, prefix, "fc2.weight", 2, (int64_t[]){dim, hidden});
    if (!m->fc2_w) return -1;
    m->fc2_b = padd(p, prefix, "fc2.bias", 1, (int64_t[]){dim});
    return m->fc2_b ? 0 : -1;
}

mm_tensor *mm_mlp_forward(mm_ctx *ctx, const mm_mlp *m, mm_tensor *x)
{
    mm_tensor *h = mm_tensor_gelu(ctx, mm_tensor_linear(ctx, x, m->fc1_w, m->fc1_b));
    return mm_tensor_linear(ctx, h, m->fc2_w, m->fc2_b);
}

// ---- pre-LN block ----------------------------------------------------------

int mm_block_init(mm_block *b, mm_params *p, const char *prefix, int dim,
                  int heads, int mlp_hidden, int qkv_bias, double eps)
{
    char sub[MM_NN_NAME_MAX];
    memset(b, 0, sizeof *b);
    b->eps = eps;
    const int64_t d1[1] = {dim};
    if (!(b->norm1_w = padd(p, prefix, "norm1.weight", 1, d1))) return -1;
    if (!(b->norm1_b = padd(p, prefix, "norm1.bias", 1, d1))) return -1;
    if (subname(sub, prefix, "attn") ||
        mm_mha_init(&b->attn, p, sub, dim, heads, qkv_bias))
        return -1;
    if (!(b->norm2_w = padd(p, prefix, "norm2.weight", 1, d1))) return -1;
    if (!(b->norm2_b = padd(p, prefix, "norm2.bias", 1, d1))) return -1;
    if (subname(sub, prefix, "mlp") ||
        mm_mlp_init(&b->mlp, p, sub, dim, mlp_hidden))
        return -1;
    return 0;
}

mm_tensor *mm_block_forward(mm_ctx *ctx, const mm_block *b, mm_tensor *x)
{
    mm_tensor *h = mm_tensor_layernorm(ctx, x, b->norm1_w, b->norm1_b, b->eps);
    x = mm_tensor_add(ctx, x, mm_mha_forward(ctx, &b->attn, h));
    h = mm_tensor_layernorm(ctx, x, b->norm2_w, b->norm2_b, b->eps);
    return mm_tensor_add(ctx, x, mm_mlp_forward(ctx, &b->mlp, h));
}

// ---- Nystrom attention -----------------------------------------------------

/* max over every element of A, as a 0-D tensor. */
static mm_tensor *max_all(mm_ctx *ctx, mm_tensor *a)
{
    mm_tensor *flat = mm_tensor_reshape(ctx, a, 1, (int64_t[]){-1});
    return mm_tensor_max(ctx, flat, 0, 0);
}

mm_tensor *mm_nn_pinv(mm_ctx *ctx, mm_tensor *a, int iters)
{
    if (!a) return NULL;
    int64_t m = mm_tensor_dim(a, -1);
    mm_tensor *eye[3];
    static const double c[3] = {7, 15, 13};
    for (int j = 0; j < 3; j++) {
        eye[j] = mm_tensor_new2(ctx, mm_tensor_dtype(a), m, m);
        if (!eye[j]) return NULL;
        for (int64_t i = 0; i < m; i++) {
            double *d64 = NULL;
            float *d32 = NULL;
            if (mm_tensor_dtype(a) == MM_F64) d64 = mm_tensor_data(eye[j]);
            else d32 = mm_tensor_data(eye[j]);
            if (d64) d64[i * m + i] = c[j];
            else if (d32) d32[i * m + i] = (float)c[j];
        }
    }
    mm_tensor *abs_a = mm_tensor_abs(ctx, a);
    mm_tensor *col = max_all(ctx, mm_tensor_sum(ctx, abs_a, -1, 0));
    mm_tensor *row = max_all(ctx, mm_tensor_sum(ctx, abs_a, -2, 0));
    mm_tensor *z = mm_tensor_div(ctx, mm_tensor_transpose(ctx, a, -1, -2),
                                 mm_tensor_mul(ctx, col, row));
    /* each step z = 0.25 z (13I - xz (15I - xz (7I - xz))): the
     * subtractions from cI and the 0.25 ride in the GEMMs (addmm's beta
     * and alpha; the same values, as -1 and 0.25 scale exactly) */
    for (int it = 0; it < iters; it++) {
        mm_tensor *xz = mm_tensor_matmul(ctx, a, z, 0, 0);
        mm_tensor *t = mm_tensor_sub(ctx, eye[0], xz);           /* 7I - xz */
        t = mm_tensor_addmm(ctx, eye[1], xz, t, 0, 0, -1, 1);
        t = mm_tensor_addmm(ctx, eye[2], xz, t, 0, 0, -1, 1);
        z = mm_tensor_addmm(ctx, NULL, z, t, 0, 0, 0.25, 0);
    }
    return z;
}

int mm_nystrom_init(mm_nystrom *m, mm_params *p, const char *prefix,
                    int dim, int heads, int dim_head, int landmarks,
                    int pinv_iters, int res_kernel)
{
    memset(m, 0, sizeof *m);
    if (dim < 1 || heads < 1 || dim_head < 1 || landmarks < 1 ||
        pinv_iters < 0 || res_kernel < 0 || (res_kernel && res_kernel % 2 == 0)) {
        mm__set_error("nystrom: bad sizes (dim %d, heads %d, dim_head %d, "
                      "landmarks %d, pinv %d, kernel %d)", dim, heads,
                      dim_head, landmarks, pinv_iters, res_kernel);
        return -1;
    }
    m->dim = dim;
    m->heads = heads;
    m->dim_head = dim_head;
    m->landmarks = landmarks;
    m->pinv_iters = pinv_iters;
    m->res_kernel = res_kernel;
    int64_t inner = (int64_t)heads * dim_head;
    m->qkv_w = padd(p, prefix, "to_qkv.weight", 2, (int64_t[]){3 * inner, dim});
    if (!m->qkv_w) return -1;
    m->out_w = padd(p, prefix, "to_out.0.weight", 2, (int64_t[]){dim, inner});
    if (!m->out_w) return -1;
    m->out_b = padd(p, prefix, "to_out.0.bias", 1, (int64_t[]){dim});
    if (!m->out_b) return -1;
    if (res_kernel &&
        !(m->res_w = padd(p, prefix, "res_conv.weight", 4,
                          (int64_t[]){heads, 1, res_kernel, 1})))
        return -1;
    return 0;
}

/* The residual conv's rows [S, S + NR) of V (B, H, N', Dh): the conv of
 * the window of rows S - P .. S + NR + P (zero rows past either end, as
 * the conv's own padding) keeps the middle NR rows; the same taps in the
 * same order as the whole conv's. */
static mm_tensor *res_conv_rows(mm_ctx *ctx, mm_tensor *v, mm_tensor *w,
                                int64_t s, int64_t nr)
{
    int64_t np = mm_tensor_dim(v, 2), p = mm_tensor_dim(w, 1) / 2;
    int64_t lo = s - p, hi = s + nr + p;
    int64_t a = lo > 0 ? lo : 0, e = hi < np ? hi : np;
    mm_tensor *win = mm_tensor_slice(ctx, v, 2, a, e - a);
    if (a > lo) win = mm_tensor_pad(ctx, win, 2, a - lo, 0);
    if (hi > e) win = mm_tensor_pad(ctx, win, 2, 0, hi - e);
    return mm_tensor_slice(ctx, mm_tensor_conv1d_dw(ctx, win, w), 2, p, nr);
}

mm_tensor *mm_nystrom_forward_rows(mm_ctx *ctx, const mm_nystrom *m,
                                   mm_tensor *x, int64_t r0, int64_t nr)
{
    if (check_x(x, m->dim, "nystrom")) return NULL;
    int64_t b = mm_tensor_dim(x, 0), n = mm_tensor_dim(x, 1);
    if (r0 < 0 || nr < 1 || r0 + nr > n) {
        mm__set_error("nystrom: rows %lld + %lld outside the %lld of x",
                      (long long)r0, (long long)nr, (long long)n);
        return NULL;
    }
    int64_t lm = m->landmarks, h = m->heads, dh = m->dim_head;
    int64_t inner = h * dh, pad = (lm - n % lm) % lm, np = n + pad,
            l = np / lm;
    /* the rows wanted, in the padded sequence */
    int64_t s = (m->pad_bug ? 0 : pad) + r0;
    mm_tensor *xp = pad ? mm_tensor_pad(ctx, x, 1, pad, 0) : x;
    int all = nr == n; /* all rows: the whole padded sequence, sliced */
    double sc = 1 / sqrt((double)dh);
    /* to_q, to_k, to_v as three row blocks of to_qkv: each product is
     * contiguous, so its head view is one transpose and the attentions
     * read it in place (no split copies; their gradients come back
     * through one strided add each) */
    mm_tensor *wq = mm_tensor_slice(ctx, m->qkv_w, 0, 0, inner);
    mm_tensor *wk = mm_tensor_slice(ctx, m->qkv_w, 0, inner, inner);
    mm_tensor *wv = mm_tensor_slice(ctx, m->qkv_w, 0, 2 * inner, inner);
    mm_tensor *k = head_view(ctx, mm_tensor_linear(ctx, xp, wk, NULL), h);
    mm_tensor *v = head_view(ctx, mm_tensor_linear(ctx, xp, wv, NULL), h);
    /* landmarks, (B, H, M, Dh): the means of l consecutive rows of q and
     * k are to_q and to_k of the means of x (a mean of rows commutes with
     * a linear map), so they cost M rows, not N' */
    int64_t dim = mm_tensor_dim(x, 2);
    mm_tensor *xl = mm_tensor_mean(
        ctx, mm_tensor_reshape(ctx, xp, 4, (int64_t[]){b, lm, l, dim}), 2, 0);
    mm_tensor *ql = mm_tensor_contiguous(
        ctx, head_view(ctx, mm_tensor_linear(ctx, xl, wq, NULL), h));
    mm_tensor *kl = mm_tensor_contiguous(
        ctx, head_view(ctx, mm_tensor_linear(ctx, xl, wk, NULL), h));
    /* q: every row for all of them, else the rows wanted alone (only
     * A1 reads q row by row) */
    mm_tensor *qr = head_view(
        ctx, mm_tensor_linear(ctx, all ? xp : mm_tensor_slice(ctx, xp, 1, s, nr), wq, NULL), h);
    /* attn1 = softmax(q k_l^T) (N' x M), attn2 = softmax(q_l k_l^T),
     * attn3 = softmax(q_l k^T) (M x N'), all with q scaled by Dh^-1/2;
     * out = (attn1 pinv(attn2)) (attn3 v), which lucidrains' code
     * evaluates in that order. We associate it as attn1 (pinv(attn2)
     * (attn3 v)): the same product without the N' x M by M x M one
     * (2 N' M^2 flops a head, 3x the rest of this line at M 256, Dh 64);
     * only the rounding differs (t-nn and t-mil hold torch's fixtures).
     * Both attn products are fused attentions, so no N' x M matrix is
     * kept. */
    mm_tensor *a2 = mm_tensor_softmax(
        ctx, mm_tensor_scale(ctx, mm_tensor_matmul(ctx, ql, kl, 0, 1), sc));
    mm_tensor *a2i = mm_nn_pinv(ctx, a2, m->pinv_iters);
    mm_tensor *zv = mm_tensor_matmul(ctx, a2i, mm_tensor_attention(ctx, ql, k, v, sc), 0, 0);
    mm_tensor *out = mm_tensor_attention(ctx, qr, kl, zv, sc);
    if (m->res_w) {
        mm_tensor *w = mm_tensor_reshape(ctx, m->res_w, 2,
                                         (int64_t[]){h, m->res_kernel});
        out = mm_tensor_add(ctx, out, all ? mm_tensor_conv1d_dw(ctx, v, w)
                                          : res_conv_rows(ctx, v, w, s, nr));
    }
    out = mm_tensor_linear(ctx, merge_heads(ctx, out), m->out_w, m->out_b);
    if (all) out = mm_tensor_slice(ctx, out, 1, s, nr);
    return mm_tensor_contiguous(ctx, out);
}

mm_tensor *mm_nystrom_forward(mm_ctx *ctx, const mm_nystrom *m,
                              mm_tensor *x)
{
    if (check_x(x, m->dim, "nystrom")) return NULL;
    return mm_nystrom_forward_rows(ctx, m, x, 0, mm_tensor_dim(x, 1));
}

// ---- TransLayer ------------------------------------------------------------

int mm_translayer_init(mm_translayer *t, mm_params *p, const char *prefix,
                       int dim, int heads, int landmarks, int pinv_iters)
{
    char sub[MM_NN_NAME_MAX];
    memset(t, 0, sizeof *t);
    t->eps = 1e-5;
    if (heads < 1 || dim % heads) {
        mm__set_error("translayer: dim %d is not a multiple of heads %d", dim,
                      heads);
        return -1;
    }
    const int64_t d1[1] = {dim};
    if (!(t->norm_w = padd(p, prefix, "norm.weight", 1, d1))) return -1;
    if (!(t->norm_b = padd(p, prefix, "norm.bias", 1, d1))) return -1;
    if (subname(sub, prefix, "attn")) return -1;
    return mm_nystrom_init(&t->attn, p, sub, dim, heads, dim / heads,
                           landmarks, pinv_iters, 33);
}

mm_tensor *mm_translayer_forward(mm_ctx *ctx, const mm_translayer *t,
                                 mm_tensor *x)
{
    mm_tensor *h = mm_tensor_layernorm(ctx, x, t->norm_w, t->norm_b, t->eps);
    return mm_tensor_add(ctx, x, mm_nystrom_forward(ctx, &t->attn, h));
}
