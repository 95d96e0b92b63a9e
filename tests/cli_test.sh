#!/usr/bin/env bash
# The nodeport CLI as a script would use it: exit codes, one-line errors that
# name the field, bad input changing nothing, concurrent writers.
set -u
NODEPORT=$1
. "$(dirname "$0")/lib.sh"
require datapath

test_begin cli
topo_node
topo_cgroup

# Before load: a runtime failure, exit 1, and it says what to do.
out=$(np list 2>&1); rc=$?
expect_eq "list before load exits 1" 1 "$rc"
expect_match "list before load says not loaded" "not loaded at $PIN" "$out"

out=$(topo_in node "$NODEPORT" load --pin-dir "$PIN" --cgroup "$TOPO_CGROUP" 2>&1); rc=$?
expect_eq "load with no default route and no --iface exits 1" 1 "$rc"
expect_match "and says what to do" "no IPv4 default route: name the node's external interfaces with --iface" "$out"
expect_eq "and leaves nothing pinned" no "$([ -e "$PIN" ] && echo yes || echo no)"

topo_in node sysctl -qw net.ipv4.ip_forward=0
topo_in node ip link add ext0 type veth peer name ext0-peer
out=$(topo_in node "$NODEPORT" load --pin-dir "$PIN" --cgroup "$TOPO_CGROUP" --iface ext0 2>&1); rc=$?
expect_eq "load --iface with ip_forward off exits 1" 1 "$rc"
expect_match "and says why" "net.ipv4.ip_forward is 0" "$out"
expect_eq "and leaves nothing pinned" no "$([ -e "$PIN" ] && echo yes || echo no)"
topo_in node sysctl -qw net.ipv4.ip_forward=1

out=$(topo_in node "$NODEPORT" load --pin-dir "$PIN" --cgroup "$TOPO_CGROUP" --local-only 2>&1)
expect_eq "load exits 0" 0 $?
expect_match "load reports the node's bridge address" "10\.8\.0\.1 \(br0\)" "$out"
expect_match "load pins the maps" "" "$(ls "$PIN/ports" "$PIN/node_addrs" "$PIN/node_config" 2>&1 | grep -v 'No such')"

np set tcp/6667 10.8.0.2:6667 --owner sb-1 >/dev/null
np set udp/6667 10.8.0.2:6667 >/dev/null
before=$(np list --json)

# bad_input DESCRIPTION FIELD ARGS...: exit 2, one line naming FIELD, maps untouched.
bad_input() {
    local desc=$1 field=$2 out rc lines
    shift 2
    out=$("$NODEPORT" "$@" 2>&1 >/dev/null); rc=$?
    lines=$(printf '%s\n' "$out" | wc -l)
    if [ "$rc" -eq 2 ] && [ "$lines" -eq 1 ] && [[ "$out" == *"$field"* ]]; then
        pass "$desc"
    else
        fail "$desc: exit $rc, $lines lines: $out"
    fi
    expect_eq "$desc changes nothing" "$before" "$(np list --json)"
}

