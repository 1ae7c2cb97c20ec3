#!/bin/sh
# mm-train.sh: mm-train end to end on a synthetic cohort with planted
# signals (tests/unit/mkfeatures: a subtype carried by patch features 0-3
# of a third of class B's patches; a survival risk z carried by gene 0 and
# by patch feature 4, times Exponential(exp(1.5 z)) with ~30% censoring).
# Checks: the loss falls and the signal is learnt; resume = uninterrupted
# run, bit for bit; CV folds never split a patient; missing modalities are
# reported by id; a Cox group without an event is an error; predict's
# stream is read by km-plot with the same C-index as eval; usage.
#
# Thresholds. Subtype: the classes are balanced, so chance is 0.5; the
# shift of +2 sd on 4 features of a third of the patches is plain to an
# attention pool (held-out accuracy is about 0.95 here): we ask > 0.8.
# Survival: the ceiling is the C-index of the true risk z, which
# mkfeatures prints (0.77 for this cohort); a model that found the gene
# or the patch feature reaches 0.74-0.78 on held-out folds, one that
# found nothing 0.5 +- 0.05 (40 patients a fold): we ask > 0.7.
# SPDX-License-Identifier: MIT
. "$top_srcdir/tests/tools/lib.sh"
set -e
cd "$T_DIR"
MK=$top_builddir/tests/unit/mkfeatures
export MMPATH_DATADIR=$top_srcdir/share/mmpath OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
plan 43

run "$MK" c 160 8 8 11
is "$rc" 0 "mkfeatures: a synthetic cohort"
oracle=$(sed -n 's/^oracle_cindex=//p' "$out")
diag "oracle C-index (true risk): $oracle"
# num FILE KEY: the value of KEY=... on the line
num() { tr ' ' '\n' < "$1" | sed -n "s/^$2=//p" | head -1; }
gt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 > b + 0) }'; }

# ---- subtype: ABMIL, 4-fold CV
SUB="--slides c/slides --clinical c/clinical.tsv --label-col label --model abmil
     --set hidden=32 --set attn_dim=16 --accum 4 --lr 1e-3"
run mm-train cv $SUB --epochs 10 --folds 4 -o cv
is "$rc" 0 "cv abmil subtype: exit 0"
like "$out" '^model=abmil task=subtype folds=4 accuracy_mean=[0-9.e-]+ accuracy_sd=[0-9.e-]+ balanced_accuracy_mean=[0-9.e-]+ balanced_accuracy_sd=[0-9.e-]+ f1_mean=[0-9.e-]+ f1_sd=[0-9.e-]+ auroc_mean=[0-9.e-]+ auroc_sd=[0-9.e-]+$' "cv: one summary line, key=value"
acc=$(num "$out" accuracy_mean)
if gt "$acc" 0.8; then pass "subtype learnt: held-out accuracy $acc > 0.8 (chance 0.5)"
else fail "subtype learnt: held-out accuracy $acc > 0.8 (chance 0.5)"; fi
first=$(awk -F'\t' '$1 == 1 { print $2 }' cv/abmil/fold_0/log.tsv)
final=$(awk -F'\t' '$1 == 10 { print $2 }' cv/abmil/fold_0/log.tsv)
if gt "$first" "$final"; then pass "the training loss falls ($first -> $final)"
else fail "the training loss falls ($first -> $final)"; fi
like cv/abmil/fold_0/log.tsv '^epoch	train_loss	val_loss	train_accuracy	train_balanced_accuracy	train_f1	train_auroc	val_accuracy	val_balanced_accuracy	val_f1	val_auroc	lr	seconds$' "log.tsv columns"
like cv/abmil/fold_0/log.tsv '^# train: task=subtype loss=nll optimizer=adam lr=0.001 weight_decay=1.0000000000000001e-05 .* accum=4 ' "log header records the hyper-parameters (config file + command line)"

