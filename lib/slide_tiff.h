/* slide_tiff.h: internal to lib/slide.c. Regions of JPEG-tiled TIFF levels
 * (Aperio SVS with JPEG, generic tiled TIFF) read straight from the file
 * and decoded with libjpeg, byte-exact with OpenSlide 3.4.1's read_region
 * at a native level, without its cairo/pixman compositing.
 *
 * Thread-safe: tiles are read with pread() on one descriptor and decoded
 * into a shared cache of decoded tiles (bounded, least recently used
 * evicted), each tile decoded once while it stays cached, whichever thread
 * wants it first.
 * SPDX-License-Identifier: MIT */
#ifndef MM_SLIDE_TIFF_H
#define MM_SLIDE_TIFF_H

#include <stdint.h>

typedef struct mm_tiffdirect mm_tiffdirect;

/* Map the NLEV OpenSlide levels of size LW x LH (downsamples DS, tile
 * sizes TW x TH as OpenSlide reports them, 0 when it does not) of PATH to
 * its TIFF directories; NULL when no level can be read directly (not a
 * TIFF, no JPEG-tiled level, ...). CACHE_BYTES bounds the decoded tiles
 * kept. */
mm_tiffdirect *mm__tiffdirect_open(const char *path, int nlev, const int64_t *lw,
                                   const int64_t *lh, const double *ds, const int64_t *tw,
                                   const int64_t *th, size_t cache_bytes);
void mm__tiffdirect_close(mm_tiffdirect *t);
/* 1 when LEVEL maps to a JPEG-tiled directory read directly. */
int mm__tiffdirect_level(const mm_tiffdirect *t, int level);
/* What openslide_read_region(x, y, level, w, h) converted to RGB gives
 * (pixels outside the level get PAD), into RGB.
 * @return 1 done; 0 declined (a region that would need OpenSlide's
 * interpolation, a missing tile, a decoding error or warning: the caller
 * reads it through OpenSlide, which reports errors its own way). RGB may
 * have been written to when 0 is returned. */
int mm__tiffdirect_read(mm_tiffdirect *t, int level, int64_t x, int64_t y, int64_t w, int64_t h,
                        uint8_t *rgb, const uint8_t pad[3]);

#endif
