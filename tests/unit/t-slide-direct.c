/* t-slide-direct.c: the direct reader of JPEG-tiled TIFF levels
 * (lib/slide_tiff.c) against OpenSlide 3.4.1's read_region, byte for byte,
 * on CMU-1-Small-Region.svs (Aperio, RGB JPEG, 240-px tiles), the derived
 * CMU-1-Small-Region_pyramid_jpeg.tif (generic TIFF, YCbCr 4:2:0, 256-px
 * tiles, fractional downsamples) and a pyramid made here with libvips from
 * a crop of CMU-1 (112-px tiles, downsamples exactly 2, 4, 8, so levels > 0
 * are read directly too): a dense 256-px grid over every level from aligned,
 * unaligned and negative origins, random regions partly or wholly outside
 * the level, regions wider than OpenSlide's 4096-px pieces, a pad colour,
 * a tiny cache read from several threads at once. Each comparison also
 * counts the reads the direct path served, so a silent fall-back to
 * OpenSlide fails the test.
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <vips/vips.h>

#include "../tap.h"
#include "../fixture.h"
#include "mm/slide.h"

static uint64_t rng = 88172645463325252ull;
static int64_t rnd(int64_t lo, int64_t hi) /* [lo, hi] */
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return lo + (int64_t)(rng % (uint64_t)(hi - lo + 1));
}

typedef struct {
    mm_slide *d, *o; /* direct, OpenSlide */
    uint8_t *a, *b;
    size_t cap;
    int64_t bad, reads, errs;
} pair;

/* Read one region both ways; count differing regions. */
static void cmp_region(pair *p, int64_t x, int64_t y, int level, int64_t w, int64_t h)
{
    size_t n = (size_t)(w * h) * 3;
    if (n > p->cap) {
        p->a = realloc(p->a, n);
        p->b = realloc(p->b, n);
        p->cap = n;
    }
    int64_t before = mm_slide_direct_reads(p->d);
    int r1 = mm_slide_read_region(p->d, x, y, level, w, h, p->a);
    int r2 = mm_slide_read_region(p->o, x, y, level, w, h, p->b);
    p->reads += mm_slide_direct_reads(p->d) > before;
    if (r1 || r2) {
        p->errs++;
        return;
    }
    if (memcmp(p->a, p->b, n) != 0) {
        if (p->bad++ < 3)
            diag("differs: level %d (%lld, %lld) %lld x %lld", level, (long long)x, (long long)y,
                 (long long)w, (long long)h);
    }
}

static int open_pair(pair *p, const char *path, const char *name)
{
    memset(p, 0, sizeof *p);
    p->d = mm_slide_open(path, NULL);
    p->o = mm_slide_open(path, NULL);
    if (!ok(p->d && p->o, "%s opens", name)) {
        diag("%s", mm_strerror());
        mm_slide_close(p->d);
        mm_slide_close(p->o);
        return 0;
    }
    mm_slide_set_direct(p->o, 0);
    ok(!mm_slide_direct(p->o, 0), "%s: mm_slide_set_direct(0) turns it off", name);
    return 1;
}

static void close_pair(pair *p)
{
    mm_slide_close(p->d);
    mm_slide_close(p->o);
    free(p->a);
    free(p->b);
}

/* Every check on LEVEL; WHOLE: its downsample divides the grid origins, so
 * every read must be served directly (else only those at origin 0). */
