#!/usr/bin/env bash
# Draining a sandbox before it is destroyed, end to end: 20 connections to the
# old sandbox (10 external, 10 node-local), each sending a request every 0.2 s
# for 3 s and then closing, while the port is redeployed (set to the new
# sandbox, then `del --owner old --drain`); new connections go to the new
# sandbox all along. Then a connection that never closes (`del PORT --owner
# old --drain` after the redeploy waits for the old backend: exit 5 at the
# timeout, 1 left, on the local path), `nodeport drain`, connections in `get`
# and `list --json --unmapped`; the same redeploy drained through the C ABI
# (Python ctypes) and through Go (the example controller); and bad input.
set -u
NODEPORT=$1
C_SO=${2:-}  # libnodeport_c.so, for the redeploy through the C ABI
. "$(dirname "$0")/lib.sh"
require datapath sock_destroy

test_begin drain
CLIENTS="$TESTS_DIR/drain_clients.py"
NODE_IP=$TOPO_NODE_EXT_IP
WORK=$(mktemp -d /tmp/np-drain.XXXXXX)
BG_PIDS=()
on_cleanup() {
    [ "${#BG_PIDS[@]}" -gt 0 ] && kill "${BG_PIDS[@]}" 2>/dev/null
    rm -rf "$WORK"
}

