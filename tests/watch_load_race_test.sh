#!/usr/bin/env bash
# A load that records another interface choice while a watch resyncs is not
# undone by that resync: the watch reads the choice in force and attaches what
# it names under one hold of the pin directory lock, so the load waits for it
# and its detaches come last. (A resync that read `--iface all` before a load
# of `--iface ext0` and attached after it put the others back:
# watch_limit_test failed on it in CI.)
# The watch is nodeport-test-hooks (the second argument), paused at
# watch:chosen, its interfaces chosen and not yet attached, while the load
# runs; SIGUSR1 resumes it.
set -u
NODEPORT=$1
HOOKS=$2
. "$(dirname "$0")/lib.sh"
require datapath

test_begin wrace
WORK=$(mktemp -d /tmp/np-wrace.XXXXXX)
WATCH_PID=""
LOAD_PID=""
on_cleanup() {
    for pid in $WATCH_PID $LOAD_PID; do { kill -9 "$pid" && wait "$pid"; } 2>/dev/null; done
    rm -rf "$WORK"
}
topo_node
topo_client
topo_cgroup
topo_sandbox 1
topo_serve sb1 sb1 6667
SB1=$(topo_sandbox_ip 1)
reaches() { topo_in client nc -w 3 "$1" 6667 </dev/null; }
records() { bpftool -j map dump pinned "$PIN/tc_attachments" | jq -r '[.[].formatted.value.ifname] | sort | join(" ")'; }
programs_on() { topo_in node bpftool net show dev "$1" 2>/dev/null | grep -cE 'np_tc_(ingress|egress)'; }
for d in extra0 extra1; do
    ip -n "$(topo_ns node)" link add "$d" type veth peer name "p-$d" netns "$(topo_ns client)"
done

expect_eq "baseline: the client reaches the sandbox straight" "sb1 $TOPO_CLIENT_IP" "$(reaches "$SB1")"
topo_in node "$NODEPORT" load --pin-dir "$PIN" --cgroup "$TOPO_CGROUP" --iface all --exclude br0 >/dev/null
np set tcp/6667 "$SB1:6667" >/dev/null
expect_eq "load --iface all --exclude br0 attaches ext0 and the two others" "ext0 extra0 extra1" "$(records)"

# The watch pauses in its first resync, `--iface all` read, nothing attached.
NODEPORT_TEST_HOOK=pause:watch:chosen nsenter --net="/run/netns/$(topo_ns node)" \
    "$HOOKS" watch --pin-dir "$PIN" --json >"$WORK/watch.out" 2>"$WORK/watch.err" &
WATCH_PID=$!
wait_for 10 grep -q "paused at watch:chosen" "$WORK/watch.err"
expect_eq "the watch is paused in its resync" 0 $?

nsenter --net="/run/netns/$(topo_ns node)" "$NODEPORT" load --pin-dir "$PIN" --cgroup "$TOPO_CGROUP" \
    --iface ext0 --wait 30 >"$WORK/load.out" 2>&1 &
LOAD_PID=$!
# The load must wait for the resync's lock: 2 s is long enough for a load
# that does not wait to be done (one takes about 0.3 s here).
wait_for 2 bash -c "! kill -0 $LOAD_PID 2>/dev/null"
expect_eq "the load waits for the resync in progress" waiting \
    "$(kill -0 "$LOAD_PID" 2>/dev/null && echo waiting || echo done)"
kill -USR1 "$WATCH_PID"
wait "$LOAD_PID"
expect_eq "then the load exits 0" 0 $?
LOAD_PID=""
expect_eq "and its choice stands: ext0 alone" "ext0|0 0" "$(records)|$(programs_on extra0) $(programs_on extra1)"
expect_eq "through the node port on ext0" "sb1 $TOPO_CLIENT_IP" "$(reaches "$TOPO_NODE_EXT_IP")"
finish
