#!/bin/sh
# install-deps.sh: the Debian 12 packages mmpath builds and tests with (the
# list INSTALL gives). Uses apt-get as root, or sudo; otherwise only checks.
set -eu
PKGS="build-essential autoconf automake pkg-config clang zstd groff-base bsdutils zlib1g-dev
libzstd-dev libmsgpack-dev libxxhash-dev libopenslide-dev libtiff-dev libjpeg-dev libvips-dev
libopenblas-dev libvips-tools python3 python3-zstandard python3-msgpack python3-numpy python3-xxhash"
missing=
for p in $PKGS; do
    dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -z "$missing" ]; then
    echo "install-deps: all packages present"
    exit 0
fi
echo "install-deps: installing:$missing"
if [ "$(id -u)" -eq 0 ]; then SUDO=; elif command -v sudo >/dev/null; then SUDO=sudo; else
    echo "install-deps: not root and no sudo; install these first:$missing" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
echo "install-deps: done"
