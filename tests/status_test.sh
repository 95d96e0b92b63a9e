#!/usr/bin/env bash
# nodeport status in a node namespace of its own: not loaded (exit 1), loaded
# and healthy (exit 0, with ids, interfaces, addresses, counts), then each way
# a mapped port can be made unreachable in turn (exit 3, naming it): an
# iptables DNAT rule, an nft dnat rule, listeners on the node, IPv4 forwarding
# off, an ip6tables rule and IPv6 forwarding off for an IPv6 backend, a
# deleted interface. iptables and nft only ever run inside the test's
# namespace.
set -u
NODEPORT=$1
. "$(dirname "$0")/lib.sh"
require datapath tcx

test_begin status
on_cleanup() {
    [ -n "${LISTENER_PID:-}" ] && kill "$LISTENER_PID" 2>/dev/null
    [ -n "${LONG_PID:-}" ] && { kill "$LONG_PID"; wait "$LONG_PID"; } 2>/dev/null
    [ -n "${STUCK:-}" ] && rm -rf "$STUCK"
}
topo_node
topo_client
topo_cgroup
topo_in node ip link add ext1 type veth peer name ext1-peer
topo_in node ip link set ext1 up
status() { topo_in node "$NODEPORT" status --pin-dir "$PIN" "$@"; }
jqr() { printf '%s' "$json" | jq -r "$@"; }

# expect_degraded DESCRIPTION KIND TEXT: exit 3, a problem of KIND whose port
# or detail holds TEXT, and the human output one line per reason naming it.
expect_degraded() {
    local desc=$1 kind=$2 text=$3 rc
    json=$(status --json); rc=$?
    expect_eq "$desc: exit 3" 3 "$rc"
    expect_eq "$desc: a $kind problem naming $text" yes \
        "$(jqr --arg k "$kind" --arg t "$text" \
            'if any(.problems[]; .kind == $k and (((.port // "") == $t) or (.detail | contains($t)))) then "yes" else "no" end')"
    expect_eq "$desc: not healthy" false "$(jqr .healthy)"
    expect_eq "$desc: the human output has the reason on a line of its own" yes \
        "$(status | grep -E "^([a-z]+/[0-9]+: )?$kind: " | grep -qF "$text" && echo yes || echo no)"
}

expect_healthy() {
    json=$(status --json)
    expect_eq "$1: exit 0, no problems" "0 0" "$? $(jqr '.problems | length')"
}

# --- Not loaded: exit 1, the message names the pin directory ---
out=$(status 2>&1); rc=$?
expect_eq "not loaded: exit 1" 1 "$rc"
expect_match "not loaded: says so, naming the pin dir" "not loaded at $PIN" "$out"
json=$(status --json 2>/dev/null)
expect_eq "not loaded --json: loaded false" "false $PIN" "$(jqr '"\(.loaded) \(.pin_dir)"')"
out=$(status extra 2>&1); rc=$?
expect_eq "status with an argument: exit 2" 2 "$rc"
# A pin directory that is not UTF-8 still gives JSON (escaped), not a crash.
json=$(topo_in node "$NODEPORT" status --pin-dir "$PIN-"$'\xff' --json 2>/dev/null); rc=$?
expect_eq "not loaded, pin dir not UTF-8: exit 1, JSON with loaded false" "1 false" "$rc $(jqr .loaded)"

# --- Loaded and healthy ---
topo_in node "$NODEPORT" load --pin-dir "$PIN" --cgroup "$TOPO_CGROUP" --iface ext0 --iface ext1 >/dev/null
expect_eq "load --iface ext0 --iface ext1 exits 0" 0 $?
topo_sandbox 1
SB1=$(topo_sandbox_ip 1)
topo_serve sb1 sb1 6667
np set tcp/6667 "$SB1:6667" --owner sb-1 >/dev/null
np set udp/5353 "$SB1:5353" --owner sb-1 >/dev/null
# One connection held open: a closed one leaves no flow (its final ACK ends it).
topo_serve sb1 sb1 7000 --hold
np set tcp/7000 "$SB1:7000" --owner sb-1 >/dev/null
coproc LONG { topo_in client python3 -u "$TESTS_DIR/long_client.py" "$TOPO_NODE_EXT_IP" 7000; }
LONG_PID=$LONG_PID
read -r -t 5 line <&"${LONG[0]}"
expect_eq "one connection through the node port, held open" "sb1 $TOPO_CLIENT_IP" "$line"

