/* t-tissue.c: lib/tissue.c against OpenCV 4.6 and CLAM (fixtures of
 * tests/gen/clam_ref.py, Debian's python3-opencv): the saturation of every
 * (max, min) pair, the median, Otsu, threshold and close stages of a
 * synthetic scene, closing with kernels 1..6, findContours' points, order
 * and hierarchy on hand-drawn and noise masks, contourArea, boundingRect,
 * pointPolygonTest on integer and half-integer grids, CLAM's filters,
 * scaling and four_pt grid; then the grid against a literal point-by-point
 * transcription of process_contour, --min-tissue and whole-image grids,
 * GeoJSON, drawing and bad options.
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mm/tissue.h"
#include "../tap.h"

// ---------------------------------------------------------------- helpers

/* the generator's h32 and digest */
static uint32_t h32(uint64_t x, uint64_t y, uint64_t seed)
{
    uint64_t h = (x * 73856093u) ^ (y * 19349663u) ^ ((seed * 83492791u) & 0xFFFFFFFFu);
    h &= 0xFFFFFFFFu;
    h ^= h >> 16;
    h = (h * 0x7FEB352Du) & 0xFFFFFFFFu;
    h ^= h >> 15;
    h = (h * 0x846CA68Bu) & 0xFFFFFFFFu;
    h ^= h >> 16;
    return (uint32_t)h;
}

static uint64_t digest_u8(const uint8_t *a, int64_t n)
{
    uint64_t s = 0;
    for (int64_t i = 0; i < n; i++)
        s += (uint64_t)(a[i] + 1) * ((uint64_t)i * UINT64_C(0x9E3779B97F4A7C15) + 1);
    return s;
}

static uint64_t digest_poly(const mm_poly *p)
{
    uint64_t s = 0;
    for (int64_t i = 0; i < 2 * p->n; i++) {
        int64_t v = (i & 1 ? p->p[i / 2].y : p->p[i / 2].x) + ((int64_t)1 << 31);
        s += ((uint64_t)v + 1) * ((uint64_t)i * UINT64_C(0x9E3779B97F4A7C15) + 1);
    }
    return s;
}

static int64_t nnz(const uint8_t *a, int64_t n)
{
    int64_t c = 0;
    for (int64_t i = 0; i < n; i++) c += a[i] != 0;
    return c;
}

/* a fixture file as lines of space-separated tokens */
typedef struct {
    char *buf;
    char **line;
    int n;
} lines;

static int read_lines(lines *L, const char *name)
{
    const char *top = getenv("top_srcdir");
    char path[1200];
    snprintf(path, sizeof path, "%s/tests/fixtures/tissue/%s", top && *top ? top : ".", name);
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    L->buf = malloc((size_t)len + 1);
    size_t got = fread(L->buf, 1, (size_t)len, f);
    fclose(f);
    L->buf[got] = 0;
    L->n = 0;
    L->line = NULL;
    int cap = 0;
    for (char *s = L->buf, *e; s && *s; s = e) {
        e = strchr(s, '\n');
        if (e) *e++ = 0;
        if (*s == '#' || !*s) continue;
        if (L->n == cap) {
            cap = cap ? 2 * cap : 64;
            L->line = realloc(L->line, (size_t)cap * sizeof *L->line);
        }
        L->line[L->n++] = s;
    }
    return 0;
}

static void free_lines(lines *L)
{
    free(L->buf);
    free(L->line);
}

static int starts(const char *s, const char *w)
{
    size_t n = strlen(w);
    return !strncmp(s, w, n) && (s[n] == ' ' || !s[n]);
}

/* The drawing program of clam_ref.py: "size W H", "op ..." lines, "end".
 * Returns the index of the line after "end"; *M gets W x H values 0/1. */
