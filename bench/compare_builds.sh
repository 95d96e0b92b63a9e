#!/usr/bin/env bash
# What the TC programs of several builds cost over the same connection
# workload, side by side: each build in turn per round, on one topology.
#
#   client ns --ext0-- node ns --br0-- sandbox ns (np-echo-server :8080)
#
# Usage: bash bench/compare_builds.sh [--rounds N] [--seconds S] NAME=NODEPORT...
#   NAME=NODEPORT  a label and a nodeport binary (any build, any map ABI that
#                  loads with --iface and --tc-attach)
#   --rounds N     how many times each build runs (default 6)
#   --seconds S    each run's length (default 5)
# Each run: load with its own pin directory state (loaded, one port mapped,
# unloaded again), np-connbench from the client namespace to <node-ip>:30080
# under prog_stats.py, from a source address of the build's own. np-connbench
# and np-echo-server come from $NODEPORT_BENCH_BIN (default build/, configured
# with -DNODEPORT_BUILD_BENCH=ON). Prints one JSON line per run: ns per run of
# np_tc_ingress and np_tc_egress, runs per connection, connections. Nothing
# outside our namespaces, child cgroup and pin directory is touched.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
# shellcheck source=../scripts/topology.sh
source "$ROOT/scripts/topology.sh"

ROUNDS=6 SECONDS_PER_RUN=5
while [ $# -gt 0 ]; do
    case $1 in
        --rounds) ROUNDS=${2:?--rounds needs a number}; shift 2 ;;
        --seconds) SECONDS_PER_RUN=${2:?--seconds needs a number}; shift 2 ;;
        -h | --help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "compare_builds.sh: unknown option $1" >&2; exit 2 ;;
        *) break ;;
    esac
done
[ $# -gt 0 ] || { echo "compare_builds.sh: name at least one NAME=NODEPORT" >&2; exit 2; }
for spec in "$@"; do
    [[ $spec == ?*=?* && -x ${spec#*=} ]] || { echo "compare_builds.sh: '$spec' is not NAME=EXECUTABLE" >&2; exit 2; }
done
BENCH_BIN=${NODEPORT_BENCH_BIN:-$ROOT/build}
for tool in np-connbench np-echo-server; do
    [ -x "$BENCH_BIN/$tool" ] || { echo "compare_builds.sh: $BENCH_BIN/$tool is missing (a build with -DNODEPORT_BUILD_BENCH=ON)" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "compare_builds.sh: run as root (namespaces, BPF)" >&2; exit 1; }

topo_init "npc$$"
PIN=/sys/fs/bpf/$TOPO
LOADED=""
cleanup() {
    set +e
    [ -n "$LOADED" ] && topo_in node "$LOADED" unload --pin-dir "$PIN" >/dev/null 2>&1
    [ -e "$PIN" ] && rm -rf -- "$PIN"
    topo_cleanup
}
trap cleanup EXIT
trap 'exit 130' INT TERM

topo_node
topo_client
topo_sandbox 1
topo_cgroup
topo_in client sysctl -qw net.ipv4.ip_local_port_range="1024 65535" net.ipv4.tcp_tw_reuse=1
topo_in sb1 "$BENCH_BIN/np-echo-server" --port 8080 --threads 1 --lifetime 7200 >/dev/null 2>&1 &
topo_wait_listen sb1 8080
# A source address per build: with one for all, a SYN may land on the
# sandbox's TIME_WAIT socket of another build's connection (bench.sh says more).
for i in $(seq $#); do ip -n "$TOPO-client" addr add "10.200.0.$((9 + i))/24" dev eth0; done

for round in $(seq "$ROUNDS"); do
    i=0
    for spec in "$@"; do
        i=$((i + 1))
        name=${spec%%=*} np=${spec#*=}
        topo_in node "$np" load --pin-dir "$PIN" --cgroup "$TOPO_CGROUP" --iface ext0 --tc-attach tcx >/dev/null
        LOADED=$np
        topo_in node "$np" set tcp/30080 "$(topo_sandbox_ip 1):8080" --pin-dir "$PIN" >/dev/null
        python3 "$HERE/prog_stats.py" "$PIN" -- nsenter --net="/run/netns/$TOPO-client" "$BENCH_BIN/np-connbench" \
            --target "$TOPO_NODE_EXT_IP:30080" --duration "$SECONDS_PER_RUN" --warmup 0 --source "10.200.0.$((9 + i))" |
            jq -c --arg n "$name" --argjson r "$round" '{build: $n, round: $r, connections: .output.connections,
                ingress_ns: .programs.np_tc_ingress.ns_per_run, egress_ns: .programs.np_tc_egress.ns_per_run,
                ingress_runs_per_conn: (.programs.np_tc_ingress.run_cnt / .output.connections),
                egress_runs_per_conn: (.programs.np_tc_egress.run_cnt / .output.connections)}'
        topo_in node "$np" unload --pin-dir "$PIN" >/dev/null
        LOADED=""
        rm -rf -- "$PIN"
    done
done
