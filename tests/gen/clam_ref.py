#!/usr/bin/python3
"""clam_ref.py: the OpenCV/CLAM reference for lib/tissue.c (t-tissue, t-clam).

Run with Debian 12's python3 (python3-opencv 4.6.0, python3-numpy 1.24.2,
python3-openslide 1.2.0 over OpenSlide 3.4.1), from the source root:

    /usr/bin/python3 tests/gen/clam_ref.py [DATA_DIR]

It writes tests/fixtures/tissue/:
  (a) synthetic cases, built from the small drawing programs below (rows of
      '#'/'.', disks, rectangles, lines and hashed noise; the C test draws
      the same pixels from the same lines):
      contours-*.txt  cv2.findContours(RETR_CCOMP, CHAIN_APPROX_NONE): every
                      point, the hierarchy, contourArea, boundingRect and
                      pointPolygonTest on integer and half-integer grids
      close-*.txt     cv2.morphologyEx(MORPH_CLOSE, ones(k, k)), k = 1..6
      stages-*.txt    a synthetic RGB scene through CLAM's mask stages:
                      cvtColor(RGB2HSV) S, medianBlur, threshold / Otsu,
                      close, as digests (the C test recovers S and the
                      median from thresholded masks)
      hsv.txt         the S of cvtColor for every (max, min) pair (digest)
      clam-*.txt      CLAM's segmentTissue filters + scaleContourDim +
                      process_contour (four_pt) on a synthetic scene
  (b) with DATA_DIR (default $MMPATH_TEST_DATA or ../shared/data), CLAM's
      segmentTissue + process_contour on real slides read with OpenSlide:
      slide-*.txt     contour counts, areas, points digests and every tile
                      coordinate (numbers, no pixels)

CLAM's code is followed as in mahmoodlab/CLAM 7e24b44
(wsi_core/WholeSlideImage.py, wsi_core/util_classes.py; METHODS.md B1),
including `len(results) > 1` in process_contour.
"""
import os
import platform
import sys

import cv2
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "fixtures", "tissue")
HEADER = "# tests/gen/clam_ref.py: python %s, opencv %s, numpy %s" % (
    platform.python_version(), cv2.__version__, np.__version__)

M64 = (1 << 64) - 1


def h32(x, y, seed):
    """lowbias32 of a mix of (x, y, seed); the C test has the same."""
    x = np.asarray(x, dtype=np.uint64)
    y = np.asarray(y, dtype=np.uint64)
    h = (x * np.uint64(73856093)) ^ (y * np.uint64(19349663)) ^ np.uint64((seed * 83492791) & 0xFFFFFFFF)
    h &= np.uint64(0xFFFFFFFF)
    h ^= h >> np.uint64(16)
    h = (h * np.uint64(0x7FEB352D)) & np.uint64(0xFFFFFFFF)
    h ^= h >> np.uint64(15)
    h = (h * np.uint64(0x846CA68B)) & np.uint64(0xFFFFFFFF)
    h ^= h >> np.uint64(16)
    return h


def digest(a):
    """sum over i of (a[i] + 1) * (i * 0x9E3779B97F4A7C15 + 1), mod 2^64"""
    a = np.ascontiguousarray(a).reshape(-1).astype(np.uint64)
    i = np.arange(a.size, dtype=np.uint64)
    with np.errstate(over="ignore"):
        w = i * np.uint64(0x9E3779B97F4A7C15) + np.uint64(1)
        return int(np.sum((a + np.uint64(1)) * w, dtype=np.uint64))


