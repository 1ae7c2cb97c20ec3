/* mm-synth: a synthetic multimodal cohort in a directory: H&E-like
 * pyramidal TIFF slides (libvips), an RNA count table, a clinical table
 * with survival, and the truth that made them, so that every stage of the
 * pipeline (wsi-tile, patch-embed, rna-select, mm-train, km-plot) runs on
 * something whose answer is known.
 *
 * One hidden risk drives the survival times; part of it is seen by the
 * RNA only, part by the image only, part by both, so fusing the two can
 * beat either. Every random draw comes from mm_rng streams derived from
 * --seed, one stream per concern (cohort, RNA, each slide), so changing
 * the gene count leaves the slides and the survival as they were, and the
 * same options give byte-identical files.
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <vips/vips.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "mm/rng.h"
#include "toolutil.h"

static void usage(FILE *fp)
{
    fprintf(fp,
"Usage: mm-synth [options] -o DIR\n"
"\n"
"Write a synthetic cohort into DIR: slides/*.tif (H&E-like tiled TIFFs),\n"
"rna.tsv (genes x samples counts), clinical.tsv (subtype, survival),\n"
"slides.tsv (slide to patient map) and the truth (truth.tsv, genes.tsv,\n"
"truth-slides.tsv, README). DIR must not exist (see --force).\n"
"\n"
"Cohort:\n"
"  -o, --output DIR         the cohort directory (required)\n"
"  -n, --patients N         patients [30]\n"
"  -s, --seed S             random seed [1]\n"
"      --censoring F        expected fraction censored, in [0, 0.95] [0.3]\n"
"      --median-survival M  baseline median survival, months [36]\n"
"      --risk-effect B      log hazard ratio per SD of the hidden score [1]\n"
"      --subtype-effect B   log hazard ratio of subtype solid [0.7]\n"
"Slides:\n"
"      --no-slides          tables only\n"
"      --slide-size W[xH]   slide size in 20x pixels [2048]\n"
"      --mpp X              microns per pixel of a 20x slide [0.5]\n"
"      --two-slides K       patients with two slides (-A, -B) [2]\n"
"      --at-40x K           slides scanned at 40x (mpp / 2), no pyramid [2]\n"
"      --image-effect X     strength of the risk in the image [0.5]\n"
"      --compression C      jpeg or deflate [jpeg]\n"
"      --quality Q          JPEG quality [85]\n"
"RNA:\n"
"      --genes G            genes [500]\n"
"      --subtype-genes K    genes that differ between subtypes [30]\n"
"      --risk-genes K       genes that follow the RNA part of the risk [30]\n"
"      --missing F          fraction of values written as NA [0.01]\n"
"Other:\n"
"      --force              replace DIR when it is an earlier mm-synth cohort\n"
"  -@, --threads N          threads for rendering [1]\n"
"  -v, -q, -h, -V           more/less on stderr, help, version\n"
"Exit status: 0 ok, 1 failure, 2 bad usage.\n");
}

// ---- options and the cohort

typedef struct {
    const char *out;
    int64_t patients;
    uint64_t seed;
    double censoring, median, beta_risk, beta_sub;
    int slides;                 /* 0 with --no-slides */
    int64_t w20, h20;           /* slide size in 20x pixels */
    double mpp;
    int64_t two_slides, at40;
    double img_effect;
    int deflate, quality;
    int64_t genes, sub_genes, risk_genes;
    double missing;
    int force;
} opts;

typedef struct {
    char id[32];
    int subtype;                /* 0 glandular, 1 solid */
    double c, r, m;             /* shared, RNA-only, image-only parts */
    double eta;                 /* log relative hazard */
    double t_event, t_censor;
    int first_slide, nslides;
} patient;

typedef struct {
    char id[40];
    int patient;
    int at40;
    double mpp;
    int64_t w, h;
    int levels;
    double tissue_frac, nuclei_mm2;
} slide;

static const char *const subtype_name[2] = {"glandular", "solid"};

/* One stream per concern, from the seed and a tag. */
static void sub_rng(mm_rng *g, uint64_t seed, uint64_t tag)
{
    uint64_t x = seed ^ (tag * 0xD1B54A32D192ED03ull);
    mm_rng_seed(g, mm_splitmix64(&x));
}

static double normal(mm_rng *g)
{
    double z[2];
    mm_rng_normal2(g, z);
    return z[0];
}

static double unif(mm_rng *g, double a, double b) { return a + (b - a) * mm_rng_uniform(g); }

// ---- output directory: everything goes into DIR.tmp-XXXXXX, renamed at the end

