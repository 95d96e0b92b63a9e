#!/usr/bin/env bash
# The external path over IPv6, end to end: a client namespace with IPv6 on a
# veth to the node's ext0, sandboxes with IPv6 on the node's bridge, the TC
# programs on ext0. Each scenario beside its baselines: the same client
# straight to the sandbox's address, and through an ip6tables DNAT rule in the
# node's namespace (the rule nodeport replaces), on a port of its own.
set -u
NODEPORT=$1
. "$(dirname "$0")/lib.sh"
require datapath

test_begin ext6
PROBE="$TESTS_DIR/probe.py"
PORT=6667
DNAT_PORT=6668
NODE6=$TOPO_NODE_EXT_IP6
CLIENT6=$TOPO_CLIENT_IP6
WORK=$(mktemp -d /tmp/np-ext6.XXXXXX)
on_cleanup() { rm -rf "$WORK"; }

topo_node
topo_node_ipv6
topo_client
topo_client_ipv6
topo_cgroup
from_client() { topo_in client "$@"; }
curl6() { from_client curl -s -g --http0.9 --max-time 3 "http://[$1]:$2/"; }
sandbox() {  # sandbox N: IPv4 and IPv6, serving its name on $PORT
    topo_sandbox "$1" && topo_sandbox_ipv6 "$1" && topo_serve "sb$1" "sb$1" "$PORT"
}

topo_in node "$NODEPORT" load --pin-dir "$PIN" --cgroup "$TOPO_CGROUP" --iface ext0 >/dev/null
expect_eq "load --iface ext0 exits 0" 0 $?

sandbox 1
sandbox 2
SB1=$(topo_sandbox_ip6 1)
SB2=$(topo_sandbox_ip6 2)
for proto in tcp udp; do
    np_node set "$proto/$PORT" "[$SB1]:$PORT" --owner sb-1 >/dev/null
    topo_in node ip6tables -t nat -A PREROUTING -p "$proto" --dport "$DNAT_PORT" -j DNAT \
        --to-destination "[$SB1]:$PORT"
done
expect_match "list shows the IPv6 mapping as reachable through ext0" "tcp/$PORT +\[$SB1\]:$PORT +ext0 +sb-1" \
    "$(np list)"

# --- Reachability, the client's IPv6 address kept ---
for way in "straight to the sandbox|$SB1|$PORT" "through ip6tables DNAT|$NODE6|$DNAT_PORT" \
    "through nodeport|$NODE6|$PORT"; do
    IFS='|' read -r name addr port <<<"$way"
    expect_eq "TCP $name: the sandbox sees the client's IPv6 address" "sb1 $CLIENT6" "$(curl6 "$addr" "$port")"
    expect_eq "UDP $name: the answer comes from [$addr]:$port" "[$addr]:$port sb1 $CLIENT6" \
        "$(from_client python3 "$PROBE" udp "$addr" "$port")"
    expect_eq "connected UDP $name" "[$addr]:$port sb1 $CLIENT6" \
        "$(from_client python3 "$PROBE" udp-connected "$addr" "$port")"
    expect_eq "UDP $name from a fixed client port" "[$addr]:$port sb1 $CLIENT6" \
        "$(from_client python3 "$PROBE" udp "$addr" "$port" 40000)"
done
expect_eq "the IPv6 flows are listed with their addresses" "udp [$CLIENT6]:40000 [$NODE6]:$PORT [$SB1]:$PORT" \
    "$(np flows --json | jq -r '.[] | select(.proto == "udp" and .client == "['"$CLIENT6"']:40000")
        | "\(.proto) \(.client) \(.node) \(.backend)"')"
expect_eq "the translations are counted under the IPv6 mapping" "ipv6 true true" \
    "$(np stats --json | jq -r '.ports[] | select(.proto == "tcp" and .port == '"$PORT"' and .family == "ipv6")
        | "\(.family) \(.external_flows > 0) \(.from_backend_packets > 0)"')"
out=$(curl6 "$NODE6" 8080); rc=$?
expect_eq "an unmapped port is untouched (refused by the node)" 7 "$rc"
out=$(from_client curl -s --max-time 3 "http://$TOPO_NODE_EXT_IP:$PORT/"); rc=$?
expect_eq "an IPv4 client of a port with an IPv6 backend only is not translated (no NAT46)" 7 "$rc"

# --- 25 redeploys: each reaches the new sandbox at once ---
# A UDP client that keeps its source port (a DNS forwarder, statsd), a
# connected UDP socket kept across every remap, and new TCP connections.
exec {UDP_IN}> >(exec nsenter --net="/run/netns/$(topo_ns client)" python3 -u -c '
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.settimeout(2)
s.connect((sys.argv[1], int(sys.argv[2])))
for line in sys.stdin:
    try:
        s.send(b"x")
        print(s.recv(100).decode().split()[0], flush=True)
    except OSError as e:
        print("error", e.__class__.__name__, flush=True)
' "$NODE6" "$PORT" >"$WORK/kept.out")
KEPT_PID=$!
ok=0
for i in $(seq 1 25); do
    n=$((i % 2 + 1))
    sb=$(topo_sandbox_ip6 "$n")
    for proto in tcp udp; do np_node set "$proto/$PORT" "[$sb]:$PORT" --owner "sb-$n" >/dev/null; done
    fixed=$(from_client python3 "$PROBE" udp "$NODE6" "$PORT" 40001)
    tcp=$(curl6 "$NODE6" "$PORT")
    echo >&"$UDP_IN"
    [ "$fixed|$tcp" = "[$NODE6]:$PORT sb$n $CLIENT6|sb$n $CLIENT6" ] && ok=$((ok + 1))
done
exec {UDP_IN}>&-
wait "$KEPT_PID"
expect_eq "after each of 25 redeploys a fixed-port UDP client and a new TCP connection reach the new sandbox" \
    25 "$ok"
expect_eq "a connected UDP socket kept across 25 redeploys reached the new sandbox each time" \
    "$(for i in $(seq 1 25); do echo "sb$((i % 2 + 1))"; done | paste -sd' ')" "$(paste -sd' ' "$WORK/kept.out")"

# --- After del: the same tuples belong to the node again ---
topo_serve node node "$PORT"
np_node del "tcp/$PORT" >/dev/null
np_node del "udp/$PORT" >/dev/null
expect_eq "after del, TCP to [$NODE6]:$PORT reaches the node's own server" "node $CLIENT6" "$(curl6 "$NODE6" "$PORT")"
expect_eq "after del, the fixed-port UDP client reaches the node's own server" "[$NODE6]:$PORT node $CLIENT6" \
    "$(from_client python3 "$PROBE" udp "$NODE6" "$PORT" 40001)"

finish
