/* t-dwconv.c: the f32 depthwise convolutions (conv1d_dw, conv2d_dw) with
 * their AVX-512 kernels against the generic loops (mm__dwconv_simd(0)):
 * forward and input gradient byte for byte, on TransMIL's shapes and on
 * awkward ones (L < K, D = 1, rows shorter than 16 or not a multiple of
 * it, rows wider than a register strip, B > 1); weight and bias gradients
 * of both paths within a tight tolerance of an f64 computation here, and
 * the forward too.
 * The input gradient is checked as an accumulation: x also feeds a second
 * term of the loss whose gradient reaches x first.
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../tap.h"
#include "mm/tensor.h"
#include "tensor_internal.h"

static uint64_t rng_state = 12345;
static float frand(void) /* [-1, 1), xorshift64* */
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (float)((double)((rng_state * 2685821657736338717ULL) >> 11) *
                       0x1p-52 - 1.0);
}

typedef struct {
    const char *name;
    int two_d;    /* conv2d_dw, else conv1d_dw */
    int nd;       /* conv1d: 3 (B, C, L) or 4 (B, C, L, D) */
    int64_t sh[4];
    int64_t k;    /* K, or k of the k x k kernel */
    int bias;     /* conv2d only */
    int special;  /* SP_INF: one weight +inf; SP_NEGZERO: channel 0 all -0
                   * with positive weights and a -0 bias */
} dwcase;

enum { SP_INF = 1, SP_NEGZERO = 2 };

/* what one run gives, all f32 copies (NULL where absent) */
typedef struct {
    float *y, *gx, *gw, *gb;
    int64_t ny, nw, nb;
} result;

static float *copy_out(mm_tensor *t, int64_t n)
{
    float *f = malloc((size_t)n * sizeof *f);
    if (f && t) memcpy(f, mm_tensor_data(t), (size_t)n * sizeof *f);
    return t ? f : (free(f), NULL);
}

/* The inputs of case DC, made again from the same seed for every run. */
typedef struct {
    float *x, *w, *b, *g, *h; /* h: the second term's weights on x */
    int64_t nx, nw, nb;
} inputs;

static void make_inputs(const dwcase *dc, inputs *in)
{
    int64_t nx = 1;
    for (int i = 0; i < dc->nd; i++) nx *= dc->sh[i];
    in->nx = nx;
    in->nw = dc->two_d ? dc->sh[1] * dc->k * dc->k : dc->sh[1] * dc->k;
    in->nb = dc->two_d && dc->bias ? dc->sh[1] : 0;
    in->x = malloc((size_t)nx * sizeof(float));
    in->g = malloc((size_t)nx * sizeof(float));
    in->h = malloc((size_t)nx * sizeof(float));
    in->w = malloc((size_t)in->nw * sizeof(float));
    in->b = malloc((size_t)(in->nb + 1) * sizeof(float));
    rng_state = 12345 + (uint64_t)nx * 31 + (uint64_t)dc->k;
    for (int64_t i = 0; i < nx; i++) {
        in->x[i] = frand();
        in->g[i] = frand();
        in->h[i] = frand();
    }
    for (int64_t i = 0; i < in->nw; i++) in->w[i] = frand();
    for (int64_t i = 0; i < in->nb; i++) in->b[i] = frand();
    if (dc->special == SP_INF) in->w[in->nw / 2] = INFINITY;
    if (dc->special == SP_NEGZERO) {
        int64_t plane = nx / (dc->sh[0] * dc->sh[1]);
        for (int64_t n = 0; n < dc->sh[0]; n++)
            for (int64_t i = 0; i < plane; i++)
                in->x[n * dc->sh[1] * plane + i] = -0.0f;
        for (int64_t i = 0; i < in->nw; i++) in->w[i] = fabsf(in->w[i]) + 0.1f;
        if (in->nb) in->b[0] = -0.0f;
    }
}

static void free_inputs(inputs *in)
{
    free(in->x);
    free(in->w);
    free(in->b);
    free(in->g);
    free(in->h);
}

static mm_tensor *leaf(mm_ctx *c, int nd, const int64_t *sh, const float *v,
                       int64_t n)
{
    mm_tensor *t = mm_tensor_new(c, MM_F32, nd, sh);
    if (!t) return NULL;
    memcpy(mm_tensor_data(t), v, (size_t)n * sizeof *v);
    mm_tensor_set_requires_grad(t, 1);
    return t;
}

