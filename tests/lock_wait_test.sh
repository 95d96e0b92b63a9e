#!/usr/bin/env bash
# Writers wait a bounded time for the pin directory's lock: with the lock held
# by another process (util-linux flock on the pin directory), every command
# that takes it fails after --wait seconds (exit 1) naming the holder's pid and
# command, changes nothing, and succeeds once the holder is gone.
set -u
NODEPORT=$1
. "$(dirname "$0")/lib.sh"
require datapath

test_begin lockwait
HOLDER=""
SYNC_FILE=$(mktemp)
on_cleanup() {
    # The holder runs in its own process group (setsid): flock and its sleep.
    [ -n "$HOLDER" ] && kill -- -"$HOLDER" 2>/dev/null
    rm -f "$SYNC_FILE"
}
topo_node
topo_cgroup

topo_in node "$NODEPORT" load --pin-dir "$PIN" --cgroup "$TOPO_CGROUP" --local-only >/dev/null ||
    { fail "load"; finish; exit 1; }
np set tcp/6667 10.8.0.2:6667 --owner sb-1 >/dev/null
before=$(np list --json)
echo '[{"proto": "tcp", "port": 7000, "backend": "10.8.0.3:7000"}]' >"$SYNC_FILE"

now_ms() { echo $(($(date +%s%N) / 1000000)); }

hold_lock() {
    setsid flock "$PIN" sleep 60 &
    HOLDER=$!
    for _ in $(seq 100); do
        flock -n "$PIN" true 2>/dev/null || return 0
        sleep 0.02
    done
    fail "the test's flock holder took the lock"
}

release_lock() {
    kill -- -"$HOLDER" 2>/dev/null
    wait "$HOLDER" 2>/dev/null
    HOLDER=""
}

hold_lock
HELD="pin directory $PIN is locked by pid $HOLDER \(flock\)"

# set --wait 1: gives up after about 1 s, naming the holder.
start=$(now_ms)
out=$(np set tcp/6667 10.8.0.9:80 --wait 1 2>&1); rc=$?
elapsed=$(($(now_ms) - start))
expect_eq "set --wait 1 behind a held lock exits 1" 1 "$rc"
expect_match "and names the holder's pid and command, and the wait" "$HELD for more than 1 s" "$out"
echo "     set --wait 1 gave up after $elapsed ms"
[ "$elapsed" -ge 950 ] && [ "$elapsed" -le 2000 ] && pass "it waited 1-2 s ($elapsed ms)" ||
    fail "it waited 1-2 s: $elapsed ms"

# --wait 0: at once.
start=$(now_ms)
out=$(np set tcp/6667 10.8.0.9:80 --wait 0 2>&1); rc=$?
elapsed=$(($(now_ms) - start))
expect_eq "set --wait 0 exits 1" 1 "$rc"
expect_match "and names the holder" "$HELD$" "$out"
[ "$elapsed" -le 500 ] && pass "--wait 0 fails at once ($elapsed ms)" || fail "--wait 0 fails at once: $elapsed ms"

# Every command that takes the lock.
for cmd in "del tcp/6667" "flush" "sync --file $SYNC_FILE" "refresh" "unload"; do
    out=$(np $cmd --wait 0 2>&1); rc=$?
    expect_eq "${cmd%% *} --wait 0 behind a held lock exits 1" 1 "$rc"
    expect_match "${cmd%% *} names the holder" "$HELD" "$out"
done
out=$(topo_in node "$NODEPORT" load --pin-dir "$PIN" --cgroup "$TOPO_CGROUP" --local-only --wait 0 2>&1); rc=$?
expect_eq "load --wait 0 behind a held lock exits 1" 1 "$rc"
expect_match "load names the holder" "$HELD" "$out"
# watch takes a held lock for a passing state: it says who holds it and
# tries again (the retry backoff) instead of exiting.
out=$(timeout 3 nsenter --net="/run/netns/$TOPO-node" "$NODEPORT" watch --pin-dir "$PIN" --local-only --wait 0 2>&1); rc=$?
expect_eq "watch --wait 0 behind a held lock keeps running, retrying (ended by timeout)" 124 "$rc"
expect_match "watch names the holder" "$HELD" "$out"
expect_eq "nothing changed meanwhile" "$before" "$(np list --json)"

# The default wait: 5 s.
start=$(now_ms)
out=$(np del tcp/6667 2>&1); rc=$?
elapsed=$(($(now_ms) - start))
expect_eq "del with the default wait exits 1" 1 "$rc"
expect_match "after 5 s" "$HELD for more than 5 s" "$out"
[ "$elapsed" -ge 4950 ] && [ "$elapsed" -le 6500 ] && pass "the default wait is about 5 s ($elapsed ms)" ||
    fail "the default wait is about 5 s: $elapsed ms"

# Bad --wait values are bad input (exit 2), checked before the lock.
for value in -1 abc 1.5 3601 ""; do
    out=$(np set tcp/6667 10.8.0.9:80 --wait "$value" 2>&1); rc=$?
    expect_eq "--wait '$value' exits 2" 2 "$rc"
    expect_match "--wait '$value' names the field" "wait" "$out"
done
out=$(np set tcp/6667 10.8.0.9:80 --wai 1 2>&1); rc=$?
expect_eq "--wai (a prefix) is an unknown option, exit 2" 2 "$rc"

# A holder that lets go within the wait: the writer goes on.
start=$(now_ms)
np set tcp/6667 10.8.0.4:6667 --owner sb-1 --wait 10 >/dev/null 2>&1 &
WRITER=$!
sleep 1
release_lock
wait "$WRITER"; rc=$?
elapsed=$(($(now_ms) - start))
expect_eq "a writer whose holder lets go within --wait exits 0" 0 "$rc"
[ "$elapsed" -le 3000 ] && pass "and goes on right after ($elapsed ms)" || fail "and goes on right after: $elapsed ms"
expect_eq "its change is there" "tcp/6667 -> 10.8.0.4:6667 owner sb-1" "$(np get tcp/6667)"

# Nobody holds it: every writer succeeds with --wait 0.
expect_eq "set --wait 0 with the lock free exits 0" 0 "$(np set udp/53 10.8.0.2:53 --wait 0 >/dev/null 2>&1; echo $?)"
expect_eq "sync --wait 0 exits 0" 0 "$(np sync --file "$SYNC_FILE" --wait 0 >/dev/null 2>&1; echo $?)"
expect_eq "unload --wait 0 exits 0" 0 "$(np unload --wait 0 >/dev/null 2>&1; echo $?)"
finish