def draw(w, h, ops):
    """The drawing program: each op paints value v over what is there."""
    m = np.zeros((h, w), np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    for op in ops:
        k, a = op[0], op[1:]
        if k == "disk":
            cx, cy, r, v = a
            m[(xx - cx) ** 2 + (yy - cy) ** 2 <= r * r] = v
        elif k == "rect":
            x0, y0, x1, y1, v = a
            m[y0:y1 + 1, x0:x1 + 1] = v
        elif k == "line":
            x0, y0, dx, dy, n, v = a
            for i in range(n):
                x, y = x0 + i * dx, y0 + i * dy
                if 0 <= x < w and 0 <= y < h:
                    m[y, x] = v
        elif k == "noise":
            x0, y0, x1, y1, seed, permille, v = a
            sub = (h32(xx, yy, seed) % np.uint64(1000)) < np.uint64(permille)
            box = (xx >= x0) & (xx <= x1) & (yy >= y0) & (yy <= y1)
            m[sub & box] = v
        elif k == "row":
            y, x0, bits = a
            for i, c in enumerate(bits):
                if 0 <= x0 + i < w:
                    m[y, x0 + i] = 1 if c == "#" else 0
        else:
            raise ValueError(k)
    return m


def op_line(op):
    return " ".join(str(t) for t in op)


def scene_rgb(layout, seed):
    """RGB from a 0/1 layout: tissue pixels pink-purple with wide noise (a
    few white), background near-white with sparse faint noise."""
    h, w = layout.shape
    yy, xx = np.mgrid[0:h, 0:w]
    a, b, c = (h32(xx, yy, seed + k) for k in range(3))
    rgb = np.empty((h, w, 3), np.uint8)
    t = layout.astype(bool)
    rgb[..., 0] = np.where(t, 150 + a % 100, np.where(a % 10 < 8, 240 + a % 3, 225 + a % 31))
    rgb[..., 1] = np.where(t, 60 + b % 120, np.where(a % 10 < 8, 240 + b % 3, 225 + b % 31))
    rgb[..., 2] = np.where(t, 120 + c % 100, np.where(a % 10 < 8, 240 + c % 3, 225 + c % 31))
    white = t & (h32(xx, yy, seed + 7) % np.uint64(50) == 0)
    rgb[white] = 250
    return rgb


def contours_of(mask):
    cs, hier = cv2.findContours(mask.copy(), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE)
    hier = hier[0] if hier is not None else np.zeros((0, 4), int)
    return cs, hier


def write(name, lines):
    with open(os.path.join(OUT, name), "w") as f:
        f.write(HEADER + "\n")
        for l in lines:
            f.write(l + "\n")


def ptest_grid(c, w, h, half):
    """'+', '0', '-' for pointPolygonTest over (x, y) in [-1, w] x [-1, h]
    (plus 0.5 in both when HALF), y-major"""
    cc = {1.0: "+", 0.0: "0", -1.0: "-"}
    s = []
    for y in range(-1, h + 1):
        for x in range(-1, w + 1):
            p = (x + 0.5, y + 0.5) if half else (float(x), float(y))
            s.append(cc[cv2.pointPolygonTest(c, p, False)])
    return "".join(s)


def contour_case(name, w, h, ops, tests=3, with_pts=True):
    """WITH_PTS: every point (else the digest alone, for the big cases)"""
    m = draw(w, h, ops) * 255
    cs, hier = contours_of(m)
    lines = ["size %d %d" % (w, h)] + ["op " + op_line(o) for o in ops] + ["end"]
    lines.append("ncontours %d" % len(cs))
    for i, c in enumerate(cs):
        pts = c.reshape(-1, 2)
        x, y, bw, bh = cv2.boundingRect(c)
        lines.append("contour %d %d %d %d %d %d %r %d %d %d %d %d %d %d" % (
            i, hier[i][0], hier[i][1], hier[i][2], hier[i][3], len(pts),
            cv2.contourArea(c), x, y, bw, bh, pts[0][0], pts[0][1], poly_digest(pts)))
        if with_pts:
            lines.append("pts " + " ".join("%d %d" % (p[0], p[1]) for p in pts))
        if i < tests:
            lines.append("ptest %d 0 %s" % (i, ptest_grid(c, w, h, False)))
            lines.append("ptest %d 1 %s" % (i, ptest_grid(c, w, h, True)))
    write("contours-%s.txt" % name, lines)
    return len(cs)


def close_case(name, w, h, ops):
    m = draw(w, h, ops) * 255
    lines = ["size %d %d" % (w, h)] + ["op " + op_line(o) for o in ops] + ["end"]
    for k in range(1, 7):
        c = cv2.morphologyEx(m, cv2.MORPH_CLOSE, np.ones((k, k), np.uint8))
        lines.append("close %d %d %d" % (k, digest(c), int(np.count_nonzero(c))))
    write("close-%s.txt" % name, lines)


def mask_stages(rgb, sthresh, sthresh_up, mthresh, close, use_otsu):
    """CLAM's segmentTissue up to the mask (RGB instead of RGBA in)"""
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    med = cv2.medianBlur(hsv[:, :, 1], mthresh)
    if use_otsu:
        t, th = cv2.threshold(med, 0, sthresh_up, cv2.THRESH_OTSU + cv2.THRESH_BINARY)
    else:
        t, th = cv2.threshold(med, sthresh, sthresh_up, cv2.THRESH_BINARY)
    cl = th
    if close > 0:
        cl = cv2.morphologyEx(th, cv2.MORPH_CLOSE, np.ones((close, close), np.uint8))
    return hsv[:, :, 1], med, int(t), th, cl


def stages_case(name, w, h, ops, seed, variants):
    layout = draw(w, h, ops)
    rgb = scene_rgb(layout, seed)
    lines = ["size %d %d" % (w, h)] + ["op " + op_line(o) for o in ops] + ["end", "rgb %d" % seed]
    for (st, mt, cl, otsu) in variants:
        s, med, t, th, clo = mask_stages(rgb, st, 255, mt, cl, otsu)
        lines.append("stages %d %d %d %d sat %d median %d thresh %d %d %d close %d %d" % (
            st, mt, cl, otsu, digest(s), digest(med), t, digest(th),
            int(np.count_nonzero(th)), digest(clo), int(np.count_nonzero(clo))))
    write("stages-%s.txt" % name, lines)


def hsv_case():
    v, m = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    img = np.zeros((256, 256, 3), np.uint8)
    img[..., 0], img[..., 1], img[..., 2] = v, m, m
    s = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)[..., 1]
    # the S of an (r, g, b) is a function of max and min alone
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)
    sx = cv2.cvtColor(x, cv2.COLOR_RGB2HSV)[..., 1]
    assert np.array_equal(sx, s[x.max(2), x.min(2)]), "S depends on more than max/min"
    write("hsv.txt", ["# rows: r = max 0..255, columns: g = b = min 0..255",
                      "hsv %d" % digest(s)])


