#!/usr/bin/env python3
# rfe_refs.py: makes tests/fixtures/linear/ (the references tests/unit/t-linear.c
# checks lib/linear.c against) from scikit-learn on the ALL data set. Not run
# by `make check`: its outputs are committed. Made with Python 3.11.7,
# scikit-learn 1.9.1, numpy 2.4.6, scipy 1.17.1, pandas 3.1.1 (pip, in a venv):
#   python3 -m venv /tmp/skl && /tmp/skl/bin/pip install scikit-learn numpy pandas
#   /tmp/skl/bin/python tests/gen/rfe_refs.py /work/shared/data [tests/fixtures/linear]
# SPDX-License-Identifier: MIT
#
# The data: ALL_exprs.tsv (12625 probes x 128 samples, RMA, genes in rows)
# and ALL_exprs_top1000var.tsv (its 1000 most variable probes), ALL_pheno.tsv
# (lineage B/T; mol.biol). Every problem is standardised first, each probe
# to mean 0 and variance 1 (ddof 0, StandardScaler's) over the samples of
# that problem: on the raw values (2-14) liblinear's dual CD is badly
# conditioned, LinearSVC() stops at max_iter=1000 far from the optimum and
# RFE's selection then depends on where it stopped (measured: 14 of 20
# features in common with the converged selection on top1000var). One raw
# fit (svc_coef_bt_raw.tsv) checks the solver on that harder problem.
# Estimators: LinearSVC(C=1) with scikit-learn's defaults (squared hinge,
# L2, intercept_scaling=1, tol=1e-4) but max_iter=100000 so that it reaches
# its tolerance; the coefficient references use tol=1e-8 (max_iter=1e6) to
# be near the optimum (measured against ours: 1e-9 of max |coef|
# standardised, 5e-7 one-vs-rest, 9e-5 on the raw values, where liblinear's
# projected-gradient rule says less about w). LogisticRegression(
# solver="liblinear", tol=1e-10), binary only: scikit-learn 1.9 refuses
# liblinear for more than 2 classes.
# random_state=0 everywhere, so that the files come out the same on a rerun:
# at tol=1e-4 liblinear's random coordinate order changes the selections
# (RFE on all 12625 probes and RFECV's one-feature scores differ from run to
# run with random_state=None), so each selection is also made with
# tol=1e-10 (the "tight" columns), which is what a converged solver gives.
# Labels are numbered in sorted order of their names (classes_ order).
import sys
import warnings

import numpy as np
import pandas as pd
import sklearn
from sklearn.feature_selection import RFE, RFECV
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.svm import LinearSVC

data = sys.argv[1] if len(sys.argv) > 1 else "/work/shared/data"
out = sys.argv[2] if len(sys.argv) > 2 else "tests/fixtures/linear"
d = f"{data}/expression/ALL"

HEAD = (f"# mmpath linear fixture v1: tests/gen/rfe_refs.py, scikit-learn "
        f"{sklearn.__version__}, numpy {np.__version__}\n")


def zscore(x):
    return (x - x.mean(axis=0)) / x.std(axis=0)


def write(name, lines, notes=()):
    with open(f"{out}/{name}", "w") as f:
        f.write(HEAD)
        for n in notes:
            f.write(f"# {n}\n")
        for ln in lines:
            f.write(ln + "\n")
    print("wrote", name)


def g(v):
    return repr(float(v))


def svc(**kw):
    kw.setdefault("max_iter", 100000)
    return LinearSVC(C=1.0, random_state=0, **kw)


ph = pd.read_csv(f"{d}/ALL_pheno.tsv", sep="\t", dtype=str, keep_default_na=False)
top = pd.read_csv(f"{d}/ALL_exprs_top1000var.tsv", sep="\t", index_col=0)
full = pd.read_csv(f"{d}/ALL_exprs.tsv", sep="\t", index_col=0)
assert list(top.columns) == list(ph["sample"]) == list(full.columns)
probes_top = list(top.index)
probes_full = list(full.index)
xtop_raw = top.to_numpy().T.copy()
xfull_raw = full.to_numpy().T.copy()

lineage = ph["lineage"].to_numpy()
bt = np.searchsorted(np.unique(lineage), lineage)  # B = 0, T = 1
xtop = zscore(xtop_raw)
xfull = zscore(xfull_raw)

