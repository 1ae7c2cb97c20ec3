# lib.sh: TAP helpers for the shell tests (sourced). Each test script:
#   . "$top_srcdir/tests/tools/lib.sh"; plan N; ...; done_testing
# run CMD...   runs CMD, keeps $rc, $out (stdout file), $err (stderr file)
# ok COND-RC MSG, is GOT WANT MSG, like FILE REGEX MSG
# need_data FILE...  skip the whole script (exit 77) unless the real data is
#   there; with CI=true a missing file is a failure instead.
set -u
: "${top_srcdir:=.}" "${top_builddir:=.}"
T_N=0
T_FAIL=0
T_DIR=$(mktemp -d "${TMPDIR:-/tmp}/mmpath-test.XXXXXX")
trap 'rm -rf "$T_DIR"' EXIT
out=$T_DIR/stdout
err=$T_DIR/stderr
rc=0

plan() { echo "1..$1"; }
diag() { printf '# %s\n' "$*"; }
pass() { T_N=$((T_N + 1)); echo "ok $T_N - $*"; }
fail() {
    T_N=$((T_N + 1)); T_FAIL=$((T_FAIL + 1)); echo "not ok $T_N - $*"
}
# ok STATUS MSG: pass when STATUS is 0
ok() { if [ "$1" -eq 0 ]; then pass "$2"; else fail "$2"; fi; }
is() {
    if [ "$1" = "$2" ]; then pass "$3"; else fail "$3"; diag "got:  '$1'"; diag "want: '$2'"; fi
}
# like FILE ERE MSG
like() {
    if grep -Eq -- "$2" "$1"; then pass "$3"; else
        fail "$3"; diag "no match for /$2/ in:"; sed 's/^/#   /' "$1" | head -20
    fi
}
run() {
    set +e
    "$@" >"$out" 2>"$err"
    rc=$?
    set -e
}
# run_in INPUT CMD...: as run, with INPUT on stdin
run_in() {
    local in=$1; shift
    set +e
    "$@" <"$in" >"$out" 2>"$err"
    rc=$?
    set -e
}
need_data() {
    local d=${MMPATH_TEST_DATA:-}
    for f in "$@"; do
        if [ -z "$d" ] || [ ! -e "$d/$f" ]; then
            if [ "${CI:-}" = true ]; then
                echo "1..1"; echo "not ok 1 - test data missing in CI: ${d:-<unset>}/$f"; exit 1
            fi
            echo "1..0 # SKIP test data not found: ${d:-MMPATH_TEST_DATA unset}/$f"; exit 0
        fi
    done
}
done_testing() {
    [ "$T_FAIL" -eq 0 ]
}