# ---------------------------------------------------------------- CLAM

def filter_contours(contours, hierarchy, a_t, a_h, max_n_holes):
    """WholeSlideImage.segmentTissue._filter_contours, as written"""
    filtered = []
    kept_areas = []  # not in CLAM: the area it compared, for the fixture
    hierarchy_1 = np.flatnonzero(hierarchy[:, 1] == -1)
    all_holes = []
    for cont_idx in hierarchy_1:
        cont = contours[cont_idx]
        holes = np.flatnonzero(hierarchy[:, 1] == cont_idx)
        a = cv2.contourArea(cont)
        hole_areas = [cv2.contourArea(contours[hole_idx]) for hole_idx in holes]
        a = a - np.array(hole_areas).sum()
        if a == 0:
            continue
        if tuple((a_t,)) < tuple((a,)):
            filtered.append(cont_idx)
            all_holes.append(holes)
            kept_areas.append(a)
    foreground_contours = [contours[cont_idx] for cont_idx in filtered]
    hole_contours = []
    for hole_ids in all_holes:
        unfiltered_holes = [contours[idx] for idx in hole_ids]
        unfilered_holes = sorted(unfiltered_holes, key=cv2.contourArea, reverse=True)
        unfilered_holes = unfilered_holes[:max_n_holes]
        filtered_holes = []
        for hole in unfilered_holes:
            if cv2.contourArea(hole) > a_h:
                filtered_holes.append(hole)
        hole_contours.append(filtered_holes)
    return foreground_contours, hole_contours, kept_areas


