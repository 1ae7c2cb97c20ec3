#!/bin/sh
# run.sh [BINDIR]: the quick-start pipeline on the synthetic cohort in
# examples/cohort (40 patients, two subtypes, RNA for 50 genes, survival).
# Today it runs the stages that exist: the clinical table and the RNA matrix
# packed into mpk streams, genes selected by RFE, the streams checked and
# shown, then Kaplan-Meier curves by subtype with the log-rank test. Each
# later tool adds its stage here (wsi-tile, patch-embed, mm-train; km-plot
# then plots predicted risk).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-}
[ -n "$bin" ] && PATH=$bin:$PATH
out=$here/out
mkdir -p "$out"
echo "== clinical table -> stream"
mpk pack --kind clinical --label-col subtype --time-col time_months --time-unit months \
    -o "$out/clinical.mpk" "$here/cohort/clinical.tsv"
echo "== RNA matrix (genes in rows) -> omics stream"
mpk pack --kind omics --genes-in rows --block mRNA -o "$out/rna.mpk" "$here/cohort/rna.tsv"
echo "== RNA: z-scores, then RFE with a linear SVM down to 10 genes that tell the subtypes apart"
rna-select --genes-in rows --zscore --rfe 10 --step 0.2 \
    --labels "$here/cohort/clinical.tsv" --label-col subtype -o "$out/rna.selected.mpk" \
    "$here/cohort/rna.tsv"
mpk head -n 1 "$out/rna.selected.mpk" | sed -n 's/.*"features":\(\[[^]]*\]\).*/selected: \1 (GENE01-GENE10 carry the planted basal signal)/p'
echo "== check the streams"
mpk verify "$out/clinical.mpk" "$out/rna.mpk" "$out/rna.selected.mpk" && echo "all streams verify"
echo "== what they hold"
mpk info "$out/clinical.mpk" "$out/rna.mpk"
echo "== first two patients"
mpk head -r -n 2 "$out/clinical.mpk"
echo "== Kaplan-Meier by subtype: curves, log-rank test, picture"
km-plot --group subtype --time-col time_months --time-unit months \
    --title "Synthetic cohort: survival by subtype" --tsv "$out/km.tsv" \
    --png "$out/km.png" -o "$out/km.svg" "$out/clinical.mpk"
echo "== outputs in $out: clinical.mpk rna.mpk rna.selected.mpk km.svg km.png km.tsv"
echo "   (next stages as they land: wsi-tile, patch-embed, mm-train)"
