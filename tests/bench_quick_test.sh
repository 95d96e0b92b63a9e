#!/usr/bin/env bash
# bench/bench.sh --quick completes and prints every row with a measured
# number, the IPv6 rows among them. No speed threshold: these machines are
# shared and noisy; the numbers are for people to read (docs/BENCHMARKS.md).
set -u
NODEPORT=$1
. "$(dirname "$0")/lib.sh"
# The external rows are measured with the TC programs on tcx links.
require datapath tcx

out=$(mktemp)
json=$(mktemp)
progress=$(mktemp)
trap 'rm -f "$out" "$json" "$progress"' EXIT
bash "$TESTS_DIR/../bench/bench.sh" --quick --build-dir "$(dirname "$NODEPORT")" --json "$json" >"$out" 2>"$progress"
expect_eq "bench.sh --quick exits 0" 0 $?
cat "$progress" >&2

for row in "floor: client -> sandbox IP, no NAT" "iptables DNAT, matching rule first (N=0)" \
    "iptables DNAT behind 1,000 stale sandboxes" "iptables DNAT behind 10,000 stale sandboxes" \
    "nft \`dnat ... map\` with 10,000 entries" "nodeport external (TC), 1 port mapped" \
    "nodeport external (TC), 65,535 ports mapped" "nodeport external (TC, --forward fib), 1 port mapped" \
    "node floor: node ns -> sandbox IP, no NAT" "nodeport local (cgroup connect4), 127.0.0.1, 1 port mapped" \
    "nodeport local (cgroup connect4), 127.0.0.1, 65,535 ports mapped" "nodeport external (TC, --forward fib) |" \
    "nodeport C++ API \`PortTable::set\`" "\`nodeport set\` (CLI)" "\`iptables -A\` x3" "**total**" \
    "nodeport-local | \`np_connect4\`" "nodeport-ext | \`np_tc_ingress\`" "nodeport-ext | \`np_tc_egress\`" \
    "nodeport-ext-bulk | \`np_tc_ingress\`" "nodeport-ext-bulk | \`np_tc_egress\`" \
    "IPv6 floor: client -> sandbox IPv6, no NAT" "ip6tables DNAT, matching rule first (N=0), IPv6" \
    "nodeport external (TC), IPv6, 1 port mapped" "IPv6 node floor: node ns -> sandbox IPv6, no NAT" \
    "nodeport local (cgroup connect6), [::1], 1 port mapped" \
    "nodeport-local6 | \`np_connect6\`" "nodeport-ext6 | \`np_tc_ingress\`" "nodeport-ext6 | \`np_tc_egress\`" \
    "\`np_tc_ingress\` | TCP data of an established flow" "\`np_tc_egress\` | TCP reply of an established flow"; do
    line=$(grep -F -- "| $row" "$out" | head -n 1)
    if [ -z "$line" ]; then
        fail "row '$row' missing"
    elif [[ "$line" == *"n/a ("* ]]; then
        fail "row '$row' was not measured: $line"
    else
        pass "row '$row' measured"
    fi
done
expect_eq "the JSON report parses" ok "$(python3 -c 'import json,sys; json.load(open(sys.argv[1])); print("ok")' "$json")"
# Its own namespaces only, named in its first progress line: other runs,
# including one killed before it could clean up, may have left theirs.
topology=$(sed -n 's/.*quick run: topology \([a-z0-9]*\),.*/\1/p' "$progress")
expect_eq "the benchmark names its topology" 1 "$([ -n "$topology" ] && echo 1)"
expect_eq "the benchmark leaves no namespace behind" "" "$(ip netns list | grep -F "${topology:-?}-")"
finish
