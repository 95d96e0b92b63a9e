#!/usr/bin/env bash
# nodeport stats end to end: a known number of TCP connections and UDP
# datagrams through both paths (a client namespace through ext0, node
# processes in the test cgroup through 127.0.0.1 and the node address), then
# the counters read exactly from `stats --json`; the pass-through reasons of
# an unmapped port on both paths; counters from zero for a new owner, kept
# for the same owner, gone with `del`, kept with the reason totals across a
# reload; --prometheus read by prometheus_client's parser and equal to the
# JSON; the JSON's documented schema; bad input, not loaded, --watch.
set -u
NODEPORT=$1
. "$(dirname "$0")/lib.sh"
require_root

test_begin npst
PROBE="$TESTS_DIR/probe.py"
# Debian's python3 (python3-prometheus-client), whatever python3 is first on PATH.
CHECK=(/usr/bin/python3 "$TESTS_DIR/stats_check.py")
PORT=6667
IDLE_PORT=7000
NODE_IP=$TOPO_NODE_EXT_IP
WORK=$(mktemp -d)
on_cleanup() { rm -rf "$WORK"; }

topo_node
topo_client
topo_cgroup
# No IPv6 on the links: router solicitations and the like would tick
# not_ipv4_tcp_udp between two reads that must agree.
for ns in node client; do topo_in "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1; done
from_client() { topo_in client "$@"; }
probe_node() { topo_in_cgroup node python3 "$PROBE" "$@"; }
stats_json() { np stats --json "$@"; }
# counter PROTO/PORT FIELD: one port's counter ("none" when the port is not listed).
counter() {
    stats_json | jq -r --arg p "${1%/*}" --argjson n "${1#*/}" \
        '[.ports[] | select(.proto == $p and .port == $n)] | if length == 0 then "none" else .[0].'"$2"' end'
}
# reason NAME: its total.
reason() { stats_json | jq -r --arg r "$1" '.passed[] | select(.reason == $r) | .count'; }

# --- Not loaded, bad input ---
out=$(np stats 2>&1); rc=$?
expect_eq "stats when not loaded exits 1" 1 "$rc"
expect_match "and says so" "not loaded at $PIN" "$out"
out=$(np stats --json 2>&1 >/dev/null); rc=$?
expect_eq "stats --json when not loaded exits 1 with a JSON error" "1 true" "$rc $(echo "$out" | jq 'has("error")')"

topo_in node "$NODEPORT" load --pin-dir "$PIN" --cgroup "$TOPO_CGROUP" --iface ext0 >/dev/null ||
    { fail "load"; finish; exit 1; }
topo_sandbox 1 && topo_serve sb1 sb1 "$PORT"
topo_sandbox 2 && topo_serve sb2 sb2 "$PORT"
SB1=$(topo_sandbox_ip 1)
SB2=$(topo_sandbox_ip 2)
for proto in tcp udp; do np set "$proto/$PORT" "$SB1:$PORT" --owner sb-1 >/dev/null; done
np set "tcp/$IDLE_PORT" "$SB1:$IDLE_PORT" --owner sb-1 >/dev/null

out=$(np stats tcp/99999 2>&1); rc=$?
expect_eq "stats tcp/99999 exits 2 with one line naming the field" "2 1" "$rc $(echo "$out" | wc -l)"
expect_match "the line names the node port" "^nodeport stats: node port: '99999' is not a port number" "$out"
expect_eq "--json names the field" '"node port"' "$(np stats tcp/99999 --json 2>&1 | jq .field)"
for bad in "--watch 0" "--watch 1.5" "--watch 1 --json" "--watch 1 --prometheus" "--json --prometheus" "tcp/1 tcp/2"; do
    np stats $bad >/dev/null 2>&1
    expect_eq "stats $bad is bad input (exit 2)" 2 $?
done
np stats tcp/7001 >/dev/null 2>&1
expect_eq "stats of an unmapped port exits 3" 3 $?

# --- A port mapped and never used ---
expect_eq "a mapped port never used is listed with zeros" "0 0 0 0 0 0 0" \
    "$(stats_json | jq -r ".ports[] | select(.port == $IDLE_PORT) | [.local_connects, .local_sends, .external_flows,
        .to_backend_packets, .to_backend_bytes, .from_backend_packets, .from_backend_bytes] | join(\" \")")"

# --- Known traffic on both paths ---
N=5 M=4
# curl may see the server's close as a reset (it closes without reading the
# request): the answer is what tells a connection worked.
answers() { grep -c "^sb1 "; }
for i in $(seq 1 $N); do
    from_client curl -s --http0.9 --max-time 3 "http://$NODE_IP:$PORT/"
