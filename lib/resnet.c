/* resnet.c: ResNet-50 trunk inference on the CPU (mm/resnet.h).
 *
 * Activations are NHWC f32 for a whole batch of tiles, so every convolution
 * is one GEMM with the pixels of all tiles as rows:
 *   - 1x1 stride 1: sgemm straight on the activation (no copy);
 *   - 1x1 stride 2 (downsample): a subsample copy, then sgemm;
 *   - 3x3 stride 1: Winograd F(4x4, 3x3) (Lavin and Gray 2016): 36 sgemms
 *     of (tiles, Cin) x (Cin, Cout), 4x fewer multiplications than direct;
 *   - 7x7 stem and 3x3 stride 2: im2col in row chunks, then sgemm.
 * BatchNorm is folded into the weights at load time; bias, ReLU and the
 * residual add are one pass over each output chunk while it is in cache
 * (the residual by letting sgemm accumulate onto the shortcut, beta = 1).
 * All scratch memory is held by the model and reused across calls.
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <cblas.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mm/resnet.h"
#include "mm/safetensors.h"

#define OMP_FOR _Pragma("omp parallel for schedule(static)")
#define BN_EPS 1e-5

// ---- SHA-256 (FIPS 180-4) for the weights digest ---------------------------

typedef struct {
    uint32_t h[8];
    uint64_t len;
    uint8_t buf[64];
    size_t nbuf;
} sha256;

static const uint32_t sha_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1,
    0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
    0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
    0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
    0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
    0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
    0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

static uint32_t ror(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

static void sha_block(sha256 *s, const uint8_t *p)
{
    uint32_t w[64], a[8];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ror(w[i - 15], 7) ^ ror(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ror(w[i - 2], 17) ^ ror(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    memcpy(a, s->h, sizeof a);
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = a[7] + (ror(a[4], 6) ^ ror(a[4], 11) ^ ror(a[4], 25)) +
                      ((a[4] & a[5]) ^ (~a[4] & a[6])) + sha_k[i] + w[i];
        uint32_t t2 = (ror(a[0], 2) ^ ror(a[0], 13) ^ ror(a[0], 22)) +
                      ((a[0] & a[1]) ^ (a[0] & a[2]) ^ (a[1] & a[2]));
        memmove(a + 1, a, 7 * sizeof *a);
        a[4] += t1;
        a[0] = t1 + t2;
    }
    for (int i = 0; i < 8; i++) s->h[i] += a[i];
}

static void sha_init(sha256 *s)
{
    static const uint32_t h0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372,
                                   0xa54ff53a, 0x510e527f, 0x9b05688c,
                                   0x1f83d9ab, 0x5be0cd19};
    memcpy(s->h, h0, sizeof h0);
    s->len = 0;
    s->nbuf = 0;
}

static void sha_update(sha256 *s, const uint8_t *p, size_t n)
{
    s->len += n;
    while (n) {
        size_t k = 64 - s->nbuf < n ? 64 - s->nbuf : n;
        memcpy(s->buf + s->nbuf, p, k);
        s->nbuf += k;
        p += k;
        n -= k;
        if (s->nbuf == 64) {
            sha_block(s, s->buf);
            s->nbuf = 0;
        }
    }
}

static void sha_hex(sha256 *s, char out[65])
{
    uint64_t bits = s->len * 8;
    uint8_t pad[72] = {0x80};
    size_t np = (s->nbuf < 56 ? 56 : 120) - s->nbuf;
    for (int i = 0; i < 8; i++) pad[np + i] = (uint8_t)(bits >> (56 - 8 * i));
    sha_update(s, pad, np + 8);
    for (int i = 0; i < 8; i++) snprintf(out + 8 * i, 9, "%08x", s->h[i]);
}

/* "sha256:HEX" of the file at PATH into OUT; -1 with errno's message. */
static int file_digest(const char *path, char *out, size_t outsz)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        mm__set_error("%s: %s", path, strerror(errno));
        return -1;
    }
    sha256 s;
    sha_init(&s);
    uint8_t *buf = mm_malloc(1 << 20);
    size_t n;
    while ((n = fread(buf, 1, 1 << 20, f)) > 0) sha_update(&s, buf, n);
    int bad = ferror(f);
    fclose(f);
    free(buf);
    if (bad) {
        mm__set_error("%s: read error", path);
        return -1;
    }
    char hex[65];
    sha_hex(&s, hex);
    snprintf(out, outsz, "sha256:%s", hex);
    return 0;
}

