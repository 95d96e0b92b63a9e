#!/usr/bin/env bash
# nodeport legacy-iptables in a node namespace of its own: 25 stale rule
# triples (PREROUTING DNAT, OUTPUT DNAT, POSTROUTING MASQUERADE) for each of
# four ports, TCP and UDP, some inserted above the node's own rules, next to
# rules that must survive byte for byte, among them look-alikes no sandbox
# can be behind (one port through -m multiport; DNATs to the bridge's own,
# network and broadcast address), which are listed as kept. iptables only
# ever runs inside the test's namespace.
set -u
NODEPORT=$1
. "$(dirname "$0")/lib.sh"
require datapath

test_begin legacy
WRAP=$(mktemp -d)
on_cleanup() { rm -rf "$WRAP"; }
topo_node
topo_cgroup
ipt() { topo_in node iptables "$@"; }
# The whole ruleset, every table, without the comment lines and the counters
# (they are not rules, and a counter may move).
ruleset() { topo_in node iptables-save | grep -v '^#' | sed 's/ \[[0-9]*:[0-9]*\]$//'; }
legacy() { topo_in node "$NODEPORT" legacy-iptables --pin-dir "$PIN" "$@"; }

LIVE_TCP=10.8.0.2:6667   # what nodeport maps tcp/6667 to
LIVE_UDP=10.8.0.3:5353   # and udp/5353
PORTS="tcp/6667 tcp/8080 udp/5353 udp/6667"
# The dead sandbox the i-th deploy of a port left behind: five of them, so
# every PREROUTING rule appears five times.
dead_ip() { echo "10.8.$(($2 % 5 + 1)).$(($1 % 250))"; }

# --- Bad input: exit 2, one line naming the field, before anything is read ---
topo_in node ip link add br1 type bridge  # a bridge without an IPv4 address
for args in "" "--bridge nosuch0" "--bridge br1" "--bridge br0 extra"; do
    out=$(legacy $args 2>&1 >/dev/null); rc=$?
    field=bridge; [ "$args" = "--bridge br0 extra" ] && field="unexpected argument"
    if [ "$rc" -eq 2 ] && [ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ] && [[ "$out" == *"$field"* ]]; then
        pass "legacy-iptables ${args:-(no options)}: exit 2 naming '$field'"
    else
        fail "legacy-iptables ${args:-(no options)}: exit $rc: $out"
    fi
done
out=$(topo_in node env PATH=/nonexistent "$NODEPORT" legacy-iptables --pin-dir "$PIN" --bridge br0 2>&1); rc=$?
expect_eq "no iptables binary: exit 1" 1 "$rc"
expect_match "and it says so" "iptables is not installed" "$out"

# --- The node's own rules, which must survive ---
topo_in node iptables-restore -n <<'EOF'
*nat
:SANDBOX-DNAT - [0:0]
-A PREROUTING -p tcp --dport 6667 -j DNAT --to-destination 10.9.0.5:6667
-A PREROUTING -p tcp --dport 7000 -m comment --comment "manual: keep me" -j DNAT --to-destination 10.8.0.9:7000
-A PREROUTING -j SANDBOX-DNAT
-A SANDBOX-DNAT -p tcp --dport 6667 -j DNAT --to-destination 10.8.1.167:6667
-A OUTPUT -d 10.200.0.1/32 -p tcp --dport 6667 -j DNAT --to-destination 10.8.1.167:6667
-A PREROUTING ! -i br0 -p tcp -m multiport --dports 8443 -j DNAT --to-destination 10.8.1.80:8443
-A PREROUTING ! -i br0 -p tcp --dport 3128 -j DNAT --to-destination 10.8.0.1:3128
-A OUTPUT -p udp --dport 9 -j DNAT --to-destination 10.8.0.0:9
-A PREROUTING ! -i br0 -p udp --dport 9 -j DNAT --to-destination 10.8.255.255:9
-A POSTROUTING -s 127.0.0.1 -d 10.8.0.1 -p tcp --dport 3128 -j MASQUERADE
-A POSTROUTING -s 10.8.0.0/16 ! -o br0 -j MASQUERADE
COMMIT
*filter
-A FORWARD -d 10.8.1.167/32 -p tcp --dport 6667 -j ACCEPT
COMMIT
EOF
expect_eq "the node's own rules are in" 0 $?
own=$(ruleset)

