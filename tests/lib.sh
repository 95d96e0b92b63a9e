# Helpers for the shell tests: source after setting NODEPORT (the CLI under test).
# Each check prints one line; the test ends with "N passed, N failed" and exits
# non-zero when anything failed. Clean-up runs from an EXIT trap, also on failure.

TESTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$TESTS_DIR/../scripts/topology.sh"

PASSED=0
FAILED=0

pass() { PASSED=$((PASSED + 1)); echo "ok   $*"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL $*"; }

# expect_eq DESCRIPTION EXPECTED ACTUAL
expect_eq() {
    if [ "$2" = "$3" ]; then pass "$1"; else fail "$1: expected '$2', got '$3'"; fi
}

# expect_match DESCRIPTION REGEX ACTUAL
expect_match() {
    if [[ "$3" =~ $2 ]]; then pass "$1"; else fail "$1: '$3' does not match /$2/"; fi
}

finish() {
    echo "$PASSED passed, $FAILED failed"
    [ "$FAILED" -eq 0 ]
}

require_root() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "needs root (BPF, namespaces, cgroups)" >&2
        exit 1
    fi
}
