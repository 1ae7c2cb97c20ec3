#!/bin/sh
# check-asan.sh SRCDIR TEST_DATA: the sanitizer variant of make check.
# A second build in _asan/ with clang, AddressSanitizer and
# UndefinedBehaviorSanitizer (and libFuzzer coverage), the unit and stream
# tests under it, then a short libFuzzer run of the stream reader from the
# committed seeds. Slow integration tests (realdata.sh) are left out.
# FUZZ_SECONDS (default 60) sets the length of the fuzz run.
set -eu
src=$1
data=$2
cc=${CLANG:-clang}
command -v "$cc" >/dev/null || { echo "check-asan: clang not found (apt-get install clang)" >&2; exit 1; }
b=$PWD/_asan
mkdir -p "$b"
cd "$b"
san="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
if [ ! -f Makefile ]; then
    echo "check-asan: configuring in $b"
    # -Wno-pass-failed: under the sanitizers clang cannot vectorise some
    # `omp simd` loops and says so per loop; the loops are right either way
    "$src/configure" -q CC="$cc" CFLAGS="-O1 -g $san -fsanitize=fuzzer-no-link -Wno-pass-failed" \
        LDFLAGS="$san" --without-cuda --with-test-data="$data" >/dev/null
fi
make -s -j"$(nproc 2>/dev/null || echo 2)" >/dev/null
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:detect_stack_use_after_return=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export LSAN_OPTIONS=suppressions=$src/build-aux/lsan.supp:print_suppressions=0
# unit tests and the stream tests; realdata.sh and man.sh are left out
units="tests/unit/t-dtype tests/unit/t-io tests/unit/t-zio tests/unit/t-val tests/unit/t-stream tests/unit/t-table tests/unit/t-toolutil tests/unit/t-backend tests/unit/t-survival tests/unit/t-plot tests/unit/t-omics tests/unit/t-linear tests/unit/t-cox tests/unit/t-metrics tests/unit/t-sha256 tests/unit/t-seqmask tests/unit/t-tensor tests/unit/t-safetensors tests/unit/t-optim tests/unit/t-nn tests/unit/t-losses tests/unit/t-mil tests/unit/t-tissue tests/unit/t-slide tests/unit/t-slide-direct tests/unit/t-clam tests/unit/t-resnet tests/unit/t-resnet-gemm tests/unit/t-resnet-cuda tests/unit/t-tensor-cuda tests/unit/t-dwconv"
tools="tests/tools/usage.sh tests/tools/mpk.sh tests/tools/integrity.sh tests/tools/roundtrip.sh tests/tools/km-plot.sh tests/tools/seq-mask.sh tests/tools/mm-synth.sh tests/tools/mm-train.sh tests/tools/wsi-tile.sh tests/tools/patch-embed.sh"
make -s check TESTS="$units $tools"

echo "check-asan: building the stream fuzzer"
# shellcheck disable=SC2046
"$cc" -O1 -g $san -fsanitize=fuzzer -I. -I"$src/lib" -o tests/fuzz-stream \
    "$src/tests/fuzz/fuzz_stream.c" lib/libmmpath.a \
    $(pkg-config --libs libzstd msgpack libxxhash) -lm
corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
cp "$src"/tests/fuzz/corpus/* "$corpus"/
secs=${FUZZ_SECONDS:-60}
echo "check-asan: fuzzing the stream reader for ${secs}s"
./tests/fuzz-stream -max_total_time="$secs" -rss_limit_mb=2048 -max_len=65536 \
    -print_final_stats=1 "$corpus" 2> fuzz.log || { tail -50 fuzz.log; exit 1; }
grep -E "stat::number_of_executed_units|stat::peak_rss_mb" fuzz.log || true
echo "check-asan: fuzz run clean"
