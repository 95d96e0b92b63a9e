#!/usr/bin/env bash
# Local forwarding end to end: real servers in sandbox namespaces on a bridge,
# real clients (curl, nc, python) in the node namespace and in sandboxes, the
# socket hooks attached to a child cgroup this test creates.
set -u
NODEPORT=$1
. "$(dirname "$0")/lib.sh"
require datapath

test_begin local
PROBE="$TESTS_DIR/probe.py"
PORT=6667
NODE_IP=$TOPO_NODE_EXT_IP

topo_node
topo_client  # gives the node its external address $NODE_IP
topo_cgroup
probe() { local ns=$1; shift; topo_in_cgroup "$ns" python3 "$PROBE" "$@"; }
# What a node-side TCP client gets back: curl, as a user would check a port.
curl_from() { topo_in_cgroup "$1" curl -s --http0.9 --max-time 3 "http://$2/"; }

topo_in node "$NODEPORT" load --pin-dir "$PIN" --cgroup "$TOPO_CGROUP" --local-only >/dev/null || { fail "load"; finish; exit 1; }

sandbox() {  # sandbox N: a new sandbox serving its name on $PORT, TCP and UDP
    topo_sandbox "$1" && topo_serve "sb$1" "sb$1" "$PORT"
}
sandbox 1
SB1=$(topo_sandbox_ip 1)
np set "tcp/$PORT" "$SB1:$PORT" --owner sb-1 >/dev/null
np set "udp/$PORT" "$SB1:$PORT" --owner sb-1 >/dev/null

# --- From the node ---
expect_eq "curl 127.0.0.1:$PORT reaches the sandbox" "sb1 $TOPO_BRIDGE_IP" "$(curl_from node "127.0.0.1:$PORT")"
expect_eq "curl 127.0.0.2:$PORT (all of 127/8) reaches the sandbox" "sb1 $TOPO_BRIDGE_IP" "$(curl_from node "127.0.0.2:$PORT")"
expect_eq "nc <node-ip>:$PORT reaches the sandbox" "sb1 $TOPO_BRIDGE_IP" \
    "$(topo_in_cgroup node nc -w 3 "$NODE_IP" "$PORT" </dev/null)"
expect_eq "TCP peer seen by the app is the node address" "127.0.0.1:$PORT sb1 $TOPO_BRIDGE_IP" \
    "$(probe node tcp 127.0.0.1 "$PORT")"
expect_eq "UDP to 127.0.0.1: reply comes from the address sent to" "127.0.0.1:$PORT sb1 $TOPO_BRIDGE_IP" \
    "$(probe node udp 127.0.0.1 "$PORT")"
expect_eq "UDP to <node-ip>: reply comes from the address sent to" "$NODE_IP:$PORT sb1 $TOPO_BRIDGE_IP" \
    "$(probe node udp "$NODE_IP" "$PORT")"
expect_eq "connected UDP to 127.0.0.1: peer is the node address" "127.0.0.1:$PORT sb1 $TOPO_BRIDGE_IP" \
    "$(probe node udp-connected 127.0.0.1 "$PORT")"
expect_eq "nc -u to 127.0.0.1 gets the sandbox's answer" "sb1 $TOPO_BRIDGE_IP" \
    "$(echo hi | topo_in_cgroup node nc -u -w 1 127.0.0.1 "$PORT")"

# --- Dual-stack AF_INET6 sockets reaching IPv4 through ::ffff:a.b.c.d ---
# Java (by default) and .NET dual-mode sockets connect to 127.0.0.1 as
# ::ffff:127.0.0.1: the kernel runs connect6, not connect4. The old OUTPUT
# DNAT rule caught that flow; so must nodeport, and the application must see
# the address it used as its peer and as the source of UDP answers.
counts() { np stats "$1/$PORT" --json | jq -r '.ports[0] | "\(.local_connects) \(.local_sends)"'; }
read -r tcp_before _ <<<"$(counts tcp)"
read -r udp_connects_before udp_sends_before <<<"$(counts udp)"
expect_eq "AF_INET6 TCP to ::ffff:127.0.0.1 reaches the sandbox, peer as used" \
    "[::ffff:127.0.0.1]:$PORT sb1 $TOPO_BRIDGE_IP" "$(probe node tcp ::ffff:127.0.0.1 "$PORT")"
