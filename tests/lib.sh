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

# test_begin NAME: namespaces named after NAME and this process, a private
# pin directory in $PIN, and an EXIT trap that unloads and removes all of it
# even when the test fails. A test may define on_cleanup for its own leftovers.
test_begin() {
    topo_init "np$1$$"
    PIN=/sys/fs/bpf/nodeport-$1-test-$$
    trap _test_cleanup EXIT
}

_test_cleanup() {
    if declare -F on_cleanup >/dev/null; then on_cleanup; fi
    # From the node namespace, where load ran (clsact filters are found by ifindex there).
    if [ -e "/run/netns/$TOPO-node" ]; then
        topo_in node "$NODEPORT" unload --pin-dir "$PIN" >/dev/null 2>&1
    fi
    rm -rf "$PIN"  # if unload failed: the pins must not outlive the test
    topo_cleanup
}

# np COMMAND ARGS...: the CLI under test on this test's pin directory.
np() { "$NODEPORT" "$1" --pin-dir "$PIN" "${@:2}"; }

require_root() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "needs root (BPF, namespaces, cgroups)" >&2
        exit 1
    fi
}
