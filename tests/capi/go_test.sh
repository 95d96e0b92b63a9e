#!/usr/bin/env bash
# go_test.sh GO TEST_PIN GO_DIR BUILD_DIR CONFORMANCE_RUNNER
# The pure-Go package (go/nodeport) and the example controller, built with
# CGO_ENABLED=0 against Debian's cilium/ebpf and x/sys source (go.mod's
# replace; no module proxy here): gofmt, go vet, go test ./... against a
# private pin directory loaded with nothing attached (the conformance suite
# among the tests, run here through C++ and C too, so the three cannot
# drift); a static binary (file, ldd); a consumer module outside the
# repository that imports the package by its module path. Exit 77 (ctest:
# skipped) when GO is not installed, or without root, bpffs or kernel BTF.
set -u
GO=$1 TEST_PIN=$2 GO_DIR=$3 BUILD_DIR=$4 RUNNER=$5
. "$(dirname "$0")/../lib.sh"
[ -x "$GO" ] || skip "$GO not found: install golang-1.22-go from bookworm-backports (bash scripts/setup.sh)"
[ -d /usr/share/gocode/src/github.com/cilium/ebpf ] ||
    skip "golang-github-cilium-ebpf-dev is not installed (bash scripts/setup.sh)"
require root bpffs btf

PIN=/sys/fs/bpf/nodeport-go-test-$$
WORK=$(mktemp -d /tmp/nodeport-go-test.XXXXXX)
cleanup() {
    "$TEST_PIN" unload "$PIN" >/dev/null 2>&1
    rm -rf "$PIN" "$WORK"
}
trap cleanup EXIT
"$TEST_PIN" load "$PIN" || exit 1

CASES=$(cd "$GO_DIR/../tests/conformance" && pwd)/port_table.json
MODULE=$(awk '$1 == "module" {print $2}' "$GO_DIR/go.mod")
export NODEPORT_TEST_PIN_DIR=$PIN NODEPORT_CONFORMANCE=$CASES
export NODEPORT_ABI_VERSION=$(awk '$2 == "NODEPORT_ABI_VERSION" {print $3}' "$GO_DIR/../include/nodeport/abi.h")
export NODEPORT_CONFIG_SOCK_END_PENDING=$(awk '$2 == "NP_CONFIG_SOCK_END_PENDING" {print $3}' \
    "$GO_DIR/../include/nodeport/abi.h")
export CGO_ENABLED=0 GOTOOLCHAIN=local GOPROXY=off GOFLAGS=-mod=mod
export GOCACHE=$BUILD_DIR/go-cache GOPATH=$BUILD_DIR/go-path
cd "$GO_DIR" || exit 1
"$GO" version
expect_match "the module path has a dot in its first element (go get takes it)" '^[a-z0-9-]+\.[a-z.]+/' "$MODULE"
expect_eq "gofmt -l lists nothing" "" "$("$(dirname "$GO")/gofmt" -l .)"
"$GO" vet ./... >"$WORK/vet" 2>&1
expect_eq "CGO_ENABLED=0 go vet ./... is clean" "0 " "$? $(cat "$WORK/vet")"

# -count=1: the pin directory is new every run, never a cached result. -p 1:
# the packages' test binaries share the one pin directory.
"$GO" test -count=1 -p 1 -v ./... >"$WORK/test" 2>&1
rc=$?
grep -E '^(--- |ok|FAIL|Go Table)' "$WORK/test"
expect_eq "CGO_ENABLED=0 go test ./... passes" 0 "$rc"
expect_eq "the empty owner is refused (Delete with \"\")" 1 "$(grep -c -- '--- PASS: TestDeleteEmptyOwnerRefused' "$WORK/test")"
cases=$(jq '.cases | length' "$CASES")
expect_eq "all $cases conformance cases pass through Go" "$cases" \
    "$(grep -c -- '^    --- PASS: TestConformance/' "$WORK/test")"
for api in cpp c; do
    out=$("$RUNNER" --api "$api" "$CASES" "$PIN")
    grep '^FAIL' <<<"$out"
    expect_eq "all $cases conformance cases pass through the $api API" "$api: 0 of $cases cases failed" \
        "$(tail -n 1 <<<"$out")"
done

# One static binary, as a controller team ships it.
"$GO" build -o "$WORK/controller" ./examples/controller || fail "go build ./examples/controller"
echo "file: $(file -b "$WORK/controller")"
echo "ldd: $(ldd "$WORK/controller" 2>&1)"
expect_match "the controller is a static executable" 'statically linked' "$(file -b "$WORK/controller")"
expect_match "ldd finds no shared library" 'not a dynamic executable' "$(ldd "$WORK/controller" 2>&1)"
"$WORK/controller" -pin-dir "$PIN" create sb-static 10.8.0.7 tcp/7000 || fail "the static controller: create"
expect_eq "the static controller's destroy reports what it removed, and drains it" \
    "removed tcp/7000 10.8.0.7:7000|drained 10.8.0.7:7000 (0 connections left)" \
    "$("$WORK/controller" -pin-dir "$PIN" -drain 5s destroy sb-static | paste -sd'|')"
