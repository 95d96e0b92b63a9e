package nodeport

import (
	"fmt"
	"net/netip"
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

// routableUnicast: not 0/8, loopback (127/8), multicast or the reserved
// range above it; what a sandbox's address can be.
func routableUnicast(a [4]byte) bool {
	return a[0] != 0 && a[0] != 127 && a[0] < 224
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

// entry is a checked mapping, as the maps hold it.
type entry struct {
	nodePort
	addr        [4]byte
	backendPort uint16
	owner       string
}

func (e entry) mapping() Mapping {
	return Mapping{Proto: protoName(e.proto), Port: e.port,
		Backend: netip.AddrPortFrom(netip.AddrFrom4(e.addr), e.backendPort), Owner: e.owner}
}

// checkBackend: an address a sandbox can have and a port 1-65535 (a
// mapping's backend, and what Drain waits for).
func checkBackend(backend netip.AddrPort) ([4]byte, error) {
	addr := backend.Addr().Unmap()
	if !addr.Is4() {
		return [4]byte{}, inputError{"backend address", quote(backend.Addr().String()) + " is not an IPv4 address"}
	}
	a := addr.As4()
	if !routableUnicast(a) {
		return [4]byte{}, inputError{"backend address", quote(addr.String()) + " is not a unicast address a sandbox can have"}
	}
	if backend.Port() == 0 {
		return [4]byte{}, inputError{"backend port", "0 is not a port number (1-65535)"}
	}
	return a, nil
}

// checkMapping is check_mapping: node and backend ports 1-65535, a backend
// address a sandbox can have, an owner empty or as checkOwner takes it.
func checkMapping(m Mapping) (entry, error) {
	np, err := checkNodePort(m.Proto, m.Port)
	if err != nil {
		return entry{}, err
	}
	a, err := checkBackend(m.Backend)
	if err != nil {
		return entry{}, err
	}
	if m.Owner != "" {
		if err := checkOwner(m.Owner); err != nil {
			return entry{}, err
		}
	}
	return entry{np, a, m.Backend.Port(), m.Owner}, nil
}

// checkDesired checks every entry of a sync and that no node port is listed
// twice; errors name the entry ("entry 3: backend address: ...").
func checkDesired(want []Mapping) ([]entry, error) {
	out := make([]entry, 0, len(want))
	seen := make(map[nodePort]bool, len(want))
	for i, m := range want {
		e, err := checkMapping(m)
		if err != nil {
			ie := err.(inputError)
			return nil, inputError{fmt.Sprintf("entry %d: %s", i, ie.field), ie.message}
		}
		if seen[e.nodePort] {
			return nil, inputError{"node port", e.nodePort.String() + " is listed twice"}
		}
		seen[e.nodePort] = true
		out = append(out, e)
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
