#!/usr/bin/env bash
# Flows across a redeploy, end to end, with clients that behave like real ones:
#  1. an external UDP client that keeps one source port, across 25 redeploys;
#  2. a node process with a connected UDP socket to 127.0.0.1, across 25
#     redeploys, and a socket nodeport did not translate, which must be left;
#  3. node-local TCP connections: kept across a remap, ended by --terminate;
#  4. short TCP connections from a fixed set of client ports (RST and FIN
#     closes), then `del`: the same client ports reach a server on the node,
#     an iptables DNAT rule and the sandbox's own address.
set -u
NODEPORT=$1
. "$(dirname "$0")/lib.sh"
require datapath sock_destroy

test_begin redep
CLIENTS="$TESTS_DIR/clients.py"
NODE_IP=$TOPO_NODE_EXT_IP
CLIENT_IP=$TOPO_CLIENT_IP
WORK=$(mktemp -d /tmp/np-redeploy.XXXXXX)
BG_PIDS=()
# How long the background clients run: stop_background ends them sooner. Long
# enough for 25 redeploys on a loaded machine (one run needed more than 120 s,
# and the clients' ending looked like sandboxes that never answered).
CLIENT_SECONDS=600
stop_background() {
    [ "${#BG_PIDS[@]}" -gt 0 ] && { kill "${BG_PIDS[@]}"; wait "${BG_PIDS[@]}"; } 2>/dev/null
    BG_PIDS=()
}
on_cleanup() {
    [ "${#BG_PIDS[@]}" -gt 0 ] && kill "${BG_PIDS[@]}" 2>/dev/null
    topo_in node iptables -t nat -F 2>/dev/null
    rm -rf "$WORK"
}

topo_node
topo_client
topo_cgroup
# From the node's network namespace, where load ran: a remap ends the node's
# stale sockets there (the socket iterators walk the caller's namespace).

out=$(np_node load --cgroup "$TOPO_CGROUP" --iface ext0 2>&1)
expect_eq "load exits 0, with no warning about ending sockets" "" "$(grep -i warning <<<"$out")"

sandbox() { # sandbox N PORT [--hold]: a new sandbox serving its name on PORT
    topo_sandbox "$1" && topo_serve "sb$1" "sb$1" "${@:2}"
}

# redeploy PROTO PORT PREV NEW: the runtime's order: the new sandbox, `set`,
# the old sandbox destroyed, then its late `del --owner`. Prints the time the
# port was remapped.
redeploy() {
    local proto=$1 port=$2 prev=$3 new=$4 t0
    sandbox "$new" "$port"
    np_node set "$proto/$port" "$(topo_sandbox_ip "$new"):$port" --owner "sb-$new" >/dev/null
    t0=$(now)
    topo_sandbox_del "$prev"
    np_node del "$proto/$port" --owner "sb-$prev" >/dev/null
    echo "$t0"
}

# udp_across_redeploys WHAT LOG PORT MAX_BAD PREV: 25 redeploys of udp/PORT,
# from sandbox PREV on, while a client writes its answers to LOG; checks that
# each took effect within 1 s with at most MAX_BAD errors or timeouts.
udp_across_redeploys() {
    local what=$1 log=$2 port=$3 max_bad=$4 prev=$5 broken="" latencies="" cycle new t0 r secs bad
    for cycle in $(seq 1 25); do
        new=$((prev + 100))
        t0=$(redeploy udp "$port" "$prev" "$new")
        r=$(after_remap "$log" "$t0" "sb$new")
        if [ "$r" = none ]; then
            broken="$broken cycle $cycle: no answer from sb$new;"
        else
            read -r secs bad <<<"$r"
            latencies="$latencies $secs"
            awk -v s="$secs" 'BEGIN { exit !(s > 1.0) }' && broken="$broken cycle $cycle: ${secs}s;"
            [ "$bad" -gt "$max_bad" ] && broken="$broken cycle $cycle: $bad errors/timeouts;"
        fi
        prev=$new
    done
    topo_sandbox_del "$prev"
    expect_eq "$what: after each of 25 redeploys the new sandbox answers within 1 s" "" "$broken"
    echo "     redeploy -> first answer from the new sandbox (s): $(tr ' ' '\n' <<<"$latencies" | sort -n |
        awk 'NF { v[n++] = $1 } END { if (n) printf "median %.3f, max %.3f over %d", v[int(n / 2)], v[n - 1], n }')"
}

