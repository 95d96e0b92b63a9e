#!/usr/bin/env bash
# Benchmarks side by side: the new-connection rate, bulk throughput, control
# plane cost and map memory of nodeport next to iptables DNAT (as the runtime
# used it) and an nft map, all on one throw-away topology:
#
#   client ns --ext0-- node ns --br0-- sandbox ns (np-echo-server :8080, iperf3 :5201)
#
# IPv4 and IPv6 on the same links: the IPv6 rows (floor6, ip6tables-0,
# nodeport-ext6, floor-node6, nodeport-local6) beside the IPv4 ones.
#
# Usage: bash bench/bench.sh [--quick] [--json FILE] [--build-dir DIR]
#   --quick      under a minute: fewer reps, shorter runs, fewer rounds
#   --json FILE  where the JSON result goes (default bench-results.json)
#   --build-dir  use nodeport and the np-* tools already built in DIR (configured
#                with -DNODEPORT_BUILD_BENCH=ON); without it, bench.sh configures
#                build/ with that option and builds what it needs there
# Prints a Markdown report on stdout (bench/report.py; `report.py --from FILE`
# prints it again from the JSON result), progress on stderr.
#
# Every number printed was measured in this run; what could not be measured
# is printed as n/a with the reason. Nothing outside our namespaces, our child
# cgroup and our pin directory is touched, and all of it is removed on exit.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
# shellcheck source=../scripts/topology.sh
source "$ROOT/scripts/topology.sh"
# shellcheck source=lib.sh
source "$HERE/lib.sh"

MODE=full
JSON_OUT=bench-results.json
BUILD=""
while [ $# -gt 0 ]; do
    case $1 in
        --quick) MODE=quick ;;
        --json) JSON_OUT=${2:?--json needs a file}; shift ;;
        --build-dir) BUILD=${2:?--build-dir needs a directory}; shift ;;
        -h | --help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done

if [ "$MODE" = quick ]; then
    REPS=3 BENCH_DURATION=0.5 BENCH_WARMUP=0.1
    BENCH_IPERF_SECONDS=1 IPERF_REPS=1
    K_API=200 K_CLI=10 K_IPT=3 K_NFT=10 CLI_SEQ=100 PATH_COST_RUNS=2000
else
    REPS=5 BENCH_DURATION=3 BENCH_WARMUP=0.3
    BENCH_IPERF_SECONDS=3 IPERF_REPS=3
    K_API=2000 K_CLI=50 K_IPT=10 K_NFT=50 CLI_SEQ=1000 PATH_COST_RUNS=100000
fi
CTL_SIZES=(100 1000 10000)
STALE_SIZES=(0 1000 10000)

[ "$(id -u)" = 0 ] || { echo "bench.sh: run as root (namespaces, BPF)" >&2; exit 1; }
BENCH_TARGETS=(nodeport_cli np-connbench np-echo-server np-portbench np-progbench)
if [ -z "$BUILD" ]; then
    # The tools are built only with -DNODEPORT_BUILD_BENCH=ON: turn it on in
    # build/ (other options in its cache stay as they are) and build just them.
    BUILD=$ROOT/build
    bench_log "building ${BENCH_TARGETS[*]} in $BUILD (-DNODEPORT_BUILD_BENCH=ON)"
    cmake -S "$ROOT" -B "$BUILD" -DNODEPORT_BUILD_BENCH=ON >&2 &&
        cmake --build "$BUILD" -j "$(nproc)" --target "${BENCH_TARGETS[@]}" >&2 ||
        { echo "bench.sh: building the benchmark tools in $BUILD failed (bash scripts/setup.sh installs what they need)" >&2; exit 1; }
fi
NODEPORT=$BUILD/nodeport
BENCH_BIN=$BUILD
for tool in "$NODEPORT" "$BENCH_BIN/np-connbench" "$BENCH_BIN/np-echo-server" "$BENCH_BIN/np-portbench" "$BENCH_BIN/np-progbench"; do
    [ -x "$tool" ] || { echo "bench.sh: $tool is missing: configure $BUILD with -DNODEPORT_BUILD_BENCH=ON and build it (cmake -S $ROOT -B $BUILD -DNODEPORT_BUILD_BENCH=ON && cmake --build $BUILD), or run bench.sh without --build-dir" >&2; exit 1; }
