#!/usr/bin/env bash
# A write killed between its change of `ports` and its socket walk is
# finished by the next write or load (issue 22, finding 6):
#  1. `nodeport` ignores NODEPORT_TEST_HOOK (only nodeport-test-hooks, the
#     second argument, obeys it): a release build cannot be stopped half-way;
#  2. a connected UDP client on the node, through 127.0.0.1, talks to sandbox
#     1; a sync to sandbox 2 is SIGKILLed after it changed `ports` and before
#     it ended that socket: the client still reaches sandbox 1, `status`
#     reports the pending walk (exit 3), and the next sync, with nothing left
#     to change, ends the socket: the client reaches sandbox 2;
#  3. the same for a set killed after its write, finished by `load`.
# With its own baseline: a client connected straight to each sandbox.
set -u
NODEPORT=$1
HOOKED=$2
. "$(dirname "$0")/lib.sh"
require datapath sock_destroy

test_begin sockres
CLIENTS="$TESTS_DIR/clients.py"
WORK=$(mktemp -d /tmp/np-sockres.XXXXXX)
BG_PIDS=()
on_cleanup() {
    [ "${#BG_PIDS[@]}" -gt 0 ] && kill "${BG_PIDS[@]}" 2>/dev/null
    rm -rf "$WORK"
}
topo_node
topo_cgroup
LOAD=(--cgroup "$TOPO_CGROUP" --local-only)
for n in 1 2; do topo_sandbox "$n" && topo_serve "sb$n" "sb$n" 6668; done
SB1=$(topo_sandbox_ip 1)
SB2=$(topo_sandbox_ip 2)

# --- 1. NODEPORT_TEST_HOOK: obeyed by nodeport-test-hooks only ---
out=$(NODEPORT_TEST_HOOK=fail:load:maps topo_in node "$HOOKED" load --pin-dir "$PIN" "${LOAD[@]}" 2>&1)
expect_eq "nodeport-test-hooks obeys fail:load:maps (exit 1, nothing left)" "1 no" \
    "$? $([ -e "$PIN" ] && echo yes || echo no)"
out=$(NODEPORT_TEST_HOOK=fail:load:maps np_node load "${LOAD[@]}" 2>&1)
expect_eq "nodeport ignores it: the load exits 0" 0 $?
printf '[{"proto":"udp","port":6668,"backend":"%s:6668"}]' "$SB1" >"$WORK/to-sb1.json"
out=$(NODEPORT_TEST_HOOK=pause:sync:added timeout 20 nsenter --net="/run/netns/$TOPO-node" "$NODEPORT" sync \
    --pin-dir "$PIN" --file "$WORK/to-sb1.json" 2>&1)
expect_eq "and pause:sync:added: the sync neither pauses nor fails" "0 1 added, 0 updated, 0 removed, 0 unchanged" \
    "$? $out"

# answers LOG SINCE NAME: whether LOG has an answer from NAME after time SINCE, waiting up to 5 s.
answers() {
    local log=$1 since=$2 name=$3
    for _ in $(seq 1 50); do
        awk -v t0="$since" -v name="$name" '$1 >= t0 && $2 == name { found = 1 } END { exit !found }' "$log" &&
            { echo yes; return; }
        sleep 0.1
    done
    echo no
}
now() { date +%s.%N; }
# kill_at POINT CMD...: runs CMD (nodeport-test-hooks) with the pause hook at
# POINT and SIGKILLs it there; prints "killed" or why not.
kill_at() {
    local point=$1 pid
    shift
    NODEPORT_TEST_HOOK=pause:$point "$@" >/dev/null 2>"$WORK/hook.err" &
    pid=$!
    for _ in $(seq 1 100); do
        grep -q "paused at $point" "$WORK/hook.err" 2>/dev/null && break
        sleep 0.05
    done
    if grep -q "paused at $point" "$WORK/hook.err"; then
        kill -9 "$pid"; wait "$pid" 2>/dev/null; echo killed
    else
        kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; echo "never paused: $(head -c 200 "$WORK/hook.err")"
    fi
}
HOOKED_NODE=(nsenter --net="/run/netns/$TOPO-node" "$HOOKED")

