#!/bin/sh
# stream.sh: mpk stream throughput, libmmpath (bench/stream-bench) against
# the Python anchor (bench/stream_anchor.py: zstandard + msgpack + numpy),
# for features, tiles and omics records. Builds nothing: run
# `make bench/stream-bench` first; $1 is the build directory (default .).
# Env: MB (payload per kind; default 256 features, 128 tiles and omics),
# REPS (best of, default 5), LEVEL (zstd level; default per kind),
# PYTHON (an interpreter to use instead of bench/.venv or /usr/bin/python3).
# SPDX-License-Identifier: MIT
set -eu

build=${1:-.}
here=$(cd "$(dirname "$0")" && pwd)
bin=$build/bench/stream-bench
anchor=$here/stream_anchor.py
reps=${REPS:-5}

if [ ! -x "$bin" ]; then
    echo "stream.sh: $bin is not built (make bench/stream-bench)" >&2
    exit 1
fi

has_mods() { "$1" -c 'import zstandard, msgpack, numpy' 2>/dev/null; }

# The interpreter: $PYTHON, else a venv with the PyPI packages users get
# from pip (made here when missing and pip can reach PyPI), else Debian's.
venv=$here/.venv
py=
if [ -n "${PYTHON:-}" ]; then
    py=$PYTHON
else
    if [ ! -x "$venv/bin/python" ]; then
        echo "stream.sh: creating $venv (pip install zstandard msgpack numpy xxhash)" >&2
        if ! { python3 -m venv "$venv" &&
               "$venv/bin/pip" install -q zstandard msgpack numpy xxhash; } >&2; then
            echo "stream.sh: no venv (pip failed); trying /usr/bin/python3" >&2
            rm -rf "$venv"
        fi
    fi
    for p in "$venv/bin/python" /usr/bin/python3 python3; do
        if has_mods "$p"; then py=$p; break; fi
    done
fi
if [ -z "$py" ] || ! has_mods "$py"; then
    echo "stream.sh: no Python with zstandard, msgpack and numpy" >&2
    exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/stream-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

echo "anchor: $("$py" "$anchor" versions)"
echo "ours:   $bin ($(uname -m), $(nproc 2>/dev/null || echo ?) CPUs), best of $reps"
echo "lines:  impl mode kind level records data_MB compressed_MB seconds MB/s"

# run NAME CMD...: append CMD's line to $tmp/NAME
run() {
    name=$1
    shift
    "$@" >>"$tmp/$name"
}
# best NAME: the line of $tmp/NAME with the highest MB/s (field 8)
best() { sort -k8,8 -g "$tmp/$1" | tail -n 1; }

: >"$tmp/results"
for kind in features tiles omics; do
    case $kind in features) mb=${MB:-256} ;; *) mb=${MB:-128} ;; esac
    lv=${LEVEL:+--level $LEVEL}
    rm -f "$tmp/cw" "$tmp/pw" "$tmp/cr" "$tmp/pr"
    # interleaved, so a noisy spell hits both sides alike
    i=0
    while [ "$i" -lt "$reps" ]; do
        # shellcheck disable=SC2086
        run cw "$bin" write "$tmp/c.mpk" --mb "$mb" --kind $kind $lv
        # shellcheck disable=SC2086
        run pw "$py" "$anchor" write "$tmp/p.mpk" --mb "$mb" --kind $kind $lv
        run cr "$bin" read "$tmp/c.mpk"
        run pr "$py" "$anchor" read "$tmp/c.mpk"
        i=$((i + 1))
    done
    # the anchor's file must pass our reader (trailer counts and digests)
    "$bin" read "$tmp/p.mpk" >/dev/null
    cw=$(best cw) pw=$(best pw) cr=$(best cr) pr=$(best pr)
    printf 'ours   %s\nanchor %s\nours   %s\nanchor %s\n' "$cw" "$pw" "$cr" "$pr"
    echo "$kind $cw $pw $cr $pr" >>"$tmp/results"
    rm -f "$tmp/c.mpk" "$tmp/p.mpk"
done

echo
awk '
BEGIN {
    printf "%-9s %5s %8s %7s %7s | %9s %9s %6s | %9s %9s %6s\n", "kind", "level",
        "data_MB", "ratio", "ratio_py", "write", "write_py", "ours/py",
        "read", "read_py", "ours/py"
}
{
    # fields: kind, then 4 lines of 8: mode kind level n data comp sec mbs
    cw = 2; pw = 10; cr = 18; pr = 26
    printf "%-9s %5s %8.1f %7.2f %7.2f | %9.1f %9.1f %6.2f | %9.1f %9.1f %6.2f\n",
        $1, $(cw + 2), $(cw + 4), $(cw + 4) / $(cw + 5), $(pw + 4) / $(pw + 5),
        $(cw + 7), $(pw + 7), $(cw + 7) / $(pw + 7),
        $(cr + 7), $(pr + 7), $(cr + 7) / $(pr + 7)
}' "$tmp/results"
echo "(MB/s of decompressed msgpack, MB = 10^6 bytes; ratio = data/compressed;"
echo " both readers read the file ours wrote; ours/py > 1: libmmpath is faster)"
