/* tissue.c: CLAM's tissue segmentation and patch grid (METHODS.md B1)
 * without OpenCV. Each step reproduces the OpenCV 4.x routine CLAM calls,
 * bit for bit on the same input (tests/gen/clam_ref.py checks it against
 * Debian's python3-opencv 4.6):
 *   saturation    cvtColor(RGB2HSV) on u8: integer table, hsv_shift 12
 *   median        medianBlur, replicated border (Huang's sliding histogram)
 *   threshold     THRESH_BINARY, or THRESH_OTSU's between-class variance
 *   close         morphologyEx(MORPH_CLOSE, ones(k, k)): dilate then erode
 *                 with the default anchor (k/2, k/2), so an even kernel
 *                 spans [-k/2, k/2 - 1]; outside pixels never win
 *   contours      findContours(RETR_CCOMP, CHAIN_APPROX_NONE): Suzuki-Abe
 *                 border following as contours.cpp does it (same start
 *                 pixel, direction, marks), the parent of a hole from the
 *                 last marked pixel on its row, and cvTreeToNodeSeq's order
 *   area, test    contourArea, pointPolygonTest(measureDist=false)
 * then CLAM's filters and process_contour's grid with its four-point and
 * hole tests. The grid tests a whole row of candidates at once (the
 * crossings of a polygon with one horizontal line, exact integers), which
 * gives pointPolygonTest's answer for each point without walking the
 * polygon per point.
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mm/tissue.h"

void mm_seg_defaults(mm_seg_opts *o)
{
    o->sthresh = 8;
    o->sthresh_up = 255;
    o->mthresh = 7;
    o->close = 4;
    o->otsu = 0;
    o->a_t = 0;
    o->a_h = 0;
    o->max_n_holes = 8;
}

// ---------------------------------------------------------------- mask

/* S of OpenCV's RGB2HSV_b: (diff * sdiv[v] + 2^11) >> 12 with
 * sdiv[v] = round(255 * 2^12 / v) (saturate_cast<int> of a double). */
static void saturation(const uint8_t *rgb, int64_t n, uint8_t *s)
{
    int sdiv[256];
    sdiv[0] = 0;
    for (int i = 1; i < 256; i++) sdiv[i] = (int)lrint((255 << 12) / (double)i);
    for (int64_t i = 0; i < n; i++) {
        int r = rgb[3 * i], g = rgb[3 * i + 1], b = rgb[3 * i + 2];
        int v = r > g ? r : g, m = r < g ? r : g;
        v = v > b ? v : b;
        m = m < b ? m : b;
        s[i] = (uint8_t)(((v - m) * sdiv[v] + (1 << 11)) >> 12);
    }
}

/* Median of the K x K window with replicated borders (cv2.medianBlur on
 * u8). Huang's algorithm: one histogram per row slides right, adding and
 * dropping one column of K values; the median and the count below it move
 * by a few bins per step. */
static void median_blur(const uint8_t *src, int w, int h, int k, uint8_t *dst)
{
    if (k <= 1) {
        memcpy(dst, src, (size_t)w * h);
        return;
    }
    int r = k / 2, half = k * k / 2;
    const uint8_t **rows = mm_malloc((size_t)k * sizeof *rows);
    for (int y = 0; y < h; y++) {
        for (int j = 0; j < k; j++) {
            int yy = y - r + j;
            yy = yy < 0 ? 0 : yy >= h ? h - 1 : yy;
            rows[j] = src + (size_t)yy * w;
        }
        int hist[256] = {0};
        for (int dx = -r; dx <= r; dx++) {
            int xx = dx < 0 ? 0 : dx >= w ? w - 1 : dx;
            for (int j = 0; j < k; j++) hist[rows[j][xx]]++;
        }
        int med = 0, lt = 0; /* lt: values < med */
        while (lt + hist[med] <= half) lt += hist[med++];
        uint8_t *out = dst + (size_t)y * w;
        out[0] = (uint8_t)med;
        for (int x = 1; x < w; x++) {
            int xo = x - r - 1, xi = x + r;
            xo = xo < 0 ? 0 : xo;
            xi = xi >= w ? w - 1 : xi;
            if (xo != xi) {
                for (int j = 0; j < k; j++) {
                    int a = rows[j][xo], b = rows[j][xi];
                    hist[a]--;
                    lt -= a < med;
                    hist[b]++;
                    lt += b < med;
                }
                while (lt > half) lt -= hist[--med];
                while (lt + hist[med] <= half) lt += hist[med++];
            }
            out[x] = (uint8_t)med;
        }
    }
    free(rows);
}

/* getThreshVal_Otsu_8u: the first bin of largest between-class variance,
 * accumulated in the same order and precision as OpenCV. */
static int otsu_threshold(const uint8_t *s, int64_t n)
{
    int64_t hcount[256] = {0};
    for (int64_t i = 0; i < n; i++) hcount[s[i]]++;
    double mu = 0, scale = 1. / (double)n;
    for (int i = 0; i < 256; i++) mu += i * (double)hcount[i];
    mu *= scale;
    double mu1 = 0, q1 = 0, max_sigma = 0;
    int max_val = 0;
    const double eps = 1.1920928955078125e-07; /* FLT_EPSILON */
    for (int i = 0; i < 256; i++) {
        double p_i = (double)hcount[i] * scale;
        mu1 *= q1;
        q1 += p_i;
        double q2 = 1. - q1;
        if ((q1 < q2 ? q1 : q2) < eps || (q1 > q2 ? q1 : q2) > 1. - eps) continue;
        mu1 = (mu1 + i * p_i) / q1;
        double mu2 = (mu - q1 * mu1) / q2;
        double sigma = q1 * q2 * (mu1 - mu2) * (mu1 - mu2);
        if (sigma > max_sigma) {
            max_sigma = sigma;
            max_val = i;
        }
    }
    return max_val;
}

