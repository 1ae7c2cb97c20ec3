/* resnet.c: ResNet-50 trunk inference on the CPU (mm/resnet.h).
 *
 * Activations are NHWC f32 for a whole batch of tiles, so every convolution
 * is one GEMM with the pixels of all tiles as rows:
 *   - 1x1 stride 1: a GEMM straight on the activation (no copy); a block's
 *     last and the next block's first run together, chunk by chunk;
 *   - 1x1 stride 2 (downsample): a subsample copy, then a GEMM;
 *   - 3x3 stride 1: Winograd F(4x4, 3x3) (Lavin and Gray 2016): 36 GEMMs
 *     of (tiles, Cin) x (Cin, Cout), 4x fewer multiplications than direct;
 *   - 7x7 stem: input rows interleaved per output row, read in place (with
 *     the AVX-512 kernel; im2col with the fallback);
 *   - 3x3 stride 2: im2col in row chunks, then a GEMM.
 * BatchNorm is folded into the weights at load time. Every GEMM is
 * mm__gemm (resnet_gemm.c): an AVX-512 kernel with the weights packed at
 * load time and bias, ReLU and the residual add (accumulating onto the
 * shortcut) applied before the output leaves the registers, or cblas_sgemm
 * and one epilogue pass elsewhere.
 * All scratch memory is held by the model and reused across calls.
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#include "mm/resnet.h"
#include "mm/rng.h"
#include "mm/safetensors.h"
#include "mm/sha256.h"
#include "resnet_gemm.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#define BN_EPS 1e-5

// ---- the network -----------------------------------------------------------

typedef struct {
    mm_resnet_conv c; /* public view: name, shape, folded w (OIHW), b */
    char name[32];
    float *w, *b;
    /* the GEMMs' B, prepared for mm__gemm: (ky, kx, cin, cout) for im2col
     * and 1x1; the 36 (cin, cout) of the Winograd-domain weights for 3x3
     * stride 1; the stem's (kx, ky, cin, cout) for conv_stem, made only
     * for the AVX-512 kernel (the fallback takes im2col) */
    mm__gemm_b *pg, *pu[36], *ps;
    int wide; /* Winograd transforms 16 channels at a time (AVX-512) */
} conv;

enum { NBUF = 4 };

struct mm_resnet {
    int layer, nconv;
    conv *cv;
    char digest[80];
    /* scratch, grown on demand: activations; per thread im2col and
     * Winograd buffers */
    float *buf[NBUF];
    size_t cap[NBUF];
    struct scratch {
        float *col, *wv, *wm;
        size_t colcap, wvcap, wmcap;
    } *ts;
    int nts;
};

static const int nblocks[4] = {3, 4, 6, 3};

/* Visit the convolutions in torchvision's module order, calling F with the
 * module prefix, the BatchNorm prefix and the shape. */
typedef int (*conv_fn)(void *ctx, const char *cname, const char *bname,
                       int cin, int cout, int k, int stride, int pad,
                       int relu);

static int each_conv(int layer, conv_fn f, void *ctx)
{
    char cn[32], bn[32];
    if (f(ctx, "conv1", "bn1", 3, 64, 7, 2, 3, 1) < 0) return -1;
    int cin = 64;
    for (int l = 1; l <= layer; l++) {
        int wid = 64 << (l - 1), out = wid * 4;
        for (int b = 0; b < nblocks[l - 1]; b++) {
            int s = (b == 0 && l > 1) ? 2 : 1;
            int bin = b == 0 ? cin : out;
            static const struct { int k, relu; } sub[3] = {{1, 1}, {3, 1},
                                                          {1, 0}};
            for (int j = 0; j < 3; j++) {
                snprintf(cn, sizeof cn, "layer%d.%d.conv%d", l, b, j + 1);
                snprintf(bn, sizeof bn, "layer%d.%d.bn%d", l, b, j + 1);
                int ci = j == 0 ? bin : wid, co = j == 2 ? out : wid;
                if (f(ctx, cn, bn, ci, co, sub[j].k, j == 1 ? s : 1,
                      sub[j].k / 2, sub[j].relu) < 0)
                    return -1;
            }
            if (b == 0) {
                snprintf(cn, sizeof cn, "layer%d.%d.downsample.0", l, b);
                snprintf(bn, sizeof bn, "layer%d.%d.downsample.1", l, b);
                if (f(ctx, cn, bn, bin, out, 1, s, 0, 0) < 0) return -1;
            }
        }
        cin = out;
    }
    return 0;
}

// ---- weights: random:SEED and safetensors ----------------------------------

