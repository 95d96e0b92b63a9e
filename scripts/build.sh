#!/usr/bin/env bash
# Installs what is missing, then configures and builds everything into build/:
# with -Werror, and with the benchmark tools (bench/), which CI's test run
# needs for bench_quick_test and flow_pressure_test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNODEPORT_WERROR=ON -DNODEPORT_BUILD_BENCH=ON >/dev/null
cmake --build build -j "$(nproc)"
