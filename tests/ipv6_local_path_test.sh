#!/usr/bin/env bash
# IPv6 on the local path, end to end: AF_INET6 clients (Python, curl) in the
# node namespace and in sandboxes reach a node port's IPv6 backend through
# [::1]:PORT (the node's namespace only) and [<node-ipv6>]:PORT, and see the
# address they used as their peer and as the source of UDP answers. A port
# with both families answers each family from its own backend, and dual-stack
# sockets reaching ::ffff:127.0.0.1 go to the IPv4 one. Each case beside its
# baseline: the same client straight to the sandbox's address. The node's
# connections to an IPv6 backend are counted by get, list, drain and Go's
# Drain, and del --owner --drain after a redeploy waits for them.
set -u
NODEPORT=$1
. "$(dirname "$0")/lib.sh"
require datapath

test_begin local6
PROBE="$TESTS_DIR/probe.py"
WORK_DIR=$(mktemp -d /tmp/np-local6.XXXXXX)
on_cleanup() { rm -rf "$WORK_DIR"; }
PORT=6667
NODE6=$TOPO_BRIDGE_IP6

topo_node
topo_node_ipv6
topo_cgroup
probe() { local ns=$1; shift; topo_in_cgroup "$ns" python3 "$PROBE" "$@"; }

sandbox() {  # sandbox N: IPv4 and IPv6, serving its name on $PORT, TCP and UDP
    topo_sandbox "$1" && topo_sandbox_ipv6 "$1" && topo_serve "sb$1" "sb$1" "$PORT"
}
sandbox 1  # the IPv4 backend
sandbox 2  # the IPv6 backend
sandbox 3  # a client, and later the new IPv6 backend
SB1=$(topo_sandbox_ip 1)
SB2_6=$(topo_sandbox_ip6 2)
SB3_6=$(topo_sandbox_ip6 3)

LOADED=$(topo_in node "$NODEPORT" load --pin-dir "$PIN" --cgroup "$TOPO_CGROUP" --local-only --json) ||
    { fail "load"; finish; exit 1; }
expect_eq "load found the node's IPv6 address on the bridge" "br0" \
    "$(jq -r --arg a "$NODE6" '.node_addrs[] | select(.addr == $a) | .interface' <<<"$LOADED")"

for proto in tcp udp; do
    np set "$proto/$PORT" "$SB1:$PORT" --owner sb-1 >/dev/null
    np set "$proto/$PORT" "[$SB2_6]:$PORT" --owner sb-2 >/dev/null || fail "set $proto/$PORT to an IPv6 backend"
done
expect_eq "get shows a backend per family, IPv4 first" \
    "tcp/$PORT -> $SB1:$PORT owner sb-1|tcp/$PORT -> [$SB2_6]:$PORT owner sb-2" "$(np get "tcp/$PORT" | paste -sd '|')"
expect_eq "list --json gives each family" "ipv4 $SB1 ipv6 $SB2_6" \
    "$(np list --json | jq -r '[.[] | select(.proto == "tcp") | "\(.family) \(.backend_ip)"] | join(" ")')"

# --- From the node ---
expect_eq "baseline: TCP straight to the IPv6 sandbox" "[$SB2_6]:$PORT sb2 $NODE6" "$(probe node tcp "$SB2_6" "$PORT")"
expect_eq "TCP to [::1] reaches the IPv6 backend, the peer is [::1]" "[::1]:$PORT sb2 $NODE6" \
    "$(probe node tcp ::1 "$PORT")"
expect_eq "curl [::1]:$PORT" "sb2 $NODE6" "$(topo_in_cgroup node curl -s --http0.9 --max-time 3 "http://[::1]:$PORT/")"
expect_eq "TCP to the node's IPv6 address" "[$NODE6]:$PORT sb2 $NODE6" "$(probe node tcp "$NODE6" "$PORT")"
expect_eq "baseline: UDP straight to the IPv6 sandbox" "[$SB2_6]:$PORT sb2 $NODE6" "$(probe node udp "$SB2_6" "$PORT")"
expect_eq "unconnected UDP to [::1]: the answer comes from [::1]" "[::1]:$PORT sb2 $NODE6" \
    "$(probe node udp ::1 "$PORT")"
expect_eq "connected UDP to [::1]: getpeername says [::1]" "[::1]:$PORT sb2 $NODE6" \
    "$(probe node udp-connected ::1 "$PORT")"
