package nodeport

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"
)

// The checks of the C++ library (loader/base/types.cpp check_mapping,
// parse_owner, parse_proto), with its field names and messages.

const (
	protoTCP = 6  // IPPROTO_TCP, as in the map key
	protoUDP = 17 // IPPROTO_UDP

	maxOwnerLen = 255 // NP_MAX_OWNER_LEN
	quoteMax    = 100 // quote_max_bytes
)

// quote is a value from outside as an error message shows it: in single
// quotes, printable ASCII kept, a backslash doubled, any other byte \xNN, at
// most 100 bytes of it (types.cpp quote).
func quote(text string) string {
	cut := text
	if len(cut) > quoteMax {
		cut = cut[:quoteMax]
	}
	var b strings.Builder
	for i := 0; i < len(cut); i++ {
		c := cut[i]
		switch {
		case c == '\\':
			b.WriteString(`\\`)
		case c >= 0x20 && c < 0x7f:
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, `\x%02x`, c)
		}
	}
	if len(text) > quoteMax {
		return fmt.Sprintf("'%s...' (%d bytes)", b.String(), len(text))
	}
	return "'" + b.String() + "'"
}

// parseProto takes "tcp" or "udp" in any case.
func parseProto(text string) (uint8, error) {
	switch strings.ToLower(text) {
	case "tcp":
		return protoTCP, nil
	case "udp":
		return protoUDP, nil
	}
	if text == "" {
		return 0, inputError{"protocol", "missing (tcp or udp)"}
	}
	return 0, inputError{"protocol", quote(text) + " is not supported (tcp or udp)"}
}

func protoName(proto uint8) string {
	if proto == protoTCP {
		return "tcp"
	}
	return "udp"
}

// checkOwner: 1-255 printable, non-blank ASCII characters.
func checkOwner(owner string) error {
	if len(owner) == 0 || len(owner) > maxOwnerLen {
		return inputError{"owner", fmt.Sprintf("must be 1 to %d characters, got %d", maxOwnerLen, len(owner))}
	}
	for i := 0; i < len(owner); i++ {
		if c := owner[i]; c <= 0x20 || c >= 0x7f {
			return inputError{"owner", quote(owner) + " has a blank or non-ASCII character"}
		}
	}
	return nil
}

// routableUnicast is is_routable_unicast: an address a sandbox can have,
// reachable from other namespaces. IPv4: not 0/8, loopback (127/8),
// multicast or the reserved range above it. IPv6: not unspecified,
// loopback, multicast (ff00::/8) or link-local (fe80::/10, which names a
// link, not a host), and not an IPv4 address in IPv6 form (v4-compatible
// ::a.b.c.d or v4-mapped ::ffff:a.b.c.d: any address whose first 10 bytes
// are 0 and the next two 00 00 or ff ff), which is given as a dotted quad.
func routableUnicast(addr netip.Addr) bool {
	if addr.Is4() {
		a := addr.As4()
		return a[0] != 0 && a[0] != 127 && a[0] < 224
	}
	b := addr.As16()
	if [10]byte(b[:10]) == [10]byte{} && (b[10] == 0 && b[11] == 0 || b[10] == 0xff && b[11] == 0xff) {
		return false // ::, ::1, ::a.b.c.d, ::ffff:a.b.c.d
	}
	if b[0] == 0xff {
		return false // multicast
	}
	return !(b[0] == 0xfe && b[1]&0xc0 == 0x80) // fe80::/10
}

// nodePort is a checked (protocol, node port).
type nodePort struct {
	proto uint8
	port  uint16
}

func (p nodePort) String() string { return fmt.Sprintf("%s/%d", protoName(p.proto), p.port) }

func checkNodePort(proto string, port uint16) (nodePort, error) {
	p, err := parseProto(proto)
	if err != nil {
		return nodePort{}, err
	}
	if port == 0 {
		return nodePort{}, inputError{"node port", "0 is not a port number (1-65535)"}
	}
	return nodePort{p, port}, nil
}

// entryKey is what identifies an entry of `ports`: a node port and the
// family of its backend (the C++ library's MappingKey). A node port leads to
// one IPv4 and one IPv6 backend at most; a client reaches the one of its
// own family.
type entryKey struct {
	nodePort
	ipv6 bool
}