// ---- the network -----------------------------------------------------------

typedef struct {
    mm_resnet_conv c; /* public view: name, shape, folded w (OIHW), b */
    char name[32];
    float *w, *b;
    float *wg; /* (k, k, cin, cout): the GEMM's B for im2col / 1x1 */
    float *wu; /* (36, cin, cout): Winograd-domain weights, 3x3 stride 1 */
} conv;

enum { NBUF = 4 };

struct mm_resnet {
    int layer, nconv;
    conv *cv;
    char digest[80];
    /* scratch, grown on demand: activations, im2col/subsample, Winograd */
    float *buf[NBUF];
    size_t cap[NBUF];
    float *col, *wv, *wm;
    size_t colcap, wvcap, wmcap;
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
    uint64_t seed, i;
} rnd;

static double rnd_u(rnd *r)
{
    uint64_t z = r->seed + (++r->i) * UINT64_C(0x9E3779B97F4A7C15);
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    z ^= z >> 31;
    return (double)(z >> 40) / 16777216.0;
}

typedef struct {
    mm_resnet *m;
    mm_st *st; /* NULL: random */
    rnd r;
    float *tmp; /* 4 x cout for the BatchNorm vectors */
} loader;

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
    c->wg = NULL;
    c->wu = NULL;
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
    /* GEMM layout (ky, kx, cin, cout) */
    c->wg = mm_malloc(nw * sizeof *c->wg);
    for (int o = 0; o < cout; o++)
        for (int i = 0; i < cin; i++)
            for (int ky = 0; ky < k; ky++)
                for (int kx = 0; kx < k; kx++)
                    c->wg[(((size_t)ky * k + kx) * cin + i) * cout + o] =
                        c->w[(((size_t)o * cin + i) * k + ky) * k + kx];
    if (k == 3 && stride == 1) {
        /* U = G g G^T per (o, i), in double, stored (36, cin, cout) */
        static const double G[6][3] = {{1.0 / 4, 0, 0},
                                       {-1.0 / 6, -1.0 / 6, -1.0 / 6},
                                       {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                                       {1.0 / 24, 1.0 / 12, 1.0 / 6},
                                       {1.0 / 24, -1.0 / 12, 1.0 / 6},
                                       {0, 0, 1}};
        c->wu = mm_malloc((size_t)36 * cin * cout * sizeof *c->wu);
        for (int o = 0; o < cout; o++)
            for (int i = 0; i < cin; i++) {
                const float *f = c->w + ((size_t)o * cin + i) * 9;
                double t[6][3];
                for (int a = 0; a < 6; a++)
                    for (int kx = 0; kx < 3; kx++)
                        t[a][kx] = G[a][0] * f[kx] + G[a][1] * f[3 + kx] +
                                   G[a][2] * f[6 + kx];
                for (int a = 0; a < 6; a++)
                    for (int b = 0; b < 6; b++)
                        c->wu[((size_t)(a * 6 + b) * cin + i) * cout + o] =
                            (float)(t[a][0] * G[b][0] + t[a][1] * G[b][1] +
                                    t[a][2] * G[b][2]);
            }
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
        L.r.seed = s;
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
    if (L.st) mm_st_close(L.st);
    if (rc == 0) {
        if (L.st)
            rc = file_digest(weights, m->digest, sizeof m->digest);
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
        free(m->cv[i].wg);
        free(m->cv[i].wu);
    }
    free(m->cv);
    for (int i = 0; i < NBUF; i++) free(m->buf[i]);
    free(m->col);
    free(m->wv);
    free(m->wm);
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

// ---- forward ---------------------------------------------------------------

static float *grow(float **p, size_t *cap, size_t n)
{
    if (n > *cap) {
        free(*p);
        *p = mm_malloc(n * sizeof **p);
        *cap = n;
    }
    return *p;
}

/* Y[r, :] = act(Y[r, :] + b) for R rows of COUT. */
static void epilogue(float *y, size_t r, int cout, const float *b, int relu)
{
    OMP_FOR
    for (size_t i = 0; i < r; i++) {
        float *p = y + i * cout;
        if (relu)
            for (int o = 0; o < cout; o++) {
                float v = p[o] + b[o];
                p[o] = v > 0 ? v : 0;
            }
        else
            for (int o = 0; o < cout; o++) p[o] += b[o];
    }
}

/* Rows per GEMM chunk: the output chunk stays near 1 MiB (L2-resident) for
 * the epilogue, and at least 512 rows so that sgemm stays efficient. */
static size_t chunk_rows(int cout)
{
    size_t r = ((size_t)1 << 18) / cout;
    return r < 512 ? 512 : r;
}

/* Y (M, cout) = act(A (M, K) W (K, cout) + b [+ Y when ACC]) in chunks. */
static void gemm_act(const conv *c, const float *a, size_t mrows, int kdim,
                     float *y, int acc, int relu)
{
    size_t ch = chunk_rows(c->c.cout);
    for (size_t r0 = 0; r0 < mrows; r0 += ch) {
        size_t r = mrows - r0 < ch ? mrows - r0 : ch;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)r,
                    c->c.cout, kdim, 1.0f, a + r0 * kdim, kdim, c->wg,
                    c->c.cout, acc ? 1.0f : 0.0f, y + r0 * c->c.cout,
                    c->c.cout);
        epilogue(y + r0 * c->c.cout, r, c->c.cout, c->b, relu);
    }
}

