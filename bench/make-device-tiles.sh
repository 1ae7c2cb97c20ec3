#!/bin/bash
# make-device-tiles.sh EMBED_GPU OUT.mpk [N]: the tile stream the device
# check reads: N (default 160) real 256x256 tiles of CMU-1-Small-Region
# (OpenSlide through Debian's python3-openslide; two grids, offset by half
# a tile) packed by bench/embed-gpu. With no slide or no openslide module,
# synthetic H&E-coloured tiles (numpy) instead, said on stderr. The file is
# a build product (~20-30 MB): never committed; the benchmark passes over
# it several times (--repeat) rather than carrying 2000 tiles.
# The slide is found under $MMPATH_TEST_DATA (as `make check` sets it), or
# the --with-test-data of the configured Makefile.
set -eu
emb=$1 out=$2 n=${3:-160}
data=${MMPATH_TEST_DATA:-$(sed -n 's/^MMPATH_TEST_DATA = //p' Makefile 2>/dev/null)}
slide=$data/wsi/CMU-1-Small-Region.svs
py=${PYTHON3:-/usr/bin/python3}
"$py" - "$slide" "$n" <<'PY' | "$emb" pack 256 "$out"
import sys
path, n = sys.argv[1], int(sys.argv[2])
out = sys.stdout.buffer
try:
    import openslide
    s = openslide.OpenSlide(path)
    w, h = s.dimensions
    k = 0
    for off in (0, 128):
        for y in range(off, h - 255, 256):
            for x in range(off, w - 255, 256):
                if k == n:
                    break
                out.write(s.read_region((x, y), 0, (256, 256)).convert("RGB").tobytes())
                k += 1
    sys.stderr.write("make-device-tiles: %d tiles of %s\n" % (k, path))
except Exception as e:  # no module, no slide: synthetic tiles
    import numpy as np
    sys.stderr.write("make-device-tiles: %s unavailable (%s): synthetic tiles\n" % (path, e))
    r = np.random.default_rng(0)
    for i in range(n):
        base = np.array([200, 120, 170], np.int16)
        t = base + r.integers(-40, 40, (256, 256, 3))
        out.write(np.clip(t, 0, 255).astype(np.uint8).tobytes())
PY
