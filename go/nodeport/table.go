// Package nodeport maps node ports to sandbox backends in the port table of
// a loaded nodeport, in pure Go (CGO_ENABLED=0) over the pinned maps, with
// the rules of the C++ library (loader/table/port_table.cpp) and the C ABI:
//
//   - every write validates its input as the CLI does and changes nothing
//     when it refuses (ErrBadInput);
//   - writers serialize on the pin directory's flock, shared with the CLI,
//     the C++ library and other processes, waiting at most Options.LockWait
//     or until the call's context ends (then ErrBusy, naming the holder);
//   - the pin directory is trusted only as the C++ library trusts it, and
//     every pinned map is checked for its type and sizes and node_config for
//     the map ABI before use;
//   - a node port leads to one backend per family: an IPv4 one, an IPv6
//     one, or both (map ABI 4). Set writes the entry of its backend's
//     family; Delete, DeleteAny and DeleteOwner remove both families';
//   - a delete by owner removes only the entries that owner holds; an
//     empty owner is bad input (DeleteAny deletes whoever holds the port);
//   - a port's counters start from zero with each owner, per family;
//   - the node's connected UDP sockets to a replaced or removed backend are
//     ended through the socket iterators nodeport load pinned.
//
// A Table may be used from many goroutines.
package nodeport

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// DefaultPinDir is where `nodeport load` pins by default.
const DefaultPinDir = "/sys/fs/bpf/nodeport"

// Mapping is one node port and its backend of one family. Proto is "tcp" or
// "udp" (any case on input); Port and the backend's port are 1-65535;
// Backend's address is IPv4 unicast, not 0/8, loopback or multicast, or IPv6
// unicast without a zone, not ::, ::1, link-local (fe80::/10), multicast or
// an IPv4 address in IPv6 form (::ffff:10.8.0.2 is refused: give 10.8.0.2);
// Owner is "" (none) or 1-255 printable, non-blank ASCII characters.
type Mapping struct {
	Proto   string
	Port    uint16
	Backend netip.AddrPort
	Owner   string
}

// Options for Open.
type Options struct {
	// How long a write waits for another writer's lock at most; 0 means
	// DefaultLockWait, a negative value not at all. A call's context may end
	// the wait sooner.
	LockWait time.Duration
}

// Table is an open port table.
type Table struct {
	dir      string
	lockWait time.Duration
	writer   chan struct{} // one writer of this process at a time: goroutines share dirFD's flock

	mu        sync.RWMutex // Close waits for calls in flight
	closed    bool
	dirFD     int
	ports     *ebpf.Map
	config    *ebpf.Map // node_config: its map ABI, checked again by every write under the lock
	counters  *ebpf.Map // nil when the loaded programs have no port_counters
	replaced  *ebpf.Map // replaced_backends; nil when the loaded programs have none
	replaced6 *ebpf.Map // replaced_backends6; nil also with pins of a load before it (IPv6 not recorded)
	ender     *socketEnder
}

// Open opens the port table of the nodeport loaded at pinDir ("" for
// DefaultPinDir). ErrNotLoaded when nothing is loaded there.
func Open(pinDir string, opts ...Options) (*Table, error) {
	if pinDir == "" {
		pinDir = DefaultPinDir
	}
	op := "open " + pinDir
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	wait := o.LockWait
	if wait == 0 {
		wait = DefaultLockWait
	} else if wait < 0 {
		wait = 0
	}
	dirFD, err := openPinDir(op, pinDir)
	if err != nil {
		return nil, err
	}
	t := &Table{dir: pinDir, lockWait: wait, writer: make(chan struct{}, 1), dirFD: dirFD}
	if err := t.openMaps(op); err != nil {
		t.release()
		return nil, err
	}
	return t, nil
}

func (t *Table) openMaps(op string) error {
	config, err := openMap(op, t.dirFD, t.dir, nodeConfigShape)
	var cfg nodeConfig
	if err == nil {
		t.config = config
		if cfg, err = readNodeConfig(config); err != nil {
			return sysError(op, err)
		}
	} else if !errors.Is(err, ErrNotLoaded) {
		return err
	}
	if err := checkABI(op, t.dir, cfg); err != nil {
		return err
	}
	if t.ports, err = openMap(op, t.dirFD, t.dir, portsShape); err != nil {
		return err
	}
	// Absent while programs of a build without counters are loaded: then
	// there is nothing to reset.
	if t.counters, err = openMap(op, t.dirFD, t.dir, portCountersShape); err != nil {
		if !errors.Is(err, ErrNotLoaded) {
			return err
		}
		t.counters = nil
	}
	if t.replaced, err = openReplaced(op, t.dirFD, t.dir, replacedBackendsShape); err != nil {
		return err
	}
	if t.replaced6, err = openReplaced(op, t.dirFD, t.dir, replacedBackends6Shape); err != nil {
		return err
	}
	t.ender, err = openSocketEnder(op, t.dirFD, t.dir, cfg)
	return err
}

