package nodeport

import (
	"encoding/binary"
	"net/netip"

	"github.com/cilium/ebpf"
)

// The layouts of include/nodeport/abi.h that this package reads and writes.
// The pinned maps are checked against them (type, key and value size) before
// use, and node_config's ABI version against abiVersion: a map of another
// layout is never read as ours. tests/capi/go_test.sh checks both against
// abi.h.

// abiVersion is NODEPORT_ABI_VERSION.
const abiVersion = 4

// mapShape is what a pinned map must be.
type mapShape struct {
	name      string
	typ       ebpf.MapType
	keySize   uint32
	valueSize uint32
}

var (
	portsShape           = mapShape{"ports", ebpf.Hash, 4, 288}              // np_port_key -> np_backend
	nodeConfigShape      = mapShape{"node_config", ebpf.Array, 4, 16}        // __u32 -> np_config
	portCountersShape    = mapShape{"port_counters", ebpf.PerCPUHash, 4, 64} // np_port_key -> np_port_counters
	sockEndTargetsShape  = mapShape{"sock_end_targets", ebpf.Hash, 12, 1}    // np_sock_end_target -> __u8
	sockEndTargets6Shape = mapShape{"sock_end_targets6", ebpf.Hash, 24, 1}   // np_sock_end_target6 -> __u8
)

// maxPorts is NP_MAX_PORTS: what `ports` holds, both families together.
const maxPorts = 131072

const (
	configSockEndPending = 1   // NP_CONFIG_SOCK_END_PENDING in np_config.flags
	familyIPv4           = 4   // NP_FAMILY_IPV4, in np_backend.family
	familyIPv6           = 6   // NP_FAMILY_IPV6
	portKeyIPv4          = 0   // NP_PORT_KEY_IPV4, in np_port_key.family: ABI 3's pad byte, so 0, not 4
	portKeyIPv6          = 6   // NP_PORT_KEY_IPV6
	addrOffset           = 8   // np_backend.addr[16]
	ownerOffset          = 32  // np_backend.owner
	backendBytes         = 288 // sizeof(struct np_backend)
)

// portKey is struct np_port_key: proto, family, port in host order.
func portKey(k entryKey) []byte {
	b := make([]byte, 4)
	b[0] = k.proto
	b[1] = portKeyIPv4
	if k.ipv6 {
		b[1] = portKeyIPv6
	}
	binary.NativeEndian.PutUint16(b[2:], k.port)
	return b
}

// parsePortKey reads struct np_port_key; any family byte but 6 is IPv4, as
// the C++ library reads it (loader/base/port_key.hpp from_port_key).
func parsePortKey(b []byte) entryKey {
	return entryKey{nodePort{b[0], binary.NativeEndian.Uint16(b[2:])}, b[1] == portKeyIPv6}
}

// backendValue is struct np_backend: family 4 with the IPv4 address in
// addr[0..3] and the rest 0, or family 6 with all 16 bytes.
func backendValue(e entry) []byte {
	v := make([]byte, backendBytes)
	binary.NativeEndian.PutUint16(v[2:], e.backend.Port())
	if addr := e.backend.Addr(); addr.Is4() {
		v[0] = familyIPv4
		a := addr.As4()
		copy(v[addrOffset:], a[:])
	} else {
		v[0] = familyIPv6
		a := addr.As16()
		copy(v[addrOffset:], a[:])
	}
	binary.NativeEndian.PutUint64(v[24:], ownerID(e.owner))
	copy(v[ownerOffset:backendBytes-1], e.owner)
	return v
}

// parseBackend reads struct np_backend back into an entry of node port p;
// the address is of the value's family, as the C++ library reads it
// (backend_addr).
func parseBackend(p nodePort, v []byte) (e entry, id uint64) {
	e.nodePort = p
	addr := netip.AddrFrom4([4]byte(v[addrOffset : addrOffset+4]))
	if v[0] == familyIPv6 {
		addr = netip.AddrFrom16([16]byte(v[addrOffset : addrOffset+16]))
	}
	e.backend = netip.AddrPortFrom(addr, binary.NativeEndian.Uint16(v[2:]))
	id = binary.NativeEndian.Uint64(v[24:])
	owner := v[ownerOffset:backendBytes]
	n := 0
	for n < len(owner) && owner[n] != 0 {
		n++
	}
	e.owner = string(owner[:n])
	return e, id
}

// sockEndTarget is struct np_sock_end_target, or np_sock_end_target6 for an
// IPv6 backend: a backend that a node port no longer leads to, the key of
// sock_end_targets(6) and replaced_backends(6) (loader/base/backend_key.hpp).
type sockEndTarget struct {
	nodePort
	addr        netip.Addr // IPv4: a key of sock_end_targets; IPv6: of sock_end_targets6
	backendPort uint16
}

