#!/bin/bash
# make-device-pack.sh: build, HERE, what bench/device-check.sh runs on a GPU
# machine that has the CUDA libraries and PyTorch but none of our Debian
# libraries, and put it in bench/device-pack/ (ignored; carry that one
# path, under 64 MiB):
#   bin.tar.xz  t-backend, t-resnet-cuda, t-tensor-cuda (when built) and
#               embed-gpu from a configure --enable-device-build of the
#               current sources (a copy in a temporary directory, so this
#               checkout's own configuration is left alone); static but for
#               libc/libm and cuBLAS/cuDNN (checked below with readelf)
#   tiles.mpk   bench/make-device-tiles.sh's 256x256 tiles
#   deps.txt    each binary's NEEDED libraries and newest glibc symbol
# Run from the repository root: bash bench/make-device-pack.sh
set -eu
root=$(pwd)
pack=$root/bench/device-pack
data=${MMPATH_TEST_DATA:-$(sed -n 's/^MMPATH_TEST_DATA = //p' Makefile 2>/dev/null)}
tmp=$(mktemp -d /tmp/mm-devbuild.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$pack"
echo "== sources -> $tmp"
git ls-files -co --exclude-standard -z | grep -zv '^bench/device-pack/' | tar --null -T - -cf - | tar -xf - -C "$tmp"
cd "$tmp"
autoreconf -fi >/dev/null 2>&1
./configure --enable-device-build --with-test-data="$data" > configure.out 2>&1 || { cat configure.out; exit 1; }
grep -E 'CUDA backend|openslide|BLAS|OpenMP' configure.out
bins="tests/unit/t-backend tests/unit/t-resnet-cuda bench/embed-gpu tools/patch-embed tools/mpk"
grep -q 't-tensor-cuda' Makefile && bins="$bins tests/unit/t-tensor-cuda"
make -j2 $bins >make.out 2>&1 || { tail -30 make.out; exit 1; }
strip $bins
echo "== dynamic dependencies"
: > "$pack/deps.txt"
bad=0
for b in $bins; do
    need=$(readelf -d "$b" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')
    glibc=$(objdump -T "$b" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1)
    echo "$(basename "$b"): $need(newest $glibc)" | tee -a "$pack/deps.txt"
    for l in $need; do
        case $l in
            libc.so.*|libm.so.*|ld-linux*|libdl.so.*|libpthread.so.*|librt.so.*|libcudnn.so.*|libcublas.so.*|libcublasLt.so.*) ;;
            *) echo "  unexpected: $l"; bad=1 ;;
        esac
    done
done
[ $bad = 0 ] || { echo "make-device-pack: a binary needs a library the device lacks"; exit 1; }
tar -cJf "$pack/bin.tar.xz" --transform='s|.*/||' $bins
echo "== tiles"
LD_LIBRARY_PATH=/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} \
    MMPATH_TEST_DATA=$data bash "$root/bench/make-device-tiles.sh" ./bench/embed-gpu "$pack/tiles.mpk"
cd "$root"
du -b bench/device-pack/* | tee -a "$pack/deps.txt"
echo "total $(du -cb bench/device-pack/* | tail -1 | cut -f1) bytes (limit 67108864)"
