#!/bin/sh
# transmil.sh: seconds per training epoch of TransMIL (METHODS.md B3/B4:
# Nystrom attention with 256 landmarks, dim 512, 8 heads, input 1024, a
# 2-class head, one bag per step, Adam) over BAGS bags (default 20) of
# TOKENS tokens (default 6000) of random features: ours (lib/mil.c,
# bench/transmil-bench.c) against the same model in PyTorch
# (bench/transmil_anchor.py: tests/gen/mil_refs.py's TransMIL in f32) on the
# same THREADS CPU threads (default 2), printed as a ratio torch/ours
# (target >= 1.5). For information it also times torch running the same
# model with lib/nn.c's algebra (transmil_anchor.py --same-algebra: the
# reassociated Nystrom product, the landmarks from the means of x, the last
# layer on the cls row alone) and prints that ratio too: the part of the
# speed that is kernels rather than algebra.
# An epoch is estimated as BAGS x the mean step of TIMED
# bags (default 3) after two warm-up bags, in each process; runs interleave
# ours and torch REPS times (default 2) and each side keeps its best.
# Before that, a forward check: `transmil-bench check` writes our weights,
# one bag and our eval-mode outputs to a safetensors file, the anchor loads
# the weights into torch (strict state_dict names), runs the same forward
# in f32 and f64, and the script prints the max relative difference
# (max |ours - torch| / max |torch|) of the logits and of the embedding
# (the cls token after the final LayerNorm): it must be <= 1e-4.
# Builds transmil-bench (cc, OpenMP) against $1/lib/libmmpath.a with the
# library's link line from $1/Makefile: run `make` first; $1 is the build
# directory (default .).
# Env: REPS, TIMED, BAGS, TOKENS, THREADS, PYTHON (an interpreter with
# torch; default bench/.venv, then /usr/bin/python3), CC (default cc),
# FIXCORE (as transformer.sh: when OpenBLAS's own detection picks a weaker
# kernel set than the CPU has, e.g. Debian's 0.3.21 picks Prescott on this
# VM, ours runs with OPENBLAS_CORETYPE=FIXCORE, default SkylakeX on AVX-512
# and Haswell on AVX2, as INSTALL recommends; FIXCORE=0 keeps the detected
# set). torch (MKL) is not affected by OPENBLAS_CORETYPE.
# SPDX-License-Identifier: MIT
set -eu

build=${1:-.}
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/.." && pwd)
reps=${REPS:-2}
timed=${TIMED:-3}
bags=${BAGS:-20}
tokens=${TOKENS:-6000}
threads=${THREADS:-2}
cc=${CC:-cc}
lib=$build/lib/libmmpath.a

if [ ! -f "$lib" ] || [ ! -f "$build/config.h" ] || [ ! -f "$build/Makefile" ]; then
    echo "transmil.sh: $lib is not built (make)" >&2
    exit 1
fi

has_torch() { "$1" -c 'import torch' 2>/dev/null; }
py=
for p in ${PYTHON:-} "$here/.venv/bin/python" /usr/bin/python3 python3; do
    if has_torch "$p"; then py=$p; break; fi
done
if [ -z "$py" ]; then
    echo "transmil.sh: no Python with torch (bench/transformer.sh sets up bench/.venv)" >&2
    exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/transmil-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM
bin=$tmp/transmil-bench
mk() { sed -n "s/^$1 = //p" "$build/Makefile" | head -n 1; }
# shellcheck disable=SC2046
$cc -std=c11 -O2 -fopenmp -I"$build" -I"$src/lib" $(mk BLAS_CFLAGS) "$here/transmil-bench.c" \
    "$lib" $(mk ZSTD_LIBS) $(mk MSGPACK_LIBS) $(mk XXHASH_LIBS) $(mk VIPS_LIBS) $(mk ZLIB_LIBS) \
    $(mk BLAS_LIBS) $(mk CUDA_LIBS) -lm -o "$bin"

export OPENBLAS_NUM_THREADS="$threads" OMP_NUM_THREADS="$threads" MKL_NUM_THREADS="$threads"

# OpenBLAS's detected kernel set, and the one to force when it is weak
core=$(env -u OPENBLAS_CORETYPE "$bin" core)
fix=${FIXCORE:-}
if [ -z "$fix" ]; then
    if grep -q avx512f /proc/cpuinfo 2>/dev/null; then fix=SkylakeX
    elif grep -q avx2 /proc/cpuinfo 2>/dev/null; then fix=Haswell
    else fix=0; fi
fi
case "$core" in
    [Ss]kylake[Xx] | [Cc]ooperlake | [Ss]apphire* | "$fix") fix=0 ;;
esac
[ -n "${OPENBLAS_CORETYPE:-}" ] && fix=0
[ "$fix" != 0 ] && export OPENBLAS_CORETYPE="$fix"

