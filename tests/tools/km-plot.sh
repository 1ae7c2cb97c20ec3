#!/bin/sh
# km-plot.sh: km-plot end to end on R's lung against R survival 3.5-3
# (../shared/data/reference): the curve table, medians, log-rank test and
# the Cox model's C-index, from a table and from a stream; the SVG and the
# PNG; missing values, a single group, bad input and bad usage.
. "$top_srcdir/tests/tools/lib.sh"
D=${MMPATH_TEST_DATA:-}
need_data survival/lung.tsv reference/lung_km_by_sex.tsv reference/lung_logrank_by_sex.tsv
set -e
cd "$T_DIR"
ref=$D/reference
# key VALUE: the value of key= in $out
key() { sed -n "s/^$1=//p" "$out" | head -n 1; }
# near GOT WANT TOL MSG
near() {
    if awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a != "" && d <= t) }'
    then pass "$4 ($1 vs R $2)"; else fail "$4 ($1 vs R $2)"; fi
}

run km-plot --group sex --event-value 2 --time-unit days --tsv curve.tsv -o km.svg "$D/survival/lung.tsv"
is "$rc" 0 "lung by sex: exit 0"
near "$(key logrank_chisq)" 10.326741954885632 1e-9 "log-rank chi-square"
near "$(key logrank_p)" 0.0013111645203554882 1e-9 "log-rank p"
is "$(key logrank_df)" 1 "log-rank df"
like "$out" '^group=sex=1 n=138 events=112 median=270 median_lower=212 median_upper=310$' "sex=1: n, events, median [CI] as R"
like "$out" '^group=sex=2 n=90 events=53 median=426 median_lower=348 median_upper=550$' "sex=2: n, events, median [CI] as R"
# the curve table against survfit's, row by row, every column within 1e-9
awk -F'\t' 'NR == FNR { if (FNR > 1) { k++; for (j = 1; j <= 10; j++) r[k, j] = $j }; next }
    FNR > 1 { m++
        split("2 3 4 5 6 8 7 9 10", ours, " "); split("2 3 4 5 6 7 8 9 10", theirs, " ")
        for (j = 1; j <= 9; j++) { a = $(ours[j]); b = r[m, theirs[j]]
            if (a == "nan" || b == "NA") { if (!((a == "nan" || a == "NA") && (b == "NA" || b == "nan"))) bad++; continue }
            d = a - b; if (d < 0) d = -d; if (d > maxd) maxd = d; if (d > 1e-9) bad++ }
        if ($1 != r[m, 1]) bad++ }
    END { printf "%d %d %g\n", m, bad, maxd; exit !(m == k && bad == 0) }' \
    "$ref/lung_km_by_sex.tsv" curve.tsv > cmp.txt && crc=0 || crc=$?
ok "$crc" "curve table equals survfit's within 1e-9 (rows, mismatches, max diff: $(cat cmp.txt))"
if [ -s km.svg ] && grep -q '</svg>' km.svg; then pass "SVG written"; else fail "SVG written"; fi
like km.svg 'Log-rank p = 0.0013' "the SVG shows survminer's p-value"
like km.svg 'Time \(days\)' "x label names the unit"
if [ -z "$(ls | grep '\.tmp\.')" ]; then pass "no temporary files left"; else fail "no temporary files left"; fi

# number at risk at chosen times, as summary(fit, times = c(0, 200, 500))
run km-plot --group sex --event-value 2 --times 0,200,500 "$D/survival/lung.tsv"
like "$out" '^at_risk group=sex=1 time=0 n_risk=138 surv=1$' "at risk: sex=1 at 0"
like "$out" '^at_risk group=sex=1 time=200 n_risk=78 surv=0.607307235417154' "at risk: sex=1 at 200 (R: 78, S = 0.6073072354171547)"
like "$out" '^at_risk group=sex=2 time=500 n_risk=21 surv=0.4110461351066878' "at risk: sex=2 at 500 (R: 21, S = 0.41104613510668786)"