/* im2col rows [R0, R0 + R) of the output (N, HO, WO) of conv C on X (N, H,
 * W, cin) into COL (R, k k cin), zeros outside the image. */
static void im2col(const conv *c, const float *x, int h, int w, int ho,
                   int wo, size_t r0, size_t r, float *col)
{
    int k = c->c.k, s = c->c.stride, p = c->c.pad, cin = c->c.cin;
    size_t kk = (size_t)k * k * cin;
    OMP_FOR
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

static void conv_im2col(mm_resnet *m, const conv *c, const float *x, int n,
                        int h, int w, int ho, int wo, float *y)
{
    size_t kk = (size_t)c->c.k * c->c.k * c->c.cin;
    size_t rows = (size_t)n * ho * wo, ch = chunk_rows(c->c.cout);
    float *col = grow(&m->col, &m->colcap, (rows < ch ? rows : ch) * kk);
    for (size_t r0 = 0; r0 < rows; r0 += ch) {
        size_t r = rows - r0 < ch ? rows - r0 : ch;
        im2col(c, x, h, w, ho, wo, r0, r, col);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)r,
                    c->c.cout, (int)kk, 1.0f, col, (int)kk, c->wg, c->c.cout,
                    0.0f, y + r0 * c->c.cout, c->c.cout);
        epilogue(y + r0 * c->c.cout, r, c->c.cout, c->b, c->c.relu);
    }
}

/* Winograd F(4x4, 3x3), pad 1, stride 1: B^T d B per 6x6 input tile,
 * 36 GEMMs with U = G g G^T, A^T m A per 4x4 output tile. Tiles are
 * processed in groups so that the transformed data stays near L2. */
