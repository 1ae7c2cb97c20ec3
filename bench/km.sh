#!/bin/sh
# km.sh: km-plot (Kaplan-Meier curves by group, log-rank test, Harrell's
# and Uno's C) on a 100,000-row table, against R survival
# (bench/km_anchor.R) and lifelines (bench/km_anchor.py) in the same run:
# wall-clock seconds (best of REPS) and a check that the three agree.
# Builds nothing: run `make` first; $1 is the build directory (default .),
# km-plot is $1/tools/km-plot.
# Env: N (rows, default 100000), REPS (best of, default 3), PYTHON (an
# interpreter with lifelines, instead of bench/.venv or /usr/bin/python3),
# RSCRIPT (default Rscript).
# SPDX-License-Identifier: MIT
set -eu

build=${1:-.}
here=$(cd "$(dirname "$0")" && pwd)
bin=$build/tools/km-plot
reps=${REPS:-3}
n=${N:-100000}
rscript=${RSCRIPT:-Rscript}
times=10,50,100,200   # where the curves' survival is compared

if [ ! -x "$bin" ]; then
    echo "km.sh: $bin is not built (make)" >&2
    exit 1
fi

has_lifelines() { "$1" -c 'import lifelines, pandas, numpy' 2>/dev/null; }

# The interpreter: $PYTHON, else bench/.venv with pip's lifelines (created,
# or lifelines added to it, when missing and pip can reach PyPI), else
# Debian's python3 if it has lifelines.
venv=$here/.venv
py=
if [ -n "${PYTHON:-}" ]; then
    py=$PYTHON
else
    if [ ! -x "$venv/bin/python" ]; then
        echo "km.sh: creating $venv (pip install lifelines)" >&2
        if ! { python3 -m venv "$venv" && "$venv/bin/pip" install -q lifelines; } >&2; then
            echo "km.sh: no venv (pip failed)" >&2
            rm -rf "$venv"
        fi
    elif ! has_lifelines "$venv/bin/python"; then
        echo "km.sh: adding lifelines to $venv (pip install lifelines)" >&2
        "$venv/bin/pip" install -q lifelines >&2 || echo "km.sh: pip failed" >&2
    fi
    for p in "$venv/bin/python" /usr/bin/python3 python3; do
        if has_lifelines "$p"; then py=$p; break; fi
    done
fi
if [ -n "$py" ] && ! has_lifelines "$py"; then py=; fi
[ -n "$py" ] || echo "km.sh: no Python with lifelines: lifelines is skipped" >&2
if "$rscript" -e 'suppressPackageStartupMessages(library(survival))' >/dev/null 2>&1; then
    have_r=1
else
    have_r=0
    echo "km.sh: no $rscript with the survival package: R is skipped" >&2
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/km-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM
in=$tmp/km.tsv

# The input: N subjects, alternately in groups A and B; Weibull times
# (shape 1.5, scale 100) with hazard exp(0.4 [B] + 0.7 z), z standard
# normal; uniform censoring on [0, 300] (about 30% censored); times rounded
# to 0.1 (about 3,000 distinct times, so many ties); risk = 0.7 z + 0.5 e,
# e another normal, so higher risk means shorter survival (C about 0.64).
# The Park-Miller generator is exact in doubles, so every awk draws the
# same numbers; only libm's last bits could move a rounding (the MD5 is
# printed: 093fef5e here with mawk 1.3.4 and glibc 2.36).
awk -v n="$n" '
function u() { seed = (16807 * seed) % 2147483647; return seed / 2147483647 }
function gauss(  a, b) { a = u(); b = u(); return sqrt(-2 * log(a)) * cos(6.283185307179586 * b) }
BEGIN {
    seed = 20261126
    print "time\tstatus\tgroup\trisk"
    for (i = 0; i < n; i++) {
        g = i % 2 ? "B" : "A"
        z = gauss()
        t = 100 * (-log(u()) / exp((g == "B" ? 0.4 : 0) + 0.7 * z)) ^ (1 / 1.5)
        c = 300 * u()
        ev = t <= c
        tt = sprintf("%.1f", ev ? t : c)
        if (tt + 0 < 0.1) tt = "0.1"
        printf "%s\t%d\t%s\t%.6f\n", tt, ev, g, 0.7 * z + 0.5 * gauss()
    }
}' >"$in"