static int draw(const lines *L, int *w, int *h, uint8_t **m)
{
    int i = 0;
    if (sscanf(L->line[i++], "size %d %d", w, h) != 2) return -1;
    *m = calloc((size_t)*w * *h, 1);
    for (; i < L->n && !starts(L->line[i], "end"); i++) {
        const char *s = L->line[i] + 3;
        long a[8];
        char bits[256];
        if (sscanf(s, "disk %ld %ld %ld %ld", &a[0], &a[1], &a[2], &a[3]) == 4) {
            for (long y = 0; y < *h; y++)
                for (long x = 0; x < *w; x++)
                    if ((x - a[0]) * (x - a[0]) + (y - a[1]) * (y - a[1]) <= a[2] * a[2])
                        (*m)[y * *w + x] = (uint8_t)a[3];
        } else if (sscanf(s, "rect %ld %ld %ld %ld %ld", &a[0], &a[1], &a[2], &a[3], &a[4]) == 5) {
            for (long y = a[1]; y <= a[3] && y < *h; y++)
                for (long x = a[0]; x <= a[2] && x < *w; x++) (*m)[y * *w + x] = (uint8_t)a[4];
        } else if (sscanf(s, "line %ld %ld %ld %ld %ld %ld", &a[0], &a[1], &a[2], &a[3], &a[4],
                          &a[5]) == 6) {
            for (long k = 0; k < a[4]; k++) {
                long x = a[0] + k * a[2], y = a[1] + k * a[3];
                if (x >= 0 && x < *w && y >= 0 && y < *h) (*m)[y * *w + x] = (uint8_t)a[5];
            }
        } else if (sscanf(s, "noise %ld %ld %ld %ld %ld %ld %ld", &a[0], &a[1], &a[2], &a[3], &a[4],
                          &a[5], &a[6]) == 7) {
            for (long y = a[1]; y <= a[3] && y < *h; y++)
                for (long x = a[0]; x <= a[2] && x < *w; x++)
                    if (h32((uint64_t)x, (uint64_t)y, (uint64_t)a[4]) % 1000 < (uint32_t)a[5])
                        (*m)[y * *w + x] = (uint8_t)a[6];
        } else if (sscanf(s, "row %ld %ld %255s", &a[0], &a[1], bits) == 3) {
            for (long k = 0; bits[k]; k++)
                if (a[1] + k < *w) (*m)[a[0] * *w + a[1] + k] = bits[k] == '#';
        } else {
            return -1;
        }
    }
    return i + 1;
}

/* clam_ref.py's scene_rgb */
static uint8_t *scene_rgb(const uint8_t *layout, int w, int h, uint64_t seed)
{
    uint8_t *rgb = malloc((size_t)w * h * 3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint32_t a = h32(x, y, seed), b = h32(x, y, seed + 1), c = h32(x, y, seed + 2);
            uint8_t *p = rgb + 3 * ((size_t)y * w + x);
            if (layout[y * w + x]) {
                p[0] = (uint8_t)(150 + a % 100);
                p[1] = (uint8_t)(60 + b % 120);
                p[2] = (uint8_t)(120 + c % 100);
                if (h32(x, y, seed + 7) % 50 == 0) p[0] = p[1] = p[2] = 250;
            } else if (a % 10 < 8) {
                p[0] = (uint8_t)(240 + a % 3);
                p[1] = (uint8_t)(240 + b % 3);
                p[2] = (uint8_t)(240 + c % 3);
            } else {
                p[0] = (uint8_t)(225 + a % 31);
                p[1] = (uint8_t)(225 + b % 31);
                p[2] = (uint8_t)(225 + c % 31);
            }
        }
    return rgb;
}

/* An image stage recovered from thresholded masks: the stage value v at a
 * pixel is the number of thresholds t in 0..254 with v > t. */
static void recover(const uint8_t *rgb, int w, int h, int mthresh, uint8_t *out)
{
    mm_seg_opts o;
    mm_seg_defaults(&o);
    o.mthresh = mthresh;
    o.close = 0;
    int64_t n = (int64_t)w * h;
    uint8_t *m = malloc((size_t)n);
    memset(out, 0, (size_t)n);
    for (int t = 0; t < 255; t++) {
        o.sthresh = t;
        if (mm_tissue_mask(rgb, w, h, &o, m, NULL) < 0) break;
        for (int64_t i = 0; i < n; i++) out[i] += m[i] != 0;
    }
    free(m);
}

// ---------------------------------------------------------------- stages

static void test_hsv(void)
{
    lines L;
    if (read_lines(&L, "hsv.txt") < 0) {
        ok(0, "hsv.txt fixture");
        return;
    }
    unsigned long long want = 0;
    sscanf(L.line[0], "hsv %llu", &want);
    uint8_t *rgb = malloc(256 * 256 * 3), *s = malloc(256 * 256);
    for (int v = 0; v < 256; v++)
        for (int m = 0; m < 256; m++) {
            uint8_t *p = rgb + 3 * (v * 256 + m);
            p[0] = (uint8_t)v;
            p[1] = p[2] = (uint8_t)m;
        }
    recover(rgb, 256, 256, 1, s);
    ok(digest_u8(s, 256 * 256) == want, "S of cvtColor(RGB2HSV) for all 65536 (max, min) pairs");
    /* the channel holding the max or min does not matter */
    uint8_t px[6 * 3] = {200, 10, 90, 10, 200, 90, 90, 10, 200, 200, 90, 10, 10, 90, 200, 90, 200, 10};
    uint8_t one[6];
    recover(px, 6, 1, 1, one);
    ok(one[0] == one[1] && one[1] == one[2] && one[2] == one[3] && one[3] == one[4] &&
       one[4] == one[5] && one[0] == s[200 * 256 + 10], "S is symmetric in the channels (%d)",
       one[0]);
    free(rgb);
    free(s);
    free_lines(&L);
}