static void conv_wino(mm_resnet *m, const conv *c, const float *x, int n,
                      int h, int w, float *y)
{
    int cin = c->c.cin, cout = c->c.cout;
    int th = (h + 3) / 4, tw = (w + 3) / 4;
    size_t ntile = (size_t)n * th * tw;
    size_t grp = ((size_t)1 << 20) / (36 * (size_t)(cin > cout ? cin : cout));
    if (grp < 64) grp = 64;
    if (grp > ntile) grp = ntile;
    float *V = grow(&m->wv, &m->wvcap, 36 * grp * cin);
    float *M = grow(&m->wm, &m->wmcap, 36 * grp * cout);
    for (size_t t0 = 0; t0 < ntile; t0 += grp) {
        size_t nt = ntile - t0 < grp ? ntile - t0 : grp;
        /* input transform: V[xi][t][ci] */
        OMP_FOR
        for (size_t t = 0; t < nt; t++) {
            size_t q = t0 + t;
            int tx = (int)(q % tw), ty = (int)(q / tw % th);
            size_t b = q / ((size_t)tw * th);
            const float *row[6][6];
            for (int a = 0; a < 6; a++)
                for (int e = 0; e < 6; e++) {
                    int iy = ty * 4 - 1 + a, ix = tx * 4 - 1 + e;
                    row[a][e] = iy < 0 || iy >= h || ix < 0 || ix >= w
                                    ? NULL
                                    : x + ((b * h + iy) * w + ix) * cin;
                }
            for (int ci = 0; ci < cin; ci++) {
                float d[6][6], u[6][6];
                for (int a = 0; a < 6; a++)
                    for (int e = 0; e < 6; e++)
                        d[a][e] = row[a][e] ? row[a][e][ci] : 0.0f;
                /* u = B^T d (rows) */
                for (int e = 0; e < 6; e++) {
                    float d0 = d[0][e], d1 = d[1][e], d2 = d[2][e],
                          d3 = d[3][e], d4 = d[4][e], d5 = d[5][e];
                    u[0][e] = 4 * d0 - 5 * d2 + d4;
                    u[1][e] = -4 * (d1 + d2) + d3 + d4;
                    u[2][e] = 4 * (d1 - d2) - d3 + d4;
                    u[3][e] = -2 * (d1 - d3) - d2 + d4;
                    u[4][e] = 2 * (d1 - d3) - d2 + d4;
                    u[5][e] = 4 * d1 - 5 * d3 + d5;
                }
                /* (B^T d) B (columns) */
                for (int a = 0; a < 6; a++) {
                    float d0 = u[a][0], d1 = u[a][1], d2 = u[a][2],
                          d3 = u[a][3], d4 = u[a][4], d5 = u[a][5];
                    float *v = V + ((size_t)(a * 6) * grp + t) * cin + ci;
                    size_t st = grp * cin;
                    v[0] = 4 * d0 - 5 * d2 + d4;
                    v[st] = -4 * (d1 + d2) + d3 + d4;
                    v[2 * st] = 4 * (d1 - d2) - d3 + d4;
                    v[3 * st] = -2 * (d1 - d3) - d2 + d4;
                    v[4 * st] = 2 * (d1 - d3) - d2 + d4;
                    v[5 * st] = 4 * d1 - 5 * d3 + d5;
                }
            }
        }
        for (int xi = 0; xi < 36; xi++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nt,
                        cout, cin, 1.0f, V + (size_t)xi * grp * cin, cin,
                        c->wu + (size_t)xi * cin * cout, cout, 0.0f,
                        M + (size_t)xi * grp * cout, cout);
        /* output transform + bias + ReLU */
        OMP_FOR
        for (size_t t = 0; t < nt; t++) {
            size_t q = t0 + t;
            int tx = (int)(q % tw), ty = (int)(q / tw % th);
            size_t b = q / ((size_t)tw * th);
            for (int o = 0; o < cout; o++) {
                float mm[6][6], r[4][6], out[4][4];
                for (int a = 0; a < 6; a++)
                    for (int e = 0; e < 6; e++)
                        mm[a][e] = M[((size_t)(a * 6 + e) * grp + t) * cout +
                                     o];
                for (int e = 0; e < 6; e++) {
                    float m1 = mm[1][e], m2 = mm[2][e], m3 = mm[3][e],
                          m4 = mm[4][e];
                    r[0][e] = mm[0][e] + m1 + m2 + m3 + m4;
                    r[1][e] = m1 - m2 + 2 * (m3 - m4);
                    r[2][e] = m1 + m2 + 4 * (m3 + m4);
                    r[3][e] = m1 - m2 + 8 * (m3 - m4) + mm[5][e];
                }
                for (int a = 0; a < 4; a++) {
                    float m1 = r[a][1], m2 = r[a][2], m3 = r[a][3],
                          m4 = r[a][4];
                    out[a][0] = r[a][0] + m1 + m2 + m3 + m4;
                    out[a][1] = m1 - m2 + 2 * (m3 - m4);
                    out[a][2] = m1 + m2 + 4 * (m3 + m4);
                    out[a][3] = m1 - m2 + 8 * (m3 - m4) + r[a][5];
                }
                for (int a = 0; a < 4; a++) {
                    int oy = ty * 4 + a;
                    if (oy >= h) break;
                    for (int e = 0; e < 4; e++) {
                        int ox = tx * 4 + e;
                        if (ox >= w) break;
                        float v = out[a][e] + c->b[o];
                        y[((b * h + oy) * w + ox) * cout + o] =
                            c->c.relu && v < 0 ? 0 : v;
                    }
                }
            }
        }
    }
}

/* Y = conv C of X (N, H, W, cin) -> (N, HO, WO, cout), with bias and the
 * conv's ReLU; with ACC, Y already holds the shortcut and the ReLU follows
 * the sum. */