/* One pass of cv2.dilate (MAX) or cv2.erode (!MAX) with a K x K ones
 * kernel anchored at (K/2, K/2): the window of (x, y) is
 * [x - K/2, x - K/2 + K - 1] and likewise in y. Pixels outside the image
 * are skipped, which is what OpenCV's default border value amounts to
 * (the identity of max and min). Separable: rows into TMP, then columns. */
static void morph(const uint8_t *src, int w, int h, int k, int max, uint8_t *tmp,
                  uint8_t *dst)
{
    int a = k / 2, b = k - 1 - a;
    for (int y = 0; y < h; y++) {
        const uint8_t *s = src + (size_t)y * w;
        uint8_t *t = tmp + (size_t)y * w;
        for (int x = 0; x < w; x++) {
            int lo = x - a < 0 ? 0 : x - a, hi = x + b >= w ? w - 1 : x + b;
            uint8_t v = s[lo];
            for (int i = lo + 1; i <= hi; i++)
                v = max ? (s[i] > v ? s[i] : v) : (s[i] < v ? s[i] : v);
            t[x] = v;
        }
    }
    for (int y = 0; y < h; y++) {
        int lo = y - a < 0 ? 0 : y - a, hi = y + b >= h ? h - 1 : y + b;
        uint8_t *d = dst + (size_t)y * w;
        memcpy(d, tmp + (size_t)lo * w, (size_t)w);
        for (int i = lo + 1; i <= hi; i++) {
            const uint8_t *t = tmp + (size_t)i * w;
            for (int x = 0; x < w; x++)
                d[x] = max ? (t[x] > d[x] ? t[x] : d[x]) : (t[x] < d[x] ? t[x] : d[x]);
        }
    }
}

static int check_opts(const mm_seg_opts *o, int w, int h)
{
    if (w < 1 || h < 1) {
        mm__set_error("tissue: image size %d x %d: expected at least 1 x 1", w, h);
        return -1;
    }
    if (o->mthresh < 1 || o->mthresh % 2 == 0) {
        mm__set_error("tissue: median kernel %d: expected an odd size >= 1", o->mthresh);
        return -1;
    }
    if (o->close < 0) {
        mm__set_error("tissue: close kernel %d: expected >= 0", o->close);
        return -1;
    }
    if (o->max_n_holes < 0) {
        mm__set_error("tissue: max_n_holes %d: expected >= 0", o->max_n_holes);
        return -1;
    }
    return 0;
}

int mm_tissue_mask(const uint8_t *rgb, int w, int h, const mm_seg_opts *o,
                   uint8_t *mask, int *otsu_t)
{
    if (check_opts(o, w, h) < 0) return -1;
    int64_t n = (int64_t)w * h;
    uint8_t *s = mm_malloc((size_t)n), *t = mm_malloc((size_t)n);
    saturation(rgb, n, s);
    median_blur(s, w, h, o->mthresh, t);
    /* cv2.threshold on u8: src > floor(thresh) ? saturate(maxval) : 0 */
    int th = o->sthresh;
    if (o->otsu) {
        th = otsu_threshold(t, n);
        if (otsu_t) *otsu_t = th;
    }
    uint8_t up = (uint8_t)(o->sthresh_up < 0 ? 0 : o->sthresh_up > 255 ? 255 : o->sthresh_up);
    for (int64_t i = 0; i < n; i++) mask[i] = t[i] > th ? up : 0;
    if (o->close > 0) {
        morph(mask, w, h, o->close, 1, t, s);
        morph(s, w, h, o->close, 0, t, mask);
    }
    free(s);
    free(t);
    return 0;
}

// ---------------------------------------------------------------- contours

/* The eight directions of contours.cpp (icvCodeDeltas): E, NE, N, NW, W,
 * SW, S, SE, counter-clockwise on screen. */
static const int dx8[8] = {1, 1, 0, -1, -1, -1, 0, 1};
static const int dy8[8] = {0, -1, -1, -1, 0, 1, 1, 1};

typedef struct {
    int64_t off, n;  /* points in the shared buffer */
    int is_hole;
    int64_t parent;  /* outer contour of a hole (discovery index); -1 */
    int64_t first;   /* a hole list through next, newest first */
    int64_t next;
} cinfo;

typedef struct {
    mm_pt *p;
    int64_t n, cap;
    cinfo *c;
    int64_t nc, capc;
} cbuf;

static void push_pt(cbuf *b, int32_t x, int32_t y)
{
    if (b->n == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 1024;
        b->p = mm_realloc(b->p, (size_t)b->cap * sizeof *b->p);
    }
    b->p[b->n].x = x;
    b->p[b->n].y = y;
    b->n++;
}

/* icvFetchContourEx for CHAIN_APPROX_NONE on the padded label image: start
 * at I0 (point (X, Y) of the unpadded image), look for the first non-zero
 * neighbour clockwise from W (outer) or E (hole), then follow the border
 * counter-clockwise, marking each pixel NBD, or -NBD where the pixel east
 * of it was examined and found zero (the "right bound" that stops the
 * raster scan from starting the same border again). */