topo_node
topo_client
topo_cgroup
np_node load --cgroup "$TOPO_CGROUP" --iface ext0 >/dev/null
sandbox() { topo_sandbox "$1" && topo_serve "sb$1" "sb$1" 8080 --hold; }
# wait_for FILE REGEX: until a line of FILE matches (10 s at most).
wait_for() {
    for _ in $(seq 1 100); do
        grep -qE "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}
SB1=$(topo_sandbox_ip 1)
SB2=$(topo_sandbox_ip 2)
SB3=$(topo_sandbox_ip 3)
sandbox 1
np_node set tcp/8080 "$SB1:8080" --owner sb-1 >/dev/null

# Baseline, no NAT: the same client straight to the sandbox.
topo_in client python3 "$CLIENTS" hold "$SB1" 8080 2 1 >"$WORK/direct.log"
expect_match "baseline: held connections straight to the sandbox, no failed request" "failed 0 broken 0$" \
    "$(tail -n 1 "$WORK/direct.log")"

# --- 1. Redeploy with del --owner old --drain while 20 connections finish ---
# The fresh-connection client and the new sandbox first, so that the 3 s of
# the held connections are still running when the redeploy starts.
topo_in client python3 "$CLIENTS" fresh "$NODE_IP" 8080 "$WORK/stop" >"$WORK/fresh.log" &
FRESH=$!
wait_for "$WORK/fresh.log" "sb1$"
sandbox 2
topo_in client python3 "$CLIENTS" hold "$NODE_IP" 8080 10 3 >"$WORK/ext.log" &
BG_PIDS+=($!)
topo_in_cgroup node python3 "$CLIENTS" hold 127.0.0.1 8080 10 3 >"$WORK/local.log" &
BG_PIDS+=($!)
BG_PIDS+=("$FRESH")
wait_for "$WORK/ext.log" "^ready" && wait_for "$WORK/local.log" "^ready"
expect_eq "the held connections reached sandbox 1" "ready sb1 ready sb1" \
    "$(head -n 1 "$WORK/ext.log") $(head -n 1 "$WORK/local.log")"
# External: also the fresh client's connections of the moment, open or half
# closed (a half-closed connection still carries data, so it counts; how many
# of those there are depends on timing).
expect_eq "get counts them per path (external at least 10, local 10)" "true 10" \
    "$(np_node get tcp/8080 --json | jq -r '.connections | "\(.external >= 10) \(.local)"')"
np_node set tcp/8080 "$SB2:8080" --owner sb-2 >/dev/null
t_set=$(date +%s.%N)
np_node del --owner sb-1 --drain --timeout 10 --json >"$WORK/drain.json"
code=$?
t_drained=$(date +%s.%N)
echo "     del --drain waited $(jq .drain.waited_seconds "$WORK/drain.json") s (timeout 10 s)"
expect_eq "del --owner sb-1 --drain exits 0 (drained, not at the timeout)" 0 "$code"
expect_eq "it drained sandbox 1's backend, replaced earlier by set" "true $SB1:8080 0" \
    "$(jq -r '"\(.drain.drained) \(.drain.backends[0]) \(.drain.left.total)"' "$WORK/drain.json")"
wait "${BG_PIDS[0]}" "${BG_PIDS[1]}"
last_close=$(awk '/^closed/ { print $2 }' "$WORK/ext.log" "$WORK/local.log" | sort -n | tail -n 1)
expect_eq "the redeploy began while the held connections were open" yes \
    "$(awk -v a="$t_set" -v b="$last_close" 'BEGIN { print (a < b ? "yes" : "no") }')"
expect_eq "it returned after the last connection closed, not before" yes \
    "$(awk -v a="$t_drained" -v b="$last_close" 'BEGIN { print (a >= b ? "yes" : "no: " b - a " s early") }')"
expect_eq "no failed request on the 10 external connections" "failed 0" \
    "$(awk '/^closed/ { print $5, $6 }' "$WORK/ext.log")"
expect_eq "no failed request on the 10 node-local connections" "failed 0" \
    "$(awk '/^closed/ { print $5, $6 }' "$WORK/local.log")"
expect_match "the 20 connections sent about 15 requests each" "^[0-9]+$" \
    "$(awk '/^closed/ { s += $4 } END { if (s >= 20 * 10) print s; else print "only " s }' "$WORK/ext.log" "$WORK/local.log")"
touch "$WORK/stop"
wait "${BG_PIDS[2]}"
expect_eq "new connections reached sandbox 2 from the set on, with no error, all along the drain" "0 0 yes" \
    "$(awk -v t="$t_set" -v e="$t_drained" '$1 >= t && $2 != "sb2" { bad++ } $1 < t && $2 == "error" { err++ }
        $1 >= t && $1 <= e && $2 == "sb2" { ok = "yes" } END { print bad + 0, err + 0, ok }' "$WORK/fresh.log")"
BG_PIDS=()
topo_sandbox_del 1

# --- 2. A connection that never closes: exit 5 at the timeout, 1 left, local ---
topo_in_cgroup node python3 "$CLIENTS" hold 127.0.0.1 8080 1 0 "$WORK/stop-forever" >"$WORK/forever.log" &
BG_PIDS+=($!)
wait_for "$WORK/forever.log" "^ready"
sandbox 3
np_node set tcp/8080 "$SB3:8080" --owner sb-3 >/dev/null
list=$(np_node list --json --unmapped)
expect_eq "list --json --unmapped shows the replaced backend with its connection, unmapped" \
    '{"backend_ip":"'"$SB2"'","mapped":false,"owner":null,"connections":{"external":0,"local":1}}' \
    "$(jq -c '.[] | select(.mapped == false) | {backend_ip, mapped, owner, connections}' <<<"$list")"
expect_eq "list --json alone lists only the mappings (what a controller reads as its mappings)" \
    '["'"$SB3"'"]' "$(np_node list --json | jq -c '[.[].backend_ip]')"
# The port form: the port is sandbox 3's now, and sb-2's backend, which the
# set replaced, is what it waits for.
np_node del tcp/8080 --owner sb-2 --drain --timeout 1 --json >"$WORK/timeout.json"
code=$?
expect_eq "del tcp/8080 --owner sb-2 --drain with a connection that never closes exits 5" 5 "$code"
expect_eq "the port is left to sb-3; it waited for sb-2's backend, replaced earlier" "held_by_other sb-3 $SB2:8080" \
    "$(jq -r '"\(.outcome) \(.holder) \(.replaced_earlier[0].backend_ip):\(.replaced_earlier[0].backend_port)"' \
        "$WORK/timeout.json")"
expect_eq "its JSON says 1 left, on the local path" "false 1 0 1" \
    "$(jq -r '.drain | "\(.drained) \(.left.total) \(.left.external) \(.left.local)"' "$WORK/timeout.json")"
out=$(np_node drain "$SB2:8080" --timeout 0)
code=$?
expect_eq "drain BACKEND --timeout 0 with it open: exit 5" 5 "$code"
expect_match "and says what is left" "^$SB2:8080: 1 connection left after [0-9.]+ s \(external 0, local 1\)$" "$out"
touch "$WORK/stop-forever"
wait "${BG_PIDS[0]}"
BG_PIDS=()
out=$(np_node drain "$SB2:8080" --timeout 5)
expect_match "once it is closed, drain exits 0" "^$SB2:8080 drained" "$out"
expect_eq "get of the live port shows no connection" '{"external":0,"local":0}' \
    "$(np_node get tcp/8080 --json | jq -c .connections)"

# --- 3. The same redeploy drained through the C ABI and through Go ---
# 2 external and 2 node-local connections to the old sandbox, each sending
# for 2 s; the port is set to the new sandbox, then the API deletes the old
# owner's ports and drains its backend: it returns after the last close.
# redeploy_through NAME OLD NEW PORT COMMAND...: COMMAND does the delete and
# the drain; its output is kept in $WORK/NAME.out.
redeploy_through() {
    local name=$1 old=$2 new=$3 port=$4
    shift 4
    sandbox "$old" && sandbox "$new"
    np_node set "tcp/$port" "$(topo_sandbox_ip "$old"):8080" --owner "sb-$old" >/dev/null
    topo_in client python3 "$CLIENTS" hold "$NODE_IP" "$port" 2 2 >"$WORK/$name-ext.log" &
    local ext=$!
    topo_in_cgroup node python3 "$CLIENTS" hold 127.0.0.1 "$port" 2 2 >"$WORK/$name-local.log" &
    local local_pid=$!
    wait_for "$WORK/$name-ext.log" "^ready" && wait_for "$WORK/$name-local.log" "^ready"
    np_node set "tcp/$port" "$(topo_sandbox_ip "$new"):8080" --owner "sb-$new" >/dev/null
    "$@" >"$WORK/$name.out" 2>&1
    local t_drained
    t_drained=$(date +%s.%N)
    wait "$ext" "$local_pid"
    local last_close
    last_close=$(awk '/^closed/ { print $2 }' "$WORK/$name-ext.log" "$WORK/$name-local.log" | sort -n | tail -n 1)
    expect_eq "$name: it returned after the last of the 4 connections closed, none failed" "yes failed 0 failed 0" \
        "$(awk -v a="$t_drained" -v b="$last_close" 'BEGIN { print (a >= b ? "yes" : "no: " b - a " s early") }') $(
            awk '/^closed/ { printf "%s %s ", $5, $6 }' "$WORK/$name-ext.log" "$WORK/$name-local.log" | sed 's/ $//')"
}
if [ -n "${C_SO:-}" ]; then
    redeploy_through C-ABI 4 5 8084 topo_in node python3 "$TESTS_DIR/drain_capi.py" "$C_SO" "$PIN" sb-4 \
        "$(topo_sandbox_ip 4)" 8080 10000
    expect_eq "C ABI: nodeport_drain returned NODEPORT_OK, nothing left" "drain 0 external 0 local 0" \
        "$(cat "$WORK/C-ABI.out")"
