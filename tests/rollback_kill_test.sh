#!/usr/bin/env bash
# A load that fails half-way is taken back whole, and a command SIGKILLed at
# any point leaves a state the next command converges from:
#  1. a first load failing at each named point (test hook) leaves nothing;
#  2. a reload failing leaves the programs, values and attachments it found;
#  3. 65 interfaces are refused before anything changes; a reload that runs
#     out of tc_attachments room half-way (a real failure) is taken back,
#     the interfaces attached before it kept;
#  4. SIGKILL at named points of load, reload, set, sync and unload: the lock
#     is free, the table is before or after, the next command converges;
#  5. SIGKILL at random moments of first loads and reloads.
# Every command runs as nodeport-test-hooks, the CLI whose test hooks are live
# (the second argument; `nodeport` itself ignores NODEPORT_TEST_HOOK).
set -u
NODEPORT=$2
. "$(dirname "$0")/lib.sh"
require datapath tcx

test_begin rbkill
WORK=$(mktemp -d /tmp/np-rbkill.XXXXXX)
on_cleanup() {
    [ -n "${BG:-}" ] && kill -9 "$BG" 2>/dev/null
    rm -rf "$WORK"
}
topo_node
topo_client
topo_cgroup
topo_sandbox 1
topo_serve sb1 sb1 7000
SB1=$(topo_sandbox_ip 1)
npn() { topo_in node "$NODEPORT" "$1" --pin-dir "$PIN" "${@:2}"; }
# The same as one command line, for background runs: a shell function run
# with & is a subshell, and SIGKILL would reach the subshell, not nodeport
# (nsenter execs nodeport, so $! is nodeport's pid).
NPN=(nsenter --net="/run/netns/$TOPO-node" "$NODEPORT")
hooks_on_cgroup() { bpftool -j cgroup show "$TOPO_CGROUP" | jq -s 'add // [] | length'; }
tc_progs() { topo_in node bpftool -j net show dev "${1:-ext0}" | jq '[.[0].tc[]? | select(.name | startswith("np_"))] | length'; }
clsact_qdiscs() { topo_in node tc qdisc show dev ext0 | grep -c clsact; }
# What a first load that failed or was taken back must leave: nothing.
nothing_left() {
    echo "pins=$([ -e "$PIN" ] && echo yes || echo no) cgroup=$(hooks_on_cgroup) tc=$(tc_progs) qdisc=$(clsact_qdiscs)"
}
NOTHING="pins=no cgroup=0 tc=0 qdisc=0"
reaches_sb1() { topo_in client python3 "$TESTS_DIR/probe.py" tcp "$TOPO_NODE_EXT_IP" 7000 2>&1 | awk '{print $2}'; }
lock_free() { flock -n "$PIN" true && echo free || echo held; }
LOAD=(--cgroup "$TOPO_CGROUP" --iface ext0)

# --- 1. A first load failing at each point leaves nothing ---
for mode in tcx clsact; do
    for point in load:maps load:cgroup load:tc; do
        out=$(NODEPORT_TEST_HOOK=fail:$point npn load "${LOAD[@]}" --tc-attach "$mode" 2>&1)
        expect_eq "first load ($mode) failing at $point exits 1" "1 $NOTHING" "$? $(nothing_left)"
    done
done

# --- 2. A reload failing leaves what it found ---
for mode in tcx clsact; do
    npn load "${LOAD[@]}" --tc-attach "$mode" >/dev/null
    npn set tcp/7000 "$SB1:7000" >/dev/null
    state() {
        echo "$(prog_ids) $(bpftool -j cgroup show "$TOPO_CGROUP" | jq -c '[.[].id]')" \
             "$(bpftool -j map dump pinned "$PIN/flow_timeouts" | jq -c '.[0].formatted.value')" \
             "$(bpftool -j map dump pinned "$PIN/node_addrs" | jq -c '[.[].formatted.key.addr_be[0]] | sort')"
    }
    prog_ids() { topo_in node bpftool -j net show dev ext0 | jq -c '[.[0].tc[].id]'; }
    BEFORE=$(state)
    for point in load:maps load:cgroup load:tc; do
        out=$(NODEPORT_TEST_HOOK=fail:$point npn load "${LOAD[@]}" --tc-attach "$mode" --udp-timeout 5 --node-ip 10.99.0.1 2>&1)
        expect_eq "reload ($mode) failing at $point exits 1, programs, hooks, timeouts and addresses as before" \
            "1 $BEFORE" "$? $(state)"
    done
    expect_eq "and traffic flows ($mode)" sb1 "$(reaches_sb1)"
    npn unload >/dev/null
