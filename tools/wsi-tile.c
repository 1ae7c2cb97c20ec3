/* wsi-tile: tissue detection and tiling of whole-slide images, as a tiles
 * stream (issue 3, METHODS.md B1): CLAM's segmentation and patch grid at a
 * chosen magnification, one segment per processed slide.
 *
 * Per slide: open (lib/slide.c), resolve the resolution (chain, --mpp-table,
 * --assume-mag), choose the patch level (10 % rule, else the nearest finer
 * level resampled by area averaging), segment a low-resolution image
 * (CLAM's level for downsample 64 read whole when it is small enough,
 * else a thumbnail at downsample 64 read in strips), build the grid
 * (lib/tissue.c), then read the tiles on -@ threads into a ring of slots
 * and write them in grid order. Each segment goes to a temporary stream
 * first and is appended to the output only when the slide succeeded, so
 * the output never holds part of a failed slide.
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <unistd.h>

#include <vips/vips.h>

#include "mm/slide.h"
#include "mm/stream.h"
#include "mm/tissue.h"
#include "toolutil.h"

/* The largest segmentation image read whole (CLAM reads its seg level in
 * one piece); above it a thumbnail at downsample 64 is read in strips. */
#define SEG_MAX_PX 40000000LL
/* One reference patch of 20x (0.5 um/px) 512 x 512 pixels, in mm^2: the
 * default smallest tissue region (a quarter of it for holes). */
#define REF_MM2 (0.256 * 0.256)
#define PREVIEW_MAX 2048
/* zstd level of the tiles stream (bench/wsi-tile.md: size against speed) */
#define TILES_LEVEL (-1)

static void usage(FILE *fp)
{
    fprintf(fp,
"Usage: wsi-tile [options] SLIDE...\n"
"\n"
"Detect tissue (CLAM's method) and cut it into tiles at a chosen\n"
"magnification; output: a tiles stream, one segment per processed slide.\n"
"\n"
"Resolution:\n"
"  -m, --mag X            target magnification, mag = 10 / mpp [20]\n"
"      --mpp X            target microns per pixel instead of --mag\n"
"      --native           tile at level 0's own pixel scale (no resolution\n"
"                         needed)\n"
"      --assume-mag X     level-0 magnification of slides whose resolution\n"
"                         is unknown\n"
"      --mpp-table FILE   slide,mpp lines (slide: id, file name or path)\n"
"                         overriding the slide's own resolution\n"
"Tissue:\n"
"      --tissue MODE      clam (saturation threshold) or none (whole image)\n"
"                         [clam]\n"
"      --otsu             Otsu's threshold instead of --sthresh\n"
"      --sthresh N        saturation threshold [8]\n"
"      --mthresh N        median blur kernel, odd [7]\n"
"      --close N          morphological close kernel, 0 none [4]\n"
"      --min-area MM2     smallest tissue region, mm^2 [0.0655]\n"
"      --min-hole MM2     smallest hole kept, mm^2 [min-area / 4]\n"
"      --max-holes N      holes kept per region [8]\n"
"      --preset NAME      clam (a_t 100, a_h 16) or tcga (a_t 16, a_h 4):\n"
"                         CLAM's area filters in 512^2 reference patches\n"
"      --min-tissue F     keep a tile whose tissue fraction is >= F instead\n"
"                         of CLAM's four-point test\n"
"Tiles:\n"
"  -s, --size N           tile size in target pixels [256]\n"
"      --step N           grid step in target pixels [size]\n"
"      --out-size N       resample each tile to N x N pixels [size]\n"
"      --pad-color C      colour past the slide edge: R,G,B, black or white\n"
"                         [black, as CLAM]\n"
"      --coords-only      records hold x, y only\n"
"Outputs:\n"
"  -o, --output FILE      the tiles stream [stdout]\n"
"      --preview PNG      thumbnail with contours, holes and tiles; with\n"
"                         several slides PNG must hold %%s (the slide id)\n"
"      --geojson FILE     tissue contours for QuPath (%%s as for --preview)\n"
"      --status FILE      per-slide status table (TSV)\n"
"      --level N          zstd level of the output, -7 (fastest) to 19 [%d]\n"
"  -@, --threads N        threads reading tiles [1]\n"
"  -v, -q, -h, -V         more/less on stderr, help, version\n"
"Exit status: 0 every slide processed, 1 a slide failed or had no tissue,\n"
"2 bad usage.\n", TILES_LEVEL);
}

typedef struct {
    double mag, mpp;   /* target; mpp > 0 when given as --mpp */
    int native;
    double assume_mag; /* 0: none */
    char **tkey;
    double *tmpp;
    int nt;
    int tissue;        /* 1 clam, 0 none */
    int otsu, sthresh, mthresh, close, max_holes;
    double min_area, min_hole; /* mm^2; min_hole < 0: min_area / 4 */
    const char *preset;        /* NULL, "clam", "tcga" */
    double a_t_ref, a_h_ref;   /* preset values in reference patches */
    double min_tissue;         /* < 0: four-point test */
    int size, step, out_size;
    uint8_t pad[3];
    int coords_only;
    int level;         /* zstd level of the output stream */
    const char *out, *preview, *geojson, *status_path;
    int nslides;
    int pn;
    char **pargv;
} cfg;

enum { ST_OK, ST_NOTISSUE, ST_FAILED };
static const char *const st_name[] = {"processed", "no tissue", "failed"};

typedef struct {
    const char *path;
    char *id;
    int state;
    int64_t n;
    int level;
    double mpp;
    char src[32];
    char reason[512];
} result;

// ---------------------------------------------------------------- helpers

static void set_reason(result *r, const char *fmt, ...) MM_PRINTF(2, 3);
static void set_reason(result *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->reason, sizeof r->reason, fmt, ap);
    va_end(ap);
}