# CV never puts one patient on both sides: each patient is predicted once,
# in a fold whose training column does not hold it
mpk cat cv/abmil/predictions.mpk | sed -n 's/^{"id":"\([^"]*\)","fold":\([0-9]*\),.*/\1 \2/p' > pred.txt
is "$(wc -l < pred.txt | tr -d ' ')" 160 "160 predictions"
is "$(cut -d' ' -f1 pred.txt | sort -u | wc -l | tr -d ' ')" 160 "each patient predicted once"
bad=0
while read -r id f; do
    if cut -d, -f2 "cv/abmil/splits_$f.csv" | grep -qx "$id"; then bad=$((bad + 1)); fi
    if ! cut -d, -f3 "cv/abmil/splits_$f.csv" | grep -qx "$id"; then bad=$((bad + 1)); fi
done < pred.txt
is "$bad" 0 "every prediction is held out of its fold's training split"
bad=0
for f in 0 1 2 3; do
    n=$(tail -n +2 "cv/abmil/splits_$f.csv" | cut -d, -f2,3 | tr ',' '\n' | grep -v '^$' | sort | uniq -d | wc -l)
    bad=$((bad + n))
done
is "$bad" 0 "no patient in both train and val of a fold"
# the written splits are read back (CLAM layout): same summary
run mm-train cv $SUB --epochs 10 --splits cv/abmil -o cv2
is "$rc" 0 "cv --splits DIR (the written CLAM files): exit 0"
is "$(num "$out" accuracy_mean)" "$acc" "the same folds give the same accuracy"

# ---- resume = uninterrupted, bit for bit (Adam, then RAdam + Lookahead
# with a cosine schedule and warm-up)
R="$SUB --epochs 5 --folds 4 --fold 1"
run mm-train train $R -o full
is "$rc" 0 "train 5 epochs: exit 0"
run mm-train train $R -o part --stop-after 2
is "$rc" 0 "train --stop-after 2: exit 0"
if cmp -s part/last.safetensors full/last.safetensors; then fail "after 2 epochs the weights differ"
else pass "after 2 epochs the weights differ"; fi
run mm-train train $R -o part --resume
is "$rc" 0 "--resume: exit 0"
if cmp -s part/last.safetensors full/last.safetensors; then pass "resumed run = uninterrupted run (last checkpoint, bit for bit)"
else fail "resumed run = uninterrupted run (last checkpoint, bit for bit)"; fi
is "$(grep -c '^[0-9]' part/log.tsv)" 5 "the resumed log has 5 epochs"
R2="$R --optimizer radam --schedule cosine --warmup-epochs 1 --batch 2"
mm-train train $R2 -o fullr -q
mm-train train $R2 -o partr -q --stop-after 3
mm-train train $R2 -o partr -q --resume
if cmp -s partr/last.safetensors fullr/last.safetensors; then pass "RAdam+Lookahead, cosine: resumed = uninterrupted"
else fail "RAdam+Lookahead, cosine: resumed = uninterrupted"; fi

# ---- finetune, eval
run mm-train finetune $R --init full/last.safetensors --epochs 1 -o ft
is "$rc" 0 "finetune from a checkpoint: exit 0"
run mm-train eval --checkpoint full/last.safetensors --slides c/slides --clinical c/clinical.tsv --label-col label --folds 4 --fold 1 --seed 1
like "$out" '^model=abmil task=subtype n=40 loss=[0-9.e-]+ accuracy=' "eval: the held-out fold's metrics"

# ---- survival: SNN + Cox on omics, ABMIL + 4-bin NLL on patches
run mm-train cv --omics c/omics.mpk --clinical c/clinical.tsv --model snn,linear --task survival \
    --loss cox --set omic_hidden=16,16 --epochs 20 --batch 16 --accum 1 --lr 2e-3 --folds 4 -o cvs
