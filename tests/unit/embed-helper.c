/* embed-helper: what tests/tools/patch-embed.sh needs around patch-embed.
 *   embed-helper tiles OUT SLIDE SIZE COORDS_ONLY ID X Y [X Y ...]
 *       a tiles stream of SIZE x SIZE level-0 tiles read with mm_slide
 *       (wsi-tile's meta keys that patch-embed reads), pixels unless
 *       COORDS_ONLY is 1
 *   embed-helper cmp A B
 *       max |a - b| / max |b| over two features streams (same tiles)
 *   embed-helper ref FEATURES X Y FIXTURE.f32
 *       max |f - ref| / max |ref| and the cosine for tile (X, Y)
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mm/slide.h"
#include "mm/stream.h"

static int die(const char *m)
{
    fprintf(stderr, "embed-helper: %s\n", m);
    return 1;
}

static int tiles(int argc, char **argv)
{
    const char *out = argv[2], *path = argv[3], *id = argv[6];
    int size = atoi(argv[4]), co = atoi(argv[5]), n = (argc - 7) / 2;
    mm_slide *s = mm_slide_open(path, NULL);
    if (!s) return die(mm_strerror());
    mm_stream *o = mm_stream_open(out, "w");
    if (!o) return die(mm_strerror());
    mm_rec *h = mm_rec_new(), *r = mm_rec_new();
    mm_hdr_init(h, "tiles", id);
    mm_val *m = mm_hdr_meta(h);
    mm_val_set_str(h, mm_map_put(h, m, "slide"), path);
    mm_val_set_str(h, mm_map_put(h, m, "slide_digest"), mm_slide_digest(s));
    mm_val_set_int(mm_map_put(h, m, "patch_level"), 0);
    mm_val_set_str(h, mm_map_put(h, m, "resample"), "none");
    mm_val_set_int(mm_map_put(h, m, "patch_size"), size);
    mm_val_set_int(mm_map_put(h, m, "patch_size_level0"), size);
    mm_val_set_int(mm_map_put(h, m, "out_size"), size);
    mm_val_set_int(mm_map_put(h, m, "n"), n);
    if (mm_stream_begin(o, h) != 0) return die(mm_stream_error(o));
    uint8_t *rgb = malloc((size_t)size * size * 3);
    for (int i = 0; i < n; i++) {
        int x = atoi(argv[7 + 2 * i]), y = atoi(argv[8 + 2 * i]);
        mm_rec_clear(r);
        mm_val_set_int(mm_rec_put(r, "x"), x);
        mm_val_set_int(mm_rec_put(r, "y"), y);
        if (!co) {
            if (mm_slide_read_region(s, x, y, 0, size, size, rgb) < 0)
                return die(mm_strerror());
            mm_val_set_nd(r, mm_rec_put(r, "img"), MM_U8, 3,
                          (int64_t[]){size, size, 3}, rgb, 0);
        }
        if (mm_stream_write(o, r) != 0) return die(mm_stream_error(o));
    }
    if (mm_stream_end(o) != 0 || mm_stream_close(o) != 0)
        return die(mm_strerror());
    free(rgb);
    mm_rec_free(h);
    mm_rec_free(r);
    mm_slide_close(s);
    return 0;
}

/* All rows of a features stream: *N rows of *DIM, xy alongside. */
static float *load(const char *path, int64_t *n, int64_t *dim, int32_t **xy)
{
    mm_stream *s = mm_stream_open(path, "r");
    if (!s) return NULL;
    mm_rec *r = mm_rec_new();
    float *f = NULL;
    *n = 0;
    *xy = NULL;
    int ret;
    while ((ret = mm_stream_next(s)) == 0)
        while (mm_stream_read(s, r) >= 0) {
            mm_nd tf, tx;
            if (mm_val_nd(mm_rec_get(r, "f"), &tf) != 0 ||
                mm_val_nd(mm_rec_get(r, "xy"), &tx) != 0)
                return NULL;
            *dim = tf.shape[1];
            f = realloc(f, (size_t)(*n + tf.shape[0]) * *dim * sizeof *f);
            *xy = realloc(*xy, (size_t)(*n + tf.shape[0]) * 2 * sizeof **xy);
            mm_nd_get_f32(&tf, f + *n * *dim);
            memcpy(*xy + 2 * *n, tx.data, tx.nbytes);
            *n += tf.shape[0];
        }
    mm_rec_free(r);
    if (mm_stream_close(s) != 0) return NULL;
    return f;
}

int main(int argc, char **argv)
{
    if (argc >= 7 && !strcmp(argv[1], "tiles")) return tiles(argc, argv);
    if (argc == 4 && !strcmp(argv[1], "cmp")) {
        int64_t na, nb, da = 0, db = 0;
        int32_t *xa, *xb;
        float *a = load(argv[2], &na, &da, &xa), *b = load(argv[3], &nb, &db, &xb);
        if (!a || !b) return die(mm_strerror());
        if (na != nb || da != db || memcmp(xa, xb, (size_t)na * 8))
            return die("different tiles");
        double md = 0, mb = 0;
        for (int64_t i = 0; i < na * da; i++) {
            md = fmax(md, fabs((double)a[i] - b[i]));
            mb = fmax(mb, fabs((double)b[i]));
        }
        printf("%.3g\n", md / mb);
        free(a), free(b), free(xa), free(xb);
        return 0;
    }
    if (argc == 6 && !strcmp(argv[1], "ref")) {
        int64_t n, d = 0;
        int32_t *xy;
        float *f = load(argv[2], &n, &d, &xy);
        if (!f) return die(mm_strerror());
        int x = atoi(argv[3]), y = atoi(argv[4]);
        float *ref = malloc(d * sizeof *ref);
        FILE *fp = fopen(argv[5], "rb");
        if (!fp || fread(ref, sizeof *ref, d, fp) != (size_t)d) return die("fixture");
        fclose(fp);
        for (int64_t i = 0; i < n; i++)
            if (xy[2 * i] == x && xy[2 * i + 1] == y) {
                double md = 0, mb = 0, ab = 0, aa = 0, bb = 0;
                const float *a = f + i * d;
                for (int64_t j = 0; j < d; j++) {
                    md = fmax(md, fabs((double)a[j] - ref[j]));
                    mb = fmax(mb, fabs((double)ref[j]));
                    ab += (double)a[j] * ref[j];
                    aa += (double)a[j] * a[j];
                    bb += (double)ref[j] * ref[j];
                }
                printf("%.3g %.9f\n", md / mb, ab / sqrt(aa * bb));
                free(f), free(xy), free(ref);
                return 0;
            }
        return die("no such tile");
    }
    return die("usage: tiles OUT SLIDE SIZE COORDS_ONLY ID X Y ... | cmp A B | ref F X Y FIX");
}