/* A library message without the "PATH: " it starts with. */
static const char *strip_path(const char *msg, const char *path)
{
    size_t n = strlen(path);
    if (strncmp(msg, path, n) == 0 && msg[n] == ':') return msg + n + 1 + (msg[n + 1] == ' ');
    return msg;
}

/* PATTERN with "%s" replaced by ID (the only conversion allowed). */
static char *per_slide(const char *pattern, const char *id)
{
    const char *p = strstr(pattern, "%s");
    if (!p) return mm_strdup(pattern);
    size_t n = strlen(pattern) + strlen(id);
    char *s = mm_malloc(n + 1);
    snprintf(s, n + 1, "%.*s%s%s", (int)(p - pattern), pattern, id, p + 2);
    return s;
}

static int pattern_ok(const char *p)
{
    const char *s = strstr(p, "%s");
    for (const char *q = strchr(p, '%'); q; q = strchr(q + 1, '%'))
        if (q != s) return 0;
    return 1;
}

static void parse_pad(const char *s, uint8_t pad[3])
{
    if (!strcasecmp(s, "black")) {
        pad[0] = pad[1] = pad[2] = 0;
        return;
    }
    if (!strcasecmp(s, "white")) {
        pad[0] = pad[1] = pad[2] = 255;
        return;
    }
    char buf[64];
    snprintf(buf, sizeof buf, "%s", s);
    char *save = NULL, *tok = strtok_r(buf, ",", &save);
    for (int i = 0; i < 3; i++, tok = strtok_r(NULL, ",", &save)) {
        long long v;
        if (!tok || mm_parse_int(tok, 0, 255, &v) != 0)
            mm_die_usage("--pad-color: expected R,G,B (0-255), black or white, got '%s'", s);
        pad[i] = (uint8_t)v;
    }
    if (tok) mm_die_usage("--pad-color: expected R,G,B (0-255), black or white, got '%s'", s);
}

/* slide,mpp lines (comma or tab; '#' comments; a first line whose mpp is
 * not a number is a header). */
static void read_mpp_table(cfg *c, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) mm_die_errno("%s", path);
    char line[4096];
    int ln = 0;
    while (fgets(line, sizeof line, f)) {
        ln++;
        line[strcspn(line, "\r\n")] = '\0';
        if (!line[0] || line[0] == '#') continue;
        char *sep = strpbrk(line, ",\t");
        double v;
        if (!sep || mm_parse_double(sep + 1, 1e-6, 1e6, &v) != 0) {
            if (ln == 1) continue;
            fclose(f);
            mm_die("%s: line %d: expected slide,mpp, got '%s'", path, ln, line);
        }
        *sep = '\0';
        c->tkey = mm_realloc(c->tkey, (size_t)(c->nt + 1) * sizeof *c->tkey);
        c->tmpp = mm_realloc(c->tmpp, (size_t)(c->nt + 1) * sizeof *c->tmpp);
        c->tkey[c->nt] = mm_strdup(line);
        c->tmpp[c->nt++] = v;
    }
    fclose(f);
}

static double table_mpp(const cfg *c, const char *path, const char *id)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    for (int i = 0; i < c->nt; i++)
        if (!strcmp(c->tkey[i], id) || !strcmp(c->tkey[i], base) || !strcmp(c->tkey[i], path))
            return c->tmpp[i];
    return 0;
}

// ---------------------------------------------------------------- PNG

static int write_png(const char *path, const uint8_t *rgb, int w, int h)
{
    if (VIPS_INIT("wsi-tile") != 0) {
        mm__set_error("%s: libvips failed to start", path);
        return -1;
    }
    VipsImage *img = vips_image_new_from_memory(rgb, (size_t)w * h * 3, w, h, 3, VIPS_FORMAT_UCHAR);
    void *png = NULL;
    size_t len = 0;
    if (!img || vips_pngsave_buffer(img, &png, &len, NULL) != 0) {
        mm__set_error("%s: cannot encode the PNG: %s", path, vips_error_buffer());
        vips_error_clear();
        if (img) g_object_unref(img);
        return -1;
    }
    g_object_unref(img);
    mm_io *io = mm_io_open(path, "w");
    int ret = -1;
    if (io) {
        int wr = mm_io_write(io, png, len);
        if (wr != 0) {
            mm_io_discard(io);
        } else {
            ret = mm_io_close(io);
        }
    }
    g_free(png);
    return ret;
}

// ---------------------------------------------------------------- tile reading

typedef struct {
    mm_slide *s;
    const mm_tile_xy *xy;
    int64_t n;
    int direct;    /* read_region at LEVEL, else read_scaled */
    int level;
    int64_t ps0;
    int size, out;
    int nslot;
    uint8_t **buf;
    int *state;    /* 0 free, 1 reading, 2 ready, 3 failed */
    char (*err)[512];
    int64_t next, written;
    int stop;
    pthread_mutex_t mu;
    pthread_cond_t cv;
} pool;