func (t *Table) release() {
	if t.ender != nil {
		t.ender.close()
	}
	if t.counters != nil {
		t.counters.Close()
	}
	if t.config != nil {
		t.config.Close()
	}
	for _, m := range []*ebpf.Map{t.replaced, t.replaced6} {
		if m != nil {
			m.Close()
		}
	}
	if t.ports != nil {
		t.ports.Close()
	}
	if t.dirFD >= 0 {
		unix.Close(t.dirFD)
		t.dirFD = -1
	}
}

// Close releases the table; calls after it fail with ErrClosed.
func (t *Table) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.closed {
		t.closed = true
		t.release()
	}
	return nil
}

// read runs f with the table open.
func (t *Table) read(op string, f func() error) error {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.closed {
		return newError(ErrClosed, op, "%v", ErrClosed)
	}
	return f()
}

// write runs f with the table open, holding this process's writer slot and
// the pin directory's flock, both within the lock wait and ctx.
func (t *Table) write(ctx context.Context, op string, f func() error) error {
	return t.read(op, func() error {
		deadline := waitDeadline(ctx, t.lockWait)
		select {
		case t.writer <- struct{}{}:
		default:
			timer := time.NewTimer(time.Until(deadline))
			defer timer.Stop()
			select {
			case t.writer <- struct{}{}:
			case <-ctx.Done():
				return busy(op, "another goroutine of this process holds the port table's write lock", ctx.Err())
			case <-timer.C:
				if cause := waitEnded(ctx, deadline); cause != nil {
					return busy(op, "another goroutine of this process holds the port table's write lock", cause)
				}
				return newError(ErrBusy, op, "another goroutine of this process holds the port table's write lock "+
					"for more than %g s", t.lockWait.Seconds())
			}
		}
		defer func() { <-t.writer }()
		if err := flockDir(ctx, op, t.dirFD, t.dir, t.lockWait, deadline); err != nil {
			return err
		}
		defer unlockDir(t.dirFD)
		if err := t.checkStillOurs(op); err != nil {
			return err
		}
		return f()
	})
}

// checkStillOurs refuses a write once a `load` of another build took the
// maps over since Open (ABI 3 pins are adopted in place as ABI 4's): this
// table must not write entries the programs now read another way.
func (t *Table) checkStillOurs(op string) error {
	if t.config == nil {
		return nil
	}
	cfg, err := readNodeConfig(t.config)
	if err != nil {
		return sysError(op, err)
	}
	if cfg.abiVersion != abiVersion {
		return newError(ErrInternal, op, "the maps at %s were taken over by a nodeport of map ABI v%d since this "+
			"table was opened (this one uses v%d): open it again with that nodeport's package", t.dir,
			cfg.abiVersion, abiVersion)
	}
	return nil
}

func mapError(op, what string, err error) *Error {
	return sysError(op, fmt.Errorf("%s: %w", what, err))
}

// lookup reads one entry; ok false when the port is not mapped for that
// family.
func (t *Table) lookup(k entryKey) (e entry, id uint64, ok bool, err error) {
	v, err := t.ports.LookupBytes(portKey(k))
	if err != nil || v == nil {
		return entry{}, 0, false, err
	}
	e, id = parseBackend(k.nodePort, v)
	return e, id, true, nil
}

func (t *Table) put(e entry) error {
	return t.ports.Update(portKey(e.key()), backendValue(e), ebpf.UpdateAny)
}

func (t *Table) deleteEntry(k entryKey) error {
	if err := t.ports.Delete(portKey(k)); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return err
	}
	return nil
}

// forgetCounters: the port's counters start from zero with each owner (the
// programs create the entry again at the next translation), per (port,
// family) key as the C++ library keeps them. Best effort, after the `ports`
// write, as in the C++ library.
func (t *Table) forgetCounters(k entryKey) {
	if t.counters != nil {
		t.counters.Delete(portKey(k))
	}
}

// SetResult is what Set did.
type SetResult struct {
	// The port's earlier backend of the same family, when the set changed
	// it; the zero AddrPort (not IsValid) when the port had none of that
	// family or kept its backend.
	Replaced netip.AddrPort
	Ended    EndedSockets
}

