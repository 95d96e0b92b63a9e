#!/usr/bin/env bash
# The build a packager or a bundler runs, in one throw-away build directory:
# `cmake -DCMAKE_BUILD_TYPE=Release -DNODEPORT_STATIC=ON` with default options
# (-Werror off), with clang++-16, where the host's BTF does not exist (a tmpfs
# over /sys/kernel/btf in a private mount namespace, as in a container or
# chroot: the BPF programs build from the UAPI headers and
# bpf/sock_end_core.bpf.h, never from /sys/kernel/btf/vmlinux, which only
# `load` needs). Of the tests it builds only what it runs.
#   - Its unit tests pass, and nodeport and nodeport-cni ignore
#     NODEPORT_TEST_HOOK: the name is in neither (the hooks live only in
#     tests/nodeport-test-hooks; sock_end_resume_test shows `nodeport` running
#     through a hook point).
#   - The nodeport binary, for bundles like the sandbox runtime's, has only
#     the C and C++ runtimes as shared dependencies (ldd: libc, libm,
#     libstdc++, libgcc_s, the loader and the vDSO). It runs: --version names
#     the libbpf compiled in, and a `load --local-only` in a test namespace
#     and cgroup (libbpf, libelf and zlib at work: BTF, CO-RE, pinning), a
#     `set` and an `unload` succeed.
# g++ builds the product in the suite's own build (RelWithDebInfo, -Werror,
# shared libraries) and in deb_test's (Debian's flags, the same
# NODEPORT_TEST_HOOK check); a Release build of each compiler and a static
# one, three builds, took about five minutes of the suite.
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

if ! command -v clang++-16 >/dev/null; then
    fail "clang++-16 is installed (scripts/setup.sh installs it)"
    finish
    exit
fi
if CC=clang-16 CXX=clang++-16 unshare --mount --propagation private bash -c "
        mount -t tmpfs none /sys/kernel/btf && ! [ -e /sys/kernel/btf/vmlinux ] &&
        cmake -S '$SRC' -B '$B' -DCMAKE_BUILD_TYPE=Release -DNODEPORT_STATIC=ON &&
        cmake --build '$B' -j $(nproc) --target nodeport_cli nodeport_cni parse_test nodeport_test_hooks" \
        >"$WORK/build.log" 2>&1; then
    pass "the Release, NODEPORT_STATIC build with clang++-16, without /sys/kernel/btf/vmlinux"
else
    fail "the Release, NODEPORT_STATIC build with clang++-16: $(grep -m 5 -E 'error|Error' "$WORK/build.log")"
    finish
    exit
fi
expect_match "its unit tests pass" "PASSED" "$("$B/tests/parse_test" 2>&1 | tail -n 1)"
expect_eq "its nodeport and nodeport-cni ignore NODEPORT_TEST_HOOK (the hooks' CLI names it)" "0 0 1" \
    "$(for f in "$B/nodeport" "$B/nodeport-cni" "$B/tests/nodeport-test-hooks"; do
        grep -c NODEPORT_TEST_HOOK "$f"; done | paste -sd' ')"
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
