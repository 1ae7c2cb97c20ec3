#!/bin/sh
# patch-embed.sh: patches per second of patch-embed against PyTorch on the
# same 256x256 tiles of CMU-1-Small-Region.svs and the same threads.
#
#   make && make tests/unit/embed-helper && bench/patch-embed.sh [BUILDDIR]
#
# Ours: tools/patch-embed end to end (stream decode, preprocessing,
# network, output) on a tiles stream of N tiles, best of REPS runs, with
# OpenBLAS's kernels as detected and with OPENBLAS_CORETYPE=$FIXCORE
# (Debian's OpenBLAS 0.3.21 runs Prescott kernels on recent Xeons; INSTALL;
# on CPUs with AVX-512 patch-embed's convolutions do not use OpenBLAS, and
# the two runs measure the same code).
# Anchor: bench/patch_embed_anchor.py, the network only (tiles already
# decoded and normalised in memory), eager / channels_last + jit.freeze +
# optimize_for_inference (and torch.compile with MODES=eager,jit,compile),
# best of REPS. The ratio is ours (best core type) over torch's fastest mode.
# CPUT=1 times both sides by CPU time (user + system) instead of wall
# time: on a machine other jobs share, with THREADS=1, it still measures
# the work (wall time there measures the neighbours).
# Environment: N (32), BATCH (16), THREADS (2), REPS (2), LAYER (3),
# FIXCORE (SkylakeX; 0 = skip that run), PYTHON, MODES (eager,jit),
# MMPATH_TEST_DATA (the data directory holding wsi/).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top}
N=${N:-32} BATCH=${BATCH:-16} THREADS=${THREADS:-2} REPS=${REPS:-2}
LAYER=${LAYER:-3} FIXCORE=${FIXCORE:-SkylakeX} MODES=${MODES:-eager,jit}
data=${MMPATH_TEST_DATA:-$(sed -n 's/^MMPATH_TEST_DATA = //p' "$build/Makefile" 2>/dev/null)}
slide=$data/wsi/CMU-1-Small-Region.svs
[ -r "$slide" ] || { echo "patch-embed.sh: no $slide (set MMPATH_TEST_DATA)" >&2; exit 1; }
if [ -z "${PYTHON:-}" ]; then
    if [ -x "$top/bench/.venv/bin/python" ]; then PYTHON=$top/bench/.venv/bin/python
    else PYTHON=/usr/bin/python3; fi
fi
pe=$build/tools/patch-embed helper=$build/tests/unit/embed-helper
[ -x "$helper" ] || make -C "$build" tests/unit/embed-helper >/dev/null
tmp=$(mktemp -d "${TMPDIR:-/tmp}/pe-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
export OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS

# N tiles on a grid over the tissue of the small CMU region
i=0; set --
while [ $i -lt "$N" ]; do
    x=$((200 + (i % 7) * 256)) y=$((300 + (i / 7 % 10) * 256))
    set -- "$@" $x $y; echo "$x $y" >> "$tmp/coords"; i=$((i + 1))
done
"$helper" tiles "$tmp/tiles.mpk" "$slide" 256 0 bench "$@"

flops=$(awk -v l="$LAYER" 'BEGIN { print (l == 3 ? 8.56 : 10.72) }')
ours() {  # ours LABEL [ENV...]: best patches/s of REPS runs
    label=$1; shift
    best=0
    for r in $(seq "$REPS"); do
        /usr/bin/time -f "%e %U %S" -o "$tmp/time" env "$@" "$pe" -q \
            -@ "$THREADS" --batch "$BATCH" --layer "$LAYER" \
            --weights random:1 -o "$tmp/f.mpk" "$tmp/tiles.mpk"
        d=$(awk -v c="${CPUT:-0}" '{ print (c == 1 ? $2 + $3 : $1) }' "$tmp/time")
        best=$(awk -v a="$best" -v n="$N" -v d="$d" \
            'BEGIN { p = n / d; print (p > a ? p : a) }')
    done
    printf 'ours %-22s %6.2f patches/s %6.1f GFLOP/s\n' "$label" "$best" \
        "$(echo "$best * $flops" | bc -l)"
    echo "$best" > "$tmp/ours.$label"
}

echo "# $N tiles 256x256, layer$LAYER, batch $BATCH, $THREADS threads, $([ "${CPUT:-0}" = 1 ] && echo "CPU time" || echo "wall time"), $(date -u +%FT%TZ)"
echo "# $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(getconf _NPROCESSORS_ONLN) CPUs"
ours default
best_ours=$(cat "$tmp/ours.default")
if [ "$FIXCORE" != 0 ]; then
    ours "CORETYPE=$FIXCORE" OPENBLAS_CORETYPE="$FIXCORE"
    b=$(cat "$tmp/ours.CORETYPE=$FIXCORE")
    best_ours=$(awk -v a="$best_ours" -v b="$b" 'BEGIN { print (b > a ? b : a) }')
fi
CPUT=${CPUT:-} "$PYTHON" "$top/bench/patch_embed_anchor.py" "$slide" "$tmp/coords" "$LAYER" \
    "$BATCH" "$THREADS" "$REPS" "$MODES" 2>/dev/null | tee "$tmp/torch"
best_torch=$(awk '$1 == "torch" && $3 > b { b = $3 } END { print b }' "$tmp/torch")
echo "ratio ours/torch-fastest: $(echo "$best_ours / $best_torch" | bc -l | cut -c1-5)"