done

# --- 3. More interfaces than tc_attachments holds ---
MANY=()
for i in $(seq 1 65); do
    ip -n "$TOPO-node" link add "many$i" type veth peer name "manyp$i"
    MANY+=(--iface "many$i")
done
out=$(npn load --cgroup "$TOPO_CGROUP" "${MANY[@]}" --tc-attach clsact 2>&1)
expect_eq "a clsact load naming 65 interfaces is bad input (exit 2) and changes nothing" "2 $NOTHING" "$? $(nothing_left)"
expect_match "naming the limit" "iface: 65 interfaces named; nodeport attaches to at most 64" "$out"
expect_eq "no qdisc on any of them" 0 "$(for i in $(seq 1 65); do topo_in node tc qdisc show dev "many$i"; done | grep -c clsact)"
for i in $(seq 1 65); do ip -n "$TOPO-node" link del "many$i"; done

# --- 3b. Out of tc_attachments room half-way: a real failure, taken back ---
for i in $(seq 1 40); do
    ip -n "$TOPO-node" link add "old$i" type veth peer name "oldp$i"
    ip -n "$TOPO-node" link add "new$i" type veth peer name "newp$i"
done
OLD_IFACES=()
NEW_IFACES=()
for i in $(seq 1 40); do OLD_IFACES+=(--iface "old$i"); NEW_IFACES+=(--iface "new$i"); done
npn load --cgroup "$TOPO_CGROUP" "${OLD_IFACES[@]}" >/dev/null
npn set tcp/7000 "$SB1:7000" >/dev/null
out=$(npn load --cgroup "$TOPO_CGROUP" "${NEW_IFACES[@]}" 2>&1)
expect_eq "a reload naming 40 other interfaces with 40 attached fails (64 records at most)" 1 $?
attached_on() { local n=0 i; for i in $(seq 1 40); do n=$((n + $(tc_progs "$1$i"))); done; echo "$n"; }
expect_eq "and is taken back: the 40 attached stay, none of the new ones keeps a program" "80 0" \
    "$(attached_on old) $(attached_on new)"
expect_eq "the records are the 40 of before" 40 "$(bpftool -j map dump pinned "$PIN/tc_attachments" | jq length)"
npn unload >/dev/null
for i in $(seq 1 40); do ip -n "$TOPO-node" link del "old$i"; ip -n "$TOPO-node" link del "new$i"; done

# --- 4. SIGKILL at named points ---
# kill_at POINT CMD...: runs CMD with the pause hook at POINT, SIGKILLs it
# there; prints "killed" or why not.
kill_at() {
    local point=$1 pid
    shift
    rm -f "$WORK/hook.err"
    NODEPORT_TEST_HOOK=pause:$point "$@" >/dev/null 2>"$WORK/hook.err" &
    pid=$!
    BG=$pid
    for _ in $(seq 1 100); do
        grep -q "paused at $point" "$WORK/hook.err" 2>/dev/null && break
        sleep 0.05
    done
    if grep -q "paused at $point" "$WORK/hook.err"; then kill -9 "$pid"; wait "$pid" 2>/dev/null; echo killed
    else kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; echo "never paused: $(head -c 200 "$WORK/hook.err")"; fi
}
for point in load:maps load:cgroup load:tc; do
    expect_eq "first load killed at $point" killed "$(kill_at "$point" "${NPN[@]}" load --pin-dir "$PIN" "${LOAD[@]}")"
    expect_eq "the lock is free" free "$(lock_free)"
    out=$(npn unload 2>&1)
    expect_eq "unload after it exits 0 and leaves nothing" "0 $NOTHING" "$? $(nothing_left)"
