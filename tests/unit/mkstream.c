/* mkstream.c: makes the odd streams the shell tests need (a bad trailer
 * count or digest, an unknown version, a missing trailer) and prints the
 * zstd frame boundaries of a file so a test can cut between frames, and
 * writes synthetic features streams (seq-mask's tests): row i of "f" is
 * i + d / 1024 in column d, so a test can tell which token it holds.
 * A test helper, not installed.
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zstd.h>

#include "mm/stream.h"
#include "mm/zio.h"

static void put(mm_zio *z, const mm_rec *r)
{
    static unsigned char *buf;
    static size_t cap;
    size_t n = mm_val_encode(mm_rec_croot(r), &buf, &cap);
    if (mm_zio_write(z, buf, n) != 0) exit(1);
}

/* features N DIM SLIDE_ID FILE [--no-n]: N tokens in chunks of 4096,
 * xy on a CLAM-like grid (x-major: columns of W = ceil(sqrt(N)) tiles of
 * 256 px), "n" in the header unless --no-n. */
static int features(int argc, char **argv)
{
    long n = atol(argv[2]), dim = atol(argv[3]);
    const char *id = argv[4], *path = argv[5];
    int with_n = !(argc > 6 && !strcmp(argv[6], "--no-n"));
    if (n < 0 || dim < 1) return 2;
    long w = 1;
    while (w * w < n) w++;
    mm_stream *s = mm_stream_open(path, "w");
    if (!s) { fprintf(stderr, "mkstream: %s\n", mm_strerror()); return 1; }
    mm_rec *h = mm_rec_new(), *r = mm_rec_new();
    mm_hdr_init(h, "features", id);
    mm_val *m = mm_hdr_meta(h);
    mm_val_set_int(mm_map_put(h, m, "dim"), dim);
    mm_val_set_str(h, mm_map_put(h, m, "model"), "synthetic");
    mm_val_set_int(mm_map_put(h, m, "patch_size"), 256);
    if (with_n) mm_val_set_int(mm_map_put(h, m, "n"), n);
    int ret = mm_stream_begin(s, h);
    const long step = 4096;
    float *f = malloc((size_t)step * (size_t)dim * sizeof *f);
    int32_t *xy = malloc((size_t)step * 2 * sizeof *xy);
    for (long r0 = 0, chunk = 0; r0 < n && ret == 0; r0 += step, chunk++) {
        long k = n - r0 < step ? n - r0 : step;
        for (long i = 0; i < k; i++) {
            long t = r0 + i;
            for (long d = 0; d < dim; d++) f[i * dim + d] = (float)t + (float)d / 1024.0f;
            xy[2 * i] = (int32_t)(t / w * 256);
            xy[2 * i + 1] = (int32_t)(t % w * 256);
        }
        int64_t fs[2] = {k, dim}, xs[2] = {k, 2};
        mm_rec_clear(r);
        mm_val_set_int(mm_rec_put(r, "chunk"), chunk);
        mm_val_set_nd(r, mm_rec_put(r, "xy"), MM_I32, 2, xs, xy, 0);
        mm_val_set_nd(r, mm_rec_put(r, "f"), MM_F32, 2, fs, f, 0);
        ret = mm_stream_write(s, r);
    }
    if (ret == 0) ret = mm_stream_end(s);
    if (ret != 0 || mm_stream_close(s) != 0) { fprintf(stderr, "mkstream: failed\n"); return 1; }
    free(f);
    free(xy);
    mm_rec_free(h);
    mm_rec_free(r);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 6 && !strcmp(argv[1], "features")) return features(argc, argv);
    if (argc != 3) {
        fprintf(stderr, "Usage: mkstream badcount|baddigest|badversion|notrailer|frames FILE\n"
                        "       mkstream features N DIM SLIDE_ID FILE [--no-n]\n");
        return 2;
    }
    const char *mode = argv[1], *path = argv[2];
    if (!strcmp(mode, "frames")) {
        FILE *fp = fopen(path, "rb");
        if (!fp) return 1;
        fseek(fp, 0, SEEK_END);
        size_t n = (size_t)ftell(fp), at = 0;
        fseek(fp, 0, SEEK_SET);
        unsigned char *p = malloc(n);
        if (fread(p, 1, n, fp) != n) return 1;
        fclose(fp);
        while (at < n) {
            size_t fs = ZSTD_findFrameCompressedSize(p + at, n - at);
            if (ZSTD_isError(fs)) return 1;
            at += fs;
            printf("%zu\n", at);
        }
        free(p);
        return 0;
    }
    mm_zio *z = mm_zio_new(mm_io_open(path, "w"), "w");
    mm_rec *h = mm_rec_new(), *r = mm_rec_new(), *t = mm_rec_new();
    mm_hdr_init(h, "clinical", "odd");
    if (!strcmp(mode, "badversion")) mm_val_set_int(mm_rec_put(h, "mpk"), 2);
    put(z, h);
    for (int i = 0; i < 3; i++) {
        mm_rec_clear(r);
        mm_val_set_int(mm_rec_put(r, "i"), i);
        put(z, r);
    }
    mm_val_set_int(mm_rec_put(t, "mpk_end"), strcmp(mode, "badcount") ? 3 : 4);
    if (!strcmp(mode, "baddigest")) mm_val_set_str(t, mm_rec_put(t, "digest"), "0123456789abcdef");
    if (strcmp(mode, "notrailer")) put(z, t);
    if (mm_zio_close(z) != 0) return 1;
    mm_rec_free(h);
    mm_rec_free(r);
    mm_rec_free(t);
    return 0;
}
