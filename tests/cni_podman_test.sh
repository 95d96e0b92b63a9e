#!/usr/bin/env bash
# podman itself drives the chain: Debian's podman 4.3 with the CNI backend, a
# local root filesystem (--rootfs: the host's /usr bind-mounted, no image, no
# network), storage and network configs in a private directory, run inside a
# node namespace so its bridge, netns and nodeport's attachments stay there.
# Runtime: runc, since crun 1.8 refuses this machine's hybrid cgroup layout
# ("cgroups in hybrid mode not supported"). Skips (77) without podman or runc.
#
# Arguments: the nodeport CLI, the nodeport-cni binary.
set -u
NODEPORT=$1
PLUGIN=$(realpath "$2")  # linked into a plugin directory: absolute
. "$(dirname "$0")/lib.sh"
require_root
for tool in podman runc /usr/lib/cni/bridge; do
    command -v "$tool" >/dev/null || { echo "skipped: $tool is not installed (scripts/setup.sh installs it)"; exit 77; }
done

test_begin cnipod
np() { topo_in node "$NODEPORT" "$1" --pin-dir "$PIN" "${@:2}"; }
WORK=$(mktemp -d /tmp/npcnipod-test.XXXXXX)
PROBE="$TESTS_DIR/probe.py"
NODE_IP=$TOPO_NODE_EXT_IP
CLIENT_IP=$TOPO_CLIENT_IP
PORT=8080
pod() {
    CONTAINERS_CONF="$WORK/containers.conf" timeout 60 nsenter --net="/run/netns/$TOPO-node" \
        podman --root "$WORK/storage" --runroot "$WORK/run" --runtime runc "$@"
}
on_cleanup() {
    pod rm -af -t 0 >/dev/null 2>&1
    # Anything podman mounted under the work directory goes before it.
    grep -o " $WORK[^ ]*" /proc/mounts | sort -r | xargs -r -n 1 umount -l 2>/dev/null
    rm -rf "$WORK"
}

_topo_add_ns node
topo_in node sysctl -qw net.ipv4.ip_forward=1
topo_client
topo_cgroup

mkdir -p "$WORK/bin" "$WORK/net.d" "$WORK/rootfs"/{proc,sys,dev,etc,tmp,usr,s}
ln -s /usr/lib/cni/* "$WORK/bin/"
ln -s "$PLUGIN" "$WORK/bin/nodeport-cni"
for d in bin lib lib64 sbin; do ln -s "usr/$d" "$WORK/rootfs/$d"; done
cat > "$WORK/containers.conf" <<CONF
[network]
network_backend = "cni"
cni_plugin_dirs = ["$WORK/bin"]
network_config_dir = "$WORK/net.d"
[engine]
# systemd is not PID 1 here
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
cat > "$WORK/net.d/npcnipod.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "npcnipod",
  "plugins": [
    {"type": "bridge", "bridge": "npcnipod0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.90.0.0/16"}]], "routes": [{"dst": "0.0.0.0/0"}],
              "dataDir": "$WORK/ipam"}},
    {"type": "nodeport-cni", "capabilities": {"portMappings": true}, "pinDir": "$PIN", "stateDir": "$WORK/state",
     "load": {"cgroup": "$TOPO_CGROUP", "interfaces": ["ext0"]}}
  ]
}
JSON

# run NAME: a container answering "NAME CLIENT-IP" on 80, published on $PORT (TCP and UDP).
# The ulimits stay within this machine's (no CAP_SYS_RESOURCE to raise them).
run() {
    pod run -d --name "$1" --network npcnipod -p "$PORT:80" -p "$PORT:80/udp" \
        --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 -v /usr:/usr:ro -v "$TESTS_DIR/../scripts:/s:ro" \
        --rootfs "$WORK/rootfs" python3 /s/identity_server.py --name "$1" --port 80 >/dev/null
}
id_of() { pod inspect -f '{{.Id}}' "$1"; }
wait_answer() {  # wait_answer NAME: until the external client reaches NAME (5 s at most)
    for _ in $(seq 1 50); do
        [[ "$(topo_in client python3 "$PROBE" tcp "$NODE_IP" $PORT 2>/dev/null)" == *" $1 "* ]] && return 0
        sleep 0.1
    done
    return 1
}

run pod1
expect_eq "podman run -p $PORT:80 with nodeport-cni in the chain exits 0" 0 $?
ID1=$(id_of pod1)
expect_eq "both ports are owned by the container's id" "tcp/$PORT $ID1 udp/$PORT $ID1" \
    "$(np list --json | jq -r '[.[] | "\(.proto)/\(.port) \(.owner)"] | join(" ")')"
wait_answer pod1
expect_eq "external TCP client reaches pod1, which sees the client's IP" "$NODE_IP:$PORT pod1 $CLIENT_IP" \
    "$(topo_in client python3 "$PROBE" tcp "$NODE_IP" $PORT)"
for proto in tcp udp; do
    expect_match "a node process reaches pod1 through 127.0.0.1:$PORT ($proto)" "^127.0.0.1:$PORT pod1 " \
        "$(topo_in_cgroup node python3 "$PROBE" $proto 127.0.0.1 $PORT)"
done
# Rootful podman "reserves" each published host port: conmon keeps a socket
# bound to 0.0.0.0:PORT in the node namespace. Only a socket connected to the
# datagram's sender (a reply to the node's own query) keeps a datagram from
# the sandbox, so external UDP still reaches the container.
expect_match "podman's conmon holds its reservation socket on udp/$PORT" ":$PORT\$" \
    "$(topo_in node ss -Hlun "sport = :$PORT" | awk '{print $4}' | head -n 1)"
expect_eq "status: podman's conmon (root, --exit-command podman) holding it is no listener problem" 0 \
    "$(topo_in node "$NODEPORT" status --pin-dir "$PIN" --json | jq '[.problems[] | select(.kind == "listener")] | length')"
expect_eq "external UDP reaches pod1 all the same, which sees the client's IP" "$NODE_IP:$PORT pod1 $CLIENT_IP" \
    "$(topo_in client python3 "$PROBE" udp "$NODE_IP" $PORT)"

# podman refuses a second container on a published port (its reservation
# bind fails), so a replacement is remove, then run.
run pod2 2>/dev/null
expect_eq "podman itself refuses a second container on the same host port" 126 $?
pod rm -f pod2 >/dev/null 2>&1
pod rm -f -t 0 pod1 >/dev/null
expect_eq "podman rm pod1 removes its mappings" "[]" "$(np list --json | jq -c .)"
run pod2
expect_eq "then pod2 starts on the port" 0 $?
expect_eq "pod2 holds both ports" "$(id_of pod2) $(id_of pod2)" \
    "$(np list --json | jq -r '[.[].owner] | join(" ")')"
wait_answer pod2
expect_eq "the client reaches pod2" "$NODE_IP:$PORT pod2 $CLIENT_IP" \
    "$(topo_in client python3 "$PROBE" tcp "$NODE_IP" $PORT)"

pod rm -f -t 0 pod2 >/dev/null
expect_eq "podman rm leaves no mapping" "[]" "$(np list --json | jq -c .)"
expect_eq "and no address in host-local" "" "$(ls "$WORK/ipam/npcnipod" | grep -v -e '^lock$' -e '^last_reserved_ip')"

finish