static void fetch(cbuf *b, int32_t *i0, int64_t stride, int32_t x, int32_t y,
                  int is_hole, int32_t nbd)
{
    int64_t d[16];
    for (int s = 0; s < 16; s++) d[s] = dx8[s & 7] + dy8[s & 7] * stride;
    int s, s_end;
    int32_t *i1, *i3, *i4 = NULL;
    s_end = s = is_hole ? 0 : 4;
    do {
        s = (s - 1) & 7;
        i1 = i0 + d[s];
    } while (*i1 == 0 && s != s_end);
    if (s == s_end) { /* a lone pixel */
        *i0 = -nbd;
        push_pt(b, x, y);
        return;
    }
    i3 = i0;
    for (;;) {
        s_end = s;
        while (s < 15) {
            i4 = i3 + d[++s];
            if (*i4 != 0) break;
        }
        s &= 7;
        if ((unsigned)(s - 1) < (unsigned)s_end)
            *i3 = -nbd;
        else if (*i3 == 1)
            *i3 = nbd;
        push_pt(b, x, y);
        x += dx8[s];
        y += dy8[s];
        if (i4 == i0 && i3 == i1) break;
        i3 = i4;
        s = (s + 4) & 7;
    }
}

static void poly_copy(mm_poly *dst, const mm_pt *src, int64_t n)
{
    dst->n = n;
    dst->p = mm_malloc((size_t)(n ? n : 1) * sizeof *dst->p);
    memcpy(dst->p, src, (size_t)n * sizeof *src);
}

int mm_tissue_contours(const uint8_t *mask, int w, int h, mm_tissue *t)
{
    t->n = 0;
    t->r = NULL;
    if (w < 1 || h < 1) {
        mm__set_error("tissue: image size %d x %d: expected at least 1 x 1", w, h);
        return -1;
    }
    /* findContours copies the image with a one-pixel zero border and
     * binarises it; marks are the contour's discovery index + 2 (OpenCV
     * keeps only 7 bits and searches the contours sharing a mark; the
     * full index gives the contour that search is looking for). */
    int64_t W = (int64_t)w + 2, H = (int64_t)h + 2;
    if ((W * H) / 2 > INT32_MAX) {
        mm__set_error("tissue: image %d x %d too large for contour labels", w, h);
        return -1;
    }
    int32_t *img = mm_calloc((size_t)(W * H), sizeof *img);
    for (int64_t y = 0; y < h; y++)
        for (int64_t x = 0; x < w; x++) img[(y + 1) * W + x + 1] = mask[y * w + x] != 0;

    cbuf b = {0};
    /* cvFindNextContour's raster scan, RETR_CCOMP */
    for (int64_t y = 1; y < H - 1; y++) {
        int32_t *row = img + y * W;
        int32_t prev = 0;
        int64_t lnbd = 0;
        for (int64_t x = 1; x < W - 1; x++) {
            int32_t p = row[x];
            if (p == prev) continue;
            int is_hole = 0;
            if (!(prev == 0 && p == 1)) {
                if (p != 0 || prev < 1) { /* neither an outer nor a hole start */
                    prev = p;
                    if (prev & -2) lnbd = x;
                    continue;
                }
                if (prev & -2) lnbd = x - 1;
                is_hole = 1;
            }
            int64_t parent = -1;
            if (is_hole) {
                /* the contour that marked the last border pixel met on
                 * this row; a hole's parent is its outer contour */
                int32_t lab = row[lnbd];
                int64_t k = (lab < 0 ? -(int64_t)lab : lab) - 2;
                MM_ASSERT(k >= 0 && k < b.nc);
                parent = b.c[k].is_hole ? b.c[k].parent : k;
            }
            lnbd = x - is_hole;
            if (b.nc == b.capc) {
                b.capc = b.capc ? 2 * b.capc : 64;
                b.c = mm_realloc(b.c, (size_t)b.capc * sizeof *b.c);
            }
            cinfo *ci = &b.c[b.nc];
            ci->off = b.n;
            ci->is_hole = is_hole;
            ci->parent = parent;
            ci->first = ci->next = -1;
            fetch(&b, row + x - is_hole, W, (int32_t)(x - is_hole - 1), (int32_t)(y - 1),
                  is_hole, (int32_t)(b.nc + 2));
            ci = &b.c[b.nc];
            ci->n = b.n - ci->off;
            if (is_hole) { /* cvInsertNodeIntoTree: newest child first */
                ci->next = b.c[parent].first;
                b.c[parent].first = b.nc;
            }
            b.nc++;
            prev = row[x];
        }
    }
    free(img);

    /* cvTreeToNodeSeq: outer contours newest first, each followed by its
     * holes newest first */
    int nout = 0;
    for (int64_t k = 0; k < b.nc; k++) nout += !b.c[k].is_hole;
    t->n = nout;
    t->r = mm_calloc((size_t)(nout ? nout : 1), sizeof *t->r);
    int ri = 0;
    for (int64_t k = b.nc - 1; k >= 0; k--) {
        if (b.c[k].is_hole) continue;
        mm_region *r = &t->r[ri++];
        poly_copy(&r->outer, b.p + b.c[k].off, b.c[k].n);
        int nh = 0;
        for (int64_t j = b.c[k].first; j >= 0; j = b.c[j].next) nh++;
        r->n_holes = nh;
        r->holes = mm_calloc((size_t)(nh ? nh : 1), sizeof *r->holes);
        double a = mm_poly_area(&r->outer);
        nh = 0;
        for (int64_t j = b.c[k].first; j >= 0; j = b.c[j].next) {
            poly_copy(&r->holes[nh], b.p + b.c[j].off, b.c[j].n);
            a -= mm_poly_area(&r->holes[nh]);
            nh++;
        }
        r->area = a;
    }
    free(b.p);
    free(b.c);
    return 0;
}