bytes=$(wc -c <"$in" | tr -d ' ')
cens=$(awk 'NR > 1 && !$2 { c++ } END { printf "%.1f%%", 100 * c / (NR - 1) }' "$in")
ntimes=$(tail -n +2 "$in" | cut -f1 | sort -u | wc -l | tr -d ' ')
md5=$(md5sum <"$in" 2>/dev/null | cut -c1-8)
echo "input:     $n rows ($bytes bytes), $cens censored, $ntimes distinct times, md5 $md5"
echo "ours:      $bin ($("$bin" --version | head -n 1); $(uname -m), $(nproc 2>/dev/null || echo ?) CPUs)"
[ "$have_r" = 1 ] && echo "R:         $("$rscript" "$here/km_anchor.R" versions)"
[ -n "$py" ] && echo "lifelines: $("$py" "$here/km_anchor.py" versions) ($py)"
echo "best of $reps, runs interleaved"

now() { date +%s.%N; }
# timed NAME CMD...: run CMD (stdout to $tmp/NAME.out, stderr to
# $tmp/NAME.err) and append its wall-clock seconds to $tmp/NAME.wall
timed() {
    name=$1
    shift
    t0=$(now)
    if ! "$@" >"$tmp/$name.out" 2>"$tmp/$name.err"; then
        echo "km.sh: $name failed: $*" >&2
        cat "$tmp/$name.err" >&2
        exit 1
    fi
    t1=$(now)
    echo "$t0 $t1" | awk '{ printf "%.4f\n", $2 - $1 }' >>"$tmp/$name.wall"
}
# key FILE K: the value of K= in FILE
key() { sed -n "s/^$2=//p" "$1" | head -n 1; }
# fmt FILE: the last number in FILE, to 4 decimals
fmt() { tail -n 1 "$1" | awk '{ printf "%.4f", $1 }'; }
# best FILE: the smallest number in FILE
best() { sort -g "$1" | head -n 1; }

i=0
while [ "$i" -lt "$reps" ]; do
    i=$((i + 1))
    timed ours "$bin" --group group --tsv "$tmp/ours_curve.tsv" "$in"
    timed svg "$bin" --group group --tsv "$tmp/svg_curve.tsv" -o "$tmp/km.svg" "$in"
    line="run $i: ours $(tail -n 1 "$tmp/ours.wall") s, with -o km.svg $(tail -n 1 "$tmp/svg.wall") s"
    if [ "$have_r" = 1 ]; then
        timed r "$rscript" "$here/km_anchor.R" "$in" "$tmp/r_curve.tsv" "$times"
        key "$tmp/r.out" compute_seconds >>"$tmp/r.comp"
        line="$line; R $(tail -n 1 "$tmp/r.wall") s (compute $(fmt "$tmp/r.comp"))"
    fi
    if [ -n "$py" ]; then
        timed py "$py" "$here/km_anchor.py" "$in" "$tmp/py_curve.tsv" "$times"
        key "$tmp/py.out" compute_seconds >>"$tmp/py.comp"
        line="$line; lifelines $(tail -n 1 "$tmp/py.wall") s (compute $(fmt "$tmp/py.comp"))"
    fi
    echo "$line"
done

# ---------------------------------------------------------------- agreement
bad=0
# check NAME OK DETAIL: one line of the agreement list
check() {
    if [ "$2" = 1 ]; then s=ok; else s=FAIL; bad=1; fi
    printf '  %-4s %-44s %s\n' "$s" "$1" "$3"
}
# rel A B: |A - B| / |B|
rel() { awk -v a="$1" -v b="$2" 'BEGIN { d = a - b; if (d < 0) d = -d; if (b < 0) b = -b; printf "%.3g", b ? d / b : d }'; }
absd() { awk -v a="$1" -v b="$2" 'BEGIN { d = a - b; if (d < 0) d = -d; printf "%.3g", d }'; }
le() { awk -v a="$1" -v b="$2" 'BEGIN { print (a != "" && a != "nan" && a + 0 <= b + 0) ? 1 : 0 }'; }
# our survival at $times, from the curve table (a step function)
awk -F'\t' -v times="$times" '
    NR > 1 { g = $1; sub(/^group=/, "", g); if (!(g in seen)) { seen[g] = 1; order[++ng] = g }
             k = ++nr[g]; T[g, k] = $2; S[g, k] = $6 }
    END { nt = split(times, tt, ",")
          for (a = 1; a <= ng; a++) { g = order[a]
              for (j = 1; j <= nt; j++) { s = 1
                  for (k = 1; k <= nr[g] && T[g, k] <= tt[j] + 0; k++) s = S[g, k]
                  printf "surv group=%s time=%s surv=%.17g\n", g, tt[j], s } } }' \
    "$tmp/ours_curve.tsv" >"$tmp/ours_surv"