static char *g_tmpdir;

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void rm_tree(const char *path) { nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

static void cleanup_tmp(void)
{
    if (g_tmpdir) rm_tree(g_tmpdir);
    free(g_tmpdir);
    g_tmpdir = NULL;
}

static char *path_in(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = mm_malloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static FILE *open_in(const char *name, char **path)
{
    *path = path_in(g_tmpdir, name);
    FILE *fp = fopen(*path, "w");
    if (!fp) mm_die_errno("%s", *path);
    return fp;
}

static void close_file(FILE *fp, char *path)
{
    if (ferror(fp) | fclose(fp)) mm_die_errno("%s: write failed", path);
    free(path);
}

// ---- survival

#define WEIBULL_SHAPE 1.3
#define QUAD 400

/* Weibull proportional hazards: S(t) = exp(-(t / lambda)^k exp(eta)). */
static double weibull_time(double lambda, double eta, double u)
{
    return lambda * pow(-log(u) * exp(-eta), 1.0 / WEIBULL_SHAPE);
}

/* The expected fraction censored by exponential censoring of rate MU:
 * mean over patients of P(C < T) = 1 - E[exp(-mu T)], E by quadrature on
 * T's quantiles. */
static double censored_fraction(const patient *p, int64_t n, double lambda, double mu)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        for (int j = 0; j < QUAD; j++)
            s += exp(-mu * weibull_time(lambda, p[i].eta, (j + 0.5) / QUAD));
    return 1 - s / ((double)n * QUAD);
}

static double censor_rate(const patient *p, int64_t n, double lambda, double target)
{
    if (target <= 0) return 0;
    double lo = log(1e-8), hi = log(1e3);
    for (int it = 0; it < 80; it++) {
        double mid = 0.5 * (lo + hi);
        if (censored_fraction(p, n, lambda, exp(mid)) < target) lo = mid;
        else hi = mid;
    }
    return exp(0.5 * (lo + hi));
}

// ---- the cohort: subtypes, hidden risk, survival, slides

static void make_cohort(const opts *o, patient *pt, slide **sl_out, int64_t *nsl_out,
                        double *mu_out)
{
    mm_rng g;
    sub_rng(&g, o->seed, 1);
    int64_t n = o->patients;
    int width = 4;
    for (int64_t k = n; k >= 10000; k /= 10) width++;
    /* balanced subtypes: half of each, shuffled */
    int *sub = mm_malloc((size_t)n * sizeof *sub);
    for (int64_t i = 0; i < n; i++) sub[i] = i < n / 2 ? 1 : 0;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)mm_rng_below(&g, (uint64_t)i + 1);
        int t = sub[i]; sub[i] = sub[j]; sub[j] = t;
    }
    for (int64_t i = 0; i < n; i++) {
        patient *p = &pt[i];
        snprintf(p->id, sizeof p->id, "SYN-%0*d", width & 15, (int)(i + 1));
        p->subtype = sub[i];
        p->c = normal(&g);
        p->r = normal(&g);
        p->m = normal(&g);
        p->eta = o->beta_sub * (p->subtype - 0.5) + o->beta_risk * (p->c + p->r + p->m) / sqrt(3.0);
    }
    free(sub);
    double lambda = o->median / pow(log(2.0), 1.0 / WEIBULL_SHAPE);
    double mu = censor_rate(pt, n, lambda, o->censoring);
    for (int64_t i = 0; i < n; i++) {
        pt[i].t_event = weibull_time(lambda, pt[i].eta, 1 - mm_rng_uniform(&g));
        pt[i].t_censor = mu > 0 ? -log(1 - mm_rng_uniform(&g)) / mu : INFINITY;
    }
    *mu_out = mu;

    /* which patients have two slides, which slides are 40x: both drawn
     * from this stream after the survival, so they do not move it */
    int *two = mm_calloc((size_t)n, sizeof *two);
    int64_t k2 = o->slides ? (o->two_slides < n ? o->two_slides : n) : 0;
    for (int64_t done = 0; done < k2;) {
        int64_t i = (int64_t)mm_rng_below(&g, (uint64_t)n);
        if (!two[i]) { two[i] = 1; done++; }
    }
    int64_t nsl = 0;
    if (o->slides)
        for (int64_t i = 0; i < n; i++) nsl += 1 + two[i];
    slide *sl = mm_calloc(nsl ? (size_t)nsl : 1, sizeof *sl);
    int64_t s = 0;
    for (int64_t i = 0; i < n; i++) {
        pt[i].first_slide = (int)s;
        pt[i].nslides = o->slides ? 1 + two[i] : 0;
        for (int k = 0; k < pt[i].nslides; k++, s++) {
            if (two[i]) snprintf(sl[s].id, sizeof sl[s].id, "%s-%c", pt[i].id, 'A' + k);
            else snprintf(sl[s].id, sizeof sl[s].id, "%s", pt[i].id);
            sl[s].patient = (int)i;
        }
    }
    int64_t k40 = o->at40 < nsl ? o->at40 : nsl;
    for (int64_t done = 0; done < k40;) {
        int64_t j = (int64_t)mm_rng_below(&g, (uint64_t)nsl);
        if (!sl[j].at40) { sl[j].at40 = 1; done++; }
    }
    for (int64_t j = 0; j < nsl; j++) {
        int f = sl[j].at40 ? 2 : 1;
        sl[j].mpp = o->mpp / f;
        sl[j].w = o->w20 * f;
        sl[j].h = o->h20 * f;
    }
    free(two);
    *sl_out = sl;
    *nsl_out = nsl;
}

// ---- rendering: a scene in microns, drawn at the slide's own mpp

/* Ruifrok and Johnston's optical densities of haematoxylin and eosin. */
static const float stain_h[3] = {0.650f, 0.704f, 0.286f};
static const float stain_e[3] = {0.072f, 0.990f, 0.105f};
#define BACKGROUND 243.0f
#define FIELD_STEP 4.0      /* microns between tissue-field samples */
#define STRIP 64            /* rows rendered at once */

static inline uint32_t hash3(uint32_t x, uint32_t y, uint32_t s)
{
    uint32_t h = s ^ (x * 0x27d4eb2dU) ^ (y * 0x165667b1U);
    h ^= h >> 15; h *= 0x2c1b3c6dU;
    h ^= h >> 12; h *= 0x297a2d39U;
    h ^= h >> 15;
    return h;
}

static inline float hash01(uint32_t x, uint32_t y, uint32_t s)
{
    return (float)(hash3(x, y, s) >> 8) * (1.0f / 16777216.0f);
}

/* Value noise in [0, 1) on a unit lattice, smoothly interpolated; the
 * lattice values come from a table (NOISE_N x NOISE_N, wrapping) filled by
 * the hash, which is cheaper than hashing four corners per pixel. */
#define NOISE_N 256
static float vnoise(const float *tab, float x, float y)
{
    float fx = floorf(x), fy = floorf(y);
    uint32_t ix = (uint32_t)(int32_t)fx & (NOISE_N - 1), iy = (uint32_t)(int32_t)fy & (NOISE_N - 1);
    uint32_t ix1 = (ix + 1) & (NOISE_N - 1), iy1 = (iy + 1) & (NOISE_N - 1);
    float tx = x - fx, ty = y - fy;
    tx = tx * tx * (3 - 2 * tx);
    ty = ty * ty * (3 - 2 * ty);
    const float *r0 = tab + iy * NOISE_N, *r1 = tab + iy1 * NOISE_N;
    float top = r0[ix] + (r0[ix1] - r0[ix]) * tx, bot = r1[ix] + (r1[ix1] - r1[ix]) * tx;
    return top + (bot - top) * ty;
}

static float *noise_table(uint32_t seed)
{
    float *t = mm_malloc(NOISE_N * NOISE_N * sizeof *t);
    for (uint32_t y = 0; y < NOISE_N; y++)
        for (uint32_t x = 0; x < NOISE_N; x++) t[y * NOISE_N + x] = hash01(x, y, seed);
    return t;
}

/* 10^-od for od in [0, OD_MAX), OD_STEPS a unit: within 0.2 grey levels */
#define OD_STEPS 4096
#define OD_MAX 6
static float od_lut[OD_STEPS * OD_MAX + 1];

