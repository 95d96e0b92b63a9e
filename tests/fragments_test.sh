#!/usr/bin/env bash
# Fragmented UDP through a node port, beside its no-NAT baseline (the same
# client straight to the sandbox's address): a 3,000-byte datagram in (three
# fragments on the 1500-byte link) and a 4,000-byte answer out (the sandbox
# fragments it), the answer from <node-ip>:port. Twice: as the node forwards
# fragments one by one, then with conntrack loaded in the node namespace (an
# iptables nat rule), which reassembles what it forwards and fragments it
# again on the way out.
# FORWARD (argument 2): kernel or fib. FAMILY (argument 3): ipv4, or ipv6:
# the same over IPv6, whose fragments carry a fragment header.
set -u
NODEPORT=$1
FORWARD=${2:-kernel}
FAMILY=${3:-ipv4}
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
# How an address:port prints (bulk.py), and what counts reassemblies.
at() { echo "$1:$PORT"; }
REASM=IpReasmOKs IPTABLES=iptables
if [ "$FAMILY" = ipv6 ]; then
    topo_node_ipv6
    topo_client_ipv6
    topo_sandbox_ipv6 1
    SB1=$(topo_sandbox_ip6 1)
    NODE_IP=$TOPO_NODE_EXT_IP6
    at() { echo "[$1]:$PORT"; }
    REASM=Ip6ReasmOKs IPTABLES=ip6tables
fi
topo_in sb1 python3 "$BULK" serve "$PORT" >/dev/null 2>&1 &
topo_wait_listen sb1 "$PORT"

out=$(topo_in node "$NODEPORT" load --pin-dir "$PIN" --cgroup "$TOPO_CGROUP" --iface ext0 --forward "$FORWARD" 2>&1)
expect_eq "load --iface ext0 --forward $FORWARD exits 0" 0 $?
np set "udp/$PORT" "$(at "$SB1")" --owner sb-1 >/dev/null

datagram() { topo_in client python3 "$BULK" udp "$1" "$PORT" 3000 4000; }
# Datagrams the node namespace reassembled (for itself, or conntrack's defrag).
reassembled() { topo_in node nstat -az "$REASM" | awk -v c="$REASM" '$1 == c {print $2}'; }

for round in "fragments forwarded one by one" "conntrack loaded on the node"; do
    if [ "$round" = "conntrack loaded on the node" ]; then
        topo_in node "$IPTABLES" -t nat -A POSTROUTING -o nothing0 -j MASQUERADE
    fi
    expect_eq "$round: baseline, 3,000 bytes in and 4,000 out straight to the sandbox's address" \
        "$(at "$SB1") received 3000, answer 4000" "$(datagram "$SB1")"
    expect_eq "$round: 3,000 bytes in and 4,000 out through <node-ip>:$PORT, the answer from there" \
        "$(at "$NODE_IP") received 3000, answer 4000" "$(datagram "$NODE_IP")"
    if [ "$round" = "fragments forwarded one by one" ]; then
        expect_eq "$round: the node reassembled nothing" 0 "$(reassembled)"
    elif [ "$FAMILY" = ipv4 ]; then
        expect_match "$round: the node reassembled what it forwarded" '^[1-9]' "$(reassembled)"
    else  # nf_defrag_ipv6 reassembles in a queue of its own, which no counter shows
        expect_match "$round: conntrack tracked what the node forwarded" '^[1-9]' \
            "$(topo_in node sysctl -n net.netfilter.nf_conntrack_count)"
    fi
done

finish
