#!/usr/bin/env bash
# `nodeport explain`, end to end in namespaces: a healthy port (exit 0, the
# backend named, answered) on the external and the local path and for UDP;
# `--from` a client with a recorded flow after a remap (the flow shown, the
# decision the flow's backend, where a new client goes to the new one); an
# unmapped port (exit 3, port_not_mapped); a port shadowed by an iptables
# DNAT rule in the node (exit 3, the rule named); a port whose sandbox
# namespace was deleted (exit 3, no answer); explain changes no flow and no
# counter; an IPv6 client and the port's IPv6 backend; bad input exits 2.
# Each with the client's own view beside it: the same client straight to the
# sandbox, and through the node port.
set -u
NODEPORT=$1
. "$(dirname "$0")/lib.sh"
require datapath

test_begin explain
WORK=$(mktemp -d /tmp/np-explain.XXXXXX)
HOLD_PID=""
on_cleanup() {
    [ -n "$HOLD_PID" ] && kill "$HOLD_PID" 2>/dev/null
    rm -rf "$WORK"
}
topo_node
topo_node_ipv6
topo_client
topo_client_ipv6
topo_cgroup
topo_sandbox 1
topo_sandbox_ipv6 1
topo_sandbox 2
topo_serve sb1 sb1 6667
topo_serve sb2 sb2 6667
SB1=$(topo_sandbox_ip 1)
SB2=$(topo_sandbox_ip 2)
NODE=$TOPO_NODE_EXT_IP
npn() { topo_in node "$NODEPORT" "$1" --pin-dir "$PIN" "${@:2}"; }
reaches() { topo_in client nc -w 3 "$1" "$2" </dev/null 2>/dev/null; }
# explain ARGS...: the last line of the text output, and the exit status.
explain_last() {
    local out
    out=$(npn explain "$@" 2>&1)
    echo "$? $(tail -n 1 <<<"$out")"
}
npn load --cgroup "$TOPO_CGROUP" --iface ext0 >/dev/null
npn set tcp/6667 "$SB1:6667" --owner sb-1 >/dev/null
npn set udp/6667 "$SB1:6667" --owner sb-1 >/dev/null

# --- 1. Healthy ---
expect_eq "baseline: the client reaches sandbox 1 straight, and through the node port" "sb1 $TOPO_CLIENT_IP|sb1 $TOPO_CLIENT_IP" \
    "$(reaches "$SB1" 6667)|$(reaches "$NODE" 6667)"
expect_eq "baseline: a node process reaches the port on 127.0.0.1" "sb1" \
    "$(topo_in_cgroup node nc -w 3 127.0.0.1 6667 </dev/null 2>/dev/null | awk '{print $1}')"
# What explain must not change: the flows, the port's counters, and what the
# datapath counted as passed (but for the IPv6 neighbour discovery the
# namespaces send meanwhile, counted as not IPv4 or no reply's).
flows_before=$(npn flows --json | jq -c 'map(del(.idle_seconds, .expires_in_seconds))')
counted() { npn stats --json | jq -c '[.ports, [.passed[] | select(.reason != "not_ipv4_tcp_udp" and .reason != "reply_no_flow")]]'; }
stats_before=$(counted)
expect_eq "explain tcp/6667: exit 0, reaches the backend, which answered" "0 reaches $SB1:6667: answered" \
    "$(explain_last tcp/6667)"
json=$(npn explain tcp/6667 --json)
expect_eq "--json: external path, translated by np_tc_ingress's own run, the probe answered, no cause" \
    "external true $SB1:6667 answered true null 192.0.2.10 $NODE" \
    "$(jq -r '"\(.decision.path) \(.decision.translated) \(.decision.backend) \(.probe.outcome) \(.reaches) \(.cause) \(.from | split(":")[0]) \(.to)"' <<<"$json")"
expect_eq "--json: the route to the backend is the bridge" "br0" "$(jq -r .route.dev <<<"$json")"
expect_eq "explain --to 127.0.0.1: the local path (the socket hooks), exit 0" "0 local $SB1:6667 answered" \
    "$(out=$(npn explain tcp/6667 --to 127.0.0.1 --json); echo "$? $(jq -r '"\(.decision.path) \(.decision.backend) \(.probe.outcome)"' <<<"$out")")"
expect_eq "explain udp/6667: exit 0, the backend answered" "0 reaches $SB1:6667: answered" "$(explain_last udp/6667)"
expect_eq "explain made no flow" "$flows_before" "$(npn flows --json | jq -c 'map(del(.idle_seconds, .expires_in_seconds))')"
expect_eq "and moved no counter" "$stats_before" "$(counted)"

# --- 1b. IPv6: the port's IPv6 backend, for a client of that family ---
SB1_6=$(topo_sandbox_ip6 1)
NODE6=$TOPO_NODE_EXT_IP6
npn set tcp/6667 "[$SB1_6]:6667" --owner sb-1 >/dev/null
expect_eq "baseline: an IPv6 client reaches sandbox 1 straight, and through [<node-ipv6>]" \
    "sb1 $TOPO_CLIENT_IP6|sb1 $TOPO_CLIENT_IP6" "$(reaches "$SB1_6" 6667)|$(reaches "$NODE6" 6667)"
