#!/usr/bin/env bash
# The build a packager or a production user runs: `cmake -DCMAKE_BUILD_TYPE=Release`
# with default options (-Werror off), with clang++-16, into a throw-away build
# directory; its unit tests then pass, and what it installs ignores
# NODEPORT_TEST_HOOK: the variable's name is in no installed binary (the hooks
# live only in tests/nodeport-test-hooks; sock_end_resume_test shows
# `nodeport` running through a hook point).
# It runs where the host's BTF does not exist (a tmpfs over /sys/kernel/btf in
# a private mount namespace), as in a container or chroot: the BPF programs
# build from the UAPI headers and bpf/sock_end_core.bpf.h, never from
# /sys/kernel/btf/vmlinux, which only `load` needs.
# g++ builds the product twice elsewhere: the suite's own build (RelWithDebInfo,
# -Werror) and deb_test's (Debian's flags, and the same NODEPORT_TEST_HOOK
# check); a third g++ build here cost about two minutes of the suite.
set -u
. "$(dirname "$0")/lib.sh"
# A private mount namespace with a tmpfs over /sys/kernel/btf.
require root
SRC=$(dirname "$TESTS_DIR")
WORK=$(mktemp -d /tmp/np-release.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

# What a package ships (the CLI, both libraries, the CNI plugin), and of the
# tests only what this test runs: the main build compiles every test already,
# and building them twice more cost about two minutes.
PRODUCT="nodeport_cli nodeport_shared nodeport_c nodeport_cni"
dir="$WORK/clang"
if ! command -v clang++-16 >/dev/null; then
    fail "clang++-16 is installed (scripts/setup.sh installs it)"
elif CC=clang-16 CXX=clang++-16 unshare --mount --propagation private bash -c "
        mount -t tmpfs none /sys/kernel/btf && ! [ -e /sys/kernel/btf/vmlinux ] &&
        cmake -S '$SRC' -B '$dir' -DCMAKE_BUILD_TYPE=Release &&
        cmake --build '$dir' -j $(nproc) --target $PRODUCT parse_test nodeport_test_hooks" \
        >"$WORK/build.log" 2>&1; then
    pass "Release build with clang++-16, without /sys/kernel/btf/vmlinux"
    expect_match "its unit tests pass" "PASSED" "$("$dir/tests/parse_test" 2>&1 | tail -n 1)"
    expect_eq "its nodeport, libnodeport.so and libnodeport_c.so ignore NODEPORT_TEST_HOOK" "0 0 0 1" \
        "$(for f in "$dir/nodeport" "$dir"/loader/libnodeport.so.?.?.? "$dir"/loader/libnodeport_c.so.?.?.? \
            "$dir/tests/nodeport-test-hooks"; do grep -c NODEPORT_TEST_HOOK "$f"; done | paste -sd' ')"
else
    fail "Release build with clang++-16: $(grep -m 3 -E 'error|Error' "$WORK/build.log")"
fi
finish