# --- 25 stale triples per port; the first 3 PREROUTING rules inserted above the node's own ---
{
    echo "*nat"
    for i in $(seq 1 25); do
        for np in $PORTS; do
            proto=${np%/*} port=${np#*/}
            ip=$(dead_ip "$port" "$i")
            [ "$np" = tcp/6667 ] && [ "$i" -eq 25 ] && ip=${LIVE_TCP%:*}  # the last deploy is the live one
            if [ "$i" -le 3 ]; then pre="-I PREROUTING 1"; else pre="-A PREROUTING"; fi
            echo "$pre ! -i br0 -p $proto --dport $port -j DNAT --to-destination $ip:$port"
            case $((i % 3)) in
            0) match="" ;;
            1) match="-d 127.0.0.1" ;;
            2) match="-m addrtype --dst-type LOCAL" ;;
            esac
            echo "-A OUTPUT $match -p $proto --dport $port -j DNAT --to-destination $ip:$port"
            if [ $((i % 2)) -eq 1 ]; then
                echo "-A POSTROUTING -s 127.0.0.1 -d $ip -p $proto --dport $port -j MASQUERADE"
            else
                echo "-A POSTROUTING -s 127.0.0.1 -o br0 -p $proto --dport $port -j MASQUERADE"
            fi
        done
    done
    echo "COMMIT"
} | topo_in node iptables-restore -n
expect_eq "300 stale rules added (311 nat rules with the node's 11)" 311 "$(ipt -t nat -S | grep -c '^-A')"

# nodeport, loaded in the node namespace, maps two of the ports.
topo_in node "$NODEPORT" load --pin-dir "$PIN" --cgroup "$TOPO_CGROUP" --local-only >/dev/null
expect_eq "load exits 0" 0 $?
np set tcp/6667 "$LIVE_TCP" >/dev/null && np set udp/5353 "$LIVE_UDP" >/dev/null
expect_eq "two ports mapped" 2 "$(np list --json | jq length)"

# --- Dry run: the report, and nothing changed ---
before=$(ruleset)
json=$(legacy --bridge br0 --dry-run --json); rc=$?
expect_eq "dry run exits 0" 0 "$rc"
expect_eq "dry run changes nothing (iptables-save, every table)" "$before" "$(ruleset)"
jqr() { printf '%s' "$json" | jq -r "$@"; }
expect_eq "300 legacy rules found, 0 deleted" "300 0 true true" "$(jqr '"\(.found) \(.deleted) \(.dry_run) \(.nodeport_loaded)"')"
expect_eq "four ports, sorted" "tcp/6667 tcp/8080 udp/5353 udp/6667" "$(jqr '[.ports[].port] | join(" ")')"
expect_eq "75 rules per port, 25 per chain" "75 25 25 25" \
    "$(jqr '[.ports[] | "\(.rule_count) \(.by_chain.PREROUTING) \(.by_chain.OUTPUT) \(.by_chain.POSTROUTING)"] | unique | join(",")')"
expect_eq "no portless rules" 0 "$(jqr '.portless_rules | length')"
# Issue 22: these used to be deleted.
expect_eq "kept and listed: one port through multiport, DNATs to the bridge's own, network and broadcast address" \
    "$(printf '%s\n' \
        "-A PREROUTING ! -i br0 -p tcp -m multiport --dports 8443 -j DNAT --to-destination 10.8.1.80:8443|-m multiport (the old runtime matched one port with --dport)" \
        "-A PREROUTING ! -i br0 -p tcp -m tcp --dport 3128 -j DNAT --to-destination 10.8.0.1:3128|DNAT to the bridge's own address 10.8.0.1" \
        "-A PREROUTING ! -i br0 -p udp -m udp --dport 9 -j DNAT --to-destination 10.8.255.255:9|DNAT to the broadcast address of 10.8.0.0/16" \
        "-A OUTPUT -p udp -m udp --dport 9 -j DNAT --to-destination 10.8.0.0:9|DNAT to the network address of 10.8.0.0/16" \
        "-A POSTROUTING -s 127.0.0.1/32 -d 10.8.0.1/32 -p tcp -m tcp --dport 3128 -j MASQUERADE|toward the bridge's own address 10.8.0.1")" \
    "$(jqr '.kept[] | "\(.rule)|\(.reason)"' | grep -E 'multiport|10\.8\.0\.[01][:/ ]|10\.8\.255\.255')"
