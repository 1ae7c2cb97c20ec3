#!/bin/sh
# seq-mask.sh: seq-mask end to end on synthetic features streams
# (mkstream features): the same seed gives the same bytes, slide ids change
# the mask, --views, piped input, a short slide repeated, the rows are the
# tokens the indices name, a 150,000-token slide without holding it, a slide
# without "n" under --max-buffer, omics blocks, bad usage and wrong kinds.
. "$top_srcdir/tests/tools/lib.sh"
set -e
mk=$top_builddir/tests/unit/mkstream
cd "$T_DIR"
# data KEY: the values of tensor KEY in each line of $out, comma-separated
data() { grep -o "\"$1\":{[^}]*}" "$out" | sed 's/.*"data":\[//; s/\]}$//'; }

"$mk" features 1000 16 slideA a.mpk
"$mk" features 1000 16 slideB b.mpk
"$mk" features 7 16 short s.mpk

run seq-mask --help
is "$rc" 0 "--help exits 0"
like "$out" '^Usage: seq-mask' "--help prints Usage: seq-mask"

# the same seed, the same bytes; another seed, other bytes
run seq-mask --mode contiguous --length 100 --seed 9 -o v1.mpk a.mpk
is "$rc" 0 "contiguous: exit 0"
run seq-mask --mode contiguous --length 100 --seed 9 -o v2.mpk a.mpk
if cmp -s v1.mpk v2.mpk; then pass "the same seed gives the same bytes"
else fail "the same seed gives the same bytes"; fi
run seq-mask --mode contiguous --length 100 --seed 10 -o v3.mpk a.mpk
if cmp -s v1.mpk v3.mpk; then fail "another seed gives other bytes"
else pass "another seed gives other bytes"; fi
run mpk info v1.mpk
like "$out" "views 'slideA', 1 records" "one view, one chunk record"
run mpk cat v1.mpk
like "$out" '"kind":"views","id":"slideA"' "header: kind views, the slide's id"
like "$out" '"parents":\[\{"kind":"features","id":"slideA"\}\]' "header: the source as parent"
like "$out" '"mode":"contiguous","length":100,"ratio":0.5,"seed":9,"views":1' "meta: mode, length, ratio, seed, views"
like "$out" '"argv":\["seq-mask","--mode","contiguous","--length","100","--seed","9",' "provenance argv starts with the tool's name"
like "$out" '"mpk_end":1,"digest":"[0-9a-f]{16}","parents":\[\{"kind":"features","id":"slideA","digest":"[0-9a-f]{16}"\}\]' "trailer: the input's digest"
run mpk cat -r -f v1.mpk
mask=$(data mask)
hidden=$(echo "$mask" | tr ',' '\n' | grep -c '^1$' || true)
is "$hidden" 50 "50 of 100 positions hidden at ratio 0.5"
idx=$(data idx)
is "$(echo "$idx" | tr ',' '\n' | awk 'NR > 1 && $1 != p + 1 { bad++ } { p = $1 } END { print NR, bad + 0 }')" "100 0" "100 contiguous indices"
# row j's first feature is its token's index (mkstream's f[i][0] = i)
first=$(grep -o '"f":{[^}]*}' "$out" | sed 's/.*"data":\[\[//; s/\]\]$//' | sed 's/\],\[/\n/g' | cut -d, -f1 | sed 's/\.0$//' | tr '\n' ',' | sed 's/,$//')
is "$first" "$idx" "each row holds the token its index names"

# slide ids are mixed into the seed
cat a.mpk b.mpk > ab.mpk
run seq-mask --mode contiguous --length 100 --seed 9 -o ab.views ab.mpk
is "$rc" 0 "two slides: exit 0"
run mpk cat -r -f ab.views
ma=$(sed -n 1p "$out" | grep -o '"mask":{[^}]*}')
mb=$(sed -n 2p "$out" | grep -o '"mask":{[^}]*}')
if [ -n "$ma" ] && [ "$ma" != "$mb" ]; then pass "two slides, the same seed: different masks"
else fail "two slides, the same seed: different masks"; fi
run mpk info ab.views
like "$out" "views 'slideA'" "a segment for slideA"
like "$out" "views 'slideB'" "a segment for slideB"