static void init_od_lut(void)
{
    for (int i = 0; i <= OD_STEPS * OD_MAX; i++)
        od_lut[i] = BACKGROUND * (float)pow(10.0, -(i + 0.5) / OD_STEPS);
}

typedef struct { float x, y, a, b, ca, sa, h; } nucleus;   /* microns; cos/sin of angle */
typedef struct { float x, y, r; } lumen;

typedef struct {
    double wu, hu;                /* size in microns */
    int gw, gh;                   /* tissue field grid */
    float *field;                 /* microns inside the tissue edge (> 0 in tissue) */
    nucleus *nuc; size_t nnuc;
    lumen *lum; size_t nlum;
    float max_r;                  /* largest nucleus or lumen radius */
    float *edge_noise, *fib1, *fib2, *chrom;  /* noise tables */
    float stroma_e, stroma_h, stain_hs, stain_es;
    float fib_cos, fib_sin;
    uint32_t seed;
} scene;

static float field_at(const scene *sc, double x, double y)
{
    double gx = x / FIELD_STEP, gy = y / FIELD_STEP;
    if (gx < 0) gx = 0;
    if (gy < 0) gy = 0;
    if (gx > sc->gw - 1.001) gx = sc->gw - 1.001;
    if (gy > sc->gh - 1.001) gy = sc->gh - 1.001;
    int ix = (int)gx, iy = (int)gy;
    float tx = (float)(gx - ix), ty = (float)(gy - iy);
    const float *f = sc->field + (size_t)iy * sc->gw + ix;
    float top = f[0] + (f[1] - f[0]) * tx, bot = f[sc->gw] + (f[sc->gw + 1] - f[sc->gw]) * tx;
    return top + (bot - top) * ty;
}

static int cmp_nuc(const void *a, const void *b)
{
    float x = ((const nucleus *)a)->y, y = ((const nucleus *)b)->y;
    return (x > y) - (x < y);
}

static int cmp_lum(const void *a, const void *b)
{
    float x = ((const lumen *)a)->y, y = ((const lumen *)b)->y;
    return (x > y) - (x < y);
}

/* The scene of slide S of patient P: tissue islands, lumens (glandular),
 * nuclei. Their count, size and darkness follow the subtype and the image
 * part of the risk, q = (c + m) / sqrt(2). */
static void make_scene(scene *sc, const opts *o, const patient *p, slide *s, uint64_t tag)
{
    mm_rng g;
    sub_rng(&g, o->seed, tag);
    memset(sc, 0, sizeof *sc);
    sc->seed = (uint32_t)mm_rng_next(&g);
    sc->wu = o->w20 * o->mpp;
    sc->hu = o->h20 * o->mpp;
    sc->gw = (int)ceil(sc->wu / FIELD_STEP) + 2;
    sc->gh = (int)ceil(sc->hu / FIELD_STEP) + 2;
    sc->field = mm_malloc((size_t)sc->gw * sc->gh * sizeof *sc->field);

    /* 1 to 3 islands, R(theta) = R (1 + sum a_k cos(k theta + phi_k)) */
    int nb = 1 + (int)mm_rng_below(&g, 3);
    double frac = unif(&g, 0.38, 0.55);
    double area = frac * sc->wu * sc->hu;
    struct { double x, y, r, a[5], ph[5]; } bl[3];
    for (int b = 0; b < nb; b++) {
        double r = sqrt(area / (nb * M_PI)) * unif(&g, 0.85, 1.15);
        double mx = r * 1.05 < sc->wu / 2 ? r * 1.05 : sc->wu / 2;
        double my = r * 1.05 < sc->hu / 2 ? r * 1.05 : sc->hu / 2;
        bl[b].x = unif(&g, mx, sc->wu - mx);
        bl[b].y = unif(&g, my, sc->hu - my);
        bl[b].r = r;
        for (int k = 0; k < 5; k++) {
            bl[b].a[k] = unif(&g, 0, 0.22 / (k + 1));
            bl[b].ph[k] = unif(&g, 0, 2 * M_PI);
        }
    }
    sc->edge_noise = noise_table((uint32_t)mm_rng_next(&g));
    sc->fib1 = noise_table((uint32_t)mm_rng_next(&g));
    sc->fib2 = noise_table((uint32_t)mm_rng_next(&g));
    sc->chrom = noise_table((uint32_t)mm_rng_next(&g));
    size_t inside = 0;
    for (int j = 0; j < sc->gh; j++)
        for (int i = 0; i < sc->gw; i++) {
            double x = i * FIELD_STEP, y = j * FIELD_STEP, best = -1e30;
            for (int b = 0; b < nb; b++) {
                double dx = x - bl[b].x, dy = y - bl[b].y, th = atan2(dy, dx), rr = 1;
                for (int k = 0; k < 5; k++) rr += bl[b].a[k] * cos((k + 2) * th + bl[b].ph[k]);
                double d = bl[b].r * rr - sqrt(dx * dx + dy * dy);
                if (d > best) best = d;
            }
            /* a ragged edge: 12 um of noise on a 40 um scale */
            best += 12.0 * (vnoise(sc->edge_noise, (float)(x / 40), (float)(y / 40)) - 0.5) * 2;
            sc->field[(size_t)j * sc->gw + i] = (float)best;
            if (best > 0 && x < sc->wu && y < sc->hu) inside++;
        }
    double cells = ceil(sc->wu / FIELD_STEP) * ceil(sc->hu / FIELD_STEP);
    s->tissue_frac = (double)inside / cells;
    double tissue_mm2 = s->tissue_frac * sc->wu * sc->hu * 1e-6;

    double q = (p->c + p->m) / sqrt(2.0), e = o->img_effect;
    int solid = p->subtype;
    double dens = (solid ? 4500 : 1800) * exp(e * q);
    if (dens > 12000) dens = 12000;
    double rad = (solid ? 3.9 : 2.8) * exp(0.25 * e * q);
    double hn = (solid ? 0.95 : 0.75) * exp(0.2 * e * q);
    sc->stroma_e = solid ? 0.15f : 0.24f;
    sc->stroma_h = solid ? 0.10f : 0.03f;
    sc->stain_hs = (float)exp(0.06 * normal(&g));
    sc->stain_es = (float)exp(0.06 * normal(&g));
    double fa = unif(&g, 0, M_PI);
    sc->fib_cos = (float)cos(fa);
    sc->fib_sin = (float)sin(fa);
    s->nuclei_mm2 = dens;

    /* glandular: lumens, each ringed by nuclei */
    size_t want_l = solid ? 0 : (size_t)(140 * tissue_mm2 + 0.5);
    sc->lum = mm_malloc((want_l ? want_l : 1) * sizeof *sc->lum);
    for (size_t tries = 0; sc->nlum < want_l && tries < 50 * want_l + 50; tries++) {
        float x = (float)unif(&g, 0, sc->wu), y = (float)unif(&g, 0, sc->hu);
        float r = (float)unif(&g, 7, 20);
        if (field_at(sc, x, y) > r + 4) sc->lum[sc->nlum++] = (lumen){x, y, r};
    }
    size_t want_n = (size_t)(dens * tissue_mm2 + 0.5);
    sc->nuc = mm_malloc((want_n ? want_n : 1) * sizeof *sc->nuc);
    for (size_t tries = 0; sc->nnuc < want_n && tries < 30 * want_n + 50; tries++) {
        float x, y, ang;
        float a = (float)(rad * exp(0.15 * normal(&g))), b = a * (float)unif(&g, 0.65, 1.0);
        if (sc->nlum && mm_rng_uniform(&g) < 0.6) {
            /* on a lumen's rim, long axis along it */
            const lumen *l = &sc->lum[mm_rng_below(&g, sc->nlum)];
            double th = unif(&g, 0, 2 * M_PI), rr = l->r + b + unif(&g, 0, 1.5);
            x = l->x + (float)(rr * cos(th));
            y = l->y + (float)(rr * sin(th));
            ang = (float)(th + M_PI / 2);
        } else {
            x = (float)unif(&g, 0, sc->wu);
            y = (float)unif(&g, 0, sc->hu);
            ang = (float)unif(&g, 0, M_PI);
        }
        float h = (float)(hn * exp(0.12 * normal(&g)));
        if (field_at(sc, x, y) <= 1) continue;
        int in_lumen = 0;  /* a lumen is empty: no nucleus whose centre is in one */
        for (size_t i = 0; i < sc->nlum && !in_lumen; i++) {
            float dx = x - sc->lum[i].x, dy = y - sc->lum[i].y;
            in_lumen = dx * dx + dy * dy < sc->lum[i].r * sc->lum[i].r;
        }
        if (in_lumen) continue;
        sc->nuc[sc->nnuc++] = (nucleus){x, y, a, b, cosf(ang), sinf(ang), h};
        if (a > sc->max_r) sc->max_r = a;
    }
    for (size_t i = 0; i < sc->nlum; i++)
        if (sc->lum[i].r > sc->max_r) sc->max_r = sc->lum[i].r;
    qsort(sc->nuc, sc->nnuc, sizeof *sc->nuc, cmp_nuc);
    qsort(sc->lum, sc->nlum, sizeof *sc->lum, cmp_lum);
}

