#!/usr/bin/python3
"""CLAM's segmentation and patch grid (mahmoodlab/CLAM wsi_core/WholeSlideImage.py:
segmentTissue, _filter_contours, process_contour, isInContourV3_Easy, isInHoles),
transcribed with OpenCV and OpenSlide, on the real slides: the reference for
tests/tools/wsi-tile.sh. Writes tests/fixtures/wsi-tile/*.tsv (coordinates
only, no pixels).

Run with Debian's interpreter (python3-openslide 1.2.0 on OpenSlide 3.4.1,
python3-opencv 4.6.0, numpy 1.24):
    /usr/bin/python3 tests/gen/wsi_tile_ref.py DATA_DIR tests/fixtures/wsi-tile

Area filters are given in level-0 mm^2 as wsi-tile's defaults (0.065536 mm^2
tissue, a quarter for holes) and converted to segmentation pixels^2 with
the slide's mpp; CLAM's own units (reference patches of 512^2 level-0
pixels) for the preset case.
"""
import sys

import cv2
import numpy as np
import openslide


def level_downsamples(wsi):
    """CLAM's _assertLevelDownsamples: (w0/w, h0/h) unless equal to (ds, ds)."""
    out = []
    d0 = wsi.level_dimensions[0]
    for ds, dim in zip(wsi.level_downsamples, wsi.level_dimensions):
        est = (d0[0] / float(dim[0]), d0[1] / float(dim[1]))
        out.append(est if est != (ds, ds) else (ds, ds))
    return out


def segment(wsi, seg_level, a_t_px, a_h_px, sthresh=8, mthresh=7, close=4, max_n_holes=8):
    img = np.array(wsi.read_region((0, 0), seg_level, wsi.level_dimensions[seg_level]))
    hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
    med = cv2.medianBlur(hsv[:, :, 1], mthresh)
    _, mask = cv2.threshold(med, sthresh, 255, cv2.THRESH_BINARY)
    if close > 0:
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((close, close), np.uint8))
    contours, hierarchy = cv2.findContours(mask, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE)
    if hierarchy is None:
        return mask, [], []
    hierarchy = np.squeeze(hierarchy, axis=(0,))[:, 2:]
    filtered, all_holes = [], []
    for ci in np.flatnonzero(hierarchy[:, 1] == -1):
        holes = np.flatnonzero(hierarchy[:, 1] == ci)
        a = cv2.contourArea(contours[ci]) - np.array(
            [cv2.contourArea(contours[h]) for h in holes]).sum()
        if a == 0:
            continue
        if a_t_px < a:
            filtered.append(ci)
            all_holes.append(holes)
    fg = [contours[i] for i in filtered]
    hole_conts = []
    for hs in all_holes:
        hh = sorted([contours[i] for i in hs], key=cv2.contourArea, reverse=True)[:max_n_holes]
        hole_conts.append([h for h in hh if cv2.contourArea(h) > a_h_px])
    scale = level_downsamples(wsi)[seg_level]
    fg = [np.array(c * scale, dtype='int32') for c in fg]
    hole_conts = [[np.array(h * scale, dtype='int32') for h in hs] for hs in hole_conts]
    return mask, fg, hole_conts


def tiles(wsi, fg, holes, ps0=256, step0=256):
    out = []
    shift = int(ps0 // 2 * 0.5)
    for cont, hs in zip(fg, holes):
        kept = []
        x0, y0, w, h = cv2.boundingRect(cont)
        xs, ys = np.meshgrid(np.arange(x0, x0 + w, step0), np.arange(y0, y0 + h, step0),
                             indexing='ij')
        for x, y in zip(xs.flatten(), ys.flatten()):
            cx, cy = x + ps0 // 2, y + ps0 // 2
            pts = [(cx - shift, cy - shift), (cx + shift, cy + shift),
                   (cx + shift, cy - shift), (cx - shift, cy + shift)]
            if not any(cv2.pointPolygonTest(cont, (float(px), float(py)), False) >= 0
                       for px, py in pts):
                continue
            if any(cv2.pointPolygonTest(hole, (x + ps0 / 2, y + ps0 / 2), False) > 0
                   for hole in hs):
                continue
            kept.append((int(x), int(y)))
        # process_contour saves a contour's coordinates only when
        # len(results) > 1
        if len(kept) > 1:
            out += kept
    return out


def run(path, mpp, area_mm2=0.065536, ref_patches=None):
    wsi = openslide.OpenSlide(path)
    seg_level = wsi.get_best_level_for_downsample(64)
    sx, sy = level_downsamples(wsi)[seg_level]
    if ref_patches:
        ref = int(512 ** 2 / (sx * sy))
        a_t, a_h = ref_patches[0] * ref, ref_patches[1] * ref
    else:
        px = mpp * sx * mpp * sy * 1e-6
        a_t, a_h = area_mm2 / px, area_mm2 / 4 / px
    mask, fg, holes = segment(wsi, seg_level, a_t, a_h)
    return seg_level, mask, fg, holes, tiles(wsi, fg, holes)


def write(path, desc, seg_level, mask, fg, xy):
    with open(path, 'w') as f:
        f.write('# %s\n' % desc)
        f.write('# made by tests/gen/wsi_tile_ref.py with OpenSlide %s, OpenCV %s\n'
                % (openslide.__library_version__, cv2.__version__))
        f.write('# seg_level %d, mask pixels %d, regions %d, tiles %d\n'
                % (seg_level, int((mask > 0).sum()), len(fg), len(xy)))
        f.write('x\ty\n')
        for x, y in xy:
            f.write('%d\t%d\n' % (x, y))


def main():
    data, out = sys.argv[1], sys.argv[2]
    cmu = data + '/wsi/CMU-1-Small-Region.svs'
    r = run(cmu, 0.499)
    write(out + '/cmu_default.tsv', 'CMU-1-Small-Region.svs, 20x, 256 px, 0.065536 mm2 / 4',
          r[0], r[1], r[2], r[4])
    tc = data + '/wsi/tcga-cr-7395-01a-01-ts1.svs'
    r = run(tc, 0.5)
    write(out + '/tcga_mag20.tsv', 'tcga-cr-7395-01a-01-ts1.svs, assumed 20x (0.5 um/px), 256 px',
          r[0], r[1], r[2], r[4])


if __name__ == '__main__':
    main()