# survdiff SURVFILE: the largest |S(t) - ours| over $times and groups
survdiff() {
    awk 'NR == FNR { s[$2, $3] = $4; next } ($2, $3) in s {
            sub(/^surv=/, "", $4); o = s[$2, $3]; sub(/^surv=/, "", o)
            d = $4 - o; if (d < 0) d = -d; if (d > m) m = d; k++ }
         END { printf "%.3g %d\n", m, k }' "$tmp/ours_surv" "$1"
}
# curvediff FILE OURCOLS THEIRCOLS: rows of FILE (a curve table with a
# header) against ours, row by row; prints rows, max |diff| over the
# numeric columns, and how many key columns (group and time) differ
curvediff() {
    awk -F'\t' -v oc="$2" -v tc="$3" '
        NR == FNR { if (FNR > 1) { n++; for (j = 1; j <= NF; j++) o[n, j] = $j }; next }
        FNR > 1 { m++; no = split(oc, a, " "); split(tc, b, " ")
            for (j = 1; j <= no; j++) { x = o[m, a[j]]; y = $(b[j])
                if (j <= 2) { if (j == 1) sub(/^group=/, "", x); if (j == 1) sub(/^group=/, "", y)
                              if (x + 0 != y + 0 || (j == 1 && x != y)) keyd++; continue }
                if (x == "nan" || y == "NA" || y == "NaN" || y == "") continue
                d = x - y; if (d < 0) d = -d; if (d > md) md = d } }
        END { printf "%d %.3g %d %d\n", m, md, keyd + 0, n }' "$tmp/ours_curve.tsv" "$1"
}

o=$tmp/ours.out
ochi=$(key "$o" logrank_chisq) oc=$(key "$o" cindex)
echo
echo "agreement (ours: logrank_chisq=$ochi cindex=$oc uno_c=$(key "$o" uno_c)):"
if cmp -s "$tmp/ours_curve.tsv" "$tmp/svg_curve.tsv"; then
    check "curve table with and without -o" 1 "identical"
else
    check "curve table with and without -o" 0 "differ"
fi
if [ "$have_r" = 1 ]; then
    r=$tmp/r.out
    d=$(rel "$ochi" "$(key "$r" logrank_chisq)")
    check "log-rank chisq vs R (rel <= 1e-6)" "$(le "$d" 1e-6)" "R $(key "$r" logrank_chisq), rel diff $d"
    d=$(absd "$oc" "$(key "$r" cindex)")
    check "Harrell's C vs R (<= 1e-9)" "$(le "$d" 1e-9)" "R $(key "$r" cindex), diff $d"
    same=1
    for k in concordant discordant tied_risk tied_time; do
        a=$(key "$o" "cindex_$k") b=$(key "$r" "cindex_$k")
        awk -v a="$a" -v b="$b" 'BEGIN { exit !(a + 0 == b + 0) }' || same=0
    done
    counts="$(key "$o" cindex_concordant) concordant, $(key "$o" cindex_discordant) discordant"
    counts="$counts, $(key "$o" cindex_tied_risk) tied risk, $(key "$o" cindex_tied_time) tied time"
    check "C-index pair counts vs R (equal)" "$same" "$counts"
    # shellcheck disable=SC2046 # split into words on purpose
    set -- $(survdiff "$r")
    check "S(t) at $times vs R (<= 1e-9)" "$(le "$1" 1e-9)" "max diff $1 over $2 points"
    # ours: group time n.risk n.event n.censor surv std.err std.err.logS lower upper
    # R:    strata time n.risk n.event n.censor surv std.err(logS) lower upper
    # shellcheck disable=SC2046 # split into words on purpose
    set -- $(curvediff "$tmp/r_curve.tsv" "1 2 3 4 5 6 8 9 10" "1 2 3 4 5 6 7 8 9")
    ok=0; [ "$1" = "$4" ] && [ "$3" = 0 ] && [ "$(le "$2" 1e-9)" = 1 ] && ok=1
    check "curve table vs survfit (<= 1e-9)" "$ok" "$1 rows (ours $4), max diff $2 over n.risk..upper"
