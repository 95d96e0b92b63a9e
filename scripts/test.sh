#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine, as root: installs,
# builds (scripts/build.sh: benchmark tools included), runs every tier: unit,
# bpf, e2e and bench (README "Tests"). Arguments go to ctest: `-L unit` runs
# one tier.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
# One test at a time: the namespace tests are quick and the machine has 2 cores.
ctest --test-dir build --output-on-failure "$@"
