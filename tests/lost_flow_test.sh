#!/usr/bin/env bash
# A connection through the node port whose flow nodeport lost, as conntrack
# would carry it: after `nodeport flows --flush` (or an eviction), and after
# 2,000 blind RSTs (random sequence numbers, the connection's 4-tuple), and
# after 1,200,000 SYNs from spoofed sources, an established external
# connection goes on: loose pick-up brings its next segment to the same
# sandbox after a flush, RSTs outside the window do not touch the flow at
# all, and the SYNs only push out each other. A connection straight to the
# sandbox keeps working when the client connects through the node port from
# the same port. Each case beside its baseline: the same
# client connected straight to the sandbox's address, routed through the node.
set -u
NODEPORT=$1
. "$(dirname "$0")/lib.sh"
require datapath tcx

test_begin lost
PORT=7000
NODE_IP=$TOPO_NODE_EXT_IP
CLIENT_IP=$TOPO_CLIENT_IP
PIDS=()
WORK=$(mktemp -d)
on_cleanup() { [ "${#PIDS[@]}" -gt 0 ] && kill "${PIDS[@]}" 2>/dev/null; rm -rf "$WORK"; }

topo_node
topo_client
topo_cgroup
topo_in node "$NODEPORT" load --pin-dir "$PIN" --cgroup "$TOPO_CGROUP" --iface ext0 >/dev/null ||
    { fail "load"; finish; exit 1; }
topo_sandbox 1 && topo_serve sb1 sb1 "$PORT" --hold
SB1=$(topo_sandbox_ip 1)
np set "tcp/$PORT" "$SB1:$PORT" --owner sb-1 >/dev/null

# connect NAME IP [LOCAL-PORT]: a long-lived connection from the client to
# IP:$PORT, fed through a FIFO (file descriptor $FD_NAME), its answers in
# $WORK/NAME.out.
connect() {
    local name=$1 ip=$2 local_port=${3:-}
    mkfifo "$WORK/$name.in"
    # nsenter itself in the background (not topo_in, a function run in a
    # subshell), so that $! is the client and killing it closes the connection.
    nsenter --net="/run/netns/$TOPO-client" python3 -u "$TESTS_DIR/long_client.py" "$ip" "$PORT" $local_port \
        <"$WORK/$name.in" >"$WORK/$name.out" 2>&1 &
    PIDS+=($!)
    exec {fd}>"$WORK/$name.in"
    eval "FD_$name=$fd"
}
# say NAME LINE: sends LINE on the connection, prints its answer (3 s at most).
say() {
    local name=$1 line=$2 fd before
    eval "fd=\$FD_$name"
    before=$(wc -l <"$WORK/$name.out")
    echo "$line" >&"$fd"
    for _ in $(seq 1 30); do
        [ "$(wc -l <"$WORK/$name.out")" -gt "$before" ] && { tail -n 1 "$WORK/$name.out"; return; }
        sleep 0.1
    done
    echo "no answer"
}
# client_port IP: the client's source port of its connection to IP:$PORT.
client_port() {
    topo_in client ss -Htn state established "dst $1:$PORT" | awk '{ split($3, a, ":"); print a[2] }' | head -n 1
}

connect through "$NODE_IP"
connect direct "$SB1"
expect_eq "through the node port: the sandbox answers" "sb1 ping" "$(say through ping)"
expect_eq "and saw the client's IP" "sb1 $CLIENT_IP" "$(head -n 1 "$WORK/through.out")"
expect_eq "baseline, straight to the sandbox: it answers" "sb1 ping" "$(say direct ping)"
expect_eq "the connection has its flow" 1 \
    "$(np flows --json | jq '[.[] | select(.proto == "tcp" and .state == "established")] | length')"

# --- The flow table flushed ---
np flows --flush >/dev/null
expect_eq "after flows --flush the connection goes on, to the same sandbox" "sb1 after-flush" "$(say through after-flush)"
expect_eq "baseline after the flush" "sb1 after-flush" "$(say direct after-flush)"
expect_eq "its next segment picked the flow up again" 1 \
    "$(np flows --json | jq '[.[] | select(.proto == "tcp" and .state == "picked-up")] | length')"

