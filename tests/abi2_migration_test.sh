#!/usr/bin/env bash
# Upgrading a node that runs a nodeport of map ABI 2 (built here from the git
# history: the parent of the commit that introduced ABI 3) to this build,
# under traffic: `load` moves the flow tables to ABI 3's (and 4's) layout, keeps every
# mapping, and the established external connections go on with their flows
# migrated (not picked up); no new connection fails. Beside it, the same
# client straight to the sandbox. Then the switch itself, step by step: the
# CLI with test hooks (the second argument) pauses the load at each.
set -u
NODEPORT=$1
HOOKS=$2
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
    for pid in ${LOAD_PID:-} ${CLIENT_PID:-} ${SPEAKER_PID:-}; do kill "$pid" 2>/dev/null; done
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
mappings() { jq -c 'map(del(.connections, .mapped, .family)) | sort_by(.proto, .port)'; }
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
expect_match "and says it migrated the flows" "migrated [1-9][0-9]* flows from map ABI v2 to v4" "$out"
mark_traffic_window
# As in abi_migration_test: long enough for a handshake begun between the
# two switches to complete with the client's retransmitted SYN; no connection
# may fail.
sleep 3
stop_traffic

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
expect_match "naming the map ABI" "map ABI v4" "$out"
expect_match "unload removes every pin" "^unloaded $PIN " "$(new unload)"
expect_eq "nothing is left of the pin directory" no "$([ -e "$PIN" ] && echo yes || echo no)"

# --- The switch: a connection the ABI 2 programs made after their flows were
# copied, whose first packet after the switch is the sandbox's. Both TC
# programs switched at once and the flows copied after, that reply left
# untranslated and the client reset the connection. ---
old load --cgroup "$TOPO_CGROUP" --iface ext0 >/dev/null
old set tcp/7100 "$SB1:7100" --owner sb-1 >/dev/null
# A server that speaks first, when told to.
topo_in sb1 python3 -c '
import os, socket, sys, time
conn, _ = socket.create_server(("", 7100)).accept()
for _ in range(600):
    if os.path.exists(sys.argv[1]):
        break
    time.sleep(0.05)
conn.sendall(b"first words\n")
time.sleep(5)
' "$WORK/speak" >/dev/null 2>&1 &
SPEAKER_PID=$!
topo_wait_listen sb1 7100
NODEPORT_TEST_HOOK=pause:load:flows_copied,pause:load:tc nsenter --net="/run/netns/$(topo_ns node)" \
    "$HOOKS" load --pin-dir "$PIN" --cgroup "$TOPO_CGROUP" --iface ext0 >"$WORK/load.out" 2>"$WORK/load.err" &
LOAD_PID=$!
wait_for 60 grep -q "paused at load:flows_copied" "$WORK/load.err"
expect_eq "the load pauses with the flows copied, the ABI 2 programs still attached" 0 $?
topo_in client python3 -c '
import socket, sys
s = socket.create_connection((sys.argv[1], 7100), timeout=5)
print("connected", flush=True)
try:
    print(s.makefile().readline().strip() or "closed", flush=True)
except OSError as e:
    print(type(e).__name__, flush=True)
' "$TOPO_NODE_EXT_IP" >"$WORK/first.out" 2>&1 &
CLIENT_PID=$!
wait_for 5 grep -q connected "$WORK/first.out"
expect_eq "the ABI 2 programs make a connection" connected "$(head -n 1 "$WORK/first.out")"
kill -USR1 "$LOAD_PID"
wait_for 30 grep -q "paused at load:tc" "$WORK/load.err"
expect_eq "the load pauses again with every TC program switched" 0 $?
touch "$WORK/speak"
wait "$CLIENT_PID"
CLIENT_PID=""
expect_eq "the sandbox's first words, sent after the switch, reach the client" "first words" \
    "$(tail -n 1 "$WORK/first.out")"
kill -USR1 "$LOAD_PID"
wait "$LOAD_PID"
expect_eq "then the load exits 0" 0 $?
LOAD_PID=""
wait "$SPEAKER_PID" 2>/dev/null
SPEAKER_PID=""
expect_match "unload removes every pin" "^unloaded $PIN " "$(new unload)"
finish