# --- Baseline: the same client straight to each sandbox ---
for n in 1 2; do
    topo_in_cgroup node python3 "$CLIENTS" udp-connected "$(topo_sandbox_ip "$n")" 6668 1 >"$WORK/direct$n.log"
    expect_eq "baseline: a connected UDP client reaches sandbox $n straight" yes "$(answers "$WORK/direct$n.log" 0 "sb$n")"
done

# --- 2. sync killed between its update and its socket walk ---
topo_in_cgroup node python3 "$CLIENTS" udp-connected 127.0.0.1 6668 60 >"$WORK/client.log" &
BG_PIDS+=($!)
expect_eq "a node client connected to 127.0.0.1:6668 reaches sandbox 1" yes "$(answers "$WORK/client.log" 0 sb1)"
printf '[{"proto":"udp","port":6668,"backend":"%s:6668"}]' "$SB2" >"$WORK/to-sb2.json"
expect_eq "sync to sandbox 2 killed at sync:added" killed \
    "$(kill_at sync:added "${HOOKED_NODE[@]}" sync --pin-dir "$PIN" --file "$WORK/to-sb2.json")"
expect_eq "ports says sandbox 2" "udp/6668 -> $SB2:6668" "$(np_node get udp/6668)"
t_kill=$(now)
sleep 1
expect_eq "the client's socket was not ended: it still reaches sandbox 1, never sandbox 2" "yes 0" \
    "$(answers "$WORK/client.log" "$t_kill" sb1) $(awk -v t0="$t_kill" '$1 >= t0 && $2 == "sb2"' "$WORK/client.log" |
        wc -l)"
status=$(np_node status --json); rc=$?
expect_eq "status: degraded (exit 3), the pending walk named" "3 udp/6668" \
    "$rc $(jq -r '[.problems[] | select(.kind == "socket_walk_pending") | .port] | join(",")' <<<"$status")"
expect_match "its detail names the old backend" "connected to $SB1:6668" \
    "$(jq -r '.problems[] | select(.kind == "socket_walk_pending") | .detail' <<<"$status")"
t0=$(now)
out=$(np_node sync --file "$WORK/to-sb2.json")
expect_eq "the next sync changes nothing and finishes the walk" \
    "0 added, 0 updated, 0 removed, 1 unchanged|ended 1 node socket connected to the old backend|finished the socket walk of an interrupted write (1 replaced backend)" \
    "$(paste -sd'|' <<<"$out")"
expect_eq "the client reaches sandbox 2" yes "$(answers "$WORK/client.log" "$t0" sb2)"
status=$(np_node status --json)
expect_eq "status: no pending walk" 0 "$(jq '[.problems[] | select(.kind == "socket_walk_pending")] | length' <<<"$status")"

# --- 3. set killed after its write, finished by load ---
expect_eq "set to sandbox 1 killed at set:written" killed \
    "$(kill_at set:written "${HOOKED_NODE[@]}" set --pin-dir "$PIN" udp/6668 "$SB1:6668")"
t_kill=$(now)
sleep 1
expect_eq "the client still reaches sandbox 2" yes "$(answers "$WORK/client.log" "$t_kill" sb2)"
t0=$(now)
json=$(np_node load "${LOAD[@]}" --json)
expect_eq "load finishes the walk" "1 1" "$(jq -r '"\(.resumed_targets) \(.sockets_ended)"' <<<"$json")"
expect_eq "the client reaches sandbox 1" yes "$(answers "$WORK/client.log" "$t0" sb1)"

# --- A write killed before it changed the map leaves nothing to end ---
expect_eq "set to sandbox 2 killed at set:locked" killed \
    "$(kill_at set:locked "${HOOKED_NODE[@]}" set --pin-dir "$PIN" udp/6668 "$SB2:6668")"
expect_eq "status: healthy" 0 "$(np_node status >/dev/null; echo $?)"
t0=$(now)
out=$(np_node set tcp/7000 "$SB1:7000")
expect_eq "the next write ends nothing" "tcp/7000 -> $SB1:7000" "$out"
sleep 0.5
expect_eq "the client stays on sandbox 1 without an error" "0" \
    "$(awk -v t0="$t0" '$1 >= t0 && $2 != "sb1"' "$WORK/client.log" | wc -l)"
finish
