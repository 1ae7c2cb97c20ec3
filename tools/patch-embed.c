/* patch-embed: ResNet-50 patch features from a tiles stream (CLAM's
 * extractor, METHODS.md B2). Tiles stream in (pixels, or coordinates plus
 * --slide), features stream out, one segment per slide. A reader thread
 * decodes (or reads from the slide) and preprocesses the next batch while
 * the network runs on this one; memory is bounded by the batch size.
 * The network lives in lib/resnet.c.
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "mm/dtype.h"
#include "mm/resnet.h"
#include "mm/slide.h"
#include "mm/resnet_cuda.h"
#include "mm/stream.h"
#include "toolutil.h"

static void usage(FILE *fp)
{
    fprintf(fp,
"Usage: patch-embed --weights FILE|random:SEED [options] [INPUT]\n"
"\n"
"ResNet-50 features of every tile of a tiles stream (wsi-tile's output),\n"
"as CLAM extracts them: torchvision's ResNet-50 truncated after layer3,\n"
"global average pool, 1024-d. INPUT: a tiles stream, '-' or none: stdin;\n"
"tiles without pixels (wsi-tile --coords-only) are read from --slide.\n"
"Output: a features stream, one segment per input segment.\n"
"\n"
"  -w, --weights W        safetensors file in torchvision's key layout\n"
"                         (share/mmpath/convert-resnet50.py), or random:SEED\n"
"                         (deterministic random weights: not ImageNet)\n"
"  -l, --layer N          3: truncated after layer3, 1024-d (CLAM); 4: the\n"
"                         whole trunk, 2048-d [3]\n"
"  -r, --resize N         torchvision Resize(N) on the tile first (new CLAM:\n"
"                         224); default: native size (old CLAM)\n"
"  -s, --slide FILE       read coords-only tiles' pixels from FILE\n"
"  -b, --batch N          tiles per forward pass [16; 128 on CUDA]\n"
"  -d, --device D         cpu, cuda (cuDNN; fails without a GPU) or auto\n"
"                         (cuda when a GPU answers) [auto]\n"
"      --precision P      on CUDA: fp16 (FP16 tensor cores) or tf32 [fp16]\n"
"      --half             write f16 features (default f32)\n"
"  -o, --output FILE      the features stream [stdout]\n"
"  -@, --threads N        threads: for the network on the CPU [1]; for\n"
"                         decoding the input stream on CUDA [min(4, CPUs)]\n"
"  -v, -q, -h, -V         more/less on stderr, help, version\n"
"Exit status: 0 ok, 1 bad input, 2 bad usage.\n");
}

static mm_stream *g_out;

typedef struct {
    const char *weights, *slide_path;
    int layer, resize, batch, half, pn;
    int gpu;        /* run on cuDNN (mm/resnet_cuda.h) */
    int tf32;       /* its precision: TF32 instead of FP16 */
    char **pargv;
} cfg;

// ---------------------------------------------------------------- reader

/* A batch: tile coordinates and pixels: preprocessed (NHWC f32) for the
 * CPU engine, or raw RGB for the GPU, which preprocesses on the device. */
typedef struct {
    int n, h, w;
    int32_t *xy;
    float *x;
    size_t cap; /* floats in x */
    uint8_t *u8;
    size_t ucap; /* bytes in u8 */
    int last;   /* the segment ends with this batch */
} batch;

typedef struct {
    const cfg *c;
    mm_stream *in;
    mm_slide *slide;  /* NULL: tiles must carry pixels */
    int resample;     /* coords path: 0 read_region, 1 read_scaled */
    int level, size, out;
    int64_t ps0;
    const mm_rec *hdr; /* the segment's header */
    int ready;        /* coords parameters read from HDR */
    int64_t count;    /* tiles read so far */
    int th, tw;       /* the segment's tile size (0: not seen yet) */
    uint8_t *rgb, *rs;
    mm_rec *rec;
    batch b[2];
    int full[2], stop;
    char err[1024];
    pthread_mutex_t mu;
    pthread_cond_t cv;
} feeder;