bad_input "set port 0" "node port" set --pin-dir "$PIN" tcp/0 10.8.0.3:80
bad_input "set port 65536" "node port" set --pin-dir "$PIN" tcp/65536 10.8.0.3:80
bad_input "set port abc" "node port" set --pin-dir "$PIN" tcp/abc 10.8.0.3:80
bad_input "set protocol sctp" "protocol" set --pin-dir "$PIN" sctp/80 10.8.0.3:80
bad_input "set address 10.0.0.256" "backend address" set --pin-dir "$PIN" tcp/6667 10.0.0.256:80
bad_input "set backend port 0" "backend port" set --pin-dir "$PIN" tcp/6667 10.8.0.3:0
bad_input "set backend without port" "backend" set --pin-dir "$PIN" tcp/6667 10.8.0.3
bad_input "set missing backend" "backend: missing" set --pin-dir "$PIN" tcp/6667
bad_input "set missing everything" "node port: missing" set --pin-dir "$PIN"
bad_input "set extra argument" "unexpected argument" set --pin-dir "$PIN" tcp/6667 10.8.0.3:80 extra
bad_input "set unknown option" "--colour" set --pin-dir "$PIN" tcp/6667 10.8.0.3:80 --colour
bad_input "set owner with a blank" "owner" set --pin-dir "$PIN" tcp/6667 10.8.0.3:80 --owner "sb 1"
bad_input "set owner too long" "owner" set --pin-dir "$PIN" tcp/6667 10.8.0.3:80 --owner "$(printf 'x%.0s' $(seq 256))"
bad_input "set owner without value" "owner" set --pin-dir "$PIN" tcp/6667 10.8.0.3:80 --owner
bad_input "del port 0" "node port" del --pin-dir "$PIN" tcp/0
bad_input "del missing port" "node port: missing" del --pin-dir "$PIN"
bad_input "get bad protocol" "protocol" get --pin-dir "$PIN" icmp/1
bad_input "list extra argument" "unexpected argument" list --pin-dir "$PIN" tcp/1
bad_input "relative pin dir" "pin-dir" list --pin-dir relative/dir
bad_input "load loopback node ip" "node-ip" load --pin-dir "$PIN" --cgroup "$TOPO_CGROUP" --node-ip 127.0.0.1
bad_input "load bad node ip" "node-ip" load --pin-dir "$PIN" --cgroup "$TOPO_CGROUP" --node-ip 10.0.0.256
bad_input "load missing cgroup" "cgroup" load --pin-dir "$PIN" --cgroup /nonexistent/cgroup
bad_input "load unknown interface" "iface" load --pin-dir "$PIN" --cgroup "$TOPO_CGROUP" --iface nosuch0
bad_input "load --iface with --local-only" "iface" load --pin-dir "$PIN" --cgroup "$TOPO_CGROUP" --iface nosuch0 \
    --local-only
bad_input "load --iface all with a name" "iface" load --pin-dir "$PIN" --cgroup "$TOPO_CGROUP" --iface all --iface nosuch0
bad_input "load --exclude without --iface all" "exclude" load --pin-dir "$PIN" --cgroup "$TOPO_CGROUP" --iface nosuch0 \
    --exclude br0
bad_input "load --iface lo (loopback)" "iface: 'lo' is the loopback interface" load --pin-dir "$PIN" \
    --cgroup "$TOPO_CGROUP" --iface lo
bad_input "load with an interface given twice" "iface: 'nosuch0' is given twice" load --pin-dir "$PIN" \
    --cgroup "$TOPO_CGROUP" --iface nosuch0 --iface nosuch0
bad_input "load --iface all twice" "iface: 'all' is given twice" load --pin-dir "$PIN" --cgroup "$TOPO_CGROUP" \
    --iface all --iface all
bad_input "load --exclude given twice" "exclude: 'br0' is given twice" load --pin-dir "$PIN" --cgroup "$TOPO_CGROUP" \
    --iface all --exclude br0 --exclude br0
bad_input "load --exclude with --local-only" "exclude" load --pin-dir "$PIN" --cgroup "$TOPO_CGROUP" --local-only \
    --exclude br0
bad_input "load --node-ip given twice" "node-ip: '10.8.0.1' is given twice" load --pin-dir "$PIN" \
    --cgroup "$TOPO_CGROUP" --node-ip 10.8.0.1 --node-ip 10.8.0.1
bad_input "load --local-only --tc-attach tcx" "tc-attach" load --pin-dir "$PIN" --cgroup "$TOPO_CGROUP" --local-only \
    --tc-attach tcx
bad_input "load --local-only --forward fib" "forward" load --pin-dir "$PIN" --cgroup "$TOPO_CGROUP" --local-only \
    --forward fib
