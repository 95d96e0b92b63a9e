#!/usr/bin/env bash
# A node without IPv6 (net.ipv6.conf.all.disable_ipv6=1 in its namespace, as
# ipv6.disable=1 leaves a whole kernel): load works, says that IPv6 is off,
# and IPv4 is served on both paths.
set -u
NODEPORT=$1
. "$(dirname "$0")/lib.sh"
require datapath

test_begin v6off
PORT=6667
topo_node
topo_in node sysctl -qw net.ipv6.conf.all.disable_ipv6=1
topo_in node sysctl -qw net.ipv6.conf.default.disable_ipv6=1
topo_client
topo_cgroup
topo_sandbox 1
topo_serve sb1 sb1 "$PORT"
SB1=$(topo_sandbox_ip 1)

out=$(topo_in node "$NODEPORT" load --pin-dir "$PIN" --cgroup "$TOPO_CGROUP" --iface ext0 2>&1)
expect_eq "load exits 0 on a node without IPv6" 0 $?
expect_match "load says that IPv6 is off, and why" \
    "note: IPv6 is off on this node \(net.ipv6.conf.all.disable_ipv6 is 1 in this network namespace\): IPv4 is served" \
    "$out"
expect_eq "load --json says it too" "net.ipv6.conf.all.disable_ipv6 is 1 in this network namespace" \
    "$(topo_in node "$NODEPORT" load --pin-dir "$PIN" --cgroup "$TOPO_CGROUP" --iface ext0 --json | jq -r .ipv6_off)"
np_node set "tcp/$PORT" "$SB1:$PORT" --owner sb-1 >/dev/null
expect_eq "a client outside reaches the sandbox over IPv4" "sb1 $TOPO_CLIENT_IP" \
    "$(topo_in client curl -s --http0.9 --max-time 3 "http://$TOPO_NODE_EXT_IP:$PORT/")"
expect_eq "a node process reaches it through 127.0.0.1" "sb1 $TOPO_BRIDGE_IP" \
    "$(topo_in_cgroup node curl -s --http0.9 --max-time 3 "http://127.0.0.1:$PORT/")"

finish
