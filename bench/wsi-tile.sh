#!/bin/sh
# wsi-tile.sh: tiles per second for a whole slide at 20x, 256 px, wsi-tile
# against the Python pipeline it replaces (bench/wsi_tile_anchor.py: CLAM's
# segmentation with OpenCV, then openslide-python read_region per tile),
# same slide, 1 and 2 threads, printed as ratios; then peak RSS of
# wsi-tile on a large synthetic pyramidal TIFF.
#
#   make && bench/wsi-tile.sh [BUILDDIR]
#
# Timings are wall seconds (best of REPS) and CPU seconds (user + system of
# all threads: ours reads tiles on -@ threads, writes on the main thread
# and compresses on zstd's threads, so "one thread" is -@ 1, not one CPU).
# Ours: the whole process; the anchor: from opening the slide (its own
# clock, without the interpreter's start and imports).
#
# Both slides are generated here with the vips CLI (libvips-tools) into a
# temporary directory and removed at the end:
# - the throughput slide: CMU-1-Small-Region.svs ($MMPATH_TEST_DATA or
#   ../shared/data) replicated REP x REP (default 6: 13320 x 17802 px,
#   about 2000 tiles), saved as a tiled pyramidal JPEG TIFF at 0.499 um/px;
# - the memory slide: BIG x BIG pixels (default 60000) of flat background
#   with nine copies of CMU-1 as tissue, tiled pyramidal JPEG (made without
#   any full-size intermediate file).
#   Generating it takes a few minutes; BIG=0 skips it.
# Env: PYTHON (default /work/main/bench/.venv/bin/python when it has
# openslide and cv2, else /usr/bin/python3), REPS (best of, default 3).
# SPDX-License-Identifier: MIT
set -eu

build=${1:-.}
here=$(cd "$(dirname "$0")" && pwd)
bin=$build/tools/wsi-tile
data=${MMPATH_TEST_DATA:-$here/../../shared/data}
cmu=$data/wsi/CMU-1-Small-Region.svs
reps=${REPS:-3}
rep=${REP:-6}
big=${BIG:-60000}

[ -x "$bin" ] || { echo "wsi-tile.sh: $bin is not built (make)" >&2; exit 1; }
[ -f "$cmu" ] || { echo "wsi-tile.sh: $cmu not found (set MMPATH_TEST_DATA)" >&2; exit 1; }
command -v vips >/dev/null || { echo "wsi-tile.sh: the vips CLI is needed (apt-get install libvips-tools)" >&2; exit 1; }
has_mods() { "$1" -c 'import openslide, cv2, numpy' 2>/dev/null; }
py=
for p in ${PYTHON:-} /work/main/bench/.venv/bin/python /usr/bin/python3; do
    if [ -x "$p" ] && has_mods "$p"; then py=$p; break; fi