/* loss = sum(conv(x) * G) + sum(x * H), backward; SIMD picks the path. */
static int run(const dwcase *dc, const inputs *in, int simd, result *r)
{
    memset(r, 0, sizeof *r);
    mm__dwconv_simd(simd);
    mm_ctx *c = mm_ctx_new();
    int64_t C = dc->sh[1];
    int64_t wsh[3] = {C, dc->k, dc->k};
    mm_tensor *x = leaf(c, dc->nd, dc->sh, in->x, in->nx);
    mm_tensor *w = leaf(c, dc->two_d ? 3 : 2, wsh, in->w, in->nw);
    mm_tensor *b = in->nb ? leaf(c, 1, &C, in->b, in->nb) : NULL;
    mm_tensor *g = mm_tensor_new(c, MM_F32, dc->nd, dc->sh);
    mm_tensor *h = mm_tensor_new(c, MM_F32, dc->nd, dc->sh);
    int bad = !x || !w || (in->nb && !b) || !g || !h;
    if (!bad) {
        memcpy(mm_tensor_data(g), in->g, (size_t)in->nx * sizeof(float));
        memcpy(mm_tensor_data(h), in->h, (size_t)in->nx * sizeof(float));
        mm_tensor *y = dc->two_d ? mm_tensor_conv2d_dw(c, x, w, b)
                                 : mm_tensor_conv1d_dw(c, x, w);
        mm_tensor *l1 = mm_tensor_sum_all(c, mm_tensor_mul(c, y, g));
        mm_tensor *l2 = mm_tensor_sum_all(c, mm_tensor_mul(c, x, h));
        mm_tensor *loss = mm_tensor_add(c, l1, l2);
        bad = !loss || mm_tensor_backward(c, loss) != 0;
        if (!bad) {
            r->ny = in->nx;
            r->nw = in->nw;
            r->nb = in->nb;
            r->y = copy_out(y, in->nx);
            r->gx = copy_out(mm_tensor_grad(x), in->nx);
            r->gw = copy_out(mm_tensor_grad(w), in->nw);
            r->gb = b ? copy_out(mm_tensor_grad(b), in->nb) : NULL;
            bad = !r->y || !r->gx || !r->gw || (b && !r->gb);
        }
    }
    if (bad) diag("%s: %s", dc->name, mm_ctx_error(c) ? mm_ctx_error(c) : "?");
    mm_ctx_free(c);
    mm__dwconv_simd(1);
    return bad ? -1 : 0;
}

static void free_result(result *r)
{
    free(r->y);
    free(r->gx);
    free(r->gw);
    free(r->gb);
}

/* f64 references: Y (with its sums of |terms|), GW and GB (the same). */
typedef struct {
    double *y, *ym, *gw, *gwm, *gb, *gbm;
} refs;

