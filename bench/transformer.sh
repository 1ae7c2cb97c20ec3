#!/bin/sh
# transformer.sh: one training step (forward, backward, AdamW) of a 2-layer
# pre-LN transformer (d 512, 8 heads, MLP 2048, 2048 tokens, batch 1, f32)
# built from lib/nn.c's mm_block (bench/transformer-bench.c) against the
# same model in PyTorch (bench/transformer_anchor.py), on the same THREADS
# CPU threads (default 2): seconds per step (best of STEPS after one
# warm-up, runs interleaved REPS times), the ratio torch/ours (>= 1: we are
# at least as fast), raw OpenBLAS sgemm GFLOP/s on the model's shapes and
# each side's effective matmul GFLOP/s (model matmul FLOPs / step time).
# Builds transformer-bench (cc, OpenMP) against $1/lib/libmmpath.a with
# the library's link line from $1/Makefile: run `make` first; $1 is the
# build directory (default .).
# Env: REPS (default 2), STEPS (default 3), THREADS (default 2), TOKENS
# (default 2048), FIXCORE (default SkylakeX on AVX-512 machines, Haswell on
# AVX2: when OpenBLAS's own detection picks a weaker kernel set, e.g.
# Debian's 0.3.21 picks Prescott (SSE3) on this VM's "Intel Xeon Processor",
# ours is run a second time with OPENBLAS_CORETYPE=FIXCORE; FIXCORE=0 turns
# that off), PYTHON (an interpreter with torch, instead of bench/.venv
# or /usr/bin/python3), CC (default cc), SDPA (default 1: also time torch
# with F.scaled_dot_product_attention, not part of the ratio).
# SPDX-License-Identifier: MIT
set -eu

build=${1:-.}
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/.." && pwd)
reps=${REPS:-2}
steps=${STEPS:-3}
threads=${THREADS:-2}
tokens=${TOKENS:-2048}
cc=${CC:-cc}
lib=$build/lib/libmmpath.a

if [ ! -f "$lib" ] || [ ! -f "$build/config.h" ] || [ ! -f "$build/Makefile" ]; then
    echo "transformer.sh: $lib is not built (make)" >&2
    exit 1
fi

has_torch() { "$1" -c 'import torch' 2>/dev/null; }

# The interpreter: $PYTHON, else bench/.venv with pip's torch (added when
# missing and pip reaches PyPI: the default wheel pulls several GB of CUDA
# packages; the CPU wheel's index is tried first), else Debian's python3
# (python3-torch 1.13).
venv=$here/.venv
py=
if [ -n "${PYTHON:-}" ]; then
    py=$PYTHON
else
    if [ ! -x "$venv/bin/python" ]; then
        python3 -m venv "$venv" >&2 || rm -rf "$venv"
    fi
    if [ -x "$venv/bin/python" ] && ! has_torch "$venv/bin/python"; then
        echo "transformer.sh: adding torch to $venv" >&2
        "$venv/bin/pip" install -q torch --index-url https://download.pytorch.org/whl/cpu >&2 ||
            "$venv/bin/pip" install -q torch >&2 || echo "transformer.sh: pip failed" >&2
    fi
    for p in "$venv/bin/python" /usr/bin/python3 python3; do
        if has_torch "$p"; then py=$p; break; fi
    done
fi
if [ -z "$py" ] || ! has_torch "$py"; then
    echo "transformer.sh: no Python with torch" >&2
    exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/transformer-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM
bin=$tmp/transformer-bench
# the library's link line, as Makefile.am's MM_LIBS
mk() { sed -n "s/^$1 = //p" "$build/Makefile" | head -n 1; }
# shellcheck disable=SC2046
$cc -std=c11 -O2 -fopenmp -I"$build" -I"$src/lib" $(mk BLAS_CFLAGS) "$here/transformer-bench.c" \
    "$lib" $(mk ZSTD_LIBS) $(mk MSGPACK_LIBS) $(mk XXHASH_LIBS) $(mk VIPS_LIBS) $(mk ZLIB_LIBS) \
    $(mk BLAS_LIBS) $(mk CUDA_LIBS) -lm -o "$bin"

