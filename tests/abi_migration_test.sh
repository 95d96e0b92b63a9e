#!/usr/bin/env bash
# Upgrading a node that runs a nodeport of map ABI 1 (built here from the git
# history: the parent of the commit that introduced ABI 2) to this build,
# under traffic: `load` migrates every mapping, keeps established external
# connections and loses no new one; pins it cannot migrate are refused before
# anything changes. Then pins of map ABI 3, which `load` adopts as they are.
set -u
NODEPORT=$1
. "$(dirname "$0")/lib.sh"
. "$TESTS_DIR/upgrade_lib.sh"
require datapath
require_abi_history 2

test_begin abimig
WORK=$(mktemp -d /tmp/np-abimig.XXXXXX)
on_cleanup() {
    stop_traffic_on_cleanup
    [ -n "${LONG_PID:-}" ] && { kill "$LONG_PID"; wait "$LONG_PID"; } 2>/dev/null
    # The ABI 1 CLI unloads what it loaded should a check fail before the migration.
    [ -x "${OLD:-}" ] && topo_in node "$OLD" unload --pin-dir "$PIN" >/dev/null 2>&1
    rm -rf "$WORK"
}

OLD=$(cli_before_abi 2) || { fail "the ABI 1 commit builds"; finish; exit; }
expect_match "the ABI 1 build says so" "map ABI 1," "$("$OLD" --version)"

upgrade_node

old load --cgroup "$TOPO_CGROUP" --iface ext0 >/dev/null || { fail "ABI 1 load"; finish; exit; }
old set tcp/7000 "$SB1:7000" --owner sb-1 >/dev/null
# Fifty more mappings of both protocols, the longest owner ABI 1 takes.
for port in $(seq 20000 20024); do
    old set "tcp/$port" "10.8.1.$((port % 200 + 2)):$((port + 1))" --owner "sandbox/app-$port" >/dev/null
    old set "udp/$port" "10.8.2.$((port % 200 + 2)):53" --owner "$(printf 'o%.0s' $(seq 63))" >/dev/null
done
BEFORE=$(old list --json | jq -c 'sort_by(.proto, .port)')
expect_eq "ABI 1 holds 51 mappings" 51 "$(jq length <<<"$BEFORE")"

# --- Refused before anything changes ---
PORTS_ID=$(bpftool -j map show pinned "$PIN/ports" | jq .id)
# An entry no nodeport writes (family 9): the new load names it and stops.
bpftool map update pinned "$PIN/ports" key 6 0 0x1f 0x40 value 9 0 0 80 $(printf '0 %.0s' $(seq 92))
out=$(new load --cgroup "$TOPO_CGROUP" --iface ext0 2>&1)
expect_eq "an entry that cannot be migrated: load exits 1" 1 "$?"
expect_match "and names the entry and says nothing changed" "cannot migrate .*/ports .*entry tcp/8000: .*family 9.*nothing was changed" "$out"
expect_eq "the ABI 1 ports map is still the one pinned" "$PORTS_ID" "$(bpftool -j map show pinned "$PIN/ports" | jq .id)"
expect_eq "the ABI 1 CLI still works" 52 "$(old list --json | jq length)"
old del tcp/8000 >/dev/null
# A map ABI this build does not know: node_config's abi_version set to 5
# (its first byte), the rest of the record kept.
CONFIG=$(bpftool -j map lookup pinned "$PIN/node_config" key 0 0 0 0 | jq -r '.value | join(" ")')
bpftool map update pinned "$PIN/node_config" key 0 0 0 0 value 5 $(cut -d' ' -f2- <<<"$CONFIG")
out=$(new load --cgroup "$TOPO_CGROUP" --iface ext0 2>&1)
expect_match "an unknown map ABI is refused" "map ABI v5, which this nodeport \(v4\) cannot migrate: nothing was changed" "$out"
bpftool map update pinned "$PIN/node_config" key 0 0 0 0 value $CONFIG
expect_eq "still ABI 1 afterwards, same map" "$PORTS_ID 51" \
    "$(bpftool -j map show pinned "$PIN/ports" | jq .id) $(old list --json | jq length)"

# --- The migration, under traffic ---
start_traffic 7000
mark_traffic_window
out=$(new load --cgroup "$TOPO_CGROUP" --iface ext0 2>&1)
expect_eq "load of this build over ABI 1 exits 0" 0 "$?"
expect_match "and says what it migrated" "migrated 51 mappings and [0-9]+ flows from map ABI v1 to v4" "$out"
mark_traffic_window
# Long enough after the switch for a handshake begun between the ingress and
# the egress switch (its SYN-ACK left untranslated) to complete with the
# client's SYN retransmitted a second later: no connection may fail.
sleep 3
stop_traffic

