#!/bin/bash
# device-check.sh OUT: the prepared check for a GPU machine (the session's
# device tool runs it from the repository root), issue 11.
#
# Before, here: bash bench/make-device-pack.sh   (builds bench/device-pack/:
# static binaries in bin.tar.xz, tiles.mpk; ~20-30 MB). Then on the device,
# carrying bench/device-pack:   bash bench/device-check.sh $OUT
#
# It runs, each under a timeout and going on past failures (the whole in
# well under 8 minutes): the machine's description; the CUDA unit tests
# (t-backend, t-resnet-cuda: cuDNN vs the CPU engine in FP16 and TF32,
# t-tensor-cuda when packed); embed-gpu on the tile stream (decode alone,
# network alone, end to end, and parity with the CPU engine) in FP16 and
# TF32; PyTorch's channels_last ResNet-50 to layer3 for the ratio. Logs and
# summary.txt (KEY=VALUE figures) go to OUT. Where there is no GPU (here)
# the tests skip, embed-gpu says why, and the script still exits 0.
set -u
OUT=${1:-${OUT:-/tmp/device-out}}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
exec > >(tee "$OUT/device-check.log") 2>&1
SUM=$OUT/summary.txt
: > "$SUM"
T0=$(date +%s)
BUDGET=${DEVICE_CHECK_BUDGET:-450} # seconds for everything
say() { echo "$*" | tee -a "$SUM"; }
# run NAME SECONDS CMD...: stdout+stderr to STEPS/NAME.txt and the log,
# capped by what is left of the budget. OUT keeps two files only (the log
# and the summary): the device tool brings back at most 8.
run() {
    local name=$1 t=$2
    shift 2
    local left=$((BUDGET - ($(date +%s) - T0) - 10))
    [ "$t" -gt "$left" ] && t=$left
    if [ "$t" -lt 5 ]; then
        say "$name: skipped (time budget spent)"
        return 124
    fi
    echo "== $name (timeout ${t}s): $*"
    local s=$(date +%s)
    timeout -k 5 "$t" "$@" > "$STEPS/$name.txt" 2>&1
    local rc=$?
    cat "$STEPS/$name.txt"
    say "$name: exit $rc in $(($(date +%s) - s))s"
    return $rc
}

echo "== machine"
uname -a
(ldd --version | head -1) 2>&1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | head -3
gpu=yes
nvidia-smi -L >/dev/null 2>&1 || gpu=no
say "gpu=$gpu"
[ $gpu = no ] && say "no GPU: the CUDA tests skip and embed-gpu only says why"
PY=$(command -v python3 || true)
echo "python3: ${PY:-none}"

PACK=bench/device-pack
BIN=$(mktemp -d /tmp/mm-device.XXXXXX)
STEPS=$BIN/steps
mkdir -p "$STEPS"
if [ -f "$PACK/bin.tar.xz" ]; then
    tar -xJf "$PACK/bin.tar.xz" -C "$BIN" 2>/dev/null ||
        "$PY" -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' \
            "$PACK/bin.tar.xz" "$BIN"
    ls -la "$BIN"
else
    say "pack missing: $PACK/bin.tar.xz (run bash bench/make-device-pack.sh before, and carry $PACK)"
fi
[ -f "$PACK/deps.txt" ] && { echo "== built with"; cat "$PACK/deps.txt"; }

echo "== CUDA libraries"
# cuBLAS from the toolkit or pip's nvidia-cublas, cuDNN from pip's
# nvidia-cudnn-cu13 (or a system install): the directories that hold them
roots="/usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/lib/x86_64-linux-gnu /usr/local/lib"
if [ -n "$PY" ]; then
    roots="$roots $("$PY" -c 'import site, sys; print(" ".join(site.getsitepackages() + [site.getusersitepackages()]))' 2>/dev/null)"
fi
libdirs=
for lib in libcudnn.so.9 libcublas.so.13 libcublasLt.so.13; do
    d=
    for r in $roots; do
        [ -d "$r" ] || continue
        f=$(find -L "$r" -maxdepth 5 -name "$lib" 2>/dev/null | head -1)
        [ -n "$f" ] && { d=$(dirname "$f"); break; }
    done
    echo "$lib: ${d:-not found}"
    [ -n "$d" ] && case ":$libdirs:" in *":$d:"*) ;; *) libdirs=$libdirs:$d ;; esac
