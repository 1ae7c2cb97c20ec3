/* slide_tiff.c: JPEG-tiled TIFF levels read without openslide_read_region
 * (slide_tiff.h), byte-exact with OpenSlide 3.4.1.
 *
 * What OpenSlide 3.4.1 does for an "aperio" or "generic-tiff" level whose
 * directory is JPEG (TIFF compression 7), contiguous, RGB or YCbCr, 8 bits,
 * 3 samples (its "read_direct" case, openslide-decode-tiff.c): read the raw
 * tile, load the directory's JPEGTABLES first when there are any, force the
 * JPEG colour space from the TIFF photometric tag (Aperio writes RGB JPEGs
 * without an Adobe marker), decode with libjpeg's defaults (ISLOW DCT, fancy
 * upsampling) treating any warning as an error, then clear the part of an
 * edge tile past the level's width and height (transparent). read_region
 * paints the tiles of the level-plane rectangle starting at x / downsample
 * (a double: at a level whose downsample does not divide x the tiles land
 * between pixels and cairo interpolates, which is declined here), in 4096 x
 * 4096 pieces, shifted right by (-x) / downsample truncated when x < 0.
 * With whole-pixel offsets the compositing is a copy, so a pixel is the
 * decoded tile pixel inside the level and transparent (our pad colour)
 * outside. Missing tiles (byte count 0: Aperio renders them from the level
 * above), decoding errors and anything else unusual are declined, and
 * lib/slide.c reads those regions through OpenSlide.
 *
 * Tiles are read with pread() (one descriptor, no libtiff handle shared
 * between threads: libtiff is used only at open, to map the levels and copy
 * each directory's tile offsets, byte counts and JPEG tables).
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jpeglib.h>
#include <tiffio.h>

#include "mm/defs.h"
#include "slide_tiff.h"

typedef struct {
    int ok; /* read directly */
    double ds;
    int64_t iw, ih;
    int tw, th;
    int64_t across, down;
    int ycbcr;
    uint8_t *tables;
    uint32_t ntables;
    uint64_t *off, *len; /* per tile, row-major */
} tlevel;

typedef struct {
    int level;
    int64_t col, row;
    uint8_t *px; /* tw * th * 3 */
    size_t bytes;
    int refs;
    int state; /* 0 decoding, 1 ready, -1 failed */
    uint64_t used;
} centry;

struct mm_tiffdirect {
    int fd;
    int nlev;
    tlevel *lev;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    centry **ent; /* pointers: an entry stays put while a reader holds it */
    int nent, cap;
    size_t bytes, max_bytes;
    uint64_t clock;
};

// ---------------------------------------------------------------- open

static int get_u16(TIFF *tif, uint32_t tag, uint16_t *v) { return TIFFGetField(tif, tag, v) == 1; }
static int get_u32(TIFF *tif, uint32_t tag, uint32_t *v) { return TIFFGetField(tif, tag, v) == 1; }

/* Fill L from the current directory; 0 when it is not OpenSlide's direct
 * JPEG case or anything does not add up. */
