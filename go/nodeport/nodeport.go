// Package nodeport maps node ports to sandbox backends in the port table of
// a loaded nodeport, through its C ABI (include/nodeport/nodeport.h) and so
// with the checks of the C++ library and the CLI: every write validates its
// input and changes nothing when it refuses.
//
// Building needs libnodeport through pkg-config: an installed nodeport.pc, or
// PKG_CONFIG_PATH=<build>/pkgconfig for a build tree (nodeport-uninstalled.pc).
//
// A Table may be used from many goroutines: writers serialize on a mutex and
// on the pin directory's flock, shared with the CLI and other processes, and
// wait at most 5 s for another writer (then ErrBusy).
package nodeport

/*
#cgo pkg-config: nodeport
#include <nodeport/nodeport.h>
*/
import "C"

import (
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"unsafe"
)

// Mapping is one node port and its backend. Proto is "tcp" or "udp"; Port and
// the backend's port are 1-65535; Backend's address is IPv4 unicast, not
// loopback; Owner is "" (none) or 1-255 printable, non-blank ASCII characters.
type Mapping struct {
	Proto   string
	Port    uint16
	Backend netip.AddrPort
	Owner   string
}

// The errors every failure wraps, for errors.Is. The *Error itself carries
// the library's message ("bad input: backend address: ...").
var (
	ErrBadInput     = errors.New("bad input")
	ErrNotLoaded    = errors.New("nodeport is not loaded")
	ErrNotFound     = errors.New("not mapped")
	ErrOwnedByOther = errors.New("held by another owner")
	ErrPermission   = errors.New("permission denied")
	ErrBusy         = errors.New("the pin directory's lock is busy")
	ErrInternal     = errors.New("internal error")
	ErrClosed       = errors.New("table is closed")
)

// Error is a failed call: the operation, the C ABI's code and its message.
type Error struct {
	Op      string // "set tcp/6667", "open /sys/fs/bpf/nodeport", ...
	Code    int    // a NODEPORT_E* code, 0 for ErrClosed
	Message string
	kind    error
}

func (e *Error) Error() string { return "nodeport: " + e.Op + ": " + e.Message }
func (e *Error) Unwrap() error { return e.kind }

func kindOf(code C.int) error {
	switch code {
	case C.NODEPORT_EBADINPUT:
		return ErrBadInput
	case C.NODEPORT_ENOTLOADED:
		return ErrNotLoaded
	case C.NODEPORT_ENOTFOUND:
		return ErrNotFound
	case C.NODEPORT_EOWNED:
		return ErrOwnedByOther
	case C.NODEPORT_EPERM:
		return ErrPermission
	case C.NODEPORT_EBUSY:
		return ErrBusy
	}
	return ErrInternal
}

func badInput(op, format string, args ...any) error {
	return &Error{Op: op, Code: int(C.NODEPORT_EBADINPUT), Message: "bad input: " + fmt.Sprintf(format, args...), kind: ErrBadInput}
}

// call runs one C call and reads its message on the same OS thread: the C
// ABI keeps it thread-local, and a goroutine may move between calls.
// The operation's name is built only for an error: formatting it on every
// call cost a fifth of a Set.
func call(op func() string, f func() C.int) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	rc := f()
	if rc == C.NODEPORT_OK {
		return nil
	}
	return &Error{Op: op(), Code: int(rc), Message: C.GoString(C.nodeport_last_error()), kind: kindOf(rc)}
}

func name(s string) func() string { return func() string { return s } }

func portOp(verb, proto string, port uint16) func() string {
	return func() string { return fmt.Sprintf("%s %s/%d", verb, proto, port) }
}