/* random:SEED. One splitmix64 stream over all parameters in module order:
 * value i (0-based, counted across tensors) is
 *   z = mix(SEED + (i + 1) * 0x9E3779B97F4A7C15),  u = (z >> 40) / 2^24
 * (mix: splitmix64's finaliser), i.e. the i-th splitmix64 output started at
 * SEED, and u in [0, 1) has 24 bits so numpy reproduces it exactly. Per
 * convolution, in this order: weight (OIHW, C order) = (2u - 1) *
 * sqrt(6 / fan_in) (Kaiming uniform), BatchNorm weight = 0.5 + u, bias =
 * 0.2 (2u - 1), running_mean = 0.2 (2u - 1), running_var = 0.5 + u; each
 * computed in double and rounded once to f32 (tests/gen/resnet_ref.py). */
typedef struct {
    uint64_t seed; /* for the digest string */
    uint64_t x;    /* splitmix64's state, started at SEED */
} rnd;

static double rnd_u(rnd *r)
{
    return (double)(mm_splitmix64(&r->x) >> 40) / 16777216.0;
}

typedef struct {
    mm_resnet *m;
    mm_st *st; /* NULL: random */
    rnd r;
    float *tmp; /* 4 x cout for the BatchNorm vectors */
    float *wt;  /* a weight matrix in GEMM layout before mm__gemm_pack */
    size_t wtcap;
} loader;

/* L's wt, at least N floats (one buffer for all: fresh pages fault) */
static float *wt(loader *L, size_t n)
{
    if (n > L->wtcap) {
        free(L->wt);
        L->wt = mm_malloc(n * sizeof *L->wt);
        L->wtcap = n;
    }
    return L->wt;
}

static int read_tensor(loader *L, const char *name, int ndim,
                       const int64_t *shape, float *dst)
{
    if (mm_st_read(L->st, name, MM_F32, ndim, shape, dst) == 0) return 0;
    /* mm_st's messages name the file; ours add nothing but the key */
    return -1;
}

