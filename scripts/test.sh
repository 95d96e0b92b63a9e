#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine, as root: installs,
# builds (scripts/build.sh: benchmark tools included), runs every tier: unit,
# bpf, e2e and bench (tests/README.md). Arguments go to ctest: `-L unit` runs
# one tier.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
# Tests run side by side: each makes its own namespaces, cgroup and pin
# directory (tests/lib.sh), and most of an end-to-end test's time is waiting.
# tests/CMakeLists.txt makes the builds count two slots (so two never overlap
# on a 2-CPU machine) and runs the tests that measure a rate alone.
# NODEPORT_TEST_JOBS=1 runs one at a time.
ctest --test-dir build --output-on-failure -j "${NODEPORT_TEST_JOBS:-3}" "$@"
