/* mm/tissue.h: CLAM's tissue segmentation and patch grid (METHODS.md B1),
 * without OpenCV: saturation threshold, median blur, morphological close,
 * contours with holes (cv2.findContours RETR_CCOMP, CHAIN_APPROX_NONE),
 * CLAM's area filters, and the four-point / hole tests of each patch.
 *
 *   mm_seg_opts o; mm_seg_defaults(&o);  o.a_t = ...; o.a_h = ...;
 *   mm_tissue t;
 *   mm_tissue_segment(rgb, w, h, &o, &t);   // on the segmentation image
 *   mm_tissue_scale(&t, sx, sy);            // to level 0 (CLAM's int32)
 *   mm_tile_xy *xy; int64_t n = mm_tissue_tiles(&t, &g, &xy);
 *   ...; free(xy); mm_tissue_free(&t);
 *
 * Everything is deterministic and single-threaded; results equal OpenCV's
 * (cv2 4.x) on the same mask: the same contour points in the same order,
 * the same areas, the same point tests (tests/gen/clam_ref.py).
 * SPDX-License-Identifier: MIT */
#ifndef MM_TISSUE_H
#define MM_TISSUE_H

#include <stdint.h>
#include <stdio.h>

#include "mm/defs.h"

typedef struct { int32_t x, y; } mm_pt;
/* A closed polygon: every boundary pixel, as cv2's CHAIN_APPROX_NONE. */
typedef struct { int64_t n; mm_pt *p; } mm_poly;

/* A kept tissue contour with its kept holes. */
typedef struct {
    mm_poly outer;
    int n_holes;
    mm_poly *holes;
    double area; /* contourArea(outer) - sum of contourArea of ALL its
                  * holes (CLAM, before the hole filters), seg pixels^2 */
} mm_region;

typedef struct {
    int n;
    mm_region *r;
} mm_tissue;

typedef struct {
    int sthresh;     /* saturation threshold, S > sthresh is tissue: 8 */
    int sthresh_up;  /* value written for tissue: 255 */
    int mthresh;     /* median blur kernel (odd): 7 */
    int close;       /* close kernel size (close x close ones); 0 none: 4 */
    int otsu;        /* 1: Otsu's threshold on the blurred S instead */
    double a_t;      /* keep a contour whose area > a_t (seg pixels^2) */
    double a_h;      /* keep a hole whose area > a_h (seg pixels^2) */
    int max_n_holes; /* keep at most this many largest holes: 8 */
} mm_seg_opts;

/* CLAM's defaults with the area filters at 0 (the caller converts its
 * units: CLAM's a_t is in reference patches of 512^2 level-0 pixels,
 * a_t * int(512^2 / (sx sy)) seg pixels^2). */
void mm_seg_defaults(mm_seg_opts *o);

/* The binary mask CLAM thresholds: saturation as cv2.cvtColor(RGB2HSV) on
 * u8 (S = 255 (max - min) / max, rounded), cv2.medianBlur (replicated
 * border), threshold (or Otsu), cv2.morphologyEx(MORPH_CLOSE) with a
 * close x close ones kernel. MASK is W * H bytes, 0 or 255. OTSU_T (may be
 * NULL) gets the Otsu threshold when o->otsu. @return 0, or -1. */
int mm_tissue_mask(const uint8_t *rgb, int w, int h, const mm_seg_opts *o,
                   uint8_t *mask, int *otsu_t) MM_RESULT_USED;

/* Segment RGB (W x H, the segmentation level): mask, contours, CLAM's
 * filters (foreground contours with area > a_t; up to max_n_holes largest
 * holes with area > a_h). T is filled (mm_tissue_free it). A slide with no
 * tissue gives T->n == 0 and returns 0. @return 0, or -1. */
int mm_tissue_segment(const uint8_t *rgb, int w, int h, const mm_seg_opts *o,
                      mm_tissue *t) MM_RESULT_USED;
