#!/usr/bin/env bash
# nodeport --json as a controller reads it: every command's result is one
# JSON value on stdout with the keys docs/cli.md documents; every error is one
# JSON object on stderr ({"error": ..., "field": ...}, field only for bad
# input) with the exit status of the text mode: 0 done, 1 runtime failure,
# 2 bad input, 3 not mapped, 4 kept for another owner (status: 3 degraded).
# And del --owner ID without a port: exactly that owner's ports.
set -u
NODEPORT=$1
. "$(dirname "$0")/lib.sh"
require datapath

test_begin clijson
topo_node
topo_cgroup
WORK=$(mktemp -d /tmp/np-clijson.XXXXXX)
on_cleanup() {
    [ -n "${WATCH_PID:-}" ] && kill "$WATCH_PID" 2>/dev/null
    rm -rf "$WORK"
}

# run ARGS...: the CLI, in the node's network namespace, with its stdout in $WORK/out, stderr in $WORK/err, exit status in $rc.
run() { topo_in node "$NODEPORT" "$@" >"$WORK/out" 2>"$WORK/err"; rc=$?; }
# keys FILE: the sorted top-level keys of the JSON object in FILE, or "invalid".
keys() { jq -r 'keys | join(" ")' "$1" 2>/dev/null || echo invalid; }

# expect_result DESCRIPTION RC KEYS ARGS...: exit RC, stdout one JSON object with exactly KEYS, stderr empty.
expect_result() {
    local desc=$1 want_rc=$2 want_keys=$3
    shift 3
    run "$@"
    expect_eq "$desc: exit $want_rc, keys, nothing on stderr" "$want_rc $want_keys |" \
        "$rc $(keys "$WORK/out") |$(cat "$WORK/err")"
}

# expect_error DESCRIPTION RC FIELD ARGS...: exit RC, nothing on stdout, stderr one line,
# a JSON object with "error" and, for FIELD non-empty, "field": FIELD (else no field).
expect_error() {
    local desc=$1 want_rc=$2 want_field=$3
    shift 3
    run "$@"
    local got
    got=$(jq -r '"\(.error | type) \(.field // "-")"' "$WORK/err" 2>/dev/null || echo invalid)
    expect_eq "$desc: exit $want_rc, JSON error with field '${want_field:--}' on stderr only" \
        "$want_rc string ${want_field:--} 1 0" "$rc $got $(wc -l <"$WORK/err") $(wc -c <"$WORK/out")"
}

MAPPING_KEYS="backend_ip backend_port family owner port proto"

# --- before load: runtime failures, exit 1 ---
expect_error "list before load" 1 "" list --pin-dir "$PIN" --json
expect_error "flows before load" 1 "" flows --pin-dir "$PIN" --json
run status --pin-dir "$PIN" --json
expect_eq "status before load: exit 1, loaded false on stdout, JSON error on stderr" "1 false string" \
    "$rc $(jq .loaded "$WORK/out") $(jq -r '.error | type' "$WORK/err")"

# --- bad input: exit 2, the field named ---
expect_error "set port 0" 2 "node port" set --pin-dir "$PIN" --json tcp/0 10.8.0.3:80
expect_error "set bad backend address" 2 "backend address" set --pin-dir "$PIN" --json tcp/1 10.8.0.256:80
expect_error "set owner with a blank" 2 owner set --pin-dir "$PIN" --json tcp/1 10.8.0.3:80 --owner "sb 1"
expect_error "set owner without value (a parse error)" 2 owner set --pin-dir "$PIN" tcp/1 10.8.0.3:80 --json --owner
expect_error "an unknown option" 2 colour list --pin-dir "$PIN" --json --colour
expect_error "an extra argument" 2 argument list --pin-dir "$PIN" --json tcp/1
expect_error "del without port or owner" 2 "node port" del --pin-dir "$PIN" --json
expect_error "sync without --file" 2 file sync --pin-dir "$PIN" --json
expect_error "relative pin dir" 2 pin-dir list --pin-dir relative --json
expect_error "load bad --tc-attach" 2 tc-attach load --pin-dir "$PIN" --json --tc-attach xdp
expect_error "watch --iface lo" 2 iface watch --pin-dir "$PIN" --json --iface lo
expect_error "legacy-iptables without --bridge" 2 bridge legacy-iptables --pin-dir "$PIN" --json
expect_error "an unknown command" 2 command frobnicate --json
expect_error "--json alone" 2 command --json
printf 'owner = "sb 1"\n' >"$WORK/bad.conf"
expect_error "a --config key the command does not take" 2 config load --pin-dir "$PIN" --json --config "$WORK/bad.conf"
run set --pin-dir "$PIN" --json $'tcp/1\e[2J' 10.8.0.3:80
expect_eq "an escape sequence in bad input stays escaped in the JSON error" "0 2" \
    "$(grep -c $'\x1b' "$WORK/err") $rc"