static int level_init(TIFF *tif, tlevel *L)
{
    uint32_t iw, ih, tw, th;
    uint16_t comp, planar, photo, bps, spp;
    if (!get_u32(tif, TIFFTAG_IMAGEWIDTH, &iw) || !get_u32(tif, TIFFTAG_IMAGELENGTH, &ih) ||
        !get_u32(tif, TIFFTAG_TILEWIDTH, &tw) || !get_u32(tif, TIFFTAG_TILELENGTH, &th) ||
        !get_u16(tif, TIFFTAG_COMPRESSION, &comp) || !get_u16(tif, TIFFTAG_PLANARCONFIG, &planar) ||
        !get_u16(tif, TIFFTAG_PHOTOMETRIC, &photo) || !get_u16(tif, TIFFTAG_BITSPERSAMPLE, &bps) ||
        !get_u16(tif, TIFFTAG_SAMPLESPERPIXEL, &spp))
        return 0;
    if (comp != COMPRESSION_JPEG || planar != PLANARCONFIG_CONTIG ||
        (photo != PHOTOMETRIC_RGB && photo != PHOTOMETRIC_YCBCR) || bps != 8 || spp != 3)
        return 0;
    if (tw == 0 || th == 0 || tw > 65536 || th > 65536 || iw == 0 || ih == 0) return 0;
    L->iw = iw;
    L->ih = ih;
    L->tw = (int)tw;
    L->th = (int)th;
    L->across = (iw + tw - 1) / tw;
    L->down = (ih + th - 1) / th;
    L->ycbcr = photo == PHOTOMETRIC_YCBCR;
    uint64_t n = (uint64_t)L->across * (uint64_t)L->down;
    uint64_t *off = NULL, *len = NULL;
    if (TIFFNumberOfTiles(tif) != n || !TIFFGetField(tif, TIFFTAG_TILEOFFSETS, &off) ||
        !TIFFGetField(tif, TIFFTAG_TILEBYTECOUNTS, &len) || !off || !len)
        return 0;
    L->off = mm_malloc(n * sizeof *L->off);
    L->len = mm_malloc(n * sizeof *L->len);
    memcpy(L->off, off, n * sizeof *off);
    memcpy(L->len, len, n * sizeof *len);
    uint32_t nt = 0;
    void *tab = NULL;
    if (TIFFGetField(tif, TIFFTAG_JPEGTABLES, &nt, &tab) && tab && nt > 0) {
        L->tables = mm_malloc(nt);
        memcpy(L->tables, tab, nt);
        L->ntables = nt;
    }
    return 1;
}

/* libtiff's messages about this handle are not ours to print (OpenSlide,
 * which opened the file first, reports what matters): libtiff >= 4.5 lets
 * a handle have its own handlers */
#if TIFFLIB_VERSION >= 20221213
static int tiff_quiet(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap)
{
    (void)tif, (void)user, (void)module, (void)fmt, (void)ap;
    return 1;
}

static TIFF *open_tiff(const char *path)
{
    TIFFOpenOptions *o = TIFFOpenOptionsAlloc();
    TIFFOpenOptionsSetErrorHandlerExtR(o, tiff_quiet, NULL);
    TIFFOpenOptionsSetWarningHandlerExtR(o, tiff_quiet, NULL);
    TIFF *tif = TIFFOpenExt(path, "rm", o);
    TIFFOpenOptionsFree(o);
    return tif;
}
#else
static TIFF *open_tiff(const char *path) { return TIFFOpen(path, "rm"); }
#endif

mm_tiffdirect *mm__tiffdirect_open(const char *path, int nlev, const int64_t *lw,
                                   const int64_t *lh, const double *ds, const int64_t *tw,
                                   const int64_t *th, size_t cache_bytes)
{
    /* "m": no memory mapping, as OpenSlide opens it */
    TIFF *tif = open_tiff(path);
    if (!tif) return NULL;
    /* each level's directory: the one tiled directory of its size (none or
     * several: read through OpenSlide) */
    int *dir = mm_malloc((size_t)nlev * sizeof *dir);
    int *nmatch = mm_calloc((size_t)nlev, sizeof *nmatch);
    do {
        uint32_t w, h;
        if (!TIFFIsTiled(tif) || !get_u32(tif, TIFFTAG_IMAGEWIDTH, &w) ||
            !get_u32(tif, TIFFTAG_IMAGELENGTH, &h))
            continue;
        for (int l = 0; l < nlev; l++)
            if (lw[l] == (int64_t)w && lh[l] == (int64_t)h) {
                nmatch[l]++;
                dir[l] = TIFFCurrentDirectory(tif);
            }
    } while (TIFFReadDirectory(tif));
    mm_tiffdirect *t = mm_calloc(1, sizeof *t);
    t->fd = -1;
    t->nlev = nlev;
    t->lev = mm_calloc((size_t)nlev, sizeof *t->lev);
    int any = 0;
    for (int l = 0; l < nlev; l++) {
        t->lev[l].ds = ds[l];
        if (nmatch[l] == 1 && TIFFSetDirectory(tif, (tdir_t)dir[l]) && level_init(tif, &t->lev[l]) &&
            t->lev[l].iw == lw[l] && t->lev[l].ih == lh[l] &&
            (tw[l] == 0 || tw[l] == t->lev[l].tw) && (th[l] == 0 || th[l] == t->lev[l].th)) {
            t->lev[l].ok = 1;
            any = 1;
        }
    }
    TIFFClose(tif);
    free(dir);
    free(nmatch);
    if (any) t->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (t->fd < 0) {
        mm__tiffdirect_close(t);
        return NULL;
    }
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
    t->max_bytes = cache_bytes;
    return t;
}

