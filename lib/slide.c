/* slide.c: whole-slide images through OpenSlide, flat images through
 * libvips's PNG, JPEG and TIFF loaders (mm/slide.h).
 *
 * Flat images are decoded once at open into an RGB buffer (plus alpha when
 * the file has one): they are small (MRI slices, test crops, single-level
 * TIFFs OpenSlide refuses) and a buffer is trivially thread-safe. Images
 * over MM_FLAT_MAX_PX pixels are refused rather than held in memory.
 * SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openslide.h>
#include <vips/vips.h>

#include "mm/sha256.h"
#include "mm/slide.h"
#include "slide_tiff.h"

#define MM_FLAT_MAX_PX ((int64_t)1 << 28)
/* Decoded source tiles kept by the direct TIFF reader: 128 MiB is about
 * 740 tiles of 240 x 240, two columns of source tiles of a 85 000 px high
 * level, so a grid read column by column decodes each tile once. */
#define MM_TILE_CACHE_BYTES ((size_t)128 << 20)

typedef struct { char *key, *val; } prop;

struct mm_slide {
    char *path;
    openslide_t *osr; /* NULL for a flat image */
    mm_tiffdirect *td; /* JPEG-tiled TIFF levels read directly; may be NULL */
    int direct;        /* use TD (mm_slide_set_direct, MMPATH_SLIDE_DIRECT) */
    _Atomic int64_t ndirect;
    char vendor[32];
    int nlev;
    int64_t *lw, *lh;
    double *ds;
    int channels;
    uint8_t pad[3];
    char *digest;
    /* flat image */
    uint8_t *rgb;   /* lw[0] * lh[0] * 3 */
    uint8_t *alpha; /* NULL when opaque */
    prop *props;
    int nprops;
};

// ---------------------------------------------------------------- libvips

static pthread_once_t vips_once = PTHREAD_ONCE_INIT;
static int vips_ok;

static void start_vips(void)
{
    vips_ok = VIPS_INIT("mmpath") == 0;
    /* the operation cache would keep decoded images alive after close */
    if (vips_ok) vips_cache_set_max(0);
}

/* vips's error buffer as one line, then cleared. */
static void vips_msg(char *buf, size_t n)
{
    snprintf(buf, n, "%s", vips_error_buffer());
    vips_error_clear();
    size_t k = strlen(buf);
    while (k > 0 && (buf[k - 1] == '\n' || buf[k - 1] == ' ')) buf[--k] = '\0';
    for (char *p = buf; *p; p++)
        if (*p == '\n') *p = ';';
}

// ---------------------------------------------------------------- helpers

static void add_prop(mm_slide *s, const char *k, const char *v)
{
    s->props = mm_realloc(s->props, (size_t)(s->nprops + 1) * sizeof *s->props);
    s->props[s->nprops].key = mm_strdup(k);
    s->props[s->nprops].val = mm_strdup(v);
    s->nprops++;
}

void mm_slide_close(mm_slide *s)
{
    if (!s) return;
    if (s->osr) openslide_close(s->osr);
    mm__tiffdirect_close(s->td);
    for (int i = 0; i < s->nprops; i++) {
        free(s->props[i].key);
        free(s->props[i].val);
    }
    free(s->props);
    free(s->rgb);
    free(s->alpha);
    free(s->lw);
    free(s->lh);
    free(s->ds);
    free(s->digest);
    free(s->path);
    free(s);
}

static void set_why(int *why, int code)
{
    if (why) *why = code;
}

enum { MAGIC_NONE, MAGIC_PNG, MAGIC_JPEG, MAGIC_TIFF, MAGIC_DICOM };

static int sniff(const unsigned char *b, size_t n)
{
    if (n >= 8 && memcmp(b, "\x89PNG\r\n\x1a\n", 8) == 0) return MAGIC_PNG;
    if (n >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff) return MAGIC_JPEG;
    if (n >= 4 && (memcmp(b, "II*\0", 4) == 0 || memcmp(b, "MM\0*", 4) == 0 ||
                   memcmp(b, "II+\0", 4) == 0 || memcmp(b, "MM\0+", 4) == 0))
        return MAGIC_TIFF;
    if (n >= 132 && memcmp(b + 128, "DICM", 4) == 0) return MAGIC_DICOM;
    return MAGIC_NONE;
}