static void test_stages(void)
{
    lines L;
    if (read_lines(&L, "stages-scene.txt") < 0) {
        ok(0, "stages-scene.txt fixture");
        return;
    }
    int w, h;
    uint8_t *lay;
    int i = draw(&L, &w, &h, &lay);
    unsigned long long seed = 0;
    sscanf(L.line[i++], "rgb %llu", &seed);
    int64_t n = (int64_t)w * h;
    uint8_t *rgb = scene_rgb(lay, w, h, seed), *st = malloc((size_t)n), *m = malloc((size_t)n);
    for (; i < L.n; i++) {
        int sth, mt, cl, ot, t, tn, cn;
        unsigned long long ds, dm, dt, dc;
        if (sscanf(L.line[i], "stages %d %d %d %d sat %llu median %llu thresh %d %llu %d close %llu %d",
                   &sth, &mt, &cl, &ot, &ds, &dm, &t, &dt, &tn, &dc, &cn) != 11) {
            ok(0, "stages line: %s", L.line[i]);
            continue;
        }
        recover(rgb, w, h, 1, st);
        ok(digest_u8(st, n) == ds, "scene: saturation");
        recover(rgb, w, h, mt, st);
        ok(digest_u8(st, n) == dm, "scene: medianBlur %d", mt);
        mm_seg_opts o;
        mm_seg_defaults(&o);
        o.sthresh = sth;
        o.mthresh = mt;
        o.otsu = ot;
        o.close = 0;
        int got_t = -1;
        if (mm_tissue_mask(rgb, w, h, &o, m, &got_t) < 0) {
            ok(0, "mm_tissue_mask: %s", mm_strerror());
            continue;
        }
        if (ot) is_int(got_t, t, "scene: Otsu threshold");
        ok(digest_u8(m, n) == dt && nnz(m, n) == tn, "scene: threshold %d%s (%lld px)", t,
           ot ? " (Otsu)" : "", (long long)nnz(m, n));
        o.close = cl;
        if (mm_tissue_mask(rgb, w, h, &o, m, NULL) < 0) continue;
        ok(digest_u8(m, n) == dc && nnz(m, n) == cn, "scene: median %d, close %d (%lld px, want %d)",
           mt, cl, (long long)nnz(m, n), cn);
    }
    free(rgb);
    free(st);
    free(m);
    free(lay);
    free_lines(&L);
}

static void test_close(const char *file)
{
    lines L;
    if (read_lines(&L, file) < 0) {
        ok(0, "%s fixture", file);
        return;
    }
    int w, h;
    uint8_t *lay;
    int i = draw(&L, &w, &h, &lay);
    int64_t n = (int64_t)w * h;
    /* a red pixel has S 255, a white one 0: the mask is the layout */
    uint8_t *rgb = malloc((size_t)n * 3), *m = malloc((size_t)n);
    for (int64_t j = 0; j < n; j++) {
        rgb[3 * j] = 255;
        rgb[3 * j + 1] = rgb[3 * j + 2] = lay[j] ? 0 : 255;
    }
    for (; i < L.n; i++) {
        int k, cn;
        unsigned long long dc;
        if (sscanf(L.line[i], "close %d %llu %d", &k, &dc, &cn) != 3) continue;
        mm_seg_opts o;
        mm_seg_defaults(&o);
        o.mthresh = 1;
        o.close = k;
        if (mm_tissue_mask(rgb, w, h, &o, m, NULL) < 0) continue;
        ok(digest_u8(m, n) == dc && nnz(m, n) == cn, "%s: morphologyEx(CLOSE, ones(%d, %d))", file, k,
           k);
    }
    free(rgb);
    free(m);
    free(lay);
    free_lines(&L);
}

// ---------------------------------------------------------------- contours

/* OpenCV's flat list of a RETR_CCOMP result: each outer contour followed
 * by its holes, with the hierarchy (next, prev, first child, parent) */
typedef struct {
    const mm_poly *p;
    int hier[4];
} flat;

static flat *flatten(const mm_tissue *t, int *nf)
{
    int n = 0;
    for (int i = 0; i < t->n; i++) n += 1 + t->r[i].n_holes;
    flat *f = calloc((size_t)(n ? n : 1), sizeof *f);
    int k = 0, prev_outer = -1;
    for (int i = 0; i < t->n; i++) {
        int o = k++;
        f[o].p = &t->r[i].outer;
        f[o].hier[0] = -1;
        f[o].hier[1] = prev_outer;
        f[o].hier[2] = t->r[i].n_holes ? o + 1 : -1;
        f[o].hier[3] = -1;
        if (prev_outer >= 0) f[prev_outer].hier[0] = o;
        prev_outer = o;
        for (int j = 0; j < t->r[i].n_holes; j++) {
            int q = k++;
            f[q].p = &t->r[i].holes[j];
            f[q].hier[0] = j + 1 < t->r[i].n_holes ? q + 1 : -1;
            f[q].hier[1] = j ? q - 1 : -1;
            f[q].hier[2] = -1;
            f[q].hier[3] = o;
        }
    }
    *nf = n;
    return f;
}

