/* synth-probe SLIDE...: what OpenSlide sees in mm-synth's slides, for
 * tests/tools/mm-synth.sh: vendor, levels and their downsamples, the TIFF
 * resolution as microns per pixel, and level 0's tissue (pixels whose
 * channels differ by more than 20 grey levels, i.e. coloured, where the
 * background is grey): its fraction and its mean red value (nuclei lower
 * it). One tab-separated line per slide. Reads OpenSlide directly until
 * lib/slide.c exists.
 * SPDX-License-Identifier: MIT */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openslide.h>

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: synth-probe SLIDE...\n");
        return 2;
    }
    printf("slide\tvendor\tlevels\tdownsamples\twidth\theight\tmpp\ttissue\tred\n");
    for (int a = 1; a < argc; a++) {
        openslide_t *s = openslide_open(argv[a]);
        if (!s || openslide_get_error(s)) {
            fprintf(stderr, "synth-probe: %s: %s\n", argv[a],
                    s ? openslide_get_error(s) : "not a slide OpenSlide reads");
            if (s) openslide_close(s);
            return 1;
        }
        const char *vendor = openslide_get_property_value(s, OPENSLIDE_PROPERTY_NAME_VENDOR);
        int nl = openslide_get_level_count(s);
        char ds[256] = "";
        for (int l = 0; l < nl; l++) {
            size_t n = strlen(ds);
            snprintf(ds + n, sizeof ds - n, "%s%g", l ? "," : "", openslide_get_level_downsample(s, l));
        }
        int64_t w, h;
        openslide_get_level0_dimensions(s, &w, &h);
        const char *xr = openslide_get_property_value(s, "tiff.XResolution");
        const char *ru = openslide_get_property_value(s, "tiff.ResolutionUnit");
        double mpp = 0;
        if (xr && ru && strcmp(ru, "centimeter") == 0) mpp = 1e4 / atof(xr);
        else if (xr && ru && strcmp(ru, "inch") == 0) mpp = 25400 / atof(xr);
        uint32_t *buf = malloc((size_t)w * 256 * sizeof *buf);
        if (!buf) return 1;
        double tissue = 0, red = 0;
        for (int64_t y = 0; y < h; y += 256) {
            int64_t rh = h - y < 256 ? h - y : 256;
            openslide_read_region(s, buf, 0, y, 0, w, rh);
            if (openslide_get_error(s)) {
                fprintf(stderr, "synth-probe: %s: %s\n", argv[a], openslide_get_error(s));
                return 1;
            }
            for (int64_t i = 0; i < w * rh; i++) {
                int r = (buf[i] >> 16) & 0xff, g = (buf[i] >> 8) & 0xff, b = buf[i] & 0xff;
                int mx = r > g ? (r > b ? r : b) : (g > b ? g : b);
                int mn = r < g ? (r < b ? r : b) : (g < b ? g : b);
                if (mx - mn > 20) { tissue++; red += r; }
            }
        }
        free(buf);
        printf("%s\t%s\t%d\t%s\t%lld\t%lld\t%.6g\t%.4f\t%.2f\n", argv[a], vendor ? vendor : "NA", nl,
               ds, (long long)w, (long long)h, mpp, tissue / ((double)w * h),
               tissue > 0 ? red / tissue : 0);
        openslide_close(s);
    }
    return 0;
}