static void region_free(mm_region *r)
{
    free(r->outer.p);
    for (int j = 0; j < r->n_holes; j++) free(r->holes[j].p);
    free(r->holes);
}

void mm_tissue_free(mm_tissue *t)
{
    if (!t) return;
    for (int i = 0; i < t->n; i++) region_free(&t->r[i]);
    free(t->r);
    t->r = NULL;
    t->n = 0;
}

// ---------------------------------------------------------------- filters

typedef struct {
    double a;
    int i;
} area_idx;

/* sorted(key=contourArea, reverse=True) is stable: ties keep their order */
static int by_area_desc(const void *pa, const void *pb)
{
    const area_idx *a = pa, *b = pb;
    if (a->a != b->a) return a->a > b->a ? -1 : 1;
    return a->i - b->i;
}

int mm_tissue_segment(const uint8_t *rgb, int w, int h, const mm_seg_opts *o,
                      mm_tissue *t)
{
    t->n = 0;
    t->r = NULL;
    if (check_opts(o, w, h) < 0) return -1;
    uint8_t *mask = mm_malloc((size_t)w * h);
    mm_tissue all;
    if (mm_tissue_mask(rgb, w, h, o, mask, NULL) < 0 ||
        mm_tissue_contours(mask, w, h, &all) < 0) {
        free(mask);
        return -1;
    }
    free(mask);
    /* CLAM's _filter_contours */
    t->r = mm_calloc((size_t)(all.n ? all.n : 1), sizeof *t->r);
    for (int i = 0; i < all.n; i++) {
        mm_region *r = &all.r[i];
        if (r->area == 0 || !(o->a_t < r->area)) {
            region_free(r);
            continue;
        }
        area_idx *ai = mm_malloc((size_t)(r->n_holes ? r->n_holes : 1) * sizeof *ai);
        for (int j = 0; j < r->n_holes; j++) {
            ai[j].a = mm_poly_area(&r->holes[j]);
            ai[j].i = j;
        }
        qsort(ai, (size_t)r->n_holes, sizeof *ai, by_area_desc);
        int lim = r->n_holes < o->max_n_holes ? r->n_holes : o->max_n_holes;
        mm_region *d = &t->r[t->n++];
        d->outer = r->outer;
        d->area = r->area;
        d->holes = mm_calloc((size_t)(lim ? lim : 1), sizeof *d->holes);
        d->n_holes = 0;
        char *used = mm_calloc((size_t)(r->n_holes ? r->n_holes : 1), 1);
        for (int j = 0; j < lim; j++)
            if (ai[j].a > o->a_h) {
                d->holes[d->n_holes++] = r->holes[ai[j].i];
                used[ai[j].i] = 1;
            }
        for (int j = 0; j < r->n_holes; j++)
            if (!used[j]) free(r->holes[j].p);
        free(used);
        free(r->holes);
        free(ai);
    }
    free(all.r);
    return 0;
}

void mm_tissue_scale(mm_tissue *t, double sx, double sy)
{
    for (int i = 0; i < t->n; i++) {
        mm_region *r = &t->r[i];
        for (int j = -1; j < r->n_holes; j++) {
            mm_poly *p = j < 0 ? &r->outer : &r->holes[j];
            for (int64_t k = 0; k < p->n; k++) {
                p->p[k].x = (int32_t)(p->p[k].x * sx);
                p->p[k].y = (int32_t)(p->p[k].y * sy);
            }
        }
        r->area *= sx * sy;
    }
}

// ---------------------------------------------------------------- geometry

double mm_poly_area(const mm_poly *p)
{
    /* cv::contourArea: points through float, shoelace in double */
    if (p->n == 0) return 0;
    float px = (float)p->p[p->n - 1].x, py = (float)p->p[p->n - 1].y;
    double a = 0;
    for (int64_t i = 0; i < p->n; i++) {
        float x = (float)p->p[i].x, y = (float)p->p[i].y;
        a += (double)px * y - (double)py * x;
        px = x;
        py = y;
    }
    return fabs(a * 0.5);
}

int mm_poly_test(const mm_poly *p, double x, double y)
{
    if (p->n == 0) return -1;
    float fx = (float)x, fy = (float)y; /* Point2f */
    int64_t n = p->n, counter = 0;
    if (fx == nearbyintf(fx) && fy == nearbyintf(fy)) {
        /* OpenCV's integer branch */
        int64_t ix = (int64_t)fx, iy = (int64_t)fy;
        int64_t vx = p->p[n - 1].x, vy = p->p[n - 1].y;
        for (int64_t i = 0; i < n; i++) {
            int64_t v0x = vx, v0y = vy;
            vx = p->p[i].x;
            vy = p->p[i].y;
            if ((v0y <= iy && vy <= iy) || (v0y > iy && vy > iy) || (v0x < ix && vx < ix)) {
                if (iy == vy && (ix == vx || (iy == v0y && ((v0x <= ix && ix <= vx) ||
                                                            (vx <= ix && ix <= v0x)))))
                    return 0;
                continue;
            }
            int64_t dist = (iy - v0y) * (vx - v0x) - (ix - v0x) * (vy - v0y);
            if (dist == 0) return 0;
            if (vy < v0y) dist = -dist;
            counter += dist > 0;
        }
    } else {
        /* the float branch: differences in float, products in double */
        float vx = (float)p->p[n - 1].x, vy = (float)p->p[n - 1].y;
        for (int64_t i = 0; i < n; i++) {
            float v0x = vx, v0y = vy;
            vx = (float)p->p[i].x;
            vy = (float)p->p[i].y;
            if ((v0y <= fy && vy <= fy) || (v0y > fy && vy > fy) || (v0x < fx && vx < fx)) {
                if (fy == vy && (fx == vx || (fy == v0y && ((v0x <= fx && fx <= vx) ||
                                                            (vx <= fx && fx <= v0x)))))
                    return 0;
                continue;
            }
            float d1 = fy - v0y, d2 = vx - v0x, d3 = fx - v0x, d4 = vy - v0y;
            double dist = (double)d1 * d2 - (double)d3 * d4;
            if (dist == 0) return 0;
            if (vy < v0y) dist = -dist;
            counter += dist > 0;
        }
    }
    return counter % 2 == 0 ? -1 : 1;
}

