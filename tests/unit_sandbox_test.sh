#!/usr/bin/env bash
# The units' sandboxing, exercised without systemd (it is not PID 1 here):
# the units' command lines run under what their settings do, rebuilt with
# unshare and setpriv, in the test's node namespace, on the test's pin
# directory and cgroup:
#   CapabilityBoundingSet=   setpriv --bounding-set (the unit's own list)
#   NoNewPrivileges=yes      setpriv --no-new-privs
#   ProtectSystem=strict, ProtectKernelTunables=, ProtectControlGroups=,
#   ReadWritePaths=          a private mount namespace in which every mount
#                            is remounted read-only but bpffs (and, for the
#                            metrics unit, its output directory) and /dev
#   PrivateTmp=yes           a tmpfs on /tmp
# Not exercised (seccomp and cgroup BPF that only systemd applies):
# SystemCallFilter=, RestrictAddressFamilies=, RestrictNamespaces=,
# MemoryDenyWriteExecute=, IPAddressDeny=, ProtectProc=, PrivateDevices=.
# Also: the capability list is the narrowest that works, measured: without
# CAP_SYS_ADMIN a reload and watch fail (BPF_PROG_GET_FD_BY_ID: "open
# program N: Operation not permitted").
#   unit_sandbox_test.sh NODEPORT BUILD
set -u
NODEPORT=$1
BUILD=$2
. "$(dirname "$0")/lib.sh"
require datapath tcx
command -v setpriv >/dev/null || skip "no setpriv (util-linux)"

test_begin usandbox
# Not under /tmp, which the sandbox replaces (PrivateTmp=).
WORK=$(mktemp -d /run/np-usandbox.XXXXXX)
# The units run /usr/sbin/nodeport; the build's binary runs from the work
# directory, so a checkout under /tmp (hidden by the private /tmp) works too.
cp "$NODEPORT" "$WORK/nodeport"
NODEPORT=$WORK/nodeport
WATCH_PID=""
on_cleanup() {
    [ -n "$WATCH_PID" ] && kill "$WATCH_PID" 2>/dev/null
    rm -rf "$WORK"
}
topo_node
topo_client
topo_cgroup
topo_sandbox 1
topo_serve sb1 sb1 6667

UNITS=$BUILD/packaging/systemd
[ -s "$UNITS/nodeport.service" ] || DESTDIR="$WORK/root" cmake --install "$BUILD" >/dev/null
[ -s "$UNITS/nodeport.service" ] || { fail "the units are written by cmake --install into $UNITS"; finish; exit; }
# The bounding set a unit names, as setpriv spells it: -all,+bpf,...
bounding_of() {
    sed -n 's/^CapabilityBoundingSet=//p' "$UNITS/$1" | tr ' ' '\n' | sed 's/^CAP_//' | tr 'A-Z' 'a-z' |
        sed 's/^/+/' | paste -sd, | sed 's/^/-all,/'
}
expect_eq "nodeport.service's bounding set" "-all,+bpf,+perfmon,+net_admin,+sys_admin" \
    "$(bounding_of nodeport.service)"
expect_eq "nodeport-watch.service has the same" "$(bounding_of nodeport.service)" "$(bounding_of nodeport-watch.service)"