expect_eq "AF_INET6 TCP to ::ffff:<node-ip> reaches the sandbox, peer as used" \
    "[::ffff:$NODE_IP]:$PORT sb1 $TOPO_BRIDGE_IP" "$(probe node tcp "::ffff:$NODE_IP" "$PORT")"
expect_eq "AF_INET6 UDP to ::ffff:127.0.0.1: the answer comes from the address sent to" \
    "[::ffff:127.0.0.1]:$PORT sb1 $TOPO_BRIDGE_IP" "$(probe node udp ::ffff:127.0.0.1 "$PORT")"
expect_eq "AF_INET6 UDP to ::ffff:<node-ip>: the answer comes from the address sent to" \
    "[::ffff:$NODE_IP]:$PORT sb1 $TOPO_BRIDGE_IP" "$(probe node udp "::ffff:$NODE_IP" "$PORT")"
expect_eq "AF_INET6 connected UDP to ::ffff:127.0.0.1: peer as used" \
    "[::ffff:127.0.0.1]:$PORT sb1 $TOPO_BRIDGE_IP" "$(probe node udp-connected ::ffff:127.0.0.1 "$PORT")"
expect_eq "a sandbox reaches another via AF_INET6 ::ffff:<node-ip>" \
    "[::ffff:$NODE_IP]:$PORT sb1 $(topo_sandbox_ip 1)" "$(probe sb1 tcp "::ffff:$NODE_IP" "$PORT")"
# A Java 17 client, as the runtime's users run it, compiled once. Its
# baseline is the same client straight to the sandbox's address: a failure
# through the node port is nodeport's, not Java's or the topology's.
JAVA_CLASSES=$(mktemp -d)
on_cleanup() { rm -rf "$JAVA_CLASSES"; }
# -XX:-UsePerfData: no JVM leaves /tmp/hsperfdata_root behind.
javac -J-XX:-UsePerfData -d "$JAVA_CLASSES" "$TESTS_DIR/JavaProbe.java"
java_probe() {
    topo_in_cgroup "$1" java -XX:-UsePerfData -cp "$JAVA_CLASSES" JavaProbe "${@:2}" 2>&1 | tr '\n' ' ' | sed 's/ $//'
}
for mode in tcp udp udp-connected; do
    expect_eq "Java $mode straight to the sandbox (baseline)" "family inet6 $SB1:$PORT sb1 $TOPO_BRIDGE_IP" \
        "$(java_probe node "$mode" "$SB1" "$PORT")"
    expect_eq "Java $mode to 127.0.0.1:$PORT reaches the sandbox and sees 127.0.0.1" \
        "family inet6 127.0.0.1:$PORT sb1 $TOPO_BRIDGE_IP" "$(java_probe node "$mode" 127.0.0.1 "$PORT")"
    expect_eq "Java $mode to <node-ip>:$PORT reaches the sandbox" \
        "family inet6 $NODE_IP:$PORT sb1 $TOPO_BRIDGE_IP" "$(java_probe node "$mode" "$NODE_IP" "$PORT")"
done
read -r tcp_after _ <<<"$(counts tcp)"
read -r udp_connects_after udp_sends_after <<<"$(counts udp)"
expect_eq "the dual-stack translations are counted: 5 TCP connects, 3 connected UDP sockets, 4 datagrams" \
    "5 3 4" "$((tcp_after - tcp_before)) $((udp_connects_after - udp_connects_before)) $((udp_sends_after - udp_sends_before))"

# --- Unmapped ports and other destinations are untouched ---
topo_serve node node-local 7777
expect_eq "unmapped port 127.0.0.1:7777 reaches the node's own server" "node-local 127.0.0.1" \
    "$(curl_from node "127.0.0.1:7777")"
sandbox 2
SB2=$(topo_sandbox_ip 2)
expect_eq "a mapped port on another destination (sandbox 2's IP) is not translated" "sb2 $TOPO_BRIDGE_IP" \
    "$(curl_from node "$SB2:$PORT")"