static int alloc_levels(mm_slide *s, int n)
{
    s->nlev = n;
    s->lw = mm_calloc((size_t)n, sizeof *s->lw);
    s->lh = mm_calloc((size_t)n, sizeof *s->lh);
    s->ds = mm_calloc((size_t)n, sizeof *s->ds);
    return 0;
}

// ---------------------------------------------------------------- open

static int open_openslide(mm_slide *s, const char *vendor, int *why)
{
    s->osr = openslide_open(s->path);
    const char *err = s->osr ? openslide_get_error(s->osr) : "OpenSlide could not open it";
    if (!s->osr || err) {
        mm__set_error("%s: a slide (%s), but broken: %s", s->path, vendor, err);
        set_why(why, MM_ECORRUPT);
        return -1;
    }
    snprintf(s->vendor, sizeof s->vendor, "%s", vendor);
    int n = openslide_get_level_count(s->osr);
    if (n < 1) {
        mm__set_error("%s: a slide (%s), but broken: no levels", s->path, vendor);
        set_why(why, MM_ECORRUPT);
        return -1;
    }
    alloc_levels(s, n);
    for (int i = 0; i < n; i++) {
        openslide_get_level_dimensions(s->osr, i, &s->lw[i], &s->lh[i]);
        s->ds[i] = openslide_get_level_downsample(s->osr, i);
    }
    s->channels = 3;
    /* Aperio and generic TIFF: JPEG tiles decoded here rather than through
     * read_region's compositing (lib/slide_tiff.c) */
    if (!strcmp(vendor, "aperio") || !strcmp(vendor, "generic-tiff")) {
        const char *mb = getenv("MMPATH_SLIDE_CACHE_MB");
        size_t cache = mb && *mb ? (size_t)strtoul(mb, NULL, 10) << 20 : MM_TILE_CACHE_BYTES;
        /* OpenSlide's own tile sizes (openslide.level[N].tile-width), to
         * be checked against the directory each level maps to */
        int64_t *tw = mm_calloc((size_t)n, sizeof *tw), *th = mm_calloc((size_t)n, sizeof *th);
        for (int i = 0; i < n; i++) {
            char k[64];
            snprintf(k, sizeof k, "openslide.level[%d].tile-width", i);
            const char *v = openslide_get_property_value(s->osr, k);
            tw[i] = v ? strtoll(v, NULL, 10) : 0;
            snprintf(k, sizeof k, "openslide.level[%d].tile-height", i);
            v = openslide_get_property_value(s->osr, k);
            th[i] = v ? strtoll(v, NULL, 10) : 0;
        }
        s->td = mm__tiffdirect_open(s->path, n, s->lw, s->lh, s->ds, tw, th, cache);
        free(tw);
        free(th);
        const char *e = getenv("MMPATH_SLIDE_DIRECT");
        s->direct = s->td && !(e && !strcmp(e, "0"));
    }
    return 0;
}

static const char *magic_name(int m)
{
    return m == MAGIC_PNG ? "png" : m == MAGIC_JPEG ? "jpeg" : "tiff";
}

