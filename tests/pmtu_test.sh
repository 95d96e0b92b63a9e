#!/usr/bin/env bash
# Path MTU discovery through a node port, beside its no-NAT baseline (the
# same client straight to the sandbox's address, routed through the node):
#   download  a client behind a router whose link to it is 1280 bytes: the
#             router's "fragmentation needed" about the sandbox's segments,
#             addressed to <node-ip>, must reach the sandbox (np_tc_ingress
#             translates it back);
#   upload    sandboxes on a bridge with MTU 1400: the node's own
#             "fragmentation needed" about the client's segments must name
#             <node-ip>:port inside, or the client cannot match it to its
#             connection (np_tc_egress translates it).
# Route caches (where path MTUs are learnt) are flushed before each transfer,
# so neither run profits from the other.
# FORWARD (argument 3): kernel or fib. FAMILY (argument 4): ipv4, or ipv6:
# the same over IPv6, where the errors are ICMPv6 "packet too big" (IPv6
# routers never fragment) and the router's link has IPv6's minimum MTU.
set -u
NODEPORT=$1
CASE=$2
FORWARD=${3:-kernel}
FAMILY=${4:-ipv4}
. "$(dirname "$0")/lib.sh"
require datapath

test_begin "pmtu$CASE"
BULK="$TESTS_DIR/bulk.py"
PORT=8800
SIZE=200000
NODE_IP=$TOPO_NODE_EXT_IP

topo_node
case $CASE in
    download) topo_client_behind_router 1280 ;;
    upload) topo_client ;;
    *) echo "usage: pmtu_test.sh NODEPORT download|upload [kernel|fib] [ipv4|ipv6]" >&2; exit 2 ;;
esac
topo_cgroup
topo_sandbox 1
SB1=$(topo_sandbox_ip 1)
FAR_CLIENT=$TOPO_FAR_CLIENT_IP
if [ "$FAMILY" = ipv6 ]; then
    topo_node_ipv6
    topo_sandbox_ipv6 1
    if [ "$CASE" = download ]; then topo_router_ipv6; else topo_client_ipv6; fi
    SB1=$(topo_sandbox_ip6 1)
    NODE_IP=$TOPO_NODE_EXT_IP6
    FAR_CLIENT=$TOPO_FAR_CLIENT_IP6
fi
backend() { [ "$FAMILY" = ipv6 ] && echo "[$SB1]:$PORT" || echo "$SB1:$PORT"; }
[ "$CASE" = upload ] && ip -n "$TOPO-node" link set br0 mtu 1400  # on the bridge itself (FACTS.md)
topo_in sb1 python3 "$BULK" serve "$PORT" >/dev/null 2>&1 &
topo_wait_listen sb1 "$PORT"

out=$(topo_in node "$NODEPORT" load --pin-dir "$PIN" --cgroup "$TOPO_CGROUP" --iface ext0 --forward "$FORWARD" 2>&1)
expect_eq "load --iface ext0 --forward $FORWARD exits 0" 0 $?
np set "tcp/$PORT" "$(backend)" --owner sb-1 >/dev/null

flush_route_caches() {
    local ns
    for ns in client node sb1 $([ "$CASE" = download ] && echo router); do
        topo_in "$ns" ip "$([ "$FAMILY" = ipv6 ] && echo -6 || echo -4)" route flush cache
    done
}
transfer() {  # transfer ADDRESS: the case's 200 kB transfer from the client
    flush_route_caches
    if [ "$CASE" = download ]; then
        topo_in client python3 "$BULK" get "$1" "$PORT" "$SIZE"
    else
        topo_in client python3 "$BULK" put "$1" "$PORT" "$SIZE"
    fi
}
want=$([ "$CASE" = download ] && echo "$SIZE intact" || echo "got $SIZE intact")
if [ "$CASE" = download ]; then
    learner=sb1 peer=$FAR_CLIENT mtu=1280
else
    learner=client peer=$SB1 mtu=1400
fi
# The sender's route to the receiver after a transfer: "mtu N" once it has
# learnt the path MTU from an error it matched to its connection.
learnt_mtu() { topo_in "$learner" ip route get "$1" | grep -o 'mtu [0-9]*'; }

expect_eq "baseline: 200 kB $CASE straight to the sandbox's address" "$want" "$(transfer "$SB1")"
expect_eq "baseline: the sender learnt the path MTU" "mtu $mtu" "$(learnt_mtu "$peer")"
expect_eq "200 kB $CASE through <node-ip>:$PORT" "$want" "$(transfer "$NODE_IP")"
if [ "$CASE" = download ]; then
    expect_eq "the sandbox learnt the path MTU from the router's error" "mtu $mtu" "$(learnt_mtu "$peer")"
    expect_eq "the node passed the error on instead of keeping it: it learnt no path MTU itself" "" \
        "$(topo_in node ip route get "$peer" | grep -o 'mtu [0-9]*')"
else
    expect_eq "the client learnt the path MTU to <node-ip> from the node's error" "mtu $mtu" "$(learnt_mtu "$NODE_IP")"
fi
finish