# sandboxed UNIT WRITABLE CMD...: CMD in the node namespace, as the unit would run it.
sandboxed() {
    local unit=$1 writable=$2
    shift 2
    topo_in node unshare --mount --propagation private sh -c '
        writable=$1 caps=$2; shift 2
        mount -t tmpfs tmpfs /tmp || exit 90
        [ -z "$writable" ] || mount --bind "$writable" "$writable" || exit 91
        # Deepest first, so a parent remounted read-only does not hide a child.
        for m in $(findmnt -rno TARGET | sort -r); do
            case $m in
                /dev | /dev/* | /proc | /sys/fs/bpf | /tmp) continue ;;
                "$writable") continue ;;
            esac
            mount -o remount,bind,ro "$m" 2>/dev/null
        done
        mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys || exit 92
        exec setpriv --bounding-set "$caps" --inh-caps -all --no-new-privs "$@"
    ' sh "$writable" "$(bounding_of "$unit")" "$@"
}
# The sandbox holds: a write outside the pins fails, /proc/sys too.
out=$(sandboxed nodeport.service "" sh -c 'touch /etc/np-probe 2>&1; echo 1 >/proc/sys/net/ipv4/ip_forward 2>&1;
    grep CapBnd /proc/self/status; grep NoNewPrivs /proc/self/status' 2>&1)
expect_match "inside it /etc is read-only" "np-probe'?: Read-only file system" "$out"
expect_match "and /proc/sys" "ip_forward'?: Read-only file system" "$out"
expect_match "no new privileges" "NoNewPrivs:[[:space:]]1" "$out"
expect_match "the bounding set is the unit's four (bpf 39, perfmon 38, net_admin 12, sys_admin 21)" \
    "CapBnd:[[:space:]]000000c000201000" "$out"

CONF=$WORK/nodeport.conf
cat >"$CONF" <<CONF
pin-dir = $PIN
cgroup = $TOPO_CGROUP
iface = ext0
CONF
out=$(sandboxed nodeport.service "" "$NODEPORT" load --config "$CONF" 2>&1)
expect_eq "load --config under nodeport.service's sandbox exits 0" 0 $?
expect_match "and loads at the test pin directory" "loaded at $PIN on cgroup $TOPO_CGROUP" "$out"
np set tcp/6667 "$(topo_sandbox_ip 1):6667" --owner sb-1 >/dev/null
curl_client() { topo_in client curl -s --http0.9 --max-time 3 "http://$TOPO_NODE_EXT_IP:6667/"; }
expect_eq "the baseline: the client reaches the sandbox straight" "sb1 $TOPO_CLIENT_IP" \
    "$(topo_in client curl -s --http0.9 --max-time 3 "http://$(topo_sandbox_ip 1):6667/")"
expect_eq "a client reaches the sandbox through the node port" "sb1 $TOPO_CLIENT_IP" "$(curl_client)"
link_prog() { bpftool -j link show pinned "$PIN/links/np_connect4" | jq -r .prog_id; }
before=$(link_prog)
out=$(sandboxed nodeport.service "" "$NODEPORT" load --config "$CONF" 2>&1)
expect_eq "a reload (ExecReload: load again) under the sandbox exits 0" 0 $?
expect_eq "and swaps the programs in place" yes "$([ "$(link_prog)" != "$before" ] && echo yes || echo no)"
expect_eq "the mapping survives it" "tcp/6667 -> $(topo_sandbox_ip 1):6667 owner sb-1" "$(np get tcp/6667)"
expect_eq "the client still reaches the sandbox" "sb1 $TOPO_CLIENT_IP" "$(curl_client)"

WATCH_LOG=$WORK/watch.log
sandboxed nodeport-watch.service "" "$NODEPORT" watch --config "$CONF" >"$WATCH_LOG" 2>&1 &
WATCH_PID=$!
for _ in $(seq 1 100); do
    grep -q '^node addresses:' "$WATCH_LOG" && break
    sleep 0.1
done
# A new veth in the node namespace gets an address: the watch re-reads them.
topo_in node ip link add npw0 type veth peer name npw1 && topo_in node ip addr add 10.201.0.1/24 dev npw0 &&
    topo_in node ip link set npw0 up
for _ in $(seq 1 100); do
    grep -q '10.201.0.1' "$WATCH_LOG" && break
    sleep 0.1
done
# The subshell's child is the watch itself (nsenter, unshare, sh and setpriv exec it).
kill -TERM "$(pgrep -P "$WATCH_PID")"
wait "$WATCH_PID"
rc=$?
WATCH_PID=""
expect_eq "watch --config under nodeport-watch.service's sandbox follows a new address and stops on SIGTERM" \
    "0 yes no" "$rc $(grep -q '10.201.0.1' "$WATCH_LOG" && echo yes || echo no) \
$(grep -qi 'not permitted\|read-only' "$WATCH_LOG" && echo yes || echo no)"
[ "$rc" -eq 0 ] || head -n 5 "$WATCH_LOG"

mkdir -p "$WORK/textfile"
out=$(sandboxed nodeport-metrics.service "$WORK/textfile" "$NODEPORT" stats --pin-dir "$PIN" --prometheus \
    --output "$WORK/textfile/nodeport.prom" 2>&1)
expect_eq "stats --prometheus --output under nodeport-metrics.service's sandbox exits 0" "0 " "$? $out"
expect_match "and writes the file" "^nodeport_port_info\{proto=\"tcp\",port=\"6667\",owner=\"sb-1\"" \
    "$(grep '^nodeport_port_info' "$WORK/textfile/nodeport.prom")"
finish