static void test_contours(const char *file)
{
    lines L;
    if (read_lines(&L, file) < 0) {
        ok(0, "%s fixture", file);
        return;
    }
    int w, h;
    uint8_t *m;
    int i = draw(&L, &w, &h, &m);
    for (int64_t j = 0; j < (int64_t)w * h; j++) m[j] *= 255;
    mm_tissue t;
    if (mm_tissue_contours(m, w, h, &t) < 0) {
        ok(0, "%s: mm_tissue_contours: %s", file, mm_strerror());
        free(m);
        free_lines(&L);
        return;
    }
    int nf, want_n = -1;
    flat *f = flatten(&t, &nf);
    sscanf(L.line[i++], "ncontours %d", &want_n);
    is_int(nf, want_n, "%s: %d contours", file, want_n);
    int bad_hier = 0, bad_pts = 0, bad_area = 0, bad_bbox = 0, bad_test = 0, ntest = 0, cur = -1;
    for (; i < L.n && nf == want_n; i++) {
        const char *s = L.line[i];
        if (starts(s, "contour")) {
            int c, hn, hp, vn, vp, x0, y0;
            long np;
            double area;
            long long bx, by, bw, bh;
            unsigned long long dg;
            sscanf(s, "contour %d %d %d %d %d %ld %lf %lld %lld %lld %lld %d %d %llu", &c, &hn, &hp,
                   &vn, &vp, &np, &area, &bx, &by, &bw, &bh, &x0, &y0, &dg);
            cur = c;
            const mm_poly *p = f[c].p;
            if (f[c].hier[0] != hn || f[c].hier[1] != hp || f[c].hier[2] != vn || f[c].hier[3] != vp) {
                if (!bad_hier++)
                    diag("contour %d: hierarchy %d %d %d %d, want %d %d %d %d", c, f[c].hier[0],
                         f[c].hier[1], f[c].hier[2], f[c].hier[3], hn, hp, vn, vp);
            }
            if (p->n != np || p->p[0].x != x0 || p->p[0].y != y0 || digest_poly(p) != dg) {
                if (!bad_pts++)
                    diag("contour %d: %lld points from (%d, %d), want %ld from (%d, %d)", c,
                         (long long)p->n, p->p[0].x, p->p[0].y, np, x0, y0);
            }
            if (mm_poly_area(p) != area) {
                if (!bad_area++) diag("contour %d: area %g, want %g", c, mm_poly_area(p), area);
            }
            int64_t qx, qy, qw, qh;
            mm_poly_bbox(p, &qx, &qy, &qw, &qh);
            bad_bbox += qx != bx || qy != by || qw != bw || qh != bh;
        } else if (starts(s, "pts") && cur >= 0) {
            const char *q = s + 4;
            const mm_poly *p = f[cur].p;
            for (int64_t k = 0; k < p->n; k++) {
                char *e;
                long x = strtol(q, &e, 10), y = strtol(e, &e, 10);
                q = e;
                if (x != p->p[k].x || y != p->p[k].y) {
                    if (!bad_pts++)
                        diag("contour %d point %lld: (%d, %d), want (%ld, %ld)", cur, (long long)k,
                             p->p[k].x, p->p[k].y, x, y);
                    break;
                }
            }
        } else if (starts(s, "ptest")) {
            int c, half;
            char res[20000];
            if (sscanf(s, "ptest %d %d %19999s", &c, &half, res) != 3) continue;
            int k = 0;
            for (int y = -1; y <= h; y++)
                for (int x = -1; x <= w; x++, k++) {
                    int r = mm_poly_test(f[c].p, x + (half ? 0.5 : 0), y + (half ? 0.5 : 0));
                    char g = r > 0 ? '+' : r == 0 ? '0' : '-';
                    ntest++;
                    if (g != res[k] && !bad_test++)
                        diag("contour %d: pointPolygonTest(%g, %g) = %d, want %c", c,
                             x + (half ? 0.5 : 0), y + (half ? 0.5 : 0), r, res[k]);
                }
        }
    }
    ok(!bad_hier, "%s: hierarchy (next, prev, child, parent) of every contour", file);
    ok(!bad_pts, "%s: every point, start and direction", file);
    ok(!bad_area, "%s: contourArea", file);
    ok(!bad_bbox, "%s: boundingRect", file);
    if (ntest) ok(!bad_test, "%s: pointPolygonTest at %d points", file, ntest);
    int bad_ra = 0;
    for (int r = 0; r < t.n; r++) {
        double a = mm_poly_area(&t.r[r].outer);
        for (int j = 0; j < t.r[r].n_holes; j++) a -= mm_poly_area(&t.r[r].holes[j]);
        bad_ra += a != t.r[r].area;
    }
    ok(!bad_ra, "%s: region area = outer - holes", file);
    free(f);
    mm_tissue_free(&t);
    free(m);
    free_lines(&L);
}

// ---------------------------------------------------------------- CLAM