static void free_scene(scene *sc)
{
    free(sc->field);
    free(sc->nuc);
    free(sc->lum);
    free(sc->edge_noise);
    free(sc->fib1);
    free(sc->fib2);
    free(sc->chrom);
}

/* First index of a y-sorted array whose y is >= Y. */
#define LOWER_BOUND(arr, n, Y, out) do { \
        size_t lo_ = 0, hi_ = (n); \
        while (lo_ < hi_) { size_t m_ = (lo_ + hi_) / 2; \
            if ((arr)[m_].y < (Y)) lo_ = m_ + 1; else hi_ = m_; } \
        (out) = lo_; } while (0)

/* Rows [Y0, Y0 + NR) of the slide at MPP into RGB (W pixels a row). */
static void render_strip(const scene *sc, double mpp, int64_t w, int64_t y0, int nr,
                         float *hbuf, float *abuf, float *lbuf, float *frow, uint8_t *rgb)
{
    size_t np = (size_t)w * nr;
    memset(hbuf, 0, np * sizeof *hbuf);
    memset(abuf, 0, np * sizeof *abuf);
    memset(lbuf, 0, np * sizeof *lbuf);
    float um = (float)mpp;
    float ytop = (float)(y0 * mpp), ybot = (float)((y0 + nr) * mpp);
    float edge = 0.5f;  /* microns of soft edge */
    size_t k;
    LOWER_BOUND(sc->lum, sc->nlum, ytop - sc->max_r - 1, k);
    for (; k < sc->nlum && sc->lum[k].y <= ybot + sc->max_r + 1; k++) {
        const lumen *l = &sc->lum[k];
        int64_t px0 = (int64_t)floor((l->x - l->r - 1) / um), px1 = (int64_t)ceil((l->x + l->r + 1) / um);
        int64_t py0 = (int64_t)floor((l->y - l->r - 1) / um), py1 = (int64_t)ceil((l->y + l->r + 1) / um);
        if (px0 < 0) px0 = 0;
        if (px1 > w - 1) px1 = w - 1;
        if (py0 < y0) py0 = y0;
        if (py1 > y0 + nr - 1) py1 = y0 + nr - 1;
        for (int64_t py = py0; py <= py1; py++)
            for (int64_t px = px0; px <= px1; px++) {
                float dx = (px + 0.5f) * um - l->x, dy = (py + 0.5f) * um - l->y;
                float a = (l->r - sqrtf(dx * dx + dy * dy)) / 1.0f;
                a = a < 0 ? 0 : a > 1 ? 1 : a;
                float *L = &lbuf[(size_t)(py - y0) * w + px];
                if (a > *L) *L = a;
            }
    }
    LOWER_BOUND(sc->nuc, sc->nnuc, ytop - sc->max_r - 1, k);
    for (; k < sc->nnuc && sc->nuc[k].y <= ybot + sc->max_r + 1; k++) {
        const nucleus *n = &sc->nuc[k];
        float ext = n->a + edge;
        int64_t px0 = (int64_t)floor((n->x - ext) / um), px1 = (int64_t)ceil((n->x + ext) / um);
        int64_t py0 = (int64_t)floor((n->y - ext) / um), py1 = (int64_t)ceil((n->y + ext) / um);
        if (px0 < 0) px0 = 0;
        if (px1 > w - 1) px1 = w - 1;
        if (py0 < y0) py0 = y0;
        if (py1 > y0 + nr - 1) py1 = y0 + nr - 1;
        float sharp = n->b / edge;
        for (int64_t py = py0; py <= py1; py++)
            for (int64_t px = px0; px <= px1; px++) {
                float dx = (px + 0.5f) * um - n->x, dy = (py + 0.5f) * um - n->y;
                float u = (dx * n->ca + dy * n->sa) / n->a, v = (-dx * n->sa + dy * n->ca) / n->b;
                float a = (1 - sqrtf(u * u + v * v)) * sharp;
                if (a <= 0) continue;
                if (a > 1) a = 1;
                size_t i = (size_t)(py - y0) * w + px;
                /* chromatin: coarse granules on a 0.8 um scale */
                float chrom = 0.75f + 0.5f * vnoise(sc->chrom, (px + 0.5f) * um / 0.8f,
                                                    (py + 0.5f) * um / 0.8f);
                hbuf[i] += a * n->h * chrom;
                if (a > abuf[i]) abuf[i] = a;
            }
    }
    for (int r = 0; r < nr; r++) {
        int64_t py = y0 + r;
        float y = (py + 0.5f) * um;
        /* the tissue field of this row on the grid's columns */
        double gy = y / FIELD_STEP;
        if (gy > sc->gh - 1.001) gy = sc->gh - 1.001;
        int iy = (int)gy;
        float ty = (float)(gy - iy);
        const float *f0 = sc->field + (size_t)iy * sc->gw, *f1 = f0 + sc->gw;
        for (int gx = 0; gx < sc->gw; gx++) frow[gx] = f0[gx] + (f1[gx] - f0[gx]) * ty;
        for (int64_t px = 0; px < w; px++) {
            size_t i = (size_t)r * w + px;
            float x = (px + 0.5f) * um;
            uint8_t *o = rgb + 3 * i;
            uint32_t hh = hash3((uint32_t)px, (uint32_t)py, sc->seed);
            float lum = ((float)(hh & 0xff) - 127.5f) * (2.5f / 127.5f);
            float gx = x * (float)(1 / FIELD_STEP);
            int ix = (int)gx;
            float d = frow[ix] + (frow[ix + 1] - frow[ix]) * (gx - (float)ix);
            float wt = d <= 0 ? 0 : d >= 3 ? 1 : (d / 3) * (d / 3) * (3 - 2 * (d / 3));
            if (wt <= 0 && hbuf[i] <= 0) {
                uint8_t v = (uint8_t)(BACKGROUND + lum + 0.5f);
                o[0] = o[1] = o[2] = v;
                continue;
            }
            /* stroma fibres: value noise stretched along the slide's direction */
            float fu = (x * sc->fib_cos + y * sc->fib_sin), fv = (-x * sc->fib_sin + y * sc->fib_cos);
            float fib = 0.65f * vnoise(sc->fib1, fu * (1 / 30.0f), fv * (1 / 4.0f)) +
                        0.35f * vnoise(sc->fib2, fu * (1 / 9.0f), fv * (1 / 2.0f));
            float A = abuf[i];
            float E = sc->stroma_e * (0.45f + 1.1f * fib) * (1 - 0.6f * A);
            float H = sc->stroma_h * (0.6f + 0.8f * fib) * (1 - A) + hbuf[i];
            float keep = wt * (1 - 0.93f * lbuf[i]);
            E *= keep * sc->stain_es;
            H *= keep * sc->stain_hs;
            for (int c = 0; c < 3; c++) {
                float od = H * stain_h[c] + E * stain_e[c];
                float chroma = ((float)((hh >> (8 + 8 * c)) & 0xff) - 127.5f) * (3.0f / 127.5f);
                int q = (int)(od * OD_STEPS);
                q = q < 0 ? 0 : q > OD_STEPS * OD_MAX ? OD_STEPS * OD_MAX : q;
                float v = od_lut[q] + lum + chroma * keep;
                o[c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v + 0.5f);
            }
        }
    }
}

