#!/usr/bin/env bash
# Boot: what `cmake --install` puts on a node (the units, the example config)
# and `nodeport load --config FILE` as the unit runs it: the file's options
# load, the command line wins over them, an unknown key is refused, and a
# second start (or a start after a crash) keeps the mappings.
# BUILD (argument 2): the configured build directory to install from.
# systemd is not PID 1 here: the units are verified, not started.
set -u
NODEPORT=$1
BUILD=$2
. "$(dirname "$0")/lib.sh"
require datapath tcx

test_begin unit
STAGE=$(mktemp -d /tmp/np-unit.XXXXXX)
WATCH_PID=""
on_cleanup() {
    [ -n "$WATCH_PID" ] && kill "$WATCH_PID" 2>/dev/null
    rm -rf "$STAGE"
}
topo_node
topo_client
topo_cgroup

# --- Installed files ---
DESTDIR="$STAGE/root" cmake --install "$BUILD" >/dev/null
expect_eq "cmake --install into a DESTDIR exits 0" 0 $?
cache() { sed -n "s/^$1:[A-Z]*=//p" "$BUILD/CMakeCache.txt"; }
PREFIX=$(cache CMAKE_INSTALL_PREFIX)
UNIT_DIR=$(cache NODEPORT_SYSTEMD_UNIT_DIR)
[[ "$UNIT_DIR" = /* ]] || UNIT_DIR="$PREFIX/$UNIT_DIR"
UNITS="nodeport.service nodeport-watch.service nodeport-metrics.service nodeport-metrics.timer"
for f in "$PREFIX/sbin/nodeport" "$PREFIX/share/doc/nodeport/nodeport.conf.example" \
    $(for u in $UNITS; do echo "$UNIT_DIR/$u"; done); do
    expect_eq "installed $f" yes "$([ -s "$STAGE/root$f" ] && echo yes || echo no)"
done
LOAD_UNIT="$STAGE/root$UNIT_DIR/nodeport.service"
EXAMPLE="$STAGE/root$PREFIX/share/doc/nodeport/nodeport.conf.example"
expect_eq "nodeport.service runs the install prefix's binary with the node's config" \
    "ExecStart=$PREFIX/sbin/nodeport load --config /etc/nodeport/nodeport.conf" "$(grep '^ExecStart=' "$LOAD_UNIT")"
expect_eq "nodeport.service is a oneshot that stays active" "Type=oneshot RemainAfterExit=yes" \
    "$(grep -E '^(Type|RemainAfterExit)=' "$LOAD_UNIT" | tr '\n' ' ' | sed 's/ $//')"
expect_eq "stopping nodeport.service does not unload (no ExecStop)" "" "$(grep -E '^ExecStop' "$LOAD_UNIT")"
WATCH_UNIT="$STAGE/root$UNIT_DIR/nodeport-watch.service"
expect_eq "nodeport-watch.service runs watch with the same config" \
    "ExecStart=$PREFIX/sbin/nodeport watch --config /etc/nodeport/nodeport.conf" "$(grep '^ExecStart=' "$WATCH_UNIT")"
expect_eq "nodeport-watch.service is a simple service after nodeport.service, restarted on failure" \
    "Requires=nodeport.service After=nodeport.service Type=simple Restart=on-failure" \
    "$(grep -E '^(Requires|After|Type|Restart)=' "$WATCH_UNIT" | tr '\n' ' ' | sed 's/ $//')"
# A reload of nodeport.service (load with the config's new options) must
# reach the watch, or it restores the old interface set at the next change.
expect_eq "nodeport-watch.service reloads with nodeport.service, by SIGHUP (watch re-reads the config)" \
    'ReloadPropagatedFrom=nodeport.service ExecReload=/bin/kill -HUP $MAINPID' \
    "$(grep -E '^(ReloadPropagatedFrom|ExecReload)=' "$WATCH_UNIT" | tr '\n' ' ' | sed 's/ $//')"

# systemd-analyze verify refuses a unit whose ExecStart binary is missing,
# and the binary sits under DESTDIR, not at its installed path. So verify a
# copy whose paths point into DESTDIR; everything else is the installed unit.
mkdir -p "$STAGE/verify"
for u in $UNITS; do
    sed "s|$PREFIX/sbin/nodeport|$STAGE/root$PREFIX/sbin/nodeport|g" "$STAGE/root$UNIT_DIR/$u" >"$STAGE/verify/$u"
done
out=$(cd "$STAGE/verify" && systemd-analyze verify $UNITS 2>&1); rc=$?
# verify exits 0 on unknown keys too, and only warns: it must say nothing.
# (It parses every line: a misspelt key such as ReloadPropagateFrom= warns.)
expect_eq "systemd-analyze verify passes on $UNITS, without a warning" "0 " "$rc $out"
# And it does warn, so the check above can fail: the same units with a misspelt key.
sed 's/^ReloadPropagatedFrom=/ReloadPropagateFrom=/' "$STAGE/verify/nodeport-watch.service" \
    >"$STAGE/verify/nodeport-watch.service.bad" && mv "$STAGE/verify/nodeport-watch.service.bad" \
    "$STAGE/verify/nodeport-watch.service"
out=$(cd "$STAGE/verify" && systemd-analyze verify $UNITS 2>&1)
expect_match "systemd-analyze verify warns about a misspelt reload key" "ReloadPropagateFrom" "$out"

# --- The example documents every option of load ---
missing=""
checked=0
for opt in $("$NODEPORT" load --help | grep -oE '^  (-[a-z] \[ )?--[a-z-]+' | sed 's/.*--//'); do
    # --json shapes the command's output for a program reading it, not the node's setup.
    case $opt in config | help | json) continue ;; esac
    checked=$((checked + 1))
    grep -qE "^#$opt = " "$EXAMPLE" || missing="$missing $opt"
done
expect_eq "the example has a commented-out '#name = default' line for every load option ($checked)" "" "$missing"
[ "$checked" -ge 11 ] || fail "load --help lists only $checked options: the check above read it wrong"

# Every line of it, uncommented, is a valid config; this node's options on the
# command line replace the example's values.
sed -nE 's/^#([a-z-]+ = .*)/\1/p' "$EXAMPLE" >"$STAGE/example.conf"
out=$(topo_in node "$NODEPORT" load --config "$STAGE/example.conf" --pin-dir "$PIN" --cgroup "$TOPO_CGROUP" \
    --iface all --exclude br0 --node-ip "$TOPO_NODE_EXT_IP" 2>&1)
expect_eq "load --config <the example, uncommented> with this node's options exits 0" 0 $?
expect_eq "and the command line's options win" \
    "loaded at $PIN on cgroup $TOPO_CGROUP|node addresses: $TOPO_NODE_EXT_IP|external interfaces: ext0 (tcx)" \
    "$(printf '%s' "$out" | tr '\n' '|')"
np unload >/dev/null

# --- A node's config file ---
CONF="$STAGE/nodeport.conf"
cat >"$CONF" <<CONF
# as /etc/nodeport/nodeport.conf would be on this node
pin-dir = $PIN
cgroup = $TOPO_CGROUP
iface = ext0
node-ip = $TOPO_NODE_EXT_IP
node-ip = 10.200.0.7
tc-attach = tcx
udp-timeout = 33
CONF
udp_timeout() { bpftool -j map dump pinned "$PIN/flow_timeouts" | jq '.[0].formatted.value.udp_idle_ns / 1000000000'; }

out=$(topo_in node "$NODEPORT" load --config "$CONF" 2>&1)
expect_eq "load --config exits 0" 0 $?
expect_match "it loads at the file's pin-dir, on the file's cgroup" "loaded at $PIN on cgroup $TOPO_CGROUP" "$out"
expect_match "a repeated key gives every value (node-ip twice)" "node addresses: $TOPO_NODE_EXT_IP, 10.200.0.7"$'\n' "$out"
expect_match "it attaches to the file's iface, with its tc-attach" "external interfaces: ext0 \(tcx\)" "$out"
expect_eq "the file's udp-timeout is in flow_timeouts" 33 "$(udp_timeout)"

topo_sandbox 1
topo_serve sb1 sb1 6667
np set tcp/6667 "$(topo_sandbox_ip 1):6667" --owner sb-1 >/dev/null
curl_client() { topo_in client curl -s --http0.9 --max-time 3 "http://$TOPO_NODE_EXT_IP:6667/"; }
expect_eq "a client reaches the sandbox through the node port" "sb1 $TOPO_CLIENT_IP" "$(curl_client)"

# Started twice, or again after a crash: harmless.
out=$(topo_in node "$NODEPORT" load --config "$CONF" 2>&1)
expect_eq "a second load --config exits 0" 0 $?
expect_match "and keeps the pinned maps" "kept the pinned maps" "$out"
expect_eq "the mapping survives it" "tcp/6667 -> $(topo_sandbox_ip 1):6667 owner sb-1" "$(np get tcp/6667)"
expect_eq "one copy of each program on ext0" "1 1" \
    "$(for p in np_tc_ingress np_tc_egress; do topo_in node bpftool net show dev ext0 | grep -c "$p"; done | xargs)"
expect_eq "the client still reaches the sandbox" "sb1 $TOPO_CLIENT_IP" "$(curl_client)"

# The command line wins, for a single value and for a repeatable one.
out=$(topo_in node "$NODEPORT" load --config "$CONF" --udp-timeout 44 --node-ip "$TOPO_NODE_EXT_IP" 2>&1)
expect_eq "load --config with options on the command line exits 0" 0 $?
expect_eq "--udp-timeout on the command line replaces the file's" 44 "$(udp_timeout)"
expect_match "--node-ip on the command line replaces both of the file's" "node addresses: $TOPO_NODE_EXT_IP"$'\n' "$out"

# nodeport-watch.service reads the same file.
WATCH_LOG="$STAGE/watch.log"
nsenter --net="/run/netns/$(topo_ns node)" "$NODEPORT" watch --config "$CONF" >"$WATCH_LOG" 2>&1 &
WATCH_PID=$!
for _ in $(seq 1 50); do
    grep -q '^node addresses:' "$WATCH_LOG" && break
    sleep 0.1
done
kill -TERM "$WATCH_PID"
wait "$WATCH_PID"
expect_eq "watch --config runs with the file's options and exits 0 on SIGTERM" \
    "0|watching the interfaces and addresses of this network namespace|external interfaces: ext0 (tcx)|\
node addresses: $TOPO_NODE_EXT_IP, 10.200.0.7|stopped by TERM; the datapath stays attached" \
    "$?|$(tr '\n' '|' <"$WATCH_LOG" | sed 's/|$//')"
expect_eq "the mapping is still there" "tcp/6667 -> $(topo_sandbox_ip 1):6667 owner sb-1" "$(np get tcp/6667)"

# bad_conf DESCRIPTION WANT-IN-MESSAGE FILE-LINE: exit 2, one line, nothing changed.
bad_conf() {
    local out rc
    { cat "$CONF"; printf '%s\n' "$3"; } >"$STAGE/bad.conf"
    out=$(topo_in node "$NODEPORT" load --config "$STAGE/bad.conf" 2>&1); rc=$?
    if [ "$rc" -eq 2 ] && [ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ] && [[ "$out" == *"$2"* ]]; then
        pass "$1"
    else
        fail "$1: exit $rc: $out"
    fi
    expect_eq "$1 changes nothing" 44 "$(udp_timeout)"
}
bad_conf "an unknown key in the file is exit 2 naming the key and the file" \
    "config: $STAGE/bad.conf: unrecognised option 'colour'" "colour = red"
bad_conf "a bad value in the file is exit 2 naming the option" "tcp-timeout: '0' is not a number of seconds" \
    "tcp-timeout = 0"
bad_conf "a single-valued key given twice is exit 2 naming it" "udp-timeout" "udp-timeout = 60"
bad_conf "a line that is not name = value is exit 2" "invalid line" "local-only"
out=$(topo_in node "$NODEPORT" load --config "$STAGE/nonexistent.conf" 2>&1); rc=$?
expect_eq "a missing config file is exit 2 naming it" \
    "2 nodeport load: config: cannot read '$STAGE/nonexistent.conf': No such file or directory" "$rc $out"

finish