done | answers | grep -qx "$N" || fail "external TCP: fewer than $N answers"
# Each datagram from a source port of its own: M flows, whatever the kernel would pick.
for i in $(seq 1 $M); do
    from_client python3 "$PROBE" udp "$NODE_IP" "$PORT" $((41000 + i)) >/dev/null || fail "external UDP $i"
done
for lo in 127.0.0.1 127.0.0.2; do
    topo_in_cgroup node curl -s --http0.9 --max-time 3 "http://$lo:$PORT/"
done | answers | grep -qx 2 || fail "local TCP through 127.0.0.1 and 127.0.0.2: fewer than 2 answers"
probe_node tcp "$NODE_IP" "$PORT" >/dev/null || fail "local TCP 3"
probe_node udp 127.0.0.1 "$PORT" >/dev/null || fail "local UDP 1"
probe_node udp 127.0.0.1 "$PORT" >/dev/null || fail "local UDP 2"
probe_node udp "$NODE_IP" "$PORT" >/dev/null || fail "local UDP 3"
probe_node udp-connected 127.0.0.1 "$PORT" >/dev/null || fail "local connected UDP"

expect_eq "tcp: 3 local connects, no local sends, $N external flows" "3 0 $N" \
    "$(counter tcp/$PORT local_connects) $(counter tcp/$PORT local_sends) $(counter tcp/$PORT external_flows)"
# A datagram of 5 bytes is 33 from the IP header on; the answer "sb1 10.200.0.2\n", 43.
expect_eq "udp: 1 local connect (connected UDP), 3 local sends, $M external flows" "1 3 $M" \
    "$(counter udp/$PORT local_connects) $(counter udp/$PORT local_sends) $(counter udp/$PORT external_flows)"
expect_eq "udp: $M packets and $((M * 33)) bytes to the backend, $M and $((M * 43)) back" \
    "$M $((M * 33)) $M $((M * 43))" \
    "$(counter udp/$PORT to_backend_packets) $(counter udp/$PORT to_backend_bytes) $(counter udp/$PORT from_backend_packets) $(counter udp/$PORT from_backend_bytes)"
# TCP: at least SYN, ACK, request (curl) and FIN per connection to the backend; SYN-ACK, answer, FIN back.
read -r tp tb fp fb <<<"$(stats_json | jq -r ".ports[] | select(.proto == \"tcp\" and .port == $PORT) |
    \"\(.to_backend_packets) \(.to_backend_bytes) \(.from_backend_packets) \(.from_backend_bytes)\"")"
expect_eq "tcp: >= $((4 * N)) packets to and >= $((3 * N)) from the backend, >= 40 bytes each" "yes" \
    "$([ "$tp" -ge $((4 * N)) ] && [ "$fp" -ge $((3 * N)) ] && [ "$tb" -ge $((40 * tp)) ] && [ "$fb" -ge $((40 * fp)) ] &&
        echo yes || echo "no: $tp $tb $fp $fb")"

# --- Reasons: an unmapped port on each path, another address; exactly one each ---
before=$(reason local_port_not_mapped)
probe_node tcp 127.0.0.1 7777 >/dev/null 2>&1
expect_eq "a node connect to an unmapped port counts local_port_not_mapped once" $((before + 1)) \
    "$(reason local_port_not_mapped)"
before=$(reason local_not_node_dest)
probe_node tcp "$SB2" "$PORT" >/dev/null 2>&1
expect_eq "a node connect to a mapped port of another address counts local_not_node_dest once" $((before + 1)) \
    "$(reason local_not_node_dest)"
before=$(reason port_not_mapped)
from_client python3 "$PROBE" tcp "$NODE_IP" 8080 >/dev/null 2>&1
expect_eq "an external SYN to an unmapped node port counts port_not_mapped once" $((before + 1)) \
    "$(reason port_not_mapped)"

# --- The table, the schema, Prometheus ---
table=$(np stats)
expect_match "the table has a row per port with backend and owner" "tcp/$PORT +$SB1:$PORT +3 +0 +$N .* sb-1" "$table"
expect_match "and the reasons counted" "local +local_port_not_mapped +[1-9]" "$table"
expect_eq "--all lists every reason" "$(stats_json | jq '.passed | length')" \
    "$(np stats --all | sed -n '/^PATH /,$p' | tail -n +2 | wc -l)"
