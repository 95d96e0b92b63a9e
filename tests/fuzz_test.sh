#!/usr/bin/env bash
# libFuzzer on the parsers of untrusted input (tests/fuzz), with ASan + UBSan.
#   fuzz_test.sh CLI BUILD build    builds the targets with clang++-16 in BUILD/fuzz,
#                                   a build directory of their own beside the main one
#                                   (kept between runs: only what changed is rebuilt)
#   fuzz_test.sh CLI BUILD TARGET   runs BUILD/fuzz/fuzz_TARGET for FUZZ_SECONDS (default
#                                   15) from its committed seed corpus, and prints how
#                                   many inputs it ran
# A crash fails the test; its input is kept under BUILD/fuzz-crashes/ (add it as
# a regression case to parse_test or sync_test, and to the seed corpus).
# CLI (the first argument of every shell test) is not used.
set -u
BUILD=$2
WHAT=$3
. "$(dirname "$0")/lib.sh"
# No root: the clang build and the crash inputs go under the build directory.
require writable "$BUILD"
SRC=$(dirname "$TESTS_DIR")
FUZZ_BUILD="$BUILD/fuzz"
CRASHES="$BUILD/fuzz-crashes"
WORK=$(mktemp -d /tmp/np-fuzz.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

if [ "$WHAT" = build ]; then
    if ! command -v clang++-16 >/dev/null; then
        fail "clang++-16 is installed (scripts/setup.sh installs it)"
    elif CC=clang-16 CXX=clang++-16 cmake -S "$SRC/tests/fuzz" -B "$FUZZ_BUILD" >"$WORK/build.log" 2>&1 &&
        cmake --build "$FUZZ_BUILD" -j "$(nproc)" >>"$WORK/build.log" 2>&1; then
        pass "fuzz targets build with clang++-16, -fsanitize=fuzzer,address,undefined"
    else
        fail "fuzz targets build: $(grep -m 3 -E 'error|Error' "$WORK/build.log")"
    fi
    finish
    exit
fi

target=$WHAT
seconds=${FUZZ_SECONDS:-15}
dict=()
[ -f "$SRC/tests/fuzz/$target.dict" ] && dict=(-dict="$SRC/tests/fuzz/$target.dict")
mkdir -p "$CRASHES" "$WORK/new"
# New inputs go to the first (scratch) directory, never to the committed seeds.
"$FUZZ_BUILD/fuzz_$target" "$WORK/new" "$SRC/tests/fuzz/corpus/$target" "${dict[@]}" -max_total_time="$seconds" \
    -timeout=10 -artifact_prefix="$CRASHES/$target-" >"$WORK/log" 2>&1
rc=$?
runs=$(sed -nE 's/^Done ([0-9]+) runs.*/\1/p' "$WORK/log")
if [ "$rc" -eq 0 ] && [ -n "$runs" ]; then
    pass "fuzz_$target: no crash in $runs executions ($seconds s)"
else
    fail "fuzz_$target crashed (exit $rc): $(grep -m 1 -E 'ERROR|runtime error|deadly signal' "$WORK/log");" \
        "input kept in $CRASHES"
    tail -n 30 "$WORK/log"
fi
finish