static void check_level(pair *p, const char *name, int level, int whole)
{
    int64_t lw, lh;
    mm_slide_level_size(p->d, level, &lw, &lh);
    double ds = mm_slide_level_downsample(p->d, level);
    int64_t step = (int64_t)(256 * ds + 0.5);

    /* the 256-px grid wsi-tile reads: level-0 origins (x0 + i step, y0 + j step) */
    static const int64_t org[][2] = {{0, 0}, {37, 101}, {-300, -45}};
    for (size_t k = 0; k < sizeof org / sizeof *org; k++) {
        pair q = *p;
        q.bad = q.reads = q.errs = 0;
        int64_t x0 = org[k][0] * (int64_t)ds, y0 = org[k][1] * (int64_t)ds, n = 0;
        for (int64_t x = x0; x < (int64_t)(lw * ds); x += step)
            for (int64_t y = y0; y < (int64_t)(lh * ds); y += step, n++) cmp_region(&q, x, y, level, 256, 256);
        p->a = q.a, p->b = q.b, p->cap = q.cap;
        ok(q.bad == 0 && q.errs == 0, "%s level %d: %lld grid tiles from (%lld, %lld) equal read_region",
           name, level, (long long)n, (long long)x0, (long long)y0);
        if (whole)
            is_int(q.reads, n, "%s level %d: the direct path read all of them", name, level);
    }

    /* random regions, partly or wholly outside, unaligned */
    pair q = *p;
    q.bad = q.reads = q.errs = 0;
    int n = 150;
    for (int i = 0; i < n; i++) {
        int64_t w = rnd(1, 600), h = rnd(1, 600);
        int64_t x = rnd(-w - 20, lw + 20), y = rnd(-h - 20, lh + 20);
        if (i % 10 == 0) x = -w - rnd(1, 50); /* wholly outside */
        cmp_region(&q, (int64_t)(x * ds), (int64_t)(y * ds), level, w, h);
    }
    p->a = q.a, p->b = q.b, p->cap = q.cap;
    ok(q.bad == 0 && q.errs == 0, "%s level %d: %d random regions equal read_region", name, level, n);
    if (whole) is_int(q.reads, n, "%s level %d: the direct path read all of them", name, level);

    /* the whole level (the segmentation read) and one wider than the
     * 4096-px pieces read_region works in */
    q = *p;
    q.bad = q.reads = q.errs = 0;
    cmp_region(&q, 0, 0, level, lw, lh);
    cmp_region(&q, (int64_t)(-1000 * ds), (int64_t)(17 * ds), level, 5000, 300);
    cmp_region(&q, (int64_t)(-5 * ds), (int64_t)(-4200 * ds), level, 300, 4500);
    p->a = q.a, p->b = q.b, p->cap = q.cap;
    ok(q.bad == 0 && q.errs == 0, "%s level %d: whole level and > 4096-px regions equal", name, level);
    ok(q.reads >= 1, "%s level %d: the whole level was read directly", name, level);
    if (whole) is_int(q.reads, 3, "%s level %d: all three read directly", name, level);
}

static void check_slide(const char *path, const char *name, int whole_from)
{
    pair p;
    if (!open_pair(&p, path, name)) return;
    int nl = mm_slide_levels(p.d);
    for (int l = 0; l < nl; l++) {
        ok(mm_slide_direct(p.d, l), "%s: level %d is read directly", name, l);
        check_level(&p, name, l, l < whole_from || mm_slide_level_downsample(p.d, l) ==
                                                        (double)(int64_t)mm_slide_level_downsample(p.d, l));
    }
    /* the pad colour, past the edges */
    mm_slide_set_pad(p.d, 10, 200, 30);
    mm_slide_set_pad(p.o, 10, 200, 30);
    int64_t lw, lh;
    mm_slide_level_size(p.d, 0, &lw, &lh);
    p.bad = p.errs = p.reads = 0;
    cmp_region(&p, lw - 100, lh - 50, 0, 256, 256);
    cmp_region(&p, -60, -70, 0, 256, 256);
    ok(p.bad == 0 && p.errs == 0 && p.reads == 2, "%s: pad colour past the edges as OpenSlide's", name);
    ok(p.a[(255 * 256 + 255) * 3 + 1] == 200 || p.a[1] == 200, "%s: the pad colour is used", name);
    close_pair(&p);
}

/* several threads reading one handle whose cache holds a few tiles */
typedef struct {
    mm_slide *s;
    int t, nt;
    int64_t lw, lh;
    uint8_t *out; /* the whole grid, tile after tile */
    int rc;
} job;

static void *reader(void *arg)
{
    job *j = arg;
    int64_t k = 0;
    for (int64_t x = 0; x < j->lw; x += 200)
        for (int64_t y = 0; y < j->lh; y += 200, k++)
            if (k % j->nt == j->t &&
                mm_slide_read_region(j->s, x + 13, y + 7, 0, 256, 256, j->out + (size_t)k * 256 * 256 * 3) < 0)
                j->rc = -1;
    return NULL;
}

static void check_threads(const char *path, const char *name)
{
    setenv("MMPATH_SLIDE_CACHE_MB", "1", 1);
    mm_slide *s = mm_slide_open(path, NULL);
    unsetenv("MMPATH_SLIDE_CACHE_MB");
    mm_slide *o = mm_slide_open(path, NULL);
    if (!ok(s && o, "%s opens (1 MiB cache)", name)) return;
    mm_slide_set_direct(o, 0);
    int64_t lw, lh;
    mm_slide_level_size(s, 0, &lw, &lh);
    int64_t n = ((lw + 199) / 200) * ((lh + 199) / 200);
    size_t sz = (size_t)n * 256 * 256 * 3;
    uint8_t *a = malloc(sz), *b = malloc(sz);
    job J[4], R = {.s = o, .t = 0, .nt = 1, .lw = lw, .lh = lh, .out = b};
    pthread_t th[4];
    for (int t = 0; t < 4; t++) {
        J[t] = (job){.s = s, .t = t, .nt = 4, .lw = lw, .lh = lh, .out = a};
        pthread_create(&th[t], NULL, reader, &J[t]);
    }
    for (int t = 0; t < 4; t++) pthread_join(th[t], NULL);
    reader(&R);
    int rc = J[0].rc | J[1].rc | J[2].rc | J[3].rc | R.rc;
    ok(rc == 0 && memcmp(a, b, sz) == 0, "%s: %lld overlapping tiles read by 4 threads through a 1 MiB cache equal read_region",
       name, (long long)n);
    is_int(mm_slide_direct_reads(s), n, "%s: all read directly", name);
    free(a);
    free(b);
    mm_slide_close(s);
    mm_slide_close(o);
}