static int open_flat(mm_slide *s, int magic, int *why)
{
    pthread_once(&vips_once, start_vips);
    char msg[512];
    if (!vips_ok) {
        vips_msg(msg, sizeof msg);
        mm__set_error("%s: libvips failed to start: %s", s->path, msg);
        set_why(why, MM_ERR);
        return -1;
    }
    const char *name = magic_name(magic);
    const char *uname = magic == MAGIC_PNG ? "PNG" : magic == MAGIC_JPEG ? "JPEG" : "TIFF";
    VipsImage *img = NULL, *t = NULL;
    int r;
    /* fail on truncated or corrupt data instead of a partial image */
#if VIPS_MAJOR_VERSION > 8 || (VIPS_MAJOR_VERSION == 8 && VIPS_MINOR_VERSION >= 12)
#define MM_FAIL_OPT "fail_on", VIPS_FAIL_ON_TRUNCATED
#else
#define MM_FAIL_OPT "fail", TRUE
#endif
    if (magic == MAGIC_PNG)
        r = vips_pngload(s->path, &img, MM_FAIL_OPT, NULL);
    else if (magic == MAGIC_JPEG)
        r = vips_jpegload(s->path, &img, MM_FAIL_OPT, NULL);
    else
        r = vips_tiffload(s->path, &img, MM_FAIL_OPT, NULL);
    if (r != 0) goto broken;

    s->channels = img->Bands;
    int64_t w = img->Xsize, h = img->Ysize;
    if (w * h > MM_FLAT_MAX_PX) {
        mm__set_error("%s: a %s image of %lld x %lld pixels that OpenSlide does not "
                      "read; flat images are held in memory and are limited to %lld pixels",
                      s->path, name, (long long)w, (long long)h, (long long)MM_FLAT_MAX_PX);
        set_why(why, MM_EFORMAT);
        g_object_unref(img);
        return -1;
    }
    /* resolution: libvips gives pixels per millimetre; keep the file's unit */
    if (img->Xres > 0 && img->Yres > 0) {
        const char *unit = NULL;
        int inch = vips_image_get_typeof(img, "resolution-unit") &&
                   vips_image_get_string(img, "resolution-unit", &unit) == 0 && unit &&
                   strcmp(unit, "in") == 0;
        double f = inch ? 25.4 : 10.0;
        char v[64];
        snprintf(v, sizeof v, "%.17g", img->Xres * f);
        add_prop(s, "tiff.XResolution", v);
        snprintf(v, sizeof v, "%.17g", img->Yres * f);
        add_prop(s, "tiff.YResolution", v);
        add_prop(s, "tiff.ResolutionUnit", inch ? "inch" : "centimeter");
    }
    if (img->Type == VIPS_INTERPRETATION_CMYK) {
        if (vips_colourspace(img, &t, VIPS_INTERPRETATION_sRGB, NULL) != 0) goto broken;
        g_object_unref(img);
        img = t;
        t = NULL;
    }
    if (img->BandFmt != VIPS_FORMAT_UCHAR) {
        /* 16-bit: the top byte; float and wider: scaled to 0..255 */
        r = img->BandFmt == VIPS_FORMAT_USHORT
                ? vips_cast(img, &t, VIPS_FORMAT_UCHAR, "shift", TRUE, NULL)
                : vips_scale(img, &t, NULL);
        if (r != 0) goto broken;
        g_object_unref(img);
        img = t;
        t = NULL;
    }
    int bands = img->Bands;
    size_t len = 0;
    uint8_t *mem = vips_image_write_to_memory(img, &len);
    if (!mem) goto broken;
    g_object_unref(img);
    img = NULL;
    if (len != (size_t)(w * h * bands)) {
        g_free(mem);
        mm__set_error("%s: a %s image, but broken: decoded size mismatch", s->path, name);
        set_why(why, MM_ECORRUPT);
        return -1;
    }
    size_t npx = (size_t)(w * h);
    s->rgb = mm_malloc(npx * 3);
    int has_alpha = bands == 2 || bands == 4;
    if (has_alpha) s->alpha = mm_malloc(npx);
    for (size_t i = 0; i < npx; i++) {
        const uint8_t *p = mem + i * (size_t)bands;
        uint8_t *q = s->rgb + i * 3;
        if (bands < 3) {
            q[0] = q[1] = q[2] = p[0];
        } else {
            q[0] = p[0];
            q[1] = p[1];
            q[2] = p[2];
        }
        if (has_alpha) s->alpha[i] = p[bands - 1];
    }
    g_free(mem);
    snprintf(s->vendor, sizeof s->vendor, "%s", name);
    alloc_levels(s, 1);
    s->lw[0] = w;
    s->lh[0] = h;
    s->ds[0] = 1.0;
    return 0;

broken:
    vips_msg(msg, sizeof msg);
    /* libvips names the file itself; ours is already in front */
    const char *m = msg;
    size_t pl = strlen(s->path);
    if (strncmp(m, s->path, pl) == 0 && m[pl] == ':') m += pl + 1 + (m[pl + 1] == ' ');
    if (t) g_object_unref(t);
    if (img) g_object_unref(img);
    mm__set_error("%s: a %s file, but broken: %s", s->path, uname, *m ? m : "decoder failed");
    set_why(why, MM_ECORRUPT);
    return -1;
}

