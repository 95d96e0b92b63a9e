#!/usr/bin/env bash
# The Debian packages, built as Debian builds them (dpkg-buildpackage with
# debian/, from a copy of the source tree), then checked as an operator
# meets them:
#   - lintian: no error and no warning at the default level;
#   - nodeport, libnodeport0, libnodeport-dev and their -dbgsym packages: the
#     files, the conffile, the symbols file, stripped binaries built with
#     Debian's hardening flags, the units' systemd-analyze verify and
#     security (exposure <= 5.0, scored offline);
#   - the maintainer scripts, run by dpkg --root in a throw-away root, in a
#     private mount namespace that sees /sys and /proc, inside the test's node
#     network namespace. systemd is not PID 1 here: a stand-in `systemctl` in
#     the root runs the unit's own ExecStart/ExecReload lines and logs every
#     call. The root's conffile points nodeport at the test's pin directory,
#     cgroup and interface. Install (daemon-reload, nothing enabled or
#     started), upgrade under traffic (the running service is reloaded, new
#     programs swapped in place, no connection fails), a failed upgrade (the
#     old programs keep running), remove (unloaded before the binary goes:
#     nothing attached or pinned) and purge (the conffile goes).
# apt-get install --simulate then resolves the packages' Depends against the
# real archive. Nothing is installed on this machine.
set -u
NODEPORT=$1
. "$(dirname "$0")/lib.sh"
. "$TESTS_DIR/upgrade_lib.sh"
require root datapath
for tool in dpkg-buildpackage dh lintian; do
    command -v "$tool" >/dev/null || skip "no $tool (scripts/setup.sh installs debhelper and lintian)"
done
SRC=$(dirname "$TESTS_DIR")
WORK=$(mktemp -d /tmp/np-deb.XXXXXX)

test_begin deb
MNT_PID=""
on_cleanup() {
    stop_traffic_on_cleanup
    [ -n "$MNT_PID" ] && kill "$MNT_PID" 2>/dev/null
    rm -rf "$WORK"
}