void mm_poly_bbox(const mm_poly *p, int64_t *x, int64_t *y, int64_t *w, int64_t *h)
{
    if (p->n == 0) {
        *x = *y = *w = *h = 0;
        return;
    }
    int64_t x0 = p->p[0].x, x1 = x0, y0 = p->p[0].y, y1 = y0;
    for (int64_t i = 1; i < p->n; i++) {
        int64_t a = p->p[i].x, b = p->p[i].y;
        x0 = a < x0 ? a : x0;
        x1 = a > x1 ? a : x1;
        y0 = b < y0 ? b : y0;
        y1 = b > y1 ? b : y1;
    }
    *x = x0;
    *y = y0;
    *w = x1 - x0 + 1;
    *h = y1 - y0 + 1;
}

// ---------------------------------------------------------------- row tests

/* A polygon cut by the horizontal line Y, in doubled coordinates (so that
 * CLAM's hole test point pt + ps/2 is an integer too). pointPolygonTest
 * counts the edges crossing the line strictly right of the point (the
 * half-open rule: one end <= Y, the other > Y) and answers 0 for a point on
 * the polygon. For each crossing edge, L is the largest integer X with the
 * crossing right of X, so the count at X is #{L >= X}; ON holds the points
 * and horizontal edges lying on the line, merged into disjoint intervals.
 * For integer (or half-integer) points this is exactly OpenCV's answer:
 * its integer branch is exact, and its float branch is exact for
 * coordinates below 2^22. */
typedef struct {
    int64_t *L;
    int nl;
    int64_t (*on)[2];
    int non;
} prow;

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int64_t floor_div(int64_t a, int64_t b) /* b > 0 */
{
    int64_t q = a / b;
    return q - (a % b != 0 && a < 0);
}

typedef struct {
    int64_t *L;
    int nl, capl;
    int64_t (*on)[2];
    int non, capon;
} prow_build;

static void pb_L(prow_build *b, int64_t v)
{
    if (b->nl == b->capl) {
        b->capl = b->capl ? 2 * b->capl : 16;
        b->L = mm_realloc(b->L, (size_t)b->capl * sizeof *b->L);
    }
    b->L[b->nl++] = v;
}

static void pb_on(prow_build *b, int64_t a, int64_t c)
{
    if (b->non == b->capon) {
        b->capon = b->capon ? 2 * b->capon : 16;
        b->on = mm_realloc(b->on, (size_t)b->capon * sizeof *b->on);
    }
    b->on[b->non][0] = a < c ? a : c;
    b->on[b->non][1] = a < c ? c : a;
    b->non++;
}

static void prow_make(prow *r, const mm_poly *p, int64_t Y)
{
    prow_build b = {0};
    int64_t n = p->n;
    for (int64_t i = 0; i < n; i++) {
        const mm_pt *a = &p->p[i ? i - 1 : n - 1], *c = &p->p[i];
        int64_t x0 = 2 * (int64_t)a->x, y0 = 2 * (int64_t)a->y;
        int64_t x1 = 2 * (int64_t)c->x, y1 = 2 * (int64_t)c->y;
        if (y1 == Y) pb_on(&b, x1, x1);
        if (y0 == Y && y1 == Y) pb_on(&b, x0, x1);
        if ((y0 <= Y) == (y1 <= Y)) continue;
        int64_t den = y1 - y0, num = (Y - y0) * (x1 - x0);
        if (den < 0) {
            den = -den;
            num = -num;
        }
        int64_t q = floor_div(num, den), xf = x0 + q;
        if (num - q * den == 0) {
            pb_on(&b, xf, xf);
            pb_L(&b, xf - 1);
        } else {
            pb_L(&b, xf);
        }
    }
    if (b.nl > 1) qsort(b.L, (size_t)b.nl, sizeof *b.L, cmp_i64);
    if (b.non > 1) qsort(b.on, (size_t)b.non, sizeof *b.on, cmp_i64); /* by start */
    int m = 0;
    for (int i = 0; i < b.non; i++) {
        if (m && b.on[i][0] <= b.on[m - 1][1]) {
            if (b.on[i][1] > b.on[m - 1][1]) b.on[m - 1][1] = b.on[i][1];
        } else {
            b.on[m][0] = b.on[i][0];
            b.on[m][1] = b.on[i][1];
            m++;
        }
    }
    r->L = b.L;
    r->nl = b.nl;
    r->on = b.on;
    r->non = m;
}

static void prow_free(prow *r)
{
    free(r->L);
    free(r->on);
}

/* pointPolygonTest at doubled X on the row: 1 inside, 0 on, -1 outside */
static int prow_test(const prow *r, int64_t X)
{
    int lo = 0, hi = r->non; /* first interval starting after X */
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (r->on[mid][0] <= X) lo = mid + 1; else hi = mid;
    }
    if (lo > 0 && r->on[lo - 1][1] >= X) return 0;
    lo = 0;
    hi = r->nl; /* first L >= X */
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (r->L[mid] < X) lo = mid + 1; else hi = mid;
    }
    return (r->nl - lo) % 2 ? 1 : -1;
}

