package nodeport

import (
	"encoding/binary"
	"errors"
	"sort"

	"github.com/cilium/ebpf"
)

// The record of the backends a write replaced or removed, and whose they
// were (`replaced_backends`, include/nodeport/abi.h), kept as the C++ library
// keeps it (PortTable::remember_replaced, take_replaced): a DeleteOwner after
// a redeploy's Set gave the port to the new sandbox still names the old
// sandbox's backends to drain, whichever API made the Set. IPv6 backends
// are in a map of their own, `replaced_backends6`.
var (
	replacedBackendsShape  = mapShape{"replaced_backends", ebpf.LRUHash, 12, 16}  // np_sock_end_target -> np_replaced_backend
	replacedBackends6Shape = mapShape{"replaced_backends6", ebpf.LRUHash, 24, 16} // np_sock_end_target6 -> the same
)

// replacedOf: the map that records `target`'s family; nil when the loaded
// programs have none (replaced_backends6: pins of a load before it).
func (t *Table) replacedOf(target sockEndTarget) *ebpf.Map {
	if target.addr.Is6() {
		return t.replaced6
	}
	return t.replaced
}

// rememberReplaced records `old` (the entries a write replaced or removed),
// best effort as forgetCounters: a record missing only makes a later drain
// wait for less.
func (t *Table) rememberReplaced(old []entry) {
	if (t.replaced == nil && t.replaced6 == nil) || len(old) == 0 {
		return
	}
	now, _ := bpfClockNow() // cannot fail on Linux; 0 would only make the record look old
	for _, e := range old {
		target := targetFor(e)
		m := t.replacedOf(target)
		if m == nil {
			continue
		}
		v := make([]byte, 16)
		binary.NativeEndian.PutUint64(v[0:], ownerID(e.owner))
		binary.NativeEndian.PutUint64(v[8:], now)
		m.Update(target.key(), v, ebpf.UpdateAny)
	}
}

// takeReplaced forgets the records of `owner` and returns those whose port
// does not lead to that backend again, sorted by protocol, port and backend.
func (t *Table) takeReplaced(owner string) []Mapping {
	id := ownerID(owner)
	seen := map[sockEndTarget]bool{} // a walk restarted by a delete gives a key twice
	var out []Mapping
	for _, m := range []*ebpf.Map{t.replaced, t.replaced6} {
		if m == nil {
			continue
		}
		keys, _ := allKeys(m) // best effort: a failed walk takes the keys it read
		for _, k := range keys {
			v, err := m.LookupBytes(k)
			if err != nil || len(v) < 8 || binary.NativeEndian.Uint64(v[0:]) != id {
				continue
			}
			m.Delete(k)
			target := parseSockEndTarget(k)
			if seen[target] {
				continue
			}
			seen[target] = true
			if now, _, ok, err := t.lookup(entryKey{target.nodePort, target.addr.Is6()}); err == nil && ok &&
				now.backend == target.backend() {
				continue // given back: not replaced any more
			}
			out = append(out, entry{target.nodePort, target.backend(), owner}.mapping())
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Proto != b.Proto {
			return a.Proto < b.Proto
		}
		if a.Port != b.Port {
			return a.Port < b.Port
		}
		return a.Backend.Compare(b.Backend) < 0
	})
	return out
}

// openReplaced opens a record; nil without error when the loaded programs
// are of a build before it.
func openReplaced(op string, dirFD int, dir string, shape mapShape) (*ebpf.Map, error) {
	m, err := openMap(op, dirFD, dir, shape)
	if err != nil && errors.Is(err, ErrNotLoaded) {
		return nil, nil
	}
	return m, err
}
