#!/bin/sh
# realdata.sh: mpk pack on the real tables of ../shared/data (MANIFEST.md):
# R's lung (1/2 coding), PORPOISE KIRP (pandas index, censorship), the
# SurvPath BLCA RNA table (case ids in a pandas index column) and the ALL
# expression matrix (probes in rows). Counts are checked against awk over
# the same files.
. "$top_srcdir/tests/tools/lib.sh"
D=${MMPATH_TEST_DATA:-}
need_data survival/lung.tsv paired/porpoise/tcga_kirp_all_clean.csv \
    paired/survpath_blca/tcga_blca_xena_rna_clean.csv expression/ALL/ALL_exprs.tsv
set -e
cd "$T_DIR"

run mpk pack --kind clinical --time-unit days -o lung.mpk "$D/survival/lung.tsv"
is "$rc" 0 "lung: pack"
like "$err" "1/2 read as R's Surv coding" "lung: says it read R's 1/2 coding"
mpk cat -r lung.mpk > lung.jsonl
is "$(wc -l < lung.jsonl)" 228 "lung: 228 patients"
want=$(awk -F'\t' 'NR > 1 && $3 == 2' "$D/survival/lung.tsv" | wc -l)
is "$(grep -c '"event":1' lung.jsonl)" "$want" "lung: $want deaths, as status == 2"
like lung.jsonl '^\{"id":"1","time":306\.0,"event":1,"inst":3,' "lung: first row"

run mpk pack --kind clinical --id-col case_id -o kirp.mpk "$D/paired/porpoise/tcga_kirp_all_clean.csv"
is "$rc" 0 "KIRP: pack"
like "$err" "censorship \(1 = censored, 0 = event\)" "KIRP: censorship read as 1 = censored"
mpk cat -r kirp.mpk > kirp.jsonl
nrow=$(($(wc -l < "$D/paired/porpoise/tcga_kirp_all_clean.csv") - 1))
is "$(wc -l < kirp.jsonl)" "$nrow" "KIRP: one record per slide row ($nrow)"
# censorship is column 7 (index column first); events are censorship == 0
want=$(awk -F, 'NR > 1 && $7 + 0 == 0' "$D/paired/porpoise/tcga_kirp_all_clean.csv" | wc -l)
is "$(grep -c '"event":1' kirp.jsonl)" "$want" "KIRP: $want events"
like kirp.jsonl '^\{"id":"TCGA-2K-A9WE","time":7\.03,"event":0,' "KIRP: first case, time in months"

run mpk pack --kind omics --block mRNA -o blca.mpk "$D/paired/survpath_blca/tcga_blca_xena_rna_clean.csv"
is "$rc" 0 "BLCA RNA: pack"
run mpk info blca.mpk
like "$out" "omics 'tcga_blca_xena_rna_clean', 360 records" "BLCA RNA: 360 patients"
like "$out" "features\[1577\]" "BLCA RNA: 1577 genes"
run mpk head -r -n 1 blca.mpk
like "$out" '^\{"id":"TCGA-[A-Z0-9]{2}-[A-Z0-9]{4}' "BLCA RNA: ids from the pandas index column"

run mpk pack --kind omics --genes-in rows -o all.mpk "$D/expression/ALL/ALL_exprs.tsv"
is "$rc" 0 "ALL: pack 12625 probes x 128 samples"
run mpk info all.mpk
like "$out" "128 records" "ALL: 128 samples"
like "$out" "features\[12625\]" "ALL: 12625 probes"
run mpk head -r -n 1 --full all.mpk
like "$out" '^\{"id":"01005"' "ALL: sample ids keep leading zeros"
# the first sample's first probe, as in the table
want=$(awk -F'\t' 'NR == 2 { print $2 }' "$D/expression/ALL/ALL_exprs.tsv")
got=$(sed 's/.*"data":\[\([^,]*\),.*/\1/' "$out")
if awk -v a="$got" -v b="$want" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 1e-6 * (b < 0 ? -b : b) + 1e-6) }'
then pass "ALL: first value $got equals the table's $want (f32 tolerance)"
else fail "ALL: first value $got equals the table's $want (f32 tolerance)"; fi
for f in lung kirp blca all; do
    run mpk verify "$f.mpk"
    is "$rc" 0 "$f: verifies"
done
echo "1..$T_N"
done_testing