// ---------------------------------------------------------------- grid

typedef struct {
    mm_tile_xy *p;
    int64_t n, cap;
} tbuf;

static void push_tile(tbuf *b, int64_t x, int64_t y)
{
    if (b->n == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 256;
        b->p = mm_realloc(b->p, (size_t)b->cap * sizeof *b->p);
    }
    b->p[b->n].x = x;
    b->p[b->n].y = y;
    b->n++;
}

/* np.arange(start, stop, step) */
static int64_t arange_n(int64_t start, int64_t stop, int64_t step)
{
    return stop > start ? (stop - start + step - 1) / step : 0;
}

/* does a polygon's bounding box reach the doubled row Y? */
static int poly_spans(const mm_poly *p, int64_t Y, int64_t *bb)
{
    return Y >= 2 * bb[1] && Y <= 2 * (bb[1] + bb[3] - 1) && p->n > 0;
}

/* CLAM's four_pt and hole tests for region R over the grid XS x YS,
 * x-major, appending the kept tiles. */
static void tiles_four_pt(const mm_region *r, const int64_t *xs, int64_t nx,
                          const int64_t *ys, int64_t ny, int64_t ps, tbuf *out)
{
    int64_t half = ps / 2, shift = half / 2; /* int(ps//2 * 0.5) */
    int nh = r->n_holes;
    int64_t(*hb)[4] = mm_malloc((size_t)(nh ? nh : 1) * sizeof *hb);
    for (int j = 0; j < nh; j++) mm_poly_bbox(&r->holes[j], &hb[j][0], &hb[j][1], &hb[j][2], &hb[j][3]);
    /* per grid row: the outer polygon on the two test lines (one when the
     * shift is 0) and each hole reaching the centre line */
    int nrow = shift > 0 ? 2 : 1;
    prow *orow = mm_calloc((size_t)(ny * nrow > 0 ? ny * nrow : 1), sizeof *orow);
    prow *hrow = mm_calloc((size_t)(ny * nh > 0 ? ny * nh : 1), sizeof *hrow);
    char *hspan = mm_calloc((size_t)(ny * nh > 0 ? ny * nh : 1), 1);
    for (int64_t iy = 0; iy < ny; iy++) {
        int64_t cy = ys[iy] + half;
        prow_make(&orow[iy * nrow], &r->outer, 2 * (cy - shift));
        if (nrow == 2) prow_make(&orow[iy * nrow + 1], &r->outer, 2 * (cy + shift));
        int64_t Yh = 2 * ys[iy] + ps; /* pt + ps/2, doubled */
        for (int j = 0; j < nh; j++)
            if (poly_spans(&r->holes[j], Yh, hb[j])) {
                prow_make(&hrow[iy * nh + j], &r->holes[j], Yh);
                hspan[iy * nh + j] = 1;
            }
    }
    for (int64_t ix = 0; ix < nx; ix++) {
        int64_t cx = xs[ix] + half;
        for (int64_t iy = 0; iy < ny; iy++) {
            int in;
            if (nrow == 1) {
                in = prow_test(&orow[iy], 2 * cx) >= 0;
            } else {
                const prow *lo = &orow[iy * 2], *hi = &orow[iy * 2 + 1];
                in = prow_test(lo, 2 * (cx - shift)) >= 0 || prow_test(hi, 2 * (cx + shift)) >= 0 ||
                     prow_test(lo, 2 * (cx + shift)) >= 0 || prow_test(hi, 2 * (cx - shift)) >= 0;
            }
            if (!in) continue;
            int64_t Xh = 2 * xs[ix] + ps;
            for (int j = 0; j < nh && in; j++)
                if (hspan[iy * nh + j] && Xh >= 2 * hb[j][0] &&
                    Xh <= 2 * (hb[j][0] + hb[j][2] - 1) && prow_test(&hrow[iy * nh + j], Xh) > 0)
                    in = 0;
            if (in) push_tile(out, xs[ix], ys[iy]);
        }
    }
    for (int64_t i = 0; i < ny * nrow; i++) prow_free(&orow[i]);
    for (int64_t i = 0; i < ny * nh; i++)
        if (hspan[i]) prow_free(&hrow[i]);
    free(orow);
    free(hrow);
    free(hspan);
    free(hb);
}

/* smallest i >= 0 with (int64)(i * s) >= v: the first segmentation pixel
 * whose level-0 position (CLAM's truncated scaling) reaches v */
static int64_t first_idx(int64_t v, double s)
{
    int64_t i = (int64_t)floor(v / s) - 1;
    if (i < 0) i = 0;
    while ((int64_t)(i * s) < v) i++;
    return i;
}

/* --min-tissue: region R rasterised at the segmentation level (pixel
 * (i, j) is in when its level-0 position (int(i sx), int(j sy)) is inside
 * or on the outer contour and not strictly inside a kept hole: the same
 * tests as CLAM's, so a boundary pixel counts as tissue), then the share
 * of each tile's segmentation pixels that are in, from a summed-area
 * table. */