bad_input "watch --iface lo" "iface" watch --pin-dir "$PIN" --iface lo
# Paths: missing and of the wrong type are the same bad input, naming the field.
bad_input "load --cgroup that is a plain directory" "cgroup: '/tmp' is not a cgroup v2 directory" load \
    --pin-dir "$PIN" --cgroup /tmp --local-only
bad_input "load --cgroup that is a file" "cgroup" load --pin-dir "$PIN" --cgroup /etc/hostname --local-only
bad_input "load --config of a directory" "config: '/tmp' is a directory" load --pin-dir "$PIN" --config /tmp
bad_input "set --pin-dir of a file" "pin-dir: '/etc/hostname' is not a directory" set --pin-dir /etc/hostname \
    tcp/6667 10.8.0.3:80
# Options are matched exactly: a prefix of one is unknown, not a guess.
bad_input "list --jso (a prefix of --json)" "unrecognised option '--jso'" list --pin-dir "$PIN" --jso
bad_input "list --pin (a prefix of --pin-dir)" "unrecognised option '--pin'" list --pin "$PIN"
bad_input "set --own (a prefix of --owner)" "unrecognised option '--own'" set --pin-dir "$PIN" tcp/6667 10.8.0.3:80 \
    --own sb-9
bad_input "load --local (a prefix of --local-only)" "unrecognised option '--local'" load --pin-dir "$PIN" \
    --cgroup "$TOPO_CGROUP" --local
bad_input "sticky short options" "unrecognised option" list --pin-dir "$PIN" -hx
bad_input "--pin-dir given twice" "pin-dir" list --pin-dir "$PIN" --pin-dir "$PIN"
bad_input "load --exclude with a blank" "exclude" load --pin-dir "$PIN" --cgroup "$TOPO_CGROUP" --iface all \
    --exclude "br 0"
bad_input "load --config of a missing file" "config" load --pin-dir "$PIN" --config /nonexistent/nodeport.conf
bad_input "watch --exclude without --iface all" "exclude" watch --pin-dir "$PIN" --exclude br0
bad_input "watch with an unknown option" "--colour" watch --pin-dir "$PIN" --colour
# watch checks only a name's syntax (a missing interface is attached when it appears).
bad_input "watch --iface with a blank" "iface" watch --pin-dir "$PIN" --iface "ext 0"
bad_input "watch --iface of 16 bytes" "iface" watch --pin-dir "$PIN" --iface eth0123456789abc
bad_input "watch --iface with a slash" "iface" watch --pin-dir "$PIN" --iface eth0/1
bad_input "load bad --tc-attach" "tc-attach" load --pin-dir "$PIN" --cgroup "$TOPO_CGROUP" --tc-attach xdp
bad_input "load bad --forward" "forward" load --pin-dir "$PIN" --cgroup "$TOPO_CGROUP" --forward xdp
bad_input "load --tcp-timeout 0" "tcp-timeout" load --pin-dir "$PIN" --cgroup "$TOPO_CGROUP" --tcp-timeout 0
bad_input "load --tcp-closing-timeout abc" "tcp-closing-timeout" load --pin-dir "$PIN" --cgroup "$TOPO_CGROUP" \
    --tcp-closing-timeout abc
bad_input "load --udp-timeout 31 days" "udp-timeout" load --pin-dir "$PIN" --cgroup "$TOPO_CGROUP" --udp-timeout 2678400
bad_input "load --tcp-syn-timeout -5" "tcp-syn-timeout" load --pin-dir "$PIN" --cgroup "$TOPO_CGROUP" --tcp-syn-timeout -5
bad_input "flows with a port but no --flush" "node port" flows --pin-dir "$PIN" tcp/6667
bad_input "flows --flush bad port" "node port" flows --pin-dir "$PIN" --flush tcp/0
bad_input "flows --flush extra argument" "unexpected argument" flows --pin-dir "$PIN" --flush tcp/1 tcp/2
bad_input "set --terminate with a value" "terminate" set --pin-dir "$PIN" tcp/6667 10.8.0.3:80 --terminate=yes
SYNC_DIR=$(mktemp -d)
on_cleanup() { rm -rf "$SYNC_DIR"; }
printf '[{"proto": "tcp", "port": 1, "backend": "10.8.0.2:80"}, {"proto": "tcp", "port": 0, "backend": "10.8.0.2:80"}]' \
    >"$SYNC_DIR/bad-port.json"