json=$(status --json); rc=$?
expect_eq "healthy: exit 0" 0 "$rc"
expect_eq "healthy: loaded, healthy, ABI 4, no problems" "true true 4 0" \
    "$(jqr '"\(.loaded) \(.healthy) \(.abi) \(.problems | length)"')"
cgroup_id=$(stat -c %i "$TOPO_CGROUP")
expect_eq "the socket hooks: cgroup links on the test cgroup, with program ids" \
    "np_connect4 np_connect6 np_getpeername4 np_getpeername6 np_recvmsg4 np_recvmsg6 np_sendmsg4 np_sendmsg6" \
    "$(jqr --argjson c "$cgroup_id" '[.programs[] | select(.link_type == "cgroup" and .cgroup_id == $c and .prog_id > 0) | .pin] | sort | join(" ")')"
expect_eq "connect4's id is the one bpftool shows for the pinned link" \
    "$(bpftool link show pinned "$PIN/links/np_connect4" -j | jq .prog_id)" \
    "$(jqr '.programs[] | select(.pin == "np_connect4") | .prog_id')"
ext0=$(topo_in node ip -j link show ext0 | jq ".[0].ifindex")  # /sys is the root namespace's here
expect_eq "the TC programs: tcx links on ext0" "np_tc_egress_if$ext0 np_tc_ingress_if$ext0" \
    "$(jqr --argjson i "$ext0" '[.programs[] | select(.link_type == "tcx" and .ifindex == $i) | .pin] | sort | join(" ")')"
expect_eq "interfaces: ext0 and ext1, tcx, present" "ext0 tcx true,ext1 tcx true" \
    "$(jqr '[.interfaces[] | "\(.name) \(.mode) \(.present)"] | join(",")')"
expect_eq "ext0's ingress program id is its tcx link's" \
    "$(jqr --arg p "np_tc_ingress_if$ext0" '.programs[] | select(.pin == $p) | .prog_id')" \
    "$(jqr '.interfaces[] | select(.name == "ext0") | .ingress_prog_id')"
expect_eq "node addresses" "10.8.0.1 10.200.0.1" "$(jqr '.node_addrs | join(" ")')"
expect_eq "ip_forward on, 3 ports" "true 3" "$(jqr '"\(.ip_forward) \(.ports)"')"
expect_eq "the connection is counted (open or half open)" 1 "$(jqr '.flows.tcp + .flows.tcp_half_open')"
expect_eq "flow counts have their three keys" "tcp tcp_half_open udp" "$(jqr '.flows | keys | join(" ")')"
np del tcp/7000 --owner sb-1 >/dev/null  # the later checks name the other two ports
expect_eq "iptables and nft were both checked" 0 "$(jqr '.not_checked | length')"
out=$(status)
expect_match "human output ends healthy" $'\nhealthy$' "$out"
expect_match "human output lists the interfaces with their mode and link kind" "ext0 \(if$ext0, tcx, ethernet\): present" "$out"

# --- An iptables DNAT rule for a mapped port ---
topo_in node iptables -t nat -A PREROUTING -p tcp --dport 6667 -j DNAT --to-destination 10.8.9.9:6667
expect_degraded "iptables DNAT rule" iptables_dnat tcp/6667
topo_in node iptables -t nat -D PREROUTING -p tcp --dport 6667 -j DNAT --to-destination 10.8.9.9:6667
# One for an unmapped port is none of nodeport's business.
topo_in node iptables -t nat -A PREROUTING -p tcp --dport 7777 -j DNAT --to-destination 10.8.9.9:7777
expect_healthy "rule removed, one for an unmapped port left"
# A DNAT without a port match takes every port: one problem, no port.
topo_in node iptables -t nat -A PREROUTING -p tcp -j DNAT --to-destination 10.8.9.9
expect_degraded "iptables DNAT without --dport" iptables_dnat "takes every port (1 mapped"
expect_eq "one problem, without a port" "1 null" \
    "$(jqr '[.problems[] | select(.kind == "iptables_dnat")] | "\(length) \(.[0].port)"')"
topo_in node iptables -t nat -D PREROUTING -p tcp -j DNAT --to-destination 10.8.9.9
expect_healthy "every-port rule removed"