out=$(topo_in node curl -s --http0.9 --max-time 3 "http://127.0.0.1:$PORT/"); rc=$?
expect_eq "a process outside the hooked cgroup is not translated (connection refused)" "7" "$rc"

# --- Sandboxes ---
expect_eq "127.0.0.1 inside a sandbox stays the sandbox's own" "sb2 127.0.0.1" "$(curl_from sb2 "127.0.0.1:$PORT")"
expect_eq "::ffff:127.0.0.1 inside a sandbox stays the sandbox's own" "[::ffff:127.0.0.1]:$PORT sb2 127.0.0.1" \
    "$(probe sb2 tcp ::ffff:127.0.0.1 "$PORT")"
expect_eq "a sandbox reaches another sandbox via <node-ip>:$PORT" "sb1 $SB2" "$(curl_from sb2 "$NODE_IP:$PORT")"
expect_eq "a sandbox reaches another via UDP <node-ip>:$PORT, reply from the node address" \
    "$NODE_IP:$PORT sb1 $SB2" "$(probe sb2 udp "$NODE_IP" "$PORT")"
expect_eq "a sandbox reaches itself via <node-ip>:$PORT" "sb1 $SB1" "$(curl_from sb1 "$NODE_IP:$PORT")"
topo_sandbox_del 2

# --- 25 deploy cycles on one node port ---
# Each cycle starts a new sandbox with a new IP, points the port at it with
# the new owner, destroys the old sandbox and runs its del --owner, which
# must leave the new sandbox's entry alone.
broken=""
for cycle in $(seq 1 25); do
    new=$((cycle + 100))
    prev=$([ "$cycle" -eq 1 ] && echo 1 || echo $((new - 1)))
    sandbox "$new"
    ip=$(topo_sandbox_ip "$new")
    np set "tcp/$PORT" "$ip:$PORT" --owner "sb-$new" >/dev/null
    np set "udp/$PORT" "$ip:$PORT" --owner "sb-$new" >/dev/null
    topo_sandbox_del "$prev"
    np del "tcp/$PORT" --owner "sb-$prev" >/dev/null
    np del "udp/$PORT" --owner "sb-$prev" >/dev/null
    got_lo=$(curl_from node "127.0.0.1:$PORT")
    got_ip=$(topo_in_cgroup node nc -w 3 "$NODE_IP" "$PORT" </dev/null)
    got_udp=$(probe node udp 127.0.0.1 "$PORT")
    want="sb$new $TOPO_BRIDGE_IP"
    if [ "$got_lo" != "$want" ] || [ "$got_ip" != "$want" ] || [ "$got_udp" != "127.0.0.1:$PORT $want" ]; then
        broken="$broken cycle $cycle: 127.0.0.1 '$got_lo', node-ip '$got_ip', udp '$got_udp';"
    fi
done
expect_eq "after each of 25 redeploys 127.0.0.1 and <node-ip> reach the live sandbox (TCP, UDP)" "" "$broken"
expect_eq "25 redeploys leave exactly one entry per protocol" 2 "$(np list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')"
np del "tcp/$PORT" --owner sb-124 >/dev/null
expect_eq "a late del --owner of an old sandbox leaves the port working" "sb125 $TOPO_BRIDGE_IP" \
    "$(curl_from node "127.0.0.1:$PORT")"

# --- del and unload ---
np del "tcp/$PORT" >/dev/null
topo_in_cgroup node curl -s --http0.9 --max-time 3 "http://127.0.0.1:$PORT/" >/dev/null
expect_eq "after del, 127.0.0.1:$PORT is no longer forwarded (refused)" 7 $?
np unload >/dev/null
expect_eq "unload leaves nothing attached to the cgroup" "" "$(bpftool cgroup show "$TOPO_CGROUP" | tail -n +2)"
expect_eq "unload leaves nothing pinned" no "$([ -e "$PIN" ] && echo yes || echo no)"
expect_eq "after unload, UDP to 127.0.0.1 is no longer forwarded" "error TimeoutError" "$(probe node udp 127.0.0.1 "$PORT" 2>&1 | head -c 200)"

finish