# --- 1. External UDP client, one socket, one source port ---
sandbox 1 6667
np_node set udp/6667 "$(topo_sandbox_ip 1):6667" --owner sb-1 >/dev/null
topo_in client python3 "$CLIENTS" udp-steady "$NODE_IP" 6667 41000 "$CLIENT_SECONDS" >"$WORK/udp-ext.log" &
BG_PIDS+=($!)
r=$(after_remap "$WORK/udp-ext.log" 0 sb1)
expect_match "the steady UDP client reaches sandbox 1" "^[0-9.]+ 0$" "$r"
# At most one datagram lost: the one in flight to the old sandbox when the
# redeploy destroys it (UDP; a real client loses it too).
udp_across_redeploys "external UDP client on one source port (at most one lost)" "$WORK/udp-ext.log" 6667 1 1
expect_eq "the client kept one source port (one flow)" 1 \
    "$(np_node flows --json | jq '[.[] | select(.proto == "udp" and .node == "'"$NODE_IP"':6667")] | length')"
stop_background

# --- 2. Node process, connected UDP socket to 127.0.0.1 ---
sandbox 1 6668
SB1=$(topo_sandbox_ip 1)
np_node set udp/6668 "$SB1:6668" --owner sb-1 >/dev/null
topo_in_cgroup node python3 "$CLIENTS" udp-connected 127.0.0.1 6668 "$CLIENT_SECONDS" >"$WORK/udp-local.log" &
BG_PIDS+=($!)
# And a node socket connected straight to the sandbox: nodeport never
# translated it, so a remap must leave it alone.
topo_in_cgroup node python3 "$CLIENTS" udp-connected "$SB1" 6668 "$CLIENT_SECONDS" >"$WORK/udp-direct.log" &
BG_PIDS+=($!)
expect_match "the connected UDP client reaches sandbox 1" "^[0-9.]+ 0$" "$(after_remap "$WORK/udp-local.log" 0 sb1)"
sandbox 2 6668
t0=$(now)
out=$(np_node set udp/6668 "$(topo_sandbox_ip 2):6668" --owner sb-2)
expect_match "set reports the ended socket" "ended 1 node socket connected to the old backend" "$out"
expect_match "the client follows to sandbox 2 after at most one error" "^[0-9.]+ [01]$" \
    "$(after_remap "$WORK/udp-local.log" "$t0" sb2)"
sleep 0.5
expect_eq "the socket connected straight to sandbox 1 kept working, no error" "0 yes" \
    "$(awk -v t0="$t0" '$1 >= t0 && $2 != "sb1" { bad++ } $1 >= t0 && $2 == "sb1" { ok = "yes" }
        END { print bad + 0, ok }' "$WORK/udp-direct.log")"
kill "${BG_PIDS[1]}" 2>/dev/null
topo_sandbox_del 1
np_node del udp/6668 --owner sb-1 >/dev/null
udp_across_redeploys "node process, connected UDP to 127.0.0.1 (at most one error each)" "$WORK/udp-local.log" \
    6668 1 2
stop_background

# --- 2b. Node process, dual-stack connected UDP socket to ::ffff:127.0.0.1 ---
# An AF_INET6 socket (Java's default) reaches the port through a v4-mapped
# address; connect6 translated it, and a remap must end it like an AF_INET one.
sandbox 41 6669
np_node set udp/6669 "$(topo_sandbox_ip 41):6669" --owner sb-41 >/dev/null
topo_in_cgroup node python3 "$CLIENTS" udp-connected ::ffff:127.0.0.1 6669 "$CLIENT_SECONDS" >"$WORK/udp-dual.log" &
BG_PIDS+=($!)
expect_match "the dual-stack connected UDP client reaches sandbox 41" "^[0-9.]+ 0$" \
    "$(after_remap "$WORK/udp-dual.log" 0 sb41)"
sandbox 42 6669
t0=$(now)
out=$(np_node set udp/6669 "$(topo_sandbox_ip 42):6669" --owner sb-42)
expect_match "set ends the dual-stack socket" "ended 1 node socket connected to the old backend" "$out"
expect_match "the dual-stack client follows to sandbox 42 after at most one error" "^[0-9.]+ [01]$" \
    "$(after_remap "$WORK/udp-dual.log" "$t0" sb42)"
stop_background
topo_sandbox_del 41
topo_sandbox_del 42

