#!/usr/bin/env bash
# watch beyond the 64 interfaces nodeport attaches to, and watch following
# what load recorded (issue 22, finding 4), in a node namespace of its own:
#  1. load --iface all --exclude br0; `watch --json` with no interface
#     options follows that choice;
#  2. 70 veths appear (their peers in the client's namespace): 71 chosen. watch attaches 64 (ext0, which
#     was attached, among them), reports the 7 others in an error event and
#     in its changed event, never fails on a full tc_attachments, and does
#     not retry; the records are exactly the interfaces with programs;
#     `status` is degraded (exit 3), naming each unattached interface;
#  3. 10 of them go: all 61 are attached, status is healthy again;
#  4. a new load --iface ext0: watch follows the new record at the next change;
#  5. pins without the record (an earlier nodeport's): status says so, healthy.
# Through it all a client reaches a sandbox through ext0, as it reaches it
# straight (the baseline).
set -u
NODEPORT=$1
. "$(dirname "$0")/lib.sh"
require datapath

test_begin wlimit
WORK=$(mktemp -d /tmp/np-wlimit.XXXXXX)
WATCH_PID=""
on_cleanup() {
    [ -n "$WATCH_PID" ] && { kill "$WATCH_PID"; wait "$WATCH_PID"; } 2>/dev/null
    rm -rf "$WORK"
}
topo_node
topo_client
topo_cgroup
topo_sandbox 1
topo_serve sb1 sb1 6667
SB1=$(topo_sandbox_ip 1)
status() { topo_in node "$NODEPORT" status --pin-dir "$PIN" "$@"; }
programs_on() { topo_in node bpftool net show dev "$1" 2>/dev/null | grep -cE 'np_tc_(ingress|egress)'; }
records() { bpftool -j map dump pinned "$PIN/tc_attachments" | jq -r '[.[].formatted.value.ifname] | sort | join(" ")'; }
reaches() { topo_in client nc -w 3 "$1" 6667 </dev/null; }
# The last event of a kind the watch printed (stdout and stderr).
last_event() { cat "$WORK/watch.out" "$WORK/watch.err" | jq -c "select(.event == \"$1\")" 2>/dev/null | tail -n 1; }
# wait_for JQ-FILTER: until the last "changed" event satisfies it (10 s at most).
wait_for() {
    for _ in $(seq 1 100); do
        [ "$(last_event changed | jq -r "$1" 2>/dev/null)" = true ] && return 0
        sleep 0.1
    done
    return 1
}
MANY=$(seq -f 'many%g' 1 70)

expect_eq "baseline: the client reaches the sandbox straight" "sb1 $TOPO_CLIENT_IP" "$(reaches "$SB1")"
topo_in node "$NODEPORT" load --pin-dir "$PIN" --cgroup "$TOPO_CGROUP" --iface all --exclude br0 >/dev/null
expect_eq "load --iface all --exclude br0 exits 0" 0 $?
np set tcp/6667 "$SB1:6667" >/dev/null
expect_eq "through the node port on ext0" "sb1 $TOPO_CLIENT_IP" "$(reaches "$TOPO_NODE_EXT_IP")"
expect_eq "status: healthy" 0 "$(status >/dev/null; echo $?)"

# --- 1. watch with no interface options follows load's choice ---
nsenter --net="/run/netns/$(topo_ns node)" "$NODEPORT" watch --pin-dir "$PIN" --json \
    >"$WORK/watch.out" 2>"$WORK/watch.err" &
WATCH_PID=$!
wait_for '.interfaces | length == 1'
expect_eq "watch without interface options follows the recorded choice" \
    'recorded|--iface all --exclude br0|["ext0"]|[]' \
    "$(last_event changed | jq -r '"\(.choice_from)|\(.choice)|\([.interfaces[].name] | tojson)|\(.unattached | tojson)"')"

# --- 2. 70 more: 71 chosen ---
# (veths: the dummy module may be missing; each peer goes to the client's namespace.)
add_iface() { ip -n "$(topo_ns node)" link add "$1" type veth peer name "p-$1" netns "$(topo_ns client)"; }
for d in $MANY; do add_iface "$d"; done
wait_for '.unattached | length == 7'
changed=$(last_event changed)
expect_eq "watch attaches 64 and names the 7 left over, ext0 still attached" "64 7 yes" \
    "$(jq -r '"\(.interfaces | length) \(.unattached | length) \(if any(.interfaces[]; .name == "ext0") then "yes" else "no" end)"' <<<"$changed")"
