/* t-clam.c: CLAM's segmentTissue + process_contour on real slides, ours
 * against tests/gen/clam_ref.py's (Debian python3-opencv 4.6 and
 * python3-openslide over OpenSlide 3.4.1): the segmentation level read
 * with mm_slide_read_region equals openslide-python's read_region (same
 * decoder, so exact), the closed mask (fixed threshold and Otsu), the kept
 * contours at level 0 and every tile coordinate in CLAM's order, for
 * CLAM's a_t/a_h (100/16, tcga 16/4, which keep nothing on these small
 * crops) and a_t = 1 reference patch. CMU-1-Small-Region.svs is segmented
 * at level 0 (one level), its pyramidal TIFF copy at the best level for a
 * downsample of 64. Skipped without $MMPATH_TEST_DATA.
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mm/slide.h"
#include "mm/tissue.h"
#include "../tap.h"

/* clam_ref.py's digest */
static uint64_t digest_u8(const uint8_t *a, int64_t n)
{
    uint64_t s = 0;
    for (int64_t i = 0; i < n; i++)
        s += (uint64_t)(a[i] + 1) * ((uint64_t)i * UINT64_C(0x9E3779B97F4A7C15) + 1);
    return s;
}

static uint64_t digest_poly(const mm_poly *p)
{
    uint64_t s = 0;
    for (int64_t i = 0; i < 2 * p->n; i++) {
        int64_t v = (i & 1 ? p->p[i / 2].y : p->p[i / 2].x) + ((int64_t)1 << 31);
        s += ((uint64_t)v + 1) * ((uint64_t)i * UINT64_C(0x9E3779B97F4A7C15) + 1);
    }
    return s;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    b[fread(b, 1, (size_t)n, f)] = 0;
    fclose(f);
    return b;
}

/* the next line that is not a comment; NULL at the end */
static char *next_line(char **cur)
{
    while (*cur && **cur) {
        char *s = *cur, *e = strchr(s, '\n');
        if (e) *e++ = 0;
        *cur = e;
        if (*s && *s != '#') return s;
    }
    return NULL;
}

static int starts_with_ntiles(const char *l)
{
    return !strncmp(l, "ntiles ", 7);
}