mb = ph["mol.biol"].to_numpy()
counts = pd.Series(mb).value_counts()
keep_cls = sorted(c for c in counts.index if counts[c] >= 5)
mrows = np.flatnonzero(np.isin(mb, keep_cls))
ymb = np.searchsorted(np.array(keep_cls), mb[mrows])
xmb = zscore(xtop_raw[mrows])
cls_note = "classes " + ", ".join(f"{k}={c}" for k, c in enumerate(keep_cls))


def coef_table(m, probes):
    lines = ["feature\t" + "\t".join(f"w{k}" for k in range(m.coef_.shape[0]))]
    for j, p in enumerate(probes):
        lines.append(p + "\t" + "\t".join(g(v) for v in m.coef_[:, j]))
    lines.append("(intercept)\t" + "\t".join(g(v) for v in np.atleast_1d(m.intercept_)))
    return lines


# (a) the SVM optimum, B vs T, top1000var (standardised, then raw)
m = svc(tol=1e-8, max_iter=1000000).fit(xtop, bt)
assert list(m.classes_) == [0, 1]
# positive = classes_[1]: decision_function > 0 predicts T
assert np.all((m.decision_function(xtop) > 0) == (m.predict(xtop) == 1))
write("svc_coef_bt.tsv", coef_table(m, probes_top),
      ["LinearSVC(C=1, tol=1e-8, max_iter=1e6) on ALL_exprs_top1000var, probes",
       "standardised over the 128 samples; y = lineage (B=0, T=1); "
       f"n_iter_ {int(m.n_iter_)}"])
m = svc(tol=1e-8, max_iter=1000000).fit(xtop_raw, bt)
write("svc_coef_bt_raw.tsv", coef_table(m, probes_top),
      ["LinearSVC(C=1, tol=1e-8, max_iter=1e6) on ALL_exprs_top1000var, raw values;",
       f"y = lineage (B=0, T=1); n_iter_ {int(m.n_iter_)}"])
# one-vs-rest, mol.biol classes with >= 5 samples
m = svc(tol=1e-8, max_iter=1000000).fit(xmb, ymb)
write("svc_coef_molbiol.tsv", coef_table(m, probes_top),
      ["LinearSVC(C=1, tol=1e-8, max_iter=1e6) one-vs-rest on ALL_exprs_top1000var,",
       f"the {len(mrows)} samples whose mol.biol class has >= 5, standardised over them;",
       cls_note + f"; n_iter_ {int(np.max(m.n_iter_))}"])

# (e) logistic regression (liblinear's primal TRON), B vs T
m = LogisticRegression(solver="liblinear", C=1.0, tol=1e-10, max_iter=100000).fit(xtop, bt)
write("logreg_coef_bt.tsv", coef_table(m, probes_top),
      ["LogisticRegression(solver='liblinear', C=1, tol=1e-10, max_iter=1e5) on",
       "ALL_exprs_top1000var standardised; y = lineage (B=0, T=1); "
       f"n_iter_ {int(np.max(m.n_iter_))}"])


# (b) RFE selections
def rfe(x, y, k, tol=1e-4):
    return RFE(svc(tol=tol), n_features_to_select=k, step=0.1).fit(x, y)


def cv_acc(x, y, support):
    cv = StratifiedKFold(5)
    return cross_val_score(svc(), x[:, support], y, cv=cv, scoring="accuracy").mean()


def rfe_fixture(name, x, y, k, probes, what, full_ranking):
    r = rfe(x, y, k)
    rt = rfe(x, y, k, tol=1e-10)
    same = int(np.sum(r.support_ & rt.support_))
    notes = [f"RFE(LinearSVC(C=1, max_iter=100000), n_features_to_select={k}, step=0.1)",
             what,
             "ranking: with LinearSVC's tol=1e-4; ranking_tight: with tol=1e-10 "
             f"({same} of {k} selected in common)",
             "5-fold stratified CV accuracy of LinearSVC on the selection: "
             f"{cv_acc(x, y, r.support_):.6f}, tight {cv_acc(x, y, rt.support_):.6f}"]
    lines = ["feature\tindex\tranking\tranking_tight"]
    for j, p in enumerate(probes):
        if full_ranking or r.ranking_[j] == 1 or rt.ranking_[j] == 1:
            lines.append(f"{p}\t{j}\t{int(r.ranking_[j])}\t{int(rt.ranking_[j])}")
    write(name, lines, notes)


