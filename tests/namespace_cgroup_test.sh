#!/usr/bin/env bash
# The commands bound to the network namespace of the load (load, refresh,
# unload) from another namespace, and after that namespace was deleted; and a
# cgroup removed and made again at the same path.
set -u
NODEPORT=$1
. "$(dirname "$0")/lib.sh"
require datapath

test_begin nscg
PIN2=$PIN-gone
CG2=""
on_cleanup() {
    "$NODEPORT" unload --pin-dir "$PIN2" >/dev/null 2>&1
    rm -rf "$PIN2"
    [ -n "$CG2" ] && rmdir "$CG2" 2>/dev/null
}
topo_node
topo_client
topo_cgroup
topo_sandbox 1
topo_serve sb1 sb1 7000
SB1=$(topo_sandbox_ip 1)
_topo_add_ns other
in_node() { topo_in node "$NODEPORT" "$1" --pin-dir "$PIN" "${@:2}"; }
in_other() { topo_in other "$NODEPORT" "$1" --pin-dir "$PIN" "${@:2}"; }
node_addrs() { bpftool -j map dump pinned "$PIN/node_addrs" | jq -c '[.[].formatted.key.addr_be[0]] | sort'; }
hooks_on() { bpftool -j cgroup show "$1" | jq -s 'add // [] | length'; }  # bpftool prints nothing for none
prog_ids() { topo_in node bpftool -j net show dev ext0 | jq -c '[.[0].tc[].id]'; }

in_node load --cgroup "$TOPO_CGROUP" --iface ext0 --tc-attach clsact >/dev/null || { fail "load"; finish; exit; }
in_node set tcp/7000 "$SB1:7000" >/dev/null
ADDRS=$(node_addrs)
IDS=$(prog_ids)

# --- Another network namespace: refused before anything changes, naming both ---
out=$(in_other refresh 2>&1)
expect_eq "refresh from another namespace exits 1" 1 $?
expect_match "and names both namespaces" \
    "loaded in network namespace '$TOPO-node' .*refresh runs in network namespace '$TOPO-other'" "$out"
expect_eq "the node addresses are untouched" "$ADDRS" "$(node_addrs)"
out=$(in_other load --cgroup "$TOPO_CGROUP" --local-only 2>&1)
expect_eq "load from another namespace exits 1" 1 $?
expect_match "and says where to run it" "loaded in network namespace '$TOPO-node'.*nsenter --net=/run/netns/$TOPO-node" "$out"
expect_eq "the node addresses and programs are untouched" "$ADDRS $IDS" "$(node_addrs) $(prog_ids)"
expect_eq "traffic still flows" "sb1 $TOPO_CLIENT_IP" \
    "$(topo_in client python3 "$TESTS_DIR/probe.py" tcp "$TOPO_NODE_EXT_IP" 7000 | awk '{print $2, $3}')"

# --- A recreated cgroup is attached again, mappings kept ---
rmdir "$TOPO_CGROUP" && mkdir "$TOPO_CGROUP"
expect_eq "the hooks went with the removed cgroup" 0 "$(hooks_on "$TOPO_CGROUP")"
out=$(in_node load --cgroup "$TOPO_CGROUP" --iface ext0 --tc-attach clsact 2>&1)
rc=$?; [ "$rc" = 0 ] || echo "load output: $out" >&2
expect_eq "load on the recreated cgroup exits 0" 0 "$rc"
expect_eq "it attaches the eight socket hooks there" 8 "$(hooks_on "$TOPO_CGROUP")"
expect_eq "the mapping is kept" "tcp/7000 -> $SB1:7000" "$(in_node get tcp/7000)"
expect_eq "a node process in the new cgroup reaches the sandbox through 127.0.0.1" "127.0.0.1:7000 sb1" \
    "$(topo_in_cgroup node python3 "$TESTS_DIR/probe.py" tcp 127.0.0.1 7000 | awk '{print $1, $2}')"

# --- unload from another namespace enters the recorded one ---
out=$(in_other unload 2>&1)
expect_eq "unload from another namespace exits 0" 0 $?
expect_match "and removed the clsact filters in the node's namespace" "clsact filters removed from ext0" "$out"
expect_eq "no filter and no qdisc left on ext0" 0 "$(topo_in node tc qdisc show dev ext0 | grep -c clsact)"
expect_eq "no hook left on the cgroup" 0 "$(hooks_on "$TOPO_CGROUP")"
expect_eq "no pin left" no "$([ -e "$PIN" ] && echo yes || echo no)"

# --- The namespace of a clsact load deleted ---
_topo_add_ns gone
ip -n "$TOPO-gone" link add gone0 type veth peer name gone1
ip -n "$TOPO-gone" link set gone0 up
ip -n "$TOPO-gone" addr add 10.77.0.1/24 dev gone0
topo_in gone sysctl -qw net.ipv4.ip_forward=1
CG2="$TOPO_CGROUP_ROOT/$TOPO-gone"
mkdir -p "$CG2"
topo_in gone "$NODEPORT" load --pin-dir "$PIN2" --cgroup "$CG2" --iface gone0 --tc-attach clsact >/dev/null ||
    fail "load in the namespace to delete"
ip netns del "$TOPO-gone"
out=$("$NODEPORT" load --pin-dir "$PIN2" --cgroup "$CG2" --local-only 2>&1)
expect_eq "load after its namespace was deleted exits 1" 1 $?
expect_match "and says to unload" "no longer exists or that no process uses .*run unload, which removes what remains" "$out"
out=$("$NODEPORT" unload --pin-dir "$PIN2" 2>&1)
expect_eq "unload after the namespace was deleted exits 0" 0 $?
expect_match "and says what it could not reach" "warning: clsact filters on gone0 .*not removed; they go with that namespace" "$out"
expect_eq "the cgroup hooks are gone" 0 "$(hooks_on "$CG2")"
expect_eq "no pin left" no "$([ -e "$PIN2" ] && echo yes || echo no)"
finish
