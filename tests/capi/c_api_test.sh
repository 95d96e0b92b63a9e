#!/usr/bin/env bash
# c_api_test.sh TEST_PIN C_API_TEST SOURCE PKGCONFIG_DIR LIBNODEPORT_C_SO
# Loads nodeport with nothing attached into a private pin directory, runs the
# C test linked by CMake, the ctypes test over the shared object, then the same
# C source compiled by cc with flags from
# `pkg-config nodeport`: the installed nodeport.pc when PKG_CONFIG_PATH is
# set in the environment (as a packager's check would), else this build's
# nodeport-uninstalled.pc in PKGCONFIG_DIR. Unloads on exit.
set -u
TEST_PIN=$1 C_API_TEST=$2 SOURCE=$3 PC_DIR=$4 SHARED=$5
# Skipped (exit 77) without root, bpffs or kernel BTF: test_pin loads the
# programs (nothing attached) and pins the maps.
. "$(dirname "$0")/../lib.sh"
require root bpffs btf

PIN=/sys/fs/bpf/nodeport-capi-test-$$
WORK=$(mktemp -d)
cleanup() {
    "$TEST_PIN" unload "$PIN" >/dev/null 2>&1
    rm -rf "$PIN" "$WORK"
}
trap cleanup EXIT

"$TEST_PIN" load "$PIN" || exit 1
rc=0
echo "== linked by CMake"
"$C_API_TEST" "$PIN" || rc=1
echo "== Python ctypes, $(basename "$SHARED")"
python3 "$(dirname "$SOURCE")/ctypes_test.py" "$SHARED" "$PIN" || rc=1

if [ -n "${PKG_CONFIG_PATH:-}" ]; then
    echo "== through pkg-config, PKG_CONFIG_PATH=$PKG_CONFIG_PATH"
else
    export PKG_CONFIG_PATH=$PC_DIR
    echo "== through pkg-config, this build's nodeport-uninstalled.pc"
fi
if ! flags=$(pkg-config --cflags --libs nodeport); then
    echo "FAIL pkg-config nodeport"
    exit 1
fi
echo "cc $flags"
# shellcheck disable=SC2086 # pkg-config output is a list of flags
if cc -std=c11 -Wall -Wextra -Werror -pthread -o "$WORK/c_api_test" "$SOURCE" $flags; then
    # An installed (or staged) tree's libnodeport.so is found through its libdir.
    LD_LIBRARY_PATH=$(pkg-config --variable=libdir nodeport)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} \
        "$WORK/c_api_test" "$PIN" || rc=1
else
    echo "FAIL compile the C test with pkg-config's flags"
    rc=1
fi
exit $rc
