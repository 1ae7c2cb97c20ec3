#!/bin/sh
# mm-train-blca.sh [DATA]: the real-omics survival check of issue 9: SNN
# (PORPOISE [256]x4, AlphaDropout 0.25) with a Cox head, beside the linear
# Cox baseline (one Linear on the same genes, Cox loss), 5-fold CV by
# patient stratified by event, on SurvPath's TCGA-BLCA RNA table (1577
# genes, Xena log2 values) and its metadata (censorship 1 = censored,
# survival_months). Genes are z-scored per fold on the training patients
# (standardize = train). Prints one summary line per model (cindex_mean,
# cindex_sd: Harrell's C on the held-out folds). No bar: it is reported.
# DATA is the test-data root [$MMPATH_TEST_DATA]; run from the build tree
# (tools/ on PATH or in ./tools). About a minute on 2 cores.
# SPDX-License-Identifier: MIT
set -eu
data=${1:-${MMPATH_TEST_DATA:-}}
blca=$data/paired/survpath_blca
if [ -z "$data" ] || [ ! -r "$blca/tcga_blca_xena_rna_clean.csv" ]; then
    echo "mm-train-blca.sh: no $blca/tcga_blca_xena_rna_clean.csv (give DATA)" >&2
    exit 1
fi
here=$(cd "$(dirname "$0")/.." && pwd)
PATH=$here/tools:$PATH
export MMPATH_DATADIR=${MMPATH_DATADIR:-$here/share/mmpath}
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mm-train-blca.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
rna-select -o "$tmp/rna.mpk" "$blca/tcga_blca_xena_rna_clean.csv"
epochs=${EPOCHS:-20}
mm-train cv --omics "$tmp/rna.mpk" --clinical "$blca/tcga_blca_metadata.csv" \
    --id-col case_id --time-col survival_months --event-col censorship --censored-value 1 \
    --time-unit months --model snn,linear --task survival --loss cox --batch 32 --accum 1 \
    --standardize train --epochs "$epochs" --lr 2e-4 --folds 5 --seed 1 -o "$tmp/runs" -q