# A redeploy across APIs: the backend one API's set replaced is recorded
# (replaced_backends) where the other's delete by owner finds it to drain.
ctl() { "$WORK/controller" -pin-dir "$PIN" "$@"; }
np_cli() { "$BUILD_DIR/nodeport" "$1" --pin-dir "$PIN" "${@:2}"; }
ctl create sb-go-old 10.8.0.7 tcp/7001 && ctl create sb-go-new 10.8.0.9 tcp/7001
expect_eq "Go's set records the backend it replaced: the CLI's del --owner --drain names it" \
    '0 [] ["10.8.0.7:7001"]' \
    "$(out=$(np_cli del --owner sb-go-old --drain --timeout 1 --json); echo "$? $(jq -c '.removed, [.replaced_earlier[] |
        "\(.backend_ip):\(.backend_port)"]' <<<"$out" | paste -sd' ')")"
np_cli set tcp/7002 10.8.0.7:7002 --owner sb-cli-old >/dev/null && np_cli set tcp/7002 10.8.0.9:7002 --owner sb-cli-new >/dev/null
expect_eq "the CLI's set records it: Go's DeleteOwner names it, and the controller drains it" \
    "replaced earlier tcp/7002 10.8.0.7:7002|drained 10.8.0.7:7002 (0 connections left)" \
    "$(ctl -drain 5s destroy sb-cli-old | paste -sd'|')"
ctl destroy sb-go-new >/dev/null
ctl destroy sb-cli-new >/dev/null
# The same for IPv6 backends, recorded in replaced_backends6.
ctl create sb-go6-old fd00::7 tcp/7006 && ctl create sb-go6-new fd00::9 tcp/7006
expect_eq "Go's set records the IPv6 backend it replaced: the CLI's del --owner --drain names it" \
    '0 [] ["[fd00::7]:7006"]' \
    "$(out=$(np_cli del --owner sb-go6-old --drain --timeout 1 --json); echo "$? $(jq -c '.removed, [.replaced_earlier[] |
        "[\(.backend_ip)]:\(.backend_port)"]' <<<"$out" | paste -sd' ')")"
np_cli set tcp/7007 '[fd00::7]:7007' --owner sb-cli6-old >/dev/null &&
    np_cli set tcp/7007 '[fd00::9]:7007' --owner sb-cli6-new >/dev/null
expect_eq "the CLI's IPv6 set records it: Go's DeleteOwner names it, and the controller drains it" \
    "replaced earlier tcp/7007 [fd00::7]:7007|drained [fd00::7]:7007 (0 connections left)" \
    "$(ctl -drain 5s destroy sb-cli6-old | paste -sd'|')"
ctl destroy sb-go6-new >/dev/null
ctl destroy sb-cli6-new >/dev/null
# Both families across APIs (map ABI 4): Go's IPv6 entry beside its IPv4 one
# is what the CLI reads, and Go's delete by owner removes the CLI's too.
ctl create sb-v6 10.8.0.7 tcp/7003 && ctl create sb-v6 fd00::7 tcp/7003
expect_eq "Go's IPv6 mapping sits beside the IPv4 one of its port, as the CLI lists them" \
    "tcp/7003 ipv4 10.8.0.7|tcp/7003 ipv6 fd00::7" \
    "$(np_cli list --json | jq -r '.[] | select(.owner == "sb-v6") | "\(.proto)/\(.port) \(.family) \(.backend_ip)"' |
        paste -sd'|')"
np_cli set tcp/7005 '[fd00::9]:7005' --owner sb-v6 >/dev/null
expect_eq "Go's DeleteOwner removes both families, the CLI's IPv6 mapping among them" \
    "removed tcp/7003 10.8.0.7:7003|removed tcp/7003 [fd00::7]:7003|removed tcp/7005 [fd00::9]:7005" \
    "$(ctl destroy sb-v6 | paste -sd'|')"

# A consumer module outside the repository: requires the module by its path,
# with a replace to this checkout (no proxy here; a real consumer pins a
# tagged version, go/vX.Y.Z) and Debian's two dependencies.
mkdir -p "$WORK/consumer"
cat >"$WORK/consumer/go.mod" <<MOD
module example.com/consumer

go 1.22

require $MODULE v0.0.0

replace (
	$MODULE => $GO_DIR
	github.com/cilium/ebpf => /usr/share/gocode/src/github.com/cilium/ebpf
	golang.org/x/sys => /usr/share/gocode/src/golang.org/x/sys
)
MOD
cat >"$WORK/consumer/main.go" <<GO
package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"

	"$MODULE/nodeport"
)

func main() {
	table, err := nodeport.Open(os.Args[1], nodeport.Options{LockWait: 1e9})
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	defer table.Close()
	ctx := context.Background()
	m := nodeport.Mapping{Proto: "udp", Port: 5353, Backend: netip.MustParseAddrPort("10.8.0.8:53"), Owner: "consumer"}
	if _, err := table.Set(ctx, m); err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	_, err = table.Delete(ctx, "udp", 5353, "")
	fmt.Println("empty owner:", errors.Is(err, nodeport.ErrBadInput))
	r, err := table.DeleteOwner(ctx, "consumer")
	fmt.Println("removed:", len(r.Removed), err)
}
GO
(cd "$WORK/consumer" && "$GO" build -o consumer . ) >"$WORK/consumer.log" 2>&1 || cat "$WORK/consumer.log"
expect_eq "a module outside the repository imports $MODULE/nodeport and runs" \
    "empty owner: true removed: 1 <nil>" "$("$WORK/consumer/consumer" "$PIN" | tr '\n' ' ' | sed 's/ $//')"
finish
