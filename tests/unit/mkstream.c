/* mkstream.c: makes the odd streams the shell tests need (a bad trailer
 * count or digest, an unknown version, a missing trailer) and prints the
 * zstd frame boundaries of a file so a test can cut between frames.
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

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "Usage: mkstream badcount|baddigest|badversion|notrailer|frames FILE\n");
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
