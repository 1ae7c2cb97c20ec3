#!/bin/bash
# demo.sh: the README's first command: install packages, build in _build/,
# and run the quick start (examples/Makefile: mm-synth -> wsi-tile ->
# patch-embed -> rna-select -> mm-train cv -> km-plot) on a synthetic cohort.
# Outputs in examples/demo/out; re-running does nothing more.
set -euo pipefail
cd "$(dirname "$0")/.."
bash build-aux/install-deps.sh
[ -x configure ] || autoreconf -fi
jobs=$(nproc 2>/dev/null || echo 2)
mkdir -p _build
(cd _build && { [ -f Makefile ] || ../configure; } && make -j"$jobs")
make -C examples -j"$jobs" demo BIN="$PWD/_build/tools"