def is_in_contour_v3_easy(cont, patch_size, pt):
    shift = int(patch_size // 2 * 0.5)
    center = (pt[0] + patch_size // 2, pt[1] + patch_size // 2)
    if shift > 0:
        all_points = [(center[0] - shift, center[1] - shift), (center[0] + shift, center[1] + shift),
                      (center[0] + shift, center[1] - shift), (center[0] - shift, center[1] + shift)]
    else:
        all_points = [center]
    for points in all_points:
        if cv2.pointPolygonTest(cont, tuple(np.array(points).astype(float)), False) >= 0:
            return 1
    return 0


def is_in_holes(holes, pt, patch_size):
    for hole in holes:
        if cv2.pointPolygonTest(hole, (pt[0] + patch_size / 2, pt[1] + patch_size / 2), False) > 0:
            return 1
    return 0


def process_contour(cont, contour_holes, img_w, img_h, patch_size, step_size, use_padding):
    """process_contour at patch_level 0 (downsample 1), contour_fn four_pt"""
    start_x, start_y, w, h = cv2.boundingRect(cont)
    if use_padding:
        stop_y, stop_x = start_y + h, start_x + w
    else:
        stop_y = min(start_y + h, img_h - patch_size + 1)
        stop_x = min(start_x + w, img_w - patch_size + 1)
    x_range = np.arange(start_x, stop_x, step=step_size)
    y_range = np.arange(start_y, stop_y, step=step_size)
    x_coords, y_coords = np.meshgrid(x_range, y_range, indexing="ij")
    cand = np.array([x_coords.flatten(), y_coords.flatten()]).transpose()
    res = [c for c in cand if is_in_contour_v3_easy(cont, patch_size, c) and
           not is_in_holes(contour_holes, c, patch_size)]
    return res if len(res) > 1 else []


def clam(mask, scale, a_t_px, a_h_px, w0, h0, ps, step, padding, max_n_holes=8):
    """from the closed mask: contours, filters (areas already in seg
    pixels), scaling to level 0, tiles"""
    contours, hier = cv2.findContours(mask, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE)
    if hier is None:
        return [], [], [], []
    hierarchy = np.squeeze(hier, axis=(0,))[:, 2:]
    fg, holes, areas = filter_contours(contours, hierarchy, a_t_px, a_h_px, max_n_holes)
    fg0 = [np.array(c * scale, dtype="int32") for c in fg]
    holes0 = [[np.array(h * scale, dtype="int32") for h in hs] for hs in holes]
    tiles = []
    for c, hs in zip(fg0, holes0):
        tiles += [(int(t[0]), int(t[1])) for t in process_contour(c, hs, w0, h0, ps, step, padding)]
    return fg0, holes0, areas, tiles


def poly_digest(c):
    return digest(np.asarray(c, np.int64).reshape(-1) + (1 << 31))


def clam_lines(fg0, holes0, areas, tiles):
    lines = ["nregions %d" % len(fg0)]
    for c, hs, a in zip(fg0, holes0, areas):
        x, y, w, h = cv2.boundingRect(c)
        lines.append("region %d %d %r %d %d %d %d %s" % (
            len(c), len(hs), float(a), x, y, w, h, poly_digest(c)))
        for hh in hs:
            lines.append("hole %d %s" % (len(hh), poly_digest(hh)))
    lines.append("ntiles %d" % len(tiles))
    for i in range(0, len(tiles), 16):
        lines.append("tiles " + " ".join("%d %d" % t for t in tiles[i:i + 16]))
    return lines


def clam_case(name, w, h, ops, seed, runs):
    """RUNS: (sthresh, mthresh, close, otsu, sx, sy, a_t, a_h, ps, step,
    padding); a_t/a_h in segmentation pixels, tiles at 'level 0' =
    segmentation * (sx, sy)"""
    rgb = scene_rgb(draw(w, h, ops), seed)
    lines = ["size %d %d" % (w, h)] + ["op " + op_line(o) for o in ops] + ["end", "rgb %d" % seed]
    for r in runs:
        st, mt, cl, otsu, sx, sy, a_t, a_h, ps, step, pad = r
        *_, mask = mask_stages(rgb, st, 255, mt, cl, otsu)
        w0, h0 = int(round(w * sx)), int(round(h * sy))
        fg0, holes0, areas, tiles = clam(mask, (sx, sy), a_t, a_h, w0, h0, ps, step, pad)
        lines.append("run %d %d %d %d %r %r %r %r %d %d %d %d %d" % (
            st, mt, cl, otsu, sx, sy, a_t, a_h, ps, step, pad, w0, h0))
        lines += clam_lines(fg0, holes0, areas, tiles)
        lines.append("endrun")
    write("clam-%s.txt" % name, lines)


# ---------------------------------------------------------------- slides

def slide_case(name, path, data_rel):
    import openslide
    s = openslide.OpenSlide(path)
    seg_level = 0 if s.level_count == 1 else s.get_best_level_for_downsample(64)
    # WholeSlideImage._assertLevelDownsamples
    dim0 = s.level_dimensions[0]
    lds = []
    for ds, dim in zip(s.level_downsamples, s.level_dimensions):
        est = (dim0[0] / float(dim[0]), dim0[1] / float(dim[1]))
        lds.append(est if est != (ds, ds) else (ds, ds))
    scale = lds[seg_level]
    w, h = s.level_dimensions[seg_level]
    img = np.array(s.read_region((0, 0), seg_level, (w, h)))
    rgb = np.ascontiguousarray(img[:, :, :3])
    ref_area = int(512 ** 2 / (scale[0] * scale[1]))
    lines = ["# %s: OpenSlide %s, seg level %d" % (data_rel, openslide.__library_version__, seg_level),
             "slide %s %d %d %d %r %r %d" % (data_rel, seg_level, w, h, scale[0], scale[1], ref_area),
             "rgb %d" % digest(rgb)]
    for (label, a_t, a_h, otsu, pad) in [("clam", 100, 16, 0, 1), ("tcga", 16, 4, 0, 1),
                                          ("small", 1, 0.25, 0, 1), ("small-nopad", 1, 0.25, 0, 0),
                                          ("small-otsu", 1, 0.25, 1, 1)]:
        s_, med, t, th, mask = mask_stages(img, 8, 255, 7, 4, otsu)  # RGBA in, as CLAM
        fg0, holes0, areas, tiles = clam(mask, scale, a_t * ref_area, a_h * ref_area,
                                         dim0[0], dim0[1], 256, 256, pad)
        lines.append("run %s %r %r %d %d %d %d %d" % (label, a_t, a_h, otsu, pad, t,
                                                       digest(mask), int(np.count_nonzero(mask))))
        lines += clam_lines(fg0, holes0, areas, tiles)
        lines.append("endrun")
        print("%s %s: %d regions, %d tiles" % (name, label, len(fg0), len(tiles)))
    write("slide-%s.txt" % name, lines)


def main():
    os.makedirs(OUT, exist_ok=True)
    hsv_case()
    # hand-drawn: a blob with two holes and an island in one hole, an
    # 8-connected diagonal, single pixels, a thin line, border contact
    art = [
        "..........................................",
        ".########.........#.......................",
        ".#......#........#.#......##########......",
        ".#.####.#.......#...#.....#........#......",
        ".#.#..#.#........#.#......#.######.#....#.",
        ".#.#.##.#.........#.......#.#....#.#......",
        ".#.####.#.................#.#.##.#.#..#...",
        ".#......#....#............#.#.##.#.#...#..",
        ".########.....#...........#.#....#.#....#.",
        "...............#..........#.######.#......",
        "..#.#..........#..........#........#......",
        "...#...........#..........##########......",
        "..#.#..........#..........................",
        "...............#....###########...........",
        "....##.........#....#.........#...........",
        "....##..............#.#######.#...........",
        "....................#.#.....#.#.......####",
        "#..........#........#.#.###.#.#.......#..#",
        "##........#.#.......#.#.#.#.#.#.......#..#",
        "#.#........#........#.#.###.#.#.......####",
        "#..#................#.#.....#.#...........",
        "#...#...............#.#######.#....#.#.#..",
        "#....#..............#.........#.....#.#...",
        "######..............###########....#.#.#..",
    ]
    ops = [("row", y, 0, r) for y, r in enumerate(art)]
    n = contour_case("art", len(art[0]), len(art), ops, tests=4)
    print("contours-art: %d contours" % n)
    # the same, all touching the image border (framed by foreground)
    ops2 = [("rect", 0, 0, 43, 25, 1), ("rect", 1, 1, 42, 24, 0)] + \
           [("row", y + 1, 1, r) for y, r in enumerate(art)]
    print("contours-frame: %d" % contour_case("frame", 44, 26, ops2, tests=2))
    # disks: rings, nested islands inside holes (three levels), touching
    disks = [("disk", 30, 30, 26, 1), ("disk", 30, 30, 20, 0), ("disk", 30, 30, 14, 1),
             ("disk", 30, 30, 9, 0), ("disk", 30, 30, 4, 1), ("disk", 72, 20, 12, 1),
             ("disk", 72, 20, 5, 0), ("disk", 86, 34, 7, 1), ("disk", 95, 55, 9, 1),
             ("rect", 60, 45, 80, 58, 1), ("rect", 63, 48, 66, 51, 0), ("rect", 70, 48, 77, 55, 0),
             ("line", 0, 59, 1, -1, 60, 1), ("line", 100, 0, -1, 1, 30, 0)]
    print("contours-disks: %d" % contour_case("disks", 104, 60, disks, tests=1))
    # hashed noise: hundreds of contours (more than OpenCV's 7-bit marks),
    # lone pixels, diagonal links, holes everywhere
    noise = [("noise", 0, 0, 69, 41, 11, 430, 1)]
    print("contours-noise: %d" % contour_case("noise", 70, 42, noise, tests=1, with_pts=False))
    dense = [("noise", 0, 0, 47, 35, 5, 620, 1), ("disk", 24, 18, 8, 0)]
    print("contours-dense: %d" % contour_case("dense", 48, 36, dense, tests=0, with_pts=False))
    # a single pixel image, and a full one
    contour_case("one", 1, 1, [("rect", 0, 0, 0, 0, 1)], tests=1)
    contour_case("full", 5, 4, [("rect", 0, 0, 4, 3, 1)], tests=1)
    contour_case("empty", 6, 3, [], tests=0)
    # closing with even and odd kernels, near the borders
    close_case("noise", 61, 47, [("noise", 0, 0, 60, 46, 3, 300, 1), ("rect", 0, 20, 5, 30, 1),
                                 ("rect", 55, 0, 60, 3, 1)])
    close_case("art", len(art[0]), len(art), ops)
    # mask stages on RGB scenes
    scene = [("disk", 50, 40, 30, 1), ("disk", 50, 40, 10, 0), ("disk", 50, 40, 4, 1),
             ("rect", 0, 70, 30, 89, 1), ("disk", 110, 20, 15, 1), ("noise", 90, 50, 127, 89, 9, 200, 1),
             ("line", 5, 5, 1, 1, 40, 1)]
    stages_case("scene", 128, 90, scene, 21,
                [(8, 7, 4, 0), (8, 7, 4, 1), (20, 5, 0, 0), (8, 3, 3, 0), (8, 9, 6, 1), (0, 1, 2, 0)])
    # CLAM's filters and grid on the scene, at several scales and sizes
    clam_case("scene", 128, 90, scene, 21, [
        (8, 7, 4, 0, 1.0, 1.0, 0.0, 0.0, 16, 16, 1),
        (8, 7, 4, 0, 1.0, 1.0, 100.0, 4.0, 16, 16, 0),
        (8, 7, 4, 0, 4.0, 4.0, 50.0, 2.0, 64, 64, 1),
        (8, 7, 4, 0, 16.0869565217, 16.0378378378, 20.0, 1.0, 256, 256, 1),
        (8, 7, 4, 1, 3.7, 4.2, 10.0, 3.0, 45, 30, 1),
        (8, 7, 4, 0, 2.0, 2.0, 500.0, 30.0, 17, 17, 1),
        (8, 7, 4, 0, 1.0, 1.0, 0.0, 0.0, 40, 40, 1),
    ])
    data = sys.argv[1] if len(sys.argv) > 1 else os.environ.get(
        "MMPATH_TEST_DATA", os.path.join(ROOT, "..", "shared", "data"))
    for name, rel in [("cmu1", "wsi/CMU-1-Small-Region.svs"),
                      ("cmu1-pyramid", "wsi/derived/CMU-1-Small-Region_pyramid_jpeg.tif")]:
        p = os.path.join(data, rel)
        if os.path.exists(p):
            slide_case(name, p, rel)
        else:
            print("skip %s: %s not found" % (name, p))


if __name__ == "__main__":
    main()