# --views 3, piped input
run_in a.mpk seq-mask --mode sample --count 64 --ratio 0.75 --views 3 --seed 2 -o p.mpk -
is "$rc" 0 "piped input: exit 0"
run mpk cat -r -f p.mpk
is "$(grep -c '"view":' "$out")" 3 "--views 3 gives 3 views"
is "$(grep -o '"view":[0-9]*' "$out" | tr '\n' ' ')" '"view":0 "view":1 "view":2 ' "views 0, 1, 2 in order"
is "$(grep -o '"seed":[0-9]*' "$out" | sort -u | wc -l | tr -d ' ')" 3 "each view has its own seed"
n48=$(data mask | awk -F, '{ s = 0; for (i = 1; i <= NF; i++) s += $i; printf "%d ", s }')
is "$n48" "48 48 48 " "48 of 64 hidden in each view (ratio 0.75)"
cp "$out" p.json
seq-mask --mode sample --count 64 --ratio 0.75 --views 3 --seed 2 a.mpk | mpk cat -r -f > p2.json
if cmp -s p.json p2.json; then pass "piped and named input give the same records"
else fail "piped and named input give the same records"; fi
inr=$(data idx | tr ',' '\n' | awk '$1 < 0 || $1 >= 1000 { bad++ } END { print NR, bad + 0 }')
is "$inr" "192 0" "192 indices, all within [0, 1000)"

# a long view: several chunk records, numbered, none over the record limit
"$mk" features 2000 1024 wide w.mpk
run seq-mask --mode contiguous -o w.views w.mpk
is "$rc" 0 "6000 x 1024 view: exit 0"
run mpk cat -r w.views
is "$(grep -o '"chunk":[0-9]*' "$out" | tr '\n' ' ')" '"chunk":0 "chunk":1 "chunk":2 "chunk":3 "chunk":4 "chunk":5 ' "a 24 MiB view is 6 chunk records"
is "$(grep -o '"idx":{"tensor":"i32","shape":\[[0-9]*' "$out" | sed 's/.*\[//' | awk '{ s += $1 } END { print s }')" 6000 "the chunks hold 6000 tokens"

# a short slide is repeated in order
run seq-mask --mode contiguous --length 20 s.mpk -o short.views
run mpk cat -r -f short.views
is "$(data idx)" "0,1,2,3,4,5,6,0,1,2,3,4,5,6,0,1,2,3,4,5" "7 tokens to 20: repeated in order, truncated"
run seq-mask --mode sample --count 20 s.mpk -o shorts.views
run mpk cat -r -f shorts.views
inr=$(data idx | tr ',' '\n' | awk '$1 < 0 || $1 >= 7 { bad++ } END { print NR, bad + 0 }')
is "$inr" "20 0" "sample 20 of 7: with replacement, within range"
run seq-mask --mode random --ratio 0.3 s.mpk -o r.views
run mpk cat -r -f r.views
is "$(data idx)" "0,1,2,3,4,5,6" "random: the whole slide in order"

# 150,000 tokens (GiMP's largest TCGA-NSCLC slide), dim 64: 37 MiB of
# tokens through a 16 MiB buffer, since "n" lets the views be drawn first
"$mk" features 150000 64 big big.mpk
run seq-mask -v --mode contiguous --max-buffer 16 -o big.views big.mpk
is "$rc" 0 "150,000 tokens under --max-buffer 16: exit 0"
peak=$(sed -n 's/.*peak memory: \([0-9]*\) MiB.*/\1/p' "$err")
run mpk info big.views
like "$out" "views 'big', 1 records" "one 6000-token view"
if [ -n "${ASAN_OPTIONS:-}" ]; then pass "# SKIP peak memory under AddressSanitizer"
elif [ -n "$peak" ] && [ "$peak" -lt 32 ]; then pass "150,000 tokens: peak memory $peak MiB, below the 37 MiB slide"
else fail "150,000 tokens: peak memory ${peak:-?} MiB, below the 37 MiB slide"; fi
"$mk" features 150000 64 big big-non.mpk --no-n
run seq-mask --mode contiguous --max-buffer 16 -o x.views big-non.mpk
is "$rc" 1 "no \"n\" beyond --max-buffer: exit 1"
like "$err" '^seq-mask: big-non.mpk: slide .big.: no token count \("n"\) in the header and its tokens exceed --max-buffer 16 MiB' "no \"n\": a clear message"
if [ ! -e x.views ] && [ -z "$(ls | grep '\.tmp\.' || true)" ]; then pass "nothing left behind on failure"
else fail "nothing left behind on failure"; fi
run seq-mask --mode contiguous --length 100 --seed 9 -o non.views big-non.mpk
is "$rc" 0 "no \"n\" within --max-buffer: exit 0"
"$mk" features 1000 16 slideA a-non.mpk --no-n
seq-mask --mode contiguous --length 100 --seed 9 a-non.mpk | mpk cat -r > non.json
mpk cat -r v1.mpk > n.json
if cmp -s non.json n.json; then pass "with or without \"n\": the same view"
else fail "with or without \"n\": the same view"; fi

