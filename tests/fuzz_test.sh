#!/usr/bin/env bash
# libFuzzer on the parsers of untrusted input (tests/fuzz): builds the fuzz
# targets with clang++-16 (ASan + UBSan) in a build directory of their own,
# beside the main build, then runs each for FUZZ_SECONDS (default 15) from
# its committed seed corpus. A crash fails the test; its input is kept under
# BUILD/fuzz-crashes/ (add it as a regression case to parse_test or sync_test,
# and to the seed corpus). Prints the executions per target.
# Arguments: the CLI (unused, as for every shell test), the main build directory.
set -u
BUILD=$2
. "$(dirname "$0")/lib.sh"
SRC=$(dirname "$TESTS_DIR")
SECONDS_EACH=${FUZZ_SECONDS:-15}
FUZZ_BUILD="$BUILD/fuzz"
CRASHES="$BUILD/fuzz-crashes"
WORK=$(mktemp -d /tmp/np-fuzz.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

if ! command -v clang++-16 >/dev/null; then
    fail "clang++-16 is installed (scripts/setup.sh installs it)"
    finish
    exit
fi
# Kept between runs, so only what changed is rebuilt.
if CC=clang-16 CXX=clang++-16 cmake -S "$SRC/tests/fuzz" -B "$FUZZ_BUILD" >"$WORK/build.log" 2>&1 &&
    cmake --build "$FUZZ_BUILD" -j "$(nproc)" >>"$WORK/build.log" 2>&1; then
    pass "fuzz targets build with clang++-16, -fsanitize=fuzzer,address,undefined"
else
    fail "fuzz targets build: $(grep -m 3 -E 'error|Error' "$WORK/build.log")"
    finish
    exit
fi

mkdir -p "$CRASHES"
for target in parsers sync_json; do
    dict=()
    [ -f "$SRC/tests/fuzz/$target.dict" ] && dict=(-dict="$SRC/tests/fuzz/$target.dict")
    # New inputs go to the first (scratch) directory, never to the committed seeds.
    mkdir -p "$WORK/$target"
    "$FUZZ_BUILD/fuzz_$target" "$WORK/$target" "$SRC/tests/fuzz/corpus/$target" "${dict[@]}" \
        -max_total_time="$SECONDS_EACH" -timeout=10 -artifact_prefix="$CRASHES/$target-" \
        >"$WORK/$target.log" 2>&1
    rc=$?
    runs=$(sed -nE 's/^Done ([0-9]+) runs.*/\1/p' "$WORK/$target.log")
    if [ "$rc" -eq 0 ] && [ -n "$runs" ]; then
        pass "fuzz_$target: no crash in $runs executions ($SECONDS_EACH s)"
    else
        fail "fuzz_$target crashed (exit $rc): $(grep -m 1 -E 'ERROR|runtime error|deadly signal' "$WORK/$target.log");" \
            "input kept in $CRASHES"
        tail -n 30 "$WORK/$target.log"
    fi
done
finish