stats_json >"$WORK/stats.json"
expect_eq "the JSON has the documented keys and types" ok "$("${CHECK[@]}" schema "$WORK/stats.json")"
np stats "tcp/$PORT" --json >"$WORK/one.json"
expect_eq "stats PROTO/PORT --json: the same schema, that port only" "ok tcp/$PORT" \
    "$("${CHECK[@]}" schema "$WORK/one.json") $(jq -r '[.ports[] | "\(.proto)/\(.port)"] | join(",")' "$WORK/one.json")"
for attempt in 1 2 3; do  # two reads: a packet in between would differ
    np stats --prometheus >"$WORK/stats.prom"
    stats_json >"$WORK/stats.json"
    prom=$("${CHECK[@]}" prometheus "$WORK/stats.prom" "$WORK/stats.json") && break
done
expect_eq "--prometheus, parsed by prometheus_client, equals the JSON" ok "$prom"
if command -v promtool >/dev/null; then
    out=$(promtool check metrics <"$WORK/stats.prom" 2>&1)
    expect_eq "promtool check metrics finds nothing to say about it" "0 " "$? $out"
else
    fail "no promtool (Debian's prometheus package; scripts/setup.sh installs it)"
fi
expect_match "it has the build" "^nodeport_build_info\{version=\"[0-9.]+\",commit=\"[0-9a-f]+|unknown\"\} 1$" \
    "$(grep '^nodeport_build_info' "$WORK/stats.prom")"
expect_eq "the health (status' problems as gauges, every kind)" "$(np status >/dev/null 2>&1; [ $? -eq 0 ] && echo 1 || echo 0) \
$(grep -c '^nodeport_problems{kind=' "$WORK/stats.prom")" \
    "$(sed -n 's/^nodeport_healthy //p' "$WORK/stats.prom") $(grep -c '^nodeport_problems{kind=' "$WORK/stats.prom")"
capacity() { echo "$1 $(($(bpftool -j map show pinned "$PIN/$1" | jq .max_entries) / $2))"; }
expect_eq "and each flow table's fill: flows beside capacity (its entries, two per flow, one per handshake)" \
    "$(capacity flows 2) $(capacity half_open_flows 1) $(capacity udp_flows 2)" \
    "$(sed -n 's/^nodeport_flow_table_capacity{table="\([a-z_]*\)"} \([0-9]*\)$/\1 \2/p' "$WORK/stats.prom" | xargs)"
expect_eq "nodeport_flows per table" 3 "$(grep -c '^nodeport_flows{table=' "$WORK/stats.prom")"

# --output: written whole, then renamed (the metrics unit's textfile).
mkdir -p "$WORK/textfile"
PROM=$WORK/textfile/nodeport.prom
np stats --prometheus --output "$PROM"
expect_eq "--output writes the same families as stdout" "$(grep -c '^# TYPE' "$WORK/stats.prom")" \
    "$(grep -c '^# TYPE' "$PROM")"
expect_eq "readable by node_exporter's user (0644), no temporary file left" "644 nodeport.prom" \
    "$(stat -c %a "$PROM") $(ls -A "$WORK/textfile" | xargs)"
# A hard link holds the first file's inode, which ext4 would otherwise give
# to a later rewrite, making a rename look like an overwrite in place.
ln "$PROM" "$WORK/first.prom"
inode=$(stat -c %i "$PROM")
# A reader racing 30 rewrites sees a whole file every time (its last family's
# last line ends it), and each rewrite is a new file renamed over the old.
( for _ in $(seq 1 30); do np stats --prometheus --output "$PROM"; done; touch "$WORK/writes.done" ) &
WRITER=$!
torn=0 reads=0
while [ ! -e "$WORK/writes.done" ]; do
    tail -n 1 "$PROM" | grep -q '^nodeport_flow_table_capacity{table="udp_flows"} [0-9]*$' || torn=$((torn + 1))
    reads=$((reads + 1))
done
wait "$WRITER"
expect_eq "a reader racing 30 rewrites never saw half a file ($reads reads)" 0 "$torn"
expect_eq "the file was replaced by rename (a new inode)" yes "$([ "$(stat -c %i "$PROM")" != "$inode" ] && echo yes || echo no)"
out=$(np stats --prometheus --output "$WORK/nonexistent/nodeport.prom" 2>&1)
expect_eq "--output into a missing directory: exit 2 naming it" "2 nodeport stats: output: '$WORK/nonexistent/nodeport.prom' is not a file in an existing directory" "$? $out"
out=$(np stats --all --output "$PROM" 2>&1)
expect_eq "--output without --prometheus: exit 2" "2 nodeport stats: output: --output writes the --prometheus text: give --prometheus too" "$? $out"