# both sides on the same threads: OpenBLAS and OpenMP (ours; torch's MKL
# and OpenMP read them too) and torch.set_num_threads (the anchor)
export OPENBLAS_NUM_THREADS="$threads" OMP_NUM_THREADS="$threads" MKL_NUM_THREADS="$threads"
args="--tokens $tokens --steps $steps"
blas=$(mk BLAS_LIBS)
echo "model:     2 x pre-LN block (d 512, 8 heads, MLP 2048, qkv bias, LN eps 1e-5), x (1, $tokens, 512) f32,"
echo "           loss mean(y^2), backward, AdamW (lr 1e-3, wd 1e-2); $threads threads"
echo "ours:      transformer-bench, lib/nn.c + lib/tensor.c, $blas ($(uname -m), $(nproc 2>/dev/null || echo ?) CPUs, $($cc --version | head -n 1))"
echo "anchor:    $("$py" "$here/transformer_anchor.py" versions) ($py)"
echo "per run: 1 warm-up step + $steps timed; best step of $reps runs, interleaved"

key() { sed -n "s/^$2=//p" "$1" | head -n 1; }
best() { sort -g "$1" | head -n 1; }
run() {
    name=$1
    shift
    if ! "$@" >"$tmp/$name.out" 2>"$tmp/$name.err"; then
        echo "transformer.sh: $name failed: $*" >&2
        cat "$tmp/$name.err" >&2
        exit 1
    fi
    key "$tmp/$name.out" step_best >>"$tmp/$name.best"
    cp "$tmp/$name.out" "$tmp/$name.$(wc -l <"$tmp/$name.best" | tr -d ' ')"
}

# OpenBLAS's detected kernel set, and the one to force when it is weak
core=$("$bin" sgemm --tokens 64 --reps 1 | sed -n 's/^openblas_core=//p')
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
echo "OpenBLAS kernels: $core${OPENBLAS_CORETYPE:+ (OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE)}$([ "$fix" != 0 ] && echo "; also run with OPENBLAS_CORETYPE=$fix")"

i=0
while [ "$i" -lt "$reps" ]; do
    i=$((i + 1))
    # shellcheck disable=SC2086
    run ours "$bin" step $args
    # shellcheck disable=SC2086
    run torch "$py" "$here/transformer_anchor.py" step $args --threads "$threads"
    line="run $i: ours $(tail -n 1 "$tmp/ours.best") s/step, torch $(tail -n 1 "$tmp/torch.best") s/step"
    if [ "${SDPA:-1}" != 0 ]; then
        # shellcheck disable=SC2086
        run sdpa "$py" "$here/transformer_anchor.py" step $args --threads "$threads" --sdpa
        line="$line, torch SDPA $(tail -n 1 "$tmp/sdpa.best") s/step"
    fi
    "$bin" sgemm --tokens "$tokens" >>"$tmp/sgemm.all"
    if [ "$fix" != 0 ]; then
        # shellcheck disable=SC2086
        run fixed env OPENBLAS_CORETYPE="$fix" "$bin" step $args
        line="$line, ours with $fix kernels $(tail -n 1 "$tmp/fixed.best") s/step"
        OPENBLAS_CORETYPE="$fix" "$bin" sgemm --tokens "$tokens" >>"$tmp/sgemmfix.all"
    fi
    echo "$line"
done
# each shape's best rate over the runs (the machine is shared and noisy)
maxrate() { awk -F= '/^sgemm_/ { if ($2 + 0 > m[$1]) m[$1] = $2 + 0 } END { for (k in m) print k "=" m[k] }' "$1"; }
maxrate "$tmp/sgemm.all" >"$tmp/sgemm.out"
[ "$fix" != 0 ] && maxrate "$tmp/sgemmfix.all" >"$tmp/sgemmfix.out"

