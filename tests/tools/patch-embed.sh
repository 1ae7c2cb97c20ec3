#!/bin/sh
# patch-embed.sh: patch-embed end to end on real tiles of
# CMU-1-Small-Region.svs (read at run time by tests/unit/embed-helper with
# our slide reader) with random:42 weights: features equal torchvision's
# (tests/fixtures/resnet, tests/gen/resnet_ref.py) for layer 3, layer 4 and
# --resize 224; coords-only tiles + --slide equal the pixel path; any -@
# gives the same bytes; --half; several segments; the header; bad weights
# files, coords-only without --slide, the wrong slide, bad usage.
. "$top_srcdir/tests/tools/lib.sh"
set -e
h=$top_builddir/tests/unit/embed-helper
fix=$top_srcdir/tests/fixtures/resnet
need_data wsi/CMU-1-Small-Region.svs
slide=$MMPATH_TEST_DATA/wsi/CMU-1-Small-Region.svs
cd "$T_DIR"
# lt A B: A < B as numbers
lt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }'; }
# close FEATURES X Y NAME: the tile's features against the fixture
close() {
    set -- $("$h" ref "$1" "$2" "$3" "$fix/$4.f32") "$4"
    if lt "$1" 1e-4 && lt 0.99999 "$2"; then pass "$3: rel $1, cosine $2"
    else fail "$3: rel $1, cosine $2 (want < 1e-4, > 0.99999)"; fi
}

run patch-embed
is "$rc" 2 "no arguments: usage, exit 2"
run patch-embed --help
is "$rc" 0 "--help exits 0"
like "$out" '^Usage: patch-embed' "--help prints Usage"
run patch-embed --layer 5 --weights random:1 x.mpk
is "$rc" 2 "--layer 5: exit 2"
run patch-embed x.mpk
is "$rc" 2 "no --weights: exit 2"
like "$err" 'weights: required' "says --weights is required"

"$h" tiles pix.mpk "$slide" 256 0 cmu 0 0 1000 1200 1500 2400 2000 2800 600 700
"$h" tiles co.mpk "$slide" 256 1 cmu 0 0 1000 1200 1500 2400 2000 2800 600 700
run patch-embed --weights random:42 -@ 2 --batch 3 -o f.mpk pix.mpk
is "$rc" 0 "pixels: exit 0"
like "$err" 'random:42: deterministic random weights, not ImageNet' "stderr: not ImageNet features"
close f.mpk 0 0 l3a
close f.mpk 1000 1200 l3b
close f.mpk 2000 2800 l3d
run mpk cat f.mpk
like "$out" '"kind":"features","id":"cmu"' "header: kind features, the slide's id"
like "$out" '"patch_size":256' "header: the tiles meta kept"
like "$out" '"n":5' "header: n"
like "$out" '"dim":1024,"model":"resnet50","layer":3,"pool":"avg","weights":"random:42","weights_note":"[^"]*not ImageNet' "header: dim, model, layer, weights, note"
like "$out" '"preprocessing":\{"resize":"none","to_tensor":"rgb/255","mean":\[0.485,0.456,0.406\],"std":\[0.229,0.224,0.225\]\}' "header: preprocessing"
like "$out" '"chunk":0,"xy":\{[^}]*"shape":\[5,2\]' "one chunk of 5 rows"
like "$out" '"parents":\[\{"kind":"tiles","id":"cmu","digest":"[0-9a-f]{16}"\}\]' "trailer: the tiles' digest"

