#!/usr/bin/env python3
# omics_refs.py: writes the reference fixtures of tests/unit/t-omics.c into
# tests/fixtures/omics/: the recipe of a 60 x 40 slice of the SurvPath
# TCGA-BLCA RNA table with values knocked out (blca60x40.recipe: sample ids,
# genes, knocked-out cells, the synthetic constant gene; no values), and what
# scikit-learn makes of the slice (KNNImputer(5), SimpleImputer(mean),
# StandardScaler, VarianceThreshold), plus VarianceThreshold supports and
# top-K-by-variance indices on ALL top1000var.
# Not run by make check: the fixtures it writes are committed. The slice
# itself is never written here: the BLCA tables are licensed non-commercial
# and no real value (nor a subset, nor a copy such as a 1-NN imputation) may
# be committed. t-omics rebuilds it from the real table and the recipe with
# tests/gen/omics_inputs.sh DATA RECIPE OUT (it copies the CSV's spelling of
# each value, which is repr(float) of it for this table).
#
# Interpreter: Python 3.11.7 in a venv (python3 -m venv /tmp/skl2;
# /tmp/skl2/bin/pip install scikit-learn numpy pandas) with scikit-learn
# 1.9.1, numpy 2.4.6, scipy 1.17.1, pandas 3.1.1.
# Run from the top of the source tree, with the shared data beside it:
#   /tmp/skl2/bin/python tests/gen/omics_refs.py [DATA_DIR]   (../shared/data)
# Values are written with "%.17g" (they read back bit for bit); NaN as "NA".
# Matrices are handed to scikit-learn C-contiguous (samples x features):
# numpy then sums along samples in sample order, as lib/omics.c does.
# SPDX-License-Identifier: MIT
import os
import sys

import numpy as np
import pandas as pd
import sklearn
from sklearn.feature_selection import VarianceThreshold
from sklearn.impute import KNNImputer, SimpleImputer
from sklearn.metrics.pairwise import nan_euclidean_distances
from sklearn.preprocessing import StandardScaler

assert sklearn.__version__ == "1.9.1", sklearn.__version__

data = sys.argv[1] if len(sys.argv) > 1 else "../shared/data"
out = "tests/fixtures/omics"
os.makedirs(out, exist_ok=True)
magic = "# mmpath omics fixture v1: tests/gen/omics_refs.py, scikit-learn %s, numpy %s" % (
    sklearn.__version__, np.__version__)


def g(x):
    return "NA" if np.isnan(x) else "%.17g" % x


# ---------------------------------------------------------------- BLCA slice
rng = np.random.default_rng(20240611)
blca = pd.read_csv(os.path.join(data, "paired/survpath_blca/tcga_blca_xena_rna_clean.csv"),
                   index_col=0, dtype={0: str})
rows = np.sort(rng.choice(blca.shape[0], 60, replace=False))
cols = np.sort(rng.choice(blca.shape[1], 40, replace=False))
sub = blca.iloc[rows, cols]
samples = [str(s) for s in sub.index]
genes = [str(c) for c in sub.columns]
X = np.ascontiguousarray(sub.to_numpy(dtype=np.float64))
n, p = X.shape
train = rng.random(n) < 0.7
# ~10% missing at random
X[rng.random(X.shape) < 0.10] = np.nan
# edge cases, each on a real column or row:
X[train, 3] = np.nan                    # missing in every training sample: dropped
tr = np.flatnonzero(train)
X[tr[3:], 7] = np.nan                   # only 3 training donors (< k = 5)
X[:, 11] = 2.5                          # constant (synthetic value): VarianceThreshold(0)
allna = np.flatnonzero(~train)[0]
X[allna, :] = np.nan                    # a sample with nothing observed: column means
assert np.isnan(X[train, 3]).all() and (~np.isnan(X[~train, 3])).any()

RECIPE_HEAD = """\
# mmpath omics recipe v1: blca60x40.tsv without its values
# Rebuild: sh tests/gen/omics_inputs.sh DATA tests/fixtures/omics/blca60x40.recipe OUT
# (DATA = MMPATH_TEST_DATA, ../shared/data). The values come from the licensed
# SurvPath table named on the source line and are never committed.
# Lines, tab-separated: source PATH | sample ID (rows, in order) | gene NAME
# (columns, in order) | constant GENE VALUE (a synthetic value replacing the
# real column) | na SAMPLE GENE (a cell knocked out; wins over constant).
# Written by tests/gen/omics_refs.py.
"""
with open(os.path.join(out, "blca60x40.recipe"), "w") as f:
    # the input as a recipe (samples in rows, TCGA ids first, once rebuilt)
    f.write(RECIPE_HEAD)
    f.write("source\tpaired/survpath_blca/tcga_blca_xena_rna_clean.csv\n")
    for s in samples:
        f.write("sample\t%s\n" % s)
    for name in genes:
        f.write("gene\t%s\n" % name)
    f.write("constant\t%s\t2.5\n" % genes[11])
    for i in range(n):
        for j in range(p):
            if np.isnan(X[i, j]):
                f.write("na\t%s\t%s\n" % (samples[i], genes[j]))