echo "model:     TransMIL, input 1024 -> 512, 2 Nystrom TransLayers (8 heads, 256 landmarks,"
echo "           pinv 6, residual conv 33), PPEG 7/5/3, 2 classes; f32; $threads threads"
echo "epoch:     $bags bags x $tokens tokens x 1024 random normal features, one bag per step:"
echo "           forward (train mode, dropout 0.1), cross-entropy, backward, Adam (lr 2e-4, wd 1e-5)"
echo "ours:      transmil-bench, lib/mil.c + lib/nn.c + lib/tensor.c, $(mk BLAS_LIBS) ($(uname -m), $(nproc 2>/dev/null || echo ?) CPUs, $($cc --version | head -n 1))"
echo "           OpenBLAS kernels: detected $core${OPENBLAS_CORETYPE:+, run with OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE}"
echo "anchor:    $("$py" "$here/transmil_anchor.py" versions) ($py)"
echo "per run:   2 warm-up bags + $timed timed; epoch = $bags x mean step; best of $reps runs, interleaved"

key() { sed -n "s/^$2=//p" "$1" | head -n 1; }

# the forward check, on one bag of the benchmark's size
"$bin" check "$tmp/check.safetensors" --tokens "$tokens" >"$tmp/check.c"
"$py" "$here/transmil_anchor.py" check "$tmp/check.safetensors" --threads "$threads" >"$tmp/check.py"
rm -f "$tmp/check.safetensors"
echo
echo "forward check (eval mode, one bag of $tokens tokens, max |ours - torch| / max |torch|):"
echo "  logits: $(key "$tmp/check.py" out_f32_reldiff) vs torch f32, $(key "$tmp/check.py" out_f64_reldiff) vs torch f64 (ours $(key "$tmp/check.py" out_ours), torch $(key "$tmp/check.py" out_torch))"
echo "  embed:  $(key "$tmp/check.py" embed_f32_reldiff) vs torch f32, $(key "$tmp/check.py" embed_f64_reldiff) vs torch f64 (torch f32 vs f64: $(key "$tmp/check.py" torch32_vs_64_reldiff))"
worst=$(awk -F= '/_f32_reldiff=/ { if ($2 + 0 > m) m = $2 + 0 } END { printf "%.3e", m }' "$tmp/check.py")
checkok=$(awk -v w="$worst" 'BEGIN { print (w + 0 <= 1e-4) ? "within" : "NOT within" }')
echo "  max relative difference $worst: $checkok 1e-4"
echo

run() {
    name=$1
    shift
    if ! "$@" >"$tmp/$name.out" 2>"$tmp/$name.err"; then
        echo "transmil.sh: $name failed: $*" >&2
        cat "$tmp/$name.err" >&2
        exit 1
    fi
    key "$tmp/$name.out" step_mean >>"$tmp/$name.mean"
    cp "$tmp/$name.out" "$tmp/$name.$(wc -l <"$tmp/$name.mean" | tr -d ' ')"
}
args="--tokens $tokens --bags $timed"
i=0
while [ "$i" -lt "$reps" ]; do
    i=$((i + 1))
    # shellcheck disable=SC2086
    run ours "$bin" train $args
    # shellcheck disable=SC2086
    run torch "$py" "$here/transmil_anchor.py" train $args --threads "$threads"
    # shellcheck disable=SC2086
    run same "$py" "$here/transmil_anchor.py" train $args --threads "$threads" --same-algebra
    echo "run $i: ours $(tail -n 1 "$tmp/ours.mean") s/step, torch $(tail -n 1 "$tmp/torch.mean") s/step," \
        "torch with our algebra $(tail -n 1 "$tmp/same.mean") s/step"
done

pick() { b=$(sort -g "$tmp/$1.mean" | head -n 1); n=1; while [ "$(sed -n "${n}p" "$tmp/$1.mean")" != "$b" ]; do n=$((n + 1)); done; echo "$tmp/$1.$n"; }
ob=$(pick ours) tb=$(pick torch) sb=$(pick same)
row() {
    printf '%-34s %9.1f %8.3f %7.3f %7.3f %7.3f\n' "$1" "$(awk -v s="$(key "$2" step_mean)" -v b="$bags" 'BEGIN { print s * b }')" \
        "$(key "$2" step_mean)" "$(key "$2" fwd)" "$(key "$2" bwd)" "$(key "$2" adam)"
}
echo
printf '%-34s %9s %8s %7s %7s %7s\n' "" "s/epoch" "s/step" "fwd" "bwd" "adam"
row "ours (OpenBLAS ${OPENBLAS_CORETYPE:-$core})" "$ob"
tv=$("$py" -c 'import torch; print(torch.__version__)')
row "torch $tv" "$tb"
row "torch $tv, our algebra" "$sb"
r=$(awk -v t="$(key "$tb" step_mean)" -v o="$(key "$ob" step_mean)" 'BEGIN { printf "%.2f", t / o }')
rs=$(awk -v t="$(key "$sb" step_mean)" -v o="$(key "$ob" step_mean)" 'BEGIN { printf "%.2f", t / o }')
echo "ratio torch/ours (>= 1: ours at least as fast): $r"
echo "ratio torch with our algebra/ours (the kernels alone, for information): $rs"
echo "(ours: arena high-water $(key "$ob" arena_mb) MB per step; $(key "$ob" params) parameters)"
awk -v r="$r" -v c="$checkok" 'BEGIN {
    printf "target ratio >= 1.5: %s; forward %s 1e-4 of torch\n", (r + 0 >= 1.5) ? "met" : "NOT met", c }'
