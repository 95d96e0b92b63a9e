package nodeport

import (
	"context"
	"encoding/binary"
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// Flow entries a test writes into the loaded flow tables, laid out as the TC
// programs write them (include/nodeport/abi.h), and removes afterwards.
type seededFlows struct {
	t       *testing.T
	tables  map[string]*ebpf.Map
	written []func()
}

func seedFlows(t *testing.T) *seededFlows {
	t.Helper()
	dirFD, err := openPinDir("test", pinDir(t))
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dirFD)
	s := &seededFlows{t: t, tables: map[string]*ebpf.Map{}}
	for _, shape := range []mapShape{flowsShape, halfOpenFlowsShape, udpFlowsShape} {
		m, err := openMap("test", dirFD, pinDir(t), shape)
		if err != nil {
			t.Fatal(err)
		}
		s.tables[shape.name] = m
	}
	t.Cleanup(func() {
		for _, undo := range s.written {
			undo()
		}
		for _, m := range s.tables {
			m.Close()
		}
	})
	return s
}

func monotonicNow(t *testing.T) uint64 {
	now, err := bpfClockNow()
	if err != nil {
		t.Fatal(err)
	}
	return now
}

func flowKeyBytesOf(proto uint8, client, peer netip.AddrPort, dir uint8) []byte {
	k := make([]byte, flowKeyBytes)
	putFlowAddr(k[0:], client.Addr())
	putFlowAddr(k[16:], peer.Addr())
	binary.BigEndian.PutUint16(k[32:], client.Port())
	binary.BigEndian.PutUint16(k[34:], peer.Port())
	k[36], k[37], k[38] = proto, dir, flowFamily(client.Addr())
	return k
}

// putFlowAddr writes an address as flow entries hold it: IPv6, or IPv4 in
// the first 4 bytes.
func putFlowAddr(b []byte, addr netip.Addr) {
	if addr.Is4() {
		a := addr.As4()
		copy(b, a[:])
		return
	}
	a := addr.As16()
	copy(b, a[:])
}

func flowFamily(addr netip.Addr) byte {
	if addr.Is4() {
		return familyIPv4
	}
	return familyIPv6
}

// put writes key -> value into `table` and removes it at cleanup (or by the
// returned function, earlier).
func (s *seededFlows) put(table string, key, value []byte) func() {
	s.t.Helper()
	m := s.tables[table]
	if err := m.Put(key, value); err != nil {
		s.t.Fatalf("seed %s: %v", table, err)
	}
	undo := func() { m.Delete(key) }
	s.written = append(s.written, undo)
	return undo
}

// flow writes a flow's entry towards the backend: client -> node, translated
// to backend, in `state`, last seen `age` ago.
func (s *seededFlows) flow(proto uint8, client, node, backend netip.AddrPort, state uint8, age time.Duration) func() {
	v := make([]byte, flowBytes)
	putFlowAddr(v[0:], backend.Addr())
	binary.BigEndian.PutUint16(v[16:], backend.Port())
	v[18], v[19] = state, flowFamily(backend.Addr())
	binary.NativeEndian.PutUint64(v[24:], monotonicNow(s.t)-uint64(age))
	table := flowsShape.name
	if proto == ipprotoUDP {
		table = udpFlowsShape.name
	}
	return s.put(table, flowKeyBytesOf(proto, client, node, flowToBackend), v)
}

// handshake writes a handshake in half_open_flows, under its reply key.
func (s *seededFlows) handshake(client, node, backend netip.AddrPort) func() {
	v := make([]byte, halfOpenBytes)
	putFlowAddr(v[0:], node.Addr())
	binary.BigEndian.PutUint16(v[16:], node.Port())
	v[18], v[19] = 3, flowFamily(node.Addr()) // NP_FLOW_SYN_SENT
	binary.NativeEndian.PutUint64(v[24:], monotonicNow(s.t))
	return s.put(halfOpenFlowsShape.name, flowKeyBytesOf(unix.IPPROTO_TCP, client, backend, 2), v)
}

