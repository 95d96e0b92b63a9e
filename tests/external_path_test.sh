#!/usr/bin/env bash
# External forwarding end to end: a client namespace on a veth to the node's
# external interface ext0, sandboxes on a bridge inside the node namespace,
# the TC programs attached to ext0 (tcx, and clsact in a second round).
# MODE (argument 2): tcx or clsact; FORWARD (argument 3): kernel or fib.
set -u
NODEPORT=$1
MODE=${2:-tcx}
FORWARD=${3:-kernel}
. "$(dirname "$0")/lib.sh"
require datapath
[ "$MODE" = clsact ] || require tcx

test_begin ext
PROBE="$TESTS_DIR/probe.py"
PORT=6667
LONG_PORT=7000
NODE_IP=$TOPO_NODE_EXT_IP
CLIENT_IP=$TOPO_CLIENT_IP
on_cleanup() {
    [ -n "${LONG_PID:-}" ] && kill "$LONG_PID" 2>/dev/null
}

topo_node
topo_client
topo_cgroup
from_client() { topo_in client "$@"; }
curl_client() { from_client curl -s --http0.9 --max-time 3 "http://$NODE_IP:$1/"; }
sandbox() {  # sandbox N: serves its name on $PORT, and holds connections on $LONG_PORT
    topo_sandbox "$1" && topo_serve "sb$1" "sb$1" "$PORT" && topo_serve "sb$1" "sb$1" "$LONG_PORT" --hold
}

# A tc filter that is not ours: unload must leave it (and its qdisc) alone.
# Only in clsact mode, where nodeport shares the qdisc with it.
if [ "$MODE" = clsact ]; then
    topo_in node tc qdisc add dev ext0 clsact
    # (u32 is the classifier this kernel has; it matches a source we never use.)
    topo_in node tc filter add dev ext0 ingress prio 1 u32 match ip src 192.0.2.99/32
fi

out=$(topo_in node "$NODEPORT" load --pin-dir "$PIN" --cgroup "$TOPO_CGROUP" --iface ext0 --tc-attach "$MODE" \
    --forward "$FORWARD" 2>&1)
expect_eq "load --iface ext0 --tc-attach $MODE --forward $FORWARD exits 0" 0 $?
expect_match "load reports the interface and how it is attached" "external interfaces: ext0 \($MODE\)" "$out"
# A reload asking for the other mode keeps the interface's: it swaps the
# programs in place, and says so.
other=$([ "$MODE" = tcx ] && echo clsact || echo tcx)
out=$(topo_in node "$NODEPORT" load --pin-dir "$PIN" --cgroup "$TOPO_CGROUP" --iface ext0 --tc-attach "$other" \
    --forward "$FORWARD" 2>&1)
expect_eq "a reload with --tc-attach $other exits 0, keeps $MODE, and says so" \
    "0|external interfaces: ext0 ($MODE)|nodeport load: note: ext0 kept the mode it was attached with (--tc-attach $other applies to interfaces attached anew; unload first to change it)" \
    "$?|$(grep -E '^(external interfaces|nodeport load: note)' <<<"$out" | paste -sd'|')"

sandbox 1
SB1=$(topo_sandbox_ip 1)
for proto in tcp udp; do np set "$proto/$PORT" "$SB1:$PORT" --owner sb-1 >/dev/null; done
np set "tcp/$LONG_PORT" "$SB1:$LONG_PORT" --owner sb-1 >/dev/null
expect_match "list shows the port reachable through ext0" "tcp/$PORT +$SB1:$PORT +ext0 +sb-1" "$(np list)"

# --- Reachability, client IP kept ---
expect_eq "curl from the client reaches the sandbox, which sees the client's IP" "sb1 $CLIENT_IP" "$(curl_client "$PORT")"
expect_eq "nc from the client reaches the sandbox" "sb1 $CLIENT_IP" "$(from_client nc -w 3 "$NODE_IP" "$PORT" </dev/null)"
expect_eq "UDP from the client: reply from <node-ip>:$PORT, sandbox saw the client's IP" "$NODE_IP:$PORT sb1 $CLIENT_IP" \
    "$(from_client python3 "$PROBE" udp "$NODE_IP" "$PORT")"