// cString is s as a NUL-terminated C string in Go memory, which C may read
// during the call (cgo's pointer rules: it holds no Go pointers): one cgo
// call per operation, not a malloc and a free per argument. A NUL inside s is
// refused: C would see only the text before it, and an owner cut short is
// another owner.
func cString(op func() string, field, s string) (*C.char, error) {
	if strings.IndexByte(s, 0) >= 0 {
		return nil, badInput(op(), "%s: %q has a NUL byte", field, s)
	}
	b := make([]byte, len(s)+1)
	copy(b, s)
	return (*C.char)(unsafe.Pointer(&b[0])), nil
}

// Table is an open port table.
type Table struct {
	mu sync.RWMutex // Close waits for calls in flight
	np *C.nodeport
}

// Open opens the port table of the nodeport loaded at pinDir ("" for the
// default, /sys/fs/bpf/nodeport). ErrNotLoaded when nothing is loaded there.
func Open(pinDir string) (*Table, error) {
	op := name("open " + pinDir)
	var dir *C.char
	if pinDir != "" {
		var err error
		if dir, err = cString(op, "pin directory", pinDir); err != nil {
			return nil, err
		}
	} else {
		op = name("open the default pin directory")
	}
	var np *C.nodeport
	if err := call(op, func() C.int { return C.nodeport_open(dir, &np) }); err != nil {
		return nil, err
	}
	return &Table{np: np}, nil
}

// Close releases the table; calls after it fail with ErrClosed.
func (t *Table) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.np != nil {
		C.nodeport_close(t.np)
		t.np = nil
	}
	return nil
}

// with runs f on the open handle, holding Close off.
func (t *Table) with(op func() string, f func(np *C.nodeport) error) error {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.np == nil {
		return &Error{Op: op(), Message: ErrClosed.Error(), kind: ErrClosed}
	}
	return f(t.np)
}

// backendIP is the IPv4 text of a backend address; anything else is bad input.
func backendIP(op func() string, backend netip.AddrPort) (string, error) {
	addr := backend.Addr().Unmap()
	if !addr.Is4() {
		return "", badInput(op(), "backend address: %q is not an IPv4 address", backend.Addr().String())
	}
	return addr.String(), nil
}

// Set maps m.Proto/m.Port to m.Backend for m.Owner, replacing whatever was
// there; the node's connected UDP sockets to a replaced backend are ended.
func (t *Table) Set(m Mapping) error {
	op := portOp("set", m.Proto, m.Port)
	ip, err := backendIP(op, m.Backend)
	if err != nil {
		return err
	}
	proto, err := cString(op, "protocol", m.Proto)
	if err != nil {
		return err
	}
	owner, err := cString(op, "owner", m.Owner)
	if err != nil {
		return err
	}
	cip, _ := cString(op, "backend address", ip) // netip's text: no NUL
	return t.with(op, func(np *C.nodeport) error {
		return call(op, func() C.int {
			return C.nodeport_set(np, proto, C.uint16_t(m.Port), cip, C.uint16_t(m.Backend.Port()), owner)
		})
	})
}

// Delete unmaps proto/port. With an owner, only while that owner holds it
// (ErrOwnedByOther otherwise, the entry left alone); "" deletes whatever is
// there. ErrNotFound when nothing was mapped.
func (t *Table) Delete(proto string, port uint16, owner string) error {
	op := portOp("delete", proto, port)
	cproto, err := cString(op, "protocol", proto)
	if err != nil {
		return err
	}
	var cowner *C.char // NULL: any owner
	if owner != "" {
		if cowner, err = cString(op, "owner", owner); err != nil {
			return err
		}
	}
	return t.with(op, func(np *C.nodeport) error {
		return call(op, func() C.int { return C.nodeport_del(np, cproto, C.uint16_t(port), cowner) })
	})
}

// DeleteOwner unmaps every port the owner holds; none is not an error.
func (t *Table) DeleteOwner(owner string) error {
	op := name("delete owner " + owner)
	cowner, err := cString(op, "owner", owner)
	if err != nil {
		return err
	}
	return t.with(op, func(np *C.nodeport) error {
		return call(op, func() C.int { return C.nodeport_del_owner(np, cowner) })
	})
}