refs = []  # (kind, key, value)
for i in range(n):
    if train[i]:
        refs.append(("train", samples[i], "1"))
Xtr = np.ascontiguousarray(X[train])
valid = ~np.isnan(Xtr).all(axis=0)

# ties: the k-th and (k+1)-th donor distances must differ clearly, or which
# donors argpartition picks is implementation-defined (and ours would differ)
D = nan_euclidean_distances(X, Xtr)
for k in (5,):
    worst = np.inf
    for i in range(n):
        for j in np.flatnonzero(np.isnan(X[i]) & valid):
            donors = np.flatnonzero(~np.isnan(Xtr[:, j]))
            d = np.sort(D[i, donors])
            d = d[~np.isnan(d)]
            if len(d) > k:
                worst = min(worst, (d[k] - d[k - 1]) / d[k])
    print("k=%d: smallest relative gap between donor k and k+1: %.3g" % (k, worst))
    assert worst > 1e-9, "near tie in donor distances: pick another seed"

# (no k = 1 references: a 1-NN imputation is a copy of a real value)
for k in (5,):
    imp = KNNImputer(n_neighbors=k).fit(Xtr)
    Y = imp.transform(X.copy())
    kept = [j for j in range(p) if valid[j]]
    assert Y.shape == (n, len(kept))
    for i in range(n):
        for jj, j in enumerate(kept):
            if np.isnan(X[i, j]):
                refs.append(("knn%d" % k, samples[i] + "|" + genes[j], g(Y[i, jj])))
    Yknn = Y
for j in np.flatnonzero(~valid):
    refs.append(("dropped", genes[j], "1"))

si = SimpleImputer(strategy="mean").fit(Xtr)
for jj, j in enumerate(np.flatnonzero(valid)):
    refs.append(("mean", genes[j], g(si.statistics_[j])))

# StandardScaler fitted on training rows, on raw data (NaN-aware) and on
# the KNN-imputed data
vg = [genes[j] for j in np.flatnonzero(valid)]
sc = StandardScaler().fit(np.ascontiguousarray(X[train][:, valid]))
for jj, name in enumerate(vg):
    refs.append(("sc_raw_mean", name, g(sc.mean_[jj])))
    refs.append(("sc_raw_scale", name, g(sc.scale_[jj])))
Ytr = np.ascontiguousarray(Yknn[train])
sc = StandardScaler().fit(Ytr)
for jj, name in enumerate(vg):
    refs.append(("sc_knn_mean", name, g(sc.mean_[jj])))
    refs.append(("sc_knn_scale", name, g(sc.scale_[jj])))
# (VarianceThreshold(0).variances_ is min(variance, peak-to-peak), not the
# variance: take np.nanvar for the variances, as VarianceThreshold(X > 0))
vt = VarianceThreshold(0.0).fit(Ytr)
var = np.nanvar(Ytr, axis=0)
assert (VarianceThreshold(1e-300).fit(Ytr).variances_ == var).all()
for jj, name in enumerate(vg):
    refs.append(("vt0_knn", name, "1" if vt.get_support()[jj] else "0"))
    refs.append(("var_knn", name, g(var[jj])))

# ---------------------------------------------------------------- ALL top1000var
# parsed with Python's float() (correctly rounded, as strtod) so that the
# C test, which reads the same file, sees the same doubles
with open(os.path.join(data, "expression/ALL/ALL_exprs_top1000var.tsv")) as f:
    next(f)
    A = np.array([[float(v) for v in line.rstrip("\n").split("\t")[1:]] for line in f])
A = np.ascontiguousarray(A.T)  # 128 samples x 1000 probes
atrain = np.arange(A.shape[0]) % 4 != 0
for name, M in (("all", A), ("alltr", np.ascontiguousarray(A[atrain]))):
    var = np.var(M, axis=0)
    vt = VarianceThreshold(0.0).fit(M)
    refs.append((name + "_vt0_keep", "count", str(int(vt.get_support().sum()))))
    # a threshold equal to one probe's variance: that probe is dropped (keeps > X)
    order = np.argsort(-var, kind="stable")
    thr = var[order[499]]
    vt = VarianceThreshold(thr).fit(M)
    assert vt.variances_[order[499]] == thr
    refs.append((name + "_vtx", "threshold", g(thr)))
    refs.append((name + "_vtx", "boundary", str(int(order[499]))))
    refs.append((name + "_vtx_keep", "indices",
                 ",".join(str(j) for j in np.flatnonzero(vt.get_support()))))
    refs.append((name + "_top100", "indices", ",".join(str(j) for j in order[:100])))

with open(os.path.join(out, "refs.tsv"), "w") as f:
    f.write(magic + "\n")
    f.write("kind\tkey\tvalue\n")
    for r in refs:
        f.write("\t".join(r) + "\n")
print("train %d, test %d, missing %d of %d"
      % (train.sum(), n - train.sum(), np.isnan(X).sum(), X.size))
