/* mm/slide.h: whole-slide images and flat images, read as RGB regions.
 *
 * Pyramidal slides go through OpenSlide (every format OpenSlide 3.4 reads);
 * flat images OpenSlide refuses (PNG, JPEG, single-level TIFF) through
 * libvips's PNG, JPEG and TIFF loaders only (never its ImageMagick or other
 * loaders: a DICOM file must stay "not a slide").
 *
 *   mm_slide *s = mm_slide_open(path);          // NULL: mm_strerror()
 *   mm_slide_res r; mm_slide_resolution(s, &r);  // the mpp chain
 *   uint8_t *rgb = mm_malloc(w * h * 3);
 *   if (mm_slide_read_region(s, x, y, level, w, h, rgb) < 0) fail(...);
 *   mm_slide_close(s);
 *
 * Coordinates X, Y are always level-0 pixels (OpenSlide's convention);
 * sizes are in pixels of the level read. Outside the image (and in
 * OpenSlide's transparent areas) pixels get the pad colour, black unless
 * mm_slide_set_pad() says otherwise: CLAM converts OpenSlide's RGBA with
 * PIL's convert("RGB"), which drops alpha and leaves the premultiplied
 * zeros, i.e. black.
 *
 * Threads: mm_slide_read_region and mm_slide_read_scaled may be called
 * from several threads at once on one handle (openslide_read_region is
 * thread-safe; the direct TIFF reader reads with pread() and shares a
 * locked cache of decoded tiles; flat images are in memory).
 * SPDX-License-Identifier: MIT */
#ifndef MM_SLIDE_H
#define MM_SLIDE_H

#include <stdint.h>

#include "mm/defs.h"

typedef struct mm_slide mm_slide;

/* Open PATH. On failure NULL, mm_strerror() holds one line and *WHY (when
 * not NULL) says which: MM_EFORMAT "not a slide OpenSlide can read" (nor an
 * image the flat loaders take), MM_ECORRUPT "a slide, but broken" (OpenSlide
 * recognised the format and then failed, or the image decoder failed), MM_ERR
 * for I/O (missing file, permission). */
mm_slide *mm_slide_open(const char *path, int *why) MM_RESULT_USED;
void mm_slide_close(mm_slide *s); /* NULL is a no-op */

/* "aperio", "generic-tiff", ... (openslide.vendor), or "png", "jpeg",
 * "tiff" for a flat image. */
const char *mm_slide_vendor(const mm_slide *s);
/* Samples per pixel of the file: 3 for OpenSlide's slides; a flat image's
 * own count (1 grey, 2 grey + alpha, 3, 4 with alpha, more for a
 * multichannel TIFF, whose first page is read). Reads always give RGB:
 * grey replicated, the first three samples otherwise. */
int mm_slide_channels(const mm_slide *s);
/* Slide digest for stream headers (STREAM.md tiles meta): OpenSlide's
 * quickhash-1 where OpenSlide opened it, else "sha256:HEX" of the file. */
const char *mm_slide_digest(mm_slide *s);
/* A property by OpenSlide name ("aperio.MPP", "openslide.objective-power"),
 * or NULL. Flat images have none but the synthesised "tiff.XResolution",
 * "tiff.YResolution", "tiff.ResolutionUnit" when the file has them. */
const char *mm_slide_property(const mm_slide *s, const char *name);

int mm_slide_levels(const mm_slide *s);
/* Width and height of LEVEL in its own pixels; -1 for a bad level. */
int mm_slide_level_size(const mm_slide *s, int level, int64_t *w, int64_t *h);
/* Downsample of LEVEL relative to level 0 (OpenSlide's value, e.g. 2.0005). */
double mm_slide_level_downsample(const mm_slide *s, int level);
/* The level to read for a wanted downsample DS (openslide's
 * get_best_level_for_downsample: the largest level with downsample <= DS). */
int mm_slide_best_level(const mm_slide *s, double ds);

/* The resolution chain (issue 3): level-0 microns per pixel and where they
 * came from. */
typedef struct {
    double mpp_x, mpp_y; /* 0 when unknown */
    double objective;    /* level-0 magnification; 0 when unknown */
    /* "openslide.mpp", "aperio.MPP", "objective-power", "tiff-resolution",
     * or "none"; a caller that overrides (table, --assume-mag) writes its
     * own. A flat image's screen resolution (72 or 96 dpi, or coarser than
     * 10 um/px) counts as none. */
    const char *source;
} mm_slide_res;
/* Fill R by the chain: openslide.mpp-x/y, aperio.MPP, objective power
 * (mpp = 10 / mag), TIFF resolution tags (centimetre or inch units).
 * @return 0 when a resolution was found, -1 when none (R->source "none"). */
int mm_slide_resolution(const mm_slide *s, mm_slide_res *r);

/* Colour for pixels outside the image or transparent (default 0,0,0). */
void mm_slide_set_pad(mm_slide *s, uint8_t r, uint8_t g, uint8_t b);

/* Direct reading (on by default; MMPATH_SLIDE_DIRECT=0 in the environment
 * at open turns it off): levels of Aperio and generic TIFF slides made of
 * JPEG tiles are read from the file and decoded here, byte-exact with
 * OpenSlide 3.4.1's read_region, which composites every tile through cairo
 * and pixman; regions it cannot prove equal (a level whose downsample puts
 * the region between pixels, missing tiles, decoding errors) still go
 * through OpenSlide. Decoded tiles are cached per handle, 128 MiB at most
 * (MMPATH_SLIDE_CACHE_MB=N at open: N MiB). Set before reading, not while
 * other threads read. */
void mm_slide_set_direct(mm_slide *s, int on);
/* 1 when direct reading is on and covers LEVEL. */
int mm_slide_direct(const mm_slide *s, int level);
/* How many read_region calls (or bands of one) the direct path served. */
int64_t mm_slide_direct_reads(const mm_slide *s);

/* Read W x H pixels of LEVEL whose top-left is level-0 (X, Y) into RGB
 * (W * H * 3 bytes, row-major): byte-exact with OpenSlide's read_region
 * converted to RGB. The region may reach past any edge (padded).
 * @return 0, or -1 with one line in mm_strerror(). */
int mm_slide_read_region(mm_slide *s, int64_t x, int64_t y, int level,
                         int64_t w, int64_t h, uint8_t *rgb) MM_RESULT_USED;

/* Read the level-0 rectangle (X, Y, W0, H0) resampled to OW x OH into RGB:
 * read from the finest level no finer than needed (the largest downsample
 * <= W0 / OW) and reduce by area averaging (box filter over the exact
 * fractional footprint), never reading more than one level's rectangle at
 * once. With OW = W0 / ds(level) exactly it equals mm_slide_read_region
 * at that level. For the 40x-to-20x path, POMP's --size 4096 --out-size
 * 256, and the segmentation thumbnail (read in strips by the caller).
 * @return 0, or -1 with one line in mm_strerror(). */
int mm_slide_read_scaled(mm_slide *s, int64_t x, int64_t y, int64_t w0,
                         int64_t h0, int ow, int oh,
                         uint8_t *rgb) MM_RESULT_USED;

/* The slide id of PATH (STREAM.md "Ids and joins"): its file name without
 * directory and without the slide extension(s) (.svs, .tif, .tiff,
 * .ome.tif, .ome.tiff, .ndpi, .vms, .vmu, .scn, .mrxs, .bif, .svslide,
 * .png, .jpg, .jpeg, .dcm, .qptiff). Returns a new string. */
char *mm_slide_id(const char *path);

#endif