UNATTACHED=$(jq -r '.unattached | sort | join(" ")' <<<"$changed")
ATTACHED=$(jq -r '[.interfaces[].name] | sort | join(" ")' <<<"$changed")
error=$(last_event error)
expect_match "an error event says why, naming the limit" \
    "71 interfaces chosen \(--iface all --exclude br0\); nodeport attaches to at most 64: 7 not attached" \
    "$(jq -r .error <<<"$error")"
expect_eq "and lists them" "$UNATTACHED" "$(jq -r '.unattached | sort | join(" ")' <<<"$error")"
sleep 1  # time for retries, were there any
expect_eq "no resync failed: no retry event, no full tc_attachments" "0 0" \
    "$(grep -c '"retry"' "$WORK/watch.err") $(grep -c 'Argument list too long' "$WORK/watch.err")"
expect_eq "tc_attachments holds exactly the 64 attached" "$ATTACHED" "$(records)"
with_programs=""
without=""
for i in ext0 $MANY; do
    case $(programs_on "$i") in
    2) with_programs="$with_programs $i" ;;
    0) without="$without $i" ;;
    *) without="$without $i(half)" ;;
    esac
done
expect_eq "the 64 have both programs, the 7 none" "$ATTACHED|$UNATTACHED" \
    "$(tr ' ' '\n' <<<"$with_programs" | sed '/^$/d' | sort | paste -sd' ')|$(tr ' ' '\n' <<<"$without" | sed '/^$/d' | sort | paste -sd' ')"
json=$(status --json); rc=$?
expect_eq "status: degraded (exit 3), each unattached interface named" "3 $UNATTACHED" \
    "$rc $(jq -r '[.problems[] | select(.kind == "unattached_interface") | .detail | capture("^interface (?<n>[^ ]+) ").n] | sort | join(" ")' <<<"$json")"
expect_match "the detail says why" "71 are chosen and nodeport attaches to at most 64: leave some out with --exclude" \
    "$(jq -r '[.problems[] | select(.kind == "unattached_interface")][0].detail' <<<"$json")"
expect_eq "the client still reaches the sandbox through ext0" "sb1 $TOPO_CLIENT_IP" "$(reaches "$TOPO_NODE_EXT_IP")"

# --- 3. 10 go: 61 chosen, all attached ---
for d in $(seq -f 'many%g' 1 10); do topo_in node ip link del "$d"; done
wait_for '(.unattached | length == 0) and (.interfaces | length == 61)'
expect_eq "watch attaches all 61" "61 0" \
    "$(last_event changed | jq -r '"\(.interfaces | length) \(.unattached | length)"')"
expect_eq "tc_attachments holds 61" 61 "$(records | wc -w)"
expect_eq "status: healthy again" 0 "$(status >/dev/null; echo $?)"

# --- 4. A new load records another choice; watch follows it at the next change ---
topo_in node "$NODEPORT" load --pin-dir "$PIN" --cgroup "$TOPO_CGROUP" --iface ext0 >/dev/null
expect_eq "load --iface ext0 exits 0 and detaches the others" "ext0" "$(records)"
add_iface late0
wait_for '.choice == "--iface ext0"'
expect_eq "watch follows load's new choice: ext0 alone, late0 not attached" 'recorded|["ext0"]|0' \
    "$(last_event changed | jq -r '"\(.choice_from)|\([.interfaces[].name] | tojson)"')|$(programs_on late0)"
expect_eq "status: healthy" 0 "$(status >/dev/null; echo $?)"
kill -TERM "$WATCH_PID"
wait "$WATCH_PID"
expect_eq "watch exits 0 on SIGTERM" 0 $?
WATCH_PID=""

# --- 5. Pins of an earlier nodeport, without the record ---
rm "$PIN/iface_choice"
json=$(status --json); rc=$?
expect_eq "status: healthy, the check not made, and why" "0 1" \
    "$rc $(jq '[.not_checked[] | select(startswith("chosen interfaces: no interface choice recorded"))] | length' <<<"$json")"
topo_in node "$NODEPORT" load --pin-dir "$PIN" --cgroup "$TOPO_CGROUP" --iface all --exclude br0 --exclude 'many*' \
    --exclude late0 >/dev/null
expect_eq "a load records it again" "0|0" \
    "$?|$(status --json | jq '[.not_checked[] | select(startswith("chosen interfaces"))] | length')"
for d in $(seq -f 'many%g' 11 70) late0; do topo_in node ip link del "$d"; done
finish