// key is struct np_sock_end_target (12 bytes) for an IPv4 backend,
// np_sock_end_target6 (24 bytes) for an IPv6 one: the same fields after an
// address of 4 or 16 bytes.
func (t sockEndTarget) key() []byte {
	a := t.addr.AsSlice()
	k := make([]byte, len(a)+8)
	copy(k, a)
	binary.BigEndian.PutUint16(k[len(a):], t.backendPort)
	binary.BigEndian.PutUint16(k[len(a)+2:], t.port)
	k[len(a)+4] = t.proto
	return k
}

func parseSockEndTarget(k []byte) sockEndTarget {
	n := len(k) - 8 // the address: 4 or 16 bytes
	addr, _ := netip.AddrFromSlice(k[:n])
	return sockEndTarget{nodePort{k[n+4], binary.BigEndian.Uint16(k[n+2:])}, addr, binary.BigEndian.Uint16(k[n:])}
}

func targetFor(e entry) sockEndTarget {
	return sockEndTarget{e.nodePort, e.backend.Addr(), e.backend.Port()}
}

// targetsOf: the targets of the entries' backends.
func targetsOf(es []entry) []sockEndTarget {
	var out []sockEndTarget
	for _, e := range es {
		out = append(out, targetFor(e))
	}
	return out
}

func (t sockEndTarget) backend() netip.AddrPort {
	return netip.AddrPortFrom(t.addr, t.backendPort)
}

// The flow tables (struct np_flow_key, np_flow, np_half_open), read by Drain.
const (
	flowKeyBytes      = 40 // sizeof(struct np_flow_key)
	flowBytes         = 48 // sizeof(struct np_flow)
	halfOpenBytes     = 64 // sizeof(struct np_half_open)
	flowTimeoutsBytes = 32 // sizeof(struct np_flow_timeouts)
	localConnBytes    = 12 // sizeof(struct np_local_conn)
	localConn6Bytes   = 24 // sizeof(struct np_local_conn6)
	ipprotoUDP        = 17
	flowToBackend     = 1 // NP_FLOW_TO_BACKEND
	flowFinWait       = 2 // NP_FLOW_FIN_WAIT
	flowPickedUp      = 5 // NP_FLOW_PICKED_UP
)

// flowTimeouts is struct np_flow_timeouts, in ns.
type flowTimeouts struct {
	tcpEstablished, tcpSyn, tcpClosing, udpIdle uint64
}

func parseFlowTimeouts(v []byte) flowTimeouts {
	return flowTimeouts{binary.NativeEndian.Uint64(v[0:]), binary.NativeEndian.Uint64(v[8:]),
		binary.NativeEndian.Uint64(v[16:]), binary.NativeEndian.Uint64(v[24:])}
}

// flowID tells connections apart: one shows in two tables while its
// handshake moves from half_open_flows to flows.
type flowID struct {
	proto            uint8
	client, nodeAddr netip.Addr
	clientPort, node uint16
}

// flowAddr is an address of a flow entry of `family` (np_flow_key.family):
// IPv6, or IPv4 in the first 4 bytes.
func flowAddr(b []byte, family byte) netip.Addr {
	if family == familyIPv6 {
		return netip.AddrFrom16([16]byte(b[0:16]))
	}
	return netip.AddrFrom4([4]byte(b[0:4]))
}

// flowEntry is what Drain needs of one entry of a flow table.
type flowEntry struct {
	id                 flowID
	backend            netip.AddrPort
	lastSeen, lifetime uint64 // live while now <= lastSeen + lifetime
}

// parseFlowEntry reads an entry of flows or udp_flows (an np_flow value) or
// of half_open_flows (np_half_open); false for the entries a flow has
// towards its client, which Drain does not count twice.
func parseFlowEntry(key, value []byte, to flowTimeouts) (flowEntry, bool) {
	var f flowEntry
	family := key[38]
	client := flowAddr(key[0:16], family)
	peer := netip.AddrPortFrom(flowAddr(key[16:32], family), binary.BigEndian.Uint16(key[34:]))
	clientPort, proto, dir := binary.BigEndian.Uint16(key[32:]), key[36], key[37]
	f.lastSeen = binary.NativeEndian.Uint64(value[24:])
	if len(value) == halfOpenBytes {
		// Under the key of its replies (client, backend): the node address
		// and port are in the value.
		f.id = flowID{proto, client, flowAddr(value[0:16], family), clientPort, binary.BigEndian.Uint16(value[16:])}
		f.backend, f.lifetime = peer, to.tcpSyn
		return f, true
	}
	if dir != flowToBackend {
		return f, false
	}
	f.id = flowID{proto, client, peer.Addr(), clientPort, peer.Port()}
	f.backend = netip.AddrPortFrom(flowAddr(value[0:16], family), binary.BigEndian.Uint16(value[16:]))
	switch state := value[18]; {
	case proto == ipprotoUDP:
		f.lifetime = to.udpIdle
	case state == flowFinWait || state == flowPickedUp:
		f.lifetime = to.tcpClosing
	default:
		f.lifetime = to.tcpEstablished
	}
	return f, true
}