static int seterr(feeder *f, const char *fmt, ...) MM_PRINTF(2, 3);
static int seterr(feeder *f, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->err, sizeof f->err, fmt, ap);
    va_end(ap);
    return -1;
}

/* Coordinates-to-pixels parameters from the tiles meta (wsi-tile's), at
 * the segment's first tile without pixels. */
static int coords_params(feeder *f)
{
    const mm_rec *h = f->hdr;
    const mm_val *m = mm_rec_get(h, "meta");
    const char *id = mm_hdr_id(h) ? mm_hdr_id(h) : "";
    int64_t v;
    const char *rs = mm_val_str(mm_map_get(m, "resample"));
    f->level = mm_val_int(mm_map_get(m, "patch_level"), &v) == 0 ? (int)v : 0;
    f->size = mm_val_int(mm_map_get(m, "patch_size"), &v) == 0 ? (int)v : 0;
    f->out = mm_val_int(mm_map_get(m, "out_size"), &v) == 0 ? (int)v : f->size;
    f->ps0 = mm_val_int(mm_map_get(m, "patch_size_level0"), &v) == 0 ? v : 0;
    f->resample = (rs && !strcmp(rs, "area")) || f->out != f->size;
    if (f->size < 1 || f->size > 65536 || f->out < 1 || f->out > 65536 ||
        (f->resample && f->ps0 < 1))
        return seterr(f, "%s: segment '%s': coords-only tiles need "
                      "patch_size (and patch_size_level0, out_size when "
                      "resampled) in the meta", mm_stream_name(f->in), id);
    const char *want = mm_val_str(mm_map_get(m, "slide_digest"));
    const char *got = mm_slide_digest(f->slide);
    if (want && got && strcmp(want, got))
        return seterr(f, "%s: slide digest %s, the tiles of '%s' were cut "
                      "from %s", f->c->slide_path, got, id, want);
    f->ready = 1;
    return 0;
}

/* The RGB pixels of record R into F->rgb (its size in *H, *W). */
static int tile_pixels(feeder *f, const mm_rec *r, int *h, int *w)
{
    const mm_val *img = mm_rec_get(r, "img");
    if (img) {
        mm_nd t;
        if (mm_val_nd(img, &t) != 0 || t.dtype != MM_U8 || t.ndim != 3 ||
            t.shape[2] != 3 || t.shape[0] < 1 || t.shape[1] < 1 ||
            t.shape[0] > 65536 || t.shape[1] > 65536)
            return seterr(f, "%s: tile %lld: \"img\" is not a u8 [h, w, 3] "
                          "tensor", mm_stream_name(f->in), (long long)f->count);
        *h = (int)t.shape[0];
        *w = (int)t.shape[1];
        f->rgb = mm_realloc(f->rgb, t.nbytes);
        memcpy(f->rgb, t.data, t.nbytes);
        return 0;
    }
    if (!f->slide)
        return seterr(f, "%s: tiles without pixels (coords-only): give the "
                      "slide with --slide FILE", mm_stream_name(f->in));
    if (!f->ready && coords_params(f) < 0) return -1;
    int64_t x, y;
    if (mm_val_int(mm_rec_get(r, "x"), &x) != 0 ||
        mm_val_int(mm_rec_get(r, "y"), &y) != 0)
        return seterr(f, "%s: tile %lld has no integer x and y",
                      mm_stream_name(f->in), (long long)f->count);
    int side = f->resample ? f->out : f->size;
    f->rgb = mm_realloc(f->rgb, (size_t)side * side * 3);
    int rc = f->resample ? mm_slide_read_scaled(f->slide, x, y, f->ps0, f->ps0,
                                                f->out, f->out, f->rgb)
                         : mm_slide_read_region(f->slide, x, y, f->level,
                                                f->size, f->size, f->rgb);
    if (rc < 0) return seterr(f, "%s", mm_strerror());
    *h = *w = side;
    return 0;
}

