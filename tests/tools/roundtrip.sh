#!/bin/sh
# roundtrip.sh: 10,000 records through mpk pack / mpk cat, checked against
# the table they came from; then the Python reader of STREAM.md reads the
# same streams (tests/python/readback.py). The Python part skips when no
# python3 has zstandard, msgpack and numpy, except in CI, where it fails.
. "$top_srcdir/tests/tools/lib.sh"
set -e
cd "$T_DIR"
# clinical: id, time, event, label, x (with NAs)
awk 'BEGIN { print "id\ttime\tevent\tlabel\tx"
             for (i = 0; i < 10000; i++)
               printf "P%05d\t%d.%d\t%d\t%s\t%s\n", i, i % 997, i % 10, i % 3 == 0,
                      (i % 4 == 0 ? "LUAD" : "LUSC"), (i % 7 == 0 ? "NA" : sprintf("%.3f", (i - 5000) / 8.0)) }' > c.tsv
# omics: 10,000 samples x 16 genes
awk 'BEGIN { printf "id"; for (j = 0; j < 16; j++) printf "\tG%d", j; print ""
             for (i = 0; i < 10000; i++) { printf "S%05d", i
               for (j = 0; j < 16; j++) printf "\t%s", ((i + j) % 50 == 0 ? "NA" : sprintf("%.5g", (i * 16 + j) / 977.0 - 80))
               print "" } }' > o.tsv

run mpk pack --kind clinical -o c.mpk c.tsv
ok $rc "pack 10,000 clinical rows"
run mpk pack --kind omics -o o.mpk o.tsv
ok $rc "pack 10,000 omics rows"
run mpk info c.mpk
like "$out" "1 segment, 10000 records" "10,000 records in the clinical stream"
mpk cat -r c.mpk > c.jsonl
mpk cat -r --full o.mpk > o.jsonl
is "$(wc -l < c.jsonl)" 10000 "mpk cat prints 10,000 records"

# the JSON, rebuilt from the table by awk, must match byte for byte
awk -F'\t' 'NR > 1 { t = $2 + 0; ts = (t == int(t)) ? sprintf("%d.0", t) : $2
                     x = ($5 == "NA") ? "null" : $5 + 0
                     if (x != "null" && x == int(x)) x = sprintf("%d.0", x)
                     printf "{\"id\":\"%s\",\"time\":%s,\"event\":%d,\"label\":\"%s\",\"x\":%s}\n", $1, ts, $3, $4, x }' c.tsv > want.jsonl
if cmp -s want.jsonl c.jsonl; then pass "clinical records equal the table"; else
    fail "clinical records equal the table"; diff want.jsonl c.jsonl | head -5 | sed 's/^/#   /'; fi

pick_python() {
    for p in ${PYTHON:-} python3 /usr/bin/python3; do
        if command -v "$p" >/dev/null 2>&1 &&
           "$p" -c 'import zstandard, msgpack, numpy' >/dev/null 2>&1; then
            echo "$p"; return 0
        fi
    done
    return 1
}
if py=$(pick_python); then
    diag "python: $py ($("$py" -c 'import sys, zstandard, msgpack, numpy; print(sys.version.split()[0], "zstandard", zstandard.__version__, "msgpack", ".".join(map(str, msgpack.version)), "numpy", numpy.__version__)'))"
    run "$py" "$top_srcdir/tests/python/readback.py" c.mpk c.jsonl c.tsv clinical
    sed 's/^/# /' "$out"; sed 's/^/# /' "$err"
    is "$rc" 0 "Python reads the clinical stream: same numbers"
    run "$py" "$top_srcdir/tests/python/readback.py" o.mpk o.jsonl o.tsv omics
    sed 's/^/# /' "$out"; sed 's/^/# /' "$err"
    is "$rc" 0 "Python reads the omics stream: same numbers"
elif [ "${CI:-}" = true ]; then
    fail "CI needs python3 with zstandard, msgpack and numpy (apt-get install python3-zstandard python3-msgpack python3-numpy)"
else
    pass "# SKIP no python3 with zstandard, msgpack, numpy (Debian: python3-zstandard python3-msgpack python3-numpy)"
    pass "# SKIP no python3 with zstandard, msgpack, numpy"
fi
echo "1..$T_N"
done_testing