expect_eq "unconnected UDP to the node's IPv6 address" "[$NODE6]:$PORT sb2 $NODE6" "$(probe node udp "$NODE6" "$PORT")"
expect_eq "UDP from a fixed source port, twice" "[::1]:$PORT sb2 $NODE6|[::1]:$PORT sb2 $NODE6" \
    "$(probe node udp ::1 "$PORT" 40111)|$(probe node udp ::1 "$PORT" 40111)"
# The same port over IPv4 goes to the IPv4 backend: each family its own.
expect_eq "TCP to 127.0.0.1 reaches the IPv4 backend" "127.0.0.1:$PORT sb1 $TOPO_BRIDGE_IP" \
    "$(probe node tcp 127.0.0.1 "$PORT")"
expect_eq "a dual-stack socket to ::ffff:127.0.0.1 reaches the IPv4 backend" \
    "[::ffff:127.0.0.1]:$PORT sb1 $TOPO_BRIDGE_IP" "$(probe node tcp ::ffff:127.0.0.1 "$PORT")"

# --- From a sandbox ---
SB3_SRC=$SB3_6
expect_eq "baseline: sandbox 3 straight to the IPv6 sandbox" "[$SB2_6]:$PORT sb2 $SB3_SRC" \
    "$(probe sb3 tcp "$SB2_6" "$PORT")"
expect_eq "sandbox 3 to [<node-ipv6>]:$PORT reaches the IPv6 backend" "[$NODE6]:$PORT sb2 $SB3_SRC" \
    "$(probe sb3 tcp "$NODE6" "$PORT")"
expect_eq "sandbox 3, UDP to [<node-ipv6>]:$PORT" "[$NODE6]:$PORT sb2 $SB3_SRC" "$(probe sb3 udp "$NODE6" "$PORT")"
expect_eq "[::1] inside a sandbox is the sandbox itself" "[::1]:$PORT sb3 ::1" "$(probe sb3 tcp ::1 "$PORT")"

