#!/bin/sh
# man.sh: lint the man pages (groff -man -ww -z: no warning, exit 0), check
# that mpk(1) names every long option of mpk's usage texts, and run each
# "$ " line of mpk(1)'s EXAMPLES in order (jq's mantest), in a directory
# holding the tables the examples use. Only exit status 0 is checked: the
# output the page shows is illustration, tested in mpk.sh, not here.
# SPDX-License-Identifier: MIT
. "$top_srcdir/tests/tools/lib.sh"

if ! command -v groff >/dev/null 2>&1; then
    echo "1..0 # SKIP groff not installed"
    exit 0
fi

# every page; the tools whose page must name each long option of --help
OPT_TOOLS="km-plot rna-select seq-mask mm-synth mm-train wsi-tile patch-embed"
PAGES="mpk.1 mmpath-stream.5 mmpath.7"
for t in $OPT_TOOLS; do PAGES="$PAGES $t.1"; done
COMMANDS="cat head info verify pack"
mpk1=$top_srcdir/man/mpk.1.in
kmplot1=$top_srcdir/man/km-plot.1.in
rnasel1=$top_srcdir/man/rna-select.1.in
mmsynth1=$top_srcdir/man/mm-synth.1.in

# groff text -> what a reader types: \- \e \(dq \(aq \% \&
unescape() {
    sed -e 's/\\-/-/g' -e 's/\\(dq/"/g' -e "s/\\\\(aq/'/g" \
        -e 's/\\%//g' -e 's/\\&//g' -e 's/\\e/\\/g' "$@"
}

# ---- the examples: one file per "$ " line with its continuation lines
# (a line ending in \e goes on), from the .EX blocks of EXAMPLES only
mkdir "$T_DIR/ex" "$T_DIR/cmd"
awk -v dir="$T_DIR/cmd" '
    /^\.SH/ { inex = ($0 ~ /^\.SH +"?EXAMPLES"?[ \t]*$/); blk = 0; next }
    !inex { next }
    /^\.EX/ { blk = 1; next }
    /^\.EE/ { blk = 0; cont = 0; next }
    !blk { next }
    cont { print > f; cont = /\\e$/; if (!cont) close(f); next }
    /^\$ / {
        f = sprintf("%s/%03d", dir, ++n)
        print substr($0, 3) > f
        cont = /\\e$/
        if (!cont) close(f)
    }
