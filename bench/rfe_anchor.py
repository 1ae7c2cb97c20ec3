#!/usr/bin/env python3
# rfe_anchor.py: the anchor for bench/rfe-bench: scikit-learn's
# RFE(LinearSVC(), n_features_to_select=K, step=S) on the same input, timed
# the same way (read, standardise, one fit on all features, then RFE) and
# printed as the same key=value lines. LinearSVC is scikit-learn's default
# (tol=1e-4, max_iter=1000, dual="auto") unless --tol / --max-iter say
# otherwise. `synth` makes rfe-bench's synthetic problem (the same
# splitmix64 + Box-Muller numbers, up to libm rounding).
# SPDX-License-Identifier: MIT
"""Usage: rfe_anchor.py all EXPR.tsv PHENO.tsv [--label COL] [options]
       rfe_anchor.py synth N NF [options]
       rfe_anchor.py versions
Options: --select K [100] --step S [0.1] --tol T [1e-4] --max-iter N [1000]
         --random-state R [None] --raw --out FILE"""

import sys
import time
import warnings


def parse(argv):
    opt = {"label": "lineage", "select": 100, "step": 0.1, "tol": 1e-4, "max_iter": 1000,
           "random_state": None, "raw": False, "out": None}
    conv = {"select": int, "step": float, "tol": float, "max_iter": int,
            "random_state": int}
    i = 0
    while i < len(argv):
        k = argv[i][2:].replace("-", "_")
        if k == "raw":
            opt["raw"] = True
            i += 1
            continue
        if k not in opt or i + 1 >= len(argv):
            sys.exit(__doc__)
        opt[k] = conv.get(k, str)(argv[i + 1])
        i += 2
    return opt


def synth(n, nf, np):
    """rfe-bench.c's synth(): value k = 2 (i nf + j) hashed twice."""
    def mix(z):
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))

    with np.errstate(over="ignore"):
        k = np.arange(n * nf, dtype=np.uint64) * np.uint64(2)
        u1 = ((mix(k) >> np.uint64(11)).astype(np.float64) + 0.5) / 9007199254740992.0
        u2 = ((mix(k + np.uint64(1)) >> np.uint64(11)).astype(np.float64) + 0.5) \
            / 9007199254740992.0
    x = (np.sqrt(-2 * np.log(u1)) * np.cos(6.283185307179586 * u2)).reshape(n, nf)
    y = np.arange(n) % 2
    x[:, :20] += np.where(y == 1, 0.25, -0.25)[:, None]
    return x, y, [f"f{j}" for j in range(nf)]


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    import numpy as np
    import sklearn
    if sys.argv[1] == "versions":
        print(f"scikit-learn {sklearn.__version__}, numpy {np.__version__}, "
              f"Python {sys.version.split()[0]}")
        return
    from sklearn.feature_selection import RFE
    from sklearn.svm import LinearSVC

    t0 = time.perf_counter()
    if sys.argv[1] == "all" and len(sys.argv) >= 4:
        import pandas as pd
        opt = parse(sys.argv[4:])
        e = pd.read_csv(sys.argv[2], sep="\t", index_col=0)
        ph = pd.read_csv(sys.argv[3], sep="\t", dtype=str, keep_default_na=False)
        lab = ph.set_index("sample").loc[list(e.columns), opt["label"]].to_numpy()
        x = e.to_numpy().T.copy()
        names = list(e.index)
        y = np.searchsorted(np.unique(lab), lab)
    elif sys.argv[1] == "synth" and len(sys.argv) >= 4:
        opt = parse(sys.argv[4:])
        x, y, names = synth(int(sys.argv[2]), int(sys.argv[3]), np)
    else:
        sys.exit(__doc__)
    t1 = time.perf_counter()
    if not opt["raw"]:
        sd = x.std(axis=0)
        sd[sd == 0] = 1
        x = (x - x.mean(axis=0)) / sd  # StandardScaler().fit_transform(x)
    t2 = time.perf_counter()

    def svc():
        return LinearSVC(C=1.0, tol=opt["tol"], max_iter=opt["max_iter"],
                         random_state=opt["random_state"])

    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        m = svc().fit(x, y)
        t3 = time.perf_counter()
        step = opt["step"] if opt["step"] < 1 else int(opt["step"])  # a float must be < 1
        r = RFE(svc(), n_features_to_select=opt["select"], step=step).fit(x, y)
        t4 = time.perf_counter()
    nwarn = sum("converge" in str(v.message) for v in w)
    print(f"n_samples={x.shape[0]}\nn_features={x.shape[1]}\nn_classes={len(np.unique(y))}")
    print(f"read_seconds={t1 - t0:.4f}\nscale_seconds={t2 - t1:.4f}")
    print(f"fit_seconds={t3 - t2:.4f}\nfit_iters={int(np.max(m.n_iter_))}")
    print(f"compute_seconds={t4 - t3:.4f}\nconvergence_warnings={nwarn}")
    if opt["out"]:
        with open(opt["out"], "w") as f:
            for j in np.flatnonzero(r.support_):
                f.write(names[j] + "\n")


if __name__ == "__main__":
    main()