is "$rc" 0 "cv snn,linear cox: exit 0"
is "$(grep -c '^model=' "$out")" 2 "one summary line per model"
ci=$(grep '^model=snn' "$out" | tr ' ' '\n' | sed -n 's/^cindex_mean=//p')
if gt "$ci" 0.7; then pass "SNN + Cox learns the gene: C-index $ci > 0.7 (oracle $oracle)"
else fail "SNN + Cox learns the gene: C-index $ci > 0.7 (oracle $oracle)"; fi
run mm-train cv --slides c/slides --clinical c/clinical.tsv --model abmil --task survival \
    --set hidden=16 --set attn_dim=8 --epochs 10 --accum 8 --lr 2e-3 --folds 4 -o cva
ci=$(num "$out" cindex_mean)
if gt "$ci" 0.7; then pass "ABMIL + NLL learns the patch feature: C-index $ci > 0.7"
else fail "ABMIL + NLL learns the patch feature: C-index $ci > 0.7"; fi

# predict -> km-plot: the stream is read, with the same C-index as eval
run mm-train predict --checkpoint cvs/snn/fold_0/last.safetensors --omics c/omics.mpk \
    --clinical c/clinical.tsv -o p.mpk
is "$rc" 0 "predict: exit 0"
run km-plot --split median p.mpk
is "$rc" 0 "km-plot reads the predictions"
kc=$(sed -n 's/^cindex=//p' "$out")
run mm-train eval --checkpoint cvs/snn/fold_0/last.safetensors --omics c/omics.mpk --clinical c/clinical.tsv
is "$(num "$out" cindex)" "$kc" "eval's C-index = km-plot's on the same predictions"

# ---- Cox groups: no event, or one patient, is an error
awk -F'\t' 'BEGIN { OFS = "\t" } NR > 1 { $4 = (NR == 2) } { print }' c/clinical.tsv > oneevent.tsv
run mm-train train --omics c/omics.mpk --clinical oneevent.tsv --model snn --task survival --loss cox \
    --batch 8 --accum 1 --epochs 1 -o coxbad
is "$rc" 1 "a Cox group without an event: exit 1"
like "$err" "a Cox group of 8 patients with no event: the partial likelihood is undefined" "the message says why"
run mm-train train --omics c/omics.mpk --clinical c/clinical.tsv --model snn --task survival --loss cox \
    --batch 1 --accum 1 --epochs 1 -o coxone
is "$rc" 1 "a Cox group of one patient: exit 1"
like "$err" "a Cox group of one patient: the partial likelihood is undefined" "the message says why"

# ---- a missing modality is reported by id
mkdir s2 && cp c/slides/*.mpk s2/ && rm s2/TCGA-SY-0002-01Z-00-DX1.mpk
run mm-train train --slides s2 --omics c/omics.mpk --clinical c/clinical.tsv --model abmil+snn \
    --task survival --set hidden=16 --set attn_dim=8 --set omic_hidden=8,8 --epochs 1 -o miss
is "$rc" 0 "abmil+snn with a patient lacking slides: exit 0 (--require all)"
like "$err" '1 patient have no slides, dropped \(--require all\): TCGA-SY-0002$' "the patient is named"
like miss/log.tsv '^# patients: 159 train, 0 val' "and left out"

# ---- every model's config file in share/mmpath loads and trains
for m in abmil transmil snn abmil+snn linear; do
    run mm-train train --slides c/slides --omics c/omics.mpk --clinical c/clinical.tsv --label-col label \
        --model "$m" --set hidden=16 --set attn_dim=8 --set heads=2 --set landmarks=8 --epochs 1 -o "conf_$m"
    is "$rc" 0 "$m: its config file and one epoch"
done

# ---- usage
run mm-train pretrain
is "$rc" 2 "pretrain: exit 2 (a later release)"
run mm-train train --slides c/slides
is "$rc" 2 "train without -o and --clinical: exit 2"
done_testing
