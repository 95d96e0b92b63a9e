#!/usr/bin/env bash
# The build a packager or a production user runs: `cmake -DCMAKE_BUILD_TYPE=Release`
# with default options (-Werror off), with g++ and with clang++-16, each into
# a throw-away build directory; the unit tests of each build then pass.
set -u
. "$(dirname "$0")/lib.sh"
SRC=$(dirname "$TESTS_DIR")
WORK=$(mktemp -d /tmp/np-release.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

for pair in gcc:g++ clang-16:clang++-16; do
    cc=${pair%%:*} cxx=${pair#*:}
    dir="$WORK/$cxx"
    if ! command -v "$cxx" >/dev/null; then
        fail "$cxx is installed (scripts/setup.sh installs it)"
        continue
    fi
    if CC=$cc CXX=$cxx cmake -S "$SRC" -B "$dir" -DCMAKE_BUILD_TYPE=Release >"$WORK/$cxx.log" 2>&1 &&
        cmake --build "$dir" -j "$(nproc)" >>"$WORK/$cxx.log" 2>&1; then
        pass "Release build with $cxx"
        expect_match "the $cxx Release build's unit tests pass" "PASSED" "$("$dir/tests/parse_test" 2>&1 | tail -n 1)"
    else
        fail "Release build with $cxx: $(grep -m 3 -E 'error|Error' "$WORK/$cxx.log")"
    fi
done
finish