/* A 2048 x 2560 crop of CMU-1 saved by libvips as a pyramidal TIFF of
 * 112-px JPEG tiles: levels 1024 x 1280, 512 x 640, ... (downsamples 2, 4,
 * 8 exactly). */
static int make_pyramid(const char *out)
{
    VipsImage *in = NULL, *rgb = NULL, *crop = NULL;
    int r = vips_tiffload(data_path("wsi/CMU-1-Small-Region.svs"), &in, NULL);
    if (r == 0) r = in->Bands > 3 ? vips_extract_band(in, &rgb, 0, "n", 3, NULL) : vips_copy(in, &rgb, NULL);
    if (r == 0) r = vips_extract_area(rgb, &crop, 100, 200, 2048, 2560, NULL);
    if (r == 0)
        r = vips_tiffsave(crop, out, "tile", TRUE, "tile_width", 112, "tile_height", 112, "pyramid", TRUE,
                          "compression", VIPS_FOREIGN_TIFF_COMPRESSION_JPEG, "Q", 90, NULL);
    if (r != 0) {
        diag("libvips: %s", vips_error_buffer());
        vips_error_clear();
    }
    if (crop) g_object_unref(crop);
    if (rgb) g_object_unref(rgb);
    if (in) g_object_unref(in);
    return r;
}

int main(void)
{
    if (!data_has("wsi/CMU-1-Small-Region.svs", "real-data tests")) return done_testing();
    if (VIPS_INIT("t-slide-direct") != 0) {
        printf("Bail out! libvips failed to start\n");
        return 1;
    }
    vips_cache_set_max(0);
    unsetenv("MMPATH_SLIDE_DIRECT");
    check_slide(data_path("wsi/CMU-1-Small-Region.svs"), "CMU-1 (aperio)", 1);
    check_slide(data_path("wsi/derived/CMU-1-Small-Region_pyramid_jpeg.tif"), "pyramid (generic-tiff)", 1);

    char dir[] = "/tmp/t-slide-direct.XXXXXX";
    if (ok(mkdtemp(dir) != NULL, "temporary directory")) {
        char synth[sizeof dir + 32];
        snprintf(synth, sizeof synth, "%s/synth.tif", dir);
        if (ok(make_pyramid(synth) == 0, "libvips writes the synthetic pyramid")) {
            mm_slide *s = mm_slide_open(synth, NULL);
            ok(s && mm_slide_levels(s) >= 4 && mm_slide_level_downsample(s, 3) == 8.0,
               "synthetic pyramid: >= 4 levels, level 3 at downsample 8");
            mm_slide_close(s);
            check_slide(synth, "synthetic pyramid", 99);
            check_threads(synth, "synthetic pyramid");
        }
        check_threads(data_path("wsi/CMU-1-Small-Region.svs"), "CMU-1");
        unlink(synth);
        rmdir(dir);
    }

    /* Aperio JPEG 2000 (TIFF compression 33005): OpenSlide's */
    mm_slide *j = mm_slide_open(data_path("wsi/tcga-cr-7395-01a-01-ts1.svs"), NULL);
    ok(j && !mm_slide_direct(j, 0) && !mm_slide_direct(j, 1),
       "tcga-cr-7395 (JPEG 2000): no level is read directly");
    mm_slide_close(j);

    /* MMPATH_SLIDE_DIRECT=0 at open: OpenSlide only */
    setenv("MMPATH_SLIDE_DIRECT", "0", 1);
    mm_slide *s = mm_slide_open(data_path("wsi/CMU-1-Small-Region.svs"), NULL);
    unsetenv("MMPATH_SLIDE_DIRECT");
    uint8_t px[16 * 16 * 3];
    ok(s && !mm_slide_direct(s, 0) && mm_slide_read_region(s, 0, 0, 0, 16, 16, px) == 0 &&
           mm_slide_direct_reads(s) == 0,
       "MMPATH_SLIDE_DIRECT=0: read through OpenSlide");
    mm_slide_close(s);
    return done_testing();
}