void mm__tiffdirect_close(mm_tiffdirect *t)
{
    if (!t) return;
    for (int l = 0; l < t->nlev; l++) {
        free(t->lev[l].off);
        free(t->lev[l].len);
        free(t->lev[l].tables);
    }
    free(t->lev);
    for (int i = 0; i < t->nent; i++) {
        free(t->ent[i]->px);
        free(t->ent[i]);
    }
    free(t->ent);
    if (t->fd >= 0) {
        close(t->fd);
        pthread_mutex_destroy(&t->mu);
        pthread_cond_destroy(&t->cv);
    }
    free(t);
}

int mm__tiffdirect_level(const mm_tiffdirect *t, int level)
{
    return t && level >= 0 && level < t->nlev && t->lev[level].ok;
}

// ---------------------------------------------------------------- decoding

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf env;
} jerr;

static void j_error_exit(j_common_ptr c) { longjmp(((jerr *)c->err)->env, 1); }

/* OpenSlide turns every libjpeg warning (corrupt data, premature end) into
 * an error; so do we, and decline the region */
static void j_emit(j_common_ptr c, int lvl)
{
    if (lvl < 0) c->err->error_exit(c);
}

static void j_quiet(j_common_ptr c) { (void)c; }

/* Decode the raw tile BUF of N bytes into OUT (L->tw x L->th RGB).
 * @return 0, or -1 on any error or warning. */
static int decode(const tlevel *L, const uint8_t *buf, size_t n, uint8_t *out)
{
    struct jpeg_decompress_struct ci;
    jerr je;
    ci.err = jpeg_std_error(&je.pub);
    je.pub.error_exit = j_error_exit;
    je.pub.emit_message = j_emit;
    je.pub.output_message = j_quiet;
    if (setjmp(je.env)) {
        jpeg_destroy_decompress(&ci);
        return -1;
    }
    jpeg_create_decompress(&ci);
    if (L->tables) {
        jpeg_mem_src(&ci, L->tables, L->ntables);
        if (jpeg_read_header(&ci, FALSE) != JPEG_HEADER_TABLES_ONLY) goto fail;
    }
    jpeg_mem_src(&ci, buf, (unsigned long)n);
    if (jpeg_read_header(&ci, TRUE) != JPEG_HEADER_OK) goto fail;
    ci.jpeg_color_space = L->ycbcr ? JCS_YCbCr : JCS_RGB;
    ci.out_color_space = JCS_RGB;
    jpeg_start_decompress(&ci);
    if ((int)ci.output_width != L->tw || (int)ci.output_height != L->th ||
        ci.output_components != 3)
        goto fail;
    size_t stride = (size_t)L->tw * 3;
    JSAMPROW rows[16];
    while (ci.output_scanline < ci.output_height) {
        int k = ci.rec_outbuf_height < 16 ? ci.rec_outbuf_height : 16;
        for (int i = 0; i < k; i++) {
            JDIMENSION r = ci.output_scanline + (JDIMENSION)i;
            rows[i] = out + (size_t)(r < ci.output_height ? r : ci.output_height - 1) * stride;
        }
        if (jpeg_read_scanlines(&ci, rows, (JDIMENSION)k) == 0) goto fail;
    }
    /* like OpenSlide: no jpeg_finish_decompress (whatever trails the last
     * scan is not looked at) */
    jpeg_destroy_decompress(&ci);
    return 0;
fail:
    jpeg_destroy_decompress(&ci);
    return -1;
}

/* Read and decode tile (COL, ROW) of L into OUT; -1 when missing or bad. */
static int load_tile(const mm_tiffdirect *t, const tlevel *L, int64_t col, int64_t row, uint8_t *out)
{
    size_t k = (size_t)(row * L->across + col);
    uint64_t n = L->len[k];
    if (n == 0 || n > ((uint64_t)1 << 30)) return -1;
    uint8_t *buf = mm_malloc((size_t)n);
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(t->fd, buf + got, (size_t)n - got, (off_t)(L->off[k] + got));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    int ret = got == n ? decode(L, buf, (size_t)n, out) : -1;
    free(buf);
    return ret;
}

