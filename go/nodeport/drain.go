package nodeport

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// Connections that nodeport translated to one backend, counted as the C++
// library counts them (loader/flows/connections.cpp), read only.
type Connections struct {
	// External flows: TCP from the SYN until the final ACK after FIN both
	// ways, or an RST; UDP until the flow idles out.
	External int
	// The node's sockets the socket hooks translated: TCP until closed,
	// connected UDP. Counted only in the network namespace nodeport was
	// loaded in, with the counting iterators loaded (LocalNotCounted says
	// why not).
	Local           int
	LocalNotCounted string
}

// Total is External + Local.
func (c Connections) Total() int { return c.External + c.Local }

// drainPoll is how often Drain counts: a drain ends within a tenth of a
// second of the last close, as the CLI's.
const drainPoll = 100 * time.Millisecond

// Drain waits until no connection nodeport translated reaches backend, or ctx
// ends, counting every 100 ms (at least once). Call it after Delete,
// DeleteOwner or a Set that replaced backend, before destroying the old
// sandbox. It changes nothing and takes no lock, so writers go on meanwhile.
// It returns the last count: with a nil error when none is left; when ctx
// ended first, with an error wrapping ErrTimedOut and the context's error.
// An IPv6 backend is taken: its external flows as an IPv4 backend's, its
// local connections by the IPv6 counting iterators (with pins of a load
// before them, LocalNotCounted says they were not counted).
func (t *Table) Drain(ctx context.Context, backend netip.AddrPort) (Connections, error) {
	op := "drain " + backend.String()
	err := checkBackend(backend)
	if err != nil {
		return Connections{}, err.(inputError).to(op)
	}
	var left Connections
	err = t.read(op, func() error {
		counter, err := openConnectionCounter(op, t.dirFD, t.dir)
		if err != nil {
			return err
		}
		defer counter.close()
		ticker := time.NewTicker(drainPoll)
		defer ticker.Stop()
		for {
			if left, err = counter.count(op, backend); err != nil {
				return err
			}
			if left.Total() == 0 {
				return nil
			}
			select {
			case <-ctx.Done():
				return &Error{Op: op, Message: fmt.Sprintf("%d external and %d local connections left when the wait "+
					"ended", left.External, left.Local), kind: ErrTimedOut, cause: ctx.Err()}
			case <-ticker.C:
			}
		}
	})
	return left, err
}

// The pinned maps and iterators a count reads.
type connectionCounter struct {
	flows, halfOpen, udpFlows, timeouts *ebpf.Map
	countTCP, countUDP                  int // -1: not loaded
	countTCP6, countUDP6                int // np_count6_*: -1 also with pins of a load before them
	netnsCookie                         uint64
}

var (
	flowsShape         = mapShape{"flows", ebpf.LRUHash, flowKeyBytes, flowBytes}
	halfOpenFlowsShape = mapShape{"half_open_flows", ebpf.LRUHash, flowKeyBytes, halfOpenBytes}
	udpFlowsShape      = mapShape{"udp_flows", ebpf.LRUHash, flowKeyBytes, flowBytes}
	flowTimeoutsShape  = mapShape{"flow_timeouts", ebpf.Array, 4, 32}
)

func openConnectionCounter(op string, dirFD int, dir string) (*connectionCounter, error) {
	c := &connectionCounter{countTCP: -1, countUDP: -1, countTCP6: -1, countUDP6: -1}
	for _, m := range []struct {
		to    **ebpf.Map
		shape mapShape
	}{{&c.flows, flowsShape}, {&c.halfOpen, halfOpenFlowsShape}, {&c.udpFlows, udpFlowsShape},
		{&c.timeouts, flowTimeoutsShape}} {
		var err error
		if *m.to, err = openMap(op, dirFD, dir, m.shape); err != nil {
			c.close()
			return nil, err
		}
	}
	config, err := openMap(op, dirFD, dir, nodeConfigShape)
	if err != nil {
		c.close()
		return nil, err
	}
	cfg, err := readNodeConfig(config)
	config.Close()
	if err != nil {
		c.close()
		return nil, sysError(op, err)
	}
	c.netnsCookie = cfg.netnsCookie
	if linksFD, err := unix.Openat(dirFD, "links", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0); err == nil {
		c.countTCP, _ = objGet(linksFD, "np_count_tcp")
		c.countUDP, _ = objGet(linksFD, "np_count_udp")
		c.countTCP6, _ = objGet(linksFD, "np_count6_tcp")
		c.countUDP6, _ = objGet(linksFD, "np_count6_udp")
		unix.Close(linksFD)
	}
	return c, nil
}