# --- load, and each command's result ---
expect_result "load" 0 "cgroup interfaces ipv6_off kept_mode migrated node_addrs pin_dir resumed_targets reused_maps socket_ending_unavailable sockets_ended" \
    load --pin-dir "$PIN" --cgroup "$TOPO_CGROUP" \
    --local-only --json
expect_eq "load --json names the bridge address" "10.8.0.1 br0 false" \
    "$(jq -r '"\(.node_addrs[0].addr) \(.node_addrs[0].interface) \(.reused_maps)"' "$WORK/out")"
expect_result "load again" 0 "cgroup interfaces ipv6_off kept_mode migrated node_addrs pin_dir resumed_targets reused_maps socket_ending_unavailable sockets_ended" \
    load --pin-dir "$PIN" --cgroup "$TOPO_CGROUP" \
    --local-only --json
expect_eq "a second load reports the kept maps" true "$(jq .reused_maps "$WORK/out")"

SET_KEYS="backend_ip backend_port family owner port proto replaced resumed_targets sockets_ended sockets_not_checked"
expect_result "set" 0 "$SET_KEYS" set --pin-dir "$PIN" --json tcp/6667 10.8.0.2:6667 --owner sb-1
expect_eq "set --json: the mapping, nothing replaced" "tcp 6667 10.8.0.2 6667 sb-1 null" \
    "$(jq -r '"\(.proto) \(.port) \(.backend_ip) \(.backend_port) \(.owner) \(.replaced)"' "$WORK/out")"
expect_result "set again" 0 "$SET_KEYS" set --pin-dir "$PIN" --json tcp/6667 10.8.0.4:6667 --owner sb-1
expect_eq "set --json names the backend it replaced" 10.8.0.2:6667 "$(jq -r .replaced "$WORK/out")"

expect_result "get" 0 "backend_ip backend_port connections family owner port proto" get --pin-dir "$PIN" --json tcp/6667
expect_eq "get --json: the mapping" "10.8.0.4 sb-1" "$(jq -r '"\(.backend_ip) \(.owner)"' "$WORK/out")"
expect_error "get of an unmapped port" 3 "" get --pin-dir "$PIN" --json tcp/7000
expect_eq "and the error names the port" "tcp/7000 is not mapped" "$(jq -r .error "$WORK/err")"

run list --pin-dir "$PIN" --json
expect_eq "list --json: exit 0, an array of mappings with external" \
    "0 array 1 backend_ip backend_port connections family mapped owner port proto external" \
    "$rc $(jq -r 'type' "$WORK/out") $(jq length "$WORK/out") $(jq -r '.[0] | del(.external) | keys | join(" ")' \
    "$WORK/out") $(jq -r '.[0] | has("external") | if . then "external" else "-" end' "$WORK/out")"

