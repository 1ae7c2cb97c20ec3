#!/bin/sh
# mm-synth.sh: mm-synth writes the same bytes for the same seed; its slides
# open in OpenSlide (tests/unit/synth-probe) as generic TIFFs with the mpp in
# the resolution tags, a halving pyramid at 20x and a single 40x level with
# no 20x level; the tables pack with mpk pack; and the planted signal is
# there: the true risk orders the survival times (km-plot's C-index), the
# censored fraction is the one asked for, rna-select finds the subtype and
# risk genes, the risk genes follow the RNA score, and the slides' tissue
# darkens with the subtype and the image score.
. "$top_srcdir/tests/tools/lib.sh"
set -e
probe=$top_builddir/tests/unit/synth-probe
cd "$T_DIR"

# col FILE NAME: the values of column NAME of a TSV, one a line
col() { awk -F'\t' -v n="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == n) c = i; next } { print $c }' "$1"; }
# rows FILE: data rows of a TSV
rows() { echo $(($(wc -l < "$1") - 1)); }

run mm-synth --help
is "$rc" 0 "--help exits 0"
like "$out" '^Usage: mm-synth' "--help prints the usage"

# ---- a small cohort with slides, twice, then another seed
small="-n 6 --slide-size 512 --two-slides 2 --at-40x 2 --genes 60 --subtype-genes 8 --risk-genes 8"
run mm-synth $small --seed 7 -o c1
is "$rc" 0 "a small cohort: exit 0"
is "$(cd c1 && ls | tr '\n' ' ')" "README clinical.tsv genes.tsv rna.tsv slides slides.tsv truth-slides.tsv truth.tsv " "the cohort's files"
run mm-synth $small --seed 7 -@ 2 -o c2
if diff -r c1 c2 >/dev/null; then pass "the same seed, with 1 or 2 threads: the same bytes in every file"
else fail "the same seed, with 1 or 2 threads: the same bytes in every file"; fi
run mm-synth $small --seed 8 -o c3
if cmp -s c1/rna.tsv c3/rna.tsv || cmp -s c1/slides/SYN-0001.tif c3/slides/SYN-0001.tif 2>/dev/null
then fail "another seed, other tables and slides"; else pass "another seed, other tables and slides"; fi
if [ -z "$(ls | grep '\.tmp-' || true)" ]; then pass "no temporary directory left"
else fail "no temporary directory left"; fi

is "$(rows c1/clinical.tsv)" 6 "6 patients in clinical.tsv"
is "$(rows c1/slides.tsv)" 8 "8 slides: 4 patients with one, 2 with two"
is "$(ls c1/slides | wc -l | tr -d ' ')" 8 "8 TIFFs in slides/"
is "$(col c1/slides.tsv id | grep -c -- '-[AB]$')" 4 "two-slide patients' slides end in -A, -B"
is "$(awk -F'\t' 'NR > 1 && $1 != $2 && $1 != $2 "-A" && $1 != $2 "-B"' c1/slides.tsv)" "" "slides.tsv maps each slide to its patient"
is "$(head -n 1 c1/rna.tsv | tr '\t' '\n' | tail -n +2 | tr '\n' ' ')" "$(col c1/clinical.tsv id | tr '\n' ' ')" "rna.tsv has one column per patient, in clinical order"
is "$(rows c1/rna.tsv)" 60 "rna.tsv has 60 genes"
like c1/README '^seed=7$' "README lists the parameters"

# ---- the slides through OpenSlide
"$probe" c1/slides/*.tif > probe.tsv
is "$(col probe.tsv vendor | sort -u)" "generic-tiff" "every slide opens in OpenSlide as generic-tiff"
at40=$(awk -F'\t' '$3 == 0.25 { print $1 }' c1/truth-slides.tsv | tr '\n' ' ')
is "$(echo $at40 | wc -w | tr -d ' ')" 2 "two slides at 40x (truth-slides.tsv)"
got20=$(awk -F'\t' 'NR > 1 && $7 == 0.5 { print $3, $4, $5, $6 }' probe.tsv | sort -u)
is "$got20" "2 1,2 512 512" "20x slides: mpp 0.5 from the TIFF resolution, 512 px, levels at downsample 1 and 2"
got40=$(awk -F'\t' 'NR > 1 && $7 == 0.25 { print $3, $4, $5, $6 }' probe.tsv | sort -u)
is "$got40" "1 1 1024 1024" "40x slides: mpp 0.25, 1024 px, one level: no 20x level"
for s in $at40; do
    like probe.tsv "/$s\.tif	.*	0\.25	" "$s: OpenSlide reads it at 0.25 um/px"
done
bad=$(awk -F'\t' 'NR == FNR { if (FNR > 1) tf[$1] = $8; next }
    FNR > 1 { n = split($1, p, "/"); id = p[n]; sub(/\.tif$/, "", id);
              d = tf[id] - $8; if (d < 0) d = -d; if (d > 0.08) print id, tf[id], $8 }' \
    c1/truth-slides.tsv probe.tsv)
is "$bad" "" "the tissue OpenSlide sees matches truth-slides.tsv within 0.08"

# ---- the tables parse with the project's readers
run mpk pack --kind clinical --label-col subtype --time-unit months -o clin.mpk c1/clinical.tsv
is "$rc" 0 "mpk pack reads clinical.tsv"
like "$err" "event column 'event': 0/1 read as 1 = event" "event coded 0/1"
run mpk info clin.mpk
like "$out" "clinical 'clinical', 6 records" "6 clinical records"
run mpk pack --kind omics --genes-in rows -o rna.mpk c1/rna.tsv
is "$rc" 0 "mpk pack reads rna.tsv"
run mpk info rna.mpk
like "$out" "omics 'rna', 6 records" "6 omics records"
like "$out" "features\[60\]" "60 features"

# ---- the signal, on 300 patients without slides
run mm-synth --no-slides -n 300 --genes 200 --seed 11 -o big
is "$rc" 0 "300 patients, tables only: exit 0"
if [ ! -e big/slides ] && [ ! -e big/slides.tsv ]; then pass "--no-slides writes no slides"
else fail "--no-slides writes no slides"; fi
# the true log hazard as a risk score: with risk effect 1 and subtype
# effect 0.7 the truth's own C-index is about 0.73 (the expected
# concordance of a Weibull PH model with linear predictor sd ~1.07); with
# n = 300 its sd is about 0.02, so 0.68 is 2.5 sd below, and a cohort
# whose times ignored the risk (0.5) fails by far
awk -F'\t' 'NR == FNR { r[$1] = $3; next } FNR == 1 { print $0 "\trisk"; next } { print $0 "\t" r[$1] }' \
    big/truth.tsv big/clinical.tsv > km.tsv
run km-plot -o km.svg km.tsv
cidx=$(sed -n 's/^cindex=//p' "$out")
if awk -v c="$cidx" 'BEGIN { exit !(c > 0.68) }'; then pass "the true risk orders survival: C-index $cidx > 0.68"
else fail "the true risk orders survival: C-index ${cidx:-?} > 0.68"; fi
run mm-synth --no-slides -n 300 --genes 20 --subtype-genes 2 --risk-genes 2 --seed 11 \
    --risk-effect 0 --subtype-effect 0 -o null
awk -F'\t' 'NR == FNR { r[$1] = $3; next } FNR == 1 { print $0 "\trisk"; next } { print $0 "\t" r[$1] }' \
    big/truth.tsv null/clinical.tsv > kmnull.tsv
run km-plot -o kmnull.svg kmnull.tsv
c0=$(sed -n 's/^cindex=//p' "$out")
if awk -v c="$c0" 'BEGIN { exit !(c > 0.42 && c < 0.58) }'; then pass "no effect: the same scores give C-index $c0, near 0.5"
else fail "no effect: the same scores give C-index ${c0:-?}, near 0.5"; fi

# censoring: expected 30 % (the default) and 60 %; n = 300 gives sd 0.027,
# the tolerance 0.08 is 3 sd
cens=$(col big/clinical.tsv event | grep -c '^0$' || true)
if [ "$cens" -ge 66 ] && [ "$cens" -le 114 ]; then pass "censoring 0.3: $cens of 300 censored"
else fail "censoring 0.3: $cens of 300 censored, not within 0.3 +- 0.08"; fi
run mm-synth --no-slides -n 300 --genes 10 --subtype-genes 1 --risk-genes 1 --censoring 0.6 -o c60
cens=$(col c60/clinical.tsv event | grep -c '^0$' || true)
if [ "$cens" -ge 156 ] && [ "$cens" -le 204 ]; then pass "censoring 0.6: $cens of 300 censored"
else fail "censoring 0.6: $cens of 300 censored, not within 0.6 +- 0.08"; fi
run mm-synth --no-slides -n 50 --genes 10 --subtype-genes 1 --risk-genes 1 --censoring 0 -o c0
is "$(col c0/clinical.tsv event | sort -u)" 1 "censoring 0: every event observed"
# censored times come before the event times the truth holds
bad=$(awk -F'\t' 'NR == FNR { if (FNR > 1) { t[$1] = $9; c[$1] = $10 }; next }
    FNR > 1 { want = t[$1] <= c[$1] ? t[$1] : c[$1]; ev = t[$1] <= c[$1];
              if ($4 != ev || ($3 - want > 0.006 || want - $3 > 0.006) && want >= 0.01) print $1 }' \
    big/truth.tsv big/clinical.tsv)
is "$bad" "" "time = min(event time, censoring time), event = which came first"

# missing values: 1 % of 60,000
na=$(tail -n +2 big/rna.tsv | cut -f 2- | tr '\t' '\n' | grep -c '^NA$' || true)
if [ "$na" -ge 450 ] && [ "$na" -le 750 ]; then pass "about 1 % of RNA values NA ($na of 60000)"
else fail "about 1 % of RNA values NA ($na of 60000)"; fi

# the genes: RFE on subtype finds subtype genes; Cox on survival (without
# the subtype's own effect) finds risk genes
run rna-select --genes-in rows --log2p1 --impute mean --zscore --rfe 10 --step 0.2 \
    --labels big/clinical.tsv --label-col subtype --list big/rna.tsv
is "$rc" 0 "rna-select RFE: exit 0"
hits=$(awk -F'\t' 'NR == FNR { p[$1] = $2; next } p[$1] == "subtype"' big/genes.tsv "$out" | wc -l | tr -d ' ')
if [ "$hits" -ge 9 ]; then pass "RFE on the subtype: $hits of 10 are subtype genes"
else fail "RFE on the subtype: $hits of 10 are subtype genes"; fi
run mm-synth --no-slides -n 300 --genes 200 --seed 11 --subtype-effect 0 -o nosub
run rna-select --genes-in rows --log2p1 --impute mean --cox-top 10 --labels nosub/clinical.tsv \
    --list nosub/rna.tsv
is "$rc" 0 "rna-select Cox: exit 0"
hits=$(awk -F'\t' 'NR == FNR { p[$1] = $2; next } p[$1] == "risk"' nosub/genes.tsv "$out" | wc -l | tr -d ' ')
if [ "$hits" -ge 8 ]; then pass "univariate Cox: $hits of the top 10 are risk genes"
else fail "univariate Cox: $hits of the top 10 are risk genes"; fi
# each risk gene's log2(count + 1) against rna_score (the RNA's part of the
# risk): |r| about 0.6-0.9 by construction; noise genes about 0
awk -F'\t' 'FILENAME ~ /truth/ { if (FNR > 1) s[$1] = $7; next }
    FILENAME ~ /genes/ { if (FNR > 1) p[$1] = $2; next }
    FNR == 1 { for (j = 2; j <= NF; j++) id[j] = $j; next }
    { n = sx = sy = sxx = syy = sxy = 0
      for (j = 2; j <= NF; j++) if ($j != "NA") { x = log($j + 1) / log(2); y = s[id[j]];
          n++; sx += x; sy += y; sxx += x * x; syy += y * y; sxy += x * y }
      r = (sxy - sx * sy / n) / sqrt((sxx - sx * sx / n) * (syy - sy * sy / n))
      a[p[$1]] += r < 0 ? -r : r; k[p[$1]]++ }
    END { printf "%.3f %.3f\n", a["risk"] / k["risk"], a["noise"] / k["noise"] }' \
    big/truth.tsv big/genes.tsv big/rna.tsv > corr.txt
read rrisk rnoise < corr.txt
if awk -v a="$rrisk" -v b="$rnoise" 'BEGIN { exit !(a > 0.5 && b < 0.1) }'; then
    pass "risk genes follow the RNA score: mean |r| $rrisk; noise genes $rnoise"
else fail "risk genes follow the RNA score: mean |r| $rrisk (> 0.5); noise genes $rnoise (< 0.1)"; fi

# ---- the image: tissue darkness (243 - mean red) by subtype and image score
run mm-synth -n 16 --slide-size 512 --genes 10 --subtype-genes 1 --risk-genes 1 --seed 5 -o img
is "$rc" 0 "16 patients with slides: exit 0"
"$probe" img/slides/*.tif > img.tsv
awk -F'\t' 'FNR == 1 { f++; next }
    f == 1 { st[$1] = $2; q[$1] = $8; next }
    f == 2 { pat[$1] = $2; next }
    { n = split($1, p, "/"); id = p[n]; sub(/\.tif$/, "", id); P = pat[id]; s = st[P]; d = 243 - $9
      N[s]++; S[s] += d; ns++; dd[ns] = d; qq[ns] = q[P]; ss[ns] = s }
    END { for (s in N) m[s] = S[s] / N[s]
          for (i = 1; i <= ns; i++) mq[ss[i]] += qq[i] / N[ss[i]]
          for (i = 1; i <= ns; i++) { x = dd[i] - m[ss[i]]; y = qq[i] - mq[ss[i]]
              sxy += x * y; sxx += x * x; syy += y * y }
          printf "%.1f %.1f %.3f\n", m["glandular"], m["solid"], sxy / sqrt(sxx * syy) }' \
    img/truth.tsv img/truth-slides.tsv img.tsv > img.txt
read dg ds rq < img.txt
# solid tissue is dense with large nuclei: about 60 against 25
if awk -v a="$dg" -v b="$ds" 'BEGIN { exit !(b > a + 15) }'; then pass "solid tissue is darker: $ds against $dg"
else fail "solid tissue is darker: $ds against $dg (by more than 15)"; fi
# within a subtype, darkness follows the image score (nuclear density
# exp(0.5 q)): r about 0.8 over 18 slides; 0.5 leaves room
if awk -v r="$rq" 'BEGIN { exit !(r > 0.5) }'; then pass "darkness follows the image score within subtypes: r = $rq"
else fail "darkness follows the image score within subtypes: r = $rq (> 0.5)"; fi

# ---- the destination
run mm-synth --no-slides -n 4 --genes 10 --subtype-genes 1 --risk-genes 1 -o c1
is "$rc" 1 "an existing DIR: exit 1"
like "$err" "^mm-synth: c1: exists; remove it or use --force$" "an existing DIR: the message"
run mm-synth --no-slides -n 4 --genes 10 --subtype-genes 1 --risk-genes 1 --force -o c1
is "$rc" 0 "--force over an earlier cohort: exit 0"
if [ ! -e c1/slides ] && [ "$(rows c1/clinical.tsv)" = 4 ]; then pass "--force replaced the cohort"
else fail "--force replaced the cohort"; fi
mkdir other && echo keep > other/file
run mm-synth --no-slides -n 4 --genes 10 --subtype-genes 1 --risk-genes 1 --force -o other
is "$rc" 1 "--force over a directory that is not a cohort: exit 1"
is "$(cat other/file)" keep "that directory is left alone"
run mm-synth --no-slides -n 4 -o no/such/dir
is "$rc" 1 "a missing parent: exit 1"
is "$(wc -l < "$err" | tr -d ' ')" 1 "a missing parent: one line"
if [ -z "$(ls | grep -e '\.tmp-' -e '\.old-' || true)" ]; then pass "nothing left behind"
else fail "nothing left behind"; fi

# ---- usage
run mm-synth
is "$rc" 2 "no -o: exit 2"
run mm-synth -n 1 -o x
is "$rc" 2 "--patients 1: exit 2"
like "$err" "^mm-synth: --patients: expected an integer in \[2, 1000000\], got '1'$" "--patients 1: the message"
run mm-synth --censoring 0.99 -o x
is "$rc" 2 "--censoring 0.99: exit 2"
run mm-synth --genes 10 --subtype-genes 8 --risk-genes 8 -o x
is "$rc" 2 "more program genes than genes: exit 2"
run mm-synth --compression lzw -o x
is "$rc" 2 "--compression lzw: exit 2"
run mm-synth --slide-size 100 -o x
is "$rc" 2 "--slide-size 100: exit 2"
run mm-synth -o x extra
is "$rc" 2 "an extra argument: exit 2"
if [ ! -e x ]; then pass "nothing written on bad usage"; else fail "nothing written on bad usage"; fi

echo "1..$T_N"
done_testing