mm_slide *mm_slide_open(const char *path, int *why)
{
    set_why(why, MM_ERR);
    FILE *f = fopen(path, "rb");
    if (!f) {
        mm__set_error("%s: %s", path, strerror(errno));
        return NULL;
    }
    unsigned char head[132];
    size_t n = fread(head, 1, sizeof head, f);
    int rerr = ferror(f);
    fclose(f);
    if (rerr) {
        mm__set_error("%s: read error", path);
        return NULL;
    }
    mm_slide *s = mm_calloc(1, sizeof *s);
    s->path = mm_strdup(path);
    const char *vendor = openslide_detect_vendor(path);
    int magic = sniff(head, n);
    int r;
    if (vendor) {
        r = open_openslide(s, vendor, why);
    } else if (magic == MAGIC_PNG || magic == MAGIC_JPEG || magic == MAGIC_TIFF) {
        r = open_flat(s, magic, why);
    } else {
        mm__set_error(magic == MAGIC_DICOM
                          ? "%s: not a slide OpenSlide can read (DICOM: OpenSlide 3.4 has no DICOM support)"
                          : "%s: not a slide OpenSlide can read, nor a PNG, JPEG or TIFF image",
                      path);
        set_why(why, MM_EFORMAT);
        r = -1;
    }
    if (r < 0) {
        mm_slide_close(s);
        return NULL;
    }
    set_why(why, MM_OK);
    return s;
}

// ---------------------------------------------------------------- queries

const char *mm_slide_vendor(const mm_slide *s) { return s->vendor; }

int mm_slide_channels(const mm_slide *s) { return s->channels; }

const char *mm_slide_property(const mm_slide *s, const char *name)
{
    if (s->osr) return openslide_get_property_value(s->osr, name);
    for (int i = 0; i < s->nprops; i++)
        if (strcmp(s->props[i].key, name) == 0) return s->props[i].val;
    return NULL;
}

int mm_slide_levels(const mm_slide *s) { return s->nlev; }

int mm_slide_level_size(const mm_slide *s, int level, int64_t *w, int64_t *h)
{
    if (level < 0 || level >= s->nlev) return -1;
    if (w) *w = s->lw[level];
    if (h) *h = s->lh[level];
    return 0;
}

double mm_slide_level_downsample(const mm_slide *s, int level)
{
    if (level < 0 || level >= s->nlev) return -1;
    return s->ds[level];
}

int mm_slide_best_level(const mm_slide *s, double ds)
{
    /* openslide_get_best_level_for_downsample, on the cached values */
    if (ds < s->ds[0]) return 0;
    for (int i = 1; i < s->nlev; i++)
        if (ds < s->ds[i]) return i - 1;
    return s->nlev - 1;
}

void mm_slide_set_pad(mm_slide *s, uint8_t r, uint8_t g, uint8_t b)
{
    s->pad[0] = r;
    s->pad[1] = g;
    s->pad[2] = b;
}

void mm_slide_set_direct(mm_slide *s, int on) { s->direct = on && s->td; }

int mm_slide_direct(const mm_slide *s, int level)
{
    return s->direct && mm__tiffdirect_level(s->td, level);
}

int64_t mm_slide_direct_reads(const mm_slide *s) { return s->ndirect; }

// ---------------------------------------------------------------- digest

const char *mm_slide_digest(mm_slide *s)
{
    if (s->digest) return s->digest;
    const char *q = s->osr ? openslide_get_property_value(s->osr, "openslide.quickhash-1") : NULL;
    if (q) {
        s->digest = mm_strdup(q);
        return s->digest;
    }
    char d[80];
    if (mm_sha256_file(s->path, d, sizeof d) != 0) return NULL;
    s->digest = mm_strdup(d);
    return s->digest;
}