/* process_contour transcribed point by point with mm_poly_test */
static int64_t literal_tiles(const mm_tissue *t, const mm_grid_opts *g, mm_tile_xy **out)
{
    int64_t n = 0, cap = 64;
    mm_tile_xy *v = malloc((size_t)cap * sizeof *v);
    for (int i = 0; i < t->n; i++) {
        const mm_region *r = &t->r[i];
        int64_t x0, y0, w, h;
        mm_poly_bbox(&r->outer, &x0, &y0, &w, &h);
        int64_t sx = x0 + w, sy = y0 + h;
        if (!g->padding) {
            if (sx > g->w0 - g->ps0 + 1) sx = g->w0 - g->ps0 + 1;
            if (sy > g->h0 - g->ps0 + 1) sy = g->h0 - g->ps0 + 1;
        }
        int64_t ps = g->ps0, shift = (int64_t)(ps / 2 * 0.5), before = n;
        for (int64_t x = x0; x < sx; x += g->step0)
            for (int64_t y = y0; y < sy; y += g->step0) {
                int64_t cx = x + ps / 2, cy = y + ps / 2;
                int in;
                if (shift > 0)
                    in = mm_poly_test(&r->outer, cx - shift, cy - shift) >= 0 ||
                         mm_poly_test(&r->outer, cx + shift, cy + shift) >= 0 ||
                         mm_poly_test(&r->outer, cx + shift, cy - shift) >= 0 ||
                         mm_poly_test(&r->outer, cx - shift, cy + shift) >= 0;
                else
                    in = mm_poly_test(&r->outer, cx, cy) >= 0;
                for (int j = 0; j < r->n_holes && in; j++)
                    if (mm_poly_test(&r->holes[j], x + ps / 2.0, y + ps / 2.0) > 0) in = 0;
                if (!in) continue;
                if (n == cap) v = realloc(v, (size_t)(cap *= 2) * sizeof *v);
                v[n].x = x;
                v[n].y = y;
                n++;
            }
        if (n - before == 1 && !g->keep_single) n = before;
    }
    *out = v;
    return n;
}

static int same_tiles(const mm_tile_xy *a, int64_t na, const mm_tile_xy *b, int64_t nb)
{
    return na == nb && (na == 0 || !memcmp(a, b, (size_t)na * sizeof *a));
}

static void test_clam_scene(void)
{
    lines L;
    if (read_lines(&L, "clam-scene.txt") < 0) {
        ok(0, "clam-scene.txt fixture");
        return;
    }
    int w, h;
    uint8_t *lay;
    int i = draw(&L, &w, &h, &lay);
    unsigned long long seed = 0;
    sscanf(L.line[i++], "rgb %llu", &seed);
    uint8_t *rgb = scene_rgb(lay, w, h, seed);
    while (i < L.n) {
        int st, mt, cl, ot, pad;
        double sx, sy, a_t, a_h;
        long long ps, step, w0, h0;
        if (sscanf(L.line[i++], "run %d %d %d %d %lf %lf %lf %lf %lld %lld %d %lld %lld", &st, &mt,
                   &cl, &ot, &sx, &sy, &a_t, &a_h, &ps, &step, &pad, &w0, &h0) != 13) {
            ok(0, "run line");
            break;
        }
        mm_seg_opts o;
        mm_seg_defaults(&o);
        o.sthresh = st;
        o.mthresh = mt;
        o.close = cl;
        o.otsu = ot;
        o.a_t = a_t;
        o.a_h = a_h;
        mm_tissue t;
        if (mm_tissue_segment(rgb, w, h, &o, &t) < 0) {
            ok(0, "mm_tissue_segment: %s", mm_strerror());
            break;
        }
        char what[160];
        snprintf(what, sizeof what, "scene, scale %g x %g, a_t %g, a_h %g, patch %lld step %lld%s",
                 sx, sy, a_t, a_h, ps, step, pad ? "" : ", no padding");
        int nr = -1, bad = 0, r = -1, hole = 0;
        sscanf(L.line[i++], "nregions %d", &nr);
        is_int(t.n, nr, "%s: %d regions", what, nr);
        double *areas = malloc((size_t)(t.n ? t.n : 1) * sizeof *areas);
        for (int k = 0; k < t.n; k++) areas[k] = t.r[k].area;
        mm_tissue_scale(&t, sx, sy);
        for (; i < L.n && (starts(L.line[i], "region") || starts(L.line[i], "hole")); i++) {
            long np;
            int nh;
            double area;
            long long bx, by, bw, bh;
            unsigned long long dg;
            if (sscanf(L.line[i], "region %ld %d %lf %lld %lld %lld %lld %llu", &np, &nh, &area, &bx,
                       &by, &bw, &bh, &dg) == 8) {
                hole = 0;
                if (++r >= t.n) continue;
                int64_t qx, qy, qw, qh;
                mm_poly_bbox(&t.r[r].outer, &qx, &qy, &qw, &qh);
                if (t.r[r].outer.n != np || t.r[r].n_holes != nh || areas[r] != area || qx != bx ||
                    qy != by || qw != bw || qh != bh || digest_poly(&t.r[r].outer) != dg) {
                    if (!bad++)
                        diag("region %d: %lld points, %d holes, area %.1f; want %ld, %d, %.1f", r,
                             (long long)t.r[r].outer.n, t.r[r].n_holes, areas[r], np, nh, area);
                }
            } else if (sscanf(L.line[i], "hole %ld %llu", &np, &dg) == 2 && r >= 0 && r < t.n) {
                if (hole >= t.r[r].n_holes || t.r[r].holes[hole].n != np ||
                    digest_poly(&t.r[r].holes[hole]) != dg)
                    bad++;
                hole++;
            }
        }
        ok(!bad, "%s: regions, holes, areas and level-0 points", what);
        long long nt = -1;
        sscanf(L.line[i++], "ntiles %lld", &nt);
        mm_tile_xy *want = malloc((size_t)(nt > 0 ? nt : 1) * sizeof *want);
        int64_t k = 0;
        for (; i < L.n && starts(L.line[i], "tiles"); i++) {
            const char *q = L.line[i] + 6;
            char *e;
            while (k < nt) {
                long long x = strtoll(q, &e, 10);
                if (e == q) break;
                q = e;
                want[k].x = x;
                want[k].y = strtoll(q, &e, 10);
                q = e;
                k++;
            }
        }
        i++; /* endrun */
        mm_grid_opts g = {.ps0 = ps, .step0 = step, .w0 = w0, .h0 = h0, .padding = pad,
                          .mode = MM_TILE_FOUR_PT};
        mm_tile_xy *xy, *lit;
        int64_t n = mm_tissue_tiles(&t, &g, &xy);
        ok(n == nt && same_tiles(xy, n, want, nt), "%s: %lld tiles, CLAM's order", what, nt);
        int64_t nl = literal_tiles(&t, &g, &lit);
        ok(same_tiles(xy, n, lit, nl), "%s: the row tests equal pointPolygonTest point by point", what);
        free(lit);
        free(xy);
        /* the grid shifted by odd sizes exercises half-integer hole tests */
        for (int64_t dps = 1; dps <= 3; dps += 2) {
            g.ps0 = ps + dps;
            g.step0 = step + dps;
            g.keep_single = 1;
            n = mm_tissue_tiles(&t, &g, &xy);
            nl = literal_tiles(&t, &g, &lit);
            ok(same_tiles(xy, n, lit, nl), "%s: patch %lld, keep_single: row tests = literal (%lld)",
               what, (long long)g.ps0, (long long)n);
            free(xy);
            free(lit);
        }
        free(want);
        free(areas);
        mm_tissue_free(&t);
    }
    free(rgb);
    free(lay);
    free_lines(&L);
}

