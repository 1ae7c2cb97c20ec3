/* t-resnet: the ResNet-50 trunk (mm/resnet.h) against torchvision.
 *
 * tests/fixtures/resnet/ holds torchvision's features (tests/gen/
 * resnet_ref.py, random:42 weights rebuilt in numpy) of real tiles of
 * CMU-1-Small-Region.svs at fixed coordinates; the tiles are read here at
 * run time with our slide reader. Per vector: max |ours - torch| /
 * max |torch| < 1e-4 and cosine > 0.99999. Also: a batch equals its tiles
 * one by one, the same weights through a safetensors file in torchvision's
 * key layout, and bad weights files give one-line errors.
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mm/resnet.h"
#include "mm/safetensors.h"
#include "mm/slide.h"
#include "../tap.h"
#include "../fixture.h"

static char fix_dir[4096], dir[] = "/tmp/t-resnet.XXXXXX";

typedef struct {
    char name[16];
    int layer, size, resize, x, y;
} tcase;

/* max |a - b| / max |b| and the cosine of A and B */
static void compare(const float *a, const float *b, int n, double *rel,
                    double *cosv)
{
    double md = 0, mb = 0, ab = 0, aa = 0, bb = 0;
    for (int i = 0; i < n; i++) {
        md = fmax(md, fabs((double)a[i] - b[i]));
        mb = fmax(mb, fabs((double)b[i]));
        ab += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
    }
    *rel = mb > 0 ? md / mb : md;
    *cosv = ab / sqrt(aa * bb);
}

static int read_f32(const char *name, float *dst, int n)
{
    char p[4200];
    snprintf(p, sizeof p, "%s/%s.f32", fix_dir, name);
    FILE *f = fopen(p, "rb");
    if (!f) return -1;
    size_t got = fread(dst, sizeof *dst, n, f);
    fclose(f);
    return got == (size_t)n ? 0 : -1;
}

/* The preprocessed input of case C (resized as torchvision when asked):
 * returns (side, side, 3) floats, *SIDE set. */
static float *case_input(mm_slide *s, const tcase *c, int *side)
{
    uint8_t *rgb = malloc((size_t)c->size * c->size * 3);
    if (mm_slide_read_region(s, c->x, c->y, 0, c->size, c->size, rgb) < 0) {
        diag("%s", mm_strerror());
        free(rgb);
        return NULL;
    }
    int h = c->size, w = c->size;
    if (c->resize) {
        mm_resnet_resize_size(h, w, c->resize, &h, &w);
        uint8_t *r = malloc((size_t)h * w * 3);
        mm_resnet_resize(rgb, c->size, c->size, h, w, r);
        free(rgb);
        rgb = r;
    }
    float *x = malloc((size_t)h * w * 3 * sizeof *x);
    mm_resnet_preprocess(rgb, h, w, x);
    free(rgb);
    *side = h;
    return x;
}

static void test_parity(mm_slide *s, mm_resnet *m3, mm_resnet *m4)
{
    char p[4200];
    snprintf(p, sizeof p, "%s/cases.txt", fix_dir);
    FILE *f = fopen(p, "r");
    if (!ok(f != NULL, "open %s", p)) return;
    tcase c;
    float *b3 = NULL; /* the 256x256 layer-3 tiles as one batch */
    float *f3 = NULL;
    int nb = 0;
    while (fscanf(f, "%15s %d %d %d %d %d", c.name, &c.layer, &c.size,
                  &c.resize, &c.x, &c.y) == 6) {
        mm_resnet *m = c.layer == 3 ? m3 : m4;
        int dim = mm_resnet_dim(m), side = 0;
        float *want = malloc(dim * sizeof *want), got[2048];
        ok(read_f32(c.name, want, dim) == 0, "%s: fixture", c.name);
        float *x = case_input(s, &c, &side);
        if (!ok(x != NULL, "%s: read the tile", c.name)) {
            free(want);
            continue;
        }
        ok(mm_resnet_forward(m, 1, side, side, x, got) == 0, "%s: forward",
           c.name);
        double rel, cs;
        compare(got, want, dim, &rel, &cs);
        ok(rel < 1e-4, "%s (layer %d, %d%s): max|ours-torch|/max|torch| %.3g",
           c.name, c.layer, c.size, c.resize ? ", resize 224" : "", rel);
        ok(cs > 0.99999, "%s: cosine %.9f", c.name, cs);
        if (c.layer == 3 && c.size == 256 && !c.resize) {
            size_t px = (size_t)256 * 256 * 3;
            b3 = realloc(b3, (nb + 1) * px * sizeof *b3);
            f3 = realloc(f3, (nb + 1) * (size_t)dim * sizeof *f3);
            memcpy(b3 + nb * px, x, px * sizeof *x);
            memcpy(f3 + (size_t)nb * dim, got, dim * sizeof *got);
            nb++;
        }
        free(x);
        free(want);
    }
    fclose(f);
    ok(nb >= 2, "%d layer-3 tiles for the batch test", nb);
    float *fb = malloc((size_t)nb * 1024 * sizeof *fb);
    ok(mm_resnet_forward(m3, nb, 256, 256, b3, fb) == 0, "batch forward");
    double worst = 0;
    for (int i = 0; i < nb; i++) {
        double rel, cs;
        compare(fb + (size_t)i * 1024, f3 + (size_t)i * 1024, 1024, &rel, &cs);
        worst = fmax(worst, rel);
    }
    ok(worst < 1e-6, "a batch of %d equals the tiles one by one (%.3g)", nb,
       worst);
    free(fb);
    free(b3);
    free(f3);
}

