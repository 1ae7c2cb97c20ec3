#!/bin/bash
# demo.sh: the README's first command: install packages, build in _build/,
# and run the quick start (examples/run.sh) on the synthetic cohort.
set -euo pipefail
cd "$(dirname "$0")/.."
bash build-aux/install-deps.sh
[ -x configure ] || autoreconf -fi
mkdir -p _build
(cd _build && { [ -f Makefile ] || ../configure; } && make -j"$(nproc 2>/dev/null || echo 2)")
sh examples/run.sh "$PWD/_build/tools"