/* The contours of a 0/255 MASK as cv2.findContours(mask, RETR_CCOMP,
 * CHAIN_APPROX_NONE), unfiltered: every outer boundary with all its holes,
 * in OpenCV's order. */
int mm_tissue_contours(const uint8_t *mask, int w, int h,
                       mm_tissue *t) MM_RESULT_USED;
/* Multiply every point by (SX, SY) and truncate to int32, as CLAM's
 * np.array(cont * scale, dtype='int32'); areas are scaled too. */
void mm_tissue_scale(mm_tissue *t, double sx, double sy);
void mm_tissue_free(mm_tissue *t);

/* cv2.contourArea (absolute shoelace area of the polygon). */
double mm_poly_area(const mm_poly *p);
/* cv2.pointPolygonTest(p, (x, y), measureDist=False): 1 inside, 0 on an
 * edge, -1 outside. */
int mm_poly_test(const mm_poly *p, double x, double y);
/* cv2.boundingRect: top-left and size (max - min + 1). */
void mm_poly_bbox(const mm_poly *p, int64_t *x, int64_t *y, int64_t *w,
                  int64_t *h);

typedef struct { int64_t x, y; } mm_tile_xy;

typedef enum {
    MM_TILE_FOUR_PT,    /* CLAM: any of the 4 points center +- ps/4 inside
                         * the contour (>= 0), center not inside (> 0) a
                         * hole */
    MM_TILE_MIN_TISSUE, /* the fraction of the tile covered by the region
                         * (outer minus holes, rasterised at seg level) is
                         * >= min_tissue */
    MM_TILE_ALL         /* --tissue none: the whole-image grid */
} mm_tile_mode;

typedef struct {
    int64_t ps0;       /* patch size in level-0 pixels */
    int64_t step0;     /* step in level-0 pixels */
    int64_t w0, h0;    /* level-0 image size */
    int padding;       /* CLAM's use_padding (1): tiles may reach past the
                        * edge; 0 stops where a tile would */
    mm_tile_mode mode;
    double min_tissue; /* MM_TILE_MIN_TISSUE only */
    double sx, sy;     /* seg-level -> level-0 scale (MIN_TISSUE only) */
    int keep_single;   /* 0 (CLAM): a region that keeps exactly one tile
                        * gives none (process_contour saves a contour's
                        * coordinates only when len(results) > 1); 1 keeps
                        * it */
} mm_grid_opts;

/* CLAM's process_contour for every region in order: the bounding box of
 * the region's outer contour (level 0), np.arange(start, stop, step) in x
 * and y, x-major (for each x, all y), then the test of MODE; regions one
 * after the other (MM_TILE_ALL: one grid over the image). *OUT gets a
 * malloc'd array. @return the number of tiles (>= 0), or -1. */
int64_t mm_tissue_tiles(const mm_tissue *t, const mm_grid_opts *g,
                        mm_tile_xy **out) MM_RESULT_USED;

/* Draw on an RGB image (W x H) what CLAM's masks show: outer contours in
 * green, holes in blue, LINE pixels wide, with points divided by SCALE
 * (level 0 -> the image); and tile outlines (level-0 top-left XY, size
 * PS0) in TILE_RGB. For --preview. */
void mm_tissue_draw(uint8_t *rgb, int w, int h, const mm_tissue *t,
                    double scale, int line);
void mm_tiles_draw(uint8_t *rgb, int w, int h, const mm_tile_xy *xy,
                   int64_t n, int64_t ps0, double scale,
                   const uint8_t tile_rgb[3]);

/* The regions as a GeoJSON FeatureCollection QuPath imports: one Polygon
 * feature per region (outer ring then holes, closed rings, level-0
 * coordinates), properties {"objectType": "annotation", "classification":
 * {"name": "Tissue"}}. @return 0, or -1 on a write error. */
int mm_tissue_geojson(const mm_tissue *t, FILE *f);

#endif