printf '[{"proto": "udp", "port": 5, "backend": "10.8.0.2:80"}, {"proto": "udp", "port": 5, "backend": "10.8.0.3:80"}]' \
    >"$SYNC_DIR/twice.json"
printf '{"proto": "tcp"' >"$SYNC_DIR/broken.json"
bad_input "sync without --file" "file: missing" sync --pin-dir "$PIN"
bad_input "sync of a missing file" "file" sync --pin-dir "$PIN" --file "$SYNC_DIR/nonexistent.json"
bad_input "sync --file of a directory" "file: '$SYNC_DIR' is a directory" sync --pin-dir "$PIN" --file "$SYNC_DIR"
bad_input "sync of broken JSON" "file" sync --pin-dir "$PIN" --file "$SYNC_DIR/broken.json"
bad_input "sync with a bad port in entry 1" "entry 1: port" sync --pin-dir "$PIN" --file "$SYNC_DIR/bad-port.json"
bad_input "sync with a port listed twice" "entry 1: node port" sync --pin-dir "$PIN" --file "$SYNC_DIR/twice.json"
bad_input "version with an argument" "unexpected argument" version extra
bad_input "unknown command" "command" frobnicate

out=$(np get tcp/6667); expect_eq "get shows the mapping" "tcp/6667 -> 10.8.0.2:6667 owner sb-1" "$out"
out=$(np get tcp/7000 2>&1); rc=$?
expect_eq "get of an unmapped port exits 3" 3 "$rc"
expect_match "get of an unmapped port says so" "tcp/7000 is not mapped" "$out"
np set --help >/dev/null; expect_eq "set --help exits 0" 0 $?
expect_eq "set reports the backend it replaced" "tcp/6667 -> 10.8.0.4:6667 owner sb-1 (was 10.8.0.2:6667)" \
    "$(np set tcp/6667 10.8.0.4:6667 --owner sb-1 2>/dev/null)"
np set tcp/6667 10.8.0.2:6667 --owner sb-1 >/dev/null 2>&1
expect_eq "flows --flush exits 0 and says how many" "forgot 0 flows" "$(np flows --flush)"
expect_eq "flows --flush PROTO/PORT names the port" "forgot 0 flows of udp/53" "$(np flows --flush udp/53)"
expect_eq "flows lists nothing yet (header only)" 1 "$(np flows | wc -l)"

# An owner another writer stored with bytes nodeport would never write (0xff,
# an escape sequence, a newline): every output stays one escaped line, and
# --json still parses. Key: tcp, pad, port 7777 in host order (x86: little
# endian). np_backend: family 4, flags, port 80, reserved, 10.8.0.2 and 12
# zero bytes, owner_id 0, then the 256 owner bytes.
bpftool map update pinned "$PIN/ports" key 6 0 0x61 0x1e value 4 0 80 0 0 0 0 0 10 8 0 2 $(printf '0 %.0s' $(seq 20)) \
    0x73 0x62 0xff 0x1b 0x5b 0x33 0x31 0x6d 0x0a 0x7a $(printf '0 %.0s' $(seq 246))
OWNER_SHOWN='sb\xff\x1b[31m\x0az'
expect_eq "get shows a foreign owner escaped, on one line" "tcp/7777 -> 10.8.0.2:80 owner $OWNER_SHOWN" "$(np get tcp/7777)"
expect_eq "list shows it escaped, no control byte reaches the terminal" "0 1" \
    "$(np list | grep -c $'\x1b') $(np list | grep -cF "$OWNER_SHOWN")"
