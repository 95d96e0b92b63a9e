#!/usr/bin/env bash
# An external interface without a link-layer header: a point-to-point tun link
# between the client and the node (tun is what WireGuard and ipip look like
# to TC, and is built into every kernel; tests/tun_wire.py carries its
# packets). The client reaches a sandbox through the node's address on that
# link, beside its baseline (the same client straight to the sandbox's
# address over the same link): `load` attaches the L3 build of the programs
# there and says so, as `status` does; with --forward fib the kernel routes
# what comes in there. An interface of a link type nodeport cannot read is
# refused by name with exit 2, nothing changed, and `--iface all` leaves it out.
set -u
NODEPORT=$1
. "$(dirname "$0")/lib.sh"
require datapath

test_begin l3
WIRE="$TESTS_DIR/tun_wire.py"
PROBE="$TESTS_DIR/probe.py"
PORT=6690
NODE_TUN_IP=10.210.0.1
CLIENT_TUN_IP=10.210.0.2
on_cleanup() {
    [ -n "${WIRE_PID:-}" ] && kill "$WIRE_PID" 2>/dev/null
    [ -n "${IB_PID:-}" ] && kill "$IB_PID" 2>/dev/null
    [ -n "${TMP:-}" ] && rm -rf "$TMP"
}

topo_node
topo_client
topo_cgroup
topo_sandbox 1
SB1=$(topo_sandbox_ip 1)
topo_serve sb1 sb1 "$PORT"

# start_tun OUTFILE ARGS...: tun_wire.py in the background; waits (5 s at
# most) for its "ready" and prints its pid.
start_tun() {
    local out=$1
    shift
    python3 "$WIRE" "$@" >"$out" 2>&1 &
    echo $!
    for _ in $(seq 1 50); do
        grep -q ready "$out" && return 0
        sleep 0.1
    done
}
TMP=$(mktemp -d)
WIRE_PID=$(start_tun "$TMP/wire" wire "/run/netns/$TOPO-node" tun0 "/run/netns/$TOPO-client" tun0)
expect_eq "the tun link between client and node is up" ready "$(cat "$TMP/wire")"
ip -n "$TOPO-node" addr add "$NODE_TUN_IP/30" dev tun0
ip -n "$TOPO-node" link set tun0 up
ip -n "$TOPO-client" addr add "$CLIENT_TUN_IP/30" dev tun0
ip -n "$TOPO-client" link set tun0 up
ip -n "$TOPO-client" route add 10.8.0.0/16 dev tun0

load() {  # load ARGS...: this test's load; prints its output
    topo_in node "$NODEPORT" load --pin-dir "$PIN" --cgroup "$TOPO_CGROUP" "$@" 2>&1
}
interfaces() {  # interfaces JQ: status --json's interfaces, read in the node's namespace
    topo_in node "$NODEPORT" status --pin-dir "$PIN" --json | jq -r ".interfaces | $1"
}
out=$(load --iface tun0); rc=$?
expect_eq "load --iface tun0 exits 0" 0 "$rc"
expect_match "load attaches the L3 build to tun0 and says so" "external interfaces: tun0 \((tcx|clsact), l3\)" "$out"
expect_eq "status: tun0 has the L3 build" "tun0 l3 true" "$(interfaces '.[] | "\(.name) \(.link) \(.present)"')"
expect_match "the programs on tun0 are the L3 build" "np_l3_ingress.*np_l3_egress|np_l3_egress.*np_l3_ingress" \
    "$(topo_in node bpftool net show dev tun0 | tr '\n' ' ')"
for proto in tcp udp; do np set "$proto/$PORT" "$SB1:$PORT" --owner sb-1 >/dev/null; done

reach() {  # reach ROUND: TCP and UDP from the client over the tun link, baseline first
    expect_eq "$1: baseline, TCP straight to the sandbox's address" "sb1 $CLIENT_TUN_IP" \
        "$(topo_in client curl -s --http0.9 --max-time 3 "http://$SB1:$PORT/")"
    expect_eq "$1: TCP through <node-ip>:$PORT on the tun link, the client's address kept" "sb1 $CLIENT_TUN_IP" \
        "$(topo_in client curl -s --http0.9 --max-time 3 "http://$NODE_TUN_IP:$PORT/")"
    expect_eq "$1: baseline, UDP straight to the sandbox's address" "$SB1:$PORT sb1 $CLIENT_TUN_IP" \
        "$(topo_in client python3 "$PROBE" udp "$SB1" "$PORT")"
    expect_eq "$1: UDP through <node-ip>:$PORT, the answer from there" "$NODE_TUN_IP:$PORT sb1 $CLIENT_TUN_IP" \
        "$(topo_in client python3 "$PROBE" udp "$NODE_TUN_IP" "$PORT")"
}
reach "--forward kernel"
out=$(load --iface tun0 --forward fib); rc=$?
expect_eq "load --iface tun0 --forward fib exits 0" 0 "$rc"
reach "--forward fib"

# An interface whose link type is neither Ethernet nor none (a tun device set
# to InfiniBand's, 32): refused by name, exit 2, nothing changed.
IB_PID=$(start_tun "$TMP/ib" hold "/run/netns/$TOPO-node" ib0 32)
expect_eq "an interface of link type infiniband exists" ready "$(cat "$TMP/ib")"
before=$(interfaces 'tostring')
out=$(load --iface tun0 --iface ib0); rc=$?
expect_eq "load --iface ib0 exits 2" 2 "$rc"
expect_match "naming the interface and its link type" "iface.*'ib0' is an interface of infiniband" "$out"
expect_eq "nothing changed" "$before" "$(interfaces 'tostring')"
out=$(load --iface all --exclude br0); rc=$?
expect_eq "load --iface all exits 0" 0 "$rc"
expect_eq "--iface all attaches ext0 and tun0, each its build, and leaves ib0 out" "ext0:ethernet tun0:l3" \
    "$(interfaces '[.[] | "\(.name):\(.link)"] | sort | join(" ")')"
reach "after --iface all"

finish