# --- Build ---
# A copy without build directories: dpkg-buildpackage writes into the source
# tree (debian/tmp, obj-*) and its packages beside it. NP_DEB_BUILT=DIR (a
# directory where dpkg-buildpackage -b ran on this tree, packages beside its
# src/ and build.log in it) skips the half-hour build when iterating on the test.
if [ -n "${NP_DEB_BUILT:-}" ]; then
    cp -a "$NP_DEB_BUILT"/*.deb "$NP_DEB_BUILT"/*.changes "$NP_DEB_BUILT"/*.buildinfo \
        "$NP_DEB_BUILT/build.log" "$WORK/" && mkdir -p "$WORK/src" && cp -a "$NP_DEB_BUILT/src/debian" "$WORK/src/"
    echo "     NP_DEB_BUILT: the packages of $NP_DEB_BUILT"
else
    mkdir -p "$WORK/src"
    tar -C "$SRC" --exclude='./build*' --exclude='./obj-*' --exclude=./.git --exclude='./debian/.debhelper' \
        --exclude='./debian/tmp' -cf - . | tar -C "$WORK/src" -xf -
    if (cd "$WORK/src" && DEB_BUILD_OPTIONS="parallel=$(nproc)" dpkg-buildpackage -b -us -uc) >"$WORK/build.log" 2>&1
    then
        pass "dpkg-buildpackage -b builds the packages"
    else
        fail "dpkg-buildpackage: $(grep -m 5 -E 'error|Error|dh_[a-z_]+: ' "$WORK/build.log")"
        finish
        exit
    fi
fi
ARCH=$(dpkg --print-architecture)
MA=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
VERSION=$(cd "$WORK/src" && dpkg-parsechangelog -S Version)
deb() { echo "$WORK/${1}_${VERSION}_$ARCH.deb"; }
for p in nodeport libnodeport0 libnodeport-dev nodeport-dbgsym libnodeport0-dbgsym; do
    f=$WORK/${p}_${VERSION}_$ARCH.deb
    expect_eq "it made $(basename "$f")" yes "$([ -s "$f" ] && echo yes || echo no)"
done

# --- lintian ---
# Its scratch files (mldbm-elf-*, which it leaves behind) go into $WORK,
# removed on cleanup, not into /tmp.
mkdir -p "$WORK/tmp"
out=$(TMPDIR="$WORK/tmp" lintian --fail-on error,warning "$WORK"/*.changes 2>&1)
rc=$?
echo "$out" | sed 's/^/     lintian: /'
expect_eq "lintian on the .changes (every package): no error, no warning" "0 0" \
    "$rc $(grep -cE '^[EW]: ' <<<"$out")"

# --- Contents ---
files_of() { dpkg-deb -c "$1" | awk '{print $6}' | sed 's|^\./|/|'; }
has_all() { # PACKAGE-FILE PATH...: the paths it misses
    local files missing="" f
    files=$(files_of "$1")
    shift
    for f in "$@"; do grep -qxF "$f" <<<"$files" || missing="$missing $f"; done
    echo "$missing"
}
expect_eq "nodeport: CLI, CNI plugin, units, man page, completion, conffile" "" \
    "$(has_all "$(deb nodeport)" /usr/sbin/nodeport /usr/lib/cni/nodeport-cni /etc/nodeport/nodeport.conf \
        /lib/systemd/system/nodeport.service /lib/systemd/system/nodeport-watch.service \
        /lib/systemd/system/nodeport-metrics.service /lib/systemd/system/nodeport-metrics.timer \
        /usr/share/man/man8/nodeport.8.gz /usr/share/bash-completion/completions/nodeport \
        /usr/share/doc/nodeport/copyright /usr/share/doc/nodeport/changelog.gz)"
expect_eq "nodeport has no library, header or static archive" "" \
    "$(files_of "$(deb nodeport)" | grep -E '\.(so|a|h|hpp|pc)(\.|$)|/cmake/')"
expect_eq "libnodeport0: the shared library alone" "" \
    "$(has_all "$(deb libnodeport0)" /usr/lib/$MA/libnodeport.so.$VERSION /usr/lib/$MA/libnodeport.so.0)"
expect_eq "and nothing for development" "" "$(files_of "$(deb libnodeport0)" | grep -E '\.(a|h|hpp|pc)$|/cmake/|\.so$')"
expect_eq "libnodeport-dev: headers, static library, .so link, .pc, CMake package" "" \
    "$(has_all "$(deb libnodeport-dev)" /usr/include/nodeport/nodeport.h /usr/include/nodeport/port_table.hpp \
        /usr/lib/$MA/libnodeport.a /usr/lib/$MA/libnodeport.so /usr/lib/$MA/pkgconfig/nodeport.pc \
        /usr/lib/$MA/cmake/nodeport/nodeportConfig.cmake)"
expect_eq "the conffile is marked as one" "/etc/nodeport/nodeport.conf" "$(dpkg-deb -I "$(deb nodeport)" conffiles)"
expect_match "nodeport's description says the units are not enabled" "installed but not enabled" \
    "$(dpkg-deb -f "$(deb nodeport)" Description)"
SYMBOLS=$(dpkg-deb -I "$(deb libnodeport0)" symbols 2>&1)
expect_match "libnodeport0 has a symbols file naming the C ABI under NODEPORT_C_1" \
    "nodeport_open@NODEPORT_C_1 " "$SYMBOLS"
expect_match "with nodeport_version" "nodeport_version@NODEPORT_C_1 " "$SYMBOLS"

X="$WORK/x"
for p in nodeport libnodeport0; do dpkg-deb -x "$(deb "$p")" "$X"; done
for f in /usr/sbin/nodeport /usr/lib/cni/nodeport-cni /usr/lib/$MA/libnodeport.so.$VERSION; do
    expect_match "$f is stripped, with a build id for its -dbgsym" "stripped" \
        "$(file -L "$X$f" | grep -o 'BuildID\[sha1\]=[0-9a-f]*.*, stripped')"
done
expect_eq "and ignore NODEPORT_TEST_HOOK: its name is in none of them (static_build_test checks clang's build)" \
    "0 0 0" "$(for f in /usr/sbin/nodeport /usr/lib/cni/nodeport-cni /usr/lib/$MA/libnodeport.so.$VERSION; do
        grep -c NODEPORT_TEST_HOOK "$X$f"; done | paste -sd' ')"
BIN=$X/usr/sbin/nodeport
expect_eq "the hardening flags reached the linker: PIE, full RELRO (BIND_NOW)" "DYN yes yes" \
    "$(readelf -h "$BIN" | awk '/Type:/ {print $2}') $(readelf -lW "$BIN" | grep -q GNU_RELRO && echo yes || echo no) \
$(readelf -dW "$BIN" | grep -qE 'BIND_NOW|FLAGS_1.*NOW' && echo yes || echo no)"
expect_match "and the compiler: _FORTIFY_SOURCE's checked calls, the stack protector" "__stack_chk_fail.*|__[a-z]+_chk" \
    "$(nm -D "$BIN" | grep -oE '__[a-z_]+_chk[a-z_]*' | sort -u | xargs)"
expect_match "the build log shows dpkg-buildflags' flags on the compiler line of c_api.cpp" \
    "-fstack-protector-strong.*-D_FORTIFY_SOURCE=2" "$(grep -m 1 -E 'c\+\+ .* -c .*/loader/capi/c_api\.cpp' "$WORK/build.log")"