// Set maps m.Proto/m.Port to m.Backend for m.Owner, replacing whatever
// backend of the same family was there (the other family's stays). When
// that changes the backend, the node's connected UDP sockets translated to
// the old one are ended (IPv4 backends only, so far: the socket iterators
// end IPv4 sockets).
func (t *Table) Set(ctx context.Context, m Mapping) (SetResult, error) {
	op := fmt.Sprintf("set %s/%d", m.Proto, m.Port)
	e, err := checkMapping(m)
	if err != nil {
		return SetResult{}, err.(inputError).to(op)
	}
	var result SetResult
	err = t.write(ctx, op, func() error {
		old, _, had, err := t.lookup(e.key())
		if err != nil {
			return mapError(op, "look up "+e.key().String(), err)
		}
		var targets []sockEndTarget
		if had && old.backend != e.backend {
			result.Replaced = old.backend
			targets = udpOnly(targetsOf([]entry{old}))
		}
		notRecorded := t.ender.record(targets)
		if result.Replaced.IsValid() {
			t.rememberReplaced([]entry{old})
		}
		if err := t.put(e); err != nil {
			return mapError(op, "set "+e.key().String(), err)
		}
		if !had || old.owner != e.owner {
			t.forgetCounters(e.key())
		}
		result.Ended = t.endSockets(targets, notRecorded)
		return nil
	})
	return result, err
}

func (t *Table) endSockets(targets []sockEndTarget, notRecorded string) EndedSockets {
	ended := t.ender.finish(t.ports, targets)
	if notRecorded != "" {
		ended.NotChecked = notRecorded
	}
	return ended
}

// Delete unmaps proto/port, both families, of what owner holds: the entries
// of another owner stay; ErrOwnedByOther (naming the holder) when owner
// holds neither and another owner holds one, ErrNotFound when nothing is
// mapped. An empty owner is bad input: use DeleteAny to delete whoever holds
// the port.
func (t *Table) Delete(ctx context.Context, proto string, port uint16, owner string) (EndedSockets, error) {
	op := fmt.Sprintf("delete %s/%d", proto, port)
	if err := checkOwner(owner); err != nil {
		return EndedSockets{}, err.(inputError).to(op)
	}
	return t.remove(ctx, op, proto, port, &owner)
}

// DeleteAny unmaps proto/port, both families, whoever holds it; ErrNotFound
// when nothing is mapped.
func (t *Table) DeleteAny(ctx context.Context, proto string, port uint16) (EndedSockets, error) {
	return t.remove(ctx, fmt.Sprintf("delete %s/%d", proto, port), proto, port, nil)
}

func (t *Table) remove(ctx context.Context, op, proto string, port uint16, owner *string) (EndedSockets, error) {
	p, err := checkNodePort(proto, port)
	if err != nil {
		return EndedSockets{}, err.(inputError).to(op)
	}
	var ended EndedSockets
	err = t.write(ctx, op, func() error {
		// Both families' entries: those of owner (all, without one) go.
		var held []entry
		holder, heldByOther := "", false
		for _, k := range p.keys() {
			e, id, had, err := t.lookup(k)
			if err != nil {
				return mapError(op, "look up "+k.String(), err)
			}
			if !had {
				continue
			}
			if owner != nil && (id != ownerID(*owner) || e.owner != *owner) {
				if !heldByOther {
					holder, heldByOther = e.owner, true
				}
				continue
			}
			held = append(held, e)
		}
		if len(held) == 0 {
			ended = t.endSockets(nil, "")
			if heldByOther {
				return newError(ErrOwnedByOther, op, "%s is held by %s, left alone", p, quote(holder))
			}
			return newError(ErrNotFound, op, "nothing is mapped on %s", p)
		}
		targets := udpOnly(targetsOf(held))
		notRecorded := t.ender.record(targets)
		t.rememberReplaced(held)
		for _, e := range held {
			if err := t.deleteEntry(e.key()); err != nil {
				return mapError(op, "delete "+e.key().String(), err)
			}
			t.forgetCounters(e.key())
		}
		ended = t.endSockets(targets, notRecorded)
		return nil
	})
	return ended, err
}