/* Write M's network to PATH in torchvision's layout: the folded weight as
 * the conv weight and an identity BatchNorm holding the folded bias
 * (running_var 1 - eps, so that folding scales by exactly 1), plus keys a
 * loader must ignore. SKIP: a key left out; BAD: a key given a wrong
 * shape. */
static int write_st(const mm_resnet *m, const char *path, const char *skip,
                    const char *bad)
{
    mm_st_writer *w = mm_st_create(path);
    if (!w) return -1;
    int n = mm_resnet_n_convs(m);
    float *ones = malloc(2048 * sizeof *ones), *zeros = calloc(2048, sizeof *zeros),
          *var = malloc(2048 * sizeof *var);
    for (int i = 0; i < 2048; i++) {
        ones[i] = 1;
        var[i] = 1 - 1e-5f;
    }
    static const int64_t nbt = 7;
    static float fc[10] = {0};
    mm_st_add(w, "fc.weight", MM_F32, 2, (int64_t[]){2, 5}, fc);
    mm_st_add(w, "bn1.num_batches_tracked", MM_I64, 0, NULL, &nbt);
    char key[96], bn[64];
    for (int i = 0; i < n; i++) {
        const mm_resnet_conv *c = mm_resnet_conv_at(m, i);
        const char *nm = c->name;
        if (!strcmp(nm, "conv1"))
            snprintf(bn, sizeof bn, "bn1");
        else if (strstr(nm, "downsample"))
            snprintf(bn, sizeof bn, "%.*s1", (int)strlen(nm) - 1, nm);
        else
            snprintf(bn, sizeof bn, "%.*sbn%s", (int)strlen(nm) - 5, nm,
                     nm + strlen(nm) - 1);
        int64_t ws[4] = {c->cout, c->cin, c->k, c->k}, bs[1] = {c->cout};
        snprintf(key, sizeof key, "%s.weight", nm);
        if (bad && !strcmp(key, bad)) {
            static const float wrong[3];
            mm_st_add(w, key, MM_F32, 4, (int64_t[]){1, 1, 1, 3}, wrong);
        } else if (!skip || strcmp(key, skip)) {
            mm_st_add(w, key, MM_F32, 4, ws, c->w);
        }
        const float *vec[4] = {ones, c->b, zeros, var};
        static const char *const nm4[4] = {"weight", "bias", "running_mean",
                                           "running_var"};
        for (int j = 0; j < 4; j++) {
            snprintf(key, sizeof key, "%s.%s", bn, nm4[j]);
            mm_st_add(w, key, MM_F32, 1, bs, vec[j]);
        }
    }
    int rc = mm_st_write_close(w);
    free(ones);
    free(zeros);
    free(var);
    return rc;
}

static void test_safetensors(mm_resnet *m3)
{
    char path[256];
    snprintf(path, sizeof path, "%s/w.safetensors", dir);
    if (!ok(write_st(m3, path, NULL, NULL) == 0, "write %s", path)) return;
    mm_resnet *m = mm_resnet_load(path, 3);
    if (!ok(m != NULL, "load it: %s", m ? "" : mm_strerror())) return;
    like(mm_resnet_digest(m), "sha256:", "digest of a file is its SHA-256");
    is_int(strlen(mm_resnet_digest(m)), 7 + 64, "64 hex digits");
    /* a 64x64 input exercises the partial Winograd tiles (16 -> 4x4) */
    int h = 96, w = 80;
    float *x = malloc((size_t)2 * h * w * 3 * sizeof *x);
    for (int i = 0; i < 2 * h * w * 3; i++) x[i] = (float)sin(i * 0.01);
    float a[2 * 1024], b[2 * 1024];
    ok(mm_resnet_forward(m3, 2, h, w, x, a) == 0 &&
           mm_resnet_forward(m, 2, h, w, x, b) == 0,
       "forward 2 x %d x %d", h, w);
    double rel, cs;
    compare(b, a, 2048, &rel, &cs);
    ok(rel < 1e-6, "safetensors weights give random:42's features (%.3g)",
       rel);
    mm_resnet_free(m);
    free(x);
    /* layer 4 from a layer-3 file: layer4.* missing */
    m = mm_resnet_load(path, 4);
    ok(m == NULL, "layer 4 needs layer4.*");
    like(mm_strerror(), "layer4.0.conv1.weight", "names the missing key: %s",
         mm_strerror());
    mm_resnet_free(m);

    snprintf(path, sizeof path, "%s/missing.safetensors", dir);
    ok(write_st(m3, path, "layer2.1.conv2.weight", NULL) == 0, "write missing");
    m = mm_resnet_load(path, 3);
    ok(m == NULL, "missing key refused");
    like(mm_strerror(), "layer2.1.conv2.weight", "%s", mm_strerror());
    ok(strchr(mm_strerror(), '\n') == NULL, "one line");
    mm_resnet_free(m);

    snprintf(path, sizeof path, "%s/shape.safetensors", dir);
    ok(write_st(m3, path, NULL, "layer1.0.conv1.weight") == 0, "write shape");
    m = mm_resnet_load(path, 3);
    ok(m == NULL, "wrong shape refused");
    like(mm_strerror(), "shape [1, 1, 1, 3], expected [64, 64, 1, 1]", "%s",
         mm_strerror());
    mm_resnet_free(m);

    snprintf(path, sizeof path, "%s/text.safetensors", dir);
    FILE *f = fopen(path, "w");
    fputs("conv1.weight,1,2,3\n", f);
    fclose(f);
    m = mm_resnet_load(path, 3);
    ok(m == NULL, "a text file refused");
    like(mm_strerror(), "not a safetensors file", "%s", mm_strerror());
    mm_resnet_free(m);

    m = mm_resnet_load("random:x1", 3);
    ok(m == NULL, "bad seed refused");
    like(mm_strerror(), "bad seed", "%s", mm_strerror());
    m = mm_resnet_load("random:1", 5);
    ok(m == NULL, "layer 5 refused");
    snprintf(path, sizeof path, "%s/nonexistent", dir);
    m = mm_resnet_load(path, 3);
    ok(m == NULL, "missing file refused");
    like(mm_strerror(), "nonexistent", "%s", mm_strerror());
}

