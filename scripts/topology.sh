# Throw-away network topology for the demo, the tests and the benchmarks.
# Source it, then call topo_init PREFIX once; everything made is named after
# PREFIX and removed by topo_cleanup (call it from an EXIT trap).
#
#   client ns                node ns                         sandbox ns (one per sandbox)
#   eth0 10.200.0.2/24 ----- ext0 10.200.0.1/24
#                            br0  10.8.0.1/16  --- vsbN ---- eth0 10.8.x.y/16
#
# Addresses only exist inside these namespaces. Nothing is attached to the
# root namespace or the root cgroup.

TOPO_NODE_EXT_IP=10.200.0.1
TOPO_CLIENT_IP=10.200.0.2
TOPO_BRIDGE_IP=10.8.0.1

topo_init() {
    TOPO=$1
    TOPO_CGROUP=""
    TOPO_CGROUP_ROOT=$(awk '{ for (i = 1; i <= NF; i++) if ($i == "-") { if ($(i + 1) == "cgroup2") print $5; break } }' \
        /proc/self/mountinfo | head -n 1)
}

topo_ns() { echo "$TOPO-$1"; }

# Runs a command in one of our namespaces. nsenter switches only the network
# namespace, so bpffs and the cgroup mount stay visible (ip netns exec
# remounts /sys and hides them).
topo_in() {
    local ns=$1
    shift
    nsenter --net="/run/netns/$TOPO-$ns" "$@"
}

# Same, from inside the test cgroup, whose sockets the hooks translate.
topo_in_cgroup() {
    local ns=$1
    shift
    sh -c 'echo $$ > "$1/cgroup.procs" && shift && exec "$@"' sh "$TOPO_CGROUP" \
        nsenter --net="/run/netns/$TOPO-$ns" "$@"
}

_topo_add_ns() {
    ip netns add "$TOPO-$1"
    ip -n "$TOPO-$1" link set lo up
}

# The node: a bridge for the sandboxes, forwarding on. The bridge gets a MAC
# of its own: otherwise it takes the lowest MAC of its ports and changes it
# when a sandbox's veth goes, leaving the other sandboxes sending to a stale
# gateway MAC until their neighbour entry expires.
topo_node() {
    _topo_add_ns node
    ip -n "$TOPO-node" link add br0 address 02:6e:70:00:00:01 type bridge
    ip -n "$TOPO-node" addr add "$TOPO_BRIDGE_IP/16" dev br0
    ip -n "$TOPO-node" link set br0 up
    topo_in node sysctl -qw net.ipv4.ip_forward=1
}

# A client machine on a link to the node's external interface ext0.
topo_client() {
    _topo_add_ns client
    ip -n "$TOPO-node" link add ext0 type veth peer name eth0 netns "$TOPO-client"
    ip -n "$TOPO-node" addr add "$TOPO_NODE_EXT_IP/24" dev ext0
    ip -n "$TOPO-node" link set ext0 up
    ip -n "$TOPO-client" addr add "$TOPO_CLIENT_IP/24" dev eth0
    ip -n "$TOPO-client" link set eth0 up
    ip -n "$TOPO-client" route add default via "$TOPO_NODE_EXT_IP"
}

# Instead of topo_client: a client behind a router whose link to the client
# has MTU $1 on the router's side only. The client keeps 1500, so its SYN
# says MSS 1460 and only path MTU discovery (the router's "fragmentation
# needed") can tell a sender that its segments do not fit. (A veth end also
# drops arriving frames above its own MTU, silently: big packets from the
# client never cross; the tests using this only download.)
#   node ext0 10.200.0.1/24 --- r0 10.200.0.3/24 [router] r1 10.201.0.1/24 --- eth0 10.201.0.2/24 [client]
TOPO_ROUTER_IP=10.200.0.3
TOPO_FAR_CLIENT_IP=10.201.0.2
topo_client_behind_router() {
    local mtu=$1
    _topo_add_ns router
    _topo_add_ns client
    ip -n "$TOPO-node" link add ext0 type veth peer name r0 netns "$TOPO-router"
    ip -n "$TOPO-node" addr add "$TOPO_NODE_EXT_IP/24" dev ext0
    ip -n "$TOPO-node" link set ext0 up
    ip -n "$TOPO-node" route add 10.201.0.0/24 via "$TOPO_ROUTER_IP"
    ip -n "$TOPO-router" addr add "$TOPO_ROUTER_IP/24" dev r0
    ip -n "$TOPO-router" link set r0 up
    ip -n "$TOPO-router" link add r1 mtu "$mtu" type veth peer name eth0 netns "$TOPO-client"
    ip -n "$TOPO-router" addr add 10.201.0.1/24 dev r1
    ip -n "$TOPO-router" link set r1 up
    ip -n "$TOPO-router" route add default via "$TOPO_NODE_EXT_IP"
    topo_in router sysctl -qw net.ipv4.ip_forward=1
    ip -n "$TOPO-client" addr add "$TOPO_FAR_CLIENT_IP/24" dev eth0
    ip -n "$TOPO-client" link set eth0 up
    ip -n "$TOPO-client" route add default via 10.201.0.1
}