func goMapping(m *C.nodeport_mapping) (Mapping, error) {
	addr, err := netip.ParseAddr(C.GoString(&m.backend_ip[0]))
	if err != nil {
		return Mapping{}, err
	}
	return Mapping{
		Proto:   C.GoString(&m.proto[0]),
		Port:    uint16(m.port),
		Backend: netip.AddrPortFrom(addr, uint16(m.backend_port)),
		Owner:   C.GoString(&m.owner[0]),
	}, nil
}

// Get returns the mapping of proto/port; ErrNotFound when there is none.
func (t *Table) Get(proto string, port uint16) (Mapping, error) {
	op := portOp("get", proto, port)
	cproto, err := cString(op, "protocol", proto)
	if err != nil {
		return Mapping{}, err
	}
	var out C.nodeport_mapping
	err = t.with(op, func(np *C.nodeport) error {
		return call(op, func() C.int { return C.nodeport_get(np, cproto, C.uint16_t(port), &out) })
	})
	if err != nil {
		return Mapping{}, err
	}
	m, err := goMapping(&out)
	if err != nil {
		return Mapping{}, &Error{Op: op(), Code: int(C.NODEPORT_EINTERNAL), Message: err.Error(), kind: ErrInternal}
	}
	return m, nil
}

// List returns every mapping, sorted by protocol and port.
func (t *Table) List() ([]Mapping, error) {
	op := name("list")
	var out []Mapping
	err := t.with(op, func(np *C.nodeport) error {
		var array *C.nodeport_mapping
		var n C.size_t
		if err := call(op, func() C.int { return C.nodeport_list(np, &array, &n) }); err != nil {
			return err
		}
		defer C.nodeport_free(array)
		if n == 0 {
			return nil
		}
		entries := unsafe.Slice(array, int(n))
		out = make([]Mapping, 0, len(entries))
		for i := range entries {
			m, err := goMapping(&entries[i])
			if err != nil {
				return &Error{Op: op(), Code: int(C.NODEPORT_EINTERNAL), Message: err.Error(), kind: ErrInternal}
			}
			out = append(out, m)
		}
		return nil
	})
	return out, err
}

// fill copies s and its NUL into a C char array, or reports it too long.
func fill(dst []C.char, s string) bool {
	if len(s) >= len(dst) || strings.IndexByte(s, 0) >= 0 {
		return false
	}
	for i := 0; i < len(s); i++ {
		dst[i] = C.char(s[i])
	}
	dst[len(s)] = 0
	return true
}

// Sync makes the table equal to want (each node port at most once, every
// entry valid, else ErrBadInput and nothing changed): adds and overwrites
// first, removals last, under the write lock.
func (t *Table) Sync(want []Mapping) error {
	op := name("sync")
	entries := make([]C.nodeport_mapping, len(want))
	for i, m := range want {
		ip, err := backendIP(op, m.Backend)
		if err != nil {
			return badInput(op(), "entry %d: backend address: %q is not an IPv4 address", i, m.Backend.Addr().String())
		}
		e := &entries[i]
		if !fill(e.proto[:], m.Proto) {
			return badInput(op(), "entry %d: protocol: %q is not supported (tcp or udp)", i, m.Proto)
		}
		if !fill(e.owner[:], m.Owner) {
			return badInput(op(), "entry %d: owner: must be up to 255 characters without NUL", i)
		}
		fill(e.backend_ip[:], ip)
		e.port = C.uint16_t(m.Port)
		e.backend_port = C.uint16_t(m.Backend.Port())
	}
	return t.with(op, func(np *C.nodeport) error {
		var first *C.nodeport_mapping
		if len(entries) > 0 {
			first = &entries[0]
		}
		return call(op, func() C.int { return C.nodeport_sync(np, first, C.size_t(len(entries))) })
	})
}
