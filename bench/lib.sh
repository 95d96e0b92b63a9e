# Helpers for bench/bench.sh. Source after scripts/topology.sh and
# topo_init. Every measurement is appended to $BENCH_RAW as one JSON line;
# bench/report.py turns that file into the Markdown report and the JSON result.

bench_log() { echo "[bench $(date +%T)] $*" >&2; }

# Appends one JSON object (given as jq arguments) to the raw record file.
bench_record() { jq -nc "$@" >>"$BENCH_RAW"; }

# A contender that was not measured, and why. The report prints n/a (why).
bench_skip() { bench_record --arg c "$1" --arg why "$2" '{kind: "skip", contender: $c, reason: $why}'; }

# Runs a bash script in one of our namespaces. The script first checks that
# it is in that namespace (inode of its netns), so an iptables or nft command
# in it can never reach the root namespace. Extra arguments become $1...
bench_ns_sh() {
    local ns=$1 script=$2 want
    shift 2
    want=$(stat -L -c %i "/run/netns/$TOPO-$ns") || return 1
    topo_in "$ns" env BENCH_WANT_NS="$want" bash -c '[ "$(stat -L -c %i /proc/self/ns/net)" = "$BENCH_WANT_NS" ] ||
        { echo "bench: not in the expected network namespace" >&2; exit 99; }
        '"$script" bench "$@"
}

# --- rule sets -------------------------------------------------------------

# The address of stale sandbox I (topo_sandbox_ip I+100, without its fork per
# call: the rule sets name up to 10,000 of them). No namespace has it.
_bench_stale_ip() { _ip="10.8.$(((${1} + 100) / 250)).$(((${1} + 100) % 250 + 2))"; }

# iptables-restore input for the nat table as the runtime left it: N stale
# sandboxes (3 rules each: PREROUTING, OUTPUT, POSTROUTING, distinct node
# ports 40000+i, none matching the benchmark's traffic), then the live
# sandbox's 3 rules for NODE_PORT -> BACKEND_IP:BACKEND_PORT, appended last.
bench_ipt_rules() {
    local n=$1 np=$2 ip=$3 port=$4 i sip _ip
    echo "*nat"
    for ((i = 0; i < n; i++)); do
        _bench_stale_ip "$i"
        sip=$_ip
        echo "-A PREROUTING ! -i br0 -p tcp --dport $((40000 + i)) -j DNAT --to-destination $sip:$port"
        echo "-A OUTPUT -p tcp -d 127.0.0.1 --dport $((40000 + i)) -j DNAT --to-destination $sip:$port"
        echo "-A POSTROUTING -s 127.0.0.1 -d $sip -p tcp --dport $port -j MASQUERADE"
    done
    if [ -n "$np" ]; then
        echo "-A PREROUTING ! -i br0 -p tcp --dport $np -j DNAT --to-destination $ip:$port"
        echo "-A OUTPUT -p tcp -d 127.0.0.1 --dport $np -j DNAT --to-destination $ip:$port"
        echo "-A POSTROUTING -s 127.0.0.1 -d $ip -p tcp --dport $port -j MASQUERADE"
    fi
    echo "COMMIT"
}

# ip6tables-restore input for the nat table: the live sandbox's PREROUTING
# DNAT of NODE_PORT -> [BACKEND_IP6]:BACKEND_PORT, as bench_ipt_rules 0 writes
# it for IPv4, without its OUTPUT DNAT of the loopback address and that
# rule's MASQUERADE: IPv6 has no route_localnet, a packet of ::1 never leaves
# the node, so the runtime's OUTPUT rule has no IPv6 twin to measure.
bench_ip6t_rules() {
    local np=$1 ip=$2 port=$3
    echo "*nat"
    echo "-A PREROUTING ! -i br0 -p tcp --dport $np -j DNAT --to-destination [$ip]:$port"
    echo "COMMIT"
}

# nft: one table of our own, one prerouting rule `dnat ip to tcp dport map`.
# MODE anon: the map is written into the rule (N entries, the live one among
# them); MODE named: a named map `ports` (N stale entries) that elements can
# be added to and deleted from.
bench_nft_rules() {
    local mode=$1 n=$2 np=$3 ip=$4 port=$5 i entries="" _ip
    for ((i = 0; i < n; i++)); do
        _bench_stale_ip "$i"
        entries+="    $((40000 + i)) : $_ip . $port,"$'\n'
    done
    [ -n "$np" ] && entries+="    $np : $ip . $port,"$'\n'
    echo "table ip npbench {"
    if [ "$mode" = named ]; then
        echo "  map ports {"
        echo "    type inet_service : ipv4_addr . inet_service"
        [ -n "$entries" ] && printf '    elements = {\n%s    }\n' "$entries"
        echo "  }"
    fi
    echo "  chain pre {"
    echo "    type nat hook prerouting priority dstnat; policy accept;"
    if [ "$mode" = named ]; then
        echo "    iifname != \"br0\" dnat ip to tcp dport map @ports"
    else
        printf '    iifname != "br0" dnat ip to tcp dport map {\n%s    }\n' "$entries"
    fi
    echo "  }"
    echo "}"
}