// ---------------------------------------------------------------- cache

static void remove_at(mm_tiffdirect *t, int i)
{
    centry *e = t->ent[i];
    t->bytes -= e->bytes;
    free(e->px);
    free(e);
    t->ent[i] = t->ent[--t->nent];
}

/* Evict least recently used idle tiles while over the bound (lock held). */
static void evict(mm_tiffdirect *t)
{
    while (t->bytes > t->max_bytes) {
        int victim = -1;
        for (int i = 0; i < t->nent; i++) {
            const centry *e = t->ent[i];
            if (e->refs == 0 && e->state == 1 && (victim < 0 || e->used < t->ent[victim]->used))
                victim = i;
        }
        if (victim < 0) return; /* everything is in use: over the bound for now */
        remove_at(t, victim);
    }
}

static void release(mm_tiffdirect *t, centry *e)
{
    pthread_mutex_lock(&t->mu);
    e->refs--;
    if (e->refs == 0 && e->state < 0)
        for (int i = 0; i < t->nent; i++)
            if (t->ent[i] == e) {
                remove_at(t, i);
                break;
            }
    pthread_mutex_unlock(&t->mu);
}

/* The decoded tile, held until release(); NULL when it cannot be decoded.
 * A tile another thread is decoding is waited for, not decoded twice. The
 * entries are searched linearly: a few hundred at most, next to a
 * millisecond of JPEG decoding per tile. */
static centry *acquire(mm_tiffdirect *t, int level, int64_t col, int64_t row)
{
    const tlevel *L = &t->lev[level];
    pthread_mutex_lock(&t->mu);
    centry *e = NULL;
    for (int i = 0; i < t->nent; i++) {
        centry *c = t->ent[i];
        if (c->level == level && c->col == col && c->row == row) {
            e = c;
            break;
        }
    }
    if (e) {
        e->refs++;
        e->used = ++t->clock;
        while (e->state == 0) pthread_cond_wait(&t->cv, &t->mu);
        int failed = e->state < 0;
        pthread_mutex_unlock(&t->mu);
        if (failed) {
            release(t, e);
            return NULL;
        }
        return e;
    }
    e = mm_calloc(1, sizeof *e);
    e->level = level;
    e->col = col;
    e->row = row;
    e->bytes = (size_t)L->tw * (size_t)L->th * 3;
    e->refs = 1;
    e->used = ++t->clock;
    if (t->nent == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 64;
        t->ent = mm_realloc(t->ent, (size_t)t->cap * sizeof *t->ent);
    }
    t->ent[t->nent++] = e;
    t->bytes += e->bytes;
    evict(t);
    pthread_mutex_unlock(&t->mu);

    uint8_t *px = mm_malloc(e->bytes);
    int r = load_tile(t, L, col, row, px);

    pthread_mutex_lock(&t->mu);
    e->px = px;
    e->state = r == 0 ? 1 : -1;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
    if (r != 0) {
        release(t, e);
        return NULL;
    }
    return e;
}

// ---------------------------------------------------------------- regions

/* One openslide_read_region piece (read_region() in openslide.c): the
 * shift TX, TY of a negative origin and the level-plane origin FX, FY
 * (whole numbers, or the piece is declined). */
typedef struct {
    int64_t tx, ty, fx, fy;
    int paint;
} piece;

static int piece_origin(double ds, int64_t sx, int64_t sy, int64_t sw, int64_t sh, piece *p)
{
    p->tx = p->ty = p->fx = p->fy = 0;
    if (sx < 0) {
        p->tx = (int64_t)((double)(-sx) / ds);
        sx = 0;
        sw -= p->tx;
    }
    if (sy < 0) {
        p->ty = (int64_t)((double)(-sy) / ds);
        sy = 0;
        sh -= p->ty;
    }
    p->paint = sw > 0 && sh > 0;
    if (!p->paint) return 1;
    double fx = (double)sx / ds, fy = (double)sy / ds;
    if (fx != floor(fx) || fy != floor(fy) || fx > 9e15 || fy > 9e15) return 0;
    p->fx = (int64_t)fx;
    p->fy = (int64_t)fy;
    return 1;
}