# PNG: 720 x 560 at --png-scale 1, read from the IHDR chunk
run km-plot --group sex --event-value 2 --png-scale 1 -o km.png "$D/survival/lung.tsv"
is "$rc" 0 "PNG: exit 0"
sig=$(od -An -tx1 -N8 km.png | tr -d ' \n')
is "$sig" 89504e470d0a1a0a "PNG signature"
wh=$(od -An -tu1 -j16 -N8 km.png | awk '{ print $1*16777216 + $2*65536 + $3*256 + $4 "x" $5*16777216 + $6*65536 + $7*256 + $8 }')
is "$wh" 720x560 "PNG is 720 x 560 at scale 1"

# the lung Cox model's linear predictor: R's concordance counts exactly
# (lung's time/status with tests/fixtures/survival/lung_cox_risk.tsv, joined
# by tests/gen/real_inputs.sh: the real data is never committed)
sh "$top_srcdir/tests/gen/real_inputs.sh" "$D" "$T_DIR/real" lung_cox_lp.tsv
grep -v '^#' "$T_DIR/real/lung_cox_lp.tsv" > lp.tsv
run km-plot --time-col time --event-col status --split median lp.tsv
is "$rc" 0 "C-index: exit 0"
is "$(key cindex_concordant)" 12544 "concordant pairs as R"
is "$(key cindex_discordant)" 7117 "discordant pairs as R"
is "$(key cindex_tied_risk)" 126 "tied risk pairs as R"
is "$(key cindex_tied_time)" 28 "tied time pairs as R"
near "$(key cindex)" 0.637135493000455 1e-9 "Harrell's C"
like "$out" '^cindex_direction=higher risk = shorter survival$' "risk direction stated"
like "$out" '^group=high risk n=112 ' "median split: 112 above R's median(lp), as sum(lp > median(lp))"
like "$out" '^logrank_p=' "median split gets a log-rank test"
cp "$out" table.out

# the same numbers from a stream (mpk pack of the table)
run mpk pack --kind clinical -o lp.mpk lp.tsv
is "$rc" 0 "pack the risks into a stream"
run km-plot --split median lp.mpk
is "$rc" 0 "stream input: exit 0"
if cmp -s "$out" table.out; then pass "stream and table give the same numbers"; else
    fail "stream and table give the same numbers"; diff table.out "$out" | sed 's/^/#   /'; fi

# single group, missing values, all censored
run km-plot --event-value 2 "$D/survival/lung.tsv"
is "$rc" 0 "single group: exit 0"
like "$out" '^group=all n=228 events=165 median=310 ' "all 228: median 310 as survfit(~1)"
is "$(grep -c logrank "$out" || true)" 0 "single group: no log-rank lines"
printf 'time\tstatus\tg\n5\t1\ta\nNA\t1\ta\n7\tNA\tb\n3\t0\tb\n9\t0\tb\n0\t1\ta\n' > miss.tsv
run km-plot --group g miss.tsv
is "$rc" 0 "missing values: exit 0"
like "$err" "2 subjects skipped" "missing values: counted on stderr"
like "$out" '^group=g=b n=2 events=0 median=NA median_lower=NA median_upper=NA$' "all-censored group: median NA"
like "$out" '^group=g=a n=2 events=2 median=' "time 0 kept"

# bad input, bad usage
run km-plot --time-col nope "$D/survival/lung.tsv"
is "$rc" 1 "unknown column: exit 1"
like "$err" "^km-plot: .*lung.tsv: no column 'nope' \(--time-col\)$" "unknown column: one line"
run km-plot --split median --event-value 2 "$D/survival/lung.tsv"
is "$rc" 1 "--split without a risk: exit 1"
run km-plot --split mean lp.tsv
is "$rc" 2 "bad --split: exit 2"
run km-plot -o km.txt lp.tsv
is "$rc" 2 "-o must be .svg or .png: exit 2"
run km-plot --group sex --split median lp.tsv
is "$rc" 2 "--group with --split: exit 2"
printf 'time,event\n-1,1\n' > neg.csv
run km-plot neg.csv
is "$rc" 1 "negative time: exit 1"
like "$err" "neg.csv:2: time '-1' is not a number >= 0" "negative time: names file and line"
echo "1..$T_N"
done_testing