static void run_slide(const char *data, const char *fixture)
{
    char *buf = slurp(fixture), *cur = buf, *l;
    if (!buf) {
        ok(0, "fixture %s", fixture);
        return;
    }
    char rel[512];
    int level, w, h;
    double sx, sy;
    long long ref_area;
    unsigned long long drgb = 0;
    l = next_line(&cur);
    if (!l || sscanf(l, "slide %511s %d %d %d %lf %lf %lld", rel, &level, &w, &h, &sx, &sy,
                     &ref_area) != 7) {
        ok(0, "%s: slide line", fixture);
        free(buf);
        return;
    }
    l = next_line(&cur);
    sscanf(l, "rgb %llu", &drgb);
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", data, rel);
    mm_slide *s = mm_slide_open(path, NULL);
    if (!s) {
        ok(0, "%s: open: %s", rel, mm_strerror());
        free(buf);
        return;
    }
    int64_t w0, h0, lw, lh;
    if (mm_slide_level_size(s, 0, &w0, &h0) < 0 || mm_slide_level_size(s, level, &lw, &lh) < 0) {
        ok(0, "%s: level sizes", rel);
        mm_slide_close(s);
        free(buf);
        return;
    }
    int best = mm_slide_levels(s) == 1 ? 0 : mm_slide_best_level(s, 64);
    is_int(best, level, "%s: CLAM's segmentation level %d", rel, level);
    /* _assertLevelDownsamples: level 0 size over the level's, per axis */
    double esx = (double)w0 / (double)lw, esy = (double)h0 / (double)lh;
    ok(lw == w && lh == h && esx == sx && esy == sy, "%s: level %d is %d x %d, scale %.17g x %.17g", rel,
       level, w, h, esx, esy);
    is_int((int64_t)(512.0 * 512.0 / (esx * esy)), ref_area, "%s: reference patch area %lld px", rel,
           ref_area);
    int64_t n = (int64_t)w * h;
    uint8_t *rgb = malloc((size_t)n * 3), *mask = malloc((size_t)n);
    if (mm_slide_read_region(s, 0, 0, level, w, h, rgb) < 0) {
        ok(0, "%s: read level %d: %s", rel, level, mm_strerror());
        goto out;
    }
    ok(digest_u8(rgb, n * 3) == drgb, "%s: level %d pixels equal openslide-python's read_region", rel,
       level);
    while ((l = next_line(&cur))) {
        char label[64];
        double a_t, a_h;
        int otsu, pad, t, nnz;
        unsigned long long dmask;
        if (sscanf(l, "run %63s %lf %lf %d %d %d %llu %d", label, &a_t, &a_h, &otsu, &pad, &t, &dmask,
                   &nnz) != 8)
            continue;
        mm_seg_opts o;
        mm_seg_defaults(&o);
        o.otsu = otsu;
        o.a_t = a_t * (double)ref_area;
        o.a_h = a_h * (double)ref_area;
        int got_t = -1;
        if (mm_tissue_mask(rgb, w, h, &o, mask, &got_t) < 0) {
            ok(0, "%s %s: mask: %s", rel, label, mm_strerror());
            break;
        }
        int64_t nz = 0;
        for (int64_t i = 0; i < n; i++) nz += mask[i] != 0;
        ok(digest_u8(mask, n) == dmask && nz == nnz && (!otsu || got_t == t),
           "%s %s: the closed mask (%lld tissue px%s)", rel, label, (long long)nz,
           otsu ? ", Otsu" : "");
        mm_tissue tis;
        if (mm_tissue_segment(rgb, w, h, &o, &tis) < 0) {
            ok(0, "%s %s: segment: %s", rel, label, mm_strerror());
            break;
        }
        double *areas = malloc((size_t)(tis.n ? tis.n : 1) * sizeof *areas);
        for (int i = 0; i < tis.n; i++) areas[i] = tis.r[i].area;
        mm_tissue_scale(&tis, esx, esy);
        int nr = -1, r = -1, hole = 0, bad = 0;
        l = next_line(&cur);
        sscanf(l, "nregions %d", &nr);
        is_int(tis.n, nr, "%s %s: a_t %g, a_h %g: %d regions", rel, label, a_t, a_h, nr);
        long long nt = -1;
        while ((l = next_line(&cur)) && !starts_with_ntiles(l)) {
            long np;
            int nh;
            double area;
            long long bx, by, bw, bh;
            unsigned long long dg;
            if (sscanf(l, "region %ld %d %lf %lld %lld %lld %lld %llu", &np, &nh, &area, &bx, &by, &bw,
                       &bh, &dg) == 8) {
                hole = 0;
                if (++r >= tis.n) continue;
                int64_t qx, qy, qw, qh;
                mm_poly_bbox(&tis.r[r].outer, &qx, &qy, &qw, &qh);
                if (tis.r[r].outer.n != np || tis.r[r].n_holes != nh || areas[r] != area || qx != bx ||
                    qy != by || qw != bw || qh != bh || digest_poly(&tis.r[r].outer) != dg) {
                    if (!bad++)
                        diag("region %d: %lld points, %d holes, area %.1f, bbox %lld %lld %lld %lld; "
                             "want %ld, %d, %.1f, %lld %lld %lld %lld", r, (long long)tis.r[r].outer.n,
                             tis.r[r].n_holes, areas[r], (long long)qx, (long long)qy, (long long)qw,
                             (long long)qh, np, nh, area, bx, by, bw, bh);
                }
            } else if (sscanf(l, "hole %ld %llu", &np, &dg) == 2 && r >= 0 && r < tis.n) {
                if (hole >= tis.r[r].n_holes || tis.r[r].holes[hole].n != np ||
                    digest_poly(&tis.r[r].holes[hole]) != dg)
                    bad++;
                hole++;
            }
        }
        if (l) sscanf(l, "ntiles %lld", &nt);
        ok(!bad, "%s %s: contours, holes and areas at level 0", rel, label);
        mm_tile_xy *want = malloc((size_t)(nt > 0 ? nt : 1) * sizeof *want);
        int64_t k = 0;
        while ((l = next_line(&cur)) && strncmp(l, "endrun", 6)) {
            const char *q = l + 6;
            char *e;
            while (k < nt) {
                long long x = strtoll(q, &e, 10);
                if (e == q) break;
                want[k].x = x;
                q = e;
                want[k].y = strtoll(q, &e, 10);
                q = e;
                k++;
            }
        }
        mm_grid_opts g = {.ps0 = 256, .step0 = 256, .w0 = w0, .h0 = h0, .padding = pad,
                          .mode = MM_TILE_FOUR_PT};
        mm_tile_xy *xy;
        int64_t nn = mm_tissue_tiles(&tis, &g, &xy);
        ok(nn == nt && k == nt && (nn == 0 || !memcmp(xy, want, (size_t)nn * sizeof *xy)),
           "%s %s: %lld tiles of 256%s, every coordinate in CLAM's order", rel, label, (long long)nn,
           pad ? "" : " without padding");
        if (nn != nt) diag("got %lld tiles, want %lld", (long long)nn, nt);
        free(xy);
        free(want);
        free(areas);
        mm_tissue_free(&tis);
    }
out:
    free(rgb);
    free(mask);
    mm_slide_close(s);
    free(buf);
}

int main(void)
{
    const char *data = getenv("MMPATH_TEST_DATA"), *top = getenv("top_srcdir");
    char probe[1200];
    snprintf(probe, sizeof probe, "%s/wsi/CMU-1-Small-Region.svs", data ? data : "");
    if (!data || !*data || access(probe, R_OK) != 0) {
        plan_skip_all("no test data ($MMPATH_TEST_DATA/wsi/CMU-1-Small-Region.svs)");
        return 0;
    }
    static const char *const fx[] = {"slide-cmu1.txt", "slide-cmu1-pyramid.txt"};
    for (int i = 0; i < 2; i++) {
        char p[1200];
        snprintf(p, sizeof p, "%s/tests/fixtures/tissue/%s", top && *top ? top : ".", fx[i]);
        run_slide(data, p);
    }
    return done_testing();
}