expect_eq "connected UDP from the client" "$NODE_IP:$PORT sb1 $CLIENT_IP" \
    "$(from_client python3 "$PROBE" udp-connected "$NODE_IP" "$PORT")"
out=$(from_client curl -s --http0.9 --max-time 2 "http://$NODE_IP:8080/"); rc=$?
expect_match "an unmapped port is untouched (refused by the node)" "^7$" "$rc"
expect_eq "closed connections leave no flow (the final ACK ends it)" "" \
    "$(np flows --json | jq -r '[.[] | select(.proto == "tcp") | .state] | unique | join(",")')"

# --- The node's own outbound connections that use the node port locally ---
topo_serve client outside 9000
expect_eq "a node TCP connection from local port $PORT gets its replies" "$CLIENT_IP:9000 outside $NODE_IP" \
    "$(topo_in node python3 "$PROBE" tcp "$CLIENT_IP" 9000 "$PORT")"
expect_eq "a node UDP socket bound to port $PORT gets its replies" "$CLIENT_IP:9000 outside $NODE_IP" \
    "$(topo_in node python3 "$PROBE" udp "$CLIENT_IP" 9000 "$PORT")"

# A sandbox's own UDP that the node MASQUERADEs to a source port that is a
# mapped node port: the answer comes back to <node-ip>:$PORT, and must reach
# the sandbox through conntrack, not start a flow to the port's backend
# (np_tc_egress notes what the node sent from a node port: node_udp). The
# rule lives in the test's node namespace and goes with it.
topo_in node iptables -t nat -A POSTROUTING -s 10.8.0.0/16 -o ext0 -p udp -j MASQUERADE --to-ports "$PORT"
expect_eq "a sandbox's UDP masqueraded to node port $PORT gets its answer" "$CLIENT_IP:9000 outside $NODE_IP" \
    "$(topo_in sb1 python3 "$PROBE" udp "$CLIENT_IP" 9000)"
topo_in node iptables -t nat -F POSTROUTING

# --- A long-lived connection survives a remap; new ones follow it ---
coproc LONG { from_client python3 -u "$TESTS_DIR/long_client.py" "$NODE_IP" "$LONG_PORT"; }
LONG_PID=$LONG_PID
read -r -t 5 greeting <&"${LONG[0]}"
expect_eq "long-lived connection reaches sandbox 1" "sb1 $CLIENT_IP" "$greeting"
expect_match "flows shows it, established" "tcp +$CLIENT_IP:[0-9]+ +$NODE_IP:$LONG_PORT +$SB1:$LONG_PORT +established" \
    "$(np flows)"
sandbox 2
SB2=$(topo_sandbox_ip 2)
np set "tcp/$LONG_PORT" "$SB2:$LONG_PORT" --owner sb-2 >/dev/null
echo ping1 >&"${LONG[1]}"
read -r -t 5 reply <&"${LONG[0]}"
expect_eq "after the remap the old connection still talks to sandbox 1" "sb1 ping1" "$reply"
expect_eq "a new connection goes to sandbox 2" "sb2 $CLIENT_IP" "$(from_client nc -w 3 "$NODE_IP" "$LONG_PORT" </dev/null | head -n 1)"
np del "tcp/$LONG_PORT" >/dev/null
out=$(from_client nc -w 3 "$NODE_IP" "$LONG_PORT" </dev/null 2>&1); rc=$?
expect_eq "after del a new connection fails cleanly and reaches no sandbox" "1 " "$rc ${out%% *}"
echo ping2 >&"${LONG[1]}"
read -r -t 5 reply <&"${LONG[0]}"
expect_eq "the established connection still works after del" "sb1 ping2" "$reply"
exec {LONG[1]}>&-
wait "$LONG_PID" 2>/dev/null
LONG_PID=""
topo_sandbox_del 2