static void tiles_min_tissue(const mm_region *r, const int64_t *xs, int64_t nx,
                             const int64_t *ys, int64_t ny, const mm_grid_opts *g,
                             tbuf *out)
{
    int64_t bx, by, bw, bh;
    mm_poly_bbox(&r->outer, &bx, &by, &bw, &bh);
    int64_t i0 = first_idx(bx, g->sx), i1 = first_idx(bx + bw, g->sx);
    int64_t j0 = first_idx(by, g->sy), j1 = first_idx(by + bh, g->sy);
    int64_t mw = i1 - i0, mh = j1 - j0;
    int64_t *sat = mm_calloc((size_t)((mw + 1) * (mh + 1)), sizeof *sat);
    int64_t *X = mm_malloc((size_t)(mw ? mw : 1) * sizeof *X);
    for (int64_t i = 0; i < mw; i++) X[i] = 2 * (int64_t)((i0 + i) * g->sx);
    for (int64_t j = 0; j < mh; j++) {
        int64_t Y = 2 * (int64_t)((j0 + j) * g->sy);
        prow o;
        prow_make(&o, &r->outer, Y);
        prow *hr = mm_calloc((size_t)(r->n_holes ? r->n_holes : 1), sizeof *hr);
        for (int k = 0; k < r->n_holes; k++) prow_make(&hr[k], &r->holes[k], Y);
        int64_t run = 0;
        for (int64_t i = 0; i < mw; i++) {
            int in = prow_test(&o, X[i]) >= 0;
            for (int k = 0; k < r->n_holes && in; k++) in = prow_test(&hr[k], X[i]) <= 0;
            run += in;
            sat[(j + 1) * (mw + 1) + i + 1] = sat[j * (mw + 1) + i + 1] + run;
        }
        prow_free(&o);
        for (int k = 0; k < r->n_holes; k++) prow_free(&hr[k]);
        free(hr);
    }
    for (int64_t ix = 0; ix < nx; ix++) {
        int64_t a0 = first_idx(xs[ix], g->sx), a1 = first_idx(xs[ix] + g->ps0, g->sx);
        for (int64_t iy = 0; iy < ny; iy++) {
            int64_t b0 = first_idx(ys[iy], g->sy), b1 = first_idx(ys[iy] + g->ps0, g->sy);
            int64_t tot = (a1 - a0) * (b1 - b0);
            /* the tile's pixels that fall in the raster */
            int64_t u0 = a0 - i0, u1 = a1 - i0, v0 = b0 - j0, v1 = b1 - j0;
            u0 = u0 < 0 ? 0 : u0 > mw ? mw : u0;
            u1 = u1 < 0 ? 0 : u1 > mw ? mw : u1;
            v0 = v0 < 0 ? 0 : v0 > mh ? mh : v0;
            v1 = v1 < 0 ? 0 : v1 > mh ? mh : v1;
            int64_t in = sat[v1 * (mw + 1) + u1] - sat[v0 * (mw + 1) + u1] -
                         sat[v1 * (mw + 1) + u0] + sat[v0 * (mw + 1) + u0];
            if (tot > 0 && (double)in >= g->min_tissue * (double)tot)
                push_tile(out, xs[ix], ys[iy]);
        }
    }
    free(X);
    free(sat);
}

static int64_t *arange(int64_t start, int64_t stop, int64_t step, int64_t *n)
{
    *n = arange_n(start, stop, step);
    int64_t *v = mm_malloc((size_t)(*n ? *n : 1) * sizeof *v);
    for (int64_t i = 0; i < *n; i++) v[i] = start + i * step;
    return v;
}

int64_t mm_tissue_tiles(const mm_tissue *t, const mm_grid_opts *g, mm_tile_xy **out)
{
    *out = NULL;
    if (g->ps0 < 1 || g->step0 < 1 || g->w0 < 1 || g->h0 < 1) {
        mm__set_error("tissue: grid: patch %lld, step %lld, image %lld x %lld: expected "
                      "positive sizes", (long long)g->ps0, (long long)g->step0,
                      (long long)g->w0, (long long)g->h0);
        return -1;
    }
    if (g->mode == MM_TILE_MIN_TISSUE && !(g->sx >= 1 && g->sy >= 1)) {
        mm__set_error("tissue: grid: segmentation scale %g x %g: expected >= 1", g->sx, g->sy);
        return -1;
    }
    if ((unsigned)g->mode > MM_TILE_ALL) {
        mm__set_error("tissue: grid: unknown mode %d", (int)g->mode);
        return -1;
    }
    tbuf b = {0};
    int nreg = g->mode == MM_TILE_ALL ? 1 : t->n;
    for (int i = 0; i < nreg; i++) {
        int64_t x0, y0, w, h;
        if (g->mode == MM_TILE_ALL) {
            x0 = y0 = 0;
            w = g->w0;
            h = g->h0;
        } else {
            mm_poly_bbox(&t->r[i].outer, &x0, &y0, &w, &h);
        }
        int64_t stop_x = x0 + w, stop_y = y0 + h;
        if (!g->padding) {
            if (stop_x > g->w0 - g->ps0 + 1) stop_x = g->w0 - g->ps0 + 1;
            if (stop_y > g->h0 - g->ps0 + 1) stop_y = g->h0 - g->ps0 + 1;
        }
        int64_t nx, ny;
        int64_t *xs = arange(x0, stop_x, g->step0, &nx), *ys = arange(y0, stop_y, g->step0, &ny);
        int64_t before = b.n;
        if (g->mode == MM_TILE_ALL) {
            for (int64_t ix = 0; ix < nx; ix++)
                for (int64_t iy = 0; iy < ny; iy++) push_tile(&b, xs[ix], ys[iy]);
        } else if (g->mode == MM_TILE_FOUR_PT) {
            tiles_four_pt(&t->r[i], xs, nx, ys, ny, g->ps0, &b);
        } else {
            tiles_min_tissue(&t->r[i], xs, nx, ys, ny, g, &b);
        }
        /* process_contour saves a contour's coordinates only when
         * len(results) > 1 */
        if (g->mode != MM_TILE_ALL && !g->keep_single && b.n - before == 1) b.n = before;
        free(xs);
        free(ys);
    }
    *out = b.p ? b.p : mm_malloc(sizeof **out);
    return b.n;
}

