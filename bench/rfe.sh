#!/bin/sh
# rfe.sh: RFE with the linear SVM (lib/linear.c through bench/rfe-bench.c)
# against scikit-learn's RFE(LinearSVC(), n_features_to_select=100,
# step=0.1) (bench/rfe_anchor.py) in the same run on the same machine: ALL
# B vs T on all 12625 probes, standardised; wall-clock seconds (best of
# REPS, runs interleaved), the ratio, and how far the selections overlap,
# also with scikit-learn run to convergence (tol=1e-10). Then, unless
# SYNTH=0, one fit and RFE 1000 -> 100 on a synthetic 20,000 x 1,000 problem.
# Builds rfe-bench (cc, OpenMP) against $1/lib/libmmpath.a: run `make`
# first; $1 is the build directory (default .).
# Env: REPS (default 3), DATA (the data directory, default the build's
# MMPATH_TEST_DATA), PYTHON (an interpreter with scikit-learn, instead of
# bench/.venv or /usr/bin/python3), CC (default cc), SYNTH (default 1).
# SPDX-License-Identifier: MIT
set -eu

build=${1:-.}
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/.." && pwd)
reps=${REPS:-3}
cc=${CC:-cc}
lib=$build/lib/libmmpath.a

if [ ! -f "$lib" ] || [ ! -f "$build/config.h" ]; then
    echo "rfe.sh: $lib is not built (make)" >&2
    exit 1
fi
data=${DATA:-$(sed -n 's/^MMPATH_TEST_DATA = //p' "$build/Makefile" 2>/dev/null | head -n 1)}
all=$data/expression/ALL
if [ ! -f "$all/ALL_exprs.tsv" ] || [ ! -f "$all/ALL_pheno.tsv" ]; then
    echo "rfe.sh: no ALL data under '$data' (set DATA)" >&2
    exit 1
fi

has_sklearn() { "$1" -c 'import sklearn, numpy, pandas' 2>/dev/null; }

# The interpreter: $PYTHON, else bench/.venv with pip's scikit-learn
# (created when missing and pip can reach PyPI), else Debian's python3.
venv=$here/.venv
py=
if [ -n "${PYTHON:-}" ]; then
    py=$PYTHON
else
    if [ ! -x "$venv/bin/python" ]; then
        echo "rfe.sh: creating $venv (pip install scikit-learn pandas)" >&2
        if ! { python3 -m venv "$venv" && "$venv/bin/pip" install -q scikit-learn pandas; } >&2; then
            echo "rfe.sh: no venv (pip failed)" >&2
            rm -rf "$venv"
        fi
    elif ! has_sklearn "$venv/bin/python"; then
        echo "rfe.sh: adding scikit-learn to $venv" >&2
        "$venv/bin/pip" install -q scikit-learn pandas >&2 || echo "rfe.sh: pip failed" >&2
    fi
    for p in "$venv/bin/python" /usr/bin/python3 python3; do
        if has_sklearn "$p"; then py=$p; break; fi
    done
fi
if [ -z "$py" ] || ! has_sklearn "$py"; then
    echo "rfe.sh: no Python with scikit-learn, numpy and pandas" >&2
    exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/rfe-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM
bin=$tmp/rfe-bench
# the library's own link line: libm and OpenMP are all linear.c needs
$cc -std=c11 -O2 -fopenmp -I"$build" -I"$src/lib" "$here/rfe-bench.c" "$lib" -lm -o "$bin"

echo "data:      $all/ALL_exprs.tsv (12625 probes x 128 samples), y = lineage (B 95, T 33)"
echo "ours:      rfe-bench, lib/linear.c ($(uname -m), $(nproc 2>/dev/null || echo ?) CPUs, $($cc --version | head -n 1))"
echo "anchor:    $("$py" "$here/rfe_anchor.py" versions) ($py)"
echo "task:      standardise, then RFE(LinearSVC(C=1), n_features_to_select=100, step=0.1)"
echo "best of $reps, runs interleaved"

now() { date +%s.%N; }
# timed NAME CMD...: run CMD (stdout to $tmp/NAME.out) and append its wall
# clock to $tmp/NAME.wall and its compute_seconds to $tmp/NAME.comp
timed() {
    name=$1
    shift
    t0=$(now)
    if ! "$@" >"$tmp/$name.out" 2>"$tmp/$name.err"; then
        echo "rfe.sh: $name failed: $*" >&2
        cat "$tmp/$name.err" >&2
        exit 1
    fi
    t1=$(now)
    echo "$t0 $t1" | awk '{ printf "%.4f\n", $2 - $1 }' >>"$tmp/$name.wall"
    key "$tmp/$name.out" compute_seconds >>"$tmp/$name.comp"
}
key() { sed -n "s/^$2=//p" "$1" | head -n 1; }
best() { sort -g "$1" | head -n 1; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a / b }'; }
common() { sort "$1" "$2" | uniq -d | wc -l | tr -d ' '; }

