#!/usr/bin/env bash
# Upgrading a node that runs a nodeport of map ABI 2 (built here from the git
# history: the parent of the commit that introduced ABI 3) to this build,
# under traffic: `load` moves the flow tables to ABI 3's layout, keeps every
# mapping, and the established external connections go on with their flows
# migrated (not picked up); no new connection fails. Beside it, the same
# client straight to the sandbox.
set -u
NODEPORT=$1
. "$(dirname "$0")/lib.sh"
. "$TESTS_DIR/upgrade_lib.sh"
require datapath
require_abi_history 3

test_begin abi2mig
WORK=$(mktemp -d /tmp/np-abi2mig.XXXXXX)
on_cleanup() {
    stop_traffic_on_cleanup
    [ -n "${LONG_PID:-}" ] && { kill "$LONG_PID"; wait "$LONG_PID"; } 2>/dev/null
    [ -n "${DIRECT_PID:-}" ] && { kill "$DIRECT_PID"; wait "$DIRECT_PID"; } 2>/dev/null
    [ -x "${OLD:-}" ] && topo_in node "$OLD" unload --pin-dir "$PIN" >/dev/null 2>&1
    rm -rf "$WORK"
}

# NODEPORT_ABI2_CLI: an ABI 2 nodeport built already (a loaded machine takes
# more than ten minutes to build one); otherwise built here.
if [ -x "${NODEPORT_ABI2_CLI:-}" ]; then
    OLD=$NODEPORT_ABI2_CLI
else
    OLD=$(cli_before_abi 3) || { fail "the ABI 2 commit builds"; finish; exit; }
fi
expect_match "the ABI 2 build says so" "map ABI 2," "$("$OLD" --version)"

upgrade_node

old load --cgroup "$TOPO_CGROUP" --iface ext0 >/dev/null || { fail "ABI 2 load"; finish; exit; }
old set tcp/7000 "$SB1:7000" --owner sb-1 >/dev/null
old set udp/7000 "$SB1:7000" --owner sb-1 >/dev/null
# The mappings only: the connection counts move with the traffic, and the
# ABI 2 build of the history may predate the keys `connections` and `mapped`.
mappings() { jq -c 'map(del(.connections, .mapped)) | sort_by(.proto, .port)'; }
BEFORE=$(old list --json | mappings)

# An idle established connection through the node port, and its baseline.
coproc LONG { topo_in client python3 -u "$TESTS_DIR/long_client.py" "$TOPO_NODE_EXT_IP" 7000; }
LONG_PID=$LONG_PID
# The baseline's client port is reserved, so that none of start_traffic's
# connections through the node port takes it: at the sandbox that would be
# the same 4-tuple, a clash no DNAT resolves: the new connection would time
# out (lost_flow_test; iptables DNAT ends the old one instead).
topo_in client sysctl -qw net.ipv4.ip_local_reserved_ports=40999
coproc DIRECT { topo_in client python3 -u "$TESTS_DIR/long_client.py" "$SB1" 7000 40999; }
DIRECT_PID=$DIRECT_PID
read -r -t 20 line <&"${LONG[0]}"
expect_eq "a connection through the node port under ABI 2" "sb1 $TOPO_CLIENT_IP" "$line"
read -r -t 20 line <&"${DIRECT[0]}"
expect_eq "baseline: the same client straight to the sandbox" "sb1 $TOPO_CLIENT_IP" "$line"
CLIENT_PORT=$(topo_in client ss -Htn state established dst "$TOPO_NODE_EXT_IP" | awk '{print $3}' | sed 's/.*://' | head -1)

start_traffic 7000
mark_traffic_window
out=$(new load --cgroup "$TOPO_CGROUP" --iface ext0 2>&1)
expect_eq "load of this build over ABI 2 exits 0" 0 "$?"
expect_match "and says it migrated the flows" "migrated [1-9][0-9]* flows from map ABI v2 to v3" "$out"
mark_traffic_window
# As in abi_migration_test: long enough after the switch for a client whose
# attempt it cut to try again, and one external connection begun at the TC
# switch may fail (docs/limitations.md), no other.
sleep 3
TOLERATED_FAILURES_external=1 stop_traffic

expect_eq "every mapping is kept" "$BEFORE" "$(new list --json | mappings)"
expect_eq "no ABI 2 pin is left (flows_abi2, udp_flows_abi2, node_udp_abi2, closed_flows)" "" \
    "$(cd "$PIN" && ls -d flows_abi2 udp_flows_abi2 node_udp_abi2 closed_flows 2>/dev/null)"
expect_eq "the idle connection's flow was migrated, established (not picked up)" established \
    "$(new flows --json | jq -r --arg c "$TOPO_CLIENT_IP:$CLIENT_PORT" '.[] | select(.client == $c) | .state')"
echo ping >&"${LONG[1]}"
read -r -t 20 line <&"${LONG[0]}"
expect_eq "the idle connection through the node port goes on after the upgrade" "sb1 ping" "$line"
echo ping >&"${DIRECT[1]}"
read -r -t 20 line <&"${DIRECT[0]}"
expect_eq "baseline: so does the direct one" "sb1 ping" "$line"
out=$(old list 2>&1)
expect_eq "the ABI 2 CLI now refuses the pins" 1 "$?"
expect_match "naming the map ABI" "map ABI v3" "$out"
expect_match "unload removes every pin" "^unloaded $PIN " "$(new unload)"
expect_eq "nothing is left of the pin directory" no "$([ -e "$PIN" ] && echo yes || echo no)"
finish
