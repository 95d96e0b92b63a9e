#!/usr/bin/env bash
# The failure nodeport exists for, next to nodeport, in throw-away namespaces:
# a sandbox port is redeployed 25 times (new sandbox, new IP, old one destroyed).
#   1. iptables as the runtime used it: 3 rules appended per deploy, never
#      deleted. The first matching rule keeps pointing at the first, dead
#      sandbox, so the port stops working after the first redeploy.
#   2. nodeport: one map entry per port, overwritten on deploy, removed on
#      destroy by owner. The port follows every redeploy, for node processes
#      (127.0.0.1, the node IP) and for a client outside the node.
# Installs what it needs and builds first. Run as root. Cleans up after itself.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
bash scripts/build.sh >/dev/null
NODEPORT=$ROOT/build/nodeport

. scripts/topology.sh
PORT=6667
DEPLOYS=25
PIN=/sys/fs/bpf/nodeport-demo-$$
cleanup() {
    "$NODEPORT" unload --pin-dir "$PIN" >/dev/null 2>&1 || rm -rf "$PIN"
    topo_cleanup
}
trap cleanup EXIT

# reach NS ADDR: the first word a client in NS gets from ADDR:PORT (1 s timeout).
# Node processes run in the node's cgroup; the client stands for another
# machine, outside it, so its packets cross ext0 and meet the TC programs.
reach() {
    local out run=topo_in_cgroup
    [ "$1" = client ] && run=topo_in
    out=$($run "$1" nc -w 1 "$2" "$PORT" </dev/null 2>/dev/null) || true
    echo "${out%% *}"
}

# row DEPLOY NS:ADDR...: one line per deploy, probing each address from its namespace.
row() {
    local n=$1 probe got
    shift
    printf '  deploy %2d  live sb%-3s' "$n" "$n"
    for probe in "$@"; do
        got=$(reach "${probe%%:*}" "${probe#*:}")
        printf '  %s -> %s:%s %-11s' "${probe%%:*}" "${probe#*:}" "$PORT" "$([ "$got" = "sb$n" ] && echo OK || echo UNREACHABLE)"
    done
    echo
}

# deploy N: a new sandbox N serving its name on PORT, the previous one destroyed.
deploy() {
    topo_sandbox "$1"
    topo_serve "sb$1" "sb$1" "$PORT"
}

echo "== 1. iptables DNAT, three rules appended per deploy (as the runtime did) =="
topo_init "npdemo-ipt$$"
topo_node
topo_client
topo_cgroup
topo_in node sysctl -qw net.ipv4.conf.all.route_localnet=1
for n in $(seq 1 "$DEPLOYS"); do
    deploy "$n"
    ip=$(topo_sandbox_ip "$n")
    topo_in node iptables -t nat -A PREROUTING ! -i br0 -p tcp --dport "$PORT" -j DNAT --to-destination "$ip:$PORT"
    topo_in node iptables -t nat -A OUTPUT -p tcp -d 127.0.0.1 --dport "$PORT" -j DNAT --to-destination "$ip:$PORT"
    topo_in node iptables -t nat -A POSTROUTING -s 127.0.0.1 -d "$ip" -p tcp --dport "$PORT" -j MASQUERADE
    [ "$n" -gt 1 ] && topo_sandbox_del $((n - 1))
    # The runtime's rules DNAT 127.0.0.1 in OUTPUT (from the node) and the
    # node IP in PREROUTING (from other machines): probe each where it applies.
    row "$n" node:127.0.0.1 "client:$TOPO_NODE_EXT_IP"
done
echo "  iptables now holds $(topo_in node iptables -t nat -S | grep -c -- "--dport $PORT") rules for port $PORT; the first still says:"
topo_in node iptables -t nat -S OUTPUT | grep -m1 -- "--dport $PORT" | sed 's/^/    /'
topo_cleanup

echo
echo "== 2. nodeport: one entry per port, overwritten on deploy, removed by owner on destroy =="
topo_init "npdemo-np$$"
topo_node
topo_client
topo_cgroup
# The demo attaches to a child cgroup and runs its clients there; on a real
# node, `nodeport load` attaches to the root of the cgroup v2 hierarchy.
topo_in node "$NODEPORT" load --pin-dir "$PIN" --cgroup "$TOPO_CGROUP" --iface ext0 | sed 's/^/  /'
for n in $(seq 1 "$DEPLOYS"); do
    deploy "$n"
    "$NODEPORT" set --pin-dir "$PIN" "tcp/$PORT" "$(topo_sandbox_ip "$n"):$PORT" --owner "sb-$n" >/dev/null
    if [ "$n" -gt 1 ]; then
        topo_sandbox_del $((n - 1))
        # The old sandbox's destroy: owner-checked, so it leaves sb-$n's entry alone.
        # Exit 4: kept, sb-$n holds the port now.
        "$NODEPORT" del --pin-dir "$PIN" "tcp/$PORT" --owner "sb-$((n - 1))" >/dev/null || [ $? -eq 4 ]
    fi
    # Local traffic (socket hooks) and external traffic (TC on ext0).
    row "$n" node:127.0.0.1 "node:$TOPO_NODE_EXT_IP" "client:$TOPO_NODE_EXT_IP"
done
echo
echo "  \$ nodeport list"
"$NODEPORT" list --pin-dir "$PIN" | sed 's/^/  /'
echo "  \$ nodeport flows        # external connections being translated; the sandbox saw the client's own IP"
"$NODEPORT" flows --pin-dir "$PIN" | sed 's/^/  /' | { head -n 1; tail -n 3; }
echo "  \$ nodeport stats tcp/$PORT    # what sb-$DEPLOYS's port carried since it took the port, and what passed untouched"
"$NODEPORT" stats --pin-dir "$PIN" "tcp/$PORT" | sed 's/^/  /'
echo "  \$ nodeport del tcp/$PORT --owner sb-$((DEPLOYS - 1))    # a destroy that runs late"
{ "$NODEPORT" del --pin-dir "$PIN" "tcp/$PORT" --owner "sb-$((DEPLOYS - 1))" || echo "(exit $?: kept)"; } | sed 's/^/  /'
echo "  127.0.0.1:$PORT still reaches: $(reach node 127.0.0.1)"
