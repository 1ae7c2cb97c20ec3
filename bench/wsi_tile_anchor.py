"""The Python pipeline wsi-tile replaces: CLAM's create_patches_fp.py
(segmentTissue at get_best_level_for_downsample(64), the four_pt grid of
process_contour) with OpenCV, then every tile read with openslide-python's
read_region and converted to an RGB array as CLAM's Whole_Slide_Bag_FP
does (PIL convert("RGB"), np.array). Prints one line:
    tiles N seconds S cpu C
(wall and CPU seconds of all threads, from opening the slide: the
interpreter's start and imports are not counted)
Usage: wsi_tile_anchor.py SLIDE MPP [THREADS]
THREADS > 1 reads tiles in a thread pool (one OpenSlide handle, as
openslide-python allows), the way a DataLoader with workers would.
Area filters: wsi-tile's defaults (0.065536 mm^2, a quarter for holes).
"""
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import openslide


def main():
    path, mpp = sys.argv[1], float(sys.argv[2])
    threads = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    t0, c0 = time.perf_counter(), time.process_time()
    wsi = openslide.OpenSlide(path)
    lvl = wsi.get_best_level_for_downsample(64)
    w0, h0 = wsi.level_dimensions[0]
    w, h = wsi.level_dimensions[lvl]
    sx, sy = w0 / w, h0 / h
    img = np.array(wsi.read_region((0, 0), lvl, (w, h)))
    s = cv2.medianBlur(cv2.cvtColor(img, cv2.COLOR_RGB2HSV)[:, :, 1], 7)
    _, mask = cv2.threshold(s, 8, 255, cv2.THRESH_BINARY)
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((4, 4), np.uint8))
    conts, hier = cv2.findContours(mask, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE)
    px = mpp * sx * mpp * sy * 1e-6
    a_t, a_h = 0.065536 / px, 0.065536 / 4 / px
    coords = []
    if hier is not None:
        hier = np.squeeze(hier, axis=(0,))[:, 2:]
        for ci in np.flatnonzero(hier[:, 1] == -1):
            hs = np.flatnonzero(hier[:, 1] == ci)
            a = cv2.contourArea(conts[ci]) - sum(cv2.contourArea(conts[k]) for k in hs)
            if a == 0 or not a > a_t:
                continue
            holes = sorted([conts[k] for k in hs], key=cv2.contourArea, reverse=True)[:8]
            holes = [np.array(k * (sx, sy), dtype='int32') for k in holes
                     if cv2.contourArea(k) > a_h]
            cont = np.array(conts[ci] * (sx, sy), dtype='int32')
            x0, y0, bw, bh = cv2.boundingRect(cont)
            xs, ys = np.meshgrid(np.arange(x0, x0 + bw, 256), np.arange(y0, y0 + bh, 256),
                                 indexing='ij')
            kept = []
            for x, y in zip(xs.flatten(), ys.flatten()):
                cx, cy = x + 128, y + 128
                if not any(cv2.pointPolygonTest(cont, (float(cx + dx), float(cy + dy)), False) >= 0
                           for dx, dy in ((-64, -64), (64, 64), (64, -64), (-64, 64))):
                    continue
                if any(cv2.pointPolygonTest(k, (float(cx), float(cy)), False) > 0 for k in holes):
                    continue
                kept.append((int(x), int(y)))
            if len(kept) > 1:
                coords += kept

    def read(xy):
        return np.array(wsi.read_region(xy, 0, (256, 256)).convert('RGB'))

    total = 0
    if threads > 1:
        with ThreadPoolExecutor(threads) as ex:
            for a in ex.map(read, coords):
                total += int(a[0, 0, 0])
    else:
        for xy in coords:
            total += int(read(xy)[0, 0, 0])
    print('tiles %d seconds %.3f cpu %.3f' % (len(coords), time.perf_counter() - t0,
                                              time.process_time() - c0))


if __name__ == '__main__':
    main()
