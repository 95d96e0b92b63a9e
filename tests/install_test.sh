#!/usr/bin/env bash
# What `cmake --install` puts in place, staged into a temporary DESTDIR: the
# binary, libnodeport.so with its versioned soname and libnodeport.a, the
# public headers, nodeport.pc, the CMake package config, the units, the man
# page, the bash completion and the licenses. Then two small programs are
# built against the staged tree, as a controller would be, and run: one with
# find_package(nodeport) (nodeport::nodeport and nodeport::nodeport_static),
# one with `pkg-config --cflags --libs nodeport`. The man page and the
# completion name every command and every option of `nodeport COMMAND --help`.
# BUILD (argument 2): the configured build directory to install from.
set -u
NODEPORT=$1
BUILD=$(cd "$2" && pwd)
. "$(dirname "$0")/lib.sh"
# No root: everything goes to a temporary DESTDIR. But `cmake --install`
# writes its install_manifest.txt into the build directory.
require writable "$BUILD"
SRC=$(dirname "$TESTS_DIR")
STAGE=$(mktemp -d /tmp/np-install.XXXXXX)
trap 'rm -rf "$STAGE"' EXIT

DESTDIR="$STAGE/root" cmake --install "$BUILD" >"$STAGE/install.log" 2>&1
expect_eq "cmake --install into a DESTDIR exits 0" 0 $?
cache() { sed -n "s/^$1:[A-Z]*=//p" "$BUILD/CMakeCache.txt"; }
PREFIX=$(cache CMAKE_INSTALL_PREFIX)
LIBDIR=$(cache CMAKE_INSTALL_LIBDIR)
[[ "$LIBDIR" = /* ]] || LIBDIR="$PREFIX/$LIBDIR"
VERSION=$(sed -n 's/^CMAKE_PROJECT_VERSION:[A-Z]*=//p' "$BUILD/CMakeCache.txt")
[ -n "$VERSION" ] || VERSION=$("$NODEPORT" --version | awk '{print $2}')
MAJOR=${VERSION%%.*}
R="$STAGE/root"

# --- Relocated at install time: cmake --install --prefix ---
DESTDIR="$STAGE/moved" cmake --install "$BUILD" --prefix /opt/np >"$STAGE/moved.log" 2>&1
expect_eq "cmake --install --prefix /opt/np exits 0" 0 $?
expect_eq "the units name /opt/np/sbin/nodeport" \
    "ExecStart=/opt/np/sbin/nodeport load --config /etc/nodeport/nodeport.conf" \
    "$(grep -rh '^ExecStart=' "$STAGE/moved" --include nodeport.service)"
expect_eq "nodeport.pc names no prefix of its own (relative to \${pcfiledir})" "" \
    "$(find "$STAGE/moved" -name nodeport.pc -exec grep -HE '^(prefix|libdir|includedir)=/' {} +)"
expect_eq "nor does the CMake package" "" \
    "$(find "$STAGE/moved" -path '*/cmake/nodeport/*' -exec grep -lE "$PREFIX/|/usr/local" {} +)"

# --- The file list ---
want=(
    "$PREFIX/sbin/nodeport"
    "$PREFIX/lib/cni/nodeport-cni"
    "$LIBDIR/libnodeport.so.$VERSION"
    "$LIBDIR/libnodeport.a"
    "$LIBDIR/pkgconfig/nodeport.pc"
    "$LIBDIR/cmake/nodeport/nodeportConfig.cmake"
    "$LIBDIR/cmake/nodeport/nodeportConfigVersion.cmake"
    "$LIBDIR/cmake/nodeport/nodeportTargets.cmake"
    "$PREFIX/share/man/man8/nodeport.8"
    "$PREFIX/share/bash-completion/completions/nodeport"
    "$PREFIX/share/doc/nodeport/LICENSE"
    "$PREFIX/share/doc/nodeport/LICENSES/Apache-2.0.txt"
    "$PREFIX/share/doc/nodeport/LICENSES/BSD-2-Clause.txt"
    "$PREFIX/share/doc/nodeport/LICENSES/LGPL-2.1.txt"
    "$PREFIX/share/doc/nodeport/nodeport.conf.example"
)
missing=""
for f in "${want[@]}"; do [ -s "$R$f" ] || missing="$missing $f"; done
expect_eq "installed: ${#want[@]} files (binary, CNI plugin, libraries, pc, cmake config, man page, completion, licenses)" "" "$missing"
expect_eq "libnodeport.so.$MAJOR -> libnodeport.so.$VERSION, libnodeport.so -> libnodeport.so.$MAJOR" \
    "libnodeport.so.$VERSION libnodeport.so.$MAJOR" \
    "$(readlink "$R$LIBDIR/libnodeport.so.$MAJOR") $(readlink "$R$LIBDIR/libnodeport.so")"
expect_eq "the shared library's soname is libnodeport.so.$MAJOR" "libnodeport.so.$MAJOR" \
    "$(objdump -p "$R$LIBDIR/libnodeport.so.$VERSION" | awk '$1 == "SONAME" {print $2}')"
expect_eq "the public headers are include/nodeport/, as in the source" "" \
    "$(diff -r "$SRC/include/nodeport" "$R$PREFIX/include/nodeport" 2>&1)"
expect_eq "no installed text file names the build or source tree" "" \
    "$(grep -rlF -e "$BUILD" -e "$SRC/" "$R$LIBDIR/cmake" "$R$LIBDIR/pkgconfig" "$R$PREFIX/include" 2>/dev/null)"
expect_eq "nothing but the listed kinds of files is installed" "" \
    "$(cd "$R$PREFIX" && find . -type f -o -type l | grep -vE '^\./(sbin/nodeport|lib/cni/nodeport-cni|lib.*/(libnodeport\.(a|so.*)|pkgconfig/nodeport\.pc|cmake/nodeport/nodeport[A-Za-z-]*\.cmake)|include/nodeport/[a-z_]+\.h(pp)?|share/(man/man8/nodeport\.8|bash-completion/completions/nodeport|doc/nodeport/.*))$' |
        grep -vE '/systemd/system/nodeport(-watch|-metrics)?\.(service|timer)$')"