expect_eq "list --json parses and carries the escaped owner" "$OWNER_SHOWN" \
    "$(np list --json | jq -r '.[] | select(.port == 7777) | .owner')"
expect_eq "a late del names the foreign holder escaped" "tcp/7777 kept: owner '$OWNER_SHOWN' holds it now" \
    "$(np del tcp/7777 --owner sb-1)"
np del tcp/7777 >/dev/null
bad_input "bad input with an escape sequence is echoed escaped" 'node port' set --pin-dir "$PIN" $'tcp/1\e[2J' 10.8.0.2:80
expect_eq "and no escape byte reaches the terminal" 0 \
    "$("$NODEPORT" set --pin-dir "$PIN" $'tcp/1\e[2J' 10.8.0.2:80 2>&1 | grep -c $'\x1b')"

# sync: the controller's whole state; a dry run changes nothing.
WANT='[{"proto": "tcp", "port": 6667, "backend": "10.8.0.2:6667", "owner": "sb-1"},
       {"proto": "tcp", "port": 7001, "backend": "10.8.0.7:7001", "owner": "sb-7"}]'
before_sync=$(np list --json)
expect_eq "sync --dry-run prints the plan" "+ tcp/7001 -> 10.8.0.7:7001 owner sb-7
- udp/6667 -> 10.8.0.2:6667
would be: 1 added, 0 updated, 1 removed, 1 unchanged" "$(np sync --dry-run --file - <<<"$WANT")"
expect_eq "sync --dry-run changes nothing" "$before_sync" "$(np list --json)"
expect_eq "sync --json from standard input prints the counts" \
    '{"added":1,"dry_run":false,"removed":1,"resumed_targets":0,"sockets_ended":0,"unchanged":1,"updated":0}' \
    "$(np sync --json --file - <<<"$WANT" 2>/dev/null | jq -c 'del(.sockets_not_checked)')"
expect_eq "after sync the table is the desired set" "tcp/6667 10.8.0.2:6667 sb-1,tcp/7001 10.8.0.7:7001 sb-7" \
    "$(np list --json | jq -r 'map("\(.proto)/\(.port) \(.backend_ip):\(.backend_port) \(.owner)") | join(",")')"
np set udp/6667 10.8.0.2:6667 >/dev/null
np del tcp/7001 >/dev/null
"$NODEPORT" --help >/dev/null; expect_eq "--help exits 0" 0 $?
help=$("$NODEPORT" --help)
expect_match "--help lists exit status 3 (not mapped; status: degraded)" "3  get, del, stats PROTO/PORT: not mapped .*status: degraded" "$help"
expect_match "--help lists exit status 4 (kept for another owner)" "4  del --owner: kept" "$help"
# Each command's usage line (nodeport --help, COMMAND --help) names every
# option the command takes (--pin-dir and --help are everyone's).
missing=""
no_example=""
for cmd in $("$NODEPORT" --help | sed -nE 's/^  ([a-z-]+).*/\1/p'); do
    help=$("$NODEPORT" "$cmd" --help)
    printf '%s\n' "$help" | grep -qE "^example: nodeport $cmd( |$)" || no_example="$no_example $cmd"
    printf '%s\n' "$help" | grep -qE "^exit status: 0 done" || no_example="$no_example $cmd:exit-status"
    usage=$(printf '%s\n' "$help" | sed -n 's/^usage: nodeport //p')
    for opt in $(printf '%s\n' "$help" | grep -oE '^  (-[a-z] \[ )?--[a-z-]+' | sed 's/.*--//'); do
        case $opt in pin-dir | help | json) continue ;; esac
        [[ " $usage " =~ [^a-z-]--$opt[^a-z-] ]] || missing="$missing $cmd:--$opt"
    done