// ---------------------------------------------------------------- others

static void box_tissue(mm_tissue *t, int w, int h, int x0, int y0, int x1, int y1)
{
    uint8_t *m = calloc((size_t)w * h, 1);
    for (int y = y0; y <= y1; y++)
        for (int x = x0; x <= x1; x++) m[y * w + x] = 255;
    if (mm_tissue_contours(m, w, h, t) < 0) t->n = 0;
    free(m);
}

static void test_grid_modes(void)
{
    mm_tissue t;
    box_tissue(&t, 40, 30, 0, 0, 39, 29);
    is_int(t.n, 1, "a full image is one contour");
    is_int(t.r[0].area, 39 * 29, "its area joins the boundary pixel centres");
    mm_grid_opts g = {.ps0 = 10, .step0 = 10, .w0 = 40, .h0 = 30, .padding = 1,
                      .mode = MM_TILE_MIN_TISSUE, .min_tissue = 1.0, .sx = 1, .sy = 1};
    mm_tile_xy *xy;
    int64_t n = mm_tissue_tiles(&t, &g, &xy);
    is_int(n, 12, "min-tissue 1.0 on a full image: all 4 x 3 tiles");
    free(xy);
    mm_tissue_free(&t);

    /* tissue in x 0..14: tiles at x 0 full, x 10 half */
    box_tissue(&t, 40, 30, 0, 0, 14, 29);
    g.min_tissue = 0.5;
    n = mm_tissue_tiles(&t, &g, &xy);
    is_int(n, 6, "min-tissue 0.5: the full and the half-covered columns");
    if (n == 6) ok(xy[0].x == 0 && xy[3].x == 10 && xy[5].y == 20, "x-major order");
    free(xy);
    g.min_tissue = 0.51;
    n = mm_tissue_tiles(&t, &g, &xy);
    is_int(n, 3, "min-tissue 0.51: the full column only");
    free(xy);
    /* at scale 2 the same region covers level-0 x 0..29 (pixel 14 at 28) */
    mm_tissue_scale(&t, 2, 2);
    g.sx = g.sy = 2;
    g.w0 = 80;
    g.h0 = 60;
    g.ps0 = g.step0 = 20;
    g.min_tissue = 0.5;
    n = mm_tissue_tiles(&t, &g, &xy);
    is_int(n, 6, "min-tissue at scale 2: segmentation pixels counted at level 0");
    free(xy);
    g.mode = MM_TILE_ALL;
    g.padding = 0;
    g.ps0 = 30;
    g.step0 = 25;
    n = mm_tissue_tiles(&t, &g, &xy);
    /* x in arange(0, 80 - 30 + 1, 25) = 0, 25, 50; y in arange(0, 31, 25) = 0, 25 */
    is_int(n, 6, "whole-image grid without padding stops where a tile would pass the edge");
    if (n == 6) ok(xy[1].x == 0 && xy[1].y == 25 && xy[5].x == 50, "whole-image grid, x-major");
    free(xy);
    g.padding = 1;
    n = mm_tissue_tiles(&t, &g, &xy);
    is_int(n, 12, "whole-image grid with padding: 4 x 3");
    free(xy);
    mm_tissue_free(&t);

    /* CLAM drops a contour that yields a single tile */
    box_tissue(&t, 40, 30, 5, 5, 9, 9);
    mm_grid_opts s = {.ps0 = 16, .step0 = 16, .w0 = 40, .h0 = 30, .padding = 1,
                      .mode = MM_TILE_FOUR_PT};
    n = mm_tissue_tiles(&t, &s, &xy);
    is_int(n, 0, "a contour with one tile gives none (len(results) > 1)");
    free(xy);
    s.keep_single = 1;
    n = mm_tissue_tiles(&t, &s, &xy);
    is_int(n, 1, "keep_single keeps it");
    free(xy);
    s.ps0 = 0;
    ok(mm_tissue_tiles(&t, &s, &xy) < 0 && !xy, "patch size 0 is an error: %s", mm_strerror());
    mm_tissue_free(&t);
}