static void reference(const dwcase *dc, const inputs *in, refs *rf)
{
    int64_t B = dc->sh[0], C = dc->sh[1];
    int64_t k = dc->k, P = k / 2;
    rf->y = calloc((size_t)in->nx, sizeof(double));
    rf->ym = calloc((size_t)in->nx, sizeof(double));
    rf->gw = calloc((size_t)in->nw, sizeof(double));
    rf->gwm = calloc((size_t)in->nw, sizeof(double));
    rf->gb = calloc((size_t)in->nb + 1, sizeof(double));
    rf->gbm = calloc((size_t)in->nb + 1, sizeof(double));
    if (!dc->two_d) {
        int64_t L = dc->sh[2], D = dc->nd == 4 ? dc->sh[3] : 1;
        for (int64_t n = 0; n < B; n++)
            for (int64_t ch = 0; ch < C; ch++)
                for (int64_t i = 0; i < L; i++)
                    for (int64_t t = 0; t < k; t++) {
                        int64_t j = i + t - P;
                        if (j < 0 || j >= L) continue;
                        for (int64_t e = 0; e < D; e++) {
                            int64_t o = ((n * C + ch) * L + i) * D + e;
                            int64_t s = ((n * C + ch) * L + j) * D + e;
                            double p = (double)in->w[ch * k + t] * in->x[s];
                            double q = (double)in->g[o] * in->x[s];
                            rf->y[o] += p;
                            rf->ym[o] += fabs(p);
                            rf->gw[ch * k + t] += q;
                            rf->gwm[ch * k + t] += fabs(q);
                        }
                    }
        return;
    }
    int64_t H = dc->sh[2], W = dc->sh[3];
    for (int64_t n = 0; n < B; n++)
        for (int64_t ch = 0; ch < C; ch++)
            for (int64_t r = 0; r < H; r++)
                for (int64_t q = 0; q < W; q++) {
                    int64_t o = ((n * C + ch) * H + r) * W + q;
                    if (in->nb) {
                        rf->y[o] += in->b[ch];
                        rf->ym[o] += fabs(in->b[ch]);
                        rf->gb[ch] += in->g[o];
                        rf->gbm[ch] += fabs(in->g[o]);
                    }
                    for (int64_t u = 0; u < k; u++)
                        for (int64_t v = 0; v < k; v++) {
                            int64_t rr = r + u - P, qq = q + v - P;
                            if (rr < 0 || rr >= H || qq < 0 || qq >= W) continue;
                            int64_t s = ((n * C + ch) * H + rr) * W + qq;
                            int64_t wi = (ch * k + u) * k + v;
                            double p = (double)in->w[wi] * in->x[s];
                            double gq = (double)in->g[o] * in->x[s];
                            rf->y[o] += p;
                            rf->ym[o] += fabs(p);
                            rf->gw[wi] += gq;
                            rf->gwm[wi] += fabs(gq);
                        }
                }
}

static void free_refs(refs *rf)
{
    free(rf->y);
    free(rf->ym);
    free(rf->gw);
    free(rf->gwm);
    free(rf->gb);
    free(rf->gbm);
}

/* worst |got - ref| / (sum |terms| + 1e-30) */
static double relerr(const float *got, const double *ref, const double *mag,
                     int64_t n)
{
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs(got[i] - ref[i]) / (mag[i] + 1e-30);
        if (!(e <= worst)) worst = e;
    }
    return worst;
}

/* The relative tolerances: a sum of n f32 terms errs by at most about
 * n eps of the sum of their magnitudes; these sums (16 lanes or 4, then
 * folded) stay far below. */
#define TOL_Y 1e-6
#define TOL_W 1e-6

static void check_case(const dwcase *dc, int have512)
{
    inputs in;
    make_inputs(dc, &in);
    result gen, fast;
    int e1 = run(dc, &in, 0, &gen), e2 = run(dc, &in, 1, &fast);
    if (!ok(e1 == 0 && e2 == 0, "%s: both paths run", dc->name)) {
        free_result(&gen);
        free_result(&fast);
        free_inputs(&in);
        return;
    }
    if (have512) {
        ok(memcmp(gen.y, fast.y, (size_t)gen.ny * sizeof(float)) == 0,
           "%s: forward, AVX-512 = generic bit for bit", dc->name);
        ok(memcmp(gen.gx, fast.gx, (size_t)gen.ny * sizeof(float)) == 0,
           "%s: input gradient, AVX-512 = generic bit for bit", dc->name);
    } else {
        ok(1, "# SKIP %s: no AVX-512 on this CPU", dc->name);
        ok(1, "# SKIP %s: no AVX-512 on this CPU", dc->name);
    }
    if (dc->special) { /* not finite: only the bits are compared */
        if (dc->special == SP_NEGZERO && dc->two_d)
            ok(signbit(gen.y[0]) && gen.y[0] == 0,
               "%s: the -0 sums stay -0", dc->name);
        free_result(&gen);
        free_result(&fast);
        free_inputs(&in);
        return;
    }
    refs rf;
    reference(dc, &in, &rf);
    double ey = relerr(fast.y, rf.y, rf.ym, gen.ny);
    ok(ey <= TOL_Y, "%s: forward within %g of f64 (%.2g)", dc->name, TOL_Y, ey);
    for (int path = 0; path < 2; path++) {
        const result *r = path ? &fast : &gen;
        const char *pn = path ? "AVX-512" : "generic";
        double ew = relerr(r->gw, rf.gw, rf.gwm, r->nw);
        ok(ew <= TOL_W, "%s: %s weight gradient within %g of f64 (%.2g)",
           dc->name, pn, TOL_W, ew);
        if (r->nb) {
            double eb = relerr(r->gb, rf.gb, rf.gbm, r->nb);
            ok(eb <= TOL_W, "%s: %s bias gradient within %g of f64 (%.2g)",
               dc->name, pn, TOL_W, eb);
        }
    }
    free_refs(&rf);
    free_result(&gen);
    free_result(&fast);
    free_inputs(&in);
}