// ---------------------------------------------------------------- resolution

static int prop_num(const mm_slide *s, const char *name, double *v)
{
    const char *p = mm_slide_property(s, name);
    if (!p || !*p) return 0;
    char *end;
    errno = 0;
    double d = strtod(p, &end);
    while (*end && isspace((unsigned char)*end)) end++;
    if (errno || *end || !(d > 0) || !isfinite(d)) return 0;
    *v = d;
    return 1;
}

/* microns per pixel from a TIFF resolution in UNIT; 0 when unusable or a
 * screen value (72 or 96 dpi, or coarser than 10 um/px). */
static double tiff_mpp(double res, const char *unit)
{
    double um;
    if (strcmp(unit, "centimeter") == 0)
        um = 1e4;
    else if (strcmp(unit, "inch") == 0)
        um = 25400;
    else
        return 0;
    double dpi = res * 25400 / um;
    if (fabs(dpi - 72) < 0.5 || fabs(dpi - 96) < 0.5) return 0;
    double mpp = um / res;
    return mpp > 10 ? 0 : mpp;
}

int mm_slide_resolution(const mm_slide *s, mm_slide_res *r)
{
    memset(r, 0, sizeof *r);
    r->source = "none";
    double mag = 0, x, y;
    if (!prop_num(s, "openslide.objective-power", &mag)) prop_num(s, "aperio.AppMag", &mag);
    if (prop_num(s, "openslide.mpp-x", &x) && prop_num(s, "openslide.mpp-y", &y)) {
        r->mpp_x = x;
        r->mpp_y = y;
        r->source = "openslide.mpp";
    } else if (prop_num(s, "aperio.MPP", &x)) {
        r->mpp_x = r->mpp_y = x;
        r->source = "aperio.MPP";
    } else if (mag > 0) {
        r->mpp_x = r->mpp_y = 10.0 / mag;
        r->source = "objective-power";
    } else {
        const char *unit = mm_slide_property(s, "tiff.ResolutionUnit");
        if (unit && prop_num(s, "tiff.XResolution", &x) && prop_num(s, "tiff.YResolution", &y)) {
            double mx = tiff_mpp(x, unit), my = tiff_mpp(y, unit);
            if (mx > 0 && my > 0) {
                r->mpp_x = mx;
                r->mpp_y = my;
                r->source = "tiff-resolution";
            }
        }
    }
    if (r->mpp_x <= 0) return -1;
    /* no stated power: the nominal one for this pixel size (mag = 10 / mpp) */
    r->objective = mag > 0 ? mag : 10.0 / r->mpp_x;
    return 0;
}

// ---------------------------------------------------------------- reading

/* Premultiplied ARGB (OpenSlide) to RGB as openslide-python's argb2rgba and
 * PIL's convert("RGB"): alpha 255 as is, alpha 0 the pad colour, partial
 * alpha un-premultiplied with truncating division. */
static void argb_to_rgb(const uint32_t *src, size_t n, uint8_t *dst, const uint8_t pad[3])
{
    for (size_t i = 0; i < n; i++) {
        uint32_t v = src[i];
        uint32_t a = v >> 24;
        uint32_t r = (v >> 16) & 0xff, g = (v >> 8) & 0xff, b = v & 0xff;
        uint8_t *q = dst + i * 3;
        if (a == 255) {
            q[0] = (uint8_t)r;
            q[1] = (uint8_t)g;
            q[2] = (uint8_t)b;
        } else if (a == 0) {
            q[0] = pad[0];
            q[1] = pad[1];
            q[2] = pad[2];
        } else {
            q[0] = (uint8_t)(255 * r / a);
            q[1] = (uint8_t)(255 * g / a);
            q[2] = (uint8_t)(255 * b / a);
        }
    }
}

