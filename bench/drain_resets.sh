#!/usr/bin/env bash
# drain_resets.sh NODEPORT [REDEPLOYS]: how many connections a redeploy cuts
# off, with and without --drain. Each redeploy: 4 connections to the current
# sandbox (2 external, 2 node-local), each sending every 0.2 s for 1.5 s;
# meanwhile a new sandbox, `set` to it, then the old one's teardown:
#   without: destroy the old sandbox, then `del --owner old` (today's order);
#   with:    `del --owner old --drain --timeout 10`, then destroy it.
# Prints the connections with a failed request, per mode. Test namespaces only.
set -u
NODEPORT=$(realpath "$1")
N=${2:-25}
. "$(dirname "$0")/../tests/lib.sh"
require datapath sock_destroy
test_begin dres
CLIENTS="$TESTS_DIR/drain_clients.py"
topo_node
topo_client
topo_cgroup
np_node() { topo_in node "$NODEPORT" "$1" --pin-dir "$PIN" "${@:2}"; }
np_node load --cgroup "$TOPO_CGROUP" --iface ext0 >/dev/null
WORK=$(mktemp -d /tmp/np-dres.XXXXXX)
on_cleanup() { rm -rf "$WORK"; }
wait_ready() { for _ in $(seq 1 100); do grep -q '^ready' "$1" 2>/dev/null && return 0; sleep 0.1; done; }

run() { # run MODE FIRST: N redeploys; prints the broken connections
    local mode=$1 prev=$2 new cycle broken=0 p1 p2
    topo_sandbox "$prev" && topo_serve "sb$prev" "sb$prev" 8080 --hold
    np_node set tcp/8080 "$(topo_sandbox_ip "$prev"):8080" --owner "sb-$prev" >/dev/null
    for cycle in $(seq 1 "$N"); do
        new=$((prev + 1))
        # The new sandbox first, so the connections are still open at the redeploy.
        topo_sandbox "$new" && topo_serve "sb$new" "sb$new" 8080 --hold
        topo_in client python3 "$CLIENTS" hold "$TOPO_NODE_EXT_IP" 8080 2 1.5 >"$WORK/e" & p1=$!
        topo_in_cgroup node python3 "$CLIENTS" hold 127.0.0.1 8080 2 1.5 >"$WORK/l" & p2=$!
        wait_ready "$WORK/e"; wait_ready "$WORK/l"
        np_node set tcp/8080 "$(topo_sandbox_ip "$new"):8080" --owner "sb-$new" >/dev/null
        if [ "$mode" = drain ]; then
            np_node del --owner "sb-$prev" --drain --timeout 10 >/dev/null
            topo_sandbox_del "$prev"
        else
            topo_sandbox_del "$prev"
            np_node del --owner "sb-$prev" >/dev/null
        fi
        wait "$p1" "$p2"
        broken=$((broken + $(awk '/^closed/ { s += $8 } END { print s + 0 }' "$WORK/e" "$WORK/l")))
        prev=$new
    done
    topo_sandbox_del "$prev"
    echo "$broken"
}
echo "without --drain: $(run plain 1) of $((N * 4)) connections cut off over $N redeploys"
echo "with --drain:    $(run drain 1001) of $((N * 4)) connections cut off over $N redeploys"