/* Fill B with up to batch tiles of the current segment. */
static int fill(feeder *f, batch *b)
{
    const cfg *c = f->c;
    b->n = 0;
    b->last = 0;
    while (b->n < c->batch) {
        int64_t ri = mm_stream_read(f->in, f->rec);
        if (ri == -1) {
            b->last = 1;
            return 0;
        }
        if (ri < -1) return seterr(f, "%s", mm_stream_error(f->in));
        int h = 0, w = 0;
        if (tile_pixels(f, f->rec, &h, &w) < 0) return -1;
        int64_t x = 0, y = 0;
        if (mm_val_int(mm_rec_get(f->rec, "x"), &x) != 0 ||
            mm_val_int(mm_rec_get(f->rec, "y"), &y) != 0 || x < INT32_MIN ||
            x > INT32_MAX || y < INT32_MIN || y > INT32_MAX)
            return seterr(f, "%s: tile %lld has no integer x and y",
                          mm_stream_name(f->in), (long long)f->count);
        const uint8_t *px = f->rgb;
        if (c->resize) {
            int oh, ow;
            mm_resnet_resize_size(h, w, c->resize, &oh, &ow);
            f->rs = mm_realloc(f->rs, (size_t)oh * ow * 3);
            mm_resnet_resize(f->rgb, h, w, oh, ow, f->rs);
            px = f->rs;
            h = oh;
            w = ow;
        }
        if (!f->th) {
            if (h < 32 || w < 32)
                return seterr(f, "%s: tiles of %d x %d pixels, need at least "
                              "32 x 32", mm_stream_name(f->in), h, w);
            f->th = h;
            f->tw = w;
        } else if (h != f->th || w != f->tw) {
            return seterr(f, "%s: tile %lld is %d x %d, the segment's first "
                          "was %d x %d", mm_stream_name(f->in),
                          (long long)f->count, h, w, f->th, f->tw);
        }
        size_t per = (size_t)h * w * 3;
        if (c->gpu) {
            if ((size_t)(b->n + 1) * per > b->ucap) {
                b->ucap = (size_t)c->batch * per;
                b->u8 = mm_realloc(b->u8, b->ucap);
            }
            memcpy(b->u8 + b->n * per, px, per);
        } else {
            if ((size_t)(b->n + 1) * per > b->cap) {
                b->cap = (size_t)c->batch * per;
                b->x = mm_realloc(b->x, b->cap * sizeof *b->x);
            }
            mm_resnet_preprocess(px, h, w, b->x + b->n * per);
        }
        b->xy[2 * b->n] = (int32_t)x;
        b->xy[2 * b->n + 1] = (int32_t)y;
        b->h = h;
        b->w = w;
        b->n++;
        f->count++;
    }
    return 0;
}

static void *reader(void *arg)
{
    feeder *f = arg;
    for (int k = 0;; k ^= 1) {
        pthread_mutex_lock(&f->mu);
        while (f->full[k] && !f->stop) pthread_cond_wait(&f->cv, &f->mu);
        int stop = f->stop;
        pthread_mutex_unlock(&f->mu);
        if (stop) break;
        int rc = fill(f, &f->b[k]);
        pthread_mutex_lock(&f->mu);
        if (rc < 0) f->b[k].last = 1;
        f->full[k] = 1;
        pthread_cond_broadcast(&f->cv);
        pthread_mutex_unlock(&f->mu);
        if (f->b[k].last) break;
    }
    return NULL;
}

// ---------------------------------------------------------------- segment

static void put_int(mm_rec *h, mm_val *m, const char *k, int64_t v)
{
    mm_val_set_int(mm_map_put(h, m, k), v);
}

static void put_str(mm_rec *h, mm_val *m, const char *k, const char *v)
{
    mm_val_set_str(h, mm_map_put(h, m, k), v);
}

