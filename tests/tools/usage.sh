#!/bin/sh
# usage.sh: every program and subcommand prints "Usage: <name>" on stdout
# for --help and exits 0, exits 2 on a bad option (samtools test_usage),
# and prints "<name> (mmpath) VERSION" for --version.
. "$top_srcdir/tests/tools/lib.sh"
set -e
TOOLS="mpk km-plot rna-select seq-mask mm-synth mm-train wsi-tile patch-embed"
SUBS_mpk="cat head info verify pack"
for t in $TOOLS; do
    run "$t" --help
    is "$rc" 0 "$t --help exits 0"
    is "$(head -c $((7 + ${#t})) "$out")" "Usage: $t" "$t --help starts with Usage: $t"
    run "$t" --version
    is "$rc" 0 "$t --version exits 0"
    like "$out" "^$t \(mmpath\) [0-9]+\.[0-9]+" "$t --version names the package"
    run "$t"
    is "$rc" 2 "$t with no arguments exits 2"
    like "$err" "^Usage: $t" "$t with no arguments prints usage on stderr"
    v=$(echo "$t" | tr - _); eval subs=\${SUBS_$v:-}
    for s in $subs; do
        run "$t" "$s" --help
        is "$rc" 0 "$t $s --help exits 0"
        is "$(head -c $((8 + ${#t} + ${#s})) "$out")" "Usage: $t $s" "$t $s --help starts with Usage"
        run "$t" "$s" --no-such-option
        is "$rc" 2 "$t $s: bad option exits 2"
        if [ ! -s "$out" ]; then pass "$t $s: bad option writes nothing on stdout"
        else fail "$t $s: bad option writes nothing on stdout"; fi
    done
done
echo "1..$T_N"
done_testing