# --- 3. Node-local TCP: kept across a remap, ended with --terminate ---
# Fresh sandbox numbers: a reused address with a new MAC would wait for the
# node's stale neighbour entry.
sandbox 31 7000 --hold
sandbox 32 7000 --hold
sandbox 33 7000 --hold
np_node set tcp/7000 "$(topo_sandbox_ip 31):7000" --owner sb-331 >/dev/null
coproc C1 { topo_in_cgroup node python3 -u "$TESTS_DIR/long_client.py" 127.0.0.1 7000; }
C1_PID_SAVED=$C1_PID
read -r -t 5 line <&"${C1[0]}"
expect_eq "a node TCP connection through 127.0.0.1:7000 reaches sandbox 31" "sb31 $TOPO_BRIDGE_IP" "$line"
out=$(np_node set tcp/7000 "$(topo_sandbox_ip 32):7000" --owner sb-332)
expect_eq "set without --terminate ends no TCP connection" "" "$(grep ended <<<"$out")"
echo ping1 >&"${C1[1]}"
read -r -t 5 line <&"${C1[0]}"
expect_eq "the connection stays on sandbox 31 across the remap" "sb31 ping1" "$line"
# (bash warns that a second coproc exists while the first does; it works.)
{ coproc C2 { topo_in_cgroup node python3 -u "$TESTS_DIR/long_client.py" 127.0.0.1 7000; }; } 2>/dev/null
C2_PID_SAVED=$C2_PID
read -r -t 5 line <&"${C2[0]}"
expect_eq "a new connection reaches sandbox 32" "sb32 $TOPO_BRIDGE_IP" "$line"
out=$(np_node set tcp/7000 "$(topo_sandbox_ip 33):7000" --owner sb-33 --terminate)
expect_match "set --terminate ends the connection to the replaced backend" "ended 1 node socket" "$out"
echo ping2 >&"${C2[1]}"
read -r -t 5 line <&"${C2[0]}"
expect_match "that connection sees an error" "^(error |closed)" "$line"
echo ping3 >&"${C1[1]}"
read -r -t 5 line <&"${C1[0]}"
expect_eq "the connection to sandbox 31 (not the replaced backend) still works" "sb31 ping3" "$line"
expect_eq "a new connection reaches sandbox 33" "127.0.0.1:7000 sb33 $TOPO_BRIDGE_IP" \
    "$(topo_in_cgroup node python3 "$TESTS_DIR/probe.py" tcp 127.0.0.1 7000)"
out=$(np_node del tcp/7000 --owner sb-33 --terminate)
expect_match "del --terminate reports what it did" "tcp/7000 removed" "$out"
echo ping4 >&"${C1[1]}"
read -r -t 5 line <&"${C1[0]}"
expect_eq "del --terminate leaves connections to other backends" "sb31 ping4" "$line"
{ kill "$C1_PID_SAVED" "$C2_PID_SAVED"; wait "$C1_PID_SAVED" "$C2_PID_SAVED"; } 2>/dev/null
for n in 31 32 33; do topo_sandbox_del "$n"; done

# --- 4. Short TCP connections from fixed client ports, then del ---
sandbox 50 6670
SBC=$(topo_sandbox_ip 50)
topo_serve sb50 sb50 6671
for close in rst fin; do
    port=$([ "$close" = rst ] && echo 6670 || echo 6671)
    first=$([ "$close" = rst ] && echo 42000 || echo 43000)
    np_node set "tcp/$port" "$SBC:$port" --owner sb-50 >/dev/null
    read -r ok failed <<<"$(topo_in client python3 "$CLIENTS" tcp-churn "$NODE_IP" "$port" "$first" 50 2 "$close")"
    expect_match "$close churn: 2 s of short connections through the node port, none failed" "^[1-9][0-9]* 0$" "$ok $failed"
    flows=$(np_node flows --json | jq -r '[.[] | select(.node == "'"$NODE_IP:$port"'") | .state] | unique | join(",")')
    if [ "$close" = rst ]; then
        expect_eq "rst churn: no flow is left (an RST ends its flow at once)" "" "$flows"
    else
        expect_eq "fin churn: no flow is left (the final ACK ends its flow at once)" "" "$flows"
    fi
    np_node del "tcp/$port" --owner sb-50 >/dev/null

    if [ "$close" = rst ]; then
        # The sandbox keeps TIME_WAIT sockets after a FIN close, which a SYN
        # from another path (other timestamps) cannot reuse: that is TCP,
        # not nodeport, so this one runs after the RST churn only.
        expect_eq "$close: the same client ports reach the sandbox's own address" "50 sb50 $CLIENT_IP" \
            "$(topo_in client python3 "$CLIENTS" tcp-each "$SBC" "$port" "$first" 50)"
    fi
    topo_in node python3 "$(dirname "$TESTS_DIR")/scripts/identity_server.py" --name node-local --port "$port" \
        >/dev/null 2>&1 &
    BG_PIDS+=($!)
    topo_wait_listen node "$port"
    expect_eq "$close: the same client ports reach a server on the node" "50 node-local $CLIENT_IP" \
        "$(topo_in client python3 "$CLIENTS" tcp-each "$NODE_IP" "$port" "$first" 50)"
    stop_background
    topo_in node iptables -t nat -A PREROUTING -p tcp --dport "$port" -j DNAT --to-destination "$SBC:$port"
    expect_eq "$close: the same client ports reach the sandbox through an iptables DNAT rule" "50 sb50 $CLIENT_IP" \
        "$(topo_in client python3 "$CLIENTS" tcp-each "$NODE_IP" "$port" "$first" 50)"
    topo_in node iptables -t nat -F
done

finish