static void header(const cfg *c, const mm_resnet *net, const mm_rec *in,
                   mm_rec *h)
{
    const char *id = mm_hdr_id(in) ? mm_hdr_id(in) : "";
    mm_hdr_init(h, "features", id);
    mm_hdr_set_tool(h, "patch-embed", c->pn, c->pargv);
    mm_hdr_add_parent(h, "tiles", id);
    mm_val *m = mm_hdr_meta(h);
    const mm_val *im = mm_rec_get(in, "meta");
    if (im && im->type == MM_MAP)
        for (size_t i = 0; i < im->u.m.n; i++)
            if (im->u.m.kv[i].k.type == MM_STR)
                mm_val_copy(h, mm_map_put(h, m, im->u.m.kv[i].k.u.s.p),
                            &im->u.m.kv[i].v);
    put_int(h, m, "dim", mm_resnet_dim(net));
    put_str(h, m, "model", "resnet50");
    put_int(h, m, "layer", mm_resnet_layer(net));
    put_str(h, m, "pool", "avg");
    put_str(h, m, "weights", mm_resnet_digest(net));
    if (!strncmp(c->weights, "random:", 7))
        put_str(h, m, "weights_note",
                "deterministic random weights for tests: not ImageNet features");
    put_str(h, m, "dtype", c->half ? "f16" : "f32");
    /* cuDNN's FP16/TF32 features differ from the CPU's in the last digits
     * (t-resnet-cuda states by how much): say which computed them */
    put_str(h, m, "device", !c->gpu ? "cpu" : c->tf32 ? "cuda tf32" : "cuda fp16");
    mm_val *p = mm_map_put(h, m, "preprocessing");
    mm_val_set_map(p);
    if (c->resize) {
        put_int(h, p, "resize", c->resize);
        put_str(h, p, "interpolation", "bilinear (PIL, antialiased)");
    } else {
        put_str(h, p, "resize", "none");
    }
    put_str(h, p, "to_tensor", "rgb/255");
    static const double mean[3] = {0.485, 0.456, 0.406},
                        sd[3] = {0.229, 0.224, 0.225};
    mm_val *mv = mm_map_put(h, p, "mean"), *sv = mm_map_put(h, p, "std");
    mm_val_set_array(mv);
    mm_val_set_array(sv);
    for (int i = 0; i < 3; i++) {
        mm_val_set_float(mm_array_push(h, mv), mean[i]);
        mm_val_set_float(mm_array_push(h, sv), sd[i]);
    }
}

static void write_chunk(mm_rec *rec, int64_t chunk, int64_t rows, int dim,
                        const int32_t *xy, const void *f, int half)
{
    mm_rec_clear(rec);
    mm_val_set_int(mm_rec_put(rec, "chunk"), chunk);
    mm_val_set_nd(rec, mm_rec_put(rec, "xy"), MM_I32, 2, (int64_t[]){rows, 2},
                  xy, 0);
    mm_val_set_nd(rec, mm_rec_put(rec, "f"), half ? MM_F16 : MM_F32, 2,
                  (int64_t[]){rows, dim}, f, 0);
    if (mm_stream_write(g_out, rec) != 0) mm_die_discard(&g_out, "%s", mm_stream_error(g_out));
}

/* The cuDNN network for tiles of H x W, made at the first batch of a
 * segment (the tile size is known then) and kept while the size repeats. */
static mm_resnet_cuda *g_gpu;
static int g_gh, g_gw;

static int gpu_ready(const cfg *c, const mm_resnet *net, const batch *b)
{
    if (!g_gpu || g_gh != b->h || g_gw != b->w) {
        mm_resnet_cuda_free(g_gpu);
        g_gpu = mm_resnet_cuda_new_ex(net, c->batch, b->h, b->w,
                                      c->tf32 ? MM_CUDA_TF32 : MM_CUDA_FP16);
        if (!g_gpu) return -1;
        g_gh = b->h;
        g_gw = b->w;
        mm_note(3, "%s", mm_resnet_cuda_describe(g_gpu));
    }
    return 0;
}

/* Rows of features on their way to chunk records. */
typedef struct {
    int64_t rows, chunk, cap;
    int dim, half;
    int32_t *cxy;
    void *cf;
    mm_rec *rec;
} emitter;