i=0
while [ "$i" -lt "$reps" ]; do
    i=$((i + 1))
    timed ours "$bin" all "$all/ALL_exprs.tsv" "$all/ALL_pheno.tsv" --select 100 --step 0.1 \
        --out "$tmp/ours.sel"
    timed skl "$py" "$here/rfe_anchor.py" all "$all/ALL_exprs.tsv" "$all/ALL_pheno.tsv" \
        --select 100 --step 0.1 --out "$tmp/skl$i.sel"
    echo "run $i: ours RFE $(tail -n 1 "$tmp/ours.comp") s (process $(tail -n 1 "$tmp/ours.wall") s);" \
        "scikit-learn RFE $(tail -n 1 "$tmp/skl.comp") s (process $(tail -n 1 "$tmp/skl.wall") s," \
        "$(key "$tmp/skl.out" convergence_warnings) convergence warnings)"
done
# scikit-learn run to convergence, once: the selection a converged solver makes
"$py" "$here/rfe_anchor.py" all "$all/ALL_exprs.tsv" "$all/ALL_pheno.tsv" --select 100 \
    --step 0.1 --tol 1e-10 --max-iter 100000 --random-state 0 --out "$tmp/tight.sel" >"$tmp/tight.out"

oc=$(best "$tmp/ours.comp") ow=$(best "$tmp/ours.wall")
sc=$(best "$tmp/skl.comp") sw=$(best "$tmp/skl.wall")
echo
printf '%-34s %10s %10s\n' "" "RFE_s" "process_s"
printf '%-34s %10.3f %10.3f\n' "ours (lib/linear.c)" "$oc" "$ow"
printf '%-34s %10.3f %10.3f\n' "scikit-learn $("$py" -c 'import sklearn; print(sklearn.__version__)')" "$sc" "$sw"
printf '%-34s %10s %10s\n' "ratio (x faster)" "$(ratio "$sc" "$oc")" "$(ratio "$sw" "$ow")"
echo "(RFE_s: each side's own clock around RFE.fit / mm_rfe on the standardised"
echo " matrix, after one fit on all features; process_s: the whole process,"
echo " reading the 12625-row table and Python's imports included)"
echo
echo "selection overlap (of 100):"
i=0
while [ "$i" -lt "$reps" ]; do
    i=$((i + 1))
    echo "  ours vs scikit-learn run $i (tol=1e-4, random order): $(common "$tmp/ours.sel" "$tmp/skl$i.sel")"
done
[ "$reps" -ge 2 ] && echo "  scikit-learn run 1 vs run 2: $(common "$tmp/skl1.sel" "$tmp/skl2.sel")"
echo "  ours vs scikit-learn converged (tol=1e-10, max_iter=1e5): $(common "$tmp/ours.sel" "$tmp/tight.sel")"
t=$(ratio "$sc" "$oc")
awk -v t="$t" 'BEGIN { printf "target >= 5x on RFE: %sx, %s\n", t, (t + 0 >= 5) ? "met" : "NOT met" }'

if [ "${SYNTH:-1}" != 0 ]; then
    echo
    echo "synthetic 20,000 x 1,000 (2 classes, 20 informative features, standardised):"
    "$bin" synth 20000 1000 --select 100 --step 0.1 --out "$tmp/ours_s.sel" >"$tmp/ours_s.out"
    "$py" "$here/rfe_anchor.py" synth 20000 1000 --select 100 --step 0.1 \
        --out "$tmp/skl_s.sel" >"$tmp/skl_s.out"
    printf '%-34s %10s %10s\n' "" "fit_s" "RFE_s"
    printf '%-34s %10.3f %10.3f\n' "ours" "$(key "$tmp/ours_s.out" fit_seconds)" \
        "$(key "$tmp/ours_s.out" compute_seconds)"
    printf '%-34s %10.3f %10.3f\n' "scikit-learn (dual=auto: primal)" \
        "$(key "$tmp/skl_s.out" fit_seconds)" "$(key "$tmp/skl_s.out" compute_seconds)"
    echo "  (fit_s: one LinearSVC fit on all 1,000 features; RFE_s: 1000 -> 100, step 0.1;"
    echo "   selected in common: $(common "$tmp/ours_s.sel" "$tmp/skl_s.sel") of 100)"
fi