# --- An nft dnat rule ---
topo_in node nft -f - <<'EOF'
table inet nptest {
    chain pre {
        type nat hook prerouting priority dstnat;
        udp dport { 53, 5353 } dnat ip to 10.8.9.9
    }
}
EOF
expect_degraded "nft dnat rule" nft_dnat udp/5353
topo_in node nft delete table inet nptest
expect_healthy "nft table removed"
# A dnat by a map keyed by the port selects the map's ports; one without
# any port match takes every port; a named map cannot be read here.
topo_in node nft -f - <<'EOF'
table ip nptest {
    map m { type inet_service : ipv4_addr . inet_service; elements = { 80 : 10.8.9.9 . 80 } }
    chain pre {
        type nat hook prerouting priority dstnat;
        iifname "nosuch0" dnat to tcp dport map { 6667 : 10.8.9.9 . 6667 }
    }
}
EOF
expect_degraded "nft dnat by an inline map of ports" nft_dnat tcp/6667
topo_in node nft flush chain ip nptest pre
topo_in node nft add rule ip nptest pre meta l4proto udp dnat to 10.8.9.9
expect_degraded "nft dnat without a port match" nft_dnat "takes every port (1 mapped"
topo_in node nft flush chain ip nptest pre
topo_in node nft add rule ip nptest pre dnat ip to tcp dport map @m
json=$(status --json); rc=$?
expect_eq "nft dnat by a named map: exit 0, not checked, saying why" "0 1" \
    "$rc $(jqr '[.not_checked[] | select(contains("map @m") or contains("cannot be read"))] | length')"
topo_in node nft delete table ip nptest
expect_healthy "nft table removed again"

# An nft that never answers: status gives up on it after 10 s and says so.
STUCK=$(mktemp -d)
printf '#!/bin/sh\nexec sleep 60\n' >"$STUCK/nft"; chmod +x "$STUCK/nft"
start=$(date +%s)
json=$(topo_in node env PATH="$STUCK:$PATH" "$NODEPORT" status --pin-dir "$PIN" --json); rc=$?
expect_eq "a stuck nft: exit 0 within 15 s, not checked: timed out" "0 yes 1" \
    "$rc $([ $(($(date +%s) - start)) -lt 15 ] && echo yes) $(jqr '[.not_checked[] | select(. == "nft: timed out after 10 s")] | length')"
rm -rf "$STUCK"; STUCK=

# --- Listeners on the node bound to mapped ports ---
# nsenter itself, not topo_in (a shell function): $! must be the python process.
nsenter --net="/run/netns/$(topo_ns node)" python3 -c '
import socket, time
t = socket.socket(); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind(("0.0.0.0", 6667)); t.listen()
u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); u.bind(("::", 5353))
time.sleep(120)' &
LISTENER_PID=$!
topo_wait_listen node 6667
expect_degraded "a TCP listener" listener tcp/6667
expect_degraded "a UDP socket (IPv6, any address)" listener udp/5353
expect_match "the listener's address is named" "0\.0\.0\.0:6667 \(listening\)" "$(status)"
kill "$LISTENER_PID"; wait "$LISTENER_PID" 2>/dev/null; LISTENER_PID=
expect_healthy "listeners gone"
# Any executable named conmon is not podman's: its listener is reported.
CONMON_DIR=$(mktemp -d)
cp "$(readlink -f "$(command -v nc)")" "$CONMON_DIR/conmon"  # netcat-openbsd, renamed
nsenter --net="/run/netns/$(topo_ns node)" "$CONMON_DIR/conmon" -d -u -l 5353 &
LISTENER_PID=$!
for _ in $(seq 50); do topo_in node grep -q ':14E9 00000000:0000' /proc/net/udp && break; sleep 0.1; done
expect_degraded "a socket held by another executable named conmon" listener "held by conmon (pid $LISTENER_PID)"
kill "$LISTENER_PID"; wait "$LISTENER_PID" 2>/dev/null; LISTENER_PID=
rm -rf "$CONMON_DIR"
# A connected UDP client whose own port is a mapped one is not a listener.
nsenter --net="/run/netns/$(topo_ns node)" python3 -c '
import socket, time
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("0.0.0.0", 5353)); u.connect(("10.8.0.2", 53))
time.sleep(120)' &
LISTENER_PID=$!
for _ in $(seq 50); do topo_in node grep -q ':14E9 0200080A:0035' /proc/net/udp && break; sleep 0.1; done
expect_healthy "a connected UDP socket on udp/5353"
kill "$LISTENER_PID"; wait "$LISTENER_PID" 2>/dev/null; LISTENER_PID=

# --- IPv4 forwarding off ---
topo_in node sysctl -qw net.ipv4.ip_forward=0
expect_degraded "ip_forward off" ip_forward_off "ip_forward is 0"
topo_in node sysctl -qw net.ipv4.ip_forward=1
expect_healthy "ip_forward back on"

