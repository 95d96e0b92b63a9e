# Helpers for bench/bench.sh. Source after scripts/topology.sh and
# topo_init. Every measurement is appended to $BENCH_RAW as one JSON line;
# bench_report turns that file into the Markdown table and the JSON result.

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

# bench_conn CONTENDER REP WHERE IP:PORT [SOURCE-IP]
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

# bench_prog_cost CONTENDER WHERE IP:PORT SOURCE-IP PIN -- np-connbench as in
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

# --- report ----------------------------------------------------------------

# bench_report RAW META_JSON JSON_OUT -- prints the Markdown report and writes
# the JSON result (summary + every raw record).
bench_report() {
    python3 - "$@" <<'PY'
import json, statistics, sys

raw_path, meta_json, json_out = sys.argv[1:4]
meta = json.loads(meta_json)
recs = [json.loads(l) for l in open(raw_path) if l.strip()]
skips = {r["contender"]: r["reason"] for r in recs if r["kind"] == "skip"}

def med(v): return statistics.median(v) if v else None

def fmt_int(x): return "n/a" if x is None else f"{x:,.0f}"
def fmt_f(x, d=2): return "n/a" if x is None else f"{x:.{d}f}"
def fmt_ms(us):
    if us is None: return "n/a"
    ms = us / 1000
    return f"{ms:.4f}" if ms < 0.01 else f"{ms:.3f}" if ms < 1 else f"{ms:.2f}" if ms < 100 else f"{ms:.0f}"

out = {"meta": meta, "connections": {}, "throughput": {}, "control_plane": {}, "populate": {}, "memory": {}}
lines = []
p = lines.append
p(f"## nodeport benchmarks ({meta['mode']}), {meta['date']}")
p("")
p(f"Kernel {meta['kernel']}, {meta['cpus']} CPUs, {meta['iptables']}; client ns -> node ns -> sandbox ns on a bridge; "
  f"{meta['reps']} reps x {meta['duration']} s, 1 client thread. Ratios: each rep's rate over the floor measured "
  f"in the same rep (the client floor for traffic from the client ns, the node floor for traffic from the node ns), "
  f"median over reps.")
p("")

# --- new connections
CONN = [
    ("floor", "floor: client -> sandbox IP, no NAT", "floor"),
    ("iptables-0", "iptables DNAT, matching rule first (N=0)", "floor"),
    ("iptables-1000", "iptables DNAT behind 1,000 stale sandboxes (3,000 rules)", "floor"),
    ("iptables-10000", "iptables DNAT behind 10,000 stale sandboxes (30,000 rules)", "floor"),
    ("iptables-10000-nomatch", "iptables, 10,000 stale sandboxes loaded, client -> sandbox IP (no rule matches)", "floor"),
    ("nft-map-10000", "nft `dnat ... map` with 10,000 entries", "floor"),
    ("nodeport-ext", "nodeport external (TC), 1 port mapped", "floor"),
    ("nodeport-ext-65535", "nodeport external (TC), 65,535 ports mapped", "floor"),
    ("nodeport-ext-fib", "nodeport external (TC, --forward fib), 1 port mapped", "floor"),
    ("floor-node", "node floor: node ns -> sandbox IP, no NAT", "floor-node"),
    ("iptables-local-0", "iptables OUTPUT DNAT of 127.0.0.1, N=0 (node ns)", "floor-node"),
    ("nodeport-local", "nodeport local (cgroup connect4), 127.0.0.1, 1 port mapped", "floor-node"),
    ("nodeport-local-65535", "nodeport local (cgroup connect4), 127.0.0.1, 65,535 ports mapped", "floor-node"),
]
conn = [r for r in recs if r["kind"] == "conn"]
by = {}
for r in conn: by.setdefault(r["contender"], []).append(r)
p("### New connections: connect + 1-byte request/reply + close")
p("")
p("| path | conn/s median | min | max | x floor | connect p50 / p99 µs | transaction p50 / p99 µs | failed conns |")
p("|---|---|---|---|---|---|---|---|")
for key, label, floor in CONN:
    rs = [r for r in by.get(key, []) if r.get("connections", 0) > 0]
    bad = [r for r in by.get(key, []) if r.get("connections", 0) == 0]
    if not rs:
        why = skips.get(key) or (bad[0].get("failure") or json.dumps(bad[0].get("error_kinds")) if bad else "not run")
        why = " ".join(str(why).split())[:160]
        p(f"| {label} | n/a ({why}) | | | | | | |")
        out["connections"][key] = {"label": label, "measured": False, "reason": why}
        continue
    rates = [r["conn_per_s"] for r in rs]
    floors = {r["rep"]: r["conn_per_s"] for r in by.get(floor, []) if r.get("connections", 0) > 0}
    ratios = [r["conn_per_s"] / floors[r["rep"]] for r in rs if r["rep"] in floors]
    c50 = med([r["connect_us"]["p50"] for r in rs]); c99 = med([r["connect_us"]["p99"] for r in rs])
    t50 = med([r["txn_us"]["p50"] for r in rs]); t99 = med([r["txn_us"]["p99"] for r in rs])
    failed = sum(r["errors"] for r in by.get(key, []) if "errors" in r)
    kinds = {}
    for r in by.get(key, []):
        for k, v in r.get("error_kinds", {}).items(): kinds[k] = kinds.get(k, 0) + v
    failed_txt = f"{failed}" + (f" ({', '.join(f'{k} {v}' for k, v in kinds.items())})" if kinds else "")
    if bad: failed_txt += f"; {len(bad)} rep(s) with no connection"
    ratio_txt = "1.00" if key == floor else (fmt_f(med(ratios), 3 if (med(ratios) or 1) < 0.1 else 2) if ratios else "n/a (no floor in those reps)")
    p(f"| {label} | {fmt_int(med(rates))} | {fmt_int(min(rates))} | {fmt_int(max(rates))} | {ratio_txt} | "
      f"{fmt_f(c50, 0)} / {fmt_f(c99, 0)} | {fmt_f(t50, 0)} / {fmt_f(t99, 0)} | {failed_txt} |")
    out["connections"][key] = {"label": label, "measured": True, "reps": len(rs), "floor": floor,
        "conn_per_s": {"median": med(rates), "min": min(rates), "max": max(rates)},
        "ratio_to_floor": {"median": med(ratios), "min": min(ratios), "max": max(ratios)} if ratios else None,
        "connect_us": {"p50": c50, "p99": c99}, "txn_us": {"p50": t50, "p99": t99},
        "failed_connections": failed, "error_kinds": kinds}
p("")

# --- throughput
THR = [("floor", "floor: client -> sandbox IP"), ("iptables-0", "iptables DNAT, N=0"),
       ("nodeport-ext", "nodeport external (TC)"), ("nodeport-ext-fib", "nodeport external (TC, --forward fib)")]
ip = [r for r in recs if r["kind"] == "iperf"]
p(f"### Bulk throughput: iperf3, one stream, {meta['iperf_seconds']} s x {meta['iperf_reps']} rep(s)")
p("")
p("| path | Gbit/s median | min | max | x floor | retransmits (sum) |")
p("|---|---|---|---|---|---|")
floor_bps = {r["rep"]: r["bits_per_second"] for r in ip if r["contender"] == "floor" and "bits_per_second" in r}
for key, label in THR:
    rs = [r for r in ip if r["contender"] == key and "bits_per_second" in r]
    if not rs:
        bad = [r for r in ip if r["contender"] == key]
        why = skips.get("iperf-" + key) or (bad[0].get("failure") if bad else "not run")
        why = " ".join(str(why).split())[:160]
        p(f"| {label} | n/a ({why}) | | | | |")
        out["throughput"][key] = {"measured": False, "reason": why}
        continue
    g = [r["bits_per_second"] / 1e9 for r in rs]
    ratios = [r["bits_per_second"] / floor_bps[r["rep"]] for r in rs if r["rep"] in floor_bps]
    p(f"| {label} | {fmt_f(med(g))} | {fmt_f(min(g))} | {fmt_f(max(g))} | {fmt_f(med(ratios)) if ratios else 'n/a'} | "
      f"{sum(r.get('retransmits') or 0 for r in rs)} |")
    out["throughput"][key] = {"measured": True, "gbit_per_s": {"median": med(g), "min": min(g), "max": max(g)},
                              "ratio_to_floor": med(ratios)}
p("")

# --- control plane
CTL = [
    ("nodeport-api", "add", "nodeport C++ API `PortTable::set` (table open once)"),
    ("nodeport-api", "del", "nodeport C++ API `PortTable::remove`"),
    ("nodeport-cli", "add", "`nodeport set` (CLI)"),
    ("nodeport-cli", "del", "`nodeport del` (CLI)"),
    ("iptables", "add", "`iptables -A` x3 (one port as the runtime mapped it)"),
    ("iptables", "del", "`iptables -D` x3 (by rule spec)"),
    ("nft", "add", "`nft add element` (named map)"),
    ("nft", "del", "`nft delete element`"),
    ("true", "add", "reference: process start (`/bin/true`)"),
]
ctl = [r for r in recs if r["kind"] == "ctl"]
ns = meta["ctl_sizes"]
p(f"### Control plane: median ms to map one more port / remove it, N ports already mapped")
p("")
p("| operation | " + " | ".join(f"N={n:,}" for n in ns) + " | rounds |")
p("|---|" + "---|" * len(ns) + "---|")
for tool, op, label in CTL:
    cells, rounds = [], set()
    for n in ns:
        rs = [r for r in ctl if r["tool"] == tool and r["n"] == n]
        if not rs:
            cells.append("n/a (not run)"); continue
        r = rs[0]
        if "failure" in r:
            cells.append("n/a (failed: " + " ".join(r["failure"].split())[:80] + ")"); continue
        v = r[f"{op}_us"]
        cells.append(fmt_ms(med(v))); rounds.add(len(v))
        out["control_plane"].setdefault(f"{tool}-{op}", {})[str(n)] = {"median_us": med(v), "min_us": min(v),
                                                                      "max_us": max(v), "rounds": len(v)}
    p(f"| {label} | " + " | ".join(cells) + f" | {'/'.join(str(x) for x in sorted(rounds)) or 'n/a'} |")
p("")

# --- populating
pop = [r for r in recs if r["kind"] == "populate"]
p("### Populating nodeport's table")
p("")
p("| method | ports | wall time | per port | rate |")
p("|---|---|---|---|---|")
for r in pop:
    if "failure" in r:
        p(f"| {r['label']} | n/a | n/a (failed: {' '.join(r['failure'].split())[:100]}) | | |"); continue
    p(f"| {r['label']} | {r['count']:,} | {r['seconds']:.3f} s | {r['seconds'] / r['count'] * 1e6:.1f} µs | {r['count'] / r['seconds']:,.0f}/s |")
    out["populate"][r["label"]] = r
p("")

# --- per-program cost
cost = [r for r in recs if r["kind"] == "progcost"]
p("### What each program costs (BPF run-time statistics)")
p("")
p("One run of each path with `BPF_ENABLE_STATS` on (`run_time_ns / run_cnt` of the programs behind nodeport's "
  "pinned links), apart from the rates above: the statistics add two clock reads to every run.")
p("")
out["program_cost"] = {}
if not cost:
    p("n/a (" + " ".join(v for k, v in skips.items() if k.startswith("progcost")) + ")")
else:
    p("| path | program | runs per connection | ns per run | µs per connection |")
    p("|---|---|---|---|---|")
    for r in cost:
        for prog, s in sorted(r["programs"].items()):
            if not s["run_cnt"]: continue
            per_conn = s["run_cnt"] / r["connections"]
            p(f"| {r['contender']} | `{prog}` | {per_conn:.1f} | {s['ns_per_run']:.0f} | "
              f"{s['run_time_ns'] / r['connections'] / 1000:.2f} |")
        out["program_cost"][r["contender"]] = r
p("")

# --- memory
mem = [r for r in recs if r["kind"] == "mem"]
p("### Memory of nodeport's pinned maps (bpftool `bytes_memlock`)")
p("")
labels = []
for r in mem:
    if r["label"] not in labels: labels.append(r["label"])
if not mem:
    p("n/a (" + skips.get("memory", "not run") + ")")
else:
    p("| map | type | max entries | key + value bytes | " + " | ".join(labels) + " |")
    p("|---|---|---|---|" + "---|" * len(labels))
    maps = []
    for r in mem:
        if r["map"] not in maps: maps.append(r["map"])
    totals = {l: 0 for l in labels}
    for m in maps:
        rs = {r["label"]: r for r in mem if r["map"] == m}
        any_r = next(iter(rs.values()))
        cells = []
        for l in labels:
            if l in rs and rs[l].get("memlock") is not None:
                cells.append(f"{rs[l]['memlock']:,} B"); totals[l] += rs[l]["memlock"]
            else:
                cells.append("n/a")
        p(f"| {m} | {any_r.get('type')} | {any_r.get('max_entries'):,} | {any_r.get('key')} + {any_r.get('value')} | " + " | ".join(cells) + " |")
        out["memory"][m] = {l: rs[l] for l in rs}
    p("| **total** | | | | " + " | ".join(f"**{totals[l] / 2**20:.1f} MiB**" for l in labels) + " |")
p("")
if meta.get("notes"):
    p("Notes:")
    for n in meta["notes"]: p(f"- {n}")
    p("")

out["raw"] = recs
with open(json_out, "w") as f: json.dump(out, f, indent=1)
print("\n".join(lines))
PY
}