// DeleteOwnerResult is what DeleteOwner did.
type DeleteOwnerResult struct {
	Removed []Mapping // what the owner held, sorted by protocol, port and family (IPv4 first)
	// Backends of the owner that earlier writes replaced or removed (a
	// redeploy's Set gave the port to the new sandbox), by any API, whose
	// ports do not lead to them again: with Removed, what to Drain before
	// the sandbox is destroyed. Sorted by protocol, port and backend.
	ReplacedEarlier []Mapping
	Ended           EndedSockets
}

// DeleteOwner unmaps every port the owner holds, in both families, each
// checked under the write lock (a port handed to another owner meanwhile
// stays). None held is not an error.
func (t *Table) DeleteOwner(ctx context.Context, owner string) (DeleteOwnerResult, error) {
	op := "delete owner " + owner
	if err := checkOwner(owner); err != nil {
		return DeleteOwnerResult{}, err.(inputError).to("delete owner")
	}
	var result DeleteOwnerResult
	err := t.write(ctx, op, func() error {
		all, err := t.entries()
		if err != nil {
			return mapError(op, "read ports map", err)
		}
		var held []entry
		for _, e := range all {
			if e.id == ownerID(owner) && e.owner == owner {
				held = append(held, e.entry)
			}
		}
		targets := udpOnly(targetsOf(held))
		notRecorded := t.ender.record(targets)
		// Taken while the owner still holds its ports: one it was given
		// back (replaced, then set to it again) is in Removed, not here too.
		result.ReplacedEarlier = t.takeReplaced(owner)
		for _, e := range held { // in list order: by protocol, port and family
			if err := t.deleteEntry(e.key()); err != nil {
				return mapError(op, "delete "+e.key().String(), err)
			}
			t.forgetCounters(e.key())
			result.Removed = append(result.Removed, e.mapping())
		}
		result.Ended = t.endSockets(targets, notRecorded)
		return nil
	})
	return result, err
}

type storedEntry struct {
	entry
	id uint64
}

// allKeys walks every key of m (a walk that a concurrent delete restarts
// may give a key twice: callers dedupe). On an error, the keys read so far.
func allKeys(m *ebpf.Map) ([][]byte, error) {
	var keys [][]byte
	var prev interface{} // untyped nil: the first key
	for {
		next, err := m.NextKeyBytes(prev)
		if err != nil {
			return keys, err
		}
		if next == nil {
			return keys, nil
		}
		keys = append(keys, next)
		prev = next
	}
}

// entries: every mapping, sorted by protocol, port and family (IPv4
// first), each once.
func (t *Table) entries() ([]storedEntry, error) {
	raw, err := allKeys(t.ports)
	if err != nil {
		return nil, err
	}
	keys := make([]entryKey, 0, len(raw))
	for _, k := range raw {
		keys = append(keys, parsePortKey(k))
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].less(keys[j]) })
	var out []storedEntry
	for i, k := range keys {
		if i > 0 && keys[i-1] == k {
			continue // a walk restarted by a delete gives a key twice
		}
		e, id, ok, err := t.lookup(k)
		if err != nil {
			return nil, err
		}
		if ok { // not ok: removed since the walk
			out = append(out, storedEntry{e, id})
		}
	}
	return out, nil
}

// Get returns a mapping of proto/port: the IPv4 one when there is one, else
// the IPv6 one; ErrNotFound when there is none. GetAll returns both.
func (t *Table) Get(proto string, port uint16) (Mapping, error) {
	all, err := t.GetAll(proto, port)
	if err != nil {
		return Mapping{}, err
	}
	return all[0], nil
}

// GetAll returns the mappings of proto/port, one per family (IPv4 first);
// ErrNotFound when there is none.
func (t *Table) GetAll(proto string, port uint16) ([]Mapping, error) {
	op := fmt.Sprintf("get %s/%d", proto, port)
	p, err := checkNodePort(proto, port)
	if err != nil {
		return nil, err.(inputError).to(op)
	}
	var out []Mapping
	err = t.read(op, func() error {
		for _, k := range p.keys() {
			e, _, ok, err := t.lookup(k)
			if err != nil {
				return mapError(op, "look up "+k.String(), err)
			}
			if ok {
				out = append(out, e.mapping())
			}
		}
		if len(out) == 0 {
			return newError(ErrNotFound, op, "nothing is mapped on %s", p)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// List returns every mapping, sorted by protocol, port and family (IPv4
// first).
func (t *Table) List() ([]Mapping, error) {
	var out []Mapping
	err := t.read("list", func() error {
		all, err := t.entries()
		if err != nil {
			return mapError("list", "read ports map", err)
		}
		for _, e := range all {
			out = append(out, e.mapping())
		}
		return nil
	})
	return out, err
}