json=$(npn explain tcp/6667 --to "$NODE6" --json)
expect_eq "explain --to <node-ipv6>: the IPv6 backend, np_tc_ingress's own run, answered, from 2001:db8::10" \
    "0 external true [$SB1_6]:6667 answered true 2001:db8::10 $NODE6" \
    "$(npn explain tcp/6667 --to "$NODE6" >/dev/null; echo "$? $(jq -r '"\(.decision.path) \(.decision.translated) \(.decision.backend) \(.probe.outcome) \(.reaches) \(.from | sub(":[0-9]+$"; "") | ltrimstr("[") | rtrimstr("]")) \(.to)"' <<<"$json")")"
expect_eq "explain --from an IPv6 client: the node's IPv6 address by default" "[$SB1_6]:6667 $NODE6" \
    "$(npn explain tcp/6667 --from "[$TOPO_CLIENT_IP6]:41001" --json | jq -r '"\(.decision.backend) \(.to)"')"
expect_eq "explain --to ::1: the local path's IPv6 hooks" "0 local [$SB1_6]:6667 answered" \
    "$(out=$(npn explain tcp/6667 --to ::1 --json); echo "$? $(jq -r '"\(.decision.path) \(.decision.backend) \(.probe.outcome)"' <<<"$out")")"
expect_match "explain of a port with an IPv4 backend only, for an IPv6 client: exit 3, port_not_mapped" \
    "^3 np_tc_ingress does not translate it: port_not_mapped" "$(explain_last udp/6667 --to "$NODE6")"

# --- 2. --from a client with a recorded flow, after a remap ---
sleep 30 | topo_in client python3 "$TESTS_DIR/long_client.py" "$NODE" 6667 41000 >"$WORK/hold.out" &
HOLD_PID=$!
for _ in $(seq 1 50); do grep -q . "$WORK/hold.out" && break; sleep 0.1; done
expect_eq "a held connection reaches sandbox 1 from port 41000" "sb1 $TOPO_CLIENT_IP" "$(head -n 1 "$WORK/hold.out")"
npn set tcp/6667 "$SB2:6667" --owner sb-2 >/dev/null
json=$(npn explain tcp/6667 --from "$TOPO_CLIENT_IP:41000" --json)
expect_eq "explain --from that client: its flow shown, and its packets still go to sandbox 1" \
    "$TOPO_CLIENT_IP:41000 $SB1:6667|$SB1:6667" \
    "$(jq -r '"\(.flows[0].client) \(.flows[0].backend)|\(.decision.backend)"' <<<"$json")"
expect_eq "a new client goes to sandbox 2" "$SB2:6667" "$(npn explain tcp/6667 --json | jq -r .decision.backend)"
expect_eq "baseline: so does a new connection of the real client" "sb2 $TOPO_CLIENT_IP" "$(reaches "$NODE" 6667)"
kill "$HOLD_PID" 2>/dev/null
HOLD_PID=""

# --- 3. Not mapped ---
expect_match "explain of an unmapped port: exit 3, port_not_mapped named last" \
    "^3 np_tc_ingress does not translate it: port_not_mapped" "$(explain_last tcp/7777)"

# --- 4. Shadowed by an iptables DNAT rule on the node ---
if topo_in node iptables -w 5 -t nat -A PREROUTING -p tcp --dport 6667 -j DNAT --to-destination 10.8.9.9:6667 \
    2>/dev/null; then
    expect_match "an iptables DNAT rule of the port: exit 3, the rule named last" \
        "^3 .*--dport 6667 -j DNAT --to-destination 10.8.9.9:6667" "$(explain_last tcp/6667)"
    topo_in node iptables -w 5 -t nat -D PREROUTING -p tcp --dport 6667 -j DNAT --to-destination 10.8.9.9:6667
    expect_eq "the rule removed: exit 0 again" 0 "$(npn explain tcp/6667 >/dev/null; echo $?)"
else
    echo "skip: iptables cannot add a nat rule in the node namespace"
fi

# --- 5. The sandbox is gone ---
topo_sandbox_del 2
expect_eq "baseline: the client no longer reaches the port" "" "$(reaches "$NODE" 6667)"
out=$(npn explain tcp/6667 --json)
expect_eq "explain after the sandbox's namespace was deleted: exit 3, the backend did not answer" "3 no_answer false" \
    "$(npn explain tcp/6667 >/dev/null; echo "$? $(jq -r '"\(.probe.outcome) \(.reaches)"' <<<"$out")")"
expect_match "the cause names the backend" "^backend $SB2:6667 did not answer" "$(jq -r .cause <<<"$out")"

# --- 6. Bad input changes nothing: exit 2, naming the field ---
for bad in "tcp/0" "tcp/6667 --from 10.1.2" "tcp/6667 --from 10.1.2.3:0" "tcp/6667 --to nonsense" \
    "tcp/6667 --from [fd00::1" "tcp/6667 --from 10.1.2.3 --to $TOPO_NODE_EXT_IP6" "tcp/6667 --to ::1%lo"; do
    # shellcheck disable=SC2086
    out=$(npn explain $bad 2>&1)
    expect_eq "explain $bad exits 2" 2 "$?"
done
finish