done
for tool in iperf3 nft iptables iptables-restore ip6tables-restore bpftool jq python3 nsenter ss; do
    command -v "$tool" >/dev/null || { echo "bench.sh: $tool is missing (bash scripts/setup.sh installs it)" >&2; exit 1; }
done
JSON_OUT=$(realpath -m "$JSON_OUT")

topo_init "npb$$"
PIN=/sys/fs/bpf/$TOPO
WORK=$(mktemp -d /tmp/npbench.XXXXXX)
BENCH_RAW=$WORK/raw.jsonl
: >"$BENCH_RAW"

cleanup() {
    set +e
    if [ -e "$PIN" ]; then
        # In a namespace of ours, so no interface index can name one of the
        # root namespace's interfaces.
        [ -e "/run/netns/$TOPO-node" ] || ip netns add "$TOPO-unload"
        local ns=node
        [ -e "/run/netns/$TOPO-node" ] || ns=unload
        topo_in "$ns" "$NODEPORT" unload --pin-dir "$PIN" >/dev/null 2>&1
        [ -e "$PIN" ] && rm -rf -- "$PIN"
    fi
    topo_cleanup
    rm -rf -- "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- topology --------------------------------------------------------------
bench_log "$MODE run: topology $TOPO, pin dir $PIN"
topo_node
topo_client
topo_sandbox 1
topo_cgroup
SB=$(topo_sandbox_ip 1)
NODE=$TOPO_NODE_EXT_IP
NP=30080 NP_IPERF=30201
SB6=$(topo_sandbox_ip6 1)
NODE6=$TOPO_NODE_EXT_IP6
for ns in client node; do
    topo_in "$ns" sysctl -qw net.ipv4.ip_local_port_range="1024 65535" net.ipv4.tcp_tw_reuse=1
done

# Each contender connects from an address of its own. Contenders share the
# sandbox and (through NAT) its 4-tuples; with one source address for all,
# a SYN lands on the sandbox's TIME_WAIT socket of another contender's
# connection with an unrelated timestamp and sequence number, or clashes with
# its conntrack entry on the node, and waits 1 s for a retransmit.
declare -A SRC
i=10
for c in floor iptables-0 iptables-1000 iptables-10000 iptables-10000-nomatch nft-map-10000 \
    nodeport-ext nodeport-ext-65535 nodeport-ext-fib iperf-floor iperf-iptables-0 iperf-nodeport-ext \
    iperf-nodeport-ext-fib; do
    SRC[$c]=10.200.0.$i
    ip -n "$TOPO-client" addr add "${SRC[$c]}/24" dev eth0
    i=$((i + 1))
done
i=10
for c in floor-node nodeport-local nodeport-local-65535; do
    SRC[$c]=10.8.255.$i
    ip -n "$TOPO-node" addr add "${SRC[$c]}/16" dev br0
    i=$((i + 1))
done
i=10
for c in floor6 ip6tables-0 nodeport-ext6; do
    SRC[$c]=2001:db8:200::$i
    i=$((i + 1))
done
i=10
for c in floor-node6 nodeport-local6; do
    SRC[$c]=fd00:8::ff:$i
    i=$((i + 1))
done

# IPv6 beside IPv4 on the same links: the node's addresses on ext0 and br0,
# the client's and the sandbox's, forwarding on, and the sources above
# (nodad: usable at once, as the topology's own). Where a namespace has no
# IPv6, the IPv6 rows say why. The topo_*_ipv6 functions go on past a failed
# step (a function's status is its last command's), so any message counts as
# a failure: all goes silently when it works.
ip6_setup() {
    topo_node_ipv6 && topo_client_ipv6 && topo_sandbox_ipv6 1 || return 1
    local c
    for c in floor6 ip6tables-0 nodeport-ext6; do
        ip -n "$TOPO-client" addr add "${SRC[$c]}/64" dev eth0 nodad || return 1
    done
    for c in floor-node6 nodeport-local6; do
        ip -n "$TOPO-node" addr add "${SRC[$c]}/64" dev br0 nodad || return 1
    done
}
IP6=1
IP6_WHY=""
if ! err=$(ip6_setup 2>&1) || [ -n "$err" ]; then
    IP6=0
    IP6_WHY="no IPv6 in the namespaces: ${err%%$'\n'*}" # its first line: the notes are one a line
fi

topo_in sb1 "$BENCH_BIN/np-echo-server" --port 8080 --threads 1 --lifetime 1800 >/dev/null 2>&1 &
topo_in sb1 timeout 1800 iperf3 -s -p 5201 >/dev/null 2>&1 &
topo_wait_listen sb1 8080
topo_wait_listen sb1 5201

# --- nodeport --------------------------------------------------------------
EXT=1
EXT_WHY=""
LOAD_ARGS=(--iface ext0 --tc-attach tcx)

np() { topo_in node "$NODEPORT" "$@" --pin-dir "$PIN"; }
np_load() { topo_in node "$NODEPORT" load --pin-dir "$PIN" --cgroup "$TOPO_CGROUP" "${LOAD_ARGS[@]}" "$@" >/dev/null; }
np_unload() { topo_in node "$NODEPORT" unload --pin-dir "$PIN" >/dev/null; }
np_fill() {
    "$BENCH_BIN/np-portbench" fill --pin-dir "$PIN" --backend "$SB:8080" --first-port "$1" --count "$2" "${@:3}"
}

if ! err=$(np_load 2>&1); then
    EXT=0
    EXT_WHY="not available: nodeport load ${LOAD_ARGS[*]} failed: $err"
    LOAD_ARGS=(--local-only)
fi
np_unload 2>/dev/null || true
bench_log "external path: $([ "$EXT" = 1 ] && echo "nodeport load ${LOAD_ARGS[*]}" || echo "$EXT_WHY")"
if [ "$EXT" = 0 ]; then
    for c in nodeport-ext nodeport-ext-65535 nodeport-ext-fib iperf-nodeport-ext iperf-nodeport-ext-fib; do
        bench_skip "$c" "$EXT_WHY"
    done
fi
if [ "$IP6" = 0 ]; then
    bench_log "IPv6: $IP6_WHY"
    for c in floor6 ip6tables-0 nodeport-ext6 floor-node6 nodeport-local6 progcost-nodeport-ext6 \
        progcost-nodeport-local6; do
        bench_skip "$c" "$IP6_WHY"
    done
elif [ "$EXT" = 0 ]; then
    bench_skip nodeport-ext6 "$EXT_WHY"
    bench_skip progcost-nodeport-ext6 "$EXT_WHY"
fi

# --- rule sets -------------------------------------------------------------
for n in "${STALE_SIZES[@]}"; do bench_ipt_rules "$n" "$NP" "$SB" 8080 >"$WORK/ipt-$n.rules"; done
bench_ipt_rules 0 "$NP_IPERF" "$SB" 5201 >"$WORK/ipt-iperf.rules"
bench_ip6t_rules "$NP" "$SB6" 8080 >"$WORK/ip6t-0.rules6"
# 10,000 entries: 9,999 stale sandboxes and the live one.
bench_nft_rules anon 9999 "$NP" "$SB" 8080 >"$WORK/nft-10000.nft"
for n in "${CTL_SIZES[@]}"; do
    bench_ipt_rules "$n" "" "$SB" 8080 >"$WORK/ipt-ctl-$n.rules"
    bench_nft_rules named "$n" "" "$SB" 8080 >"$WORK/nft-ctl-$n.nft"
done

node_load_rules() { # FILE CONTENDER... -- loads an iptables-restore (.rules6: ip6tables) or nft file into the node
    local f=$1 err
    shift
    local cmd='iptables-restore <"$1"'
    [[ $f == *.nft ]] && cmd='nft -f "$1"'
    [[ $f == *.rules6 ]] && cmd='ip6tables-restore <"$1"'
    if ! err=$(bench_ns_sh node "$cmd" "$f" 2>&1); then
        for c in "$@"; do bench_skip "$c" "loading the rules failed: $err"; done
        bench_node_flush
        return 1
    fi
}

# --- new connections -------------------------------------------------------
for rep in $(seq 1 "$REPS"); do
    bench_log "connections: rep $rep/$REPS"
    bench_conn floor "$rep" client "$SB:8080" "${SRC[floor]}"
    bench_conn floor-node "$rep" node "$SB:8080" "${SRC[floor-node]}"
    if [ "$IP6" = 1 ]; then
        bench_conn floor6 "$rep" client "[$SB6]:8080" "${SRC[floor6]}"
        bench_conn floor-node6 "$rep" node "[$SB6]:8080" "${SRC[floor-node6]}"
    fi

    for n in "${STALE_SIZES[@]}"; do
        node_load_rules "$WORK/ipt-$n.rules" "iptables-$n" || continue
        bench_conn "iptables-$n" "$rep" client "$NODE:$NP" "${SRC[iptables-$n]}"
        if [ "$n" = 0 ]; then
            # The runtime's OUTPUT DNAT of 127.0.0.1 needs route_localnet on
            # the device the rewritten packet leaves by.
            topo_in node sysctl -qw net.ipv4.conf.br0.route_localnet=1
            bench_conn iptables-local-0 "$rep" node "127.0.0.1:$NP"
            topo_in node sysctl -qw net.ipv4.conf.br0.route_localnet=0
        fi
        [ "$n" = 10000 ] && bench_conn iptables-10000-nomatch "$rep" client "$SB:8080" "${SRC[iptables-10000-nomatch]}"
        bench_node_flush
    done

    if [ "$IP6" = 1 ] && node_load_rules "$WORK/ip6t-0.rules6" ip6tables-0; then
        bench_conn ip6tables-0 "$rep" client "[$NODE6]:$NP" "${SRC[ip6tables-0]}"
        bench_node_flush
    fi

    if node_load_rules "$WORK/nft-10000.nft" nft-map-10000; then
        bench_conn nft-map-10000 "$rep" client "$NODE:$NP" "${SRC[nft-map-10000]}"
        bench_node_flush
    fi

    if err=$(np_load 2>&1) && err=$(np set "tcp/$NP" "$SB:8080" 2>&1 >/dev/null); then
        bench_conn nodeport-local "$rep" cgroup "127.0.0.1:$NP" "${SRC[nodeport-local]}"
        [ "$EXT" = 1 ] && bench_conn nodeport-ext "$rep" client "$NODE:$NP" "${SRC[nodeport-ext]}"
        # The same port's IPv6 backend beside its IPv4 one (the rows above ran
        # without it); the 65,535 ports below are IPv4 mappings.
        if [ "$IP6" = 1 ]; then
            if err=$(np set "tcp/$NP" "[$SB6]:8080" 2>&1 >/dev/null); then
                bench_conn nodeport-local6 "$rep" cgroup "[::1]:$NP" "${SRC[nodeport-local6]}"
                [ "$EXT" = 1 ] && bench_conn nodeport-ext6 "$rep" client "[$NODE6]:$NP" "${SRC[nodeport-ext6]}"
            else
                bench_skip nodeport-local6 "nodeport set tcp/$NP [$SB6]:8080 failed: $err"
                bench_skip nodeport-ext6 "nodeport set tcp/$NP [$SB6]:8080 failed: $err"
            fi
        fi
        if err=$(np_fill 1 65535 2>&1 >/dev/null); then
            bench_conn nodeport-local-65535 "$rep" cgroup "127.0.0.1:$NP" "${SRC[nodeport-local-65535]}"
            [ "$EXT" = 1 ] && bench_conn nodeport-ext-65535 "$rep" client "$NODE:$NP" "${SRC[nodeport-ext-65535]}"
        else
            bench_skip nodeport-local-65535 "filling 65,535 ports failed: $err"
            bench_skip nodeport-ext-65535 "filling 65,535 ports failed: $err"
        fi
        np_unload
    else
        for c in nodeport-local nodeport-ext nodeport-local-65535 nodeport-ext-65535; do
            bench_skip "$c" "nodeport load/set failed: $err"
        done
        if [ "$IP6" = 1 ]; then
            bench_skip nodeport-local6 "nodeport load/set failed: $err"
            bench_skip nodeport-ext6 "nodeport load/set failed: $err"
        fi
        np_unload 2>/dev/null || true
    fi

    # The same external path, the TC program routing with bpf_fib_lookup.
    if [ "$EXT" = 1 ]; then
        if err=$(np_load --forward fib 2>&1) && err=$(np set "tcp/$NP" "$SB:8080" 2>&1 >/dev/null); then
            bench_conn nodeport-ext-fib "$rep" client "$NODE:$NP" "${SRC[nodeport-ext-fib]}"
        else
            bench_skip nodeport-ext-fib "nodeport load --forward fib failed: $err"
        fi
        np_unload 2>/dev/null || true
    fi
done

# --- what each program costs -----------------------------------------------
if err=$(np_load 2>&1) && err=$(np set "tcp/$NP" "$SB:8080" 2>&1 >/dev/null); then
    bench_log "per-program cost"
    bench_prog_cost nodeport-local cgroup "127.0.0.1:$NP" "${SRC[nodeport-local]}" "$PIN"
    if [ "$EXT" = 1 ]; then
        bench_prog_cost nodeport-ext client "$NODE:$NP" "${SRC[nodeport-ext]}" "$PIN"
        if err=$(np set "tcp/$NP_IPERF" "$SB:5201" 2>&1 >/dev/null); then
            bench_prog_cost_bulk nodeport-ext-bulk "$NODE:$NP_IPERF" "${SRC[iperf-nodeport-ext]}" "$PIN"
        else
            bench_skip progcost_bulk-nodeport-ext-bulk "nodeport set failed: $err"
        fi
    fi
    # The IPv6 workload, its backend set beside the IPv4 one as above.
    if [ "$IP6" = 1 ]; then
        if err=$(np set "tcp/$NP" "[$SB6]:8080" 2>&1 >/dev/null); then
            bench_prog_cost nodeport-local6 cgroup "[::1]:$NP" "${SRC[nodeport-local6]}" "$PIN"
            [ "$EXT" = 1 ] && bench_prog_cost nodeport-ext6 client "[$NODE6]:$NP" "${SRC[nodeport-ext6]}" "$PIN"
        else
            bench_skip progcost-nodeport-local6 "nodeport set tcp/$NP [$SB6]:8080 failed: $err"
            bench_skip progcost-nodeport-ext6 "nodeport set tcp/$NP [$SB6]:8080 failed: $err"
        fi
    fi
    np_unload
else
    bench_skip progcost "nodeport load/set failed: $err"
    np_unload 2>/dev/null || true
fi

bench_log "per-path cost (BPF_PROG_TEST_RUN)"
bench_path_cost

# --- bulk throughput -------------------------------------------------------
for rep in $(seq 1 "$IPERF_REPS"); do
    bench_log "throughput: rep $rep/$IPERF_REPS"
    bench_iperf floor "$rep" "$SB:5201" "${SRC[iperf-floor]}"
    if node_load_rules "$WORK/ipt-iperf.rules" iperf-iptables-0; then
        bench_iperf iptables-0 "$rep" "$NODE:$NP_IPERF" "${SRC[iperf-iptables-0]}"
        bench_node_flush
    fi
    if [ "$EXT" = 1 ]; then
        if err=$(np_load 2>&1) && err=$(np set "tcp/$NP_IPERF" "$SB:5201" 2>&1 >/dev/null); then
            bench_iperf nodeport-ext "$rep" "$NODE:$NP_IPERF" "${SRC[iperf-nodeport-ext]}"
        else
            bench_skip iperf-nodeport-ext "nodeport load/set failed: $err"
        fi
        np_unload 2>/dev/null || true
        if err=$(np_load --forward fib 2>&1) && err=$(np set "tcp/$NP_IPERF" "$SB:5201" 2>&1 >/dev/null); then
            bench_iperf nodeport-ext-fib "$rep" "$NODE:$NP_IPERF" "${SRC[iperf-nodeport-ext-fib]}"
        else
            bench_skip iperf-nodeport-ext-fib "nodeport load --forward fib failed: $err"
        fi
        np_unload 2>/dev/null || true
    fi
done

# --- populating the table, map memory --------------------------------------
bench_log "populating 65,535 ports, map memory"
if err=$(np_load 2>&1); then
    bench_map_memory "just loaded (0 ports)" "$PIN"
    # CLI_SEQ `nodeport set` calls, one per port, timed as a whole.
    out=$(bench_ns_sh node '
        s=$EPOCHREALTIME
        for ((p = 1; p <= $2; p++)); do "$1" set "tcp/$p" "$3" --pin-dir "$4" >/dev/null || { echo fail; exit 1; }; done
        e=$EPOCHREALTIME
        echo $((${e/./} - ${s/./}))' "$NODEPORT" "$CLI_SEQ" "$SB:8080" "$PIN" 2>&1) || true
    if [[ $out =~ ^[0-9]+$ ]]; then
        bench_record --argjson n "$CLI_SEQ" --argjson us "$out" \
            '{kind: "populate", method: "cli", label: "`nodeport set` CLI, one call per port", count: $n, seconds: ($us / 1e6)}'
    else
        bench_record --arg o "$out" '{kind: "populate", method: "cli", label: "`nodeport set` CLI, one call per port", failure: $o}'
    fi
    np flush >/dev/null
    s=$EPOCHREALTIME
    if out=$(np_fill 1 65535 2>&1); then
        e=$EPOCHREALTIME
        jq -c --argjson wall "$((${e/./} - ${s/./}))" \
            '{kind: "populate", method: "api", label: "C++ API, `PortTable::set` per port (np-portbench fill)",
              count: .count, seconds: .seconds, process_wall_seconds: ($wall / 1e6)}' <<<"$out" >>"$BENCH_RAW"
        np_fill 1 1 --proto udp >/dev/null # the 65,536th entry
        bench_map_memory "65,536 ports (tcp/1-65535, udp/1)" "$PIN"
    else
        bench_record --arg o "$out" '{kind: "populate", method: "api", label: "C++ API (np-portbench fill)", failure: $o}'
    fi
    np_unload
else
    bench_skip memory "nodeport load failed: $err"
fi

# --- control plane ---------------------------------------------------------
CTL_PORT=60000
if err=$(np_load 2>&1); then
    for n in "${CTL_SIZES[@]}"; do
        bench_log "control plane: nodeport, $n ports mapped"
        np flush >/dev/null
        if out=$(np_fill 10000 "$n" 2>&1 >/dev/null) &&
            out=$("$BENCH_BIN/np-portbench" churn --pin-dir "$PIN" --backend "$SB:8080" --port "$CTL_PORT" --iterations "$K_API" 2>&1); then
            jq -c --argjson n "$n" '{kind: "ctl", tool: "nodeport-api", n: $n, add_us: .add_us, del_us: .del_us}' <<<"$out" >>"$BENCH_RAW"
        else
            bench_record --argjson n "$n" --arg o "$out" '{kind: "ctl", tool: "nodeport-api", n: $n, failure: $o}'
        fi
        bench_ctl_loop nodeport-cli "$n" "$K_CLI" \
            "'$NODEPORT' set tcp/$CTL_PORT $SB:8080 --pin-dir '$PIN'" "'$NODEPORT' del tcp/$CTL_PORT --pin-dir '$PIN'"
        bench_ctl_loop true "$n" "$K_CLI" /bin/true /bin/true
    done
    np_unload
else
    for n in "${CTL_SIZES[@]}"; do
        for t in nodeport-api nodeport-cli; do
            bench_record --arg t "$t" --argjson n "$n" --arg o "nodeport load failed: $err" '{kind: "ctl", tool: $t, n: $n, failure: $o}'
        done
    done
fi
IPT_SPEC=("PREROUTING ! -i br0 -p tcp --dport $CTL_PORT -j DNAT --to-destination $SB:8080"
    "OUTPUT -p tcp -d 127.0.0.1 --dport $CTL_PORT -j DNAT --to-destination $SB:8080"
    "POSTROUTING -s 127.0.0.1 -d $SB -p tcp --dport 8080 -j MASQUERADE")
IPT_ADD="iptables -t nat -A ${IPT_SPEC[0]} && iptables -t nat -A ${IPT_SPEC[1]} && iptables -t nat -A ${IPT_SPEC[2]}"
IPT_DEL="iptables -t nat -D ${IPT_SPEC[0]} && iptables -t nat -D ${IPT_SPEC[1]} && iptables -t nat -D ${IPT_SPEC[2]}"
for n in "${CTL_SIZES[@]}"; do
    bench_log "control plane: iptables and nft, $n ports mapped"
    if err=$(bench_ns_sh node 'iptables-restore <"$1"' "$WORK/ipt-ctl-$n.rules" 2>&1); then
        bench_ctl_loop iptables "$n" "$K_IPT" "$IPT_ADD" "$IPT_DEL"
    else
        bench_record --argjson n "$n" --arg o "loading rules failed: $err" '{kind: "ctl", tool: "iptables", n: $n, failure: $o}'
    fi
    bench_node_flush
    if err=$(bench_ns_sh node 'nft -f "$1"' "$WORK/nft-ctl-$n.nft" 2>&1); then
        bench_ctl_loop nft "$n" "$K_NFT" "nft add element ip npbench ports '{ $CTL_PORT : $SB . 8080 }'" \
            "nft delete element ip npbench ports '{ $CTL_PORT }'"
    else
        bench_record --argjson n "$n" --arg o "loading rules failed: $err" '{kind: "ctl", tool: "nft", n: $n, failure: $o}'
    fi
    bench_node_flush
done

# --- report ----------------------------------------------------------------
NOTES=(
    "Sources: each contender connects from its own address (client ns 10.200.0.10+ and 2001:db8:200::10+, node ns 10.8.255.10+ and fd00:8::ff:10+), so no two contenders share 4-tuples in the sandbox's TIME_WAIT table or the node's conntrack table; iptables-local-0 connects from 127.0.0.1 (MASQUERADEd to 10.8.0.1)."
    "Client and node namespaces: net.ipv4.ip_local_port_range=1024 65535, tcp_tw_reuse=1 (both hold for IPv6 too). The echo server closes first (TIME_WAIT is on the sandbox side); no SO_LINGER."
    "Order in each rep: floors (IPv4, then IPv6), iptables N=0/1000/10000, ip6tables N=0, nft, nodeport (1 port: IPv4, then its IPv6 backend set beside it for the IPv6 rows; then 65,535 IPv4 ports). Each contender's rules or programs are removed (nft flush ruleset / nodeport unload) before the next."
    "IPv6: ip6tables-0 is a PREROUTING DNAT rule alone (IPv6 has no route_localnet: the runtime's OUTPUT DNAT of the loopback address has no IPv6 twin); nodeport-local6 connects to [::1]:$NP from the cgroup, the sandbox's IPv6 address being $SB6."
    "Control plane: wall time of one call started from a shell in the node namespace (process start included, see the /bin/true row); the C++ API rows time the calls only, with the table opened once."
)
[ "$EXT" = 0 ] && NOTES+=("nodeport external path: $EXT_WHY")
[ "$IP6" = 0 ] && NOTES+=("IPv6 rows: $IP6_WHY")
[ "$EXT" = 1 ] && NOTES+=("nodeport external path loaded with: nodeport load --cgroup <child cgroup> ${LOAD_ARGS[*]} (in the node ns).")
jq -n --arg mode "$MODE" --arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" --arg kernel "$(uname -r)" \
    --argjson cpus "$(nproc)" --arg ipt "$(iptables --version)" --argjson reps "$REPS" \
    --argjson dur "$BENCH_DURATION" --argjson isec "$BENCH_IPERF_SECONDS" --argjson ireps "$IPERF_REPS" \
    --argjson sizes "$(printf '%s\n' "${CTL_SIZES[@]}" | jq -s .)" \
    --argjson notes "$(printf '%s\n' "${NOTES[@]}" | jq -R . | jq -s .)" \
    '{mode: $mode, date: $date, kernel: $kernel, cpus: $cpus, iptables: $ipt, reps: $reps, duration: $dur,
      iperf_seconds: $isec, iperf_reps: $ireps, ctl_sizes: $sizes, notes: $notes}' >"$WORK/meta.json"
python3 "$HERE/report.py" "$BENCH_RAW" "$WORK/meta.json" --json "$JSON_OUT"
bench_log "JSON: $JSON_OUT"
