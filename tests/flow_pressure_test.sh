#!/usr/bin/env bash
# Table pressure: an idle established TCP connection through the node port
# keeps working while a UDP flood from many source addresses and ports and
# 200,000 closed TCP connections pass through nodeport. UDP flows and TCP
# handshakes live in tables of their own, and a closed connection's final ACK
# (or its RST) ends its flow at once (include/nodeport/abi.h), so none of them
# can push the live connection's flow out.
set -u
NODEPORT=$1
BENCH_BIN=${2:-}  # where np-connbench and np-echo-server were built (bench/); none: ctest drops an empty argument
. "$(dirname "$0")/lib.sh"
require datapath
# The churn and the echo server are bench/'s load generator and server, which
# a build makes only with -DNODEPORT_BUILD_BENCH=ON (scripts/build.sh does).
[ -x "$BENCH_BIN/np-connbench" ] && [ -x "$BENCH_BIN/np-echo-server" ] ||
    skip "np-connbench and np-echo-server are not built: configure with -DNODEPORT_BUILD_BENCH=ON"

test_begin press
CLIENTS="$TESTS_DIR/clients.py"
NODE_IP=$TOPO_NODE_EXT_IP
CLIENT_IP=$TOPO_CLIENT_IP
on_cleanup() {
    [ -n "${LONG_PID:-}" ] && { kill "$LONG_PID"; wait "$LONG_PID"; } 2>/dev/null
}

topo_node
topo_client
topo_cgroup
np_node load --cgroup "$TOPO_CGROUP" --iface ext0 >/dev/null || { fail "load"; finish; exit 1; }

topo_sandbox 1
SB=$(topo_sandbox_ip 1)
topo_serve sb1 sb1 7000 --hold
topo_serve sb1 sb1 6667
topo_in sb1 "$BENCH_BIN/np-echo-server" --port 8080 --lifetime 300 >/dev/null 2>&1 &
topo_wait_listen sb1 8080
np_node set tcp/7000 "$SB:7000" >/dev/null
np_node set udp/6667 "$SB:6667" >/dev/null
np_node set tcp/8080 "$SB:8080" >/dev/null

coproc LONG { topo_in client python3 -u "$TESTS_DIR/long_client.py" "$NODE_IP" 7000; }
LONG_PID=$LONG_PID
read -r -t 5 line <&"${LONG[0]}"
expect_eq "the long-lived connection reaches the sandbox" "sb1 $CLIENT_IP" "$line"

# The client closes as soon as it has read the answer, often before the
# server's FIN arrives, so about a third of its sockets end in TIME_WAIT (60 s).
# At the ~2,200 connections/s of an idle machine, 102,000 connections need more
# than the 28,232 ports of the default range, straight to the sandbox as much
# as through the node port (measured: EADDRNOTAVAIL either way). A real load
# generator widens its port range and reuses TIME_WAIT ports (tcp_tw_reuse);
# so does this client, whose new SYNs then reuse the tuples of closed flows.
topo_in client sysctl -qw net.ipv4.ip_local_port_range="1024 65535" net.ipv4.tcp_tw_reuse=1

# churn CLOSE: short TCP connections through the node port until 100,000
# have closed (CLOSE fin: FIN both ways, the server closing first; rst: the
# client resets). A few may fail on this shared 2-CPU machine (a SYN dropped
# under load waits out the client's 2 s timeout): those are printed, and more
# than 2,000 of 102,000 attempts fail the test.
churn() {
    local args=(--target "$NODE_IP:8080" --count 102000 --concurrency 2 --duration 120 --warmup 0)
    [ "$1" = rst ] && args+=(--linger0)
    out=$(topo_in client "$BENCH_BIN/np-connbench" "${args[@]}")
    [ "$(jq .errors <<<"$out")" = 0 ] || echo "     $1 churn: $(jq -c '{connections, errors, error_kinds}' <<<"$out")"
    expect_eq "at least 100,000 TCP connections closed with $1 through the node port" yes \
        "$(jq -r 'if .connections >= 100000 then "yes" else "no: \(.connections) (\(.error_kinds))" end' <<<"$out")"
}
churn fin
churn rst

# UDP flood: 200,000 flows from 16 addresses, more than udp_flows holds.
SOURCES=()
for i in $(seq 100 115); do
    ip -n "$TOPO-client" addr add "10.200.0.$i/24" dev eth0
    SOURCES+=("10.200.0.$i")
done
sent=$(topo_in client python3 "$CLIENTS" udp-flood "$NODE_IP" 6667 200000 "${SOURCES[@]}")
expect_eq "the UDP flood sent 200,000 datagrams, each a new flow" 200000 "$sent"

sleep 15
left=$(np_node flows --json | jq -r '[.[] | select(.node == "'"$NODE_IP"':8080") | .state] | group_by(.) |
    map("\(length) \(.[0])") | join(", ")')
echo "     flows of the 200,000 closed connections left 15 s later: ${left:-none}"
# What may be left: flows picked up by a late ACK after their flow ended
# (picked-up), which idle out within the closing timeout. Never a live state,
# and no closed flow (the final ACK ends it).
flows_8080() { np_node flows --json | jq -r '.[] | select(.node == "'"$NODE_IP"':8080") | '"$1"; }
expect_eq "nothing of them is left live (established, syn-sent, fin-wait)" "" \
    "$(flows_8080 'select(.state != "picked-up") | .state' | sort | uniq -c)"
expect_eq "picked-up ones expire within the closing timeout (120 s), not the established one" "" \
    "$(flows_8080 'select(.state == "picked-up" and .expires_in_seconds > 120) | .expires_in_seconds')"

echo ping >&"${LONG[1]}"
read -r -t 5 line <&"${LONG[0]}"
expect_eq "the idle established connection still works" "sb1 ping" "$line"
expect_eq "its flow is listed as established" 1 \
    "$(np_node flows --json | jq '[.[] | select(.node == "'"$NODE_IP"':7000" and .state == "established")] | length')"

finish