#define S3(a, b, c) 3, {a, b, c, 0}
#define S4(a, b, c, d) 4, {a, b, c, d}
static const dwcase cases[] = {
    /* TransMIL: the Nystrom residual conv and the three PPEG convs */
    {"conv1d TransMIL (1, 8, 6144, 64) K 33", 0, S4(1, 8, 6144, 64), 33, 0, 0},
    {"conv2d TransMIL (1, 512, 78, 78) k 7", 1, S4(1, 512, 78, 78), 7, 1, 0},
    {"conv2d TransMIL (1, 512, 78, 78) k 5", 1, S4(1, 512, 78, 78), 5, 1, 0},
    {"conv2d TransMIL (1, 512, 78, 78) k 3", 1, S4(1, 512, 78, 78), 3, 1, 0},
    /* conv1d: L < K, D = 1 (3-D input), D not a multiple of 16, B > 1,
     * slabs over a segment of the weight gradient (32768 floats) */
    {"conv1d L 5 < K 9, D 7", 0, S4(2, 3, 5, 7), 9, 0, 0},
    {"conv1d 3-D (D 1) L 37 K 5", 0, S3(2, 3, 37), 5, 0, 0},
    {"conv1d 3-D (D 1) L 3 < K 7", 0, S3(1, 2, 3), 7, 0, 0},
    {"conv1d 3-D (D 1) L 40000 K 33", 0, S3(1, 2, 40000), 33, 0, 0},
    {"conv1d B 3, D 20, L 50 K 7", 0, S4(3, 4, 50, 20), 7, 0, 0},
    {"conv1d L 1, D 16, K 3", 0, S4(1, 2, 1, 16), 3, 0, 0},
    {"conv1d B 2, D 33, L 1000, K 33", 0, S4(2, 2, 1000, 33), 33, 0, 0},
    {"conv1d D 64, L 300, K 1", 0, S4(1, 3, 300, 64), 1, 0, 0},
    /* conv2d: W < 16, kernel over the image, H not a multiple of the
     * 4-row block, W past one register strip (80), B > 1, no bias */
    {"conv2d W 7 < 16, k 3", 1, S4(2, 3, 5, 7), 3, 1, 0},
    {"conv2d k 7 > H 5, W 3", 1, S4(1, 2, 5, 3), 7, 1, 0},
    {"conv2d H 13, W 37, k 5", 1, S4(1, 4, 13, 37), 5, 1, 0},
    {"conv2d W 80, k 3", 1, S4(1, 2, 9, 80), 3, 1, 0},
    {"conv2d W 81, k 7", 1, S4(1, 2, 11, 81), 7, 1, 0},
    {"conv2d W 150, k 5", 1, S4(1, 2, 6, 150), 5, 1, 0},
    {"conv2d B 3, W 17, k 3, no bias", 1, S4(3, 2, 6, 17), 3, 0, 0},
    {"conv2d H 1, W 1, k 3", 1, S4(2, 2, 1, 1), 3, 1, 0},
    {"conv2d k 1, W 20", 1, S4(1, 3, 4, 20), 1, 1, 0},
    /* where adding zeros for the lanes outside the image would change
     * bits: an infinite weight (inf 0 = NaN), -0 sums (-0 + 0 = +0) */
    {"conv2d an infinite weight", 1, S4(1, 2, 9, 20), 3, 1, SP_INF},
    {"conv2d -0 inputs and bias", 1, S4(2, 2, 9, 20), 3, 1, SP_NEGZERO},
    {"conv1d an infinite weight", 0, S4(1, 2, 50, 20), 5, 0, SP_INF},
    {"conv1d -0 inputs", 0, S4(2, 2, 50, 20), 5, 0, SP_NEGZERO},
};

int main(void)
{
    int have512 = 0;
#if defined(__x86_64__) && defined(__GNUC__)
    have512 = __builtin_cpu_supports("avx512f");
#endif
    if (!have512) diag("no AVX-512: only the generic path runs");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_case(&cases[i], have512);
    return done_testing();
}
