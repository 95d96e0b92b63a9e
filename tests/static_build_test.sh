#!/usr/bin/env bash
# -DNODEPORT_STATIC=ON, for bundles like the sandbox runtime's: a Release
# build of the nodeport binary (its own throw-away build directory, tests
# off) whose only shared dependencies are the C and C++ runtimes (ldd: libc,
# libm, libstdc++, libgcc_s, the loader and the vDSO). It runs: --version
# names the libbpf compiled in, and a `load --local-only` in a test namespace
# and cgroup (libbpf, libelf and zlib at work: BTF, CO-RE, pinning), a `set`
# and an `unload` succeed.
set -u
NODEPORT=$1
. "$(dirname "$0")/lib.sh"
require datapath
SRC=$(dirname "$TESTS_DIR")
WORK=$(mktemp -d /tmp/np-static.XXXXXX)
B="$WORK/build"

test_begin static
on_cleanup() { rm -rf "$WORK"; }
topo_node
topo_cgroup

if cmake -S "$SRC" -B "$B" -DCMAKE_BUILD_TYPE=Release -DNODEPORT_STATIC=ON -DBUILD_TESTING=OFF >"$WORK/build.log" 2>&1 &&
    cmake --build "$B" -j "$(nproc)" >>"$WORK/build.log" 2>&1; then
    pass "the NODEPORT_STATIC build of all (nodeport, nodeport-cni, libnodeport.a; no shared library)"
else
    fail "the NODEPORT_STATIC build: $(grep -m 5 -E 'error|Error' "$WORK/build.log")"
    finish
    exit
fi
BIN="$B/nodeport"
echo "     size: $(du -k "$BIN" | cut -f1) KiB ($(stat -c %s "$BIN") bytes), stripped: $(strip -o "$WORK/stripped" "$BIN" && du -k "$WORK/stripped" | cut -f1) KiB"
deps=$(ldd "$BIN" | awk '{print $1}' | sed 's|.*/||' | sort | xargs)
echo "     ldd: $deps"
expect_eq "its shared dependencies are only the C and C++ runtimes" "" \
    "$(tr ' ' '\n' <<<"$deps" | grep -vE '^(linux-vdso\.so\.1|libc\.so\.6|libm\.so\.6|libstdc\+\+\.so\.6|libgcc_s\.so\.1|ld-linux[-a-z0-9_]*\.so\.[0-9]+)$')"
expect_match "nodeport --version runs and names libbpf 1.4 (linked in)" "^nodeport [0-9.]+ .*libbpf 1\.[4-9]" \
    "$("$BIN" --version 2>&1)"

out=$(topo_in node "$BIN" load --pin-dir "$PIN" --cgroup "$TOPO_CGROUP" --local-only 2>&1)
expect_eq "the static binary loads (--local-only, test cgroup and pin dir)" 0 $?
expect_eq "set through it" 0 "$("$BIN" set --pin-dir "$PIN" tcp/6667 10.8.0.2:6667 --owner sb-1 >/dev/null 2>&1; echo $?)"
expect_eq "the dynamically linked build reads the same mapping" "tcp/6667 -> 10.8.0.2:6667 owner sb-1" \
    "$("$NODEPORT" get --pin-dir "$PIN" tcp/6667 2>&1)"
out=$(topo_in node "$BIN" unload --pin-dir "$PIN" 2>&1)
expect_eq "and unloads, removing its pins" "0 no" "$? $([ -e "$PIN" ] && echo yes || echo no)"
finish
