/* stream-bench: throughput of the mpk stream library (mm/stream.h) on
 * realistic records: ResNet-like feature chunks, H&E-like RGB tiles and
 * omics expression vectors. `write` makes a stream of about N MB of record
 * payload, `read` reads one back; each prints one line of numbers, which
 * bench/stream.sh sets against bench/stream_anchor.py (Python zstandard).
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mm/stream.h"
#include "mm/val.h"

/* The data are a pure function of (stream, index) through splitmix64's
 * mixer, with float32 arithmetic that involves no libm call, so
 * bench/stream_anchor.py generates the same bytes with numpy. Keep the
 * two in step. */
#define FEAT_DIM 1024
#define FEAT_ROWS 256          /* rows per features chunk record */
#define FEAT_POOL_CHUNKS 32    /* 32 MiB of distinct features, cycled */
#define FEAT_SEG_CHUNKS 32     /* chunks per segment (a slide of 8192 tiles) */
#define TILE_SIZE 256
#define TILE_BYTES (TILE_SIZE * TILE_SIZE * 3)
#define TILE_POOL 64           /* 12 MiB of distinct tiles, cycled */
#define TILE_SEG 512           /* tiles per segment */
#define OMICS_GENES 20000
#define OMICS_POOL 256         /* 20 MiB of distinct samples, cycled */
#define GRID_W 200             /* tiles per row of the fake slide */

