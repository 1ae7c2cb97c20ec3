#!/bin/sh
# mpk.sh: runs tests/tools/mpk/cases.tst (see its header) against goldens.
. "$top_srcdir/tests/tools/lib.sh"
set -e
cases=$top_srcdir/tests/tools/mpk/cases.tst
gold=$top_srcdir/tests/tools/mpk/expected
find "$top_srcdir/tests/fixtures" -maxdepth 1 -type f -exec cp {} "$T_DIR"/ \;
cd "$T_DIR"
grep -v '^#' "$cases" | grep -v '^$' > "$T_DIR/cases"
while read -r code golden cmd; do
    run sh -c "$cmd"
    case $code in P) want=0; cmp_file=$out ;; N) want=1; cmp_file=$err ;; U) want=2; cmp_file=$err ;; esac
    if [ "$rc" -ne "$want" ]; then
        fail "$cmd: exit $rc, want $want"
        sed 's/^/#   /' "$err" | head -5
        continue
    fi
    if [ "$golden" = . ]; then pass "$cmd: exit $want"; continue; fi
    if [ "${MM_REGEN:-}" = 1 ]; then
        cp "$cmp_file" "$gold/$golden"
        pass "$cmd: regenerated $golden"
    elif cmp -s "$cmp_file" "$gold/$golden"; then
        pass "$cmd: matches $golden"
    else
        fail "$cmd: differs from $golden"
        diff "$gold/$golden" "$cmp_file" | head -20 | sed 's/^/#   /'
    fi
done < "$T_DIR/cases"
echo "1..$T_N"
done_testing
