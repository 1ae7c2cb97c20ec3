#!/bin/sh
# run.sh [BINDIR]: the quick-start pipeline on the synthetic cohort in
# examples/cohort (40 patients, two subtypes, RNA for 50 genes, survival).
# Today it runs the stages that exist: the clinical table and the RNA matrix
# packed into mpk streams, checked and shown, then Kaplan-Meier curves by
# subtype with the log-rank test. Each later tool adds its stage here
# (wsi-tile, patch-embed, rna-select, mm-train; km-plot then plots risk).
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
echo "== check both streams"
mpk verify "$out/clinical.mpk" "$out/rna.mpk" && echo "both streams verify"
echo "== what they hold"
mpk info "$out/clinical.mpk" "$out/rna.mpk"
echo "== first two patients"
mpk head -r -n 2 "$out/clinical.mpk"
echo "== Kaplan-Meier by subtype: curves, log-rank test, picture"
km-plot --group subtype --time-col time_months --time-unit months \
    --title "Synthetic cohort: survival by subtype" --tsv "$out/km.tsv" \
    --png "$out/km.png" -o "$out/km.svg" "$out/clinical.mpk"
echo "== outputs in $out: clinical.mpk rna.mpk km.svg km.png km.tsv"
echo "   (next stages as they land: wsi-tile, patch-embed, rna-select, mm-train)"