expect_eq "and the other look-alikes of the node's (a comment, OUTPUT to another address) with them: 7 kept" 7 \
    "$(jqr '.kept | length')"
expect_eq "no port nodeport does not map is reported for them" "" \
    "$(jqr '.ports[].port' | grep -E '^(tcp/8443|tcp/3128|udp/9)$')"
tcp=$(jqr '.ports[] | select(.port == "tcp/6667")')
expect_eq "tcp/6667: nodeport's backend" "$LIVE_TCP" "$(jq -r .nodeport_backend <<<"$tcp")"
expect_eq "tcp/6667: PREROUTING's first match is the last rule inserted on top" "$(dead_ip 6667 3):6667" \
    "$(jq -r .first_match.PREROUTING <<<"$tcp")"
expect_eq "tcp/6667: OUTPUT's first match is the first rule appended" "$(dead_ip 6667 1):6667" \
    "$(jq -r .first_match.OUTPUT <<<"$tcp")"
expect_eq "tcp/6667: shadows nodeport's mapping" true "$(jq -r .shadows_nodeport <<<"$tcp")"
expect_eq "tcp/6667: five dead targets, the live one not among them" \
    "$(for i in 1 2 3 4 5; do echo "$(dead_ip 6667 "$i"):6667"; done | sort | paste -sd' ')" \
    "$(jq -r '.dead_targets | sort | join(" ")' <<<"$tcp")"
tcp8080=$(jqr '.ports[] | select(.port == "tcp/8080")')
expect_eq "tcp/8080: not mapped, so not shadowing, and all 5 targets dead" "null false 5" \
    "$(jq -r '"\(.nodeport_backend) \(.shadows_nodeport) \(.dead_targets | length)"' <<<"$tcp8080")"
udp=$(jqr '.ports[] | select(.port == "udp/5353")')
expect_eq "udp/5353: mapped, shadowed, 5 dead targets" "$LIVE_UDP true 5" \
    "$(jq -r '"\(.nodeport_backend) \(.shadows_nodeport) \(.dead_targets | length)"' <<<"$udp")"
expect_eq "the rules reported are the ones iptables prints" \
    "$(ipt -t nat -S PREROUTING | grep -- '! -i br0 -p tcp -m tcp --dport 6667 ' | sort)" \
    "$(jq -r '.rules[] | select(startswith("-A PREROUTING"))' <<<"$tcp" | sort)"
out=$(legacy --bridge br0 --dry-run)
expect_match "human report: tcp/6667 shadowed" "tcp/6667: 75 rules .*nodeport: $LIVE_TCP \(SHADOWED" "$out"
expect_match "human report: duplicates counted" "   5x -A PREROUTING ! -i br0 -p udp -m udp --dport 6667 -j DNAT" "$out"
expect_match "human report: dry run said" "dry run: would delete 300 legacy rules; nothing changed" "$out"
expect_match "human report: the kept rules, with why" \
    "kept: 7 rules toward the bridge not of the old runtime's shape.*    -A PREROUTING ! -i br0 -p tcp -m tcp --dport 3128 -j DNAT --to-destination 10.8.0.1:3128 \(DNAT to the bridge's own address 10.8.0.1\)" \
    "$out"
expect_eq "still nothing changed" "$before" "$(ruleset)"