expect_match "the installed binary runs: nodeport --version" "^nodeport $VERSION " "$("$R$PREFIX/sbin/nodeport" --version)"
# lib/cni, not the multiarch libdir: where Debian's runtimes look for CNI plugins (/usr/lib/cni).
expect_match "the installed CNI plugin answers VERSION" '"supportedVersions":\[.*"1\.0\.0","1\.1\.0"\]' \
    "$(CNI_COMMAND=VERSION "$R$PREFIX/lib/cni/nodeport-cni" <<<'{"cniVersion":"1.0.0"}')"

# --- The man page and the completion name every command and option ---
man_text=$(sed 's/\\-/-/g' "$R$PREFIX/share/man/man8/nodeport.8")
expect_eq "man renders nodeport.8 without a warning" "" \
    "$(MANWIDTH=80 man --warnings -l "$R$PREFIX/share/man/man8/nodeport.8" 2>&1 >/dev/null)"
commands=$("$NODEPORT" --help | sed -nE 's/^  ([a-z-]+)( .*)?$/\1/p')
[ "$(echo "$commands" | wc -l)" -ge 13 ] || fail "nodeport --help lists only $(echo $commands): the check read it wrong"
completion() { # WORDS...: what the completion offers for the last word
    bash -c '. "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _nodeport; echo "${COMPREPLY[*]}"' \
        _ "$R$PREFIX/share/bash-completion/completions/nodeport" "$@"
}
offered=" $(completion nodeport '') "
man_missing="" comp_missing="" checked=0
for c in $commands; do
    grep -qE "^\.B $c( |$)" <<<"$man_text" || man_missing="$man_missing $c"
    [[ "$offered" == *" $c "* ]] || comp_missing="$comp_missing $c"
    [ "$c" = version ] && continue # its --help is the program's
    opts=" $(completion nodeport "$c" --) "
    for o in $("$NODEPORT" "$c" --help | grep -oE '^  (-[a-z] \[ )?--[a-z-]+' | sed 's/.*--//'); do
        checked=$((checked + 1))
        grep -qE -- "--$o([^a-z-]|$)" <<<"$man_text" || man_missing="$man_missing $c:--$o"
        [[ "$opts" == *" --$o "* ]] || comp_missing="$comp_missing $c:--$o"
    done
