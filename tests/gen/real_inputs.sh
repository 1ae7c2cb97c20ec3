#!/bin/sh
# real_inputs.sh DATA OUTDIR [FILE...]: rebuilds, from the shared data directory DATA
# ($MMPATH_TEST_DATA), the real-data inputs of tests/unit/t-cox.c,
# tests/unit/t-survival.c and tests/tools/km-plot.sh into OUTDIR:
#
#   lung_input.tsv   survival/lung.tsv: time status age sex ph.ecog ph.karno
#                    wt.loss, status recoded 1/2 -> 0/1 (what
#                    tests/gen/cox_refs.R fitted)
#   blca_input.tsv   paired/survpath_blca: the RNA table (CSV, empty first
#                    header cell = case id) joined with the metadata (first
#                    row of each case_id; time = survival_months, event =
#                    1 - censorship), for the 11 genes of tests/gen/cox_refs.R;
#                    RNA table order, cases without metadata dropped; value
#                    strings copied as they are in the CSVs
#   lung_cox_lp.tsv  the 227 lung rows with ph.ecog: time, status (0/1),
#                    and the Cox linear predictor of
#                    tests/gen/survival_refs.R, pasted from the committed
#                    tests/fixtures/survival/lung_cox_risk.tsv by lung row
#
# With FILE arguments, only those of the three are built (and only their
# sources are needed). Exit status 0 when all were built.
#
# These files copy real data (the SurvPath BLCA tables are licensed
# non-commercial), so they are never committed: the tests build them in a
# temporary directory. POSIX sh and awk only.
# SPDX-License-Identifier: MIT
set -eu

if [ $# -lt 2 ]; then
    echo "usage: $0 DATA OUTDIR [FILE...]" >&2
    exit 2
fi
data=$1
out=$2
shift 2
[ $# -gt 0 ] || set -- lung_input.tsv blca_input.tsv lung_cox_lp.tsv
want_lung=false want_blca=false want_lp=false
for f in "$@"; do
    case $f in
    lung_input.tsv) want_lung=true ;;
    blca_input.tsv) want_blca=true ;;
    lung_cox_lp.tsv) want_lp=true ;;
    *) echo "$0: unknown file $f" >&2; exit 2 ;;
    esac
done
here=$(cd "$(dirname "$0")" && pwd)
risk=$here/../fixtures/survival/lung_cox_risk.tsv
lung=$data/survival/lung.tsv
rna=$data/paired/survpath_blca/tcga_blca_xena_rna_clean.csv
meta=$data/paired/survpath_blca/tcga_blca_metadata.csv
genes="FMO2 APIP PLCE1 SPCS2 HAO1 PSMB6 VAMP7 CYP11B2 F2RL2 HAAO FSHB"

need() {
    for f in "$@"; do
        if [ ! -r "$f" ]; then
            echo "$0: cannot read $f" >&2
            exit 1
        fi
    done
}
if $want_lung || $want_lp; then need "$lung"; fi
if $want_blca; then need "$rna" "$meta"; fi
if $want_lp; then need "$risk"; fi
mkdir -p "$out"

# ---- lung_input.tsv
if $want_lung; then
awk -F'\t' -v OFS='\t' '
NR == 1 {
    for (i = 1; i <= NF; i++) c[$i] = i
    split("time status age sex ph.ecog ph.karno wt.loss", want, " ")
    for (k = 1; k <= 7; k++)
        if (!(want[k] in c)) { print "lung.tsv: no column " want[k] > "/dev/stderr"; exit 1 }
    print "# mmpath real-data input: tests/gen/real_inputs.sh from survival/lung.tsv"
    print "time", "status", "age", "sex", "ph.ecog", "ph.karno", "wt.loss"
    next
}
{
    s = $c["status"]
    if (s == "2") s = 1; else if (s == "1") s = 0
    else { print "lung.tsv: bad status " s > "/dev/stderr"; exit 1 }
    print $c["time"], s, $c["age"], $c["sex"], $c["ph.ecog"], $c["ph.karno"], $c["wt.loss"]
}' "$lung" > "$out/lung_input.tsv"
fi

# ---- blca_input.tsv
if $want_blca; then
awk -v genes="$genes" -v meta="$meta" '
BEGIN {
    FS = ","; OFS = "\t"
    ng = split(genes, g, " ")
    # metadata: first row of each case_id
    if ((getline line < meta) <= 0) { print "no metadata" > "/dev/stderr"; exit 1 }
    n = split(line, h, ",")
    for (i = 1; i <= n; i++) mc[h[i]] = i
    if (!("case_id" in mc) || !("survival_months" in mc) || !("censorship" in mc)) {
        print "metadata: missing columns" > "/dev/stderr"; exit 1
    }
    while ((getline line < meta) > 0) {
        split(line, v, ",")
        id = v[mc["case_id"]]
        if (id in mt) continue
        mt[id] = v[mc["survival_months"]]
        cs = v[mc["censorship"]]
        if (cs == "0") me[id] = 1; else if (cs == "1") me[id] = 0
        else { print "metadata: bad censorship " cs > "/dev/stderr"; exit 1 }
    }
    close(meta)
}
NR == 1 {
    if ($1 != "") { print "RNA table: first header cell not empty" > "/dev/stderr"; exit 1 }
    for (i = 2; i <= NF; i++) rc[$i] = i
    hdr = "case_id" OFS "time" OFS "event"
    for (k = 1; k <= ng; k++) {
        if (!(g[k] in rc)) { print "RNA table: no gene " g[k] > "/dev/stderr"; exit 1 }
        hdr = hdr OFS g[k]
    }
    print "# mmpath real-data input: tests/gen/real_inputs.sh from paired/survpath_blca"
    print hdr
    next
}
($1 in mt) {
    row = $1 OFS mt[$1] OFS me[$1]
    for (k = 1; k <= ng; k++) row = row OFS $(rc[g[k]])
    print row
}' "$rna" > "$out/blca_input.tsv"
fi

# ---- lung_cox_lp.tsv: time/status from lung.tsv, risk from the fixture
if $want_lp; then
awk -F'\t' -v OFS='\t' -v lung="$lung" '
BEGIN {
    if ((getline line < lung) <= 0) { print "no lung.tsv" > "/dev/stderr"; exit 1 }
    n = split(line, h, "\t")
    for (i = 1; i <= n; i++) c[h[i]] = i
    r = 0
    while ((getline line < lung) > 0) {
        split(line, v, "\t")
        r++
        s = v[c["status"]]
        if (s == "2") s = 1; else if (s == "1") s = 0
        else { print "lung.tsv: bad status " s > "/dev/stderr"; exit 1 }
        lt[r] = v[c["time"]]; ls[r] = s
    }
    close(lung)
}
/^#/ { next }
!hdr { hdr = 1; if ($1 != "row" || $2 != "risk") { print "lung_cox_risk.tsv: bad header" > "/dev/stderr"; exit 1 }
       print "# mmpath real-data input: tests/gen/real_inputs.sh from survival/lung.tsv and tests/fixtures/survival/lung_cox_risk.tsv"
       print "time", "status", "risk"; next }
{
    if (!($1 in lt)) { print "lung_cox_risk.tsv: no lung row " $1 > "/dev/stderr"; exit 1 }
    print lt[$1], ls[$1], $2
}' "$risk" > "$out/lung_cox_lp.tsv"
fi