# --- IPv6: the node's IPv6 addresses; ip6tables rules and forwarding once a port has an IPv6 backend ---
topo_node_ipv6
topo_in node "$NODEPORT" refresh --pin-dir "$PIN" >/dev/null
expect_eq "node addresses: IPv4 first, then IPv6" "10.8.0.1 10.200.0.1 $TOPO_BRIDGE_IP6" \
    "$(status --json | jq -r '.node_addrs | join(" ")')"
topo_in node ip6tables -t nat -A PREROUTING -p tcp --dport 6667 -j DNAT --to-destination "[fd00:8::9]:6667"
expect_healthy "an ip6tables rule on a port without an IPv6 backend"
np set tcp/6667 "[$(topo_sandbox_ip6 1)]:6667" --owner sb-1 >/dev/null
expect_degraded "an ip6tables DNAT rule on a port with an IPv6 backend" iptables_dnat "ip6tables -t nat rule"
topo_in node ip6tables -t nat -F
expect_healthy "the ip6tables rule gone"
topo_in node sysctl -qw net.ipv6.conf.all.forwarding=0
expect_degraded "IPv6 forwarding off" ipv6_forwarding_off "net.ipv6.conf.all.forwarding is 0"
topo_in node sysctl -qw net.ipv6.conf.all.forwarding=1
expect_eq "IPv6 forwarding back on: healthy, and shown" "0 true" \
    "$(status --json | jq -r '"\(.problems | length) \(.ipv6_forwarding)"')"
np del tcp/6667 --owner sb-1 >/dev/null  # both families; the IPv4 mapping again for the checks below
np set tcp/6667 "$SB1:6667" --owner sb-1 >/dev/null

# --- Links pinned and unpinned while status reads them: never "not loaded" ---
# (load with and without ext1 pins and unpins ext1's tcx links; status takes no lock)
( for _ in $(seq 15); do
    topo_in node "$NODEPORT" load --pin-dir "$PIN" --cgroup "$TOPO_CGROUP" --iface ext0 >/dev/null
    topo_in node "$NODEPORT" load --pin-dir "$PIN" --cgroup "$TOPO_CGROUP" --iface ext0 --iface ext1 >/dev/null
  done ) &
RELOADER=$!
not_loaded=0 runs=0
while kill -0 "$RELOADER" 2>/dev/null; do
    status --json >/dev/null 2>&1; [ $? -eq 1 ] && not_loaded=$((not_loaded + 1))
    runs=$((runs + 1))
done
wait "$RELOADER"
expect_eq "$runs status runs during 30 loads: never exit 1 (not loaded)" 0 "$not_loaded"

# --- A deleted interface ---
topo_in node ip link del ext1
expect_degraded "ext1 deleted" missing_interface "ext1"
expect_eq "and the problem says which ports it cost" yes \
    "$(jqr 'if any(.problems[]; .kind == "missing_interface" and (.detail | contains("tcp/6667, udp/5353"))) then "yes" else "no" end')"
expect_eq "ext1 is shown missing, ext0 present" "ext0 true,ext1 false" \
    "$(jqr '[.interfaces[] | "\(.name) \(.present)"] | join(",")')"

# --- clsact: program ids from nodeport's filters, and a filter someone removed ---
topo_in node "$NODEPORT" unload --pin-dir "$PIN" >/dev/null
topo_in node "$NODEPORT" load --pin-dir "$PIN" --cgroup "$TOPO_CGROUP" --iface ext0 --tc-attach clsact >/dev/null
expect_eq "load --tc-attach clsact exits 0" 0 $?
np set tcp/6667 "$SB1:6667" >/dev/null
json=$(status --json); rc=$?
expect_eq "clsact: healthy, exit 0" 0 "$rc"
expect_eq "clsact: ext0 with both filters' program ids" "ext0 clsact true true" \
    "$(jqr '.interfaces[] | "\(.name) \(.mode) \(.present) \(.ingress_prog_id > 0 and .egress_prog_id > 0)"')"
expect_eq "clsact: the ingress id is the one tc shows" \
    "$(topo_in node tc -j filter show dev ext0 ingress | jq '[.[] | .options.prog.id // empty][0]')" \
    "$(jqr '.interfaces[0].ingress_prog_id')"
topo_in node tc filter del dev ext0 ingress
expect_degraded "clsact filter removed by hand" tc_detached "ext0"

finish