# --- Units: verify and exposure ---
UNITS="nodeport.service nodeport-watch.service nodeport-metrics.service nodeport-metrics.timer"
mkdir -p "$WORK/verify"
for u in $UNITS; do sed "s|/usr/sbin/nodeport|$BIN|g" "$X/lib/systemd/system/$u" >"$WORK/verify/$u"; done
out=$(cd "$WORK/verify" && systemd-analyze verify $UNITS 2>&1)
expect_eq "systemd-analyze verify: the packaged units, without a warning" "" "$out"
for u in nodeport.service nodeport-watch.service nodeport-metrics.service; do
    score=$(systemd-analyze security --offline=yes "$WORK/verify/$u" 2>&1 | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
    echo "     $u: exposure $score"
    expect_eq "$u: exposure <= 5.0 (systemd-analyze security --offline)" yes \
        "$(awk -v s="${score:-99}" 'BEGIN { print (s <= 5.0) ? "yes" : "no" }')"
done

# --- A throw-away root ---
# An empty dpkg database; what the maintainer scripts run there (sh, sed,
# tail, and the nodeport binary's libraries); stand-ins for systemctl,
# deb-systemd-helper and deb-systemd-invoke that log each call. The stand-in
# systemctl runs the unit's own command lines for start and reload.
R="$WORK/root"
mkdir -p "$R/var/lib/dpkg/info" "$R/var/lib/dpkg/updates" "$R"/usr/{bin,sbin,lib,lib64} "$R/etc" "$R/tmp" \
    "$R/run/systemd/system" "$R"/{sys,proc,dev} "$R/var/log"
touch "$R/var/lib/dpkg/status" "$R/var/lib/dpkg/available"
for d in bin sbin lib lib64; do ln -s "usr/$d" "$R/$d"; done
copy_in() { # BINARY...: it and the libraries it loads, at their paths
    local f lib
    for f in "$@"; do
        cp -L "$f" "$R$f"
        for lib in $(ldd "$f" | grep -oE '/[^ ]+'); do
            [ -e "$R$lib" ] || { mkdir -p "$R$(dirname "$lib")" && cp -L "$lib" "$R$lib"; }
        done
    done
}
# dpkg itself runs chrooted there: `dpkg --root` would set DPKG_ROOT, for
# which dh_installsystemd's snippets (and ours) do nothing.
copy_in /usr/bin/dash /usr/bin/sed /usr/bin/tail /usr/bin/rm /usr/bin/touch /usr/bin/cat /usr/sbin/ldconfig \
    /usr/bin/dpkg /usr/bin/dpkg-deb /usr/bin/dpkg-split /usr/bin/grep /usr/bin/tar /usr/bin/diff /usr/sbin/start-stop-daemon /usr/bin/mv
ln -s dash "$R/usr/bin/sh"
mkdir -p "$R/pkgs" && cp "$WORK"/*.deb "$R/pkgs/"
# What the package's binary links to, from this machine (dpkg --force-depends: not installed in the root).
for lib in $(ldd "$BIN" | grep -oE '/[^ ]+'); do
    [ -e "$R$lib" ] || { mkdir -p "$R$(dirname "$lib")" && cp -L "$lib" "$R$lib"; }
done
cat >"$R/usr/bin/systemctl" <<'SH'
#!/bin/sh
# Stand-in for systemctl (systemd is not PID 1 here): logs the call; start
# and reload run the unit's own ExecStart/ExecReload line; is-active answers
# from a marker that start sets and stop clears.
echo "systemctl $*" >>/var/log/systemctl.calls
unit_line() { sed -n "s/^$1=//p" "/lib/systemd/system/$2" | tail -n 1 | grep . || echo "exit 1"; }
quiet=""
[ "$1" = --system ] && shift
[ "$1" = --quiet ] && { quiet=1; shift; }
case "$1" in
    daemon-reload) exit 0 ;;
    is-active) [ -e "/run/active.$2" ] ;;
    start) sh -c "$(unit_line ExecStart "$2")" && touch "/run/active.$2" ;;
    reload) sh -c "$(unit_line ExecReload "$2")" ;;
    try-reload-or-restart) [ ! -e "/run/active.$2" ] || sh -c "$(unit_line ExecReload "$2")" ;;
    stop) rm -f "/run/active.$2" ;;
    *) exit 0 ;;
esac
SH
# As the real one on a new install: no unit was ever enabled or installed.
cat >"$R/usr/bin/deb-systemd-helper" <<'SH'
#!/bin/sh
echo "deb-systemd-helper $*" >>/var/log/systemctl.calls
[ "$1" = --quiet ] && shift
case "$1" in was-enabled | debian-installed | is-enabled) exit 1 ;; esac
exit 0
SH
# As the real one: start, restart and stop with its own rules (the units are
# not enabled here: nothing to do), any other action straight to systemctl.
cat >"$R/usr/bin/deb-systemd-invoke" <<'SH'
#!/bin/sh
echo "deb-systemd-invoke $*" >>/var/log/systemctl.calls
case "$1" in start | restart | stop) exit 0 ;; esac
exec systemctl "$@"
SH
chmod +x "$R"/usr/bin/systemctl "$R"/usr/bin/deb-systemd-helper "$R"/usr/bin/deb-systemd-invoke
calls() { cat "$R/var/log/systemctl.calls" 2>/dev/null; }

# The test's node: a client, a sandbox behind a bridge, a test cgroup. The
# root's dpkg runs in a private mount namespace (bind mounts of /sys, /proc
# and /dev into the root, gone with it), inside the node's network namespace.
topo_node
topo_client
topo_cgroup
topo_sandbox 1
topo_serve sb1 sb1 7000 --hold
mkfifo "$WORK/mnt.in"
unshare --mount --propagation private sh -c '
    mount --rbind /sys "$1/sys" && mount --rbind /proc "$1/proc" && mount --rbind /dev "$1/dev" &&
    exec nsenter --net="$2" sh -c "while read -r cmd; do eval \"\$cmd\"; echo \$? >$3/mnt.rc.new; mv $3/mnt.rc.new $3/mnt.rc; done" <"$3/mnt.in"
' sh "$R" "/run/netns/$(topo_ns node)" "$WORK" &
MNT_PID=$!
exec 9>"$WORK/mnt.in"
in_root() { # COMMAND (a shell line): run in that namespace; prints its output, returns its status
    rm -f "$WORK/mnt.rc"
    echo "$* >$WORK/mnt.out 2>&1" >&9
    while [ ! -s "$WORK/mnt.rc" ]; do sleep 0.1; done
    cat "$WORK/mnt.out"
    return "$(cat "$WORK/mnt.rc")"
}
DPKG="chroot $R dpkg --force-depends --force-confold"
pkg() { echo "/pkgs/$(basename "$1")"; }

# --- Install ---
out=$(in_root "$DPKG -i $(pkg "$(deb nodeport)")")
rc=$?
expect_eq "dpkg -i nodeport into the root exits 0" 0 "$rc"
[ "$rc" -eq 0 ] || echo "$out" | grep -v 'depends on\|is not installed' | tail -n 8
expect_eq "the conffile is in place: every option commented out (load's defaults: the default route's interface)" \
    "yes " "$([ -s "$R/etc/nodeport/nodeport.conf" ] && echo yes) $(grep -vE '^(#|$)' "$R/etc/nodeport/nodeport.conf")"
has_call() { calls | grep -qxF "$1" && echo yes || echo "no: $(calls | xargs)"; }
expect_eq "its postinst ran systemctl daemon-reload" yes "$(has_call 'systemctl --system daemon-reload')"
# dh_installsystemd's postinst asks deb-systemd-invoke to start the watch and
# the timer; the real one starts only enabled units, and none is.
expect_eq "and enabled or started nothing" "" "$(calls | grep -E 'helper enable|^systemctl (start|restart|reload)')"

# The operator's conffile: this test's pin directory, cgroup and interface.
cat >"$R/etc/nodeport/nodeport.conf" <<CONF
pin-dir = $PIN
cgroup = $TOPO_CGROUP
iface = ext0
CONF
out=$(in_root "chroot $R systemctl start nodeport.service")
expect_eq "systemctl start nodeport.service (the stand-in runs the unit's ExecStart) loads" 0 $?
expect_match "at the conffile's pin directory" "loaded at $PIN on cgroup $TOPO_CGROUP" "$out"
np set tcp/7000 "$(topo_sandbox_ip 1):7000" --owner sb-1 >/dev/null
connect4_id() { bpftool -j link show pinned "$PIN/links/np_connect4" 2>/dev/null | jq -r '.prog_id'; }
ingress_id() {
    topo_in node bpftool -j net show dev ext0 |
        jq -r '[.. | objects | select((.name? // "") | tostring | startswith("np_tc_ingress")) | (.prog_id // .id)] | first'
}
OLD_IDS="$(connect4_id) $(ingress_id)"

# --- Upgrade under traffic ---
# The same build as version $VERSION+1: another package version, whose
# postinst reloads the running service; the reload loads new program
# instances (new ids) behind the pinned links.
mkdir -p "$WORK/next"
dpkg-deb -R "$(deb nodeport)" "$WORK/next/pkg"
sed -i "s/^Version: .*/Version: $VERSION+1/" "$WORK/next/pkg/DEBIAN/control"
dpkg-deb -b "$WORK/next/pkg" "$R/pkgs/nodeport_next.deb" >/dev/null
: >"$R/var/log/systemctl.calls"
start_traffic 7000
mark_traffic_window
out=$(in_root "$DPKG -i /pkgs/nodeport_next.deb")
rc=$?
mark_traffic_window
sleep 1
stop_traffic
expect_eq "dpkg -i of version $VERSION+1 over it exits 0" 0 "$rc"
[ "$rc" -eq 0 ] || echo "$out" | tail -n 8
expect_eq "its postinst reloaded the running nodeport.service" yes \
    "$(has_call 'systemctl try-reload-or-restart nodeport.service')"
expect_eq "and did not stop or restart it" "" "$(calls | grep -E '(stop|[^-]restart) .*nodeport\.service')"
NEW_IDS="$(connect4_id) $(ingress_id)"
expect_eq "new programs are attached in place (connect4 link and ext0's TC ingress have new program ids)" yes \
    "$([ -n "${NEW_IDS// /}" ] && [ "${NEW_IDS% *}" != "${OLD_IDS% *}" ] && [ "${NEW_IDS#* }" != "${OLD_IDS#* }" ] &&
        echo yes || echo "no: $OLD_IDS -> $NEW_IDS")"
# The clients' last connections may still be closing (reload_test says why this waits).
want="tcp/7000 -> $(topo_sandbox_ip 1):7000 owner sb-1"
wait_for 10 [ "$(np get tcp/7000)" = "$want" ]
expect_eq "the mapping survives the upgrade, and no connection is left once the clients closed" "$want" \
    "$(np get tcp/7000)"

# --- A failed upgrade ---
# The reload fails (the conffile has a line load refuses): dpkg reports the
# failure, the old programs keep running and forwarding.
echo "colour = red" >>"$R/etc/nodeport/nodeport.conf"
BEFORE_IDS="$(connect4_id) $(ingress_id)"
sed -i "s/^Version: .*/Version: $VERSION+2/" "$WORK/next/pkg/DEBIAN/control"
dpkg-deb -b "$WORK/next/pkg" "$R/pkgs/nodeport_next2.deb" >/dev/null
out=$(in_root "$DPKG -i /pkgs/nodeport_next2.deb")
rc=$?
expect_eq "an upgrade whose reload fails: dpkg -i fails" "1 yes" \
    "$rc $(grep -q "unrecognised option 'colour'" <<<"$out" && echo yes || echo no)"
expect_eq "the old programs stay attached" "$BEFORE_IDS" "$(connect4_id) $(ingress_id)"
expect_eq "and forward: a client reaches the sandbox through the node port" "sb1" \
    "$(topo_in client python3 -c 'import socket, sys
s = socket.create_connection((sys.argv[1], 7000), timeout=3)
print(s.recv(100).decode().split()[0])' "$TOPO_NODE_EXT_IP" 2>&1)"
sed -i '/^colour = red$/d' "$R/etc/nodeport/nodeport.conf"
out=$(in_root "$DPKG --configure -a")
expect_eq "once the conffile is fixed, dpkg --configure -a finishes the upgrade" 0 $?

# --- Remove and purge ---
: >"$R/var/log/systemctl.calls"
out=$(in_root "$DPKG -r nodeport")
expect_eq "dpkg -r nodeport exits 0" 0 $?
expect_match "its prerm unloaded the conffile's pin directory" "unloaded $PIN" "$out"
expect_eq "nothing is pinned" no "$([ -e "$PIN" ] && echo yes || echo no)"
np_progs() { jq '[.. | objects | select((.name? // "") | tostring | startswith("np_"))] | length'; }
on_ext0=$(topo_in node bpftool -j net show dev ext0 | np_progs)
on_cgroup=$(bpftool -j cgroup show "$TOPO_CGROUP" | np_progs)
on_cgroup=${on_cgroup:-0} # bpftool prints nothing for a cgroup without programs
expect_eq "nothing is attached to ext0 or the test cgroup" "0 0" "$on_ext0 $on_cgroup"
expect_eq "the binary is gone, the conffile stays" "no yes" \
    "$([ -e "$R/usr/sbin/nodeport" ] && echo yes || echo no) $([ -e "$R/etc/nodeport/nodeport.conf" ] && echo yes || echo no)"
out=$(in_root "$DPKG -P nodeport")
expect_eq "dpkg -P removes the conffile" "0 no" "$? $([ -e "$R/etc/nodeport/nodeport.conf" ] && echo yes || echo no)"
exec 9>&-
wait "$MNT_PID" 2>/dev/null
MNT_PID=""

# --- The libraries install, and Depends resolve on Debian 12 (+ backports) ---
out=$(chroot "$R" dpkg --force-depends -i "$(pkg "$(deb libnodeport0)")" "$(pkg "$(deb libnodeport-dev)")" 2>&1)
expect_eq "dpkg -i libnodeport0 libnodeport-dev into the root exits 0" 0 $?
expect_eq "libnodeport-dev's nodeport.pc finds its prefix from its own place" "$R/usr/include" \
    "$(realpath -m "$(PKG_CONFIG_PATH="$R/usr/lib/$MA/pkgconfig" pkg-config --variable=includedir nodeport)")"
out=$(apt-get install --simulate -q "$(deb nodeport)" "$(deb libnodeport0)" "$(deb libnodeport-dev)" 2>&1)
rc=$?
expect_eq "apt-get install --simulate of the three packages exits 0" 0 "$rc"
[ "$rc" -eq 0 ] || echo "$out" | tail -n 8
finish