# --- Hairpin: sandboxes through <node-ip>:PORT (sandbox sockets are in the hooked cgroup) ---
sandbox 3
SB3=$(topo_sandbox_ip 3)
expect_eq "a sandbox reaches another sandbox through <node-ip>:$PORT" "sb1 $SB3" \
    "$(topo_in_cgroup sb3 curl -s --http0.9 --max-time 3 "http://$NODE_IP:$PORT/")"
expect_eq "a sandbox reaches itself through <node-ip>:$PORT" "sb1 $SB1" \
    "$(topo_in_cgroup sb1 curl -s --http0.9 --max-time 3 "http://$NODE_IP:$PORT/")"
topo_sandbox_del 3

# --- 25 deploy cycles, checked from the client after each ---
broken=""
prev=1
for cycle in $(seq 1 25); do
    new=$((cycle + 100))
    sandbox "$new"
    ip=$(topo_sandbox_ip "$new")
    for proto in tcp udp; do np set "$proto/$PORT" "$ip:$PORT" --owner "sb-$new" >/dev/null; done
    topo_sandbox_del "$prev"
    for proto in tcp udp; do np del "$proto/$PORT" --owner "sb-$prev" >/dev/null; done
    got_tcp=$(curl_client "$PORT")
    got_udp=$(from_client python3 "$PROBE" udp "$NODE_IP" "$PORT")
    if [ "$got_tcp" != "sb$new $CLIENT_IP" ] || [ "$got_udp" != "$NODE_IP:$PORT sb$new $CLIENT_IP" ]; then
        broken="$broken cycle $cycle (live $ip): tcp '$got_tcp' udp '$got_udp'; flows: $(np flows | tail -n +2 | tr -s ' ' | tr '\n' ';')"
    fi
    prev=$new
done
expect_eq "after each of 25 redeploys the client reaches the live sandbox (TCP, UDP)" "" "$broken"

# --- Unload removes exactly what nodeport attached ---
topo_in node "$NODEPORT" unload --pin-dir "$PIN" >/dev/null
expect_eq "unload exits 0" 0 $?
expect_eq "unload leaves nothing pinned" no "$([ -e "$PIN" ] && echo yes || echo no)"
expect_eq "unload leaves no tcx program on ext0" "" "$(topo_in node bpftool net show dev ext0 | grep -A3 '^tc:' | grep np_tc)"
if [ "$MODE" = clsact ]; then
    expect_eq "unload leaves the foreign filter" 1 "$(topo_in node tc filter show dev ext0 ingress | grep -c 'c0000263/ffffffff')"
    expect_eq "unload leaves no nodeport filter" 0 \
        "$({ topo_in node tc filter show dev ext0 ingress; topo_in node tc filter show dev ext0 egress; } | grep -c np_tc)"
    expect_eq "unload keeps the clsact qdisc the foreign filter needs" 1 "$(topo_in node tc qdisc show dev ext0 | grep -c clsact)"
    # Without a foreign filter, the qdisc is nodeport's own and goes with it.
    topo_in node tc qdisc del dev ext0 clsact
    topo_in node "$NODEPORT" load --pin-dir "$PIN" --cgroup "$TOPO_CGROUP" --iface ext0 --tc-attach clsact >/dev/null
    expect_eq "clsact load adds the qdisc and both filters" "1 1 1" \
        "$(topo_in node tc qdisc show dev ext0 | grep -c clsact) $(topo_in node tc filter show dev ext0 ingress | grep -c np_tc_ingress) $(topo_in node tc filter show dev ext0 egress | grep -c np_tc_egress)"
    topo_in node "$NODEPORT" unload --pin-dir "$PIN" >/dev/null
    expect_eq "unload removes the qdisc nodeport added" 0 "$(topo_in node tc qdisc show dev ext0 | grep -c clsact)"
else
    expect_eq "unload leaves no qdisc or filter on ext0" "0 0" \
        "$(topo_in node tc qdisc show dev ext0 | grep -c clsact) $(topo_in node tc filter show dev ext0 ingress | grep -c .)"
fi
out=$(curl_client "$PORT"); rc=$?
expect_eq "after unload the node port is no longer forwarded" 7 "$rc"

finish