static void test_shape(mm_resnet *m3, mm_resnet *m4)
{
    is_int(mm_resnet_dim(m3), 1024, "layer 3: 1024-d");
    is_int(mm_resnet_dim(m4), 2048, "layer 4: 2048-d");
    is_int(mm_resnet_n_convs(m3), 43, "layer 3: 43 convolutions");
    is_int(mm_resnet_n_convs(m4), 53, "layer 4: 53 convolutions");
    is_str(mm_resnet_digest(m3), "random:42", "digest of random weights");
    const mm_resnet_conv *c = mm_resnet_conv_at(m3, 0);
    ok(c && !strcmp(c->name, "conv1") && c->k == 7 && c->stride == 2 &&
           c->pad == 3 && c->cin == 3 && c->cout == 64 && c->relu,
       "conv 0 is the stem");
    c = mm_resnet_conv_at(m3, 4);
    ok(c && !strcmp(c->name, "layer1.0.downsample.0") && c->k == 1 &&
           c->cin == 64 && c->cout == 256 && !c->relu,
       "conv 4 is layer1.0's downsample");
    c = mm_resnet_conv_at(m3, 6);
    ok(c && !strcmp(c->name, "layer1.1.conv2") && c->k == 3 && c->pad == 1,
       "conv 6 is layer1.1.conv2");
    c = mm_resnet_conv_at(m4, 44);
    ok(c && !strcmp(c->name, "layer4.0.conv2") && c->stride == 2,
       "conv 44 is layer4.0.conv2 (stride 2)");
    ok(mm_resnet_conv_at(m3, 43) == NULL, "no conv 43 at layer 3");
    float x[3 * 16 * 16] = {0}, o[1024];
    ok(mm_resnet_forward(m3, 1, 16, 16, x, o) == -1, "16x16 refused");
    /* torchvision Resize(224): shorter side 224 */
    int h, w;
    mm_resnet_resize_size(256, 300, 224, &h, &w);
    ok(h == 224 && w == 262, "Resize(224) of 256x300 is 224x262 (%dx%d)", h,
       w);
    /* a constant image stays constant; an identity resize copies */
    uint8_t in[8 * 8 * 3], out[8 * 8 * 3];
    memset(in, 77, sizeof in);
    mm_resnet_resize(in, 8, 8, 5, 5, out);
    int same = 1;
    for (int i = 0; i < 5 * 5 * 3; i++) same &= out[i] == 77;
    ok(same, "resize of a constant image");
}

int main(void)
{
    if (!mkdtemp(dir)) return 99;
    const char *top = getenv("top_srcdir");
    snprintf(fix_dir, sizeof fix_dir, "%s/tests/fixtures/resnet",
             top && *top ? top : ".");
    mm_resnet *m3 = mm_resnet_load("random:42", 3);
    mm_resnet *m4 = mm_resnet_load("random:42", 4);
    if (!m3 || !m4) {
        printf("Bail out! random weights: %s\n", mm_strerror());
        return 1;
    }
    test_shape(m3, m4);
    test_safetensors(m3);
    if (data_has("wsi/CMU-1-Small-Region.svs", "parity with torchvision")) {
        const char *sp = data_path("wsi/CMU-1-Small-Region.svs");
        mm_slide *s = mm_slide_open(sp, NULL);
        if (ok(s != NULL, "open %s", sp)) test_parity(s, m3, m4);
        mm_slide_close(s);
    }
    mm_resnet_free(m3);
    mm_resnet_free(m4);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) diag("could not remove %s", dir);
    return done_testing();
}
