#!/usr/bin/env bash
# The .deb: a Release build configured for /usr (its own throw-away build
# directory, tests off), `cpack -G DEB`, then the package's fields and file
# list, and installs: `dpkg --root` into a throw-away root with an empty dpkg
# database (dependencies not installed there, so --force-depends), the
# installed `nodeport --version` run from it, and `apt-get install --simulate`
# of the .deb on this machine, which resolves its Depends against the real
# archive (libbpf1 >= 1:1.4 from bookworm-backports). Nothing is installed on
# this machine.
set -u
. "$(dirname "$0")/lib.sh"
# dpkg --root runs the package's maintainer scripts chrooted into the throw-away root.
require root
SRC=$(dirname "$TESTS_DIR")
WORK=$(mktemp -d /tmp/np-deb.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
B="$WORK/build"

if cmake -S "$SRC" -B "$B" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr -DBUILD_TESTING=OFF \
    >"$WORK/build.log" 2>&1 && cmake --build "$B" -j "$(nproc)" >>"$WORK/build.log" 2>&1; then
    pass "a Release build for /usr"
else
    fail "a Release build for /usr: $(grep -m 3 -E 'error|Error' "$WORK/build.log")"
    finish
    exit
fi
(cd "$B" && cpack -G DEB) >"$WORK/cpack.log" 2>&1
expect_eq "cpack -G DEB exits 0" 0 $?
ARCH=$(dpkg --print-architecture)
VERSION=$(sed -n 's/^CMAKE_PROJECT_VERSION:[A-Z]*=//p' "$B/CMakeCache.txt")
DEB="$B/nodeport_${VERSION}_$ARCH.deb"
expect_eq "it made nodeport_${VERSION}_$ARCH.deb" yes "$([ -s "$DEB" ] && echo yes || echo no)"
echo "     size: $(du -k "$DEB" | cut -f1) KiB"

# --- Fields ---
field() { dpkg-deb -f "$DEB" "$1"; }
expect_eq "Package, Version, Architecture" "nodeport $VERSION $ARCH" "$(field Package) $(field Version) $(field Architecture)"
DEPENDS=$(field Depends)
echo "     Depends: $DEPENDS"
expect_match "Depends names libbpf1 (>= 1:1.4) (bookworm-backports)" "(^|, )libbpf1 \(>= 1:1\.4\)" "$DEPENDS"
for lib in libc6 libstdc\\+\\+6 libnl-route-3-200 libnl-3-200 libfmt9 libboost-program-options1\\.74\\.0; do
    expect_match "Depends names ${lib//\\/} (found by dpkg-shlibdeps)" "(^|, )$lib( |,|$)" "$DEPENDS"
done
expect_match "the package has a shlibs file for libnodeport.so.${VERSION%%.*}" \
    "^libnodeport ${VERSION%%.*} nodeport \(>= $VERSION\)" "$(dpkg-deb -I "$DEB" shlibs 2>&1)"
expect_match "and an ldconfig trigger" "ldconfig" "$(dpkg-deb -I "$DEB" triggers 2>&1)"

# --- File list ---
files=$(dpkg-deb -c "$DEB" | awk '{print $6}' | sed 's|^\./|/|')
MA=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
missing=""
for f in /usr/sbin/nodeport /usr/lib/cni/nodeport-cni /usr/lib/$MA/libnodeport.so.$VERSION /usr/lib/$MA/libnodeport.so.${VERSION%%.*} \
    /usr/lib/$MA/libnodeport.so /usr/lib/$MA/libnodeport.a /usr/include/nodeport/types.hpp /usr/include/nodeport/abi.h \
    /usr/lib/$MA/pkgconfig/nodeport.pc /usr/lib/$MA/cmake/nodeport/nodeportConfig.cmake \
    /usr/lib/systemd/system/nodeport.service /usr/lib/systemd/system/nodeport-watch.service \
    /usr/share/man/man8/nodeport.8 /usr/share/bash-completion/completions/nodeport \
    /usr/share/doc/nodeport/LICENSE /usr/share/doc/nodeport/nodeport.conf.example; do
    grep -qxF "$f" <<<"$files" || missing="$missing $f"
done
expect_eq "dpkg-deb -c: binary, CNI plugin, libraries, headers, pc, cmake, units, man page, completion, licenses, example" "" "$missing"
expect_eq "nothing outside /usr" "" "$(grep -vE '^/(usr(/.*)?)?/?$' <<<"$files")"
expect_eq "every header of include/nodeport/" "$(ls "$SRC/include/nodeport" | wc -l)" \
    "$(grep -cE '^/usr/include/nodeport/.+' <<<"$files")"

# --- Installed into a throw-away root ---
# An empty dpkg database, and what the maintainer scripts need to run there
# (dpkg runs them chrooted into the root): /bin/sh (dash and the libraries it
# loads) and ldconfig (static), which the postinst and postrm that CPack
# writes for a library in /usr/lib call. The Debian 12 layout: /bin, /sbin,
# /lib, /lib64 are links into /usr.
R="$WORK/root"
mkdir -p "$R/var/lib/dpkg/info" "$R/var/lib/dpkg/updates" "$R/usr/bin" "$R/usr/sbin" "$R/usr/lib" "$R/usr/lib64" \
    "$R/etc" "$R/tmp"
touch "$R/var/lib/dpkg/status" "$R/var/lib/dpkg/available"
for d in bin sbin lib lib64; do ln -s "usr/$d" "$R/$d"; done
cp /usr/bin/dash "$R/usr/bin/sh"
cp /usr/sbin/ldconfig "$R/usr/sbin/ldconfig"
for lib in $(ldd /usr/bin/dash | grep -oE '/[^ ]+'); do
    mkdir -p "$R$(dirname "$lib")" && cp -L "$lib" "$R$lib"
done
out=$(dpkg --root="$R" --force-depends --force-not-root -i "$DEB" 2>&1)
rc=$?
expect_eq "dpkg --root <empty root> -i exits 0" 0 "$rc"
[ "$rc" -eq 0 ] || echo "$out" | grep -v 'depends on\|is not installed' | tail -n 8
expect_eq "dpkg there lists nodeport as installed" "install ok installed" \
    "$(dpkg-query --admindir="$R/var/lib/dpkg" -W -f='${Status}' nodeport 2>&1)"
expect_eq "the installed nodeport.service runs /usr/sbin/nodeport" \
    "ExecStart=/usr/sbin/nodeport load --config /etc/nodeport/nodeport.conf" \
    "$(grep '^ExecStart=' "$R/usr/lib/systemd/system/nodeport.service")"
expect_match "the installed nodeport --version runs (this machine's libraries)" "^nodeport $VERSION " \
    "$(LD_LIBRARY_PATH="$R/usr/lib/$MA" "$R/usr/sbin/nodeport" --version 2>&1)"
expect_eq "its postinst ran ldconfig in the root, which now knows libnodeport.so.${VERSION%%.*}" yes \
    "$(grep -qa "libnodeport.so.${VERSION%%.*}" "$R/etc/ld.so.cache" 2>/dev/null && echo yes || echo no)"
dpkg --root="$R" --force-not-root -r nodeport >/dev/null 2>&1
expect_eq "dpkg --root -r removes it" 0 $?
left=""
for f in $(grep -vE '/$' <<<"$files"); do [ -e "$R$f" ] || [ -L "$R$f" ] && left="$left $f"; done
expect_eq "and leaves none of its files" "" "$left"

# --- Dependencies resolve on Debian 12 (+ backports) ---
out=$(apt-get install --simulate -q "$DEB" 2>&1)
rc=$?
expect_eq "apt-get install --simulate ./nodeport_*.deb exits 0" 0 "$rc"
expect_match "and would install nodeport" "Inst nodeport " "$out"
[ "$rc" -eq 0 ] || echo "$out" | tail -n 8
finish