# Removes every nft table (iptables-nft's included) from the node: no rule and
# no conntrack hook of one contender is left for the next.
bench_node_flush() { bench_ns_sh node 'nft flush ruleset'; }

# --- measurements ----------------------------------------------------------

# bench_conn CONTENDER REP WHERE IP:PORT|[IPV6]:PORT [SOURCE-IP]
#   WHERE: client (client ns), node (node ns), cgroup (node ns, in our cgroup)
# One np-connbench run, recorded with its contender and rep.
bench_conn() {
    local name=$1 rep=$2 where=$3 target=$4 source=${5:-} out
    local args=(--target "$target" --duration "$BENCH_DURATION" --warmup "$BENCH_WARMUP")
    [ -n "$source" ] && args+=(--source "$source")
    case $where in
        client | node) out=$(topo_in "$where" "$BENCH_BIN/np-connbench" "${args[@]}" 2>&1) ;;
        cgroup) out=$(topo_in_cgroup node "$BENCH_BIN/np-connbench" "${args[@]}" 2>&1) ;;
    esac
    if jq -e 'type == "object"' <<<"$out" >/dev/null 2>&1; then
        jq -c --arg c "$name" --argjson r "$rep" --arg w "$where" \
            '{kind: "conn", contender: $c, rep: $r, where: $w} + .' <<<"$out" >>"$BENCH_RAW"
    else
        bench_record --arg c "$name" --argjson r "$rep" --arg o "${out:0:300}" \
            '{kind: "conn", contender: $c, rep: $r, connections: 0, failure: $o}'
    fi
}

# bench_prog_cost CONTENDER WHERE IP:PORT|[IPV6]:PORT SOURCE-IP PIN -- np-connbench as in
# bench_conn, under BPF run-time statistics: what each of nodeport's programs
# cost per run and per connection. Not a rate to compare: the statistics add
# two clock reads to every program run.
bench_prog_cost() {
    local name=$1 where=$2 target=$3 source=$4 pin=$5 out
    local cmd=(nsenter --net="/run/netns/$TOPO-node" "$BENCH_BIN/np-connbench" --target "$target"
        --duration "$BENCH_DURATION" --warmup 0 --source "$source")
    case $where in
        client) cmd[1]=--net="/run/netns/$TOPO-client" ;;
        cgroup) cmd=(sh -c 'echo $$ >"$1/cgroup.procs" && shift && exec "$@"' sh "$TOPO_CGROUP" "${cmd[@]}") ;;
    esac
    if out=$(python3 "$(dirname "${BASH_SOURCE[0]}")/prog_stats.py" "$pin" -- "${cmd[@]}" 2>&1) &&
        jq -e '.output.connections > 0' <<<"$out" >/dev/null 2>&1; then
        jq -c --arg c "$name" '{kind: "progcost", contender: $c, connections: .output.connections,
                                programs: .programs}' <<<"$out" >>"$BENCH_RAW"
    else
        bench_skip "progcost-$name" "np-connbench under prog_stats.py failed: ${out:0:300}"
    fi
}

# bench_prog_cost_bulk CONTENDER IP:PORT SOURCE-IP PIN -- one iperf3 stream
# from the client namespace under BPF run-time statistics: what the TC
# programs cost per run (an skb) of an established flow, one flow made and
# closed for the whole stream (the connection workload above is mostly
# those).
bench_prog_cost_bulk() {
    local name=$1 target=$2 source=$3 pin=$4 out
    local cmd=(nsenter --net="/run/netns/$TOPO-client" iperf3 -c "${target%:*}" -p "${target#*:}"
        -t "$BENCH_IPERF_SECONDS" -B "$source" --connect-timeout 3000 -J)
    if out=$(python3 "$(dirname "${BASH_SOURCE[0]}")/prog_stats.py" "$pin" -- "${cmd[@]}" 2>&1) &&
        jq -e '.output.end.sum_received.bits_per_second > 0' <<<"$out" >/dev/null 2>&1; then
        jq -c --arg c "$name" '{kind: "progcost_bulk", contender: $c,
                                bits_per_second: .output.end.sum_received.bits_per_second,
                                programs: .programs}' <<<"$out" >>"$BENCH_RAW"
    else
        bench_skip "progcost_bulk-$name" "iperf3 under prog_stats.py failed: ${out:0:300}"
    fi
}