static void render(const scene *sc, double mpp, int64_t w, int64_t h, uint8_t *rgb)
{
    int64_t nstrips = (h + STRIP - 1) / STRIP;
#pragma omp parallel num_threads(mm_threads)
    {
        float *hb = mm_malloc((size_t)w * STRIP * sizeof *hb);
        float *ab = mm_malloc((size_t)w * STRIP * sizeof *ab);
        float *lb = mm_malloc((size_t)w * STRIP * sizeof *lb);
        float *fr = mm_malloc((size_t)sc->gw * sizeof *fr);
#pragma omp for schedule(dynamic, 1)
        for (int64_t s = 0; s < nstrips; s++) {
            int64_t y0 = s * STRIP;
            int nr = (int)(h - y0 < STRIP ? h - y0 : STRIP);
            render_strip(sc, mpp, w, y0, nr, hb, ab, lb, fr, rgb + (size_t)y0 * w * 3);
        }
        free(hb);
        free(ab);
        free(lb);
        free(fr);
    }
}

static void vips_fail(const char *path, const char *what)
{
    char msg[512];
    snprintf(msg, sizeof msg, "%s", vips_error_buffer());
    vips_error_clear();
    char *nl = strchr(msg, '\n');
    if (nl) *nl = '\0';
    mm_die("%s: %s: %s", path, what, msg);
}

/* A tiled TIFF at MPP (resolution tags in pixels per centimetre), a
 * pyramid halving down to one tile unless NOPYRAMID. */
static void write_tiff(const opts *o, const char *path, uint8_t *rgb, int64_t w, int64_t h,
                       double mpp, int pyramid)
{
    VipsImage *im = vips_image_new_from_memory(rgb, (size_t)w * h * 3, (int)w, (int)h, 3,
                                               VIPS_FORMAT_UCHAR);
    if (!im) vips_fail(path, "cannot wrap the pixels");
    im->Type = VIPS_INTERPRETATION_sRGB;
    double res = 1000.0 / mpp;  /* pixels per millimetre, vips's unit */
    int r = vips_tiffsave(im, path, "tile", TRUE, "tile_width", 256, "tile_height", 256,
                          "pyramid", pyramid, "compression",
                          o->deflate ? VIPS_FOREIGN_TIFF_COMPRESSION_DEFLATE
                                     : VIPS_FOREIGN_TIFF_COMPRESSION_JPEG,
                          "Q", o->quality, "xres", res, "yres", res,
                          "resunit", VIPS_FOREIGN_TIFF_RESUNIT_CM, "strip", TRUE, NULL);
    g_object_unref(im);
    if (r != 0) vips_fail(path, "cannot write the TIFF");
}