done
[ "$checked" -ge 40 ] || fail "the commands' --help list only $checked options: the check read them wrong"
expect_eq "the man page names every command and every option ($checked) of the commands' --help" "" "$man_missing"
expect_eq "the bash completion offers every command and every option ($checked)" "" "$comp_missing"
expect_eq "the completion offers --tc-attach's values" "auto tcx clsact" "$(completion nodeport load --tc-attach '')"
expect_eq "the man page lists exit codes 0 to 5 (5: a drain that timed out)" "0 1 2 3 4 5" \
    "$(sed -n '/^\.SH "EXIT STATUS"/,/^\.SH/p' "$R$PREFIX/share/man/man8/nodeport.8" | sed -n 's/^\.B \([0-9]\)$/\1/p' | xargs)"

# --- A consumer of the library, built against the staged tree ---
mkdir -p "$STAGE/consumer"
cat >"$STAGE/consumer/main.cpp" <<'CPP'
#include <nodeport/port_table.hpp>
#include <nodeport/types.hpp>

#include <iostream>

int main(int argc, char** argv)
{
    auto port = nodeport::parse_node_port(argc > 1 ? argv[1] : "tcp/6667");
    if (!port) {
        std::cerr << port.error().field << ": " << port.error().message << "\n";
        return 2;
    }
    std::cout << nodeport::to_string(*port) << "\n";
    return 0;
}
CPP
cat >"$STAGE/consumer/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.25)
project(consumer LANGUAGES CXX)
find_package(nodeport 0.1 REQUIRED)
add_executable(consumer_shared main.cpp)
target_link_libraries(consumer_shared PRIVATE nodeport::nodeport)
add_executable(consumer_static main.cpp)
target_link_libraries(consumer_static PRIVATE nodeport::nodeport_static)
CMAKE
if cmake -S "$STAGE/consumer" -B "$STAGE/consumer/build" -DCMAKE_PREFIX_PATH="$R$PREFIX" \
    >"$STAGE/consumer.log" 2>&1 && cmake --build "$STAGE/consumer/build" -j 2 >>"$STAGE/consumer.log" 2>&1; then
    pass "find_package(nodeport) against the staged tree: a consumer of each target builds"
else
    fail "find_package(nodeport) consumer: $(grep -m 5 -iE 'error' "$STAGE/consumer.log")"
fi
# --- Exports: the C ABI (NODEPORT_C_1) and the C++ API of the headers (NODEPORT_0), nothing else ---
SO=$R$LIBDIR/libnodeport.so.$VERSION
exports=$(nm -D --defined-only --with-symbol-versions "$SO" | awk '{print $3}')
echo "     libnodeport.so exports $(wc -l <<<"$exports") symbols ($(grep -cE '@@NODEPORT_C_1(\.1)?$' <<<"$exports") C)"
expect_eq "every exported symbol is versioned NODEPORT_C_1 or NODEPORT_C_1.1 (nodeport_*) or NODEPORT_0 (nodeport::)" "" \
    "$(grep -vE '^(nodeport_[a-z_0-9]+@@NODEPORT_C_1(\.1)?|_Z.*@@NODEPORT_0|NODEPORT_(C_1|C_1\.1|0))$' <<<"$exports")"
expect_eq "the calls of both families are NODEPORT_C_1.1's" \
    "nodeport_free2@@NODEPORT_C_1.1 nodeport_get2@@NODEPORT_C_1.1 nodeport_list2@@NODEPORT_C_1.1 nodeport_sync2@@NODEPORT_C_1.1" \
    "$(grep -E '^nodeport_[a-z]+2@@' <<<"$exports" | sort | xargs)"
expect_eq "the NODEPORT_0 ones are nodeport:: (no fmt, nlohmann, std)" "" \
    "$(grep '@@NODEPORT_0$' <<<"$exports" | sed 's/@@.*//' | c++filt | grep -vE '^((typeinfo|typeinfo name|vtable) for )?nodeport::' |
        grep -v '^NODEPORT_0$')"
