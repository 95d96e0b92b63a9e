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
// sandbox's backends to drain, whichever API made the Set.
var replacedBackendsShape = mapShape{"replaced_backends", ebpf.LRUHash, 12, 16} // np_sock_end_target -> np_replaced_backend

// rememberReplaced records `old` (the entries a write replaced or removed),
// best effort as forgetCounters: a record missing only makes a later drain
// wait for less. IPv6 backends are not recorded: the key holds an IPv4
// address (np_sock_end_target), as in the C++ library.
func (t *Table) rememberReplaced(old []entry) {
	if t.replaced == nil || len(old) == 0 {
		return
	}
	now, _ := bpfClockNow() // cannot fail on Linux; 0 would only make the record look old
	for _, e := range old {
		target, ok := targetOf(e)
		if !ok {
			continue // IPv6: not recorded yet
		}
		v := make([]byte, 16)
		binary.NativeEndian.PutUint64(v[0:], ownerID(e.owner))
		binary.NativeEndian.PutUint64(v[8:], now)
		t.replaced.Update(target.key(), v, ebpf.UpdateAny)
	}
}

// takeReplaced forgets the records of `owner` and returns those whose port
// does not lead to that backend again, sorted by protocol, port and backend.
func (t *Table) takeReplaced(owner string) []Mapping {
	if t.replaced == nil {
		return nil
	}
	id := ownerID(owner)
	keys, _ := allKeys(t.replaced)   // best effort: a failed walk takes the keys it read
	seen := map[sockEndTarget]bool{} // a walk restarted by a delete gives a key twice
	var out []Mapping
	for _, k := range keys {
		v, err := t.replaced.LookupBytes(k)
		if err != nil || len(v) < 8 || binary.NativeEndian.Uint64(v[0:]) != id {
			continue
		}
		t.replaced.Delete(k)
		target := parseSockEndTarget(k)
		if seen[target] {
			continue
		}
		seen[target] = true
		if now, _, ok, err := t.lookup(entryKey{target.nodePort, false}); err == nil && ok && now.backend == target.backend() {
			continue // given back: not replaced any more
		}
		out = append(out, entry{target.nodePort, target.backend(), owner}.mapping())
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

// openReplaced opens the record; nil without error when the loaded programs
// are of a build before it.
func openReplaced(op string, dirFD int, dir string) (*ebpf.Map, error) {
	m, err := openMap(op, dirFD, dir, replacedBackendsShape)
	if err != nil && errors.Is(err, ErrNotLoaded) {
		return nil, nil
	}
	return m, err
}
