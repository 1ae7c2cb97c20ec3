#!/bin/sh
# rna-select.sh: rna-select end to end on real data: the variance filter
# against R's export of ALL's 1000 most variable probes, univariate Cox
# ranking on TCGA BLCA against R's coxph, RFE against scikit-learn's
# selection (tests/fixtures/linear), the stream and its selection trail,
# --keep, --train-ids, and bad input and usage.
. "$top_srcdir/tests/tools/lib.sh"
D=${MMPATH_TEST_DATA:-}
need_data expression/ALL/ALL_exprs.tsv expression/ALL/ALL_exprs_top1000var.tsv \
    paired/porpoise/tcga_kirp_all_clean.csv \
    expression/ALL/ALL_pheno.tsv paired/survpath_blca/tcga_blca_xena_rna_clean.csv \
    paired/survpath_blca/tcga_blca_metadata.csv
set -e
cd "$T_DIR"
ALL=$D/expression/ALL
BLCA=$D/paired/survpath_blca

# the 1000 most variable probes: the same set R exported
run rna-select --top-var 1000 --list "$ALL/ALL_exprs.tsv"
is "$rc" 0 "ALL --top-var 1000: exit 0"
sort "$out" > ours.txt
tail -n +2 "$ALL/ALL_exprs_top1000var.tsv" | cut -f1 | sort > theirs.txt
if cmp -s ours.txt theirs.txt; then pass "top 1000 by variance = ALL_exprs_top1000var.tsv's probes"
else fail "top 1000 by variance = ALL_exprs_top1000var.tsv's probes"; diff ours.txt theirs.txt | head -5 | sed 's/^/#   /'; fi

# a stream with its trail
run rna-select --log2 1 --drop-constant --top-var 50 --block mRNA -o all.mpk "$ALL/ALL_exprs.tsv"
is "$rc" 0 "ALL to a stream: exit 0"
run mpk info all.mpk
like "$out" "omics 'ALL_exprs', 128 records" "128 samples in the stream"
like "$out" "features\[50\]" "50 features in the header"
run mpk head -n 1 all.mpk
like "$out" '"selection":\[\{"step":"log2","pseudo":1.0,"features_in":12625,"features_out":12625\},\{"step":"drop_constant","features_in":12625,"features_out":12625\},\{"step":"top_var","k":50,"features_in":12625,"features_out":50\}\]' "the selection trail lists each step, in and out"
like "$out" '"transform":"log2\(x\+1\)"' "the transform is recorded"
like "$out" '"tool":\{"name":"rna-select","version":"[^"]*","argv":\["rna-select","--log2","1",' "provenance argv starts with the tool's name"
run mpk head -r -n 1 all.mpk
like "$out" '^\{"id":"01005","v":\{"tensor":"f32","shape":\[50\]' "sample ids keep their leading zeros"

# --keep: a listed probe survives the filter
printf '1000_at\n' > keep.txt
run rna-select --top-var 5 --keep keep.txt --list "$ALL/ALL_exprs.tsv"
is "$(wc -l < "$out")" 6 "--keep adds its probe to the 5 kept"
like "$out" '^1000_at$' "--keep: the listed probe is there"

# univariate Cox on TCGA BLCA: R's smallest p over all 1577 genes is F2RL2
run rna-select --labels "$BLCA/tcga_blca_metadata.csv" --id-col case_id \
    --time-col survival_months --cox-top 1 --list "$BLCA/tcga_blca_xena_rna_clean.csv"
is "$rc" 0 "BLCA --cox-top 1: exit 0"
is "$(cat "$out")" F2RL2 "the gene with R's smallest coxph p (F2RL2)"
like "$err" "1 samples have no row in .*: TCGA-C4-A0F6" "the sample without clinical data is named"

# --train-ids: z-scores from the training samples only
tail -n +2 "$ALL/ALL_pheno.tsv" | head -n 64 | cut -f1 > train.txt
run rna-select --top-var 3 --zscore --train-ids train.txt --list "$ALL/ALL_exprs.tsv"
is "$rc" 0 "--train-ids: exit 0"

# RFE with LinearSVC on ALL B vs T (standardised top 1000 probes, down to 20,
# step 0.1), against scikit-learn's RFE(LinearSVC()) selection
fix=$top_srcdir/tests/fixtures/linear/rfe_bt_top1000_k20.tsv
run rna-select --zscore --rfe 20 --step 0.1 --labels "$ALL/ALL_pheno.tsv" --id-col sample \
    --label-col lineage --list "$ALL/ALL_exprs_top1000var.tsv"