static uint64_t hash64(uint64_t sid, uint64_t i)
{
    uint64_t z = ((sid << 48) ^ i) * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Irwin-Hall of three 21-bit uniforms: about N(0, 0.5) on [-1.5, 1.5),
 * computed exactly in float32. */
static float bell(uint64_t h)
{
    float a = (float)(h >> 43), b = (float)((h >> 22) & 0x1FFFFF),
          c = (float)((h >> 1) & 0x1FFFFF);
    return (a + b + c) * 0x1p-21f - 1.5f;
}

/* [FEAT_POOL_CHUNKS * FEAT_ROWS][FEAT_DIM]: nonnegative and skewed like
 * average-pooled ResNet features: the square of a ReLU of an affine bell
 * per dimension (about 1 in 6 exactly zero, many more near it). */
static float *gen_features(void)
{
    size_t rows = (size_t)FEAT_POOL_CHUNKS * FEAT_ROWS;
    float *f = malloc(rows * FEAT_DIM * sizeof *f);
    float s[FEAT_DIM], b[FEAT_DIM];
    if (!f) return NULL;
    for (int d = 0; d < FEAT_DIM; d++) {
        uint64_t h = hash64(2, (uint64_t)d);
        s[d] = 0.2f + (float)(h >> 40) * 0x1p-24f;
        b[d] = (float)((h >> 8) & 0xFFFF) * 0x1p-16f * 0.4f + 0.1f;
    }
    for (size_t r = 0; r < rows; r++)
        for (int d = 0; d < FEAT_DIM; d++) {
            float x = bell(hash64(1, r * FEAT_DIM + (uint64_t)d)) * s[d] + b[d];
            f[r * FEAT_DIM + (size_t)d] = x > 0.0f ? x * x : 0.0f;
        }
    return f;
}

/* Triangle wave of period 512: |v mod 512 - 256|. */
static int tri(int64_t v)
{
    int u = (int)(v & 511) - 256;
    return u < 0 ? -u : u;
}

/* [TILE_POOL][256][256][3]: smooth H&E-like colour fields over a near-white
 * background, with a little per-pixel noise. Integers only. */
static uint8_t *gen_tiles(void)
{
    static const int base[3] = {220, 140, 200}, w[3] = {2, 2, 1};
    uint8_t *t = malloc((size_t)TILE_POOL * TILE_BYTES);
    if (!t) return NULL;
    for (int p = 0; p < TILE_POOL; p++) {
        uint64_t h = hash64(3, (uint64_t)p);
        int64_t ox = (int64_t)(h & 511), oy = (int64_t)((h >> 9) & 511),
                fx = 1 + (int64_t)((h >> 18) & 3), fy = 1 + (int64_t)((h >> 20) & 3);
        for (int i = 0; i < TILE_SIZE; i++)
            for (int j = 0; j < TILE_SIZE; j++) {
                int s = tri(i * fx + ox) + tri(j * fy + oy);
                for (int c = 0; c < 3; c++) {
                    size_t k = (((size_t)p * TILE_SIZE + (size_t)i) * TILE_SIZE +
                                (size_t)j) * 3 + (size_t)c;
                    uint64_t n = hash64(4, k);
                    int v;
                    if (s >= 300) {
                        v = 236 + (int)(n & 3);
                    } else {
                        v = base[c] - s * w[c] / 8 + (int)(n & 7) - 4;
                        v = v < 0 ? 0 : v > 255 ? 255 : v;
                    }
                    t[k] = (uint8_t)v;
                }
            }
    }
    return t;
}

/* [OMICS_POOL][OMICS_GENES]: log-expression-like values, a gene mean plus
 * sample noise, clipped at zero (unexpressed genes). */
static float *gen_omics(void)
{
    float *v = malloc((size_t)OMICS_POOL * OMICS_GENES * sizeof *v);
    float *mu = malloc(OMICS_GENES * sizeof *mu), *sd = malloc(OMICS_GENES * sizeof *sd);
    if (!v || !mu || !sd) {
        free(v);
        free(mu);
        free(sd);
        return NULL;
    }
    for (int g = 0; g < OMICS_GENES; g++) {
        uint64_t h = hash64(5, (uint64_t)g);
        mu[g] = (float)(h >> 40) * 0x1p-24f * 14.0f - 3.0f;
        sd[g] = 0.3f + (float)((h >> 8) & 0xFFFF) * 0x1p-16f;
    }
    for (size_t s = 0; s < OMICS_POOL; s++)
        for (int g = 0; g < OMICS_GENES; g++) {
            float x = mu[g] + bell(hash64(6, s * OMICS_GENES + (uint64_t)g)) * sd[g] * 2.0f;
            v[s * OMICS_GENES + (size_t)g] = x > 0.0f ? x : 0.0f;
        }
    free(mu);
    free(sd);
    return v;
}

/* Where read puts the sum of the values it touched, so none is skipped. */
static volatile double sink;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void print_line(const char *mode, const char *kind, const char *level,
                       int64_t nrec, uint64_t data_bytes, uint64_t comp_bytes,
                       double sec)
{
    double data = (double)data_bytes / 1e6, comp = (double)comp_bytes / 1e6;
    printf("%s %s %s %lld %.2f %.2f %.3f %.1f\n", mode, kind, level,
           (long long)nrec, data, comp, sec, sec > 0 ? data / sec : 0.0);
}

/* The library's messages name the file already. */
static int fail(mm_stream *s)
{
    fprintf(stderr, "stream-bench: %s\n", s ? mm_stream_error(s) : mm_strerror());
    return 1;
}

static void header(mm_rec *h, const char *kind, const char *id, int64_t n)
{
    static char *argv[] = {(char *)"stream-bench"};
    mm_hdr_init(h, kind, id);
    mm_hdr_set_tool(h, "stream-bench", 1, argv);
    mm_val *m = mm_hdr_meta(h);
    mm_val_set_int(mm_map_put(h, m, "n"), n);
}

static int do_write(const char *path, const char *kind, double mb, int level)
{
    float *feat = NULL, *om = NULL;
    uint8_t *tiles = NULL;
    size_t rec_bytes;
    int64_t seg_len;
    if (!strcmp(kind, "features")) {
        feat = gen_features();
        rec_bytes = (size_t)FEAT_ROWS * (FEAT_DIM * 4 + 8);
        seg_len = FEAT_SEG_CHUNKS;
    } else if (!strcmp(kind, "tiles")) {
        tiles = gen_tiles();
        rec_bytes = TILE_BYTES;
        seg_len = TILE_SEG;
    } else if (!strcmp(kind, "omics")) {
        om = gen_omics();
        rec_bytes = OMICS_GENES * 4;
        seg_len = INT64_MAX;
    } else {
        fprintf(stderr, "stream-bench: unknown kind '%s'\n", kind);
        return 2;
    }
    if (!feat && !tiles && !om) {
        fprintf(stderr, "stream-bench: out of memory\n");
        return 1;
    }
    int64_t nrec = (int64_t)(mb * 1e6 / (double)rec_bytes + 0.999);
    if (nrec < 1) nrec = 1;
    int32_t xy[FEAT_ROWS * 2];
    char id[64];
    mm_rec *h = mm_rec_new(), *r = mm_rec_new();
    int ret = 1;

    double t0 = now();
    mm_stream *s = mm_stream_open(path, "w");
    if (!s) {
        ret = fail(NULL);
        goto out;
    }
    if (level > 0) mm_stream_set_level(s, level);
    for (int64_t i = 0, seg = 0; i < nrec; seg++) {
        int64_t n = nrec - i < seg_len ? nrec - i : seg_len;
        snprintf(id, sizeof id, "%s-%04lld", om ? "cohort" : "slide", (long long)seg);
        header(h, kind, id, feat ? n * FEAT_ROWS : n);
        if (om) {  /* the gene ids, as a real omics header carries them */
            mm_val *a = mm_map_put(h, mm_hdr_meta(h), "features");
            mm_val_set_array(a);
            for (int g = 0; g < OMICS_GENES; g++) {
                char gid[16];
                snprintf(gid, sizeof gid, "G%05d", g);
                mm_val_set_str(h, mm_array_push(h, a), gid);
            }
        }
        if (mm_stream_begin(s, h) != 0) goto werr;
        for (int64_t j = 0; j < n; j++, i++) {
            mm_rec_clear(r);
            if (feat) {
                for (int k = 0; k < FEAT_ROWS; k++) {
                    int64_t t = j * FEAT_ROWS + k;
                    xy[2 * k] = (int32_t)(t % GRID_W * 512);
                    xy[2 * k + 1] = (int32_t)(t / GRID_W * 512);
                }
                int64_t sxy[2] = {FEAT_ROWS, 2}, sf[2] = {FEAT_ROWS, FEAT_DIM};
                mm_val_set_nd(r, mm_rec_put(r, "xy"), MM_I32, 2, sxy, xy, 0);
                mm_val_set_nd(r, mm_rec_put(r, "f"), MM_F32, 2, sf,
                              feat + (size_t)(i % FEAT_POOL_CHUNKS) * FEAT_ROWS * FEAT_DIM, 0);
            } else if (tiles) {
                int64_t shape[3] = {TILE_SIZE, TILE_SIZE, 3};
                mm_val_set_int(mm_rec_put(r, "x"), j % GRID_W * TILE_SIZE);
                mm_val_set_int(mm_rec_put(r, "y"), j / GRID_W * TILE_SIZE);
                mm_val_set_nd(r, mm_rec_put(r, "img"), MM_U8, 3, shape,
                              tiles + (size_t)(i % TILE_POOL) * TILE_BYTES, 0);
            } else {
                int64_t shape[1] = {OMICS_GENES};
                char sid[32];
                snprintf(sid, sizeof sid, "S%05lld", (long long)i);
                mm_val_set_str(r, mm_rec_put(r, "id"), sid);
                mm_val_set_nd(r, mm_rec_put(r, "v"), MM_F32, 1, shape,
                              om + (size_t)(i % OMICS_POOL) * OMICS_GENES, 0);
            }
            if (mm_stream_write(s, r) != 0) goto werr;
        }
        if (mm_stream_end(s) != 0) goto werr;
    }
    /* every frame is ended: the byte counts are final, and they live on
     * the handle, so take them before closing */
    uint64_t data = mm_stream_data_bytes(s), comp = mm_stream_raw_bytes(s);
    if (mm_stream_close(s) != 0) {
        ret = fail(NULL);
        goto out;
    }
    char lv[16];
    snprintf(lv, sizeof lv, "%d", level > 0 ? level : mm_stream_level(kind));
    print_line("write", kind, lv, nrec, data, comp, now() - t0);
    ret = 0;
    goto out;
werr:
    ret = fail(s);
    mm_stream_discard(s);
out:
    mm_rec_free(h);
    mm_rec_free(r);
    free(feat);
    free(tiles);
    free(om);
    return ret;
}

static int do_read(const char *path, int threads)
{
    mm_rec *r = mm_rec_new();
    char kind[32] = "?";
    int64_t nrec = 0, ret;
    double sum = 0;
    double t0 = now();
    mm_stream *s = mm_stream_open(path, "r");
    if (!s) {
        mm_rec_free(r);
        return fail(NULL);
    }
    mm_stream_set_threads(s, threads);
    while ((ret = mm_stream_next(s)) == 0) {
        if (nrec == 0) snprintf(kind, sizeof kind, "%s", mm_hdr_kind(mm_stream_header(s)));
        while ((ret = mm_stream_read(s, r)) >= 0) {
            const mm_val *root = mm_rec_croot(r);
            for (size_t i = 0; i < root->u.m.n; i++) {
                const mm_val *v = &root->u.m.kv[i].v;
                mm_nd t;
                double x;
                if (mm_val_is_nd(v)) {
                    if (mm_val_nd(v, &t) != 0) {
                        fprintf(stderr, "stream-bench: %s: bad tensor\n", path);
                        mm_stream_discard(s);
                        mm_rec_free(r);
                        return 1;
                    }
                    if (t.count)
                        sum += mm_nd_at(&t, 0) + mm_nd_at(&t, t.count / 2) +
                               mm_nd_at(&t, t.count - 1);
                } else if (mm_val_num(v, &x) == 0) {
                    sum += x;
                }
            }
            nrec++;
        }
        if (ret < -1) break;
    }
    double sec = now() - t0;
    if (ret < -1) {
        int rc = fail(s);
        mm_stream_discard(s);
        mm_rec_free(r);
        return rc;
    }
    print_line("read", kind, "-", nrec, mm_stream_data_bytes(s),
               mm_stream_raw_bytes(s), sec);
    sink = sum;
    int rc = mm_stream_close(s) != 0 ? fail(NULL) : 0;
    mm_rec_free(r);
    return rc;
}

static void usage(FILE *fp)
{
    fprintf(fp,
"Usage: stream-bench write FILE --mb N --kind features|tiles|omics [--level L]\n"
"       stream-bench read FILE [--threads N]\n"
"\n"
"Prints: mode kind level records data_MB compressed_MB seconds MB/s\n"
"(MB = 10^6 bytes; data = decompressed msgpack bytes; MB/s = data/seconds).\n"
"--threads N: decode the zstd frames on N threads (mm_stream_set_threads).\n");
}

int main(int argc, char **argv)
{
    if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        usage(stdout);
        return 0;
    }
    if (argc < 3) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "read") && argc == 3) return do_read(argv[2], 0);
    if (!strcmp(argv[1], "read") && argc == 5 && !strcmp(argv[3], "--threads"))
        return do_read(argv[2], atoi(argv[4]));
    if (strcmp(argv[1], "write") != 0) {
        usage(stderr);
        return 2;
    }
    double mb = 64;
    const char *kind = NULL;
    int level = 0;
    for (int i = 3; i < argc; i++) {
        if (i + 1 < argc && !strcmp(argv[i], "--mb")) mb = atof(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--kind")) kind = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--level")) level = atoi(argv[++i]);
        else {
            usage(stderr);
            return 2;
        }
    }
    if (!kind || mb <= 0) {
        usage(stderr);
        return 2;
    }
    return do_write(argv[2], kind, mb, level);
}