# bench_path_cost -- np-progbench: each path through the TC programs on its
# own, under BPF_PROG_TEST_RUN (no attachment, no traffic).
bench_path_cost() {
    local out
    if out=$("$BENCH_BIN/np-progbench" --runs "$PATH_COST_RUNS" 2>&1) && jq -e '.paths | length > 0' <<<"$out" >/dev/null 2>&1; then
        jq -c '{kind: "pathcost"} + .' <<<"$out" >>"$BENCH_RAW"
    else
        bench_skip pathcost "np-progbench failed: ${out:0:300}"
    fi
}

# bench_iperf CONTENDER REP IP:PORT [SOURCE-IP] -- iperf3 from the client namespace.
bench_iperf() {
    local name=$1 rep=$2 target=$3 source=${4:-} out
    local args=(-c "${target%:*}" -p "${target#*:}" -t "$BENCH_IPERF_SECONDS" --connect-timeout 3000 -J)
    [ -n "$source" ] && args+=(-B "$source")
    out=$(topo_in client timeout $((BENCH_IPERF_SECONDS + 15)) iperf3 "${args[@]}" 2>&1)
    if jq -e '.end.sum_received.bits_per_second' <<<"$out" >/dev/null 2>&1; then
        jq -c --arg c "$name" --argjson r "$rep" \
            '{kind: "iperf", contender: $c, rep: $r,
              bits_per_second: .end.sum_received.bits_per_second, retransmits: .end.sum_sent.retransmits}' \
            <<<"$out" >>"$BENCH_RAW"
    else
        bench_record --arg c "$name" --argjson r "$rep" \
            --arg o "$(jq -r '.error // empty' <<<"$out" 2>/dev/null || true) ${out:0:200}" \
            '{kind: "iperf", contender: $c, rep: $r, failure: $o}'
    fi
}

# bench_ctl_loop TOOL N K ADD_CMD DEL_CMD -- times K rounds of ADD_CMD then
# DEL_CMD (shell command lines, run by a bash inside the node namespace; wall
# time of each, process start included) and records them in µs.
bench_ctl_loop() {
    local tool=$1 n=$2 k=$3 add=$4 del=$5 out
    out=$(bench_ns_sh node '
        add=$1 del=$2 k=$3
        for ((i = 0; i < k; i++)); do
            s=$EPOCHREALTIME; eval "$add" >/dev/null || { echo "fail add"; exit 1; }; e=$EPOCHREALTIME
            echo "add $((${e/./} - ${s/./}))"
            s=$EPOCHREALTIME; eval "$del" >/dev/null || { echo "fail del"; exit 1; }; e=$EPOCHREALTIME
            echo "del $((${e/./} - ${s/./}))"
        done' "$add" "$del" "$k" 2>&1)
    if grep -q '^fail' <<<"$out" || ! grep -q '^add' <<<"$out"; then
        bench_record --arg t "$tool" --argjson n "$n" --arg o "${out:0:300}" \
            '{kind: "ctl", tool: $t, n: $n, failure: $o}'
        return
    fi
    awk -v tool="$tool" -v n="$n" '
        /^(add|del) [0-9]+$/ { v[$1] = v[$1] (v[$1] == "" ? "" : ",") $2 }
        END { printf "{\"kind\":\"ctl\",\"tool\":\"%s\",\"n\":%d,\"add_us\":[%s],\"del_us\":[%s]}\n",
                     tool, n, v["add"], v["del"] }' <<<"$out" >>"$BENCH_RAW"
}

# memlock bytes of every pinned map of a loaded nodeport.
bench_map_memory() {
    local label=$1 pin=$2 f
    for f in "$pin"/*; do
        [ -f "$f" ] || continue
        bpftool -j map show pinned "$f" 2>/dev/null |
            jq -c --arg l "$label" --arg m "$(basename "$f")" \
                '{kind: "mem", label: $l, map: $m, type: .type, max_entries: .max_entries,
                  key: .bytes_key, value: .bytes_value, memlock: .bytes_memlock}' >>"$BENCH_RAW"
    done
}