static void fill_pad(uint8_t *q, int64_t n, const uint8_t pad[3])
{
    for (int64_t i = 0; i < n; i++, q += 3) memcpy(q, pad, 3);
}

/* The SW x SH piece whose top-left is DST (row stride STRIDE bytes). */
static int read_piece(mm_tiffdirect *t, int level, const piece *p, int64_t sw, int64_t sh,
                      uint8_t *dst, size_t stride, const uint8_t pad[3])
{
    const tlevel *L = &t->lev[level];
    /* output column i shows level column fx - tx + i; the valid ones */
    int64_t bx = p->fx - p->tx, by = p->fy - p->ty;
    int64_t i0 = 0, i1 = 0, j0 = 0, j1 = 0;
    if (p->paint) {
        i0 = -bx < 0 ? 0 : -bx;
        i1 = L->iw - bx < sw ? L->iw - bx : sw;
        j0 = -by < 0 ? 0 : -by;
        j1 = L->ih - by < sh ? L->ih - by : sh;
    }
    if (i1 <= i0 || j1 <= j0) {
        for (int64_t j = 0; j < sh; j++) fill_pad(dst + (size_t)j * stride, sw, pad);
        return 0;
    }
    for (int64_t j = 0; j < sh; j++) {
        uint8_t *row = dst + (size_t)j * stride;
        if (j < j0 || j >= j1) {
            fill_pad(row, sw, pad);
        } else {
            fill_pad(row, i0, pad);
            fill_pad(row + (size_t)i1 * 3, sw - i1, pad);
        }
    }
    int64_t c0 = (bx + i0) / L->tw, c1 = (bx + i1 - 1) / L->tw;
    int64_t r0 = (by + j0) / L->th, r1 = (by + j1 - 1) / L->th;
    for (int64_t c = c0; c <= c1; c++)
        for (int64_t r = r0; r <= r1; r++) {
            centry *e = acquire(t, level, c, r);
            if (!e) return -1;
            /* this tile's part of [i0, i1) x [j0, j1), in level coordinates */
            int64_t lx0 = c * L->tw, ly0 = r * L->th;
            int64_t ax = lx0 > bx + i0 ? lx0 : bx + i0;
            int64_t az = lx0 + L->tw < bx + i1 ? lx0 + L->tw : bx + i1;
            int64_t ay = ly0 > by + j0 ? ly0 : by + j0;
            int64_t aw = ly0 + L->th < by + j1 ? ly0 + L->th : by + j1;
            size_t nb = (size_t)(az - ax) * 3;
            for (int64_t ly = ay; ly < aw; ly++)
                memcpy(dst + (size_t)(ly - by) * stride + (size_t)(ax - bx) * 3,
                       e->px + ((size_t)(ly - ly0) * (size_t)L->tw + (size_t)(ax - lx0)) * 3, nb);
            release(t, e);
        }
    return 0;
}

int mm__tiffdirect_read(mm_tiffdirect *t, int level, int64_t x, int64_t y, int64_t w, int64_t h,
                        uint8_t *rgb, const uint8_t pad[3])
{
    if (!mm__tiffdirect_level(t, level) || w <= 0 || h <= 0) return 0;
    const tlevel *L = &t->lev[level];
    /* openslide_read_region's pieces, with its arithmetic (level-0 origin
     * x + col * d * ds truncated); every piece checked before any is read */
    const int64_t d = 4096;
    double ds = L->ds;
    int64_t nr = (h + d - 1) / d, nc = (w + d - 1) / d;
    for (int pass = 0; pass < 2; pass++)
        for (int64_t row = 0; row < nr; row++)
            for (int64_t col = 0; col < nc; col++) {
                int64_t sx = x + col * d * ds;
                int64_t sy = y + row * d * ds;
                int64_t sw = w - col * d < d ? w - col * d : d;
                int64_t sh = h - row * d < d ? h - row * d : d;
                piece p;
                if (!piece_origin(ds, sx, sy, sw, sh, &p)) return 0;
                if (pass == 1 &&
                    read_piece(t, level, &p, sw, sh, rgb + ((size_t)(row * d) * (size_t)w + (size_t)(col * d)) * 3,
                               (size_t)w * 3, pad) < 0)
                    return 0;
            }
    return 1;
}
