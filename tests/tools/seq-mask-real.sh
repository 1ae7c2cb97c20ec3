#!/bin/sh
# seq-mask-real.sh: seq-mask on real slides through the real tools:
# wsi-tile (CMU-1-Small-Region.svs at --mag 20, its pyramid TIFF at --mpp
# 0.5: two slides, two segments) | patch-embed --weights random:7 (f32, and
# --half for f16), then the contiguous (longer and shorter than the slides),
# sample (without and with replacement) and random modes with --views 2.
# Every view token is checked against the source features: its index within
# [0, n), its "xy" and its "f" row equal (as printed by mpk cat -f, the
# shortest text that reads back to the same value) to the source's row at
# that index; counts, hidden counts, contiguity from the start (repeated in
# tile order when the slide is shorter), unique indices without replacement,
# the same seed gives the same bytes, two slides' masks differ under one
# seed, f16 views keep f16 values and draw as the f32 ones. No Python.
. "$top_srcdir/tests/tools/lib.sh"
set -e
svs=wsi/CMU-1-Small-Region.svs
tif=wsi/derived/CMU-1-Small-Region_pyramid_jpeg.tif
need_data "$svs" "$tif"
A=CMU-1-Small-Region
B=CMU-1-Small-Region_pyramid_jpeg
cd "$T_DIR"