func addrPort(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// What Drain counts: live flows towards the backend (TCP open or closing,
// UDP, a handshake) once each; not another backend's, not an expired one.
func TestDrainCountsLiveFlowsOfTheBackend(t *testing.T) {
	table := open(t)
	seed := seedFlows(t)
	node, old, other := addrPort("10.99.0.1:7100"), addrPort("10.8.0.50:7100"), addrPort("10.8.0.51:7100")
	seed.flow(unix.IPPROTO_TCP, addrPort("10.99.7.1:40001"), node, old, 1, 0)
	seed.flow(unix.IPPROTO_TCP, addrPort("10.99.7.1:40002"), node, old, flowFinWait, 0)
	seed.flow(ipprotoUDP, addrPort("10.99.7.1:40003"), node, old, 1, 0)
	seed.handshake(addrPort("10.99.7.1:40004"), node, old)
	// The same connection in both tables, its handshake moving to flows.
	seed.handshake(addrPort("10.99.7.1:40001"), node, old)
	seed.flow(unix.IPPROTO_TCP, addrPort("10.99.7.1:40005"), node, other, 1, 0)
	seed.flow(ipprotoUDP, addrPort("10.99.7.1:40006"), node, old, 1, 10*time.Minute) // idle past 60 s

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	left, err := table.Drain(ctx, old)
	if !errors.Is(err, ErrTimedOut) {
		t.Errorf("Drain with connections left: %v, want ErrTimedOut", err)
	}
	if left.External != 4 || left.Local != 0 || left.LocalNotCounted != "" {
		t.Errorf("Drain counted %+v, want 4 external (TCP open, TCP closing, UDP, a handshake), 0 local, "+
			"the node's sockets counted", left)
	}
}

// The same for an IPv6 backend, whose flows hold 16-byte addresses.
func TestDrainCountsLiveFlowsOfAnIpv6Backend(t *testing.T) {
	table := open(t)
	seed := seedFlows(t)
	node, old := addrPort("[2001:db8::1]:7101"), addrPort("[fd00:8::50]:7101")
	seed.flow(unix.IPPROTO_TCP, addrPort("[2001:db8:7::1]:40001"), node, old, 1, 0)
	seed.flow(ipprotoUDP, addrPort("[2001:db8:7::1]:40002"), node, old, 1, 0)
	seed.handshake(addrPort("[2001:db8:7::1]:40003"), node, old)
	seed.flow(unix.IPPROTO_TCP, addrPort("[2001:db8:7::1]:40004"), node, addrPort("[fd00:8::51]:7101"), 1, 0)

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	left, err := table.Drain(ctx, old)
	if !errors.Is(err, ErrTimedOut) || left.External != 3 {
		t.Errorf("Drain of an IPv6 backend: %+v, %v; want 3 external (TCP, UDP, a handshake) and ErrTimedOut", left, err)
	}
}

// Drain returns when the last connection goes, with nothing left; when its
// context ends first, with what was left, ErrTimedOut and the context's error.
func TestDrainWaitsForTheLastConnection(t *testing.T) {
	table := open(t)
	seed := seedFlows(t)
	node, old := addrPort("10.99.0.1:7101"), addrPort("10.8.0.52:7101")
	closeFlow := seed.flow(unix.IPPROTO_TCP, addrPort("10.99.7.2:40001"), node, old, 1, 0)

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	left, err := table.Drain(ctx, old)
	cancel()
	if !errors.Is(err, ErrTimedOut) || !errors.Is(err, context.DeadlineExceeded) || left.External != 1 {
		t.Errorf("Drain past its deadline: %+v, %v; want 1 external left, ErrTimedOut and DeadlineExceeded", left, err)
	}

	// Cancelled while waiting: returns with context.Canceled (not at the
	// hour-long deadline).
	ctx, cancel = context.WithTimeout(context.Background(), time.Hour)
	time.AfterFunc(200*time.Millisecond, cancel)
	left, err = table.Drain(ctx, old)
	if !errors.Is(err, ErrTimedOut) || !errors.Is(err, context.Canceled) || left.External != 1 {
		t.Errorf("Drain cancelled: %+v, %v; want 1 external left, ErrTimedOut and Canceled", left, err)
	}

	// The connection closes while Drain waits.
	time.AfterFunc(300*time.Millisecond, closeFlow)
	ctx, cancel = context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	left, err = table.Drain(ctx, old)
	if err != nil || left.Total() != 0 {
		t.Errorf("Drain while the last connection closes: %+v, %v; want drained", left, err)
	}
}

func TestDrainRefusesBadInput(t *testing.T) {
	table := open(t)
	for _, bad := range []string{"127.0.0.1:80", "10.8.0.53:0", "[::ffff:10.8.0.53]:80", "[fe80::1]:80"} {
		if _, err := table.Drain(context.Background(), addrPort(bad)); !errors.Is(err, ErrBadInput) {
			t.Errorf("Drain of %s: %v, want ErrBadInput", bad, err)
		}
	}
	closed, err := Open(pinDir(t))
	if err != nil {
		t.Fatal(err)
	}
	closed.Close()
	if _, err := closed.Drain(context.Background(), addrPort("10.8.0.53:80")); !errors.Is(err, ErrClosed) {
		t.Errorf("Drain on a closed table: %v, want ErrClosed", err)
	}
}

// DeleteOwner names, beside what it removed, the owner's backends that
// earlier writes replaced or removed, once, and not one given back since.
func TestDeleteOwnerNamesBackendsReplacedEarlier(t *testing.T) {
	table := open(t)
	ctx := context.Background()
	for _, step := range []struct {
		m   Mapping
		del bool
	}{
		{mapping("tcp", 7200, "10.8.0.60:7200", "sb-old"), false},
		{mapping("tcp", 7200, "10.8.0.61:7200", "sb-new"), false}, // the redeploy
		{mapping("udp", 7201, "10.8.0.60:7201", "sb-old"), false},
		{Mapping{Proto: "udp", Port: 7201}, true}, // removed by someone else
		{mapping("tcp", 7202, "10.8.0.60:7202", "sb-old"), false},
		{mapping("tcp", 7202, "10.8.0.61:7202", "sb-new"), false},
		{mapping("tcp", 7202, "10.8.0.60:7202", "sb-old"), false}, // given back
	} {
		var err error
		if step.del {
			_, err = table.DeleteAny(ctx, step.m.Proto, step.m.Port)
		} else {
			_, err = table.Set(ctx, step.m)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	r, err := table.DeleteOwner(ctx, "sb-old")
	if err != nil {
		t.Fatal(err)
	}
	want := "removed [tcp/7202 10.8.0.60:7202] replaced earlier [tcp/7200 10.8.0.60:7200 udp/7201 10.8.0.60:7201]"
	if got := "removed " + rows(r.Removed) + " replaced earlier " + rows(r.ReplacedEarlier); got != want {
		t.Errorf("DeleteOwner: %s, want %s", got, want)
	}
	if r, err = table.DeleteOwner(ctx, "sb-old"); err != nil || len(r.Removed)+len(r.ReplacedEarlier) != 0 {
		t.Errorf("DeleteOwner again: %+v, %v; want nothing (the records were taken)", r, err)
	}
}

func rows(ms []Mapping) string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Proto+"/"+strconv.Itoa(int(m.Port))+" "+m.Backend.String())
	}
	return "[" + strings.Join(out, " ") + "]"
}