rfe_fixture("rfe_bt_top1000_k20.tsv", xtop, bt, 20, probes_top,
            "on ALL_exprs_top1000var standardised; y = lineage (B=0, T=1); all rankings",
            True)
rfe_fixture("rfe_bt_all_k100.tsv", xfull, bt, 100, probes_full,
            "on all 12625 probes of ALL_exprs standardised; y = lineage; rows selected by either",
            False)
rfe_fixture("rfe_molbiol_k20.tsv", xmb, ymb, 20, probes_top,
            f"one-vs-rest on top1000var, {len(mrows)} samples standardised; {cls_note}",
            True)

# (d) RFECV on top1000var, at tol=1e-4 and tol=1e-10: B vs T, mol.biol
def rfecv(x, y, tol):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return RFECV(svc(tol=tol), step=0.1, cv=StratifiedKFold(5), scoring="accuracy",
                     min_features_to_select=1).fit(x, y)


def rfecv_fixture(name, x, y, what):
    rc, rct = rfecv(x, y, 1e-4), rfecv(x, y, 1e-10)
    res, rest = rc.cv_results_, rct.cv_results_
    assert list(res["n_features"]) == list(rest["n_features"])
    lines = ["n_features\tmean_test_score\tmean_test_score_tight\t" +
             "\t".join(f"split{i}" for i in range(5)) + "\t" +
             "\t".join(f"split{i}_tight" for i in range(5))]
    for i, nfeat in enumerate(res["n_features"]):
        lines.append(f"{int(nfeat)}\t{g(res['mean_test_score'][i])}\t"
                     f"{g(rest['mean_test_score'][i])}\t" +
                     "\t".join(g(res[f'split{s}_test_score'][i]) for s in range(5)) + "\t" +
                     "\t".join(g(rest[f'split{s}_test_score'][i]) for s in range(5)))
    write(f"{name}.tsv", lines,
          ["RFECV(LinearSVC(C=1, max_iter=100000), step=0.1, cv=StratifiedKFold(5),",
           f"scoring='accuracy', min_features_to_select=1) {what};",
           f"n_features_ = {int(rc.n_features_)} (tight: {int(rct.n_features_)})"])
    write(f"{name}_support.tsv",
          ["feature\tindex\tsupport\tsupport_tight"] +
          [f"{probes_top[j]}\t{j}\t{int(rc.support_[j])}\t{int(rct.support_[j])}"
           for j in np.flatnonzero(rc.support_ | rct.support_)],
          [f"{name}.tsv: the features selected ({int(rc.n_features_)}, tight "
           f"{int(rct.n_features_)})"])


rfecv_fixture("rfecv_bt", xtop, bt,
              "on ALL_exprs_top1000var standardised; y = lineage (B=0, T=1)")
rfecv_fixture("rfecv_molbiol", xmb, ymb,
              f"one-vs-rest on top1000var, {len(mrows)} samples standardised; {cls_note}")

# StratifiedKFold(k) test folds (no shuffling) on a few label vectors
cases = [("small", 3, [2, 0, 1, 1, 0, 2, 2, 1, 0, 0, 1, 2, 1, 1, 0, 2, 1]),
         ("uneven", 4, [1, 1, 1, 0, 0, 2, 1, 1, 0, 1, 1, 1, 2, 2, 2]),
         ("lineage", 5, list(bt)),
         ("molbiol", 5, list(ymb))]
lines = ["case\tk\tlabels\ttest_fold"]
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    for name, k, y in cases:
        y = np.asarray(y)
        fold = np.empty(len(y), dtype=int)
        for f, (_, te) in enumerate(StratifiedKFold(k).split(np.zeros((len(y), 1)), y)):
            fold[te] = f
        lines.append(f"{name}\t{k}\t{','.join(map(str, y))}\t{','.join(map(str, fold))}")
write("skfold.tsv", lines, ["StratifiedKFold(k) (shuffle=False): each sample's test fold"])