static int levels_of(int64_t w, int64_t h, int pyramid)
{
    int n = 1;
    /* vips's default depth: halve until the level fits in one tile */
    while (pyramid && (w > 256 || h > 256)) { w = (w + 1) / 2; h = (h + 1) / 2; n++; }
    return n;
}

// ---- RNA

typedef struct { int program; double effect; } gene_truth;   /* 0 noise, 1 subtype, 2 risk */
static const char *const program_name[3] = {"noise", "subtype", "risk"};

static void write_rna(const opts *o, const patient *pt, gene_truth *gt, int gw)
{
    mm_rng g;
    sub_rng(&g, o->seed, 2);
    int64_t n = o->patients, G = o->genes;
    /* programs on a random subset of genes, so the ids carry no hint */
    int64_t *perm = mm_malloc((size_t)G * sizeof *perm);
    for (int64_t i = 0; i < G; i++) perm[i] = i;
    for (int64_t i = G - 1; i > 0; i--) {
        int64_t j = (int64_t)mm_rng_below(&g, (uint64_t)i + 1), t = perm[i];
        perm[i] = perm[j]; perm[j] = t;
    }
    for (int64_t i = 0; i < G; i++) {
        gene_truth *t = &gt[perm[i]];
        double sign = mm_rng_uniform(&g) < 0.5 ? -1 : 1;
        if (i < o->sub_genes) *t = (gene_truth){1, sign * unif(&g, 1.0, 2.0)};
        else if (i < o->sub_genes + o->risk_genes) *t = (gene_truth){2, sign * unif(&g, 0.5, 1.0)};
        else *t = (gene_truth){0, 0};
    }
    free(perm);
    double *lib = mm_malloc((size_t)n * sizeof *lib);
    for (int64_t j = 0; j < n; j++) lib[j] = 0.15 * normal(&g);
    char *path;
    FILE *fp = open_in("rna.tsv", &path);
    fputs("gene", fp);
    for (int64_t j = 0; j < n; j++) fprintf(fp, "\t%s", pt[j].id);
    fputc('\n', fp);
    for (int64_t i = 0; i < G; i++) {
        double mu = unif(&g, 1, 11), sd = unif(&g, 0.3, 0.8);
        fprintf(fp, "G%0*lld", gw, (long long)(i + 1));
        for (int64_t j = 0; j < n; j++) {
            double x = mu + lib[j] + sd * normal(&g);
            if (gt[i].program == 1) x += gt[i].effect * (pt[j].subtype - 0.5);
            if (gt[i].program == 2) x += gt[i].effect * (pt[j].c + pt[j].r) / sqrt(2.0);
            if (mm_rng_uniform(&g) < o->missing) fputs("\tNA", fp);
            else fprintf(fp, "\t%.0f", floor(pow(2.0, x) + 0.5));
        }
        fputc('\n', fp);
    }
    free(lib);
    close_file(fp, path);
}

// ---- main

static void parse_size(const char *s, int64_t *w, int64_t *h)
{
    char buf[64];
    snprintf(buf, sizeof buf, "%s", s);
    char *x = strchr(buf, 'x');
    if (x) *x = '\0';
    *w = mm_opt_int("--slide-size", buf, 256, 200000);
    *h = x ? mm_opt_int("--slide-size", x + 1, 256, 200000) : *w;
}

enum { O_CENS = 256, O_MEDIAN, O_RISK, O_SUB, O_NOSLIDES, O_SIZE, O_MPP, O_TWO, O_40X,
       O_IMG, O_COMP, O_Q, O_GENES, O_SUBG, O_RISKG, O_MISSING, O_FORCE };