run flows --pin-dir "$PIN" --json
expect_eq "flows --json: exit 0, an array" "0 array" "$rc $(jq -r type "$WORK/out")"
expect_result "flows --flush" 0 "forgotten node_port" flows --pin-dir "$PIN" --json --flush
expect_result "flows --flush PROTO/PORT" 0 "forgotten node_port" flows --pin-dir "$PIN" --json --flush udp/53
expect_eq "flows --flush --json names the port" "0 udp/53" "$(jq -r '"\(.forgotten) \(.node_port)"' "$WORK/out")"

# del: removed (0), not mapped (3), kept for another owner (4).
DEL_KEYS="holder outcome port proto removed resumed_targets sockets_ended sockets_not_checked"
"$NODEPORT" set --pin-dir "$PIN" tcp/6668 10.8.0.2:6668 --owner sb-2 >/dev/null
expect_result "del --owner of another owner's port" 4 "$DEL_KEYS" del --pin-dir "$PIN" --json tcp/6668 --owner sb-1
expect_eq "del --json: held_by_other, naming the holder" "held_by_other sb-2" \
    "$(jq -r '"\(.outcome) \(.holder)"' "$WORK/out")"
expect_eq "and the port is kept" "tcp/6668 -> 10.8.0.2:6668 owner sb-2" "$("$NODEPORT" get --pin-dir "$PIN" tcp/6668)"
expect_result "del by its owner" 0 "$DEL_KEYS" del --pin-dir "$PIN" --json tcp/6668 --owner sb-2
expect_eq "del --json: removed" "removed null" "$(jq -r '"\(.outcome) \(.holder)"' "$WORK/out")"
expect_result "del of an unmapped port" 3 "$DEL_KEYS" del --pin-dir "$PIN" --json tcp/6668
expect_eq "del --json: not_mapped" not_mapped "$(jq -r .outcome "$WORK/out")"
run del --pin-dir "$PIN" tcp/6668
expect_eq "del of an unmapped port without --json: exit 3, says so" "3 tcp/6668 was not mapped" "$rc $(cat "$WORK/out")"

# --- del --owner ID without a port: every port of that owner, nothing else ---
for m in "tcp/7001 10.8.0.2:7001 sb-a" "udp/7001 10.8.0.2:7001 sb-a" "tcp/7002 10.8.0.2:7002 sb-a" \
    "tcp/7003 10.8.0.3:7003 sb-b" "tcp/7004 10.8.0.3:7004 sb-ab" "tcp/7005 10.8.0.3:7005"; do
    set -- $m
    "$NODEPORT" set --pin-dir "$PIN" "$1" "$2" ${3:+--owner "$3"} >/dev/null
done
# sb-b takes tcp/7002 over (a redeploy): sb-a's teardown must leave it.
"$NODEPORT" set --pin-dir "$PIN" tcp/7002 10.8.0.3:7002 --owner sb-b >/dev/null
table() { "$NODEPORT" list --pin-dir "$PIN" --json | jq -r 'map("\(.proto)/\(.port)=\(.owner)") | join(" ")'; }
before=$(table)
expect_result "del --owner sb-a" 0 "owner removed resumed_targets sockets_ended" del --pin-dir "$PIN" --json --owner sb-a
expect_eq "del --owner --json lists exactly sb-a's ports" "sb-a tcp/7001=10.8.0.2:7001 udp/7001=10.8.0.2:7001" \
    "$(jq -r '"\(.owner) " + (.removed | map("\(.proto)/\(.port)=\(.backend_ip):\(.backend_port)") | join(" "))' \
    "$WORK/out")"
expect_eq "every other port is kept (the re-taken one, another owner's, a prefix-sharing owner's, no owner)" \
    "$(printf '%s' "$before" | tr ' ' '\n' | grep -v -x -e 'tcp/7001=sb-a' -e 'udp/7001=sb-a' | paste -sd ' ')" \
    "$(table)"