# --- Counted per family ---
expect_eq "stats count the IPv6 backend's local connections" "true" \
    "$(np stats --json | jq "[.ports[] | select(.family == \"ipv6\" and .proto == \"tcp\")
                             | .local_connects] | .[0] > 0")"

# --- The node's IPv6 sockets follow a redeploy ---
# A connected UDP socket to [::1]: set ends it, the client connects again
# and reaches the new sandbox, as for IPv4 (redeploy_test).
sandbox 4
SB4_6=$(topo_sandbox_ip6 4)
topo_in_cgroup node python3 "$TESTS_DIR/clients.py" udp-connected ::1 "$PORT" 20 >"$WORK_DIR/udp6.log" &
UDP6_PID=$!
expect_match "a connected UDP client on [::1] reaches sandbox 2" "^[0-9.]+ 0$" "$(after_remap "$WORK_DIR/udp6.log" 0 sb2)"
t0=$(now)
out=$(np_node set "udp/$PORT" "[$SB4_6]:$PORT" --owner sb-2)
expect_match "set ends the node's IPv6 socket to the old backend" "ended 1 node socket connected to the old backend" \
    "$out"
expect_match "the client follows to sandbox 4 after at most one error" "^[0-9.]+ [01]$" \
    "$(after_remap "$WORK_DIR/udp6.log" "$t0" sb4)"
kill "$UDP6_PID" 2>/dev/null
wait "$UDP6_PID" 2>/dev/null
np set "udp/$PORT" "[$SB2_6]:$PORT" --owner sb-2 >/dev/null
# TCP: a held connection through [::1], ended by set --terminate.
HELD=7000
topo_serve sb2 sb2 "$HELD" --hold
topo_serve sb4 sb4 "$HELD" --hold
np set "tcp/$HELD" "[$SB2_6]:$HELD" --owner sb-2 >/dev/null
coproc C6 { topo_in_cgroup node python3 -u "$TESTS_DIR/long_client.py" ::1 "$HELD"; }
C6_PID=$C6_PID
read -r -t 5 line <&"${C6[0]}"
expect_eq "a TCP connection through [::1] reaches sandbox 2" "sb2 $NODE6" "$line"
echo ping1 >&"${C6[1]}"
read -r -t 5 line <&"${C6[0]}"
expect_eq "and stays open" "sb2 ping1" "$line"
out=$(np_node set "tcp/$HELD" "[$SB4_6]:$HELD" --owner sb-4 --terminate)
expect_match "set --terminate ends it" "ended 1 node socket" "$out"
echo ping2 >&"${C6[1]}"
read -r -t 5 line <&"${C6[0]}"
expect_match "and the connection sees an error" "^(error |closed)" "$line"
{ kill "$C6_PID"; wait "$C6_PID"; } 2>/dev/null
np del "tcp/$HELD" >/dev/null

# --- A remap of the IPv6 backend, then del --owner ---
np set "tcp/$PORT" "[$SB3_6]:$PORT" --owner sb-3 >/dev/null
expect_eq "after the remap, [::1] reaches the new IPv6 backend" "[::1]:$PORT sb3 $NODE6" "$(probe node tcp ::1 "$PORT")"
expect_eq "and 127.0.0.1 still the IPv4 one" "127.0.0.1:$PORT sb1 $TOPO_BRIDGE_IP" "$(probe node tcp 127.0.0.1 "$PORT")"
np del --owner sb-2 >/dev/null  # its UDP IPv6 entry
np del --owner sb-3 >/dev/null
expect_eq "del --owner removed the IPv6 entries only" "tcp/$PORT -> $SB1:$PORT owner sb-1" "$(np get "tcp/$PORT")"
expect_eq "with no IPv6 backend, [::1]:$PORT is refused" "error ConnectionRefusedError" "$(probe node tcp ::1 "$PORT")"
np set "udp/$PORT" "[$SB2_6]:$PORT" --owner sb-1 >/dev/null
np del --owner sb-1 >/dev/null
expect_eq "del --owner removes both families" "" "$(np list --json | jq -r '.[]')"

# --- The node's connections to an IPv6 backend are counted ---
# As drain_test does for IPv4: get, list and drain count the node's
# connections to a port's IPv6 backend (np_count6_*), and del --owner --drain
# after a redeploy's set waits for the old one (replaced_backends6). Counted
# from the node's namespace, whose sockets the iterators walk.
np set "tcp/$HELD" "[$SB2_6]:$HELD" --owner sb-2 >/dev/null
np set "udp/$PORT" "$SB1:$PORT" --owner sb-1 >/dev/null
np set "udp/$PORT" "[$SB2_6]:$PORT" --owner sb-2 >/dev/null
for via in ::1 "$NODE6"; do  # held until the stop file exists
    topo_in_cgroup node python3 "$TESTS_DIR/drain_clients.py" hold "$via" "$HELD" 1 0 "$WORK_DIR/stop-held" \
        >"$WORK_DIR/held-$via.log" &
done
wait_for 10 grep -q "^ready" "$WORK_DIR/held-::1.log" && wait_for 10 grep -q "^ready" "$WORK_DIR/held-$NODE6.log"
expect_eq "TCP through [::1] and through the node's IPv6 address reach sandbox 2" "ready sb2 ready sb2" \
    "$(head -n 1 "$WORK_DIR/held-::1.log") $(head -n 1 "$WORK_DIR/held-$NODE6.log")"
expect_eq "get --json counts them, local" '{"external":0,"local":2}' \
    "$(np_node get "tcp/$HELD" --json | jq -c .connections)"
expect_eq "list --json too" "ipv6 2" \
    "$(np_node list --json | jq -r --argjson p "$HELD" '.[] | select(.proto == "tcp" and .port == $p)
                                                      | "\(.family) \(.connections.local)"')"
topo_in_cgroup node python3 "$TESTS_DIR/clients.py" udp-connected ::1 "$PORT" 4 >"$WORK_DIR/udp-count.log" &
UDP_PID=$!
wait_for 4 grep -qE "^[0-9.]+ sb2( |$)" "$WORK_DIR/udp-count.log"
expect_eq "a connected UDP socket to [::1] is counted under its family's backend" "ipv4 0|ipv6 1" \
    "$(np_node get "udp/$PORT" --json | jq -r '"\(.family) \(.connections.local)"' | paste -sd'|')"
wait "$UDP_PID"
expect_eq "and no more once it is closed" "ipv4 0|ipv6 0" \
    "$(np_node get "udp/$PORT" --json | jq -r '"\(.family) \(.connections.local)"' | paste -sd'|')"
# Pins of a load before np_count6_*: IPv4 is counted, IPv6 says it was not.
# (Moved aside and back: bpffs refuses a name with a dot.)
mv "$PIN/links/np_count6_udp" "$PIN/links/np_count6_udp_aside"
expect_eq "without the IPv6 iterators: IPv4 still counted, IPv6 null" "ipv4 0|ipv6 null" \
    "$(np_node get "udp/$PORT" --json | jq -r '"\(.family) \(.connections.local)"' | paste -sd'|')"
expect_match "and a drain of the IPv6 backend says why" \
    "note: the node's connections to IPv6 backends were not counted: the loaded programs predate it" \
    "$(np_node drain "[$SB2_6]:$PORT" --timeout 0 2>&1)"
mv "$PIN/links/np_count6_udp_aside" "$PIN/links/np_count6_udp"

# The redeploy: set gives the port to sandbox 4, the held connections stay
# with sandbox 2 until they close.
np set "tcp/$HELD" "[$SB4_6]:$HELD" --owner sb-4 >/dev/null
out=$(np_node drain "[$SB2_6]:$HELD" --timeout 0 2>&1)
expect_eq "drain of the old IPv6 backend with them open: exit 5, 2 left, local, no note" \
    "5 [$SB2_6]:$HELD: 2 connections left after N s (external 0, local 2)" \
    "$? $(sed -E 's/after [0-9.]+ s/after N s/' <<<"$out")"
np_node del --owner sb-2 --drain --timeout 10 --json >"$WORK_DIR/del6.json" &
DEL_PID=$!
sleep 1
expect_eq "del --owner sb-2 --drain waits while they are open" "waiting" \
    "$(kill -0 "$DEL_PID" 2>/dev/null && echo waiting || echo returned)"
touch "$WORK_DIR/stop-held"
wait "$DEL_PID"
code=$?
t_drained=$(now)
last_close=$(awk '/^closed/ { print $2 }' "$WORK_DIR/held-::1.log" "$WORK_DIR/held-$NODE6.log" | sort -n | tail -n 1)
expect_eq "and exits 0 once they closed, drained, no note" "0 true 0 null" \
    "$code $(jq -r '.drain | "\(.drained) \(.left.total) \(.local_not_counted)"' "$WORK_DIR/del6.json")"
expect_eq "it waited for sandbox 2's IPv6 backend, replaced earlier by set" "[$SB2_6]:$HELD" \
    "$(jq -r '.replaced_earlier[] | "[\(.backend_ip)]:\(.backend_port)"' "$WORK_DIR/del6.json")"
expect_eq "it returned after the last close, not before" yes "$(awk -v a="$t_drained" -v b="$last_close" \
    'BEGIN { print (b != "" && a >= b ? "yes" : "no: " b - a " s early") }')"
out=$(np_node drain "[$SB2_6]:$HELD" --timeout 5 2>&1)
expect_match "drain of it now: drained, no note" "^\[$SB2_6\]:$HELD drained \([0-9.]+ s\)$" "$out"
np del "tcp/$HELD" >/dev/null
# The Go package counts them too (np_local_conn6): the example controller's
# destroy -drain says what is left of a held connection at its deadline.
GO=/usr/lib/go-1.22/bin/go
if [ -x "$GO" ] && [ -d /usr/share/gocode/src/github.com/cilium/ebpf ]; then
    (cd "$TESTS_DIR/../go" && CGO_ENABLED=0 GOTOOLCHAIN=local GOPROXY=off GOFLAGS=-mod=mod \
        GOCACHE="$WORK_DIR/go-cache" GOPATH="$WORK_DIR/go-path" "$GO" build -o "$WORK_DIR/controller" ./examples/controller) ||
        fail "go build ./examples/controller"
    np set "tcp/$HELD" "[$SB2_6]:$HELD" --owner sb-2 >/dev/null
    topo_in_cgroup node python3 "$TESTS_DIR/drain_clients.py" hold ::1 "$HELD" 1 0 "$WORK_DIR/stop-go" \
        >"$WORK_DIR/held-go.log" &
    GO_HELD=$!
    wait_for 10 grep -q "^ready" "$WORK_DIR/held-go.log"
    expect_match "Go's Drain counts the node's connection to the IPv6 backend" \
        "^removed tcp/$HELD \[$SB2_6\]:$HELD\|controller: .*0 external and 1 local connections left" \
        "$(topo_in node "$WORK_DIR/controller" -pin-dir "$PIN" -drain 1s destroy sb-2 2>&1 | paste -sd'|')"
    touch "$WORK_DIR/stop-go"
    wait "$GO_HELD"
else
    echo "skip: Go 1.22 or Debian's cilium/ebpf source is not installed (bash scripts/setup.sh)"
fi
np del --owner sb-1 >/dev/null

finish