else
    echo "skip: no libnodeport_c.so (a static build)"
fi
GO=/usr/lib/go-1.22/bin/go
if [ -x "$GO" ] && [ -d /usr/share/gocode/src/github.com/cilium/ebpf ]; then
    (cd "$TESTS_DIR/../go" && CGO_ENABLED=0 GOTOOLCHAIN=local GOPROXY=off GOFLAGS=-mod=mod \
        GOCACHE="$WORK/go-cache" GOPATH="$WORK/go-path" "$GO" build -o "$WORK/controller" ./examples/controller) ||
        fail "go build ./examples/controller"
    redeploy_through Go 6 7 8086 topo_in node "$WORK/controller" -pin-dir "$PIN" -drain 10s destroy sb-6
    expect_eq "Go: DeleteOwner named the backend the set replaced, Drain drained it" \
        "replaced earlier tcp/8086 $(topo_sandbox_ip 6):8080|drained $(topo_sandbox_ip 6):8080 (0 connections left)" \
        "$(paste -sd'|' "$WORK/Go.out")"
else
    echo "skip: Go 1.22 or Debian's cilium/ebpf source is not installed (bash scripts/setup.sh)"
fi

# --- 4. Bad input changes nothing: exit 2, naming the field ---
before=$(np_node list --json | jq -c '[.[] | select(.mapped)]')
out=$(np_node drain nonsense 2>&1)
expect_eq "drain of a bad backend exits 2" "2 yes" "$? $(grep -q backend <<<"$out" && echo yes)"
out=$(np_node del tcp/8080 --timeout 3 2>&1)
expect_eq "--timeout without --drain exits 2" "2 yes" "$? $(grep -q timeout <<<"$out" && echo yes)"
out=$(np_node set tcp/8080 "$SB1:8080" --drain --timeout -1 2>&1)
expect_eq "a negative --timeout exits 2" "2 yes" "$? $(grep -q timeout <<<"$out" && echo yes)"
expect_eq "and nothing changed" "$before" "$(np_node list --json | jq -c '[.[] | select(.mapped)]')"

finish
