#!/usr/bin/env bash
# conformance_test.sh TEST_PIN RUNNER CASES
# The port table conformance suite (CASES, port_table.json) through the C++
# library and through the C ABI, against a private pin directory loaded with
# nothing attached; go_test runs the same cases through the Go package.
# Exit 77 (skipped) without root, bpffs or kernel BTF.
set -u
TEST_PIN=$1 RUNNER=$2 CASES=$3
. "$(dirname "$0")/../lib.sh"
require root bpffs btf

PIN=/sys/fs/bpf/nodeport-conformance-test-$$
cleanup() {
    "$TEST_PIN" unload "$PIN" >/dev/null 2>&1
    rm -rf "$PIN"
}
trap cleanup EXIT
"$TEST_PIN" load "$PIN" || exit 1
cases=$(jq '.cases | length' "$CASES")
for api in cpp c; do
    out=$("$RUNNER" --api "$api" "$CASES" "$PIN"); rc=$?
    grep '^FAIL' <<<"$out"
    expect_eq "all $cases conformance cases pass through the $api API" "0 $api: 0 of $cases cases failed" \
        "$rc $(tail -n 1 <<<"$out")"
done
finish
