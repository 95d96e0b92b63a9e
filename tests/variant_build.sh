#!/usr/bin/env bash
# The test-only variant of the CLI (cmake -DNODEPORT_BPF_TEST_VARIANT=ON: BPF
# programs that really differ, another program tag), built once into
# BUILD/variant for the tests that swap builds under traffic (reload_test,
# reload_clsact_test; a ctest fixture, so `ctest -R reload` builds it first).
# The directory is kept between runs: only what changed is rebuilt.
#   variant_build.sh CLI BUILD    (CLI, the first argument of every shell test, is not used)
set -u
BUILD=$2
. "$(dirname "$0")/lib.sh"
require writable "$BUILD"
WORK=$BUILD
. "$TESTS_DIR/upgrade_lib.sh"
if build_cli variant "$(dirname "$TESTS_DIR")" -DNODEPORT_BPF_TEST_VARIANT=ON >/dev/null; then
    pass "the test variant builds"
else
    fail "the test variant builds"
fi
finish