' "$mpk1" "$kmplot1" "$rnasel1" "$mmsynth1"
nex=0
for f in "$T_DIR"/cmd/*; do
    [ -e "$f" ] || continue
    unescape "$f" >"$f.sh"
    nex=$((nex + 1))
done

plan $(( $(echo $PAGES | wc -w) + 1 + $(echo $OPT_TOOLS | wc -w) + $(echo $COMMANDS | wc -w) + nex ))

# ---- lint
for p in $PAGES; do
    if [ ! -f "$top_srcdir/man/$p.in" ]; then
        fail "$p: no man/$p.in"
        continue
    fi
    sed -e 's|@VERSION@|0.0-test|g' "$top_srcdir/man/$p.in" >"$T_DIR/$p"
    groff -man -ww -z "$T_DIR/$p" >/dev/null 2>"$T_DIR/lint.err"
    lrc=$?
    if [ "$lrc" -eq 0 ] && [ ! -s "$T_DIR/lint.err" ]; then
        pass "$p: groff -man -ww -z is silent"
    else
        fail "$p: groff -man -ww -z (exit $lrc)"
        sed 's/^/#   /' "$T_DIR/lint.err" | head -20
    fi
done

# ---- every long option of a usage text is in mpk(1)
unescape "$mpk1" >"$T_DIR/mpk.1.txt"
check_opts() { # WHAT, with the usage text in $T_DIR/usage
    missing=
    for o in $(grep -o -e '--[a-z][a-z-]*' "$T_DIR/usage" | sort -u); do
        grep -Eq -e "$o([^a-z-]|\$)" "$T_DIR/mpk.1.txt" || missing="$missing $o"
    done
    is "${missing# }" "" "mpk(1) names every long option of $1"
}
mpk --help >"$T_DIR/usage" 2>&1
check_opts "mpk --help"
# TOOL(1) names every long option of TOOL --help
for t in $OPT_TOOLS; do
    unescape "$top_srcdir/man/$t.1.in" >"$T_DIR/$t.1.txt"
    "$t" --help >"$T_DIR/usage" 2>&1
    missing=
    for o in $(grep -o -e '--[a-zA-Z][a-zA-Z0-9-]*' "$T_DIR/usage" | sort -u); do
        grep -Eq -e "$o([^a-zA-Z0-9-]|\$)" "$T_DIR/$t.1.txt" || missing="$missing $o"
    done
    is "${missing# }" "" "$t(1) names every long option of $t --help"
done
for c in $COMMANDS; do
    mpk "$c" --help >"$T_DIR/usage" 2>&1
    check_opts "mpk $c --help"
done

# ---- the inputs the examples name
cd "$T_DIR/ex" || exit 1
# the first rows of R's survival::lung: days, status 1 = censored, 2 = dead
printf 'time\tstatus\tage\tsex\n' >lung.tsv
printf '%s\t%s\t%s\t%s\n' 306 2 74 1  455 2 68 1  1010 1 56 1  210 2 57 1 \
    883 2 60 1  1022 1 74 1  310 2 68 2  361 2 71 2 >>lung.tsv
# cBioPortal style, comma-separated
cat >brca.csv <<'EOF'
PATIENT_ID,OS_MONTHS,OS_STATUS,SUBTYPE,AGE
TCGA-A1-A0SB,70.8,0:LIVING,LumA,59
TCGA-A1-A0SD,14.1,0:LIVING,LumA,59
TCGA-A2-A04P,17.9,1:DECEASED,Basal,36
TCGA-A2-A0CM,24.8,1:DECEASED,Basal,40
TCGA-A1-A0SE,43.4,0:LIVING,LumB,NA
EOF
# Xena style: genes in rows, samples in columns
printf 'sample\tTCGA-A1-A0SB-01\tTCGA-A1-A0SD-01\tTCGA-A2-A04P-01\n' >expr.tsv
printf '%s\t%s\t%s\t%s\n' TP53 10.21 9.87 11.02  EGFR 7.45 NA 8.13 \
    ERBB2 12.9 13.4 9.6  ESR1 11.5 12.1 4.2 >>expr.tsv

# a risk score per patient (km-plot's examples)
printf 'id\ttime\tstatus\trisk\n' >risk.tsv
printf '%s\t%s\t%s\t%s\n' P1 306 1 0.9  P2 455 1 0.4  P3 1010 0 -0.7  P4 210 1 1.2 \
    P5 883 1 -0.1  P6 1022 0 -1.3  P7 310 1 0.8  P8 361 1 0.2 >>risk.tsv

# rna-select's examples: subtypes of the samples of expr.tsv, all of them
# training samples, and a gene list
printf 'id\tsubtype\nTCGA-A1-A0SB-01\tLumA\nTCGA-A1-A0SD-01\tLumA\nTCGA-A2-A04P-01\tBasal\n' >clinical.tsv
printf 'TCGA-A1-A0SB-01\nTCGA-A1-A0SD-01\nTCGA-A2-A04P-01\n' >train.txt
printf 'TP53\nERBB2\n' >genes.txt

# ---- run the examples in order, each in the same directory
[ "$nex" -gt 0 ] || diag "no example found in the EXAMPLES of $mpk1"
for f in "$T_DIR"/cmd/*.sh; do
    [ -e "$f" ] || continue
    name=$(head -n 1 "$f" | sed -e 's/#//g' -e 's/[[:space:]]*\\$/ .../')
    sh -c "$(cat "$f")" >"$out" 2>"$err" </dev/null
    xrc=$?
    if [ "$xrc" -eq 0 ]; then
        pass "example: $name"
    else
        fail "example: $name (exit $xrc)"
        sed 's/^/#   /' "$err" | head -10
    fi
done

done_testing