static void emit(emitter *e, const int32_t *xy, const float *feat, int n)
{
    for (int i = 0; i < n; i++) {
        memcpy(e->cxy + 2 * e->rows, xy + 2 * i, 2 * sizeof *e->cxy);
        const float *src = feat + (size_t)i * e->dim;
        if (e->half)
            for (int j = 0; j < e->dim; j++)
                ((uint16_t *)e->cf)[e->rows * e->dim + j] = mm_f32_to_f16(src[j]);
        else
            memcpy((float *)e->cf + e->rows * e->dim, src, e->dim * sizeof *src);
        if (++e->rows == e->cap) {
            write_chunk(e->rec, e->chunk++, e->rows, e->dim, e->cxy, e->cf, e->half);
            e->rows = 0;
        }
    }
}

static void segment(const cfg *c, mm_resnet *net, mm_stream *in,
                    mm_slide *slide, feeder *f)
{
    const mm_rec *ih = mm_stream_header(in);
    const char *kind = mm_hdr_kind(ih) ? mm_hdr_kind(ih) : "?";
    const char *id = mm_hdr_id(ih) ? mm_hdr_id(ih) : "";
    if (strcmp(kind, "tiles"))
        mm_die_discard(&g_out, "%s: segment '%s' has kind %s, not tiles", mm_stream_name(in),
             id, kind);
    int64_t n_meta = -1;
    if (mm_val_int(mm_map_get(mm_rec_get(ih, "meta"), "n"), &n_meta) != 0)
        n_meta = -1;
    f->slide = slide;
    f->count = 0;
    f->th = f->tw = 0;
    f->full[0] = f->full[1] = 0;
    f->stop = 0;
    f->err[0] = 0;
    f->hdr = ih;
    f->ready = 0;
    mm_rec *h = mm_rec_new();
    header(c, net, ih, h);
    if (mm_stream_begin(g_out, h) != 0) mm_die_discard(&g_out, "%s", mm_stream_error(g_out));
    mm_rec_free(h);

    int dim = mm_resnet_dim(net);
    int64_t cap = mm_chunk_rows((size_t)dim * (c->half ? 2 : 4) + 8);
    if (cap > 1024) cap = 1024;
    if (cap < c->batch) cap = c->batch;
    float *feat = mm_malloc((size_t)c->batch * dim * sizeof *feat);
    int32_t *cxy = mm_malloc((size_t)cap * 2 * sizeof *cxy);
    void *cf = mm_malloc((size_t)cap * dim * (c->half ? 2 : 4));
    int64_t done = 0;
    mm_rec *rec = mm_rec_new();
    emitter em = {0, 0, cap, dim, c->half, cxy, cf, rec};
    /* the coordinates of the batches queued on the GPU, oldest at QH */
    int32_t *qxy[2] = {mm_malloc((size_t)c->batch * 2 * sizeof(int32_t)),
                       mm_malloc((size_t)c->batch * 2 * sizeof(int32_t))};
    int qh = 0, qt = 0;
    mm_progress *pg = mm_progress_new(id, n_meta > 0 ? (uint64_t)n_meta : 0);

    pthread_t th;
    if (pthread_create(&th, NULL, reader, f) != 0) mm_die_discard(&g_out, "cannot start a thread");
    for (int k = 0;; k ^= 1) {
        pthread_mutex_lock(&f->mu);
        while (!f->full[k]) pthread_cond_wait(&f->cv, &f->mu);
        pthread_mutex_unlock(&f->mu);
        batch *b = &f->b[k];
        if (f->err[0]) {
            pthread_join(th, NULL);
            mm_die_discard(&g_out, "%s", f->err);
        }
        int bad = 0;
        if (!c->gpu) {
            if (b->n > 0 && mm_resnet_forward(net, b->n, b->h, b->w, b->x, feat) != 0) bad = 1;
            else emit(&em, b->xy, feat, b->n);
        } else if (b->n > 0 || b->last) {
            /* two batches in flight: this one's upload and network run
             * while the reader decodes the next; the oldest comes back
             * with the coordinates kept for it */
            if (b->n > 0 && gpu_ready(c, net, b) != 0) bad = 1;
            if (!bad && b->n > 0 && mm_resnet_cuda_pending(g_gpu) == 2) {
                int n = mm_resnet_cuda_collect(g_gpu, feat);
                if (n < 0) bad = 1;
                else emit(&em, qxy[qh], feat, n);
                qh ^= 1;
            }
            if (!bad && b->n > 0) {
                if (mm_resnet_cuda_submit(g_gpu, b->u8, b->n) != 0) bad = 1;
                memcpy(qxy[qt], b->xy, (size_t)b->n * 2 * sizeof *b->xy);
                qt ^= 1;
            }
            while (!bad && b->last && g_gpu && mm_resnet_cuda_pending(g_gpu) > 0) {
                int n = mm_resnet_cuda_collect(g_gpu, feat);
                if (n < 0) bad = 1;
                else emit(&em, qxy[qh], feat, n);
                qh ^= 1;
            }
        }
        if (bad) {
            pthread_mutex_lock(&f->mu);
            f->stop = 1;
            pthread_cond_broadcast(&f->cv);
            pthread_mutex_unlock(&f->mu);
            pthread_join(th, NULL);
            mm_die_discard(&g_out, "%s", mm_strerror());
        }
        if (b->last && em.rows > 0)
            write_chunk(em.rec, em.chunk++, em.rows, dim, em.cxy, em.cf, c->half);
        done += b->n;
        mm_progress_update(pg, (uint64_t)done);
        int last = b->last;
        pthread_mutex_lock(&f->mu);
        f->full[k] = 0;
        pthread_cond_broadcast(&f->cv);
        pthread_mutex_unlock(&f->mu);
        if (last) break;
    }
    pthread_join(th, NULL);
    mm_progress_end(pg);
    if (n_meta >= 0 && n_meta != done)
        mm_die_discard(&g_out, "%s: segment '%s' says n = %lld but has %lld tiles",
             mm_stream_name(in), id, (long long)n_meta, (long long)done);
    const mm_rec *tr = mm_stream_trailer(in);
    const char *dg = tr ? mm_val_str(mm_rec_get(tr, "digest")) : NULL;
    mm_stream_add_parent(g_out, "tiles", id, dg ? dg : "");
    if (mm_stream_end(g_out) != 0) mm_die_discard(&g_out, "%s", mm_stream_error(g_out));
    mm_note(3, "%s: %lld tiles", id, (long long)done);
    mm_rec_free(rec);
    free(feat);
    free(cxy);
    free(cf);
    free(qxy[0]);
    free(qxy[1]);
}