static void *worker(void *arg)
{
    pool *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stop && p->next < p->n && p->next >= p->written + p->nslot)
            pthread_cond_wait(&p->cv, &p->mu);
        if (p->stop || p->next >= p->n) break;
        int64_t i = p->next++;
        int k = (int)(i % p->nslot);
        p->state[k] = 1;
        pthread_mutex_unlock(&p->mu);
        int r = p->direct
                    ? mm_slide_read_region(p->s, p->xy[i].x, p->xy[i].y, p->level, p->size, p->size,
                                           p->buf[k])
                    : mm_slide_read_scaled(p->s, p->xy[i].x, p->xy[i].y, p->ps0, p->ps0, p->out,
                                           p->out, p->buf[k]);
        pthread_mutex_lock(&p->mu);
        if (r < 0) snprintf(p->err[k], sizeof p->err[k], "%s", mm_strerror());
        p->state[k] = r < 0 ? 3 : 2;
        pthread_cond_broadcast(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* Read the N tiles on mm_threads threads and write them to OUT in order.
 * @return 0, or -1 with the reason in R. */
static int write_tiles(const cfg *c, mm_slide *s, mm_stream *out, const mm_tile_xy *xy, int64_t n,
                       int direct, int level, int64_t ps0, result *res)
{
    mm_rec *rec = mm_rec_new();
    if (c->coords_only) {
        for (int64_t i = 0; i < n; i++) {
            mm_rec_clear(rec);
            mm_val_set_int(mm_rec_put(rec, "x"), xy[i].x);
            mm_val_set_int(mm_rec_put(rec, "y"), xy[i].y);
            if (mm_stream_write(out, rec) != 0) {
                set_reason(res, "%s", mm_stream_error(out));
                mm_rec_free(rec);
                return -1;
            }
        }
        mm_rec_free(rec);
        return 0;
    }
    int nt = mm_threads > 0 ? mm_threads : 1;
    pool p = {.s = s, .xy = xy, .n = n, .direct = direct, .level = level, .ps0 = ps0,
              .size = c->size, .out = c->out_size, .nslot = 4 * nt};
    int px = direct ? c->size : c->out_size;
    p.buf = mm_malloc((size_t)p.nslot * sizeof *p.buf);
    for (int k = 0; k < p.nslot; k++) p.buf[k] = mm_malloc((size_t)px * px * 3);
    p.state = mm_calloc((size_t)p.nslot, sizeof *p.state);
    p.err = mm_calloc((size_t)p.nslot, sizeof *p.err);
    pthread_mutex_init(&p.mu, NULL);
    pthread_cond_init(&p.cv, NULL);
    pthread_t *th = mm_malloc((size_t)nt * sizeof *th);
    int started = 0;
    for (; started < nt; started++)
        if (pthread_create(&th[started], NULL, worker, &p) != 0) break;
    int ret = 0;
    if (started == 0) {
        set_reason(res, "cannot start a thread");
        ret = -1;
    }
    mm_progress *prog = mm_progress_new("tiles", (uint64_t)n);
    int64_t shape[3] = {px, px, 3};
    for (int64_t i = 0; i < n && ret == 0; i++) {
        int k = (int)(i % p.nslot);
        pthread_mutex_lock(&p.mu);
        while (p.state[k] < 2) pthread_cond_wait(&p.cv, &p.mu);
        pthread_mutex_unlock(&p.mu);
        if (p.state[k] == 3) {
            set_reason(res, "tile (%lld, %lld): %s", (long long)xy[i].x, (long long)xy[i].y,
                       strip_path(p.err[k], res->path));
            ret = -1;
            break;
        }
        mm_rec_clear(rec);
        mm_val_set_int(mm_rec_put(rec, "x"), xy[i].x);
        mm_val_set_int(mm_rec_put(rec, "y"), xy[i].y);
        mm_val_set_nd(rec, mm_rec_put(rec, "img"), MM_U8, 3, shape, p.buf[k], 0);
        if (mm_stream_write(out, rec) != 0) {
            set_reason(res, "%s", mm_stream_error(out));
            ret = -1;
        }
        pthread_mutex_lock(&p.mu);
        p.state[k] = 0;
        p.written++;
        pthread_cond_broadcast(&p.cv);
        pthread_mutex_unlock(&p.mu);
        mm_progress_update(prog, (uint64_t)i + 1);
    }
    mm_progress_end(prog);
    pthread_mutex_lock(&p.mu);
    p.stop = 1;
    pthread_cond_broadcast(&p.cv);
    pthread_mutex_unlock(&p.mu);
    for (int t = 0; t < started; t++) pthread_join(th[t], NULL);
    free(th);
    pthread_mutex_destroy(&p.mu);
    pthread_cond_destroy(&p.cv);
    for (int k = 0; k < p.nslot; k++) free(p.buf[k]);
    free(p.buf);
    free(p.state);
    free(p.err);
    mm_rec_free(rec);
    return ret;
}

// ---------------------------------------------------------------- one slide

typedef struct {
    /* resolution */
    double mpp_x, mpp_y, mag0;
    const char *src;
    int known;
    /* tiles */
    int level;
    double ds_level, scale; /* scale: level-0 pixels per target pixel */
    int direct;
    int64_t ps0, step0;
    double target_mpp;
    /* segmentation */
    int seg_level;      /* -1: thumbnail */
    double seg_ds;      /* thumbnail downsample */
    int sw, sh;
    double sx, sy;
    double a_t, a_h;    /* seg pixels^2 */
} plan;

/* The segmentation image (see SEG_MAX_PX). @return RGB (malloc'd) or NULL
 * with the reason in R. */
static uint8_t *read_seg(mm_slide *s, plan *P, result *r)
{
    int64_t w0, h0;
    mm_slide_level_size(s, 0, &w0, &h0);
    int L = mm_slide_best_level(s, 64);
    int64_t lw, lh;
    mm_slide_level_size(s, L, &lw, &lh);
    uint8_t *rgb;
    if (lw * lh <= SEG_MAX_PX) {
        /* CLAM: the whole level, scale (w0 / w, h0 / h) */
        P->seg_level = L;
        P->sw = (int)lw;
        P->sh = (int)lh;
        P->sx = (double)w0 / lw;
        P->sy = (double)h0 / lh;
        rgb = mm_malloc((size_t)(lw * lh) * 3);
        if (mm_slide_read_region(s, 0, 0, L, lw, lh, rgb) < 0) {
            set_reason(r, "%s", strip_path(mm_strerror(), r->path));
            free(rgb);
            return NULL;
        }
        return rgb;
    }
    /* a thumbnail at an integer downsample (64, doubled until it fits),
     * area-averaged in strips of 64 rows */
    int64_t d = 64;
    while ((w0 / d) * (h0 / d) > SEG_MAX_PX) d *= 2;
    int64_t tw = w0 / d, th = h0 / d;
    if (tw < 1 || th < 1) {
        set_reason(r, "slide too small to segment");
        return NULL;
    }
    P->seg_level = -1;
    P->seg_ds = (double)d;
    P->sw = (int)tw;
    P->sh = (int)th;
    P->sx = P->sy = (double)d;
    rgb = mm_malloc((size_t)(tw * th) * 3);
    for (int64_t y = 0; y < th; y += 64) {
        int rows = (int)(th - y < 64 ? th - y : 64);
        if (mm_slide_read_scaled(s, 0, y * d, tw * d, rows * d, (int)tw, rows,
                                 rgb + (size_t)(y * tw) * 3) < 0) {
            set_reason(r, "%s", strip_path(mm_strerror(), r->path));
            free(rgb);
            return NULL;
        }
    }
    return rgb;
}

/* Resolution and level; @return 0, or -1 with the reason in R. */
static int plan_slide(const cfg *c, mm_slide *s, plan *P, result *r)
{
    mm_slide_res res;
    P->known = mm_slide_resolution(s, &res) == 0;
    P->mpp_x = res.mpp_x;
    P->mpp_y = res.mpp_y;
    P->mag0 = res.objective;
    P->src = res.source;
    double t = table_mpp(c, r->path, r->id);
    if (t > 0) {
        P->mpp_x = P->mpp_y = t;
        P->mag0 = 10 / t;
        P->src = "mpp-table";
        P->known = 1;
    } else if (!P->known && c->assume_mag > 0) {
        P->mpp_x = P->mpp_y = 10 / c->assume_mag;
        P->mag0 = c->assume_mag;
        P->src = "assume-mag";
        P->known = 1;
    }
    snprintf(r->src, sizeof r->src, "%s", P->src);
    r->mpp = P->mpp_x;
    P->direct = 1;
    P->level = 0;
    if (c->native) {
        P->scale = 1;
        P->target_mpp = P->known ? P->mpp_x : 0;
    } else {
        if (!P->known) {
            set_reason(r, "resolution unknown (no mpp, objective power or TIFF resolution): "
                          "give --mpp-table, --assume-mag or --native");
            return -1;
        }
        P->target_mpp = c->mpp > 0 ? c->mpp : 10 / c->mag;
        P->scale = P->target_mpp / P->mpp_x;
        /* a level within 10 % of the target is used as it is (closest
         * first); otherwise the nearest finer level, resampled */
        int best = -1;
        double bestd = 0;
        for (int L = 0; L < mm_slide_levels(s); L++) {
            double lm = P->mpp_x * mm_slide_level_downsample(s, L);
            double dev = fabs(lm - P->target_mpp) / P->target_mpp;
            if (dev <= 0.10 && (best < 0 || dev < bestd)) {
                best = L;
                bestd = dev;
            }
        }
        if (best >= 0) {
            P->level = best;
        } else if (P->scale < 1) {
            set_reason(r, "target %.4g um/px is finer than the slide's %.4g um/px; "
                          "tiles are not upsampled", P->target_mpp, P->mpp_x);
            return -1;
        } else {
            P->level = mm_slide_best_level(s, P->scale);
            P->direct = 0;
        }
    }
    P->ds_level = mm_slide_level_downsample(s, P->level);
    if (P->direct) P->scale = P->ds_level;
    P->ps0 = llround(c->size * P->scale);
    P->step0 = llround(c->step * P->scale);
    if (P->ps0 < 1 || P->step0 < 1) {
        set_reason(r, "tile size %d at scale %g is under one level-0 pixel", c->size, P->scale);
        return -1;
    }
    if (P->direct && c->out_size != c->size) P->direct = 0;
    r->level = P->level;
    return 0;
}

static void put_str(mm_rec *h, mm_val *m, const char *k, const char *v)
{
    mm_val_set_str(h, mm_map_put(h, m, k), v);
}
static void put_int(mm_rec *h, mm_val *m, const char *k, int64_t v)
{
    mm_val_set_int(mm_map_put(h, m, k), v);
}
static void put_num(mm_rec *h, mm_val *m, const char *k, double v)
{
    mm_val_set_float(mm_map_put(h, m, k), v);
}

static void fill_meta(const cfg *c, mm_slide *s, const plan *P, const mm_tissue *t, int64_t n,
                      mm_rec *h, const char *path)
{
    mm_val *m = mm_hdr_meta(h);
    int64_t w0, h0;
    mm_slide_level_size(s, 0, &w0, &h0);
    put_str(h, m, "slide", path);
    const char *dg = mm_slide_digest(s);
    put_str(h, m, "slide_digest", dg ? dg : "");
    put_str(h, m, "vendor", mm_slide_vendor(s));
    put_int(h, m, "level0_width", w0);
    put_int(h, m, "level0_height", h0);
    if (P->known) {
        put_num(h, m, "mpp_x", P->mpp_x);
        put_num(h, m, "mpp_y", P->mpp_y);
        put_num(h, m, "level0_magnification", P->mag0);
    } else {
        mm_val_set_nil(mm_map_put(h, m, "mpp_x"));
        mm_val_set_nil(mm_map_put(h, m, "mpp_y"));
        mm_val_set_nil(mm_map_put(h, m, "level0_magnification"));
    }
    put_str(h, m, "mpp_source", P->src);
    if (c->native) {
        put_str(h, m, "target", "native");
    } else {
        put_num(h, m, "target_mpp", P->target_mpp);
        put_num(h, m, "target_magnification", 10 / P->target_mpp);
    }
    put_int(h, m, "patch_level", P->level);
    put_num(h, m, "downsample", P->ds_level);
    put_num(h, m, "scale", P->scale);
    put_str(h, m, "resample", P->direct ? "none" : "area");
    put_int(h, m, "patch_size", c->size);
    put_int(h, m, "patch_size_level0", P->ps0);
    put_int(h, m, "step_size", c->step);
    put_int(h, m, "step_size_level0", P->step0);
    put_int(h, m, "overlap", c->size - c->step);
    put_int(h, m, "out_size", c->out_size);
    mm_val *pc = mm_map_put(h, m, "pad_color");
    mm_val_set_array(pc);
    for (int i = 0; i < 3; i++) mm_val_set_int(mm_array_push(h, pc), c->pad[i]);
    put_str(h, m, "coord_order", "clam");
    mm_val *tm = mm_map_put(h, m, "tissue");
    mm_val_set_map(tm);
    if (!c->tissue) {
        put_str(h, tm, "method", "none");
        put_str(h, tm, "contour_fn", "all");
    } else {
        put_str(h, tm, "method", "clam");
        put_int(h, tm, "seg_level", P->seg_level);
        if (P->seg_level < 0) put_num(h, tm, "seg_thumbnail_downsample", P->seg_ds);
        put_int(h, tm, "seg_width", P->sw);
        put_int(h, tm, "seg_height", P->sh);
        put_num(h, tm, "seg_scale_x", P->sx);
        put_num(h, tm, "seg_scale_y", P->sy);
        put_int(h, tm, "sthresh", c->sthresh);
        put_int(h, tm, "sthresh_up", 255);
        put_int(h, tm, "mthresh", c->mthresh);
        put_int(h, tm, "close", c->close);
        mm_val_set_bool(mm_map_put(h, tm, "use_otsu"), c->otsu);
        put_str(h, tm, "filter_units", c->preset ? "reference patches" : "mm2");
        if (c->preset) {
            put_str(h, tm, "preset", c->preset);
            put_num(h, tm, "a_t", c->a_t_ref);
            put_num(h, tm, "a_h", c->a_h_ref);
        } else {
            put_num(h, tm, "min_area_mm2", c->min_area);
            put_num(h, tm, "min_hole_mm2", c->min_hole);
        }
        put_num(h, tm, "a_t_seg_px", P->a_t);
        put_num(h, tm, "a_h_seg_px", P->a_h);
        put_int(h, tm, "max_n_holes", c->max_holes);
        put_str(h, tm, "contour_fn", c->min_tissue >= 0 ? "min_tissue" : "four_pt");
        if (c->min_tissue >= 0) put_num(h, tm, "min_tissue", c->min_tissue);
        put_int(h, tm, "regions", t->n);
    }
    mm_val_set_bool(mm_map_put(h, m, "use_padding"), 1);
    put_int(h, m, "n", n);
}

/* Preview: the segmentation image shrunk to at most PREVIEW_MAX pixels a
 * side (k x k box means), contours, holes and tiles drawn on it. */
static int write_preview(const char *path, const uint8_t *seg, const plan *P, const mm_tissue *t,
                         const mm_tile_xy *xy, int64_t n)
{
    int k = 1;
    while ((P->sw + k - 1) / k > PREVIEW_MAX || (P->sh + k - 1) / k > PREVIEW_MAX) k++;
    int w = P->sw / k, h = P->sh / k;
    if (w < 1) w = 1;
    if (h < 1) h = 1;
    uint8_t *img = mm_malloc((size_t)w * h * 3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int ch = 0; ch < 3; ch++) {
                int sum = 0, cnt = 0;
                for (int dy = 0; dy < k && y * k + dy < P->sh; dy++)
                    for (int dx = 0; dx < k && x * k + dx < P->sw; dx++, cnt++)
                        sum += seg[((size_t)(y * k + dy) * P->sw + x * k + dx) * 3 + ch];
                img[((size_t)y * w + x) * 3 + ch] = (uint8_t)((sum + cnt / 2) / cnt);
            }
    double scale = P->sx * k;
    static const uint8_t tile_rgb[3] = {255, 140, 0};
    mm_tiles_draw(img, w, h, xy, n, P->ps0, scale, tile_rgb);
    mm_tissue_draw(img, w, h, t, scale, 2);
    int r = write_png(path, img, w, h);
    free(img);
    return r;
}

/* Append the stream file TMP to OUT. */
static int append_file(mm_io *out, const char *tmp)
{
    mm_io *in = mm_io_open(tmp, "r");
    if (!in) return -1;
    char buf[1 << 16];
    ssize_t k;
    int ret = 0;
    while ((k = mm_io_read(in, buf, sizeof buf)) > 0)
        if (mm_io_write(out, buf, (size_t)k) != 0) {
            mm__set_error("%s", mm_io_error(out));
            ret = -1;
            break;
        }
    if (k < 0) {
        mm__set_error("%s", mm_io_error(in));
        ret = -1;
    }
    mm_io_discard(in);
    return ret;
}

static void process(const cfg *c, result *r, const char *tmp, mm_io **final)
{
    int why;
    mm_slide *s = mm_slide_open(r->path, &why);
    r->level = -1;
    if (!s) {
        r->state = ST_FAILED;
        set_reason(r, "%s", strip_path(mm_strerror(), r->path));
        return;
    }
    mm_slide_set_pad(s, c->pad[0], c->pad[1], c->pad[2]);
    plan P;
    memset(&P, 0, sizeof P);
    mm_tissue t = {0, NULL};
    uint8_t *seg = NULL;
    mm_tile_xy *xy = NULL;
    int64_t n = 0;
    r->state = ST_FAILED;
    int nch = mm_slide_channels(s);
    if (c->tissue && nch != 3 && nch != 4) {
        set_reason(r, "%d channel%s per pixel (%s): CLAM's saturation threshold means nothing "
                      "here; give --tissue none", nch, nch == 1 ? "" : "s",
                   nch <= 2 ? "grey or one fluorescence channel" : "multichannel");
        goto done;
    }
    if (plan_slide(c, s, &P, r) < 0) goto done;
    int64_t w0, h0;
    mm_slide_level_size(s, 0, &w0, &h0);

    mm_grid_opts g = {.ps0 = P.ps0, .step0 = P.step0, .w0 = w0, .h0 = h0, .padding = 1};
    if (c->tissue || c->preview) {
        seg = read_seg(s, &P, r);
        if (!seg) goto done;
    }
    if (c->tissue) {
        mm_seg_opts o;
        mm_seg_defaults(&o);
        o.sthresh = c->sthresh;
        o.mthresh = c->mthresh;
        o.close = c->close;
        o.otsu = c->otsu;
        o.max_n_holes = c->max_holes;
        if (c->preset) {
            double ref = floor(512.0 * 512.0 / (P.sx * P.sy));
            P.a_t = c->a_t_ref * ref;
            P.a_h = c->a_h_ref * ref;
        } else {
            /* physical areas; a slide of unknown resolution (--native) is
             * taken at the target magnification's mpp */
            double mx = P.known ? P.mpp_x : 10 / c->mag, my = P.known ? P.mpp_y : 10 / c->mag;
            double px_mm2 = mx * P.sx * my * P.sy * 1e-6;
            P.a_t = c->min_area / px_mm2;
            P.a_h = c->min_hole / px_mm2;
        }
        o.a_t = P.a_t;
        o.a_h = P.a_h;
        if (mm_tissue_segment(seg, P.sw, P.sh, &o, &t) < 0) {
            set_reason(r, "segmentation: %s", mm_strerror());
            goto done;
        }
        mm_tissue_scale(&t, P.sx, P.sy);
        g.mode = c->min_tissue >= 0 ? MM_TILE_MIN_TISSUE : MM_TILE_FOUR_PT;
        g.min_tissue = c->min_tissue;
        g.sx = P.sx;
        g.sy = P.sy;
    } else {
        g.mode = MM_TILE_ALL;
    }
    n = (!c->tissue || t.n > 0) ? mm_tissue_tiles(&t, &g, &xy) : 0;
    if (n < 0) {
        set_reason(r, "tile grid: %s", mm_strerror());
        goto done;
    }
    r->n = n;
    if (c->preview) {
        char *pp = per_slide(c->preview, r->id);
        int pr = write_preview(pp, seg, &P, &t, xy, n);
        free(pp);
        if (pr < 0) {
            set_reason(r, "preview: %s", mm_strerror());
            goto done;
        }
    }
    if (c->geojson) {
        char *gp = per_slide(c->geojson, r->id);
        mm_out *go = mm_out_open(gp);
        int gr = mm_tissue_geojson(&t, mm_out_fp(go));
        if (mm_out_close(go, gr == 0) != 0 || gr != 0) {
            set_reason(r, "%s: cannot write the GeoJSON: %s", gp, mm_strerror());
            free(gp);
            goto done;
        }
        free(gp);
    }
    if (n == 0) {
        r->state = ST_NOTISSUE;
        set_reason(r, t.n == 0 ? "no tissue found" : "tissue found, but no tile passed the test");
        goto done;
    }
    free(seg);
    seg = NULL;

    /* one slide into a file: no staging (the stream itself is written
     * under a temporary name and renamed at close) */
    int staged = c->nslides > 1 || !strcmp(c->out, "-");
    mm_stream *out = mm_stream_open(staged ? tmp : c->out, "w");
    if (!out) {
        set_reason(r, "%s", mm_strerror());
        goto done;
    }
    mm_stream_set_level(out, c->level);
    /* zstd compresses on as many threads of its own as read tiles (at least
     * one, so that the bytes are the same for every -@): the writer thread
     * alone was the pipeline's bottleneck */
    if (!c->coords_only) mm_stream_set_workers(out, mm_threads > 1 ? mm_threads : 1);
    mm_rec *h = mm_rec_new();
    mm_hdr_init(h, "tiles", r->id);
    mm_hdr_set_tool(h, "wsi-tile", c->pn, c->pargv);
    mm_hdr_add_parent(h, "slide", r->id);
    fill_meta(c, s, &P, &t, n, h, r->path);
    int ok = mm_stream_begin(out, h) == 0;
    mm_rec_free(h);
    if (!ok) {
        set_reason(r, "%s", mm_stream_error(out));
        mm_stream_discard(out);
        goto done;
    }
    const char *dg = mm_slide_digest(s);
    mm_stream_add_parent(out, "slide", r->id, dg ? dg : "");
    if (write_tiles(c, s, out, xy, n, P.direct, P.level, P.ps0, r) < 0) {
        mm_stream_discard(out);
        goto done;
    }
    if (mm_stream_end(out) != 0) {
        set_reason(r, "%s", mm_stream_error(out));
        mm_stream_discard(out);
        goto done;
    }
    if (mm_stream_close(out) != 0) {
        set_reason(r, "%s", mm_strerror());
        if (staged) remove(tmp);
        goto done;
    }
    if (!staged) {
        r->state = ST_OK;
        goto done;
    }
    if (!*final) {
        *final = mm_io_open(c->out, "w");
        if (!*final) {
            remove(tmp);
            mm_die("%s", mm_strerror());
        }
    }
    int ar = append_file(*final, tmp);
    remove(tmp);
    if (ar < 0) {
        mm_io_discard(*final);
        *final = NULL;
        mm_die("%s", mm_strerror());
    }
    r->state = ST_OK;
done:
    free(seg);
    free(xy);
    mm_tissue_free(&t);
    mm_slide_close(s);
}

// ---------------------------------------------------------------- status

static void print_status(FILE *fp, const result *rs, int n, int tsv)
{
    if (tsv)
        fprintf(fp, "slide\tid\tstatus\ttiles\tpatch_level\tmpp\tmpp_source\treason\n");
    else
        fprintf(fp, "%-32s %-10s %8s %5s %8s %-16s %s\n", "slide", "status", "tiles", "level", "mpp",
                "mpp_source", "reason");
    for (int i = 0; i < n; i++) {
        const result *r = &rs[i];
        char mpp[32] = "-", lev[16] = "-";
        if (r->mpp > 0) snprintf(mpp, sizeof mpp, "%.4g", r->mpp);
        if (r->level >= 0) snprintf(lev, sizeof lev, "%d", r->level);
        if (tsv)
            fprintf(fp, "%s\t%s\t%s\t%lld\t%s\t%s\t%s\t%s\n", r->path, r->id, st_name[r->state],
                    (long long)r->n, lev, mpp, r->src[0] ? r->src : "-", r->reason);
        else
            fprintf(fp, "%-32s %-10s %8lld %5s %8s %-16s %s\n", r->id, st_name[r->state],
                    (long long)r->n, lev, mpp, r->src[0] ? r->src : "-", r->reason);
    }
}

int main(int argc, char **argv)
{
    enum {
        O_MPP = 256, O_NATIVE, O_ASSUME, O_TABLE, O_TISSUE, O_OTSU, O_STH, O_MTH, O_CLOSE,
        O_MINAREA, O_MINHOLE, O_MAXHOLES, O_PRESET, O_MINTISSUE, O_STEP, O_OUTSIZE, O_PAD,
        O_COORDS, O_PREVIEW, O_GEOJSON, O_STATUS, O_LEVEL
    };
    static const struct option lopts[] = {
        {"mag", required_argument, NULL, 'm'}, {"mpp", required_argument, NULL, O_MPP},
        {"native", no_argument, NULL, O_NATIVE}, {"assume-mag", required_argument, NULL, O_ASSUME},
        {"mpp-table", required_argument, NULL, O_TABLE},
        {"tissue", required_argument, NULL, O_TISSUE}, {"otsu", no_argument, NULL, O_OTSU},
        {"sthresh", required_argument, NULL, O_STH}, {"mthresh", required_argument, NULL, O_MTH},
        {"close", required_argument, NULL, O_CLOSE},
        {"min-area", required_argument, NULL, O_MINAREA},
        {"min-hole", required_argument, NULL, O_MINHOLE},
        {"max-holes", required_argument, NULL, O_MAXHOLES},
        {"preset", required_argument, NULL, O_PRESET},
        {"min-tissue", required_argument, NULL, O_MINTISSUE},
        {"size", required_argument, NULL, 's'}, {"step", required_argument, NULL, O_STEP},
        {"out-size", required_argument, NULL, O_OUTSIZE},
        {"pad-color", required_argument, NULL, O_PAD},
        {"coords-only", no_argument, NULL, O_COORDS},
        {"output", required_argument, NULL, 'o'}, {"preview", required_argument, NULL, O_PREVIEW},
        {"geojson", required_argument, NULL, O_GEOJSON},
        {"status", required_argument, NULL, O_STATUS},
        {"level", required_argument, NULL, O_LEVEL},
        MM_COMMON_LONGOPTS, {NULL, 0, NULL, 0}};
    const char *optstring = "m:s:o:@:vqhV";
    cfg c;
    memset(&c, 0, sizeof c);
    c.mag = 20;
    c.tissue = 1;
    c.sthresh = 8;
    c.mthresh = 7;
    c.close = 4;
    c.max_holes = 8;
    c.min_area = REF_MM2;
    c.min_hole = -1;
    c.min_tissue = -1;
    c.size = 256;
    c.out = "-";
    c.level = TILES_LEVEL;
    long long step = 0, out_size = 0;
    int have_mag = 0, ch;
    const char *table = NULL;
    mm_tool_init("wsi-tile");
    while ((ch = getopt_long(argc, argv, optstring, lopts, NULL)) != -1) {
        switch (ch) {
        case 'm': c.mag = mm_opt_double("--mag", optarg, 0.01, 1000); have_mag = 1; break;
        case O_MPP: c.mpp = mm_opt_double("--mpp", optarg, 1e-3, 1000); break;
        case O_NATIVE: c.native = 1; break;
        case O_ASSUME: c.assume_mag = mm_opt_double("--assume-mag", optarg, 0.01, 1000); break;
        case O_TABLE: table = optarg; break;
        case O_TISSUE:
            if (!strcmp(optarg, "clam")) c.tissue = 1;
            else if (!strcmp(optarg, "none")) c.tissue = 0;
            else mm_die_usage("--tissue: expected clam or none, got '%s'", optarg);
            break;
        case O_OTSU: c.otsu = 1; break;
        case O_STH: c.sthresh = (int)mm_opt_int("--sthresh", optarg, 0, 255); break;
        case O_MTH:
            c.mthresh = (int)mm_opt_int("--mthresh", optarg, 1, 255);
            if (c.mthresh % 2 == 0) mm_die_usage("--mthresh: expected an odd kernel size, got %d", c.mthresh);
            break;
        case O_CLOSE: c.close = (int)mm_opt_int("--close", optarg, 0, 255); break;
        case O_MINAREA: c.min_area = mm_opt_double("--min-area", optarg, 0, 1e6); break;
        case O_MINHOLE: c.min_hole = mm_opt_double("--min-hole", optarg, 0, 1e6); break;
        case O_MAXHOLES: c.max_holes = (int)mm_opt_int("--max-holes", optarg, 0, 1000000); break;
        case O_PRESET:
            if (!strcmp(optarg, "clam")) { c.a_t_ref = 100; c.a_h_ref = 16; }
            else if (!strcmp(optarg, "tcga")) { c.a_t_ref = 16; c.a_h_ref = 4; }
            else mm_die_usage("--preset: expected clam or tcga, got '%s'", optarg);
            c.preset = optarg;
            break;
        case O_MINTISSUE: c.min_tissue = mm_opt_double("--min-tissue", optarg, 0, 1); break;
        case 's': c.size = (int)mm_opt_int("--size", optarg, 1, 65536); break;
        case O_STEP: step = mm_opt_int("--step", optarg, 1, 1 << 20); break;
        case O_OUTSIZE: out_size = mm_opt_int("--out-size", optarg, 1, 65536); break;
        case O_PAD: parse_pad(optarg, c.pad); break;
        case O_COORDS: c.coords_only = 1; break;
        case 'o': c.out = optarg; break;
        case O_PREVIEW: c.preview = optarg; break;
        case O_GEOJSON: c.geojson = optarg; break;
        case O_STATUS: c.status_path = optarg; break;
        case O_LEVEL: c.level = (int)mm_opt_int("--level", optarg, -7, 19); break;
        case 'h': usage(stdout); return 0;
        case 'V': mm_print_version("wsi-tile"); return 0;
        default:
            if (mm_common_opt(ch, optarg)) break;
            usage(stderr);
            return MM_EXIT_USAGE;
        }
    }
    if (optind == argc) {
        usage(stderr);
        return MM_EXIT_USAGE;
    }
    if (have_mag && c.mpp > 0) mm_die_usage("--mag and --mpp: give one");
    if (c.native && (have_mag || c.mpp > 0)) mm_die_usage("--native: no --mag or --mpp with it");
    if (c.preset && (c.min_area != REF_MM2 || c.min_hole >= 0))
        mm_die_usage("--preset: no --min-area or --min-hole with it");
    if (!c.tissue && (c.preset || c.min_tissue >= 0 || c.otsu))
        mm_die_usage("--tissue none: no tissue options (--preset, --min-tissue, --otsu)");
    if (c.min_hole < 0) c.min_hole = c.min_area / 4;
    c.step = step ? (int)step : c.size;
    c.out_size = out_size ? (int)out_size : c.size;
    c.nslides = argc - optind;
    const char *pats[2] = {c.preview, c.geojson};
    const char *pnames[2] = {"--preview", "--geojson"};
    for (int i = 0; i < 2; i++) {
        if (!pats[i]) continue;
        if (!pattern_ok(pats[i])) mm_die_usage("%s: '%%' other than one %%s in '%s'", pnames[i], pats[i]);
        if (c.nslides > 1 && !strstr(pats[i], "%s"))
            mm_die_usage("%s: with several slides the name must hold %%s (the slide id)", pnames[i]);
    }
    if (table) read_mpp_table(&c, table);
    mm_refuse_tty(c.out);
    /* provenance: the options only (getopt moved the slides to the end);
     * each segment names its own slide in meta */
    c.pargv = mm_argv_provenance(optind, argv, optstring, lopts, &c.pn);
    c.pargv[0] = "wsi-tile";

    /* segments are staged beside the output (or in TMPDIR for stdout) */
    char *stage;
    {
        const char *tdir = getenv("TMPDIR");
        char dir[4096];
        if (strcmp(c.out, "-") != 0) {
            snprintf(dir, sizeof dir, "%s", c.out);
            char *sl = strrchr(dir, '/');
            if (sl) sl[1] = '\0';
            else snprintf(dir, sizeof dir, "./");
        } else {
            snprintf(dir, sizeof dir, "%s/", tdir && *tdir ? tdir : "/tmp");
        }
        size_t n = strlen(dir) + 64;
        stage = mm_malloc(n);
        snprintf(stage, n, "%s.wsi-tile.%ld.part", dir, (long)getpid());
    }

    result *rs = mm_calloc((size_t)c.nslides, sizeof *rs);
    mm_io *final = NULL;
    int bad = 0;
    for (int i = 0; i < c.nslides; i++) {
        result *r = &rs[i];
        r->path = argv[optind + i];
        r->id = mm_slide_id(r->path);
        process(&c, r, stage, &final);
        /* one line per slide not processed, whatever -q says */
        if (r->state != ST_OK)
            fprintf(stderr, "%s: %s: %s%s\n", mm_prog, r->path,
                    r->state == ST_NOTISSUE ? "no tissue: " : "", r->reason);
        else mm_note(3, "%s: %lld tiles", r->path, (long long)r->n);
        bad += r->state != ST_OK;
    }
    int ret = bad ? MM_EXIT_FAIL : MM_EXIT_OK;
    if (final && mm_io_close(final) != 0) {
        mm_warn("%s", mm_strerror());
        ret = MM_EXIT_FAIL;
    }
    if (mm_verbosity >= 2) {
        fprintf(stderr, "%s: %d of %d slides processed\n", mm_prog, c.nslides - bad, c.nslides);
        print_status(stderr, rs, c.nslides, 0);
    }
    if (c.status_path) {
        mm_out *so = mm_out_open(c.status_path);
        print_status(mm_out_fp(so), rs, c.nslides, 1);
        if (mm_out_close(so, 1) != 0) {
            mm_warn("%s", mm_strerror());
            ret = MM_EXIT_FAIL;
        }
    }
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0) mm_note(3, "peak memory: %ld MiB", ru.ru_maxrss / 1024);
    for (int i = 0; i < c.nslides; i++) free(rs[i].id);
    free(rs);
    free(stage);
    for (int i = 0; i < c.nt; i++) free(c.tkey[i]);
    free(c.tkey);
    free(c.tmpp);
    free(c.pargv);
    return mm_tool_exit(ret);
}