// The node port's keys, IPv4 first.
func (p nodePort) keys() [2]entryKey { return [2]entryKey{{p, false}, {p, true}} }

// String is to_string(MappingKey): "tcp/6667", "tcp/6667 (IPv6)".
func (k entryKey) String() string {
	if k.ipv6 {
		return k.nodePort.String() + " (IPv6)"
	}
	return k.nodePort.String()
}

// less orders keys by protocol, port, then family (IPv4 first), as list()
// sorts.
func (k entryKey) less(o entryKey) bool {
	if k.proto != o.proto {
		return k.proto < o.proto
	}
	if k.port != o.port {
		return k.port < o.port
	}
	return !k.ipv6 && o.ipv6
}

// entry is a checked mapping, as the maps hold it: the backend's address
// IPv4 (Is4) or IPv6, without a zone.
type entry struct {
	nodePort
	backend netip.AddrPort
	owner   string
}

func (e entry) key() entryKey { return entryKey{e.nodePort, !e.backend.Addr().Is4()} }

func (e entry) mapping() Mapping {
	return Mapping{Proto: protoName(e.proto), Port: e.port, Backend: e.backend, Owner: e.owner}
}

// checkBackend: an address a sandbox can have, of either family, and a port
// 1-65535 (a mapping's backend, and what Drain waits for). An IPv4 address
// in IPv6 form (::ffff:10.8.0.2, what netip.AddrFromSlice makes of a
// 16-byte net.IP) is refused as in C++, not unmapped: the hint says how to
// give it.
func checkBackend(backend netip.AddrPort) error {
	addr := backend.Addr()
	if !addr.IsValid() {
		return inputError{"backend address", "missing (an IPv4 or IPv6 address)"}
	}
	if addr.Zone() != "" {
		// As parse_ipv6: a zone names an interface of one namespace.
		return inputError{"backend address", quote(addr.String()) + " is not an IPv6 address (no zone: it names " +
			"an interface of one namespace)"}
	}
	if !routableUnicast(addr) {
		message := quote(addr.String()) + " is not a unicast address a sandbox can have"
		if addr.Is4In6() && routableUnicast(addr.Unmap()) {
			message += " (an IPv4 address in IPv6 form: give it as " + addr.Unmap().String() + ")"
		}
		return inputError{"backend address", message}
	}
	if backend.Port() == 0 {
		return inputError{"backend port", "0 is not a port number (1-65535)"}
	}
	return nil
}

// checkMapping is check_mapping: node and backend ports 1-65535, a backend
// address a sandbox can have, an owner empty or as checkOwner takes it.
func checkMapping(m Mapping) (entry, error) {
	np, err := checkNodePort(m.Proto, m.Port)
	if err != nil {
		return entry{}, err
	}
	if err := checkBackend(m.Backend); err != nil {
		return entry{}, err
	}
	if m.Owner != "" {
		if err := checkOwner(m.Owner); err != nil {
			return entry{}, err
		}
	}
	return entry{np, m.Backend, m.Owner}, nil
}

// checkDesired checks every entry of a sync, then that no node port is
// listed twice for one family, as check_desired does: errors name the entry
// ("entry 3: backend address: ...") or the first such key in list order
// ("tcp/6667 (IPv6) is listed twice").
func checkDesired(want []Mapping) ([]entry, error) {
	out := make([]entry, 0, len(want))
	for i, m := range want {
		e, err := checkMapping(m)
		if err != nil {
			ie := err.(inputError)
			return nil, inputError{fmt.Sprintf("entry %d: %s", i, ie.field), ie.message}
		}
		out = append(out, e)
	}
	keys := make([]entryKey, 0, len(out))
	for _, e := range out {
		keys = append(keys, e.key())
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].less(keys[j]) })
	for i := 1; i < len(keys); i++ {
		if keys[i] == keys[i-1] {
			return nil, inputError{"node port", keys[i].String() + " is listed twice"}
		}
	}
	return out, nil
}

func (e inputError) Error() string { return e.field + ": " + e.message }

// ownerID is the owner's FNV-1a 64 hash stored beside its name, 0 for none.
func ownerID(owner string) uint64 {
	if owner == "" {
		return 0
	}
	h := uint64(0xcbf29ce484222325)
	for i := 0; i < len(owner); i++ {
		h ^= uint64(owner[i])
		h *= 0x100000001b3
	}
	return h
}