# After topo_client_behind_router: IPv6 on the same links, the router's
# link to the client still MTU $1 (IPv6's minimum is 1280).
#   node ext0 2001:db8:200::1 --- r0 2001:db8:200::3 [router] r1 2001:db8:201::1 --- eth0 2001:db8:201::2 [client]
TOPO_ROUTER_IP6=2001:db8:200::3
TOPO_FAR_CLIENT_IP6=2001:db8:201::2
topo_router_ipv6() {
    ip -n "$TOPO-node" addr add "$TOPO_NODE_EXT_IP6/64" dev ext0 nodad
    ip -n "$TOPO-node" -6 route add 2001:db8:201::/64 via "$TOPO_ROUTER_IP6"
    ip -n "$TOPO-router" addr add "$TOPO_ROUTER_IP6/64" dev r0 nodad
    ip -n "$TOPO-router" addr add 2001:db8:201::1/64 dev r1 nodad
    ip -n "$TOPO-router" -6 route add default via "$TOPO_NODE_EXT_IP6"
    topo_in router sysctl -qw net.ipv6.conf.all.forwarding=1
    ip -n "$TOPO-client" addr add "$TOPO_FAR_CLIENT_IP6/64" dev eth0 nodad
    ip -n "$TOPO-client" -6 route add default via 2001:db8:201::1
}

# The IP of sandbox N (1..60000).
topo_sandbox_ip() { echo "10.8.$(($1 / 250)).$(($1 % 250 + 2))"; }

# IPv6 beside IPv4, for the tests that want it: the bridge gets
# $TOPO_BRIDGE_IP6 (an address of the node) and forwarding, a sandbox
# topo_sandbox_ip6 N. nodad: usable at once, no duplicate detection to wait for.
TOPO_BRIDGE_IP6=fd00:8::1
topo_sandbox_ip6() { printf 'fd00:8::%x\n' $(($1 + 1)); }
topo_node_ipv6() {
    ip -n "$TOPO-node" addr add "$TOPO_BRIDGE_IP6/64" dev br0 nodad
    topo_in node sysctl -qw net.ipv6.conf.all.forwarding=1
}
# After topo_client: IPv6 on the client link too (the node's external
# interface $TOPO_NODE_EXT_IP6, the client $TOPO_CLIENT_IP6 routing through it).
TOPO_NODE_EXT_IP6=2001:db8:200::1
TOPO_CLIENT_IP6=2001:db8:200::2
topo_client_ipv6() {
    ip -n "$TOPO-node" addr add "$TOPO_NODE_EXT_IP6/64" dev ext0 nodad
    ip -n "$TOPO-client" addr add "$TOPO_CLIENT_IP6/64" dev eth0 nodad
    ip -n "$TOPO-client" -6 route add default via "$TOPO_NODE_EXT_IP6"
}
topo_sandbox_ipv6() {
    ip -n "$TOPO-sb$1" addr add "$(topo_sandbox_ip6 "$1")/64" dev eth0 nodad
    ip -n "$TOPO-sb$1" -6 route add default via "$TOPO_BRIDGE_IP6"
}

topo_sandbox() {
    local n=$1
    _topo_add_ns "sb$n"
    ip -n "$TOPO-node" link add "vsb$n" type veth peer name eth0 netns "$TOPO-sb$n"
    ip -n "$TOPO-node" link set "vsb$n" master br0 up
    ip -n "$TOPO-sb$n" addr add "$(topo_sandbox_ip "$n")/16" dev eth0
    ip -n "$TOPO-sb$n" link set eth0 up
    ip -n "$TOPO-sb$n" route add default via "$TOPO_BRIDGE_IP"
}

# Kills a namespace's processes, then the namespace (its veth goes with it).
topo_del_ns() {
    local ns="$TOPO-$1" pids
    [ -e "/run/netns/$ns" ] || return 0
    pids=$(ip netns pids "$ns" 2>/dev/null)
    if [ -n "$pids" ]; then
        kill $pids 2>/dev/null
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            pids=$(ip netns pids "$ns" 2>/dev/null)
            [ -z "$pids" ] && break
            sleep 0.1
        done
        [ -n "$pids" ] && kill -9 $pids 2>/dev/null
    fi
    ip netns del "$ns" 2>/dev/null || true
}

topo_sandbox_del() { topo_del_ns "sb$1"; }

# A child cgroup of the cgroup v2 root, for the socket hooks.
topo_cgroup() {
    [ -n "$TOPO_CGROUP_ROOT" ] || { echo "topology: no cgroup v2 mount" >&2; return 1; }
    TOPO_CGROUP="$TOPO_CGROUP_ROOT/$TOPO"
    mkdir -p "$TOPO_CGROUP"
}

# Starts scripts/identity_server.py in a namespace; it answers every TCP
# connection and UDP datagram with "NAME CLIENT-IP". Waits until it listens.
# Extra arguments go to the server (--hold).
topo_serve() {
    local ns=$1 name=$2 port=$3
    shift 3
    topo_in "$ns" python3 "$(dirname "${BASH_SOURCE[0]}")/identity_server.py" --name "$name" --port "$port" "$@" \
        >/dev/null 2>&1 &
    topo_wait_listen "$ns" "$port"
}

# Waits until something listens on a TCP port in a namespace (5 s at most).
topo_wait_listen() {
    local ns=$1 port=$2
    for _ in $(seq 1 50); do
        topo_in "$ns" ss -Hltn "sport = :$port" | grep -q . && return 0
        sleep 0.1
    done
    echo "topology: nothing listens on $port in $ns" >&2
    return 1
}

topo_cleanup() {
    local ns
    for ns in $(ip netns list | awk '{print $1}' | grep "^$TOPO-"); do
        topo_del_ns "${ns#"$TOPO"-}"
    done
    if [ -n "$TOPO_CGROUP" ] && [ -d "$TOPO_CGROUP" ]; then
        # Processes still in it (a stuck client) are moved out first.
        local pid
        for pid in $(cat "$TOPO_CGROUP/cgroup.procs" 2>/dev/null); do
            kill -9 "$pid" 2>/dev/null
        done
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            rmdir "$TOPO_CGROUP" 2>/dev/null && break
            sleep 0.1
        done
    fi
}