// ---------------------------------------------------------------- drawing

static void put_px(uint8_t *rgb, int w, int h, int64_t x, int64_t y, int line,
                   const uint8_t c[3])
{
    int64_t a = (line - 1) / 2, bb = line / 2;
    for (int64_t yy = y - a; yy <= y + bb; yy++) {
        if (yy < 0 || yy >= h) continue;
        for (int64_t xx = x - a; xx <= x + bb; xx++) {
            if (xx < 0 || xx >= w) continue;
            uint8_t *p = rgb + 3 * ((size_t)yy * w + xx);
            p[0] = c[0];
            p[1] = c[1];
            p[2] = c[2];
        }
    }
}

/* Bresenham from (x0, y0) to (x1, y1) with a LINE x LINE square pen */
static void draw_line(uint8_t *rgb, int w, int h, int64_t x0, int64_t y0, int64_t x1,
                      int64_t y1, int line, const uint8_t c[3])
{
    int64_t dx = x1 > x0 ? x1 - x0 : x0 - x1, dy = y1 > y0 ? y0 - y1 : y1 - y0;
    int64_t sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1, err = dx + dy;
    for (;;) {
        put_px(rgb, w, h, x0, y0, line, c);
        if (x0 == x1 && y0 == y1) break;
        int64_t e2 = 2 * err;
        if (e2 >= dy) {
            err += dy;
            x0 += sx;
        }
        if (e2 <= dx) {
            err += dx;
            y0 += sy;
        }
    }
}

static void draw_poly(uint8_t *rgb, int w, int h, const mm_poly *p, double scale, int line,
                      const uint8_t c[3])
{
    if (p->n == 0) return;
    double inv = 1.0 / scale; /* CLAM draws int32(pt * (1 / downsample)) */
    int64_t px = (int64_t)(p->p[p->n - 1].x * inv), py = (int64_t)(p->p[p->n - 1].y * inv);
    for (int64_t i = 0; i < p->n; i++) {
        int64_t x = (int64_t)(p->p[i].x * inv), y = (int64_t)(p->p[i].y * inv);
        draw_line(rgb, w, h, px, py, x, y, line, c);
        px = x;
        py = y;
    }
}

void mm_tissue_draw(uint8_t *rgb, int w, int h, const mm_tissue *t, double scale, int line)
{
    static const uint8_t green[3] = {0, 255, 0}, blue[3] = {0, 0, 255};
    if (line < 1) line = 1;
    for (int i = 0; i < t->n; i++) {
        draw_poly(rgb, w, h, &t->r[i].outer, scale, line, green);
        for (int j = 0; j < t->r[i].n_holes; j++)
            draw_poly(rgb, w, h, &t->r[i].holes[j], scale, line, blue);
    }
}

void mm_tiles_draw(uint8_t *rgb, int w, int h, const mm_tile_xy *xy, int64_t n, int64_t ps0,
                   double scale, const uint8_t tile_rgb[3])
{
    double inv = 1.0 / scale;
    for (int64_t i = 0; i < n; i++) {
        int64_t x0 = (int64_t)(xy[i].x * inv), y0 = (int64_t)(xy[i].y * inv);
        int64_t x1 = (int64_t)((xy[i].x + ps0) * inv) - 1, y1 = (int64_t)((xy[i].y + ps0) * inv) - 1;
        if (x1 < x0) x1 = x0;
        if (y1 < y0) y1 = y0;
        draw_line(rgb, w, h, x0, y0, x1, y0, 1, tile_rgb);
        draw_line(rgb, w, h, x1, y0, x1, y1, 1, tile_rgb);
        draw_line(rgb, w, h, x1, y1, x0, y1, 1, tile_rgb);
        draw_line(rgb, w, h, x0, y1, x0, y0, 1, tile_rgb);
    }
}

// ---------------------------------------------------------------- GeoJSON

/* A closed ring; GeoJSON wants at least four positions, so a ring of one
 * or two points repeats its last point. */
static void ring(FILE *f, const mm_poly *p)
{
    fputc('[', f);
    int64_t n = p->n, m = n + 1 < 4 ? 4 : n + 1;
    for (int64_t i = 0; i < m; i++) {
        const mm_pt *q = i == m - 1 ? &p->p[0] : &p->p[i < n ? i : n - 1];
        fprintf(f, "%s[%d,%d]", i ? "," : "", (int)q->x, (int)q->y);
    }
    fputc(']', f);
}

int mm_tissue_geojson(const mm_tissue *t, FILE *f)
{
    fputs("{\"type\":\"FeatureCollection\",\"features\":[", f);
    int nf = 0;
    for (int i = 0; i < t->n; i++) {
        const mm_region *r = &t->r[i];
        if (r->outer.n == 0) continue;
        fprintf(f, "%s\n{\"type\":\"Feature\",\"geometry\":{\"type\":\"Polygon\",\"coordinates\":[",
                nf++ ? "," : "");
        ring(f, &r->outer);
        for (int j = 0; j < r->n_holes; j++)
            if (r->holes[j].n) {
                fputc(',', f);
                ring(f, &r->holes[j]);
            }
        fputs("]},\"properties\":{\"objectType\":\"annotation\",\"classification\":{\"name\":"
              "\"Tissue\"}}}", f);
    }
    fputs("\n]}\n", f);
    if (ferror(f)) {
        mm__set_error("tissue: GeoJSON: write error");
        return -1;
    }
    return 0;
}