# the run that gave each side's best step, for its split
pick() { n=1; b=$(best "$tmp/$1.best"); while [ "$(sed -n "${n}p" "$tmp/$1.best")" != "$b" ]; do n=$((n + 1)); done; echo "$tmp/$1.$n"; }
ob=$(pick ours) tb=$(pick torch)
row() {
    printf '%-38s %9.3f %7.3f %7.3f %7.3f %8.1f\n' "$1" "$(key "$2" step_best)" "$(key "$2" fwd)" \
        "$(key "$2" bwd)" "$(key "$2" adamw)" "$(key "$2" gflops)"
}
echo
printf '%-38s %9s %7s %7s %7s %8s\n' "" "s/step" "fwd" "bwd" "adamw" "GFLOP/s"
row "ours (lib/nn.c, OpenBLAS $core)" "$ob"
[ "$fix" != 0 ] && row "ours, OPENBLAS_CORETYPE=$fix" "$(pick fixed)"
row "torch $("$py" -c 'import torch; print(torch.__version__)') (explicit attention)" "$tb"
[ "${SDPA:-1}" != 0 ] && row "torch, F.scaled_dot_product_attention" "$(pick sdpa)"
r=$(awk -v t="$(key "$tb" step_best)" -v o="$(key "$ob" step_best)" 'BEGIN { printf "%.2f", t / o }')
echo "ratio torch/ours (>= 1: ours at least as fast): $r"
if [ "$fix" != 0 ]; then
    rf=$(awk -v t="$(key "$tb" step_best)" -v o="$(key "$(pick fixed)" step_best)" 'BEGIN { printf "%.2f", t / o }')
    echo "ratio torch/ours with OPENBLAS_CORETYPE=$fix: $rf"
fi
echo "(GFLOP/s: the model's $(key "$ob" matmul_gflop) GFLOP of matmul per step (forward 24ND^2 + 4N^2D"
echo " per layer, backward twice that) / the step's seconds; loss after $((steps + 1)) steps:"
echo " ours $(key "$ob" loss_last), torch $(key "$tb" loss_last): different initial draws, same model)"
echo
sgrow() {
    awk -F= -v what="$2" '{ n[$1] = $2 } END {
        printf "  %-22s qkv %6.1f  fc1 %6.1f  fc2 %6.1f  fc1 dW %6.1f  scores %6.1f  att v %6.1f\n", what,
            n["sgemm_qkv"], n["sgemm_fc1"], n["sgemm_fc2"], n["sgemm_fc1_dW"], n["sgemm_scores"], n["sgemm_attv"] }' "$1"
}
echo "raw cblas_sgemm GFLOP/s on the model's shapes ($threads threads, best of 10 per run, best run):"
echo "  (qkv N x 3D x D, fc1 N x 4D x D, fc2 N x D x 4D, fc1 dW 4D x D x N with A^T, one head's"
echo "   scores N x N x 64 and att v N x 64 x N; N = $tokens, D = 512)"
sgrow "$tmp/sgemm.out" "$core"
[ "$fix" != 0 ] && sgrow "$tmp/sgemmfix.out" "$fix"
share() {
    awk -v g="$(key "$2" gflops)" -v f="$(key "$3" sgemm_fc1)" -v s="$(key "$2" step_best)" -v m="$(key "$2" matmul_gflop)" -v w="$1" 'BEGIN {
        printf "%s: the model runs at %.0f%% of the fc1 sgemm rate; its matmuls alone at that rate take %.2f s, %.0f%% of the step\n", w, 100 * g / f, m / f, 100 * m / f / s }'
}
share "ours ($core)" "$ob" "$tmp/sgemm.out"
[ "$fix" != 0 ] && share "ours ($fix)" "$(pick fixed)" "$tmp/sgemmfix.out"
if [ "$fix" != 0 ]; then
    share "torch (vs $fix sgemm)" "$tb" "$tmp/sgemmfix.out"
else
    share "torch (vs $core sgemm)" "$tb" "$tmp/sgemm.out"
fi
awk -v r="$r" -v rf="${rf:-}" -v c="$core" -v f="$fix" 'BEGIN {
    printf "target ratio >= 1.0: %s with OpenBLAS %s", (r + 0 >= 1.0) ? "met" : "NOT met", c
    if (rf != "") printf "; %s with OPENBLAS_CORETYPE=%s", (rf + 0 >= 1.0) ? "met" : "NOT met", f
    printf "\n" }'
