#!/bin/sh
# integrity.sh: broken streams give one-line errors naming the file and exit
# 1 (STREAM.md "What counts as broken"): cut mid-frame, between frames of a
# segment, before the trailer; a flipped byte; not zstd; not msgpack; an
# unknown version; a wrong record count. Failed outputs leave no file, and
# binary output to a terminal is refused.
. "$top_srcdir/tests/tools/lib.sh"
set -e
mk=$top_builddir/tests/unit/mkstream
cd "$T_DIR"

# 1500 samples x 800 genes: ~5 MiB of msgpack, so the segment spans frames
awk 'BEGIN { printf "id"; for (j = 0; j < 800; j++) printf "\tg%d", j; printf "\n";
             x = 12345;
             for (i = 0; i < 1500; i++) { printf "s%d", i;
               for (j = 0; j < 800; j++) { x = (x * 1103515245 + 12345) % 2147483648;
                                           printf "\t%.4f", x / 2147483648.0 }
               printf "\n" } }' > big.tsv
run mpk pack --kind omics -o big.mpk big.tsv
ok $rc "pack a multi-frame stream"
"$mk" frames big.mpk > frames
nframes=$(wc -l < frames)
if [ "$nframes" -ge 2 ]; then pass "segment spans $nframes frames"; else fail "segment spans $nframes frames"; fi
size=$(wc -c < big.mpk)
first=$(sed -n 1p frames)

# expect_error FILE REGEX NAME: verify and cat both exit 1 with one line
expect_error() {
    for sub in verify cat; do
        run mpk $sub "$1"
        is "$rc" 1 "$3: mpk $sub exits 1"
        is "$(wc -l < "$err")" 1 "$3: mpk $sub prints one line"
        like "$err" "^mpk $sub: $1: $2" "$3: mpk $sub names the file and the fault"
    done
}

head -c $((first / 2)) big.mpk > cut-mid.mpk
expect_error cut-mid.mpk "truncated stream" "cut mid-frame"
head -c "$first" big.mpk > cut-frame.mpk
expect_error cut-frame.mpk "truncated stream" "cut between frames of a segment"
head -c $((size - 1)) big.mpk > cut-end.mpk
expect_error cut-end.mpk "truncated stream" "cut one byte short"
"$mk" notrailer no-trailer.mpk
expect_error no-trailer.mpk "truncated stream \(segment 'odd' ends without a trailer after 3 records\)" \
    "cut just before the trailer"

cp big.mpk flip.mpk
printf '\377' | dd of=flip.mpk bs=1 seek=$((first / 2)) conv=notrunc 2>/dev/null
expect_error flip.mpk "corrupt stream" "flipped byte"

expect_error big.tsv "not an mpk stream \(not zstd-compressed\)" "a TSV file"
zstd -q -c big.tsv > text.zst 2>/dev/null || printf 'x' > text.zst
expect_error text.zst "not an mpk stream" "zstd-compressed text"
"$mk" badversion v2.mpk
expect_error v2.mpk "unsupported mpk version 2" "unknown version"
"$mk" badcount count.mpk
expect_error count.mpk "corrupt stream: segment 'odd' has 3 records but its trailer says 4" \
    "wrong record count"
"$mk" baddigest digest.mpk
expect_error digest.mpk "corrupt stream: segment 'odd' digest mismatch" "wrong digest"
: > empty.mpk
expect_error empty.mpk "not an mpk stream \(empty\)" "empty file"

# the good one still verifies, and a cut between segments is valid
run mpk verify big.mpk
is "$rc" 0 "intact stream verifies"
cat big.mpk big.mpk > two.mpk
run mpk verify two.mpk
is "$rc" 0 "concatenated streams verify"
run mpk info two.mpk
like "$out" "total: 2 segments, 3000 records" "concatenation reads as one stream"

# nothing half-written
printf 'id,time,event\nA,1,1\nB,2\n' > bad.csv
run mpk pack --kind clinical -o out.mpk bad.csv
is "$rc" 1 "bad table: exit 1"
if [ ! -e out.mpk ] && [ -z "$(ls | grep 'out\.mpk\.tmp')" ]; then pass "bad table: no output, no temporary file"; else fail "bad table: no output, no temporary file"; fi
run mpk cat -o out.jsonl cut-mid.mpk
is "$rc" 1 "cat of a truncated stream to -o: exit 1"
if [ ! -e out.jsonl ]; then pass "cat -o leaves no partial output"; else fail "cat -o leaves no partial output"; fi

# binary output to a terminal is refused (script(1) gives us a pty)
if command -v script >/dev/null 2>&1 && script -qec true /dev/null >/dev/null 2>&1; then
    script -qec "mpk pack --kind omics big.tsv" /dev/null > tty.out 2>&1 && trc=0 || trc=$?
    is "$trc" 2 "binary stream to a terminal: exit 2"
    like tty.out "refusing to write a binary stream to a terminal" "terminal: message"
else
    pass "# SKIP script(1) cannot make a pty here"
    pass "# SKIP script(1) cannot make a pty here"
fi
echo "1..$T_N"
done_testing