done
expect_eq "every command's usage line names its options" "" "$missing"
expect_eq "every command's --help has an example and its exit statuses" "" "$no_example"
expect_match "--version names the version, commit, map ABI and libbpf" \
    "^nodeport [0-9]+\.[0-9]+\.[0-9]+ \(commit ([0-9a-f]+|unknown)\), map ABI 4, libbpf [0-9]+\.[0-9]+$" "$("$NODEPORT" --version)"
expect_eq "version --json has the map ABI" 4 "$("$NODEPORT" version --json | jq .abi)"

# Owner-safe delete from the command line.
np set tcp/6667 10.8.0.3:6667 --owner sb-2 >/dev/null
out=$(np del tcp/6667 --owner sb-1); expect_eq "late del exits 4" 4 $?
expect_match "late del says who holds the port" "kept: owner 'sb-2'" "$out"
expect_eq "late del leaves the new owner's entry" "tcp/6667 -> 10.8.0.3:6667 owner sb-2" "$(np get tcp/6667)"
np del tcp/6667 --owner sb-2 >/dev/null
out=$(np get tcp/6667 2>&1); expect_eq "owner's del removes it (get exits 3)" 3 $?

# The table output and JSON agree.
json=$(np list --json)
expect_eq "list --json is valid JSON with the entry" "udp 6667 10.8.0.2 6667" \
    "$(printf '%s' "$json" | python3 -c 'import json,sys; e=json.load(sys.stdin)[0]; print(e["proto"], e["port"], e["backend_ip"], e["backend_port"])')"

# 8 concurrent CLI writers, 500 distinct ports each: all 4000 land.
np flush >/dev/null
errors=$(mktemp)
for w in $(seq 0 7); do
    (
        for i in $(seq 0 499); do
            port=$((20000 + w * 500 + i))
            "$NODEPORT" set --pin-dir "$PIN" "tcp/$port" "10.8.0.2:$port" --owner "w$w" >/dev/null 2>>"$errors"
        done
    ) &
done
wait
expect_eq "concurrent CLI writers report no error" "" "$(cat "$errors")"
rm -f "$errors"
expect_eq "8 concurrent writers x 500 ports: all present" 4000 "$(np list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')"
out=$(np flush); expect_eq "flush reports what it removed" "removed 4000 mappings" "$out"

# Load is idempotent and keeps the mappings.
np set tcp/6667 10.8.0.2:6667 --owner sb-1 >/dev/null
out=$(topo_in node "$NODEPORT" load --pin-dir "$PIN" --cgroup "$TOPO_CGROUP" --local-only 2>&1)
expect_match "second load keeps the maps" "kept the pinned maps" "$out"
expect_eq "second load keeps the mapping" "tcp/6667 -> 10.8.0.2:6667 owner sb-1" "$(np get tcp/6667)"
expect_eq "second load attaches no second copy" 8 "$(bpftool cgroup show "$TOPO_CGROUP" | tail -n +2 | wc -l)"

mkdir -p "$TOPO_CGROUP/other"
out=$(topo_in node "$NODEPORT" load --pin-dir "$PIN" --cgroup "$TOPO_CGROUP/other" --local-only 2>&1); rc=$?
expect_eq "load onto another cgroup while attached exits 1" 1 "$rc"
expect_match "load onto another cgroup says why" "already attached to another cgroup" "$out"
expect_eq "the refused load leaves the hooks where they were" 8 "$(bpftool cgroup show "$TOPO_CGROUP" | tail -n +2 | wc -l)"
rmdir "$TOPO_CGROUP/other"

out=$(np unload); expect_eq "unload exits 0" 0 $?
expect_eq "unload detaches everything" 0 "$(bpftool cgroup show "$TOPO_CGROUP" | tail -n +2 | wc -l)"
expect_eq "unload removes the pin dir" no "$([ -e "$PIN" ] && echo yes || echo no)"
out=$(np unload 2>&1); expect_eq "unload when not loaded exits 1" 1 $?

finish