static int read_flat(mm_slide *s, int64_t x, int64_t y, int64_t w, int64_t h, uint8_t *rgb)
{
    int64_t W = s->lw[0], H = s->lh[0];
    for (int64_t j = 0; j < h; j++) {
        uint8_t *q = rgb + (size_t)(j * w) * 3;
        int64_t sy = y + j;
        for (int64_t i = 0; i < w; i++, q += 3) {
            int64_t sx = x + i;
            if (sx < 0 || sy < 0 || sx >= W || sy >= H ||
                (s->alpha && s->alpha[sy * W + sx] == 0)) {
                memcpy(q, s->pad, 3);
            } else {
                memcpy(q, s->rgb + (size_t)(sy * W + sx) * 3, 3);
            }
        }
    }
    return 0;
}

int mm_slide_read_region(mm_slide *s, int64_t x, int64_t y, int level, int64_t w, int64_t h,
                         uint8_t *rgb)
{
    if (level < 0 || level >= s->nlev || w < 0 || h < 0) {
        mm__set_error("%s: bad region (level %d, %lld x %lld)", s->path, level, (long long)w,
                      (long long)h);
        return -1;
    }
    if (w == 0 || h == 0) return 0;
    if (!s->osr) return read_flat(s, x, y, w, h, rgb);
    /* one call when the ARGB fits 64 MiB (a band boundary at a level with
     * a fractional downsample lands between pixels, where OpenSlide
     * interpolates); bands of rows beyond that */
    int64_t band = ((int64_t)16 << 20) / w;
    if (band < 1) band = 1;
    if (band > h) band = h;
    uint32_t *argb = mm_malloc((size_t)(w * band) * 4);
    int ret = 0;
    for (int64_t j = 0; j < h; j += band) {
        int64_t bh = h - j < band ? h - j : band;
        int64_t y0 = y + (int64_t)llround((double)j * s->ds[level]);
        if (s->direct && mm__tiffdirect_read(s->td, level, x, y0, w, bh, rgb + (size_t)(j * w) * 3, s->pad)) {
            s->ndirect++;
            continue;
        }
        openslide_read_region(s->osr, argb, x, y0, level, w, bh);
        const char *err = openslide_get_error(s->osr);
        if (err) {
            mm__set_error("%s: a slide, but broken: %s", s->path, err);
            ret = -1;
            break;
        }
        argb_to_rgb(argb, (size_t)(w * bh), rgb + (size_t)(j * w) * 3, s->pad);
    }
    free(argb);
    return ret;
}

/* Per output index: the source span [j0, j0 + n) and its weights, for an
 * area average of output pixel i over source [i f, (i + 1) f). */
typedef struct { int64_t j0; int n; int off; } span;

static double *area_weights(int64_t out_n, double f, span *sp, int64_t *src_n)
{
    int64_t total = 0;
    for (int64_t i = 0; i < out_n; i++) {
        double a = (double)i * f, b = (double)(i + 1) * f;
        int64_t j0 = (int64_t)floor(a), j1 = (int64_t)ceil(b);
        if (j1 <= j0) j1 = j0 + 1;
        sp[i].j0 = j0;
        sp[i].n = (int)(j1 - j0);
        sp[i].off = (int)total;
        total += j1 - j0;
    }
    double *wt = mm_malloc((size_t)total * sizeof *wt);
    int64_t maxj = 0;
    for (int64_t i = 0; i < out_n; i++) {
        double a = (double)i * f, b = (double)(i + 1) * f, sum = 0;
        for (int k = 0; k < sp[i].n; k++) {
            double lo = fmax(a, (double)(sp[i].j0 + k)), hi = fmin(b, (double)(sp[i].j0 + k + 1));
            double v = hi > lo ? hi - lo : 0;
            wt[sp[i].off + k] = v;
            sum += v;
        }
        for (int k = 0; k < sp[i].n; k++) wt[sp[i].off + k] = sum > 0 ? wt[sp[i].off + k] / sum : 1.0 / sp[i].n;
        if (sp[i].j0 + sp[i].n > maxj) maxj = sp[i].j0 + sp[i].n;
    }
    *src_n = maxj;
    return wt;
}