# --- One transaction: a rule another writer removes between the read and the
# delete fails the whole delete, and nothing else is deleted ---
# (an iptables-restore that first deletes one legacy rule, then runs the real one)
one="-A PREROUTING ! -i br0 -p udp -m udp --dport 6667 -j DNAT --to-destination $(dead_ip 6667 4):6667"
printf '#!/bin/sh\niptables -t nat -D %s\nexec %s "$@"\n' "${one#-A }" "$(command -v iptables-restore)" \
    >"$WRAP/iptables-restore"
chmod +x "$WRAP/iptables-restore"
expected=$(ruleset | awk -v r="$one" '$0 == r && !done { done = 1; next } 1')
out=$(topo_in node env PATH="$WRAP:$PATH" "$NODEPORT" legacy-iptables --pin-dir "$PIN" --bridge br0 2>&1); rc=$?
expect_eq "a rule gone under the delete: exit 1" 1 "$rc"
expect_match "and it names iptables-restore" "iptables-restore -w 5 --noflush: exit" "$out"
expect_eq "all or nothing: only the rule the other writer removed is gone" "$expected" "$(ruleset)"
expect_eq "299 legacy rules left" 299 "$(legacy --bridge br0 --dry-run --json | jq .found)"

# --- The real run: every legacy rule and duplicate gone, the node's own rules byte for byte ---
start=$(date +%s.%N)
json=$(legacy --bridge br0 --json); rc=$?
echo "     (deleting 299 rules took $(echo "$(date +%s.%N) - $start" | bc) s)"
expect_eq "real run exits 0" 0 "$rc"
expect_eq "299 found, 299 deleted" "299 299" "$(jqr '"\(.found) \(.deleted)"')"
expect_eq "the ruleset is exactly the node's own rules again" "$own" "$(ruleset)"
expect_eq "the user chain's rule survived" 1 "$(ipt -t nat -S SANDBOX-DNAT | grep -c 'DNAT --to-destination 10.8.1.167:6667')"
expect_eq "the filter rule survived" 1 "$(ipt -S FORWARD | grep -c '10.8.1.167')"
out=$(legacy --bridge br0); rc=$?
expect_eq "a second run finds nothing and exits 0" "0 no legacy rules found" "$rc $(tail -n 1 <<<"$out")"
expect_eq "nodeport's mappings are untouched" 2 "$(np list --json | jq length)"

# Without nodeport loaded it still works, and every target counts as dead.
echo "-A PREROUTING ! -i br0 -p tcp --dport 9000 -j DNAT --to-destination 10.8.9.9:9000" |
    sed '1i *nat' | sed '$a COMMIT' | topo_in node iptables-restore -n
json=$(topo_in node "$NODEPORT" legacy-iptables --pin-dir "$PIN-none" --bridge br0 --dry-run --json)
expect_eq "not loaded: reported, target dead" "false 10.8.9.9:9000" \
    "$(jqr '"\(.nodeport_loaded) \(.ports[0].dead_targets[0])"')"

# --- Scale: 1,000 stale triples (3,000 rules, 3,001 with the one above) in one transaction ---
{
    echo "*nat"
    for i in $(seq 1 1000); do
        port=$((10000 + i)) ip=10.8.$((i % 200)).$((i % 250 + 2))  # never 10.8.0.1, the bridge
        echo "-A PREROUTING ! -i br0 -p tcp --dport $port -j DNAT --to-destination $ip:$port"
        echo "-A OUTPUT -p tcp --dport $port -j DNAT --to-destination $ip:$port"
        echo "-A POSTROUTING -s 127.0.0.1 -o br0 -p tcp --dport $port -j MASQUERADE"
    done
    echo "COMMIT"
} | topo_in node iptables-restore -n
start=$(date +%s.%N)
json=$(legacy --bridge br0 --json); rc=$?
echo "     (deleting 3001 rules took $(echo "$(date +%s.%N) - $start" | bc) s)"
expect_eq "3,001 rules: found and deleted, exit 0" "0 3001 3001" "$rc $(jqr '"\(.found) \(.deleted)"')"
expect_eq "3,001 rules: the node's own rules are all that is left" "$own" "$(ruleset)"

finish