expect_result "del --owner sb-a again" 3 "owner removed resumed_targets sockets_ended" del --pin-dir "$PIN" --json --owner sb-a
expect_eq "it removes nothing" 0 "$(jq '.removed | length' "$WORK/out")"
run del --pin-dir "$PIN" --owner sb-b
expect_eq "del --owner sb-b (text): exit 0, one line per removed port" \
    "0 tcp/7002 -> 10.8.0.3:7002 owner sb-b removed,tcp/7003 -> 10.8.0.3:7003 owner sb-b removed" \
    "$rc $(paste -sd , "$WORK/out")"
run del --pin-dir "$PIN" --owner sb-b
expect_eq "del --owner of an owner with no port (text): exit 3" "3 owner 'sb-b' holds no port" "$rc $(cat "$WORK/out")"
expect_eq "what is left" "tcp/6667=sb-1 tcp/7004=sb-ab tcp/7005=" "$(table)"

# --- sync, flush, refresh, status, legacy-iptables, version ---
SYNC_KEYS="added dry_run removed resumed_targets sockets_ended sockets_not_checked unchanged updated"
echo '[{"proto": "tcp", "port": 6667, "backend": "10.8.0.4:6667", "owner": "sb-1"}]' >"$WORK/want.json"
expect_result "sync --dry-run" 0 "$SYNC_KEYS" sync --pin-dir "$PIN" --json --dry-run --file "$WORK/want.json"
expect_eq "sync --dry-run --json: the counts, nothing else on stdout" "1 true 2 1" \
    "$(wc -l <"$WORK/out") $(jq -r '"\(.dry_run) \(.removed) \(.unchanged)"' "$WORK/out")"
expect_result "sync" 0 "$SYNC_KEYS" sync --pin-dir "$PIN" --json --file "$WORK/want.json"
expect_result "refresh" 0 "node_addrs" refresh --pin-dir "$PIN" --json
expect_eq "refresh --json: the node's address" 10.8.0.1 "$(jq -r '.node_addrs[0].addr' "$WORK/out")"
expect_result "flush" 0 "removed" flush --pin-dir "$PIN" --json
expect_eq "flush --json: how many" 1 "$(jq .removed "$WORK/out")"
run status --pin-dir "$PIN" --json
case $rc in 0) healthy=true ;; 3) healthy=false ;; *) healthy="exit $rc" ;; esac
expect_eq "status --json: exit 0 (healthy) or 3 (degraded), as .healthy says; loaded" "$healthy true" \
    "$(jq -r '"\(.healthy) \(.loaded)"' "$WORK/out")"
expect_result "legacy-iptables --dry-run" 0 \
    "bridge deleted dry_run found kept nodeport_loaded portless_rules ports subnets" \
    legacy-iptables --pin-dir "$PIN" --bridge br0 --dry-run --json
expect_result "version" 0 "abi commit libbpf version" version --json
expect_result "--version --json" 0 "abi commit libbpf version" --version --json

# --- watch --json: one JSON object per line ---
nsenter --net="/run/netns/$(topo_ns node)" "$NODEPORT" watch --pin-dir "$PIN" --local-only --json \
    >"$WORK/watch.out" 2>"$WORK/watch.err" &
WATCH_PID=$!
for _ in $(seq 100); do grep -q '"changed"' "$WORK/watch.out" && break; sleep 0.1; done
kill -TERM "$WATCH_PID"
wait "$WATCH_PID"; rc=$?
WATCH_PID=
expect_eq "watch --json: exit 0 on SIGTERM, every line JSON, started, changed, stopped by TERM" \
    "0 started changed:node_addrs:interfaces stopped:TERM |" \
    "$rc $(jq -r 'if .event == "changed" then "changed:\(.node_addrs | type | sub("array"; "node_addrs")):\(.interfaces | type | sub("array"; "interfaces"))" elif .event == "stopped" then "stopped:\(.signal)" else .event end' \
    "$WORK/watch.out" | paste -sd ' ') |$(cat "$WORK/watch.err")"

expect_result "unload" 0 "clsact_interfaces left links maps pin_dir" \
    unload --pin-dir "$PIN" --json
expect_error "unload when not loaded" 1 "" unload --pin-dir "$PIN" --json

finish