done
[ -n "$py" ] || { echo "wsi-tile.sh: no Python with openslide, cv2 and numpy" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/wsi-tile-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

echo "anchor: $py ($("$py" -c 'import openslide, cv2; print("openslide-python", openslide.__version__, "OpenSlide", openslide.__library_version__, "OpenCV", cv2.__version__)'))"
echo "ours:   $bin ($(uname -m), $(nproc) CPUs), best of $reps"

# ---- throughput slide
vips extract_band "$cmu" "$tmp/rgb.v" 0 --n 3
vips replicate "$tmp/rgb.v" "$tmp/rep.v" "$rep" "$rep"
# 0.499 um/px = 2004.008 px/mm
vips tiffsave "$tmp/rep.v" "$tmp/slide.tif" --tile --tile-width 256 --tile-height 256 \
    --pyramid --compression jpeg --Q 85 --xres 2004.008 --yres 2004.008
rm -f "$tmp/rep.v"
echo "slide:  CMU-1-Small-Region x ${rep}x${rep}: $(vipsheader "$tmp/slide.tif")"

# secs CMD...: "wall:cpu" seconds of CMD (cpu: user + system, all threads)
secs() {
    /usr/bin/time -f "%e %U %S" -o "$tmp/time" "$@" >/dev/null
    awk '{ printf "%.3f:%.3f", $1, $2 + $3 }' "$tmp/time"
}
# the run with the least wall time of "wall:cpu" pairs
best() { tr ' ' '\n' | grep . | sort -t: -k1,1g | head -1 | tr ':' ' '; }

# ours also with MMPATH_SLIDE_DIRECT=0 (every tile through OpenSlide's
# read_region, as before the direct JPEG reader), once, for reference
off=$(secs env MMPATH_SLIDE_DIRECT=0 "$bin" -q -@ 1 --mpp 0.5 -o "$tmp/o.mpk" "$tmp/slide.tif")
for th in 1 2; do
    o="" a=""
    i=0
    while [ "$i" -lt "$reps" ]; do
        o="$o $(secs "$bin" -q -@ "$th" --mpp 0.5 -o "$tmp/o.mpk" "$tmp/slide.tif")"
        line=$("$py" "$here/wsi_tile_anchor.py" "$tmp/slide.tif" 0.499 "$th")
        a="$a $(echo "$line" | awk '{ printf "%s:%s", $4, $6 }')"
        i=$((i + 1))
    done
    n=$("$build/tools/mpk" info "$tmp/o.mpk" | sed -n 's/.* \([0-9]*\) records.*/\1/p' | head -1)
    na=$(echo "$line" | awk '{ print $2 }')
    echo "$th $n $(echo "$o" | best) $na $(echo "$a" | best)" | awk '{
        printf "threads %d: ours %d tiles %.2f s %.1f tiles/s (cpu %.2f ms/tile) | anchor %d tiles %.2f s %.1f tiles/s (cpu %.2f ms/tile) | ratio %.2f, by cpu %.2f\n",
            $1, $2, $3, $2 / $3, 1000 * $4 / $2, $5, $6, $5 / $6, 1000 * $7 / $5, ($2 / $3) / ($5 / $6), ($7 / $5) / ($4 / $2) }'
    [ "$th" = 1 ] && echo "$n $off" | tr ':' ' ' | awk '{
        printf "threads 1, MMPATH_SLIDE_DIRECT=0 (all through read_region): ours %.2f s %.1f tiles/s (cpu %.2f ms/tile)\n",
            $2, $1 / $2, 1000 * $3 / $1 }'
done
ls -l "$tmp/o.mpk" | awk '{ printf "ours writes the tiles stream too: %.1f MB\n", $5 / 1e6 }'
rm -f "$tmp/o.mpk" "$tmp/slide.tif"

# ---- peak RSS on a large synthetic slide
if [ "$big" -gt 0 ]; then
    echo "memory: generating a ${big} x ${big} pyramidal TIFF (background + 9 tissue pieces)..."
    # no full-size intermediate: one cell (a CMU-1 copy on background,
    # JPEG-tiled) replicated 3 x 3 straight into the pyramid
    s=$(date +%s)
    cell=$((big / 3))
    vips embed "$tmp/rgb.v" "$tmp/cell.tif[tile,compression=jpeg,Q=85]" $((cell / 3)) $((cell / 3)) \
        "$cell" "$cell" --extend background --background "242 242 242"
    vips replicate "$tmp/cell.tif" \
        "$tmp/big.tif[tile,pyramid,compression=jpeg,Q=85,xres=2004.008,yres=2004.008]" 3 3
    rm -f "$tmp"/*.v "$tmp/cell.tif"
    echo "memory: generated in $(( $(date +%s) - s )) s: $(vipsheader "$tmp/big.tif"), $(du -m "$tmp/big.tif" | cut -f1) MB"
    for th in 1 2; do
        /usr/bin/time -f "%e %M" -o "$tmp/time" "$bin" -q -@ "$th" --mpp 0.5 -o "$tmp/big.mpk" "$tmp/big.tif"
        n=$("$build/tools/mpk" info "$tmp/big.mpk" | sed -n 's/.* \([0-9]*\) records.*/\1/p' | head -1)
        awk -v th="$th" -v n="$n" '{ printf "memory: threads %d: %d tiles in %.1f s, peak RSS %.0f MiB (limit 1024)\n", th, n, $1, $2 / 1024 }' "$tmp/time"
        rm -f "$tmp/big.mpk"
    done
fi
