#!/bin/bash
# test.sh: the README's test command and what CI runs (.ci/run). Stages,
# each timed: install packages; build in _build/ (with the CUDA backend when
# configure finds the toolkit); make check; the sanitizer variant (make
# check-asan: ASan+UBSan tests and a short fuzz run); make distcheck.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
jobs=$(nproc 2>/dev/null || echo 2)
T0=$SECONDS
stage() {
    local name=$1; shift
    local t=$SECONDS
    echo "==> $name"
    "$@"
    echo "==> $name: $((SECONDS - t)) s"
}
build() {
    [ -x configure ] && [ configure -nt configure.ac ] && [ Makefile.in -nt Makefile.am ] || autoreconf -fi
    mkdir -p _build
    cd _build
    [ -f Makefile ] || ../configure
    make -j"$jobs"
}
stage "install packages" bash build-aux/install-deps.sh
stage "build" build
cd "$top/_build"
stage "make check" make -j"$jobs" check
stage "sanitizer variant (make check-asan)" make check-asan
stage "make distcheck" make -j"$jobs" distcheck
echo "==> all stages passed in $((SECONDS - T0)) s"