expect_eq "and none of them internal (the loader's own headers: pin_dir, netlink, map_catalog, Abi1Migration, ...)" "" \
    "$(grep '@@NODEPORT_0$' <<<"$exports" | sed 's/@@.*//' | c++filt |
        grep -E 'nodeport::(pin_dir|netlink|netns|map_catalog|iface_choice|status_checks|tc|prometheus)::|Abi1Migration|json_input')"
expect_match "the C ABI is there, nodeport_version and nodeport_open_with included" \
    "nodeport_open@@NODEPORT_C_1 .*nodeport_open_with@@NODEPORT_C_1 .*nodeport_version@@NODEPORT_C_1" \
    "$(grep '@@NODEPORT_C_1$' <<<"$exports" | sort | xargs)"

expect_eq "it runs, linked to nodeport::nodeport: parses tcp/6667 with the public API" "tcp/6667" \
    "$("$STAGE/consumer/build/consumer_shared" tcp/6667 2>&1)"
out=$("$STAGE/consumer/build/consumer_shared" tcp/65536 2>&1); rc=$?
expect_eq "and refuses a bad port with the library's message" "2 node port: '65536' is not a port number (1-65535)" "$rc $out"
expect_match "nodeport::nodeport is the staged libnodeport.so.$MAJOR" "libnodeport\.so\.$MAJOR => $R" \
    "$(ldd "$STAGE/consumer/build/consumer_shared")"
expect_eq "nodeport::nodeport_static links libnodeport.a (no libnodeport.so needed)" "udp/53 no" \
    "$("$STAGE/consumer/build/consumer_static" udp/53) $(ldd "$STAGE/consumer/build/consumer_static" |
        grep -q libnodeport && echo yes || echo no)"

# No PKG_CONFIG_SYSROOT_DIR: nodeport.pc finds its prefix from its own place.
export PKG_CONFIG_PATH="$R$LIBDIR/pkgconfig"
expect_eq "nodeport.pc's prefix is where it was staged" "$R$PREFIX" \
    "$(realpath -m "$(pkg-config --variable=prefix nodeport)")"
expect_eq "pkg-config --modversion nodeport" "$VERSION" "$(pkg-config --modversion nodeport 2>&1)"
# shellcheck disable=SC2046
if g++ -std=c++23 -o "$STAGE/consumer/pc_consumer" "$STAGE/consumer/main.cpp" $(pkg-config --cflags --libs nodeport) \
    >"$STAGE/pc.log" 2>&1; then
    pass "g++ \$(pkg-config --cflags --libs nodeport) builds a consumer"
else
    fail "pkg-config consumer: $(head -n 5 "$STAGE/pc.log")"
fi
expect_eq "it runs against the staged libnodeport.so.$MAJOR" "tcp/8080" \
    "$(LD_LIBRARY_PATH="$R$LIBDIR" "$STAGE/consumer/pc_consumer" tcp/8080)"
# shellcheck disable=SC2046
g++ -std=c++23 -o "$STAGE/consumer/pc_static" "$STAGE/consumer/main.cpp" \
    $(pkg-config --static --cflags nodeport) "$R$LIBDIR/libnodeport.a" $(pkg-config --static --libs-only-l nodeport |
        sed 's/-lnodeport//') >"$STAGE/pc_static.log" 2>&1
expect_eq "pkg-config --static names what libnodeport.a needs: a consumer links it and runs" "udp/5353" \
    "$("$STAGE/consumer/pc_static" udp/5353 2>&1 || head -n 3 "$STAGE/pc_static.log")"

# The C ABI from the staged tree: tests/capi/c_api_test.c compiled by cc with
# the staged nodeport.pc's flags (PKG_CONFIG_PATH set above) and run against
# a pin directory loaded with nothing attached, with the staged libnodeport.so.
out=$(LD_LIBRARY_PATH="$R$LIBDIR" bash "$TESTS_DIR/capi/c_api_test.sh" "$BUILD/tests/capi/test_pin" \
    "$BUILD/tests/capi/c_api_test" "$TESTS_DIR/capi/c_api_test.c" /nonexistent "$BUILD/loader/libnodeport_c.so" 2>&1)
expect_eq "the C ABI test, compiled through the staged nodeport.pc, passes" 0 $?
expect_match "and it used the staged tree" "through pkg-config, PKG_CONFIG_PATH=$R" "$out"
finish
