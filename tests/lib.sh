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

# The time as the clients of tests/clients.py print it.
now() { date +%s.%N; }

# after_remap LOG T0 NAME: seconds from T0 to the first answer from NAME in a
# tests/clients.py LOG, and the errors and timeouts in between; waits up to 3 s.
after_remap() {
    local log=$1 t0=$2 name=$3 result
    for _ in $(seq 1 30); do
        result=$(awk -v t0="$t0" -v name="$name" '
            $1 < t0 { next }
            $2 == name { printf "%.3f %d\n", $1 - t0, bad; found = 1; exit }
            $2 == "error" || $2 == "timeout" { bad++ }
            END { if (!found) exit 1 }' "$log") && { echo "$result"; return 0; }
        sleep 0.1
    done
    echo "none"
}

# np COMMAND ARGS...: the CLI under test on this test's pin directory.
np() { "$NODEPORT" "$1" --pin-dir "$PIN" "${@:2}"; }
# np_node COMMAND ARGS...: the same in the node's namespace, whose sockets a
# write ends and whose addresses it sees.
np_node() { topo_in node "$NODEPORT" "$1" --pin-dir "$PIN" "${@:2}"; }

# skip WHY: ends the test as skipped. ctest reports exit 77 as "Skipped"
# (SKIP_RETURN_CODE on every shell test, tests/CMakeLists.txt): a machine or
# user without what the test needs is not a failure of nodeport.
skip() {
    echo "SKIP: $*"
    exit 77
}

# require NEED...: skips the test unless this machine and user have each NEED.
# Checked once, at the top of the test, before it makes anything.
#   root      uid 0: namespaces, cgroups, mounts, BPF
#   bpffs     a bpffs mounted at /sys/fs/bpf (pins)
#   btf       kernel BTF (/sys/kernel/btf/vmlinux): the socket iterators' CO-RE
#   cgroup2   a cgroup v2 mount (the socket hooks attach to a child cgroup)
#   datapath  what `nodeport load` in a test namespace needs: all four above
#   tcx       tcx attach points (Linux >= 6.6), for tests that ask for tcx
#   sock_destroy  bpf_sock_destroy and the socket iterators (Linux >= 6.5)
#   writable DIR  DIR writable by this user (a build directory written into)
require() {
    while [ $# -gt 0 ]; do
        case $1 in
            root) [ "$(id -u)" -eq 0 ] || skip "needs root (namespaces, cgroups, mounts, BPF), running as uid $(id -u)" ;;
            bpffs) [ "$(stat -f -c %T /sys/fs/bpf 2>/dev/null)" = bpf_fs ] || skip "no bpffs mounted at /sys/fs/bpf" ;;
            btf) [ -r /sys/kernel/btf/vmlinux ] || skip "no kernel BTF at /sys/kernel/btf/vmlinux" ;;
            cgroup2) [ -n "$(_cgroup2_root)" ] || skip "no cgroup v2 mount (the socket hooks attach to a cgroup v2)" ;;
            datapath) require root bpffs btf cgroup2 ;;
            # A kernel feature is in its BTF by name: the enum value that
            # names the attach type, the kfunc itself. Cheaper and surer than
            # reading the version.
            tcx) _kernel_has BPF_TCX_INGRESS || skip "the kernel has no tcx attach points (Linux >= 6.6)" ;;
            sock_destroy) _kernel_has bpf_sock_destroy || skip "the kernel has no bpf_sock_destroy (Linux >= 6.5)" ;;
            writable)
                [ -w "$2" ] || skip "$2 is not writable by uid $(id -u)"
                shift
                ;;
            *)
                echo "require: unknown need '$1'" >&2
                exit 1
                ;;
        esac
        shift
    done
}

_kernel_has() { grep -qaF "$1" /sys/kernel/btf/vmlinux 2>/dev/null; }
_cgroup2_root() { (topo_init probe && echo "$TOPO_CGROUP_ROOT"); }  # a subshell: TOPO stays unset

# The name the tests used before `require`, kept for tests written against it: root only.
require_root() { require root; }

# wait_for SECONDS COMMAND...: until COMMAND succeeds, polled every 0.1 s;
# fails when it never did.
wait_for() {
    local tries=$(($1 * 10))
    shift
    for _ in $(seq 1 "$tries"); do "$@" && return 0; sleep 0.1; done
    return 1
}