# This build's list adds what ABI 1's did not have (live connections, "mapped").
AFTER=$(new list --json | jq -c 'map(del(.connections, .mapped, .family)) | sort_by(.proto, .port)')
expect_eq "every mapping is kept, backends and owners byte for byte" "$BEFORE" "$AFTER"
expect_eq "each of them an IPv4 mapping" ipv4 "$(new list --json | jq -r '[.[].family] | unique | join(",")')"
expect_eq "the old ports map is gone (no pin left aside)" no "$([ -e "$PIN/ports_abi1" ] && echo yes || echo no)"
expect_eq "bpftool shows the node port, the backend and its port as typed" "7000 $SB1 7000 sb-1" \
    "$(bpftool -j map lookup pinned "$PIN/ports" key 6 0 0x58 0x1b |
        jq -r '.formatted | "\(.key.port) \(.value.addr[0:4] | join(".")) \(.value.port) \(.value.owner)"')"
expect_eq "the migrated table works: new connections reach sandbox 1" "sb1 $TOPO_CLIENT_IP" \
    "$(topo_in client python3 "$TESTS_DIR/probe.py" tcp "$TOPO_NODE_EXT_IP" 7000 2>&1 | awk '{print $2, $3}')"
out=$(old list 2>&1)
expect_eq "the ABI 1 CLI now refuses the pins" 1 "$?"
expect_match "naming the map ABI" "map ABI v4" "$out"
expect_eq "owners longer than ABI 1's 63 bytes now fit" \
    "tcp/7001 -> $SB1:7001 owner sandbox/checkout-payments-7Hq3xKpLmN2vR8sTzY4wBc$(printf 'x%.0s' $(seq 200))" \
    "$(new set tcp/7001 "$SB1:7001" --owner "sandbox/checkout-payments-7Hq3xKpLmN2vR8sTzY4wBc$(printf 'x%.0s' $(seq 200))")"
expect_match "unload removes every pin" "^unloaded $PIN \([0-9]+ links detached, [0-9]+ maps unpinned\)" "$(new unload)"
expect_eq "nothing is left of the pin directory" no "$([ -e "$PIN" ] && echo yes || echo no)"

# --- A migration killed after it set the old map aside resumes from it ---
old load --cgroup "$TOPO_CGROUP" --iface ext0 >/dev/null
old set tcp/7000 "$SB1:7000" --owner sb-1 >/dev/null
old set udp/7000 "$SB1:7000" --owner sb-1 >/dev/null
mv "$PIN/ports" "$PIN/ports_abi1"  # what load does first, as a SIGKILL would leave it
expect_match "the next load migrates from the set-aside map" "migrated 2 mappings and [0-9]+ flows from map ABI v1 to v4" \
    "$(new load --cgroup "$TOPO_CGROUP" --iface ext0 2>&1)"
expect_eq "with both mappings, and the set-aside pin removed" "2 no" \
    "$(new list --json | jq length) $([ -e "$PIN/ports_abi1" ] && echo yes || echo no)"
expect_eq "and traffic flows" "sb1 $TOPO_CLIENT_IP" \
    "$(topo_in client python3 "$TESTS_DIR/probe.py" tcp "$TOPO_NODE_EXT_IP" 7000 2>&1 | awk '{print $2, $3}')"

# --- Pins of map ABI 3 are adopted as they are ---
# Map ABI 4 only gave the port key's pad byte (0 in every ABI 3 entry) a
# meaning, 0 being IPv4, so ABI 3's pins are ABI 4's but for node_config's
# version: set back to 3 here, with an idle connection through the node port.
coproc LONG { topo_in client python3 -u "$TESTS_DIR/long_client.py" "$TOPO_NODE_EXT_IP" 7000; }
LONG_PID=$LONG_PID
read -r -t 20 line <&"${LONG[0]}"
expect_eq "a connection through the node port" "sb1 $TOPO_CLIENT_IP" "$line"
CLIENT_PORT=$(topo_in client ss -Htn state established dst "$TOPO_NODE_EXT_IP" | awk '{print $3}' | sed 's/.*://' | head -1)
CONFIG=$(bpftool -j map lookup pinned "$PIN/node_config" key 0 0 0 0 | jq -r '.value | join(" ")')
bpftool map update pinned "$PIN/node_config" key 0 0 0 0 value 3 $(cut -d' ' -f2- <<<"$CONFIG")
out=$(new list 2>&1)
expect_eq "other commands refuse ABI 3 pins" 1 "$?"
expect_match "and say that load migrates them" "use map ABI v3, this nodeport uses v4: run this nodeport's load" "$out"
out=$(new load --cgroup "$TOPO_CGROUP" --iface ext0 2>&1)
expect_match "load adopts them" "adopted the maps of map ABI v3 as v4" "$out"
expect_eq "recording map ABI 4, with both mappings" "4 2" \
    "$(bpftool -j map lookup pinned "$PIN/node_config" key 0 0 0 0 | jq '.formatted.value.abi_version') $(new list --json | jq length)"
expect_eq "the idle connection's flow is the same, established" established \
    "$(new flows --json | jq -r --arg c "$TOPO_CLIENT_IP:$CLIENT_PORT" '.[] | select(.client == $c) | .state')"
echo ping >&"${LONG[1]}"
read -r -t 20 line <&"${LONG[0]}"
expect_eq "and it goes on" "sb1 ping" "$line"
finish
