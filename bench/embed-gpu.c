/* embed-gpu.c: the cuDNN patch-embed path end to end, for the device check
 * (bench/device-check.sh) and its tile file (bench/make-device-tiles.sh).
 *
 *   embed-gpu pack SIZE OUT.mpk < raw      raw RGB SIZE x SIZE x 3 tiles
 *                                          (stdin, back to back) -> a
 *                                          "tiles" stream
 *   embed-gpu run TILES.mpk [options]     decode the stream, run the
 *                                          trunk on the GPU, print patches/s
 *     --weights W (random:42)  --layer L (3)  --batch B (256)
 *     --prec fp16|tf32 (fp16)  --repeat R (passes over the file; 1)
 *     --check K (compare the first K tiles with the CPU engine; 0)
 *     --decoders N (threads decoding the stream's zstd frames; 4)
 *
 * "run" prints its rates on stdout as KEY=VALUE lines (easy to grep):
 * decode1_pps and decode_pps (reading and decoding the stream alone, on one
 * thread and on --decoders threads), gpu_pps (one batch
 * already in pinned memory, resubmitted: the network alone) and e2e_pps
 * (a reader thread decodes the stream while the main thread queues each
 * batch and the previous one computes: what patch-embed --device cuda
 * does), and with --check the largest
 * relative difference to the CPU features (max |g - c| / max |c| per tile).
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mm/resnet.h"
#include "mm/resnet_cuda.h"
#include "mm/stream.h"
#include "mm/val.h"

/* A reader's close: nothing was written, so nothing can be lost. */
static void close_in(mm_stream *s)
{
    if (mm_stream_close(s) != 0) fprintf(stderr, "embed-gpu: %s\n", mm_strerror());
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

static int pack(int size, const char *path)
{
    size_t tb = (size_t)size * size * 3;
    uint8_t *buf = malloc(tb);
    mm_stream *s = mm_stream_open(path, "w");
    if (!s) {
        fprintf(stderr, "embed-gpu: %s\n", mm_strerror());
        return 1;
    }
    mm_rec *h = mm_rec_new(), *r = mm_rec_new();
    mm_hdr_init(h, "tiles", "device-check");
    mm_val *m = mm_hdr_meta(h);
    mm_val_set_int(mm_map_put(h, m, "patch_size"), size);
    mm_val_set_str(h, mm_map_put(h, m, "source"), "bench/make-device-tiles.sh");
    int ret = mm_stream_begin(s, h);
    int64_t n = 0;
    while (ret == 0 && fread(buf, 1, tb, stdin) == tb) {
        int64_t shape[3] = {size, size, 3};
        mm_rec_clear(r);
        mm_val_set_int(mm_rec_put(r, "x"), n * size);
        mm_val_set_int(mm_rec_put(r, "y"), 0);
        mm_val_set_nd(r, mm_rec_put(r, "img"), MM_U8, 3, shape, buf, 0);
        ret = mm_stream_write(s, r);
        n++;
    }
    if (ret == 0) ret = mm_stream_end(s);
    if (ret != 0 || mm_stream_close(s) != 0) {
        fprintf(stderr, "embed-gpu: %s: cannot write\n", path);
        return 1;
    }
    fprintf(stderr, "embed-gpu: %s: %lld tiles of %dx%d\n", path, (long long)n, size, size);
    free(buf);
    mm_rec_free(h);
    mm_rec_free(r);
    return 0;
}

/* The tiles reader: the next tile's pixels, across REPEAT passes. */
typedef struct {
    const char *path;
    mm_stream *s;
    mm_rec *r;
    int pass, repeat, size;
    int decoders; /* mm_stream_set_threads */
} reader;

/* @return 1 a tile in DST, 0 the end, -1 an error (message printed). */
static int next_tile(reader *rd, uint8_t *dst)
{
    for (;;) {
        if (!rd->s) {
            if (rd->pass == rd->repeat) return 0;
            rd->pass++;
            if (!(rd->s = mm_stream_open(rd->path, "r"))) {
                fprintf(stderr, "embed-gpu: %s\n", mm_strerror());
                return -1;
            }
            mm_stream_set_threads(rd->s, rd->decoders);
        }
        int64_t ret = mm_stream_read(rd->s, rd->r);
        if (ret == -1) {
            int nx = mm_stream_next(rd->s);
            if (nx == 0) continue;
            if (nx < -1) goto bad;
            close_in(rd->s);
            rd->s = NULL;
            continue;
        }
        if (ret < -1) goto bad;
        mm_nd t;
        const mm_val *img = mm_rec_get(rd->r, "img");
        if (!img || mm_val_nd(img, &t) != 0 || t.dtype != MM_U8 || t.ndim != 3 ||
            t.shape[0] != rd->size || t.shape[1] != rd->size || t.shape[2] != 3) {
            fprintf(stderr, "embed-gpu: %s: a record without a u8 [%d,%d,3] \"img\"\n", rd->path,
                    rd->size, rd->size);
            return -1;
        }
        memcpy(dst, t.data, t.nbytes);
        return 1;
    bad:
        fprintf(stderr, "embed-gpu: %s\n", mm_stream_error(rd->s));
        return -1;
    }
}

/* The end-to-end reader: a thread decodes the stream into a ring of batch
 * buffers while the main thread copies each into the GPU's pinned buffer
 * and queues it (what patch-embed's reader thread does). */
#define NRING 3
typedef struct {
    reader *rd;
    uint8_t *buf[NRING];
    int n[NRING], full[NRING], err;
    size_t tb;
    int batch;
    pthread_mutex_t mu;
    pthread_cond_t cv;
} feeder;

static void *feed(void *arg)
{
    feeder *f = arg;
    for (int k = 0;; k = (k + 1) % NRING) {
        pthread_mutex_lock(&f->mu);
        while (f->full[k]) pthread_cond_wait(&f->cv, &f->mu);
        pthread_mutex_unlock(&f->mu);
        int n = 0, got = 1;
        while (n < f->batch && (got = next_tile(f->rd, f->buf[k] + (size_t)n * f->tb)) == 1) n++;
        pthread_mutex_lock(&f->mu);
        f->n[k] = n;
        f->full[k] = 1;
        if (got < 0) f->err = 1;
        pthread_cond_broadcast(&f->cv);
        pthread_mutex_unlock(&f->mu);
        if (n < f->batch) return NULL; /* the last batch (maybe empty) */
    }
}

/* Size of the first tile in PATH, or -1. */
static int tile_size(const char *path)
{
    reader rd = {path, NULL, mm_rec_new(), 0, 1, 0, 0};
    int size = -1;
    if ((rd.s = mm_stream_open(path, "r"))) {
        rd.pass = 1;
        if (mm_stream_read(rd.s, rd.r) >= 0) {
            mm_nd t;
            const mm_val *img = mm_rec_get(rd.r, "img");
            if (img && mm_val_nd(img, &t) == 0 && t.ndim == 3) size = (int)t.shape[0];
        }
        close_in(rd.s);
    }
    mm_rec_free(rd.r);
    if (size < 0) fprintf(stderr, "embed-gpu: %s: no tile read\n", path);
    return size;
}

static int run(int argc, char **argv)
{
    const char *path = argv[2], *weights = "random:42", *prec_s = "fp16";
    int layer = 3, batch = 256, repeat = 1, check = 0, decoders = 4;
    for (int i = 3; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--weights")) weights = argv[i + 1];
        else if (!strcmp(argv[i], "--layer")) layer = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--batch")) batch = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--repeat")) repeat = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--check")) check = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--prec")) prec_s = argv[i + 1];
        else if (!strcmp(argv[i], "--decoders")) decoders = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "embed-gpu: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    mm_cuda_precision prec = !strcmp(prec_s, "tf32") ? MM_CUDA_TF32 : MM_CUDA_FP16;
    char why[256];
    if (!mm_resnet_cuda_available(why, sizeof why)) {
        fprintf(stderr, "embed-gpu: %s\n", why);
        return 1;
    }
    int size = tile_size(path);
    if (size < 0 || batch < 1 || repeat < 1) return 1;
    mm_resnet *m = mm_resnet_load(weights, layer);
    if (!m) {
        fprintf(stderr, "embed-gpu: %s: %s\n", weights, mm_strerror());
        return 1;
    }
    double t0 = now();
    mm_resnet_cuda *g = mm_resnet_cuda_new_ex(m, batch, size, size, prec);
    if (!g) {
        fprintf(stderr, "embed-gpu: %s\n", mm_strerror());
        mm_resnet_free(m);
        return 1;
    }
    int dim = mm_resnet_cuda_dim(g), rc = 1;
    printf("device=%s\nsetup_s=%.2f\n", mm_resnet_cuda_describe(g), now() - t0);
    size_t tb = (size_t)size * size * 3;
    uint8_t *tiles[2] = {malloc(tb * batch), malloc(tb * batch)};
    float *feats = malloc(sizeof(float) * batch * dim);
    reader rd = {path, NULL, mm_rec_new(), 0, repeat, size, 1};

    /* decode alone: one thread, then the zstd frames on DECODERS threads
     * (what the end-to-end loop below and patch-embed --device cuda use) */
    long nt = 0;
    int got;
    double dt = 0;
    for (int pass = 0; pass < 2; pass++) {
        rd.pass = 0;
        rd.decoders = pass ? decoders : 1;
        nt = 0;
        t0 = now();
        while ((got = next_tile(&rd, tiles[0] + (nt % batch) * tb)) == 1) nt++;
        if (got < 0) goto out;
        dt = now() - t0;
        if (pass == 0) printf("tiles=%ld\ndecode1_pps=%.0f\n", nt, nt / dt);
        else printf("decoders=%d\ndecode_pps=%.0f\n", decoders, nt / dt);
    }

    /* the network alone: the first batch, resubmitted */
    int nb = nt < batch ? (int)nt : batch;
    for (int w = 0; w < 2; w++)
        if (mm_resnet_cuda_forward_u8(g, tiles[0], nb, feats) != 0) goto cuda_err;
    int reps = 20;
    t0 = now();
    for (int i = 0; i < reps; i++) {
        if (mm_resnet_cuda_pending(g) == 2 && mm_resnet_cuda_collect(g, feats) < 0) goto cuda_err;
        if (mm_resnet_cuda_submit(g, tiles[0], nb) != 0) goto cuda_err;
    }
    while (mm_resnet_cuda_pending(g))
        if (mm_resnet_cuda_collect(g, feats) < 0) goto cuda_err;
    dt = now() - t0;
    printf("gpu_pps=%.0f\n", (double)reps * nb / dt);

    /* end to end: a reader thread decodes the next batches while this one
     * is copied to the GPU and computes */
    rd.pass = 0;
    long done = 0, seen = 0;
    double fsum = 0;
    feeder fd = {.rd = &rd, .tb = tb, .batch = batch};
    pthread_mutex_init(&fd.mu, NULL);
    pthread_cond_init(&fd.cv, NULL);
    for (int k = 0; k < NRING; k++) fd.buf[k] = malloc(tb * batch);
    pthread_t th;
    t0 = now();
    if (pthread_create(&th, NULL, feed, &fd) != 0) {
        fprintf(stderr, "embed-gpu: cannot start a thread\n");
        goto out;
    }
    int feed_err = 0, cuda_bad = 0;
    for (int k = 0;; k = (k + 1) % NRING) {
        pthread_mutex_lock(&fd.mu);
        while (!fd.full[k]) pthread_cond_wait(&fd.cv, &fd.mu);
        int n = fd.n[k];
        feed_err = fd.err;
        pthread_mutex_unlock(&fd.mu);
        if (feed_err) break;
        if (n > 0 && !cuda_bad) {
            if (mm_resnet_cuda_pending(g) == 2) {
                int c = mm_resnet_cuda_collect(g, feats);
                if (c < 0) cuda_bad = 1;
                else {
                    done += c;
                    fsum += feats[0];
                }
            }
            if (!cuda_bad && mm_resnet_cuda_submit(g, fd.buf[k], n) != 0) cuda_bad = 1;
            else seen += n;
        }
        pthread_mutex_lock(&fd.mu);
        fd.full[k] = 0;
        pthread_cond_broadcast(&fd.cv);
        pthread_mutex_unlock(&fd.mu);
        if (n < batch) break;
    }
    pthread_join(th, NULL);
    for (int k = 0; k < NRING; k++) free(fd.buf[k]);
    pthread_mutex_destroy(&fd.mu);
    pthread_cond_destroy(&fd.cv);
    if (feed_err) goto out;
    if (cuda_bad) goto cuda_err;
    while (mm_resnet_cuda_pending(g)) {
        int c = mm_resnet_cuda_collect(g, feats);
        if (c < 0) goto cuda_err;
        done += c;
        fsum += feats[0];
    }
    dt = now() - t0;
    printf("e2e_tiles=%ld\ne2e_s=%.3f\ne2e_pps=%.0f\nfeature_checksum=%.6g\n", done, dt,
           done / dt, fsum);
    if (done != seen) {
        fprintf(stderr, "embed-gpu: %ld tiles submitted, %ld collected\n", seen, done);
        goto out;
    }

    if (check > 0) {
        /* the first CHECK tiles through both engines */
        rd.pass = 0;
        rd.repeat = 1;
        int k = 0;
        while (k < check && k < batch && (got = next_tile(&rd, tiles[1] + (size_t)k * tb)) == 1) k++;
        if (rd.s) {
            close_in(rd.s);
            rd.s = NULL;
        }
        float *x = malloc(sizeof(float) * (size_t)k * size * size * 3);
        float *cpu = malloc(sizeof(float) * (size_t)k * dim);
        for (int i = 0; i < k; i++)
            mm_resnet_preprocess(tiles[1] + (size_t)i * tb, size, size,
                                 x + (size_t)i * size * size * 3);
        t0 = now();
        if (mm_resnet_forward(m, k, size, size, x, cpu) != 0) {
            fprintf(stderr, "embed-gpu: CPU engine: %s\n", mm_strerror());
            goto out;
        }
        double cpu_s = now() - t0;
        if (mm_resnet_cuda_forward_u8(g, tiles[1], k, feats) != 0) goto cuda_err;
        double worst = 0;
        for (int i = 0; i < k; i++) {
            double mx = 0, md = 0;
            for (int d = 0; d < dim; d++) {
                double c = cpu[(size_t)i * dim + d], q = feats[(size_t)i * dim + d];
                if (fabs(c) > mx) mx = fabs(c);
                if (fabs(q - c) > md || q != q) md = q != q ? INFINITY : fabs(q - c);
            }
            if (md / (mx > 0 ? mx : 1) > worst) worst = md / (mx > 0 ? mx : 1);
        }
        printf("check_tiles=%d\ncpu_pps=%.1f\nmax_rel_diff=%.3g\n", k, k / cpu_s, worst);
        free(x);
        free(cpu);
    }
    rc = 0;
    goto out;
cuda_err:
    fprintf(stderr, "embed-gpu: %s\n", mm_strerror());
out:
    if (rd.s) close_in(rd.s);
    mm_rec_free(rd.r);
    free(tiles[0]);
    free(tiles[1]);
    free(feats);
    mm_resnet_cuda_free(g);
    mm_resnet_free(m);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc == 4 && !strcmp(argv[1], "pack")) return pack(atoi(argv[2]), argv[3]);
    if (argc >= 3 && !strcmp(argv[1], "run")) return run(argc, argv);
    fprintf(stderr, "Usage: embed-gpu pack SIZE OUT.mpk < raw\n"
                    "       embed-gpu run TILES.mpk [--weights W] [--layer L] [--batch B]\n"
                    "                 [--prec fp16|tf32] [--repeat R] [--check K] [--decoders N]\n");
    return 2;
}