// ---------------------------------------------------------------- main

int main(int argc, char **argv)
{
    enum { O_HALF = 256, O_PRECISION };
    static const struct option lopts[] = {
        {"weights", required_argument, NULL, 'w'},
        {"layer", required_argument, NULL, 'l'},
        {"resize", required_argument, NULL, 'r'},
        {"slide", required_argument, NULL, 's'},
        {"batch", required_argument, NULL, 'b'},
        {"half", no_argument, NULL, O_HALF},
        {"device", required_argument, NULL, 'd'},
        {"precision", required_argument, NULL, O_PRECISION},
        {"output", required_argument, NULL, 'o'},
        MM_COMMON_LONGOPTS, {NULL, 0, NULL, 0}};
    const char *optstring = "w:l:r:s:b:d:o:@:vqhV";
    const char *device = "auto";
    int batch_set = 0;
    const char *out = "-";
    cfg c = {.layer = 3, .batch = 16};
    int ch;
    mm_tool_init("patch-embed");
    mm_blas_tune(argv);
    while ((ch = getopt_long(argc, argv, optstring, lopts, NULL)) != -1) {
        switch (ch) {
        case 'w': c.weights = optarg; break;
        case 'l': c.layer = (int)mm_opt_int("--layer", optarg, 3, 4); break;
        case 'r': c.resize = (int)mm_opt_int("--resize", optarg, 32, 65536); break;
        case 's': c.slide_path = optarg; break;
        case 'b':
            c.batch = (int)mm_opt_int("--batch", optarg, 1, 4096);
            batch_set = 1;
            break;
        case O_HALF: c.half = 1; break;
        case 'd':
            if (strcmp(optarg, "cpu") && strcmp(optarg, "cuda") && strcmp(optarg, "auto"))
                mm_die_usage("--device: expected cpu, cuda or auto, got '%s'", optarg);
            device = optarg;
            break;
        case O_PRECISION:
            if (strcmp(optarg, "fp16") && strcmp(optarg, "tf32"))
                mm_die_usage("--precision: expected fp16 or tf32, got '%s'", optarg);
            c.tf32 = !strcmp(optarg, "tf32");
            break;
        case 'o': out = optarg; break;
        case 'h': usage(stdout); return 0;
        case 'V': mm_print_version("patch-embed"); return 0;
        default:
            if (mm_common_opt(ch, optarg)) break;
            usage(stderr);
            return MM_EXIT_USAGE;
        }
    }
    if (argc == 1) {
        usage(stderr);
        return MM_EXIT_USAGE;
    }
    if (optind + 1 < argc) mm_die_usage("expected one INPUT, got %d", argc - optind);
    const char *in_path = optind < argc ? argv[optind] : "-";
    if (!c.weights)
        mm_die_usage("--weights: required (a safetensors file, or random:SEED)");
    if (!strcmp(in_path, "-") && isatty(STDIN_FILENO)) {
        usage(stderr);
        return MM_EXIT_USAGE;
    }
    mm_refuse_tty(out);
    c.pargv = mm_argv_provenance(argc, argv, optstring, lopts, &c.pn);
    c.pargv[0] = "patch-embed";
#ifdef _OPENMP
    omp_set_num_threads(mm_threads);
#endif
    if (strcmp(device, "cpu")) {
        char why[256];
        c.gpu = mm_resnet_cuda_available(why, sizeof why);
        if (!c.gpu && !strcmp(device, "cuda")) mm_die("--device cuda: %s", why);
        if (!c.gpu) mm_note(3, "CPU: %s", why);
        if (c.gpu && !batch_set) c.batch = 128;
    }

    mm_resnet *net = mm_resnet_load(c.weights, c.layer);
    if (!net) mm_die("%s", mm_strerror());
    if (!strncmp(c.weights, "random:", 7))
        mm_warn("%s: deterministic random weights, not ImageNet features",
                c.weights);
    mm_slide *slide = NULL;
    if (c.slide_path && !(slide = mm_slide_open(c.slide_path, NULL)))
        mm_die("%s", mm_strerror());
    mm_stream *in = mm_stream_open(in_path, "r");
    if (!in) mm_die("%s", mm_strerror());
    if (c.gpu) {
        /* The GPU runs the network ~2.7x faster than one CPU thread decodes
         * the zstd stream (bench/device.md): decode frames in parallel. */
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        int dec = mm_threads_given ? mm_threads : ncpu > 4 ? 4 : ncpu > 1 ? (int)ncpu : 1;
        mm_stream_set_threads(in, dec);
    }
    g_out = mm_stream_open(out, "w");
    if (!g_out) mm_die("%s", mm_strerror());

    feeder f = {.c = &c, .in = in, .rec = mm_rec_new()};
    pthread_mutex_init(&f.mu, NULL);
    pthread_cond_init(&f.cv, NULL);
    for (int k = 0; k < 2; k++)
        f.b[k].xy = mm_malloc((size_t)c.batch * 2 * sizeof *f.b[k].xy);
    int ret;
    while ((ret = mm_stream_next(in)) == 0) segment(&c, net, in, slide, &f);
    if (ret < -1) mm_die_discard(&g_out, "%s", mm_stream_error(in));
    if (mm_stream_close(in) != 0) mm_die_discard(&g_out, "%s", mm_strerror());
    mm_stream *o = g_out;
    g_out = NULL;
    if (mm_stream_close(o) != 0) mm_die("%s", mm_strerror());
    for (int k = 0; k < 2; k++) {
        free(f.b[k].xy);
        free(f.b[k].x);
        free(f.b[k].u8);
    }
    mm_resnet_cuda_free(g_gpu);
    free(f.rgb);
    free(f.rs);
    mm_rec_free(f.rec);
    pthread_mutex_destroy(&f.mu);
    pthread_cond_destroy(&f.cv);
    mm_slide_close(slide);
    mm_resnet_free(net);
    free(c.pargv);
    return mm_tool_exit(0);
}