is "$rc" 0 "ALL --rfe 20: exit 0"
sort "$out" > ours.txt
grep -v '^#' "$fix" | awk -F'\t' 'NR > 1 && $3 == 1 { print $1 }' | sort > sk.txt
common=$(comm -12 ours.txt sk.txt | wc -l)
diag "RFE: $common of 20 selected features in common with scikit-learn"
if [ "$common" -ge 19 ]; then pass "RFE selects what scikit-learn selects (>= 95% overlap: $common of 20)"
else fail "RFE selects what scikit-learn selects (>= 95% overlap: $common of 20)"; fi
is "$(wc -l < ours.txt)" 20 "RFE keeps 20"
run rna-select --zscore --rfe 20 --step 0.1 --labels "$ALL/ALL_pheno.tsv" --id-col sample \
    --label-col lineage -@ 2 --list "$ALL/ALL_exprs_top1000var.tsv"
sort "$out" > ours2.txt
if cmp -s ours.txt ours2.txt; then pass "the same selection with 2 threads"; else fail "the same selection with 2 threads"; fi

# a PORPOISE table: clinical and *_rnaseq columns, one row per slide
run rna-select --feature-suffix _rnaseq -o kirp.mpk "$D/paired/porpoise/tcga_kirp_all_clean.csv"
is "$rc" 0 "PORPOISE KIRP: exit 0"
ncase=$(tail -n +2 "$D/paired/porpoise/tcga_kirp_all_clean.csv" | cut -d, -f2 | sort -u | wc -l)
nrna=$(head -n 1 "$D/paired/porpoise/tcga_kirp_all_clean.csv" | tr , '\n' | grep -c '_rnaseq$')
run mpk info kirp.mpk
like "$out" "omics 'tcga_kirp_all_clean', $ncase records" "one record per case ($ncase, slides deduplicated)"
like "$out" "features\[$nrna\]" "the $nrna *_rnaseq columns are the features"

printf 'case_id,slide,age,A_rnaseq,B_rnaseq\nc1,s1,50,1.5,2\nc2,s2,60,3,4\nc1,s3,50,1.5,2.5\n' > mixed.csv
run rna-select --feature-suffix _rnaseq --list mixed.csv
is "$rc" 1 "a repeated id with other values: exit 1"
like "$err" "mixed.csv:4: id 'c1' repeats line 2 with other values \(column 'B_rnaseq'\)" "... naming both lines and the column"
printf 'case_id,slide,age,A_rnaseq,B_rnaseq\nc1,s1,50,1.5,2\nc2,s2,60,3,4\nc1,s3,50,1.5,2\n' > mixed.csv
run rna-select --feature-suffix _rnaseq -o mixed.mpk mixed.csv
run mpk cat -r --full mixed.mpk
like "$out" '^\{"id":"c2","v":\{"tensor":"f32","shape":\[2\],"data":\[3.0,4.0\]\}\}$' "equal repeats dropped, values read"

# RFECV and logistic regression run end to end
run rna-select --zscore --rfecv --step 0.1 --labels "$ALL/ALL_pheno.tsv" --id-col sample \
    --label-col lineage -o rfecv.mpk "$ALL/ALL_exprs_top1000var.tsv"
is "$rc" 0 "--rfecv: exit 0"
want=$(sed -n 's/^# n_features_ = \([0-9]*\).*/\1/p' "$top_srcdir/tests/fixtures/linear/rfecv_bt.tsv")
run mpk info rfecv.mpk
if [ -n "$want" ]; then like "$out" "features\[$want\]" "RFECV keeps scikit-learn's count ($want)"
else pass "# SKIP no n_features in rfecv_bt.tsv"; fi
run rna-select --zscore --rfe 10 --estimator logreg --step 0.1 --labels "$ALL/ALL_pheno.tsv" \
    --id-col sample --label-col lineage --list "$ALL/ALL_exprs_top1000var.tsv"
is "$rc" 0 "--estimator logreg: exit 0"
is "$(wc -l < "$out")" 10 "logreg RFE keeps 10"

# bad input and usage
printf 'gene\tS1\tS2\nG1\t1\t2\nG2\t3\tfoo\n' > bad.tsv
run rna-select --genes-in rows bad.tsv
is "$rc" 1 "a non-number: exit 1"
like "$err" "^rna-select: .*bad.tsv:3: .*foo" "a non-number: names file, line and value"
run rna-select --rfe 10 "$ALL/ALL_exprs.tsv"
is "$rc" 2 "--rfe without --labels: exit 2"
run rna-select --impute median "$ALL/ALL_exprs.tsv"
is "$rc" 2 "unknown --impute: exit 2"
run rna-select --step 2.5 "$ALL/ALL_exprs.tsv"
is "$rc" 2 "--step 2.5: exit 2"
run rna-select no-such-file.tsv
is "$rc" 1 "missing input: exit 1"
echo "1..$T_N"
done_testing