# views SRC.json VIEWS.json: one line per view,
#   id view tokens hidden bad_idx bad_xy bad_f ftype idx,... mask,...
# where bad_idx counts indices outside [0, n) of the source slide, bad_xy and
# bad_f the tokens whose "xy" / "f" differ from the source row at their index
# (a view in several chunk records is joined). Rows are compared as text.
views() {
    awk '
    # body KEY: the "data" of tensor KEY of this line, without the outer [ ]
    function body(key,   s) {
        if (!match($0, "\"" key "\":[{][^}]*[}]")) return ""
        s = substr($0, RSTART, RLENGTH)
        sub(/.*"data":\[/, "", s); sub(/\][}]$/, "", s)
        return s
    }
    function ttype(key,   s) {
        if (!match($0, "\"" key "\":[{]\"tensor\":\"[a-z0-9]*\"")) return "?"
        s = substr($0, RSTART, RLENGTH); sub(/.*"tensor":"/, "", s); sub(/"$/, "", s)
        return s
    }
    # rows2 S A: split the 2-D data S ("[a,b],[c,d]") into A[1..k]; k
    function rows2(s, a,   k) {
        sub(/^\[/, "", s); sub(/\]$/, "", s)
        return split(s, a, /\],\[/)
    }
    function str(key,   s) {
        if (!match($0, "\"" key "\":\"[^\"]*\"")) return ""
        s = substr($0, RSTART, RLENGTH); sub(/^"[^"]*":"/, "", s); sub(/"$/, "", s)
        return s
    }
    function num(key,   s) {
        if (!match($0, "\"" key "\":[0-9]+")) return -1
        s = substr($0, RSTART, RLENGTH); sub(/.*:/, "", s)
        return s + 0
    }
    FNR == NR {            # the features stream
        if ($0 ~ /^[{]"mpk":/) { id = str("id"); n[id] = 0; next }
        if ($0 ~ /^[{]"mpk_end":/) next
        k = rows2(body("f"), fr); rows2(body("xy"), xr)
        for (i = 1; i <= k; i++) { F[id, n[id]] = fr[i]; XY[id, n[id]] = xr[i]; n[id]++ }
        next
    }
    $0 ~ /^[{]"mpk/ { next }   # views headers and trailers
    {
        id = str("id"); v = num("view"); key = id SUBSEP v
        if (!(key in tok)) { order[++nv] = key; vid[nv] = id; vv[nv] = v; tok[key] = 0 }
        k = split(body("idx"), ix, ","); split(body("mask"), mk, ",")
        rows2(body("f"), fr); rows2(body("xy"), xr)
        ft[key] = ttype("f")
        for (j = 1; j <= k; j++) {
            t = ix[j] + 0
            if (!(id in n) || t < 0 || t >= n[id]) bi[key]++
            else {
                if (XY[id, t] != xr[j]) bx[key]++
                if (F[id, t] != fr[j]) bf[key]++
            }
            hid[key] += mk[j]
            il[key] = il[key] (tok[key] ? "," : "") ix[j]
            ml[key] = ml[key] (tok[key] ? "," : "") mk[j]
            tok[key]++
        }
    }
    END {
        for (i = 1; i <= nv; i++) {
            key = order[i]
            print vid[i], vv[i], tok[key], hid[key] + 0, bi[key] + 0, bx[key] + 0, bf[key] + 0,
                  ft[key], il[key], ml[key]
        }
    }' "$1" "$2"
}
# field N of the view line of slide ID, view V in $vl
fld() { awk -v id="$1" -v v="$2" -v f="$3" '$1 == id && $2 == v { print $f }' "$vl"; }
# all: ID V -> "tokens hidden bad_idx bad_xy bad_f ftype"
summ() { awk -v id="$1" -v v="$2" '$1 == id && $2 == v { print $3, $4, $5, $6, $7, $8 }' "$vl"; }
# seqn FROM COUNT MOD: FROM, FROM+1, ... (mod MOD), comma-separated
seqn() { awk -v a="$1" -v c="$2" -v m="$3" 'BEGIN { for (j = 0; j < c; j++) printf "%s%d", j ? "," : "", (a + j) % m }'; }

# two slides, two resolutions, two segments
run wsi-tile --mag 20 -o a.tiles "$MMPATH_TEST_DATA/$svs"
is "$rc" 0 "wsi-tile --mag 20 $A: exit 0"
run wsi-tile --mpp 0.5 -o b.tiles "$MMPATH_TEST_DATA/$tif"
is "$rc" 0 "wsi-tile --mpp 0.5 $B: exit 0"
# ResNet-50 (random weights) on the tiles resized to 64 px: real features of
# real tiles, at a 16th of the native-size cost
cat a.tiles b.tiles | patch-embed --weights random:7 --resize 64 -@ 2 -q | tee f.mpk |
    seq-mask --mode contiguous --length 64 --views 2 --seed 5 > piped.views
cat a.tiles b.tiles > t.mpk
run patch-embed --weights random:7 --resize 64 --half -@ 2 -q -o h.mpk t.mpk
is "$rc" 0 "patch-embed --half: exit 0"
run mpk info f.mpk
like "$out" "segment 1: features '$A'" "f32 features: segment 1 is $A"
like "$out" "segment 2: features '$B'" "f32 features: segment 2 is $B"
mpk cat -f f.mpk > f.json
mpk cat -f h.mpk > h.json
na=$(sed -n "/\"id\":\"$A\"/s/.*\"n\":\([0-9]*\).*/\1/p" f.json | head -1)
nb=$(sed -n "/\"id\":\"$B\"/s/.*\"n\":\([0-9]*\).*/\1/p" f.json | head -1)
diag "$A: $na tiles, $B: $nb tiles"
if [ -n "$na" ] && [ -n "$nb" ] && [ "$na" -gt 20 ] && [ "$na" -lt 64 ] &&
    [ "$nb" -gt 20 ] && [ "$nb" -lt 64 ]; then
    pass "both slides have between 20 and 64 tiles ($na, $nb)"
else fail "both slides have between 20 and 64 tiles (${na:-?}, ${nb:-?})"; fi
if grep -q '"f":{"tensor":"f16"' h.json; then pass "--half: f16 features"
else fail "--half: f16 features"; fi

# check_views NAME SRC.json VIEWS: the common checks of every view
check_views() {
    mpk cat -f "$3" > "$3.json"
    vl=$3.vl
    views "$2" "$3.json" > "$vl"
    is "$(awk '{ print $1, $2 }' "$vl" | tr '\n' ' ')" "$A 0 $A 1 $B 0 $B 1 " "$1: 2 views per slide, in order"
    is "$(awk '{ s += $5 } END { print s + 0 }' "$vl")" 0 "$1: every index within [0, n)"
    is "$(awk '{ s += $6 } END { print s + 0 }' "$vl")" 0 "$1: every token's xy is its source tile's"
    is "$(awk '{ s += $7 } END { print s + 0 }' "$vl")" 0 "$1: every token's f is its source row"
}
# hidden R LEN: floor(R * LEN + 0.5)
hidden() { awk -v r="$1" -v l="$2" 'BEGIN { printf "%d", int(r * l + 0.5) }'; }

for src in f h; do
    if [ $src = f ]; then ty=f32; else ty=f16; fi
    # contiguous, longer than both slides: the whole slide from its first
    # token (start = U(1) = 0), repeated in order and cut at 64
    seq-mask --mode contiguous --length 64 --views 2 --seed 5 -o c64.$src $src.mpk
    check_views "contiguous 64 $ty" $src.json c64.$src
    is "$(summ $A 0)" "64 32 0 0 0 $ty" "contiguous 64 $ty: $A: 64 tokens, 32 hidden, $ty rows"
    is "$(summ $B 1)" "64 32 0 0 0 $ty" "contiguous 64 $ty: $B: 64 tokens, 32 hidden, $ty rows"
    is "$(fld $A 0 9)" "$(seqn 0 64 "$na")" "contiguous 64 $ty: $A: 0..$((na - 1)), then again from 0"
    is "$(fld $A 1 9)" "$(seqn 0 64 "$na")" "contiguous 64 $ty: $A view 1: the same run"
    is "$(fld $B 0 9)" "$(seqn 0 64 "$nb")" "contiguous 64 $ty: $B: 0..$((nb - 1)), then again from 0"
    if [ "$(fld $A 0 10)" != "$(fld $A 1 10)" ]; then pass "contiguous 64 $ty: the two views' masks differ"
    else fail "contiguous 64 $ty: the two views' masks differ"; fi
    if [ "$(fld $A 0 10)" != "$(fld $B 0 10)" ]; then pass "contiguous 64 $ty: the two slides' masks differ under one seed"
    else fail "contiguous 64 $ty: the two slides' masks differ under one seed"; fi
    cp c64.$src.vl c64.$src.keep

    # contiguous, shorter than the slides: a run from a start in [0, n - 16]
    seq-mask --mode contiguous --length 16 --ratio 0.25 --views 2 --seed 5 -o c16.$src $src.mpk
    check_views "contiguous 16 $ty" $src.json c16.$src
    for s in $A $B; do
        if [ $s = $A ]; then ns=$na; else ns=$nb; fi
        for v in 0 1; do
            st=$(fld $s $v 9 | cut -d, -f1)
            is "$(summ $s $v) $(fld $s $v 9)" "16 4 0 0 0 $ty $(seqn "$st" 16 1000000)" "contiguous 16 $ty: $s view $v: 16 tokens from $st on, 4 hidden"
            if [ "$st" -le $((ns - 16)) ]; then pass "contiguous 16 $ty: $s view $v: start $st <= n - 16"
            else fail "contiguous 16 $ty: $s view $v: start $st <= n - 16"; fi
        done
    done
    cp c16.$src.vl c16.$src.keep

    # sample without replacement: 20 distinct tokens
    seq-mask --mode sample --count 20 --ratio 0.75 --views 2 --seed 5 -o s20.$src $src.mpk
    check_views "sample 20 $ty" $src.json s20.$src
    is "$(awk '{ print $3, $4 }' "$vl" | sort -u)" "20 15" "sample 20 $ty: 20 tokens, 15 hidden in each view"
    is "$(awk '{ k = split($9, a, ","); delete s; u = 0; for (i = 1; i <= k; i++) if (!(a[i] in s)) { s[a[i]]; u++ }; print u }' "$vl" | sort -u)" 20 "sample 20 $ty: no index twice in a view"
    cp s20.$src.vl s20.$src.keep

    # sample with replacement: 100 tokens from ~50
    seq-mask --mode sample --count 100 --ratio 0.75 --views 2 --seed 5 -o s100.$src $src.mpk
    check_views "sample 100 $ty" $src.json s100.$src
    is "$(awk '{ print $3, $4 }' "$vl" | sort -u)" "100 75" "sample 100 $ty: 100 tokens, 75 hidden in each view"
    cp s100.$src.vl s100.$src.keep

    # random: every token in order
    seq-mask --mode random --ratio 0.3 --views 2 --seed 5 -o r.$src $src.mpk
    check_views "random $ty" $src.json r.$src
    is "$(summ $A 1) $(fld $A 1 9)" "$na $(hidden 0.3 "$na") 0 0 0 $ty $(seqn 0 "$na" "$na")" "random $ty: $A: all $na tokens in order, $(hidden 0.3 "$na") hidden"
    is "$(summ $B 0) $(fld $B 0 9)" "$nb $(hidden 0.3 "$nb") 0 0 0 $ty $(seqn 0 "$nb" "$nb")" "random $ty: $B: all $nb tokens in order, $(hidden 0.3 "$nb") hidden"
    cp r.$src.vl r.$src.keep
done

# f16 views are drawn as the f32 ones: indices and masks (the view depends
# on the id, the seed, the view and n, not on the values)
for m in c64 c16 s20 s100 r; do
    is "$(awk '{ print $1, $2, $3, $4, $9, $10 }' $m.h.keep)" "$(awk '{ print $1, $2, $3, $4, $9, $10 }' $m.f.keep)" "$m: f16 and f32 input give the same indices and masks"
done

# the same seed, the same bytes; piped input, the same records
seq-mask --mode sample --count 100 --ratio 0.75 --views 2 --seed 5 -o s100b.f f.mpk
if cmp -s s100.f s100b.f; then pass "the same seed gives the same bytes"
else fail "the same seed gives the same bytes"; fi
seq-mask --mode sample --count 100 --ratio 0.75 --views 2 --seed 6 -o s100c.f f.mpk
if cmp -s s100.f s100c.f; then fail "another seed gives other bytes"
else pass "another seed gives other bytes"; fi
mpk cat -r -f piped.views > p.json
mpk cat -r -f c64.f > c.json
if [ -s p.json ] && cmp -s p.json c.json; then
    pass "wsi-tile | patch-embed | seq-mask: the same views as from the file"
else fail "wsi-tile | patch-embed | seq-mask: the same views as from the file"; fi
run mpk cat c64.f
like "$out" "\"kind\":\"views\",\"id\":\"$A\",.*\"parents\":\\[\\{\"kind\":\"features\",\"id\":\"$A\"\\}\\]" "views header: $A's features as parent"
like "$out" "\"source_n\":$nb,\"tokens\":64,\"dim\":1024" "views header: $B's source_n, tokens, dim"

echo "1..$T_N"
done_testing