done
npn load "${LOAD[@]}" >/dev/null
npn set tcp/7000 "$SB1:7000" >/dev/null
for point in load:maps load:cgroup load:tc load:end; do
    expect_eq "reload killed at $point" killed "$(kill_at "$point" "${NPN[@]}" load --pin-dir "$PIN" "${LOAD[@]}")"
    expect_eq "the lock is free, the mapping kept, traffic flows" "free tcp/7000 -> $SB1:7000 sb1" \
        "$(lock_free) $(npn get tcp/7000) $(reaches_sb1)"
    expect_eq "the next load exits 0 with one program per hook" "0 2" "$(npn load "${LOAD[@]}" >/dev/null; echo $?) $(tc_progs)"
done
expect_eq "set killed holding the lock" killed "$(kill_at set:locked "${NPN[@]}" set --pin-dir "$PIN" tcp/7000 10.8.9.9:7000)"
expect_eq "the lock is free and the table as before" "free tcp/7000 -> $SB1:7000" "$(lock_free) $(npn get tcp/7000)"
printf '[{"proto":"tcp","port":7000,"backend":"%s:7000"},{"proto":"udp","port":53,"backend":"10.8.9.9:53"}]' "$SB1" \
    >"$WORK/desired.json"
npn set tcp/8000 10.8.9.8:8000 >/dev/null  # an extra that sync removes
expect_eq "sync killed between its adds and its removals" killed "$(kill_at sync:added "${NPN[@]}" sync --pin-dir "$PIN" --file "$WORK/desired.json")"
expect_eq "the lock is free; each port is as before or as after" "free 3" "$(lock_free) $(npn list --json | jq length)"
expect_match "the next sync converges" "1 removed" "$(npn sync --file "$WORK/desired.json")"
expect_eq "to the desired table" "tcp/7000 udp/53" "$(npn list --json | jq -r '[.[] | "\(.proto)/\(.port)"] | sort | join(" ")')"
expect_eq "unload killed before it removed anything" killed "$(kill_at unload:start "${NPN[@]}" unload --pin-dir "$PIN")"
expect_eq "the lock is free and traffic flows" "free sb1" "$(lock_free) $(reaches_sb1)"
out=$(npn unload 2>&1)
expect_eq "the next unload exits 0 and leaves nothing" "0 $NOTHING" "$? $(nothing_left)"

# --- 5. SIGKILL at random moments ---
unconverged=0
for i in $(seq 1 15); do
    "${NPN[@]}" load --pin-dir "$PIN" "${LOAD[@]}" --tc-attach clsact >/dev/null 2>&1 &
    pid=$!
    sleep "0.$((RANDOM % 15))"
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    npn unload >/dev/null 2>&1  # exit 1 "not loaded" when it was killed before it made the directory
    [ "$(nothing_left)" = "$NOTHING" ] || { unconverged=$((unconverged + 1)); echo "run $i: $(nothing_left)"; }
done
expect_eq "15 first loads killed at random moments: unload after each leaves nothing" 0 "$unconverged"
npn load "${LOAD[@]}" >/dev/null
npn set tcp/7000 "$SB1:7000" >/dev/null
unconverged=0
for i in $(seq 1 15); do
    "${NPN[@]}" load --pin-dir "$PIN" "${LOAD[@]}" >/dev/null 2>&1 &
    pid=$!
    sleep "0.$((RANDOM % 15))"
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    [ "$(npn load "${LOAD[@]}" >/dev/null 2>&1; echo $?) $(reaches_sb1)" = "0 sb1" ] ||
        { unconverged=$((unconverged + 1)); echo "run $i: did not converge"; }
done
expect_eq "15 reloads killed at random moments: the next load converges and traffic flows" 0 "$unconverged"
finish
