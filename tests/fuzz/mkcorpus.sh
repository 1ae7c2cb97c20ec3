#!/bin/sh
# mkcorpus.sh BUILD_DIR: (re)make the committed seed corpus of the stream
# fuzzer from real streams: each seed is a mode byte (0 = zstd stream as is,
# 1 = raw msgpack) followed by the bytes. Run by hand; the output is small.
set -e
b=${1:-.}
here=$(cd "$(dirname "$0")" && pwd)
out=$here/corpus
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$out"
"$b/tools/mpk" pack --kind clinical -o "$tmp/c.mpk" "$here/../fixtures/small.tsv"
"$b/tools/mpk" pack --kind omics -o "$tmp/o.mpk" "$here/../fixtures/expr.csv"
for m in badcount baddigest badversion notrailer; do "$b/tests/unit/mkstream" $m "$tmp/$m.mpk"; done
for f in "$tmp"/*.mpk; do
    name=$(basename "$f" .mpk)
    { printf '\000'; cat "$f"; } > "$out/$name.zst"
    { printf '\001'; zstd -q -d -c "$f"; } > "$out/$name.msgpack"
done
ls -l "$out"