# omics: two blocks of the same samples, one zeroed per sample
printf 'id\tg1\tg2\ns1\t1\t2\ns2\t3\t4\n' > m.tsv
printf 'id\tm1\tm2\tm3\ns2\t5\t6\t7\ns1\t8\t9\t10\n' > mi.tsv
mpk pack --kind omics --block mRNA -o m.mpk m.tsv
mpk pack --kind omics --block miRNA -o mi.mpk mi.tsv
cat m.mpk mi.mpk > mm.mpk
run seq-mask --mode omics --views 2 --seed 3 -o om.views mm.mpk
is "$rc" 0 "omics: exit 0"
run mpk cat -f om.views
like "$out" '"blocks":\["mRNA","miRNA"\],"block_sizes":\[2,3\]' "omics: the blocks in the header"
is "$(grep -c '"block":' "$out")" 4 "omics: 2 samples x 2 views"
like "$out" '"id":"s1","view":0,.*"block":0,"v":\{"tensor":"f32","shape":\[5\],"data":\[0\.0,0\.0,8\.0,9\.0,10\.0\]\},"mask":\{"tensor":"u8","shape":\[5\],"data":\[1,1,0,0,0\]\}' "omics: block 0 zeroed and marked, the other joined by id"
run seq-mask --mode omics m.mpk
is "$rc" 1 "omics with one block: exit 1"

# bad usage: exit 2 with a message
run seq-mask --mode contiguous --ratio 1.5 a.mpk
is "$rc" 2 "--ratio 1.5: exit 2"
like "$err" "^seq-mask: --ratio: expected a number in \[0, 1\), got '1.5'$" "--ratio 1.5: the message"
run seq-mask --mode contiguous --ratio 1 a.mpk
is "$rc" 2 "--ratio 1: exit 2"
run seq-mask --mode contiguous --ratio -0.1 a.mpk
is "$rc" 2 "--ratio -0.1: exit 2"
run seq-mask --mode contiguous --length 0 a.mpk
is "$rc" 2 "--length 0: exit 2"
like "$err" "^seq-mask: --length: expected an integer in \[1, [0-9]+\], got '0'$" "--length 0: the message"
run seq-mask --mode sample --count -5 a.mpk
is "$rc" 2 "--count -5: exit 2"
run seq-mask --mode fancy a.mpk
is "$rc" 2 "unknown mode: exit 2"
like "$err" "^seq-mask: --mode: expected contiguous, sample, random or omics, got 'fancy'$" "unknown mode: the message"
run seq-mask a.mpk
is "$rc" 2 "no --mode: exit 2"
run seq-mask --no-such-option
is "$rc" 2 "bad option: exit 2"
if [ ! -s "$out" ]; then pass "bad option writes nothing on stdout"; else fail "bad option writes nothing on stdout"; fi

# wrong kinds: exit 1, one line
run seq-mask --mode contiguous m.mpk
is "$rc" 1 "an omics stream in contiguous mode: exit 1"
is "$(wc -l < "$err" | tr -d ' ')" 1 "one line"
like "$err" "^seq-mask: m.mpk: segment 'm' has kind omics, not features" "names the kind"
run seq-mask --mode omics a.mpk
is "$rc" 1 "a features stream in omics mode: exit 1"
"$mk" badcount bad.mpk
run seq-mask --mode contiguous bad.mpk
is "$rc" 1 "a clinical stream: exit 1"
head -c 100 a.mpk > cut.mpk
run seq-mask --mode contiguous cut.mpk
is "$rc" 1 "a truncated stream: exit 1"
like "$err" "truncated|corrupt" "a truncated stream: said so"

echo "1..$T_N"
done_testing