static int load_conv(void *ctx, const char *cname, const char *bname,
                     int cin, int cout, int k, int stride, int pad, int relu)
{
    loader *L = ctx;
    mm_resnet *m = L->m;
    conv *c = &m->cv[m->nconv++];
    snprintf(c->name, sizeof c->name, "%s", cname);
    size_t nw = (size_t)cout * cin * k * k;
    c->w = mm_malloc(nw * sizeof *c->w);
    c->b = mm_malloc(cout * sizeof *c->b);
    c->pg = c->ps = NULL;
    memset(c->pu, 0, sizeof c->pu);
    /* the same choice as the GEMMs': the fallback keeps 4-float vectors */
    c->wide = mm__gemm_kernel() && cin % 16 == 0 && cout % 16 == 0;
    c->c = (mm_resnet_conv){c->name, cin, cout, k, stride, pad, relu, c->w,
                            c->b};
    float *g = L->tmp, *be = g + cout, *mu = be + cout, *var = mu + cout;
    if (!L->st) {
        double bound = sqrt(6.0 / (cin * k * k));
        for (size_t i = 0; i < nw; i++)
            c->w[i] = (float)((2 * rnd_u(&L->r) - 1) * bound);
        for (int o = 0; o < cout; o++) g[o] = (float)(0.5 + rnd_u(&L->r));
        for (int o = 0; o < cout; o++)
            be[o] = (float)(0.2 * (2 * rnd_u(&L->r) - 1));
        for (int o = 0; o < cout; o++)
            mu[o] = (float)(0.2 * (2 * rnd_u(&L->r) - 1));
        for (int o = 0; o < cout; o++) var[o] = (float)(0.5 + rnd_u(&L->r));
    } else {
        char key[64];
        int64_t ws[4] = {cout, cin, k, k}, bs[1] = {cout};
        snprintf(key, sizeof key, "%s.weight", cname);
        if (read_tensor(L, key, 4, ws, c->w) < 0) return -1;
        static const char *const bnk[4] = {"weight", "bias", "running_mean",
                                           "running_var"};
        for (int j = 0; j < 4; j++) {
            snprintf(key, sizeof key, "%s.%s", bname, bnk[j]);
            if (read_tensor(L, key, 1, bs, g + j * cout) < 0) return -1;
        }
        for (int o = 0; o < cout; o++)
            if (!(var[o] >= 0) || !isfinite(var[o])) {
                mm__set_error("%s.running_var[%d] is %g, not a variance",
                              bname, o, var[o]);
                return -1;
            }
    }
    /* fold: y = (conv(x) - mu) g / sqrt(var + eps) + beta */
    size_t per = (size_t)cin * k * k;
    for (int o = 0; o < cout; o++) {
        double sc = g[o] / sqrt((double)var[o] + BN_EPS);
        for (size_t i = 0; i < per; i++)
            c->w[o * per + i] = (float)(c->w[o * per + i] * sc);
        c->b[o] = (float)(be[o] - mu[o] * sc);
    }
    /* GEMM layout (ky, kx, cin, cout), 16 output channels at a time: the
     * reads are 16 sequential streams, the writes 16 floats in a row (one
     * channel at a time, every read or write was a TLB miss) */
    float *wg = wt(L, k == 3 && stride == 1 ? 36 * (size_t)cin * cout : nw);
    for (int o0 = 0; o0 < cout; o0 += 16) {
        int oe = cout - o0 < 16 ? cout : o0 + 16;
        for (int i = 0; i < cin; i++)
            for (int ky = 0; ky < k; ky++)
                for (int kx = 0; kx < k; kx++) {
                    float *d = wg + (((size_t)ky * k + kx) * cin + i) * cout;
                    const float *sp = c->w + ((size_t)i * k + ky) * k + kx;
                    for (int o = o0; o < oe; o++) d[o] = sp[(size_t)o * per];
                }
    }
    c->pg = mm__gemm_pack(wg, (int)per, cout);
    if (k == 7 && mm__gemm_kernel()) {
        for (int i = 0; i < cin; i++)
            for (int ky = 0; ky < k; ky++)
                for (int kx = 0; kx < k; kx++)
                    for (int o = 0; o < cout; o++)
                        wg[(((size_t)kx * k + ky) * cin + i) * cout + o] =
                            c->w[(((size_t)o * cin + i) * k + ky) * k + kx];
        c->ps = mm__gemm_pack(wg, (int)per, cout);
    }
    if (k == 3 && stride == 1) {
        /* U = G g G^T per (o, i), in double, as (36, cin, cout) */
        static const double G[6][3] = {{1.0 / 4, 0, 0},
                                       {-1.0 / 6, -1.0 / 6, -1.0 / 6},
                                       {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                                       {1.0 / 24, 1.0 / 12, 1.0 / 6},
                                       {1.0 / 24, -1.0 / 12, 1.0 / 6},
                                       {0, 0, 1}};
        float *wu = wg;
        for (int o0 = 0; o0 < cout; o0 += 16) {
            int oe = cout - o0 < 16 ? cout : o0 + 16;
            for (int i = 0; i < cin; i++) {
                double t[16][6][3];
                for (int o = o0; o < oe; o++) {
                    const float *f = c->w + ((size_t)o * cin + i) * 9;
                    for (int a = 0; a < 6; a++)
                        for (int kx = 0; kx < 3; kx++)
                            t[o - o0][a][kx] = G[a][0] * f[kx] +
                                               G[a][1] * f[3 + kx] +
                                               G[a][2] * f[6 + kx];
                }
                for (int a = 0; a < 6; a++)
                    for (int b = 0; b < 6; b++) {
                        float *d = wu + ((size_t)(a * 6 + b) * cin + i) * cout;
                        for (int o = o0; o < oe; o++) {
                            const double *r = t[o - o0][a];
                            d[o] = (float)(r[0] * G[b][0] + r[1] * G[b][1] +
                                           r[2] * G[b][2]);
                        }
                    }
            }
        }
        for (int xi = 0; xi < 36; xi++)
            c->pu[xi] = mm__gemm_pack(wu + (size_t)xi * cin * cout, cin, cout);
    }
    return 0;
}

static int count_conv(void *ctx, const char *cname, const char *bname,
                      int cin, int cout, int k, int stride, int pad, int relu)
{
    (void)cname, (void)bname, (void)cin, (void)k, (void)stride, (void)pad,
        (void)relu;
    int *n = ctx;
    if (cout > n[1]) n[1] = cout;
    n[0]++;
    return 0;
}

mm_resnet *mm_resnet_load(const char *weights, int layer)
{
    if (layer != 3 && layer != 4) {
        mm__set_error("resnet: layer %d, expected 3 or 4", layer);
        return NULL;
    }
    loader L = {0};
    if (strncmp(weights, "random:", 7) == 0) {
        char *end;
        errno = 0;
        unsigned long long s = strtoull(weights + 7, &end, 10);
        if (!weights[7] || *end || errno || weights[7] == '-') {
            mm__set_error("%s: bad seed (want random:N, N a non-negative "
                          "integer)", weights);
            return NULL;
        }
        L.r.seed = L.r.x = s;
    } else {
        L.st = mm_st_open(weights);
        if (!L.st) return NULL;
    }
    int cnt[2] = {0, 0};
    each_conv(layer, count_conv, cnt);
    mm_resnet *m = mm_calloc(1, sizeof *m);
    m->layer = layer;
    m->cv = mm_calloc(cnt[0], sizeof *m->cv);
    L.m = m;
    L.tmp = mm_malloc(4 * (size_t)cnt[1] * sizeof *L.tmp);
    int rc = each_conv(layer, load_conv, &L);
    free(L.tmp);
    free(L.wt);
    if (L.st) mm_st_close(L.st);
    if (rc == 0) {
        if (L.st)
            rc = mm_sha256_file(weights, m->digest, sizeof m->digest);
        else
            snprintf(m->digest, sizeof m->digest, "random:%llu",
                     (unsigned long long)L.r.seed);
    }
    if (rc < 0) {
        mm_resnet_free(m);
        return NULL;
    }
    return m;
}

void mm_resnet_free(mm_resnet *m)
{
    if (!m) return;
    for (int i = 0; i < m->nconv; i++) {
        free(m->cv[i].w);
        free(m->cv[i].b);
        mm__gemm_free(m->cv[i].pg);
        mm__gemm_free(m->cv[i].ps);
        for (int xi = 0; xi < 36; xi++) mm__gemm_free(m->cv[i].pu[xi]);
    }
    free(m->cv);
    for (int i = 0; i < NBUF; i++) free(m->buf[i]);
    for (int t = 0; t < m->nts; t++) {
        free(m->ts[t].col);
        free(m->ts[t].wv);
        free(m->ts[t].wm);
    }
    free(m->ts);
    free(m);
}

int mm_resnet_layer(const mm_resnet *m) { return m->layer; }
int mm_resnet_dim(const mm_resnet *m) { return m->layer == 3 ? 1024 : 2048; }
const char *mm_resnet_digest(const mm_resnet *m) { return m->digest; }
int mm_resnet_n_convs(const mm_resnet *m) { return m->nconv; }

const mm_resnet_conv *mm_resnet_conv_at(const mm_resnet *m, int i)
{
    return i >= 0 && i < m->nconv ? &m->cv[i].c : NULL;
}

void mm_resnet_preprocess(const uint8_t *rgb, int h, int w, float *x)
{
    /* as torchvision: ToTensor divides by 255 in f32, Normalize subtracts
     * and divides by the f32 mean and std */
    static const float mean[3] = {0.485f, 0.456f, 0.406f};
    static const float sd[3] = {0.229f, 0.224f, 0.225f};
    size_t n = (size_t)h * w;
    for (size_t i = 0; i < n; i++)
        for (int c = 0; c < 3; c++)
            x[i * 3 + c] = ((float)rgb[i * 3 + c] / 255.0f - mean[c]) / sd[c];
}

// ---- PIL's bilinear resize ------------------------------------------------

void mm_resnet_resize_size(int h, int w, int size, int *oh, int *ow)
{
    if (h <= w) {
        *oh = size;
        *ow = (int)((double)size * w / h);
    } else {
        *ow = size;
        *oh = (int)((double)size * h / w);
    }
}

enum { PREC = 22 }; /* PIL's PRECISION_BITS = 32 - 8 - 2 */

/* Pillow's precompute_coeffs (bilinear, support 1) + normalize_coeffs_8bpc:
 * for output I, input [B[2i], B[2i] + B[2i+1]) with weights K[i * KS ..]. */
static int pil_coeffs(int in, int out, int **pb, int32_t **pk)
{
    double scale = (double)in / out, fs = scale < 1 ? 1 : scale;
    double support = fs;
    int ks = (int)ceil(support) * 2 + 1;
    int *b = mm_malloc(2 * (size_t)out * sizeof *b);
    int32_t *k = mm_calloc((size_t)out * ks, sizeof *k);
    double *w = mm_malloc(ks * sizeof *w);
    for (int i = 0; i < out; i++) {
        double center = (i + 0.5) * scale, ww = 0, ss = 1.0 / fs;
        int xmin = (int)(center - support + 0.5), xmax;
        if (xmin < 0) xmin = 0;
        xmax = (int)(center + support + 0.5);
        if (xmax > in) xmax = in;
        xmax -= xmin;
        for (int x = 0; x < xmax; x++) {
            double t = fabs((x + xmin - center + 0.5) * ss);
            w[x] = t < 1 ? 1 - t : 0;
            ww += w[x];
        }
        for (int x = 0; x < xmax; x++) {
            double v = ww != 0 ? w[x] / ww : w[x];
            k[(size_t)i * ks + x] = (int32_t)(v < 0 ? -0.5 + v * (1 << PREC)
                                                    : 0.5 + v * (1 << PREC));
        }
        b[2 * i] = xmin;
        b[2 * i + 1] = xmax;
    }
    free(w);
    *pb = b;
    *pk = k;
    return ks;
}

static uint8_t clip8(int32_t v)
{
    if (v >= (1 << PREC << 8)) return 255;
    if (v <= 0) return 0;
    return (uint8_t)(v >> PREC);
}

void mm_resnet_resize(const uint8_t *rgb, int h, int w, int oh, int ow,
                      uint8_t *out)
{
    int *bx, *by;
    int32_t *kx, *ky;
    int ksx = pil_coeffs(w, ow, &bx, &kx), ksy = pil_coeffs(h, oh, &by, &ky);
    /* Pillow skips a pass whose size does not change */
    uint8_t *tmp = mm_malloc((size_t)h * ow * 3);
    if (ow == w) {
        memcpy(tmp, rgb, (size_t)h * w * 3);
    } else {
        for (int y = 0; y < h; y++)
            for (int x = 0; x < ow; x++) {
                const int32_t *k = kx + (size_t)x * ksx;
                int32_t s[3] = {1 << (PREC - 1), 1 << (PREC - 1),
                                1 << (PREC - 1)};
                for (int i = 0; i < bx[2 * x + 1]; i++) {
                    const uint8_t *p = rgb + ((size_t)y * w + bx[2 * x] + i) * 3;
                    for (int c = 0; c < 3; c++) s[c] += p[c] * k[i];
                }
                for (int c = 0; c < 3; c++)
                    tmp[((size_t)y * ow + x) * 3 + c] = clip8(s[c]);
            }
    }
    if (oh == h) {
        memcpy(out, tmp, (size_t)h * ow * 3);
    } else {
        for (int y = 0; y < oh; y++) {
            const int32_t *k = ky + (size_t)y * ksy;
            for (int x = 0; x < ow; x++) {
                int32_t s[3] = {1 << (PREC - 1), 1 << (PREC - 1),
                                1 << (PREC - 1)};
                for (int i = 0; i < by[2 * y + 1]; i++) {
                    const uint8_t *p =
                        tmp + ((size_t)(by[2 * y] + i) * ow + x) * 3;
                    for (int c = 0; c < 3; c++) s[c] += p[c] * k[i];
                }
                for (int c = 0; c < 3; c++)
                    out[((size_t)y * ow + x) * 3 + c] = clip8(s[c]);
            }
        }
    }
    free(tmp);
    free(bx);
    free(by);
    free(kx);
    free(ky);
}

// ---- forward ---------------------------------------------------------------
/* One thread pool: the OpenMP threads each run whole chunks (gather, GEMM
 * on one thread, epilogue) on their own rows while the chunk is in their
 * cache. OpenBLAS's own threads would spin against OpenMP's on the
 * same cores, so it is set to 1 thread for the call (weak symbol: other
 * CBLAS libraries are used as they are). */
extern void openblas_set_num_threads(int) __attribute__((weak));
extern int openblas_get_num_threads(void) __attribute__((weak));

/* 4 floats: GCC/Clang vector extension, SSE on x86-64, NEON on arm64 */
typedef float v4 __attribute__((vector_size(16)));
typedef int32_t v4i __attribute__((vector_size(16)));

static inline v4 ld4(const float *p)
{
    v4 v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void st4(float *p, v4 v) { memcpy(p, &v, sizeof v); }

static int n_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

static int thread_id(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

static float *grow(float **p, size_t *cap, size_t n)
{
    if (n > *cap) {
        free(*p);
        *p = mm_malloc(n * sizeof **p);
        *cap = n;
    }
    return *p;
}

/* Gather rows [R0, R0 + R) of conv C's im2col matrix (output pixels of
 * (N, HO, WO) as rows, (ky, kx, cin) as columns) from X (N, H, W, cin) into
 * COL, zeros outside the image; 1x1 stride 2 is a subsample copy. */
static void im2col(const conv *c, const float *x, int h, int w, int ho,
                   int wo, size_t r0, size_t r, float *col)
{
    int k = c->c.k, s = c->c.stride, p = c->c.pad, cin = c->c.cin;
    size_t kk = (size_t)k * k * cin;
    for (size_t i = 0; i < r; i++) {
        size_t q = r0 + i;
        int ox = (int)(q % wo), oy = (int)(q / wo % ho);
        size_t n = q / ((size_t)wo * ho);
        float *d = col + i * kk;
        for (int ky = 0; ky < k; ky++) {
            int iy = oy * s - p + ky;
            for (int kx = 0; kx < k; kx++, d += cin) {
                int ix = ox * s - p + kx;
                if (iy < 0 || iy >= h || ix < 0 || ix >= w)
                    memset(d, 0, cin * sizeof *d);
                else
                    memcpy(d, x + ((n * h + iy) * w + ix) * cin,
                           cin * sizeof *d);
            }
        }
    }
}

/* Y (rows, cout) = act(A W + b [+ Y when ACC]) with A = X itself for 1x1
 * stride 1, else im2col chunks. With C2 (a 1x1 stride-1 conv, the next
 * block's first), Y2 = C2 of Y too, chunk by chunk while Y's rows are in
 * cache: the next block then does not read Y back from memory. Chunks: near 256 KiB of output, at least
 * 128 rows, and enough of them to keep every thread busy. */
static void conv_gemm(mm_resnet *m, const conv *c, const float *x, int n,
                      int h, int w, int ho, int wo, float *y, int acc,
                      const conv *c2, float *y2)
{
    int cout = c->c.cout, nt = n_threads();
    int direct = c->c.k == 1 && c->c.stride == 1;
    size_t kk = (size_t)c->c.k * c->c.k * c->c.cin;
    size_t rows = (size_t)n * ho * wo;
    /* the chunking depends on the shapes only, never on the thread count,
     * so that the bits do not either */
    size_t ch = ((size_t)1 << 17) / cout;
    if (ch < 128) ch = 128;
    ch = (ch + 13) / 14 * 14; /* whole 14-row tiles of the GEMM kernel */
    size_t nch = (rows + ch - 1) / ch;
    int flags = (acc ? MM__GEMM_ACC : 0) |
                (c->c.relu || acc ? MM__GEMM_RELU : 0);
    if (!direct)
        for (int t = 0; t < nt; t++) grow(&m->ts[t].col, &m->ts[t].colcap, ch * kk);
    _Pragma("omp parallel for schedule(dynamic, 1)")
    for (size_t j = 0; j < nch; j++) {
        size_t r0 = j * ch, r = rows - r0 < ch ? rows - r0 : ch;
        const float *a = x + r0 * kk;
        if (!direct) {
            float *col = m->ts[thread_id()].col;
            im2col(c, x, h, w, ho, wo, r0, r, col);
            a = col;
        }
        mm__gemm((int)r, a, (int)kk, c->pg, c->b, flags, y + r0 * cout,
                 cout);
        if (c2)
            mm__gemm((int)r, y + r0 * cout, cout, c2->pg, c2->b,
                     c2->c.relu ? MM__GEMM_RELU : 0, y2 + r0 * c2->c.cout,
                     c2->c.cout);
    }
}

/* Winograd F(4x4, 3x3), pad 1, stride 1 (Lavin and Gray): B^T d B per 6x6
 * input tile, 36 GEMMs (tiles, cin) x U[xi] (cin, cout), A^T m A per 4x4
 * output tile. Each thread takes groups of tiles through all three steps
 * in its own scratch. The transforms in 4-float vectors, and in 16-float
 * ones on CPUs with AVX-512 when the channels are multiples of 16. */
#define WCAT_(a, b) a##b
#define WCAT(a, b) WCAT_(a, b)
#define WFN(f) WCAT(f, WSUF)
#define WV v4
#define WVI v4i
#define WW 4
#define WLD ld4
#define WST st4
#define WSUF _4
#define WATTR
#include "resnet_wino.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define WINO16 1
typedef float v16 __attribute__((vector_size(64)));
typedef int32_t v16i __attribute__((vector_size(64)));

static inline __attribute__((target("avx512f"))) v16 ld16(const float *p)
{
    v16 v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline __attribute__((target("avx512f"))) void st16(float *p, v16 v)
{
    memcpy(p, &v, sizeof v);
}

#define WV v16
#define WVI v16i
#define WW 16
#define WLD ld16
#define WST st16
#define WSUF _16
#define WATTR __attribute__((target("avx512f")))
#include "resnet_wino.h"
#endif

static void conv_wino(mm_resnet *m, const conv *c, const float *x, int n,
                      int h, int w, float *y)
{
    int cin = c->c.cin, cout = c->c.cout;
    int th = (h + 3) / 4, tw = (w + 3) / 4;
    size_t ntile = (size_t)n * th * tw;
    /* groups of tiles whose transformed input stays near 8 MiB, evened
     * out; within a group the threads split the tiles, then the 36
     * products, then the tiles again: the same work for any thread count */
    size_t grp = ((size_t)1 << 21) / (36 * (size_t)(cin > cout ? cin : cout));
    if (grp < 16) grp = 16;
    size_t ng = (ntile + grp - 1) / grp;
    grp = (ntile + ng - 1) / ng;
    int wide = c->wide;
    float *V = grow(&m->ts[0].wv, &m->ts[0].wvcap, 36 * grp * cin);
    float *M = grow(&m->ts[0].wm, &m->ts[0].wmcap, 36 * grp * cout);
    for (size_t t0 = 0; t0 < ntile; t0 += grp) {
        size_t k = ntile - t0 < grp ? ntile - t0 : grp;
        _Pragma("omp parallel")
        {
            _Pragma("omp for schedule(static)")
            for (size_t t = 0; t < k; t++)
#ifdef WINO16
                if (wide)
                    wino_in_16(x, h, w, th, tw, cin, t0 + t, V + t * cin,
                               k * cin);
                else
#endif
                    wino_in_4(x, h, w, th, tw, cin, t0 + t, V + t * cin,
                              k * cin);
            _Pragma("omp for schedule(dynamic, 1)")
            for (int xi = 0; xi < 36; xi++)
                mm__gemm((int)k, V + (size_t)xi * k * cin, cin, c->pu[xi],
                         NULL, 0, M + (size_t)xi * k * cout, cout);
            _Pragma("omp for schedule(static)")
            for (size_t t = 0; t < k; t++)
#ifdef WINO16
                if (wide)
                    wino_out_16(M + t * cout, k * cout, c->b, c->c.relu, h, w,
                                th, tw, cout, t0 + t, y);
                else
#endif
                    wino_out_4(M + t * cout, k * cout, c->b, c->c.relu, h, w,
                               th, tw, cout, t0 + t, y);
        }
    }
}

/* The stem (7x7, stride 2, pad 3, 3 channels) without im2col: for one
 * output row, T interleaves the 7 input rows it reads, T[px][ky][c] (px
 * over the padded width, zeros outside the image). Then the 147 inputs of
 * output pixel ox, in (kx, ky, c) order, are T's 147 consecutive floats
 * from px = 2 ox: a GEMM reads them in place with a row stride of 42. T is
 * 22 KiB a row where the im2col matrix is 75 KiB. */
static void conv_stem(mm_resnet *m, const conv *c, const float *x, int n,
                      int h, int w, int ho, int wo, float *y)
{
    int k = c->c.k, s = c->c.stride, p = c->c.pad, cin = c->c.cin;
    int cout = c->c.cout, pw = s * (wo - 1) + k, kc = k * cin;
    for (int t = 0; t < n_threads(); t++)
        grow(&m->ts[t].col, &m->ts[t].colcap, (size_t)pw * kc);
    _Pragma("omp parallel for schedule(static)")
    for (size_t q = 0; q < (size_t)n * ho; q++) {
        size_t b = q / ho;
        int oy = (int)(q % ho);
        float *T = m->ts[thread_id()].col;
        for (int px = 0; px < pw; px++) {
            int ix = px - p;
            for (int ky = 0; ky < k; ky++) {
                int iy = oy * s - p + ky;
                float *d = T + ((size_t)px * k + ky) * cin;
                if (iy < 0 || iy >= h || ix < 0 || ix >= w)
                    for (int i = 0; i < cin; i++) d[i] = 0;
                else
                    for (int i = 0; i < cin; i++)
                        d[i] = x[((b * h + iy) * w + ix) * cin + i];
            }
        }
        mm__gemm(wo, T, s * kc, c->ps, c->b,
                 c->c.relu ? MM__GEMM_RELU : 0, y + q * wo * cout, cout);
    }
}

/* Y = conv C of X (N, H, W, cin) -> (N, HO, WO, cout), with bias and the
 * conv's ReLU; with ACC, Y already holds the shortcut and the ReLU follows
 * the sum. With C2 (C a 1x1 stride 1 too), also Y2 = C2 of Y, fused. */
static void conv_fwd2(mm_resnet *m, const conv *c, const float *x, int n,
                      int h, int w, float *y, int acc, const conv *c2,
                      float *y2, int *pho, int *pwo)
{
    int k = c->c.k, s = c->c.stride, p = c->c.pad;
    int ho = (h + 2 * p - k) / s + 1, wo = (w + 2 * p - k) / s + 1;
    *pho = ho;
    *pwo = wo;
    if (c->pu[0] && !acc)
        conv_wino(m, c, x, n, h, w, y);
    else if (c->ps && !acc)
        conv_stem(m, c, x, n, h, w, ho, wo, y);
    else
        conv_gemm(m, c, x, n, h, w, ho, wo, y, acc, c2, y2);
}

static void conv_fwd(mm_resnet *m, const conv *c, const float *x, int n,
                     int h, int w, float *y, int acc, int *pho, int *pwo)
{
    conv_fwd2(m, c, x, n, h, w, y, acc, NULL, NULL, pho, pwo);
}


/* 3x3 stride-2 pad-1 max-pool, NHWC (padding never wins, as torch);
 * CCH a multiple of 4. Branch-free vector max: on real data the scalar
 * compare mispredicts about half the time. */
static void maxpool(const float *x, int n, int h, int w, int cch, float *y,
                    int *pho, int *pwo)
{
    int ho = (h - 1) / 2 + 1, wo = (w - 1) / 2 + 1;
    size_t rows = (size_t)n * ho * wo;
    _Pragma("omp parallel for schedule(static)")
    for (size_t q = 0; q < rows; q++) {
        int ox = (int)(q % wo), oy = (int)(q / wo % ho);
        size_t b = q / ((size_t)wo * ho);
        int y0 = oy * 2 - 1 < 0 ? 0 : oy * 2 - 1, y1 = oy * 2 + 1;
        int x0 = ox * 2 - 1 < 0 ? 0 : ox * 2 - 1, x1 = ox * 2 + 1;
        if (y1 >= h) y1 = h - 1;
        if (x1 >= w) x1 = w - 1;
        float *d = y + q * cch;
        for (int c = 0; c < cch; c += 4) {
            v4 mx = ld4(x + ((b * h + y0) * w + x0) * cch + c);
            for (int iy = y0; iy <= y1; iy++)
                for (int ix = x0; ix <= x1; ix++) {
                    v4 v = ld4(x + ((b * h + iy) * w + ix) * cch + c);
                    v4i gt = v > mx;
                    mx = (v4)(((v4i)v & gt) | ((v4i)mx & ~gt));
                }
            st4(d + c, mx);
        }
    }
    *pho = ho;
    *pwo = wo;
}

static int out_size(int v, int k, int s, int p) { return (v + 2 * p - k) / s + 1; }

int mm_resnet_forward(mm_resnet *m, int n, int h, int w, const float *x,
                      float *out)
{
    if (n < 1 || h < 32 || w < 32) {
        mm__set_error("resnet: input %d x %d x %d, need at least 1 x 32 x 32",
                      n, h, w);
        return -1;
    }
    /* largest activation: the stem's output or layer1's (4x the channels
     * at the max-pooled size) */
    int sh = out_size(h, 7, 2, 3), sw = out_size(w, 7, 2, 3);
    int ph = (sh - 1) / 2 + 1, pw = (sw - 1) / 2 + 1;
    size_t big = (size_t)n * sh * sw * 64, l1 = (size_t)n * ph * pw * 256;
    if (l1 > big) big = l1;
    for (int i = 0; i < NBUF; i++) grow(&m->buf[i], &m->cap[i], big);
    int nt = n_threads();
    if (nt > m->nts) {
        m->ts = mm_realloc(m->ts, nt * sizeof *m->ts);
        memset(m->ts + m->nts, 0, (nt - m->nts) * sizeof *m->ts);
        m->nts = nt;
    }
    int blas_nt = openblas_get_num_threads ? openblas_get_num_threads() : 0;
    if (openblas_set_num_threads && blas_nt != 1) openblas_set_num_threads(1);
    float **B = m->buf;
    int hh, ww;
    const conv *c = m->cv;
    conv_fwd(m, c++, x, n, h, w, B[0], 0, &hh, &ww);
    maxpool(B[0], n, hh, ww, 64, B[1], &hh, &ww);
    /* cur: block input; t1, t2: inside the block; sc: shortcut/output */
    float *cur = B[1], *t1 = B[0], *t2 = B[2], *sc = B[3];
    /* t1 holds the block's first conv already (fused into the previous
     * block's last: both are 1x1 stride 1, row by row) */
    int have1 = 0;
    const conv *end = m->cv + m->nconv;
    for (int l = 1; l <= m->layer; l++)
        for (int b = 0; b < nblocks[l - 1]; b++) {
            int h1 = hh, w1 = ww, h2, w2, h3, w3;
            if (!have1) conv_fwd(m, c, cur, n, hh, ww, t1, 0, &h1, &w1);
            conv_fwd(m, c + 1, t1, n, h1, w1, t2, 0, &h2, &w2);
            const conv *nx = c + (b == 0 ? 4 : 3);
            if (nx >= end || nx->c.k != 1 || nx->c.stride != 1) nx = NULL;
            if (b == 0) {
                conv_fwd(m, c + 3, cur, n, hh, ww, sc, 0, &h3, &w3);
                conv_fwd2(m, c + 2, t2, n, h2, w2, sc, 1, nx, t1, &h3, &w3);
                float *tmp = cur;
                cur = sc;
                sc = tmp;
            } else {
                /* the block's input is its own shortcut: accumulate onto it */
                conv_fwd2(m, c + 2, t2, n, h2, w2, cur, 1, nx, t1, &h3, &w3);
            }
            have1 = nx != NULL;
            c += b == 0 ? 4 : 3;
            hh = h3;
            ww = w3;
        }
    int dim = mm_resnet_dim(m);
    size_t hw = (size_t)hh * ww;
    _Pragma("omp parallel for schedule(static)")
    for (int i = 0; i < n; i++) {
        double *s = mm_calloc(dim, sizeof *s);
        for (size_t p = 0; p < hw; p++) {
            const float *r = cur + ((size_t)i * hw + p) * dim;
            for (int o = 0; o < dim; o++) s[o] += r[o];
        }
        for (int o = 0; o < dim; o++) out[(size_t)i * dim + o] = (float)(s[o] / hw);
        free(s);
    }
    if (openblas_set_num_threads && blas_nt > 1) openblas_set_num_threads(blas_nt);
    return 0;
}