fi
if [ -n "$py" ]; then
    p=$tmp/py.out
    d=$(rel "$ochi" "$(key "$p" logrank_chisq)")
    check "log-rank chisq vs lifelines (<= 1e-6)" "$(le "$d" 1e-6)" "lifelines $(key "$p" logrank_chisq), rel diff $d"
    d=$(absd "$oc" "$(key "$p" cindex)")
    # lifelines counts ties its own way; its C is reported, not checked
    printf '  %-4s %-44s %s\n' "info" "Harrell's C vs lifelines" "lifelines $(key "$p" cindex), diff $d"
    # shellcheck disable=SC2046 # split into words on purpose
    set -- $(survdiff "$p")
    check "S(t) at $times vs lifelines (<= 1e-9)" "$(le "$1" 1e-9)" "max diff $1 over $2 points"
    # lifelines: time group at_risk observed censored surv lower(log-log) upper
    # shellcheck disable=SC2046 # split into words on purpose
    set -- $(curvediff "$tmp/py_curve.tsv" "1 2 3 4 5 6" "2 1 3 4 5 6")
    ok=0; [ "$1" = "$4" ] && [ "$3" = 0 ] && [ "$(le "$2" 1e-9)" = 1 ] && ok=1
    check "curve table vs lifelines (<= 1e-9)" "$ok" "$1 rows (ours $4), max diff $2 over at_risk..surv (its CI is log-log)"
fi

# ---------------------------------------------------------------- table
ow=$(best "$tmp/ours.wall") sw=$(best "$tmp/svg.wall")
echo
printf '%-22s %12s %12s %12s %10s %10s\n' tool compute_s read_s process_s "x process" "x compute"
printf '%-22s %12s %12s %12.3f %10s %10s\n' "km-plot" - - "$ow" 1 1
printf '%-22s %12s %12s %12.3f %10s %10s\n' "km-plot -o km.svg" - - "$sw" \
    "$(awk -v a="$sw" -v b="$ow" 'BEGIN { printf "%.2f", a / b }')" -
row() {  # row TOOL NAME: best compute, read and process seconds of NAME
    c=$(best "$tmp/$2.comp") w=$(best "$tmp/$2.wall") rd=$(key "$tmp/$2.out" read_seconds)
    xw=$(awk -v a="$w" -v b="$ow" 'BEGIN { printf "%.2f", a / b }')
    xc=$(awk -v a="$c" -v b="$ow" 'BEGIN { printf "%.2f", a / b }')
    printf '%-22s %12.3f %12.3f %12.3f %10s %10s\n' "$1" "$c" "$rd" "$w" "$xw" "$xc"
    echo "$1|$xw" >>"$tmp/ratios"
}
[ "$have_r" = 1 ] && row "R survival" r
[ -n "$py" ] && row "lifelines" py
echo "(seconds: best of $reps; process_s = wall clock of the whole process, startup"
echo " and input included; compute_s = the anchor's own clock around the fits, test,"
echo " C-index and writing the curve table, read_s its reading of the table (last run);"
echo " km-plot has no inner clock, so both ratio columns divide by its whole process;"
echo " x > 1: km-plot is faster; the picture row is its time over the run without -o)"
if [ -s "$tmp/ratios" ]; then
    awk -F'|' '{ printf "target >= 5x on the whole process vs %s: %sx, %s\n", $1, $2,
                 ($2 >= 5 ? "met" : "NOT met") }' "$tmp/ratios"
fi
if [ "$bad" != 0 ]; then
    echo "km.sh: the results disagree (FAIL above)" >&2
    exit 1
fi
