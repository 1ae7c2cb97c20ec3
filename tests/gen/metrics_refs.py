#!/usr/bin/env python3
"""Reference values for lib/metrics.c from scikit-learn.

Run with pip's scikit-learn (bench/.venv/bin/python; written with
scikit-learn 1.7 / numpy 2.x, the version is printed into the fixture):
    bench/.venv/bin/python tests/gen/metrics_refs.py > tests/fixtures/metrics/cases.tsv
Each row: a random case (labels, predictions, probabilities from small
integer weights so that ties occur) and sklearn's accuracy_score,
balanced_accuracy_score, f1_score(average="macro", zero_division=0) and
roc_auc_score (binary, or multi_class="ovr", average="macro").
"""
import sys
import numpy as np
import sklearn
from sklearn.metrics import (accuracy_score, balanced_accuracy_score,
                             f1_score, roc_auc_score)

rng = np.random.default_rng(20261126)
print(f"# sklearn {sklearn.__version__} numpy {np.__version__} python "
      f"{sys.version.split()[0]}")
print("case\tn\tc\ty\tpred\tprob\taccuracy\tbalanced\tf1\tauroc")
case = 0
for c in (2, 2, 2, 3, 3, 4, 5):
    for n in (7, 20, 61):
        y = rng.integers(0, c, n)
        y[:c] = np.arange(c)  # every class present: AUROC defined
        rng.shuffle(y)
        # small integer weights: ties in every column, rows sum to 1
        w = rng.integers(1, 5, (n, c)) + np.eye(c, dtype=int)[y] * \
            rng.integers(0, 4, n)[:, None]
        p = w / w.sum(1, keepdims=True)
        logits = np.log(p) + 1e-3 * rng.normal(size=(n, c))
        pred = rng.integers(0, c, n) if case % 3 == 0 else logits.argmax(1)
        if c > 2 and case % 2:
            pred[pred == c - 1] = 0  # a class never predicted
        acc = accuracy_score(y, pred)
        bal = balanced_accuracy_score(y, pred)
        f1 = f1_score(y, pred, average="macro", zero_division=0)
        if c == 2:
            auc = roc_auc_score(y, p[:, 1])
        else:
            auc = roc_auc_score(y, p, multi_class="ovr", average="macro",
                                labels=list(range(c)))
        fmt = lambda a: ",".join(str(v) for v in a)
        print(f"{case}\t{n}\t{c}\t{fmt(y)}\t{fmt(pred)}\t"
              f"{fmt('%.17g' % v for v in p.ravel())}\t{acc:.17g}\t"
              f"{bal:.17g}\t{f1:.17g}\t{auc:.17g}")
        case += 1