int mm_slide_read_scaled(mm_slide *s, int64_t x, int64_t y, int64_t w0, int64_t h0, int ow,
                         int oh, uint8_t *rgb)
{
    if (w0 <= 0 || h0 <= 0 || ow <= 0 || oh <= 0) {
        mm__set_error("%s: bad scaled region (%lld x %lld -> %d x %d)", s->path, (long long)w0,
                      (long long)h0, ow, oh);
        return -1;
    }
    double want = fmin((double)w0 / ow, (double)h0 / oh);
    int L = mm_slide_best_level(s, want * (1 + 1e-9));
    double d = s->ds[L];
    double fx = (double)w0 / d / ow, fy = (double)h0 / d / oh;
    if (fabs(fx - 1) < 1e-9 && fabs(fy - 1) < 1e-9)
        return mm_slide_read_region(s, x, y, L, ow, oh, rgb);

    span *sx = mm_malloc((size_t)ow * sizeof *sx), *sy = mm_malloc((size_t)oh * sizeof *sy);
    int64_t srcw, srch;
    double *wx = area_weights(ow, fx, sx, &srcw);
    double *wy = area_weights(oh, fy, sy, &srch);
    /* output rows in bands whose source rows stay near 256 (bounded memory
     * whatever the rectangle) */
    int band = (int)(256 / fy);
    if (band < 1) band = 1;
    double *acc = mm_malloc((size_t)ow * 3 * sizeof *acc);
    uint8_t *src = NULL;
    size_t srccap = 0;
    int ret = 0;
    for (int r0 = 0; r0 < oh && ret == 0; r0 += band) {
        int r1 = r0 + band < oh ? r0 + band : oh;
        int64_t j0 = sy[r0].j0, j1 = sy[r1 - 1].j0 + sy[r1 - 1].n;
        size_t need = (size_t)(srcw * (j1 - j0)) * 3;
        if (need > srccap) {
            free(src);
            src = mm_malloc(need);
            srccap = need;
        }
        ret = mm_slide_read_region(s, x, y + (int64_t)llround((double)j0 * d), L, srcw, j1 - j0, src);
        if (ret < 0) break;
        for (int r = r0; r < r1; r++) {
            memset(acc, 0, (size_t)ow * 3 * sizeof *acc);
            for (int k = 0; k < sy[r].n; k++) {
                double wyk = wy[sy[r].off + k];
                if (wyk == 0) continue;
                const uint8_t *row = src + (size_t)((sy[r].j0 + k - j0) * srcw) * 3;
                for (int i = 0; i < ow; i++) {
                    double a0 = 0, a1 = 0, a2 = 0;
                    const double *wxi = wx + sx[i].off;
                    const uint8_t *p = row + (size_t)sx[i].j0 * 3;
                    for (int m = 0; m < sx[i].n; m++, p += 3) {
                        a0 += wxi[m] * p[0];
                        a1 += wxi[m] * p[1];
                        a2 += wxi[m] * p[2];
                    }
                    acc[i * 3] += wyk * a0;
                    acc[i * 3 + 1] += wyk * a1;
                    acc[i * 3 + 2] += wyk * a2;
                }
            }
            uint8_t *q = rgb + (size_t)r * ow * 3;
            for (int i = 0; i < ow * 3; i++) {
                double v = floor(acc[i] + 0.5);
                q[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
        }
    }
    free(src);
    free(acc);
    free(wx);
    free(wy);
    free(sx);
    free(sy);
    return ret;
}

// ---------------------------------------------------------------- ids

char *mm_slide_id(const char *path)
{
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    char *id = mm_strdup(b);
    size_t n = strlen(id);
    static const char *const ext[] = {".ome.tiff", ".ome.tif", ".svs", ".tif", ".tiff", ".ndpi",
                                      ".vms", ".vmu", ".scn", ".mrxs", ".bif", ".svslide",
                                      ".png", ".jpg", ".jpeg", ".dcm", ".qptiff"};
    for (size_t i = 0; i < sizeof ext / sizeof *ext; i++) {
        size_t e = strlen(ext[i]);
        if (n > e && strcasecmp(id + n - e, ext[i]) == 0) {
            id[n - e] = '\0';
            break;
        }
    }
    return id;
}