run patch-embed --weights random:42 -@ 2 --batch 3 --slide "$slide" -o c.mpk co.mpk
is "$rc" 0 "coords-only + --slide: exit 0"
is "$("$h" cmp c.mpk f.mpk)" 0 "coords + --slide equals the pixel path"
run patch-embed --weights random:42 -@ 1 --batch 3 -o f1.mpk pix.mpk
if cmp -s f.mpk f1.mpk; then pass "-@ 1 and -@ 2: the same bytes"
else fail "-@ 1 and -@ 2: the same bytes"; fi
run patch-embed --weights random:42 --half --batch 3 -o h.mpk pix.mpk
v=$("$h" cmp h.mpk f.mpk)
if lt "$v" 1e-3; then pass "--half: f16 of the same features ($v)"; else fail "--half ($v)"; fi
run mpk cat h.mpk
like "$out" '"f":\{"tensor":"f16"' "--half writes f16"
run_in co.mpk patch-embed --weights random:42 -o x.mpk
is "$rc" 1 "coords-only without --slide: exit 1"
like "$err" 'coords-only.*--slide' "says to give --slide"
run patch-embed --weights random:42 --slide "$MMPATH_TEST_DATA/wsi/tcga-cr-7395-01a-01-ts1.svs" -o x.mpk co.mpk
is "$rc" 1 "another slide: exit 1"
like "$err" 'slide digest' "says the digests differ"

# layer 4, --resize 224, two segments in one stream
"$h" tiles l4.mpk "$slide" 256 0 a 600 700 1300 1900
"$h" tiles r.mpk "$slide" 256 0 b 800 300
cat l4.mpk r.mpk > two.mpk
run patch-embed --weights random:42 --layer 4 -o f4.mpk l4.mpk
close f4.mpk 600 700 l4a
close f4.mpk 1300 1900 l4b
run patch-embed --weights random:42 --resize 224 -o fr.mpk two.mpk
is "$rc" 0 "two segments: exit 0"
close fr.mpk 800 300 r3a
run mpk info fr.mpk
like "$out" "features 'a'" "segment a"
like "$out" "features 'b'" "segment b"
run mpk cat fr.mpk
like "$out" '"preprocessing":\{"resize":224,"interpolation":"bilinear \(PIL, antialiased\)"' "header: resize 224"

# bad weights files: one line, exit 1
printf 'not weights\n' > bad.safetensors
run patch-embed --weights bad.safetensors -o x.mpk pix.mpk
is "$rc" 1 "not safetensors: exit 1"
like "$err" '^patch-embed: bad.safetensors: not a safetensors file' "says not a safetensors file"
is "$(grep -vc 'warning: OpenBLAS' "$err")" 1 "one line (besides a BLAS warning)"
[ ! -e x.mpk ] && pass "no output left" || fail "no output left"
run patch-embed --weights random:x -o x.mpk pix.mpk
is "$rc" 1 "bad seed: exit 1"

# --device: cuda needs a GPU (one line and exit 1 without one); auto takes
# the CPU then, and its features are the CPU's; the header says which ran
run patch-embed --weights random:42 --batch 3 --device cuda -o g.mpk pix.mpk
if [ "$rc" -eq 1 ]; then
    like "$err" '^patch-embed: --device cuda: ' "--device cuda without a GPU: says why"
    is "$(wc -l <"$err")" 1 "--device cuda without a GPU: one line"
    is "$(ls g.mpk 2>/dev/null)" "" "--device cuda without a GPU: no output"
    run patch-embed --weights random:42 --batch 3 --device auto -o a.mpk pix.mpk
    is "$rc" 0 "--device auto without a GPU: exit 0"
    is "$("$h" cmp a.mpk f.mpk)" 0 "--device auto without a GPU: the CPU's features"
else
    is "$rc" 0 "--device cuda with a GPU: exit 0"
    run mpk cat g.mpk
    like "$out" '"device":"cuda fp16"' "--device cuda: the header says cuda fp16"
    v=$("$h" cmp g.mpk f.mpk)
    if lt "$v" 3e-2; then pass "--device cuda: the CPU's features within FP16 precision ($v)"
    else fail "--device cuda: the CPU's features within FP16 precision ($v)"; fi
    pass "(a GPU answered)"
fi
run mpk cat f.mpk
like "$out" '"device":"cpu"' "header: device cpu"
run patch-embed --weights random:42 --device gpu pix.mpk
is "$rc" 2 "--device gpu: usage error"
run patch-embed --weights random:42 --precision fp8 pix.mpk
is "$rc" 2 "--precision fp8: usage error"

echo "1..$T_N"
done_testing
