#!/bin/sh
# omics_inputs.sh DATA RECIPE OUT: rebuilds the BLCA test matrix of
# tests/unit/t-omics.c (blca60x40.tsv: 60 samples x 40 genes, samples in
# rows, "NA" for missing) from the real SurvPath table under DATA
# (MMPATH_TEST_DATA, ../shared/data) and the committed recipe
# tests/fixtures/omics/blca60x40.recipe, which names the rows, columns,
# knocked-out cells and the synthetic constant column but holds no real
# value. The real table is licensed (non-commercial): the matrix is rebuilt
# where the tests run and must never be committed, not even in part.
# Values are copied as the CSV spells them. POSIX sh + awk; exit 0 on
# success, 1 with a one-line message on stderr otherwise.
# SPDX-License-Identifier: MIT
set -u
if [ $# -ne 3 ]; then
    echo "usage: omics_inputs.sh DATA RECIPE OUT" >&2
    exit 1
fi
data=$1 recipe=$2 out=$3
src=$(awk -F'\t' '$1 == "source" { print $2; exit }' "$recipe") || exit 1
if [ -z "$src" ]; then
    echo "omics_inputs.sh: $recipe: no source line" >&2
    exit 1
fi
csv=$data/$src
if [ ! -r "$csv" ]; then
    echo "omics_inputs.sh: cannot read $csv" >&2
    exit 1
fi
tmp=$out.tmp.$$
trap 'rm -f "$tmp"' EXIT HUP INT TERM
awk -v recipe="$recipe" -v csv="$csv" '
function die(msg) { print "omics_inputs.sh: " msg > "/dev/stderr"; bad = 1; exit 1 }
BEGIN {
    FS = "\t"
    while ((r = getline line < recipe) > 0) {
        if (line ~ /^#/ || line == "") continue
        nf = split(line, f, "\t")
        if (f[1] == "sample" && nf == 2) { ns++; sample[ns] = f[2]; srow[f[2]] = ns }
        else if (f[1] == "gene" && nf == 2) { ng++; gene[ng] = f[2]; gcol[f[2]] = ng }
        else if (f[1] == "constant" && nf == 3) { cst[f[2]] = f[3] }
        else if (f[1] == "na" && nf == 3) { na[f[2] SUBSEP f[3]] = 1 }
        else if (f[1] == "source" && nf == 2) { }
        else die(recipe ": bad line: " line)
    }
    if (r < 0) die("cannot read " recipe)
    if (!ns || !ng) die(recipe ": no samples or no genes")
    for (k in na) {
        split(k, f, SUBSEP)
        if (!(f[1] in srow) || !(f[2] in gcol)) die(recipe ": na cell not in the matrix: " f[1] " " f[2])
    }
    for (k in cst) if (!(k in gcol)) die(recipe ": constant gene not in the matrix: " k)
    FS = ","
    nr = 0
    while ((r = getline line < csv) > 0) {
        nr++
        n = split(line, f, ",")
        if (nr == 1) {
            for (j = 2; j <= n; j++) if (f[j] in gcol) at[gcol[f[j]]] = j
            continue
        }
        if (!(f[1] in srow)) continue
        i = srow[f[1]]
        if (i in seen) die(csv ": sample " f[1] " twice")
        seen[i] = 1
        for (g = 1; g <= ng; g++) {
            if (!(g in at)) die(csv ": no gene " gene[g])
            v = f[at[g]]
            if (gene[g] in cst) v = cst[gene[g]]
            if ((f[1] SUBSEP gene[g]) in na) v = "NA"
            row[i, g] = v
        }
    }
    if (r < 0) die("cannot read " csv)
    for (i = 1; i <= ns; i++) if (!(i in seen)) die(csv ": no sample " sample[i])
    s = "sample"
    for (g = 1; g <= ng; g++) s = s "\t" gene[g]
    print s
    for (i = 1; i <= ns; i++) {
        s = sample[i]
        for (g = 1; g <= ng; g++) s = s "\t" row[i, g]
        print s
    }
}' > "$tmp" || exit 1
mv "$tmp" "$out" || exit 1
trap - EXIT HUP INT TERM
exit 0
