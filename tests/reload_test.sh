#!/usr/bin/env bash
# Restart and in-place upgrade under traffic: `load` over a loaded nodeport
# swaps the programs behind the pinned links and keeps the pinned maps, so
# no connection fails. Ten loads in a row alternate this build and a
# test-only variant whose programs really differ (tests/nodeport-variant,
# built with bpf/test_variant.bpf.h on: another program tag), while new
# connections loop through the external and the local path and a long-lived
# external connection exchanges a line every 50 ms.
#   reload_test.sh NODEPORT auto|clsact VARIANT
#   (how the TC programs are attached; the variant's CLI)
set -u
NODEPORT=$1
MODE=$2
VARIANT=$3
. "$(dirname "$0")/lib.sh"
. "$TESTS_DIR/upgrade_lib.sh"
require datapath

test_begin reload
WORK=$(mktemp -d /tmp/np-reload.XXXXXX)
on_cleanup() {
    stop_traffic_on_cleanup
    rm -rf "$WORK"
}

[ -x "$VARIANT" ] || { fail "the test variant is built at $VARIANT (target nodeport_variant)"; finish; exit; }

topo_node
topo_client
topo_cgroup
topo_sandbox 1
topo_serve sb1 sb1 7000 --hold
load_with() {
    topo_in node "$1" load --pin-dir "$PIN" --cgroup "$TOPO_CGROUP" --iface ext0 --tc-attach "$MODE" >/dev/null
}

load_with "$NODEPORT" || { fail "first load"; finish; exit; }
np set tcp/7000 "$(topo_sandbox_ip 1):7000" --owner sb-1 >/dev/null
# The programs attached now: connect4 (its pinned link) and TC ingress on ext0
# (tcx link or clsact filter, as bpftool lists it).
tc_ingress_tag() {
    local id
    id=$(topo_in node bpftool -j net show dev ext0 | jq '.[0].tc[] | select(.name | startswith("np_tc_ingress")) | .id')
    bpftool -j prog show id "$id" | jq -r '.tag'
}
tags_of() { echo "$(prog_tag "$PIN/links/np_connect4") $(tc_ingress_tag)"; }
THIS_TAGS=$(tags_of)

start_traffic 7000
mark_traffic_window
failed_loads=0
seen_tags=()
for i in $(seq 1 10); do
    cli=$NODEPORT
    [ $((i % 2)) -eq 1 ] && cli=$VARIANT
    load_with "$cli" || failed_loads=$((failed_loads + 1))
    seen_tags+=("$(tags_of)")
    sleep 0.3
done
# And a restart: the same build twice in a row.
load_with "$NODEPORT" && load_with "$NODEPORT" || failed_loads=$((failed_loads + 1))
mark_traffic_window
sleep 1
stop_traffic

expect_eq "all 12 loads exit 0" 0 "$failed_loads"
alternating=yes
for i in $(seq 0 9); do
    want=$THIS_TAGS
    [ $((i % 2)) -eq 0 ] && want=variant
    if [ "$want" = variant ]; then [ "${seen_tags[$i]}" != "$THIS_TAGS" ] || alternating=no
    else [ "${seen_tags[$i]}" = "$THIS_TAGS" ] || alternating=no; fi
done
expect_eq "the attached programs alternate between the two builds (connect4 and TC ingress tags)" yes "$alternating"
expect_eq "the variant's programs differ from this build's" 2 \
    "$(printf '%s\n' "${seen_tags[@]}" | sort -u | wc -l)"
# `get` counts the clients' last connections while their closes finish:
# waited for, and far less than the 120 s a flow whose close went unseen
# would linger, so such a flow still fails this.
want="tcp/7000 -> $(topo_sandbox_ip 1):7000 owner sb-1"
wait_for 10 [ "$(np get tcp/7000)" = "$want" ]
expect_eq "the mapping survives every load, and no connection is left once the clients closed" "$want" \
    "$(np get tcp/7000)"
expect_eq "one link per hook: no second copy attached" 1 \
    "$(topo_in node bpftool -j net show dev ext0 | jq '[.[0].tc[] | select(.name | startswith("np_tc_ingress"))] | length')"
finish