static void conv_fwd(mm_resnet *m, const conv *c, const float *x, int n,
                     int h, int w, float *y, int acc, int *pho, int *pwo)
{
    int k = c->c.k, s = c->c.stride, p = c->c.pad;
    int ho = (h + 2 * p - k) / s + 1, wo = (w + 2 * p - k) / s + 1;
    size_t rows = (size_t)n * ho * wo;
    *pho = ho;
    *pwo = wo;
    if (k == 1 && s == 1) {
        gemm_act(c, x, rows, c->c.cin, y, acc, c->c.relu || acc);
    } else if (k == 1) {
        int cin = c->c.cin;
        float *col = grow(&m->col, &m->colcap, rows * cin);
        OMP_FOR
        for (size_t q = 0; q < rows; q++) {
            int ox = (int)(q % wo), oy = (int)(q / wo % ho);
            size_t b = q / ((size_t)wo * ho);
            memcpy(col + q * cin, x + ((b * h + oy * s) * w + ox * s) * cin,
                   cin * sizeof *col);
        }
        gemm_act(c, col, rows, cin, y, acc, c->c.relu || acc);
    } else if (c->wu) {
        conv_wino(m, c, x, n, h, w, y);
    } else {
        conv_im2col(m, c, x, n, h, w, ho, wo, y);
    }
}

/* 3x3 stride-2 pad-1 max-pool, NHWC (padding never wins, as torch). */
static void maxpool(const float *x, int n, int h, int w, int cch, float *y,
                    int *pho, int *pwo)
{
    int ho = (h - 1) / 2 + 1, wo = (w - 1) / 2 + 1;
    size_t rows = (size_t)n * ho * wo;
    OMP_FOR
    for (size_t q = 0; q < rows; q++) {
        int ox = (int)(q % wo), oy = (int)(q / wo % ho);
        size_t b = q / ((size_t)wo * ho);
        float *d = y + q * cch;
        for (int c = 0; c < cch; c++) d[c] = -FLT_MAX;
        for (int ky = -1; ky <= 1; ky++) {
            int iy = oy * 2 + ky;
            if (iy < 0 || iy >= h) continue;
            for (int kx = -1; kx <= 1; kx++) {
                int ix = ox * 2 + kx;
                if (ix < 0 || ix >= w) continue;
                const float *sp = x + ((b * h + iy) * w + ix) * cch;
                for (int c = 0; c < cch; c++)
                    if (sp[c] > d[c]) d[c] = sp[c];
            }
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
    float **B = m->buf;
    int hh, ww;
    const conv *c = m->cv;
    conv_fwd(m, c++, x, n, h, w, B[0], 0, &hh, &ww);
    maxpool(B[0], n, hh, ww, 64, B[1], &hh, &ww);
    /* cur: block input; t1, t2: inside the block; sc: shortcut/output */
    float *cur = B[1], *t1 = B[0], *t2 = B[2], *sc = B[3];
    for (int l = 1; l <= m->layer; l++)
        for (int b = 0; b < nblocks[l - 1]; b++) {
            int h1, w1, h2, w2, h3, w3;
            conv_fwd(m, c, cur, n, hh, ww, t1, 0, &h1, &w1);
            conv_fwd(m, c + 1, t1, n, h1, w1, t2, 0, &h2, &w2);
            if (b == 0) {
                conv_fwd(m, c + 3, cur, n, hh, ww, sc, 0, &h3, &w3);
                conv_fwd(m, c + 2, t2, n, h2, w2, sc, 1, &h3, &w3);
                float *tmp = cur;
                cur = sc;
                sc = tmp;
                c += 4;
            } else {
                /* the block's input is its own shortcut: accumulate onto it */
                conv_fwd(m, c + 2, t2, n, h2, w2, cur, 1, &h3, &w3);
                c += 3;
            }
            hh = h3;
            ww = w3;
        }
    int dim = mm_resnet_dim(m);
    size_t hw = (size_t)hh * ww;
    OMP_FOR
    for (int i = 0; i < n; i++) {
        for (int o = 0; o < dim; o++) {
            double s = 0;
            for (size_t p = 0; p < hw; p++) s += cur[((size_t)i * hw + p) * dim + o];
            out[(size_t)i * dim + o] = (float)(s / hw);
        }
    }
    return 0;
}