done
# cuDNN 9 loads its sub-libraries (libcudnn_cnn, _engines_*) from its own
# directory or the library path: the one path above covers both
export LD_LIBRARY_PATH=${libdirs#:}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
for b in "$BIN"/*; do
    [ -x "$b" ] || continue
    echo "-- ldd $(basename "$b")"
    ldd "$b" 2>&1 | grep -E 'not found|cudnn|cublas|libc\.so' || true
done

echo "== unit tests"
for t in t-backend t-resnet-cuda t-tensor-cuda; do
    if [ ! -x "$BIN/$t" ]; then
        say "$t: not in the pack"
        continue
    fi
    run "$t" 240 "$BIN/$t"
    nok=$(grep -c '^ok' "$STEPS/$t.txt")
    nnot=$(grep -c '^not ok' "$STEPS/$t.txt")
    skip=$(grep -c '^1\.\.0 # SKIP' "$STEPS/$t.txt")
    say "$t: ok=$nok not_ok=$nnot skipped_all=$skip"
    grep '^not ok' "$STEPS/$t.txt" | sed "s/^/$t: /" | tee -a "$SUM"
    grep -E 'relative difference' "$STEPS/$t.txt" | sed "s/^# /$t: /" | tee -a "$SUM"
done

echo "== embed-gpu on the tile stream"
TILES=$PACK/tiles.mpk
if [ -x "$BIN/embed-gpu" ] && [ -f "$TILES" ]; then
    # ~160 tiles a pass: 25 passes = ~4000 tiles end to end
    for prec in fp16 tf32; do
        run "embed-$prec" 150 "$BIN/embed-gpu" run "$TILES" --prec $prec --batch 256 --repeat 25 --layer 3 --check 8
        grep -E '^[a-z_0-9]+=' "$STEPS/embed-$prec.txt" | sed "s/^/embed_${prec}_/" >> "$SUM"
    done
else
    say "embed-gpu or $TILES missing: no benchmark"
fi

echo "== patch-embed --device cuda, end to end"
# the tool itself on 25 copies of the tile file back to back (a stream of
# 25 segments, ~4000 tiles): wall time includes loading the weights and
# cuDNN's algorithm search
if [ -x "$BIN/patch-embed" ] && [ -f "$TILES" ]; then
    for i in $(seq 25); do cat "$TILES"; done > "$BIN/tiles25.mpk"
    for prec in fp16 tf32; do
        # one copy first: its wall time is mostly setup (weights, cuDNN's
        # algorithm search), so (25 copies - 1 copy) gives the steady rate
        s=$(date +%s%N)
        run "patch-embed1-$prec" 60 "$BIN/patch-embed" --weights random:42 --device cuda \
            --precision $prec -o "$BIN/feat1-$prec.mpk" "$TILES"
        m=$(date +%s%N)
        run "patch-embed-$prec" 120 "$BIN/patch-embed" --weights random:42 --device cuda \
            --precision $prec -o "$BIN/feat-$prec.mpk" "$BIN/tiles25.mpk"
        e=$(date +%s%N)
        n=$(sed -n 's/^embed_fp16_e2e_tiles=//p' "$SUM" | tail -1)
        say "patch_embed_${prec}_1copy_s=$(awk -v a="$s" -v b="$m" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')"
        say "patch_embed_${prec}_s=$(awk -v a="$m" -v b="$e" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')"
        if [ -n "$n" ]; then
            say "patch_embed_${prec}_pps=$(awk -v a="$m" -v b="$e" -v n="$n" 'BEGIN { printf "%.0f", n / ((b - a) / 1e9) }')"
            say "patch_embed_${prec}_steady_pps=$(awk -v a="$s" -v m="$m" -v b="$e" -v n="$n" 'BEGIN { d = (b - m) - (m - a); if (d > 0) printf "%.0f", (n - n / 25) / (d / 1e9); else print "nan" }')"
        fi
        if [ -x "$BIN/mpk" ]; then
            run "verify-$prec" 60 "$BIN/mpk" verify "$BIN/feat-$prec.mpk"
            "$BIN/mpk" info "$BIN/feat-$prec.mpk" 2>&1 | grep -m1 -o 'device=[a-z0-9 ]*' | sed "s/^/patch_embed_${prec}_header_/" | tee -a "$SUM"
            "$BIN/mpk" info "$BIN/feat-$prec.mpk" 2>&1 | grep -c "segment" | sed "s/^/patch_embed_${prec}_segments=/" | tee -a "$SUM"
        fi
    done
else
    say "patch-embed or $TILES missing: no end-to-end run of the tool"
fi

echo "== PyTorch anchor"
if [ $gpu = yes ] && [ -n "$PY" ] && "$PY" -c 'import torch, torchvision' 2>/dev/null; then
    for prec in fp16 tf32; do
        # without our LD_LIBRARY_PATH: torch brings its own cuDNN and
        # refuses an older one found first (on the H100 run of 2026-11-26
        # pip's nvidia-cudnn 9.14 was found for ours, torch wants 9.19)
        run "torch-$prec" 120 env -u LD_LIBRARY_PATH "$PY" bench/embed_torch_anchor.py --prec $prec --batch 256 --size 256 --layer 3
        grep -E '^[a-z_0-9]+=' "$STEPS/torch-$prec.txt" | sed "s/^/torch_${prec}_/" >> "$SUM"
    done
else
    say "PyTorch anchor skipped (gpu=$gpu; needs a GPU and python3 with torch and torchvision)"
fi

echo "== ratios"
val() { sed -n "s/^$1=//p" "$SUM" | tail -1; }
for prec in fp16 tf32; do
    ours=$(val "embed_${prec}_gpu_pps")
    e2e=$(val "embed_${prec}_e2e_pps")
    theirs=$(val "torch_${prec}_torch_pps")
    if [ -n "$ours" ] && [ -n "$theirs" ]; then
        say "ratio_${prec}_gpu_vs_torch=$(awk -v a="$ours" -v b="$theirs" 'BEGIN { printf "%.2f", a / b }')"
        [ -n "$e2e" ] && say "ratio_${prec}_e2e_vs_torch_network=$(awk -v a="$e2e" -v b="$theirs" 'BEGIN { printf "%.2f", a / b }')"
    fi
done
e2e=$(val embed_fp16_e2e_pps)
[ -n "$e2e" ] && say "target_3000_pps_fp16_e2e=$(awk -v a="$e2e" 'BEGIN { print (a >= 3000 ? "met" : "missed") }')"
say "elapsed_s=$(($(date +%s) - T0))"
echo "== summary ($SUM)"
cat "$SUM"
rm -rf "$BIN"
exit 0
