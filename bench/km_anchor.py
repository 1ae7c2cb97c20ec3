#!/usr/bin/env python3
# km_anchor.py: the Python anchor for bench/km.sh: what km-plot computes,
# done the way a lifelines user would: a KaplanMeierFitter per group (with
# its confidence interval, lifelines' log-log one), logrank_test
# (lifelines.statistics) and lifelines.utils.concordance_index. Measured
# with Python 3.11 from bench/.venv (pip: lifelines 0.30, pandas 2.3,
# numpy 2.4, scipy 1.17); `km_anchor.py versions` prints the versions in use.
#
# Usage: km_anchor.py INPUT.tsv CURVE.tsv [TIMES]
#        km_anchor.py versions
# INPUT has the columns time, status (1 = event), group and risk. CURVE
# gets the curve table (group, time, at_risk, observed, censored, surv,
# lower, upper). TIMES is a comma-separated list of times at which to print
# each curve's survival. Prints key=value lines: the results, then
# import_seconds (importing pandas and lifelines), read_seconds (reading
# INPUT) and compute_seconds (fits, test, C-index and writing CURVE), from
# time.perf_counter().
# SPDX-License-Identifier: MIT
"""Usage: km_anchor.py INPUT.tsv CURVE.tsv [TIMES]
       km_anchor.py versions"""

import sys
import time

t_start = time.perf_counter()
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import lifelines  # noqa: E402
from lifelines import KaplanMeierFitter  # noqa: E402
from lifelines.statistics import logrank_test  # noqa: E402
from lifelines.utils import concordance_index  # noqa: E402

t_import = time.perf_counter()


def versions():
    import platform

    import scipy

    print(
        f"Python {platform.python_version()}, lifelines {lifelines.__version__}, "
        f"pandas {pd.__version__}, numpy {np.__version__}, scipy {scipy.__version__}"
    )


def main(argv):
    if len(argv) >= 1 and argv[0] == "versions":
        versions()
        return 0
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    inp, curve = argv[0], argv[1]
    times = [float(x) for x in argv[2].split(",")] if len(argv) >= 3 else []

    t0 = time.perf_counter()
    d = pd.read_csv(inp, sep="\t", dtype={"group": str})
    t1 = time.perf_counter()

    groups = sorted(d["group"].unique())
    fits = {}
    tables = []
    for g in groups:
        dg = d[d["group"] == g]
        kmf = KaplanMeierFitter()
        kmf.fit(dg["time"], event_observed=dg["status"], label=str(g))
        fits[g] = kmf
        # event_table has a row per distinct time (and one at 0); the curve
        # and its CI are indexed by the same timeline
        tab = kmf.event_table[["at_risk", "observed", "censored"]].copy()
        tab["surv"] = kmf.survival_function_.iloc[:, 0].to_numpy()
        ci = kmf.confidence_interval_survival_function_
        tab["lower"] = ci.iloc[:, 0].to_numpy()
        tab["upper"] = ci.iloc[:, 1].to_numpy()
        tab.insert(0, "group", g)
        tables.append(tab[tab.index > 0])
    a, b = (d[d["group"] == g] for g in groups[:2])
    lr = logrank_test(a["time"], b["time"], a["status"], b["status"])
    c = concordance_index(d["time"], -d["risk"], d["status"])
    pd.concat(tables).to_csv(curve, sep="\t", index_label="time")
    t2 = time.perf_counter()

    rows = sum(len(t) for t in tables)
    print(f"n={len(d)}")
    print(f"rows={rows}")
    print(f"logrank_chisq={float(lr.test_statistic)!r}")
    print(f"logrank_p={float(lr.p_value)!r}")
    print(f"cindex={float(c)!r}")
    for g in groups:
        for t in times:
            s = float(fits[g].survival_function_at_times(t).iloc[0])
            print(f"surv group={g} time={t:g} surv={s!r}")
    print(f"import_seconds={t_import - t_start!r}")
    print(f"read_seconds={t1 - t0!r}")
    print(f"compute_seconds={t2 - t1!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