static void test_filters(void)
{
    /* a 20 x 20 square with holes of 4 x 4 (area 9 as contours, 3 of
     * them), 2 x 2 (area 1) and 1 pixel (area 0: its hole contour is the
     * four 4-neighbours, area 2) */
    int w = 24, h = 24;
    uint8_t *rgb = malloc((size_t)w * h * 3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int in = x >= 2 && x <= 21 && y >= 2 && y <= 21;
            int hole = (x >= 4 && x <= 7 && y >= 4 && y <= 7) || (x >= 10 && x <= 13 && y >= 4 && y <= 7) ||
                       (x >= 16 && x <= 19 && y >= 4 && y <= 7) || (x >= 4 && x <= 5 && y >= 12 && y <= 13) ||
                       (x == 12 && y == 16);
            uint8_t *p = rgb + 3 * (y * w + x);
            p[0] = 255;
            p[1] = p[2] = in && !hole ? 0 : 255;
        }
    mm_seg_opts o;
    mm_seg_defaults(&o);
    o.mthresh = 1;
    o.close = 0;
    o.max_n_holes = 2;
    o.a_h = 5;
    mm_tissue t;
    if (mm_tissue_segment(rgb, w, h, &o, &t) < 0 || t.n != 1) {
        ok(0, "segment the square: %s", mm_strerror());
        free(rgb);
        return;
    }
    is_int(t.r[0].n_holes, 2, "max_n_holes 2 keeps the two first of the largest holes");
    double sum = 0;
    for (int j = 0; j < t.r[0].n_holes; j++) sum += mm_poly_area(&t.r[0].holes[j]);
    /* a 4 x 4 hole's contour runs through the 6 x 6 ring around it with
     * its corners cut (8-connected): 25 - 4 / 2 */
    ok(sum == 2 * 23, "the kept holes are the 4 x 4 ones (contour area 23 each): %g", sum);
    ok(t.r[0].area > 0, "the region area subtracts every hole: %g", t.r[0].area);
    double a = t.r[0].area;
    mm_tissue_free(&t);
    o.max_n_holes = 8;
    o.a_h = 25;
    if (mm_tissue_segment(rgb, w, h, &o, &t) == 0 && t.n == 1)
        is_int(t.r[0].n_holes, 0, "a hole is kept only when its area > a_h");
    mm_tissue_free(&t);
    o.a_t = a;
    if (mm_tissue_segment(rgb, w, h, &o, &t) == 0) is_int(t.n, 0, "a region is kept only when its area > a_t");
    mm_tissue_free(&t);
    o.a_t = a - 0.5;
    if (mm_tissue_segment(rgb, w, h, &o, &t) == 0) is_int(t.n, 1, "... and kept just below");
    mm_tissue_free(&t);
    /* no tissue at all */
    memset(rgb, 255, (size_t)w * h * 3);
    o.a_t = 0;
    ok(mm_tissue_segment(rgb, w, h, &o, &t) == 0 && t.n == 0, "a white image: no tissue, no error");
    mm_tissue_free(&t);
    o.mthresh = 4;
    ok(mm_tissue_segment(rgb, w, h, &o, &t) < 0 && t.n == 0, "an even median kernel is an error: %s",
       mm_strerror());
    o.mthresh = 7;
    ok(mm_tissue_segment(rgb, 0, h, &o, &t) < 0, "an empty image is an error: %s", mm_strerror());
    free(rgb);
}

