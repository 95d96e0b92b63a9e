#!/usr/bin/env bash
# Fragmented UDP through a node port, beside its no-NAT baseline (the same
# client straight to the sandbox's address): a 3,000-byte datagram in (three
# fragments on the 1500-byte link) and a 4,000-byte answer out (the sandbox
# fragments it), the answer from <node-ip>:port. Twice: as the node forwards
# fragments one by one, then with conntrack loaded in the node namespace (an
# iptables nat rule), which reassembles what it forwards and fragments it
# again on the way out.
# FORWARD (argument 2): kernel or fib.
set -u
NODEPORT=$1
FORWARD=${2:-kernel}
. "$(dirname "$0")/lib.sh"
require datapath

test_begin frag
BULK="$TESTS_DIR/bulk.py"
PORT=5300
NODE_IP=$TOPO_NODE_EXT_IP

topo_node
topo_client
topo_cgroup
topo_sandbox 1
SB1=$(topo_sandbox_ip 1)
topo_in sb1 python3 "$BULK" serve "$PORT" >/dev/null 2>&1 &
topo_wait_listen sb1 "$PORT"

out=$(topo_in node "$NODEPORT" load --pin-dir "$PIN" --cgroup "$TOPO_CGROUP" --iface ext0 --forward "$FORWARD" 2>&1)
expect_eq "load --iface ext0 --forward $FORWARD exits 0" 0 $?
np set "udp/$PORT" "$SB1:$PORT" --owner sb-1 >/dev/null

datagram() { topo_in client python3 "$BULK" udp "$1" "$PORT" 3000 4000; }
# Datagrams the node namespace reassembled (for itself, or conntrack's defrag).
reassembled() { topo_in node nstat -az IpReasmOKs | awk '/IpReasmOKs/ {print $2}'; }

for round in "fragments forwarded one by one" "conntrack loaded on the node"; do
    if [ "$round" = "conntrack loaded on the node" ]; then
        topo_in node iptables -t nat -A POSTROUTING -o nothing0 -j MASQUERADE
    fi
    expect_eq "$round: baseline, 3,000 bytes in and 4,000 out straight to the sandbox's address" \
        "$SB1:$PORT received 3000, answer 4000" "$(datagram "$SB1")"
    expect_eq "$round: 3,000 bytes in and 4,000 out through <node-ip>:$PORT, the answer from there" \
        "$NODE_IP:$PORT received 3000, answer 4000" "$(datagram "$NODE_IP")"
    if [ "$round" = "fragments forwarded one by one" ]; then
        expect_eq "$round: the node reassembled nothing" 0 "$(reassembled)"
    else
        expect_match "$round: the node reassembled what it forwarded" '^[1-9]' "$(reassembled)"
    fi
done

finish