# --- 2,000 blind RSTs with the connection's 4-tuple ---
# A connection of its own, so this case does not depend on the one above.
kill "${PIDS[0]}" 2>/dev/null
wait "${PIDS[0]}" 2>/dev/null
connect rst "$NODE_IP"
expect_eq "a second connection through the node port" "sb1 ping" "$(say rst ping)"
port_through=$(client_port "$NODE_IP")
port_direct=$(client_port "$SB1")
expect_eq "2,000 blind RSTs sent toward the node port" 2000 \
    "$(topo_in client python3 "$TESTS_DIR/blind_rst.py" "$CLIENT_IP" "$port_through" "$NODE_IP" "$PORT" 2000)"
expect_eq "baseline: 2,000 blind RSTs sent toward the sandbox" 2000 \
    "$(topo_in client python3 "$TESTS_DIR/blind_rst.py" "$CLIENT_IP" "$port_direct" "$SB1" "$PORT" 2000)"
# Out of the window, the RSTs passed untranslated and changed nothing: the
# flow was never deleted, so the connection needs no pick-up.
expect_eq "after the RSTs its flow is still the established one, not picked up" established \
    "$(np flows --json | jq -r --arg c "$CLIENT_IP:$port_through" '.[] | select(.client == $c) | .state')"
expect_eq "after the RSTs the connection through the node port goes on" "sb1 after-rst" "$(say rst after-rst)"
expect_eq "baseline after the RSTs" "sb1 after-rst" "$(say direct after-rst)"

# --- 1,200,000 SYNs from 65,536 spoofed sources to the same node port ---
# Handshakes live in `half_open_flows` until the client's ACK of the SYN-ACK,
# so the flood evicts only other handshakes, never an established flow. The
# sandbox's SYN-ACKs go back toward the flood's sources and die there.
ip -n "$TOPO-node" route add 10.201.0.0/16 via "$CLIENT_IP"
sent=$(topo_in client python3 "$TESTS_DIR/syn_flood.py" 10.201.0.0 "$NODE_IP" "$PORT" 1200000)
expect_eq "at least 1,190,000 spoofed SYNs sent to the node port" yes "$([ "${sent:-0}" -ge 1190000 ] && echo yes || echo "no: $sent")"
expect_eq "the flood filled half_open_flows (more than 60,000 handshakes recorded)" yes \
    "$(np status --json | jq -r 'if .flows.tcp_half_open > 60000 then "yes" else "no: \(.flows.tcp_half_open)" end')"
expect_eq "after the flood the connection's flow is still the established one" established \
    "$(np flows --json | jq -r --arg c "$CLIENT_IP:$port_through" '.[] | select(.client == $c) | .state')"
expect_eq "after the flood the connection through the node port goes on" "sb1 after-flood" "$(say rst after-flood)"
expect_eq "baseline after the flood" "sb1 after-flood" "$(say direct after-flood)"

# --- The same client port straight to the sandbox and through the node port ---
# At the sandbox the second connection has the first one's 4-tuple: the
# backend answers its SYN with the first connection's challenge ACK, which
# must reach that connection untouched (not be taken for the handshake's and
# translated). The second connection cannot be made. (Through iptables DNAT,
# measured, it is made and the first one ends; straight to the sandbox the
# node refuses it.)
connect clash "$SB1" 41000
expect_eq "a connection straight to the sandbox from client port 41000" "sb1 ping" "$(say clash ping)"
expect_eq "a connection through the node port from port 41000 too is not made (the backend's tuple is taken)" \
    timeout "$(topo_in client python3 -c '
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("", 41000))
s.settimeout(3)
try:
    s.connect((sys.argv[1], int(sys.argv[2])))
    print("connected")
except socket.timeout:
    print("timeout")
except OSError as e:
    print(e.__class__.__name__)' "$NODE_IP" "$PORT")"
expect_eq "the connection straight to the sandbox goes on" "sb1 after-clash" "$(say clash after-clash)"

# --- An accept queue that overflows: the backend drops the client's ACK and
# retransmits its SYN-ACK, which must still be translated ---
topo_in sb1 python3 "$TESTS_DIR/slow_accept.py" serve 7100 >/dev/null 2>&1 &
PIDS+=($!)
topo_wait_listen sb1 7100
np set tcp/7100 "$SB1:7100" --owner sb-1 >/dev/null
expect_eq "12 connections at once to a listen(1) server that accepts after 3 s, through the node port" 12 \
    "$(topo_in client python3 "$TESTS_DIR/slow_accept.py" connect "$NODE_IP" 7100 12)"
expect_eq "baseline: the same straight to the sandbox" 12 \
    "$(topo_in client python3 "$TESTS_DIR/slow_accept.py" connect "$SB1" 7100 12)"

finish