# --- Owners: a new one starts from zero, the same one keeps counting ---
# Prometheus series: every one but nodeport_port_info goes on across a redeploy.
series() { np stats --prometheus | grep -vE '^(#|nodeport_port_info)' | sed 's/ [0-9]*$//' | sort; }
SERIES_BEFORE=$(series)
np set "tcp/$PORT" "$SB2:$PORT" --owner sb-2 >/dev/null
expect_eq "a redeploy (new owner and backend) keeps every counter's and gauge's series" "$SERIES_BEFORE" "$(series)"
expect_match "only nodeport_port_info names the new owner and backend" \
    "^nodeport_port_info\{proto=\"tcp\",port=\"$PORT\",owner=\"sb-2\",backend=\"$SB2:$PORT\"\} 1$" \
    "$(np stats --prometheus | grep "^nodeport_port_info{proto=\"tcp\",port=\"$PORT\"")"
expect_eq "remapped to a new owner: the port's counters read zero" "0 0 0 0" \
    "$(counter tcp/$PORT local_connects) $(counter tcp/$PORT external_flows) $(counter tcp/$PORT to_backend_packets) $(counter tcp/$PORT from_backend_bytes)"
probe_node tcp 127.0.0.1 "$PORT" >/dev/null || fail "local TCP to sb2"
np set "tcp/$PORT" "$SB1:$PORT" --owner sb-2 >/dev/null
expect_eq "remapped for the same owner: counters kept" "1 sb-2" \
    "$(counter tcp/$PORT local_connects) $(counter tcp/$PORT owner)"
np del "udp/$PORT" >/dev/null
expect_eq "del: the port is gone from stats" none "$(counter udp/$PORT local_sends)"
np stats "udp/$PORT" >/dev/null 2>&1
expect_eq "and stats udp/$PORT exits 3" 3 $?

# --- Reload keeps the reason totals and the port counters ---
reasons_before=$(stats_json | jq -c '[.passed[] | {(.reason): .count}] | add')
topo_in node "$NODEPORT" load --pin-dir "$PIN" --cgroup "$TOPO_CGROUP" --iface ext0 >/dev/null || fail "second load"
reasons_after=$(stats_json | jq -c '[.passed[] | {(.reason): .count}] | add')
expect_eq "reload: no reason total went down" "[]" \
    "$(jq -nc --argjson b "$reasons_before" --argjson a "$reasons_after" '[$b | keys[] | select($a[.] < $b[.])]')"
expect_eq "reload: the unmapped-port totals are the same" \
    "$(echo "$reasons_before" | jq -c '[.port_not_mapped, .local_port_not_mapped]')" \
    "$(echo "$reasons_after" | jq -c '[.port_not_mapped, .local_port_not_mapped]')"
expect_eq "reload: the port's counters kept" 1 "$(counter tcp/$PORT local_connects)"

# --- --watch: frames until SIGINT, exit 0 ---
timeout --preserve-status -s INT 2.5 "$NODEPORT" stats --pin-dir "$PIN" --watch 1 >"$WORK/watch.out" 2>&1
expect_eq "stats --watch 1 stops on SIGINT with exit 0" 0 $?
expect_eq "and printed at least two tables in 2.5 s" yes \
    "$([ "$(grep -c '^nodeport stats at' "$WORK/watch.out")" -ge 2 ] && echo yes || echo "no: $(cat "$WORK/watch.out")")"
expect_match "the frames after the first show rates" "per second" "$(cat "$WORK/watch.out")"
# Only the ports that counted something are drawn (a frame of 131,072 idle
# ports is 16 MB): tcp/$PORT, with counts but no traffic now, is in the
# totals, not in the rates, which say how many ports they leave out (it and
# tcp/$IDLE_PORT).
rates_frame=$(awk '/per second/ { n++ } n == 1' "$WORK/watch.out")
expect_eq "the totals list tcp/$PORT (it has counts)" 1 "$(awk '/per second/ { exit } 1' "$WORK/watch.out" | grep -c "^tcp/$PORT ")"
expect_eq "an idle port is left out of the rates, and counted" "0 1" \
    "$(grep -c "^tcp/$PORT " <<<"$rates_frame") $(grep -c '^(2 mapped ports without traffic since the last frame; --all shows every port)$' <<<"$rates_frame")"
timeout --preserve-status -s INT 2.5 "$NODEPORT" stats --pin-dir "$PIN" --watch 1 --all >"$WORK/watch-all.out" 2>&1
expect_eq "with --all it is drawn at 0.0/s" yes \
    "$(awk '/per second/ { n++ } n == 1' "$WORK/watch-all.out" | grep -qE "^tcp/$PORT .* 0\.0 " && echo yes || echo no)"

finish
