#!/usr/bin/env bash
# go_test.sh GO TEST_PIN GO_DIR BUILD_DIR
# `go vet` and `go test ./...` in go/ (the nodeport package and the example
# controller) over this build's libnodeport, found by cgo through
# pkg-config (BUILD_DIR/pkgconfig/nodeport-uninstalled.pc), against a
# private pin directory loaded with nothing attached. Exit 77 (ctest: skipped)
# when GO is not installed, or without root, bpffs or kernel BTF. Standard
# library only: no network.
set -u
GO=$1 TEST_PIN=$2 GO_DIR=$3 BUILD_DIR=$4
. "$(dirname "$0")/../lib.sh"
[ -x "$GO" ] || skip "$GO not found: install golang-1.22-go from bookworm-backports (bash scripts/setup.sh)"
require root bpffs btf

PIN=/sys/fs/bpf/nodeport-go-test-$$
cleanup() {
    "$TEST_PIN" unload "$PIN" >/dev/null 2>&1
    rm -rf "$PIN"
}
trap cleanup EXIT
"$TEST_PIN" load "$PIN" || exit 1

export NODEPORT_TEST_PIN_DIR=$PIN
export PKG_CONFIG_PATH=$BUILD_DIR/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
export CGO_ENABLED=1 GOTOOLCHAIN=local GOPROXY=off GOFLAGS=-mod=mod
export GOCACHE=$BUILD_DIR/go-cache GOPATH=$BUILD_DIR/go-path
cd "$GO_DIR" || exit 1
"$GO" version
unformatted=$("$(dirname "$GO")/gofmt" -l .)
[ -z "$unformatted" ] || { echo "FAIL gofmt -l: $unformatted"; exit 1; }
"$GO" vet ./... || exit 1
# -count=1: the pin directory is new every run, never a cached result.
# -p 1: the packages' test binaries share the one pin directory, and go test
# would run them at once.
"$GO" test -count=1 -p 1 -v ./...