func (c *connectionCounter) close() {
	for _, m := range []*ebpf.Map{c.flows, c.halfOpen, c.udpFlows, c.timeouts} {
		if m != nil {
			m.Close()
		}
	}
	for _, fd := range []int{c.countTCP, c.countUDP, c.countTCP6, c.countUDP6} {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
}

func (c *connectionCounter) count(op string, backend netip.AddrPort) (Connections, error) {
	external, err := c.countExternal(backend)
	if err != nil {
		return Connections{}, sysError(op, err)
	}
	local, why := c.countLocal(backend)
	return Connections{External: external, Local: local, LocalNotCounted: why}, nil
}

// countExternal: the live flows whose backend is `backend`, by the rules of
// list_flows (loader/flows/flows.cpp): one entry towards the backend per flow, and
// each handshake; an expired entry is inert, waiting for the LRU.
func (c *connectionCounter) countExternal(backend netip.AddrPort) (int, error) {
	raw, err := c.timeouts.LookupBytes(uint32(0))
	if err != nil || len(raw) < flowTimeoutsBytes {
		return 0, fmt.Errorf("read %s: %v", flowTimeoutsShape.name, err)
	}
	to := parseFlowTimeouts(raw)
	now, err := bpfClockNow()
	if err != nil {
		return 0, err
	}
	seen := map[flowID]bool{}
	for _, table := range []struct {
		m     *ebpf.Map
		shape mapShape
	}{{c.flows, flowsShape}, {c.halfOpen, halfOpenFlowsShape}, {c.udpFlows, udpFlowsShape}} {
		var key, value []byte
		it := table.m.Iterate()
		for it.Next(&key, &value) {
			f, ok := parseFlowEntry(key, value, to)
			if ok && now <= f.lastSeen+f.lifetime && f.backend == backend {
				seen[f.id] = true
			}
		}
		if err := it.Err(); err != nil {
			return 0, fmt.Errorf("read %s: %w", table.shape.name, err)
		}
	}
	return len(seen), nil
}

// countLocal: the node's sockets translated to `backend`, from the counting
// iterators of its family: np_local_conn records, np_local_conn6 for an IPv6
// backend; with why they were not counted.
func (c *connectionCounter) countLocal(backend netip.AddrPort) (int, string) {
	const notCounted = "the node's connections were not counted: "
	if c.countTCP < 0 || c.countUDP < 0 {
		return 0, notCounted + "the counting iterators are not loaded (run `nodeport load` of this version; they " +
			"need Linux >= 6.5)"
	}
	// The iterators walk the sockets of the calling thread's network namespace.
	if cookie, err := currentNetnsCookie(); err != nil || cookie != c.netnsCookie {
		return 0, notCounted + "this runs outside the network namespace nodeport was loaded in"
	}
	links, size := []int{c.countTCP, c.countUDP}, localConnBytes
	addr := backend.Addr().AsSlice() // the record's first bytes: 4 of np_local_conn, 16 of np_local_conn6
	if backend.Addr().Is6() {
		if c.countTCP6 < 0 || c.countUDP6 < 0 {
			return 0, "the node's connections to IPv6 backends were not counted: the loaded programs predate it " +
				"(run `nodeport load` of this version)"
		}
		links, size = []int{c.countTCP6, c.countUDP6}, localConn6Bytes
	}
	n := 0
	for _, link := range links {
		out, err := readIterator(link)
		if err != nil {
			return 0, notCounted + err.Error()
		}
		for at := 0; at+size <= len(out); at += size {
			r := out[at : at+size]
			if bytes.Equal(r[:len(addr)], addr) && binary.BigEndian.Uint16(r[len(addr):]) == backend.Port() {
				n++
			}
		}
	}
	return n, ""
}