static void test_geojson(void)
{
    mm_tissue t;
    box_tissue(&t, 6, 6, 1, 1, 4, 4); /* a 4 x 4 square with ... */
    mm_tissue_free(&t);
    uint8_t m[36] = {0};
    for (int y = 1; y <= 4; y++)
        for (int x = 1; x <= 4; x++) m[y * 6 + x] = 255;
    m[2 * 6 + 2] = 0; /* ... a one-pixel hole */
    if (mm_tissue_contours(m, 6, 6, &t) < 0) {
        ok(0, "contours for GeoJSON");
        return;
    }
    mm_tissue_scale(&t, 10, 10);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    int rc = mm_tissue_geojson(&t, f);
    fclose(f);
    const char *want =
        "{\"type\":\"FeatureCollection\",\"features\":[\n"
        "{\"type\":\"Feature\",\"geometry\":{\"type\":\"Polygon\",\"coordinates\":["
        "[[10,10],[10,20],[10,30],[10,40],[20,40],[30,40],[40,40],[40,30],[40,20],[40,10],[30,10],"
        "[20,10],[10,10]],"
        "[[10,20],[20,10],[30,20],[20,30],[10,20]]]},"
        "\"properties\":{\"objectType\":\"annotation\",\"classification\":{\"name\":\"Tissue\"}}}\n"
        "]}\n";
    ok(rc == 0 && buf && !strcmp(buf, want), "GeoJSON of a square with a hole: closed rings, level-0 points");
    if (buf && strcmp(buf, want)) diag("got %s", buf);
    free(buf);
    mm_tissue_free(&t);
    /* a lone pixel: a ring of four positions */
    uint8_t one[9] = {0, 0, 0, 0, 255, 0, 0, 0, 0};
    if (mm_tissue_contours(one, 3, 3, &t) == 0) {
        buf = NULL;
        f = open_memstream(&buf, &len);
        rc = mm_tissue_geojson(&t, f);
        fclose(f);
        like(buf, "\"coordinates\":[[[1,1],[1,1],[1,1],[1,1]]]", "a lone pixel's ring has four positions");
        free(buf);
    }
    mm_tissue_free(&t);
    buf = NULL;
    f = open_memstream(&buf, &len);
    rc = mm_tissue_geojson(&t, f);
    fclose(f);
    ok(rc == 0 && !strcmp(buf, "{\"type\":\"FeatureCollection\",\"features\":[\n]}\n"),
       "no regions: an empty FeatureCollection");
    free(buf);
}

static void test_draw(void)
{
    mm_tissue t;
    box_tissue(&t, 20, 20, 4, 4, 15, 15);
    mm_tissue_scale(&t, 4, 4);
    uint8_t img[20 * 20 * 3];
    memset(img, 255, sizeof img);
    mm_tissue_draw(img, 20, 20, &t, 4.0, 1);
    const uint8_t *p = img + 3 * (4 * 20 + 4), *c = img + 3 * (10 * 20 + 10),
                  *e = img + 3 * (4 * 20 + 10);
    ok(p[0] == 0 && p[1] == 255 && p[2] == 0, "the outer contour is drawn in green at its corner");
    ok(e[0] == 0 && e[1] == 255 && e[2] == 0, "... and along its edges");
    ok(c[0] == 255 && c[1] == 255 && c[2] == 255, "the inside is left alone");
    mm_tissue_draw(img, 20, 20, &t, 4.0, 3);
    p = img + 3 * (3 * 20 + 10);
    ok(p[1] == 255 && p[0] == 0, "a 3-pixel line covers the neighbours");
    mm_tile_xy xy = {16, 16};
    uint8_t red[3] = {255, 0, 0};
    memset(img, 255, sizeof img);
    mm_tiles_draw(img, 20, 20, &xy, 1, 32, 4.0, red);
    p = img + 3 * (4 * 20 + 4);
    c = img + 3 * (11 * 20 + 4);
    e = img + 3 * (12 * 20 + 4);
    ok(p[0] == 255 && p[1] == 0 && c[1] == 0 && e[1] == 255,
       "a tile outline spans x, y 4..11 at 1/4 scale");
    mm_tissue_free(&t);
}

int main(void)
{
    test_hsv();
    test_stages();
    test_close("close-noise.txt");
    test_close("close-art.txt");
    static const char *const cases[] = {"contours-art.txt", "contours-frame.txt", "contours-disks.txt",
                                        "contours-noise.txt", "contours-dense.txt", "contours-one.txt",
                                        "contours-full.txt", "contours-empty.txt"};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) test_contours(cases[i]);
    test_clam_scene();
    test_grid_modes();
    test_filters();
    test_geojson();
    test_draw();
    return done_testing();
}