int main(int argc, char **argv)
{
    static const char optstring[] = "o:n:s:@:vqhV";
    static const struct option lopts[] = {
        {"output", required_argument, NULL, 'o'},
        {"patients", required_argument, NULL, 'n'},
        {"seed", required_argument, NULL, 's'},
        {"censoring", required_argument, NULL, O_CENS},
        {"median-survival", required_argument, NULL, O_MEDIAN},
        {"risk-effect", required_argument, NULL, O_RISK},
        {"subtype-effect", required_argument, NULL, O_SUB},
        {"no-slides", no_argument, NULL, O_NOSLIDES},
        {"slide-size", required_argument, NULL, O_SIZE},
        {"mpp", required_argument, NULL, O_MPP},
        {"two-slides", required_argument, NULL, O_TWO},
        {"at-40x", required_argument, NULL, O_40X},
        {"image-effect", required_argument, NULL, O_IMG},
        {"compression", required_argument, NULL, O_COMP},
        {"quality", required_argument, NULL, O_Q},
        {"genes", required_argument, NULL, O_GENES},
        {"subtype-genes", required_argument, NULL, O_SUBG},
        {"risk-genes", required_argument, NULL, O_RISKG},
        {"missing", required_argument, NULL, O_MISSING},
        {"force", no_argument, NULL, O_FORCE},
        MM_COMMON_LONGOPTS,
        {NULL, 0, NULL, 0}};
    opts o = {.out = NULL, .patients = 30, .seed = 1, .censoring = 0.3, .median = 36,
              .beta_risk = 1, .beta_sub = 0.7, .slides = 1, .w20 = 2048, .h20 = 2048,
              .mpp = 0.5, .two_slides = 2, .at40 = 2, .img_effect = 0.5, .deflate = 0,
              .quality = 85, .genes = 500, .sub_genes = 30, .risk_genes = 30,
              .missing = 0.01, .force = 0};
    int c;
    mm_tool_init("mm-synth");
    while ((c = getopt_long(argc, argv, optstring, lopts, NULL)) != -1) {
        switch (c) {
        case 'o': o.out = optarg; break;
        case 'n': o.patients = mm_opt_int("--patients", optarg, 2, 1000000); break;
        case 's': o.seed = (uint64_t)mm_opt_int("--seed", optarg, 0, INT64_MAX); break;
        case O_CENS: o.censoring = mm_opt_double("--censoring", optarg, 0, 0.95); break;
        case O_MEDIAN: o.median = mm_opt_double("--median-survival", optarg, 0.1, 1e4); break;
        case O_RISK: o.beta_risk = mm_opt_double("--risk-effect", optarg, -10, 10); break;
        case O_SUB: o.beta_sub = mm_opt_double("--subtype-effect", optarg, -10, 10); break;
        case O_NOSLIDES: o.slides = 0; break;
        case O_SIZE: parse_size(optarg, &o.w20, &o.h20); break;
        case O_MPP: o.mpp = mm_opt_double("--mpp", optarg, 0.05, 10); break;
        case O_TWO: o.two_slides = mm_opt_int("--two-slides", optarg, 0, 1000000); break;
        case O_40X: o.at40 = mm_opt_int("--at-40x", optarg, 0, 2000000); break;
        case O_IMG: o.img_effect = mm_opt_double("--image-effect", optarg, -3, 3); break;
        case O_COMP:
            if (!strcmp(optarg, "jpeg")) o.deflate = 0;
            else if (!strcmp(optarg, "deflate")) o.deflate = 1;
            else mm_die_usage("--compression: expected jpeg or deflate, got '%s'", optarg);
            break;
        case O_Q: o.quality = (int)mm_opt_int("--quality", optarg, 1, 100); break;
        case O_GENES: o.genes = mm_opt_int("--genes", optarg, 1, 1000000); break;
        case O_SUBG: o.sub_genes = mm_opt_int("--subtype-genes", optarg, 0, 1000000); break;
        case O_RISKG: o.risk_genes = mm_opt_int("--risk-genes", optarg, 0, 1000000); break;
        case O_MISSING: o.missing = mm_opt_double("--missing", optarg, 0, 0.5); break;
        case O_FORCE: o.force = 1; break;
        case 'h': usage(stdout); return mm_tool_exit(0);
        case 'V': mm_print_version("mm-synth"); return mm_tool_exit(0);
        default:
            if (mm_common_opt(c, optarg)) break;
            usage(stderr);
            return MM_EXIT_USAGE;
        }
    }
    if (!o.out) {
        usage(stderr);
        return MM_EXIT_USAGE;
    }
    if (optind != argc) mm_die_usage("unexpected argument '%s' (the cohort goes to -o DIR)", argv[optind]);
    if (o.sub_genes + o.risk_genes > o.genes)
        mm_die_usage("--subtype-genes %lld and --risk-genes %lld exceed --genes %lld",
                     (long long)o.sub_genes, (long long)o.risk_genes, (long long)o.genes);
    if (o.slides && (double)o.w20 * o.h20 * 12 > (double)SIZE_MAX / 4)
        mm_die_usage("--slide-size: too large");

    /* the destination: absent, or an earlier cohort with --force */
    struct stat st;
    int replace = 0;
    if (stat(o.out, &st) == 0) {
        char *marker = path_in(o.out, "truth.tsv");
        int is_cohort = S_ISDIR(st.st_mode) && access(marker, F_OK) == 0;
        free(marker);
        if (!o.force) mm_die("%s: exists; remove it or use --force", o.out);
        if (!is_cohort) mm_die("%s: exists and is not an mm-synth cohort (no truth.tsv); not replacing it", o.out);
        replace = 1;
    }
    /* "out/" names out itself: the temporary goes beside it, not inside */
    char *outdir = mm_strdup(o.out);
    for (size_t l = strlen(outdir); l > 1 && outdir[l - 1] == '/'; l--) outdir[l - 1] = '\0';
    o.out = outdir;
    size_t tl = strlen(o.out) + 16;
    g_tmpdir = mm_malloc(tl);
    snprintf(g_tmpdir, tl, "%s.tmp-XXXXXX", o.out);
    if (!mkdtemp(g_tmpdir)) {
        int e = errno;
        free(g_tmpdir);
        g_tmpdir = NULL;
        errno = e;
        mm_die_errno("%s: cannot create a temporary directory beside it", o.out);
    }
    atexit(cleanup_tmp);

    patient *pt = mm_calloc((size_t)o.patients, sizeof *pt);
    slide *sl;
    int64_t nsl;
    double mu;
    make_cohort(&o, pt, &sl, &nsl, &mu);

    // slides
    if (o.slides) {
        if (VIPS_INIT(argv[0]) != 0) vips_fail("libvips", "cannot start");
        init_od_lut();
        vips_concurrency_set(mm_threads);
        char *sdir = path_in(g_tmpdir, "slides");
        if (mkdir(sdir, 0777) != 0) mm_die_errno("%s", sdir);
        mm_progress *pg = mm_progress_new("slides written", (uint64_t)nsl);
        uint8_t *rgb = NULL;
        size_t cap = 0;
        for (int64_t j = 0; j < nsl; j++) {
            slide *s = &sl[j];
            scene sc;
            make_scene(&sc, &o, &pt[s->patient], s, 1000 + (uint64_t)j);
            size_t need = (size_t)s->w * s->h * 3;
            if (need > cap) rgb = mm_realloc(rgb, cap = need);
            render(&sc, s->mpp, s->w, s->h, rgb);
            free_scene(&sc);
            char name[64];
            snprintf(name, sizeof name, "%s.tif", s->id);
            char *path = path_in(sdir, name);
            int pyramid = !s->at40;
            write_tiff(&o, path, rgb, s->w, s->h, s->mpp, pyramid);
            s->levels = levels_of(s->w, s->h, pyramid);
            free(path);
            mm_progress_update(pg, (uint64_t)j + 1);
        }
        mm_progress_end(pg);
        free(rgb);
        free(sdir);
    }

    // tables
    char *path;
    FILE *fp = open_in("clinical.tsv", &path);
    fputs("id\tsubtype\tsurvival_months\tevent\n", fp);
    int64_t ncens = 0;
    for (int64_t i = 0; i < o.patients; i++) {
        const patient *p = &pt[i];
        int ev = p->t_event <= p->t_censor;
        double t = ev ? p->t_event : p->t_censor;
        if (t < 0.01) t = 0.01;
        ncens += !ev;
        fprintf(fp, "%s\t%s\t%.2f\t%d\n", p->id, subtype_name[p->subtype], t, ev);
    }
    close_file(fp, path);

    int gw = 4;
    for (int64_t k = o.genes; k >= 10000; k /= 10) gw++;
    gene_truth *gt = mm_calloc((size_t)o.genes, sizeof *gt);
    write_rna(&o, pt, gt, gw);
    fp = open_in("genes.tsv", &path);
    fputs("gene\tprogram\teffect\n", fp);
    for (int64_t i = 0; i < o.genes; i++)
        fprintf(fp, "G%0*lld\t%s\t%.4f\n", gw, (long long)(i + 1), program_name[gt[i].program],
                gt[i].effect);
    close_file(fp, path);
    free(gt);

    fp = open_in("truth.tsv", &path);
    fputs("id\tsubtype\trisk\tshared\trna_only\timage_only\trna_score\timage_score\t"
          "event_time\tcensor_time\tslides\n", fp);
    for (int64_t i = 0; i < o.patients; i++) {
        const patient *p = &pt[i];
        fprintf(fp, "%s\t%s\t%.6f\t%.6f\t%.6f\t%.6f\t%.6f\t%.6f\t%.4f\t", p->id,
                subtype_name[p->subtype], p->eta, p->c, p->r, p->m, (p->c + p->r) / sqrt(2.0),
                (p->c + p->m) / sqrt(2.0), p->t_event);
        if (isinf(p->t_censor)) fputs("Inf\t", fp);
        else fprintf(fp, "%.4f\t", p->t_censor);
        if (!p->nslides) fputs("NA", fp);
        for (int k = 0; k < p->nslides; k++)
            fprintf(fp, "%s%s", k ? "," : "", sl[p->first_slide + k].id);
        fputc('\n', fp);
    }
    close_file(fp, path);

    if (o.slides) {
        fp = open_in("slides.tsv", &path);
        fputs("id\tpatient\n", fp);
        for (int64_t j = 0; j < nsl; j++) fprintf(fp, "%s\t%s\n", sl[j].id, pt[sl[j].patient].id);
        close_file(fp, path);
        fp = open_in("truth-slides.tsv", &path);
        fputs("id\tpatient\tmpp\tobjective\twidth\theight\tlevels\ttissue_fraction\tnuclei_per_mm2\n", fp);
        for (int64_t j = 0; j < nsl; j++) {
            const slide *s = &sl[j];
            fprintf(fp, "%s\t%s\t%.6g\t%.6g\t%lld\t%lld\t%d\t%.4f\t%.1f\n", s->id,
                    pt[s->patient].id, s->mpp, 10.0 / s->mpp, (long long)s->w, (long long)s->h,
                    s->levels, s->tissue_frac, s->nuclei_mm2);
        }
        close_file(fp, path);
    }

    fp = open_in("README", &path);
    fprintf(fp,
"A synthetic cohort written by mm-synth (mmpath %s); see mm-synth(1).\n"
"\n"
"clinical.tsv      id, subtype (glandular/solid), survival_months, event (1 = death)\n"
"rna.tsv           genes x patients, log-normal counts, NA = missing\n"
"%s"
"truth.tsv         per patient: the log hazard (risk) and its parts: shared (seen\n"
"                  by RNA and image), rna_only, image_only; rna_score =\n"
"                  (shared + rna_only) / sqrt 2, image_score = (shared + image_only)\n"
"                  / sqrt 2; uncensored event and censoring times; slides\n"
"genes.tsv         per gene: program (subtype, risk, noise) and its log2 effect\n"
"\n"
"risk = subtype_effect * (solid - 1/2) + risk_effect * (shared + rna_only + image_only) / sqrt 3\n"
"S(t) = exp(-(t / lambda)^%.1f exp(risk)); censoring ~ exponential(rate)\n"
"\n",
            PACKAGE_VERSION,
            o.slides ? "slides/           one TIFF per slide (id.tif); -A/-B: two slides of one patient\n"
                       "slides.tsv        id, patient: the slide-to-patient map (--patient-map)\n"
                       "truth-slides.tsv  per slide: mpp, objective, size, levels, tissue fraction,\n"
                       "                  nuclei per mm2\n" : "", WEIBULL_SHAPE);
    double lambda = o.median / pow(log(2.0), 1.0 / WEIBULL_SHAPE);
    fprintf(fp, "seed=%llu\npatients=%lld\nslides=%lld\nslide_size_20x=%lldx%lld\nmpp_20x=%g\n"
            "two_slides=%lld\nat_40x=%lld\nimage_effect=%g\ncompression=%s\nquality=%d\n"
            "genes=%lld\nsubtype_genes=%lld\nrisk_genes=%lld\nmissing=%g\n"
            "risk_effect=%g\nsubtype_effect=%g\nmedian_survival_months=%g\nweibull_shape=%g\n"
            "weibull_lambda=%.6g\ncensoring_target=%g\ncensoring_rate=%.6g\ncensored=%lld\n",
            (unsigned long long)o.seed, (long long)o.patients, (long long)nsl,
            (long long)o.w20, (long long)o.h20, o.mpp, (long long)(o.slides ? o.two_slides : 0),
            (long long)(o.slides ? o.at40 : 0), o.img_effect, o.deflate ? "deflate" : "jpeg",
            o.quality, (long long)o.genes, (long long)o.sub_genes, (long long)o.risk_genes,
            o.missing, o.beta_risk, o.beta_sub, o.median, WEIBULL_SHAPE, lambda, o.censoring,
            mu, (long long)ncens);
    close_file(fp, path);

    // into place
    mode_t mask = umask(0);
    umask(mask);
    if (chmod(g_tmpdir, 0777 & ~mask) != 0) mm_die_errno("%s", g_tmpdir);
    char *old = NULL;
    if (replace) {
        size_t ol = strlen(o.out) + 16;
        old = mm_malloc(ol);
        snprintf(old, ol, "%s.old-XXXXXX", o.out);
        if (!mkdtemp(old)) mm_die_errno("%s: cannot set the old cohort aside", o.out);
        if (rename(o.out, old) != 0) mm_die_errno("%s: cannot set the old cohort aside", o.out);
    }
    if (rename(g_tmpdir, o.out) != 0) mm_die_errno("%s", o.out);
    free(g_tmpdir);
    g_tmpdir = NULL;
    if (old) {
        rm_tree(old);
        free(old);
    }
    mm_note(3, "%s: %lld patients, %lld slides, %lld genes, %lld censored", o.out,
            (long long)o.patients, (long long)nsl, (long long)o.genes, (long long)ncens);
    free(sl);
    free(pt);
    free(outdir);
    if (o.slides) vips_shutdown();
    return mm_tool_exit(0);
}
