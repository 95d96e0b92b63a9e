package nodeport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// Ending the node's sockets that a remap left talking to the old backend,
// through the socket iterators `nodeport load` pinned (bpf/sock_end.bpf.c),
// with loader/datapath/sock_end.cpp's protocol, shared by every writer under the pin
// directory's lock: a write records what it replaces in `sock_end_targets`
// before it changes `ports`, then reads each protocol's iterator once, then
// forgets the targets walked. A write killed in between leaves its targets
// to the next write, which walks them too.

// EndedSockets is what a write did to the node's sockets that still talked
// to a backend it replaced or removed: connected UDP sockets (never TCP
// connections, which keep their sandbox until they close). An ended socket's
// application gets ECONNABORTED and connects again, to the current backend.
type EndedSockets struct {
	Count      int    // sockets ended
	NotChecked string // why the node's sockets were not (all) checked; "" when they were
	Resumed    int    // backends an interrupted earlier write had recorded, walked by this one
}

const soNetnsCookie = 71 // SO_NETNS_COOKIE

type socketEnder struct {
	config      *ebpf.Map // node_config, whose flags say whether targets may be recorded
	targets     *ebpf.Map // nil when the iterators are not loaded
	targets6    *ebpf.Map // sock_end_targets6; nil with pins of a load before it (IPv6 targets not recorded)
	udpLink     int
	tcpLink     int
	netnsCookie uint64
	unavailable string // why nothing can be ended; "" when it can
}

func openSocketEnder(op string, dirFD int, dir string, cfg nodeConfig) (*socketEnder, error) {
	s := &socketEnder{udpLink: -1, tcpLink: -1, netnsCookie: cfg.netnsCookie}
	targets, err := openMap(op, dirFD, dir, sockEndTargetsShape)
	var e *Error
	if err != nil && !(errors.As(err, &e) && errors.Is(e, ErrNotLoaded)) {
		return nil, err // there, but not our map
	}
	linksFD, lerr := unix.Openat(dirFD, "links", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if lerr == nil {
		s.udpLink, _ = objGet(linksFD, "np_end_udp")
		s.tcpLink, _ = objGet(linksFD, "np_end_tcp")
		unix.Close(linksFD)
	}
	if targets == nil || s.udpLink < 0 || s.tcpLink < 0 {
		s.close()
		if targets != nil {
			targets.Close()
		}
		s.unavailable = "socket iterators not loaded (bpf_sock_destroy needs Linux >= 6.5; see nodeport load)"
		return s, nil
	}
	config, err := openMap(op, dirFD, dir, nodeConfigShape)
	if err != nil {
		targets.Close()
		s.close()
		return nil, err
	}
	s.targets, s.config = targets, config
	if s.targets6, err = openMap(op, dirFD, dir, sockEndTargets6Shape); err != nil {
		s.targets6 = nil
		if !(errors.As(err, &e) && errors.Is(e, ErrNotLoaded)) {
			s.close()
			return nil, err
		}
	}
	return s, nil
}

// configFlagsOffset: np_config.flags, after the __u32 abi_version.
const configFlagsOffset = 4

// mayHoldTargets: NP_CONFIG_SOCK_END_PENDING is set (or node_config cannot
// be read: then the map is walked). While it is clear, nothing is recorded
// and no write walks the empty map, every bucket of which a next-key visits.
func (s *socketEnder) mayHoldTargets() bool {
	v, err := s.config.LookupBytes(uint32(0))
	return err != nil || len(v) < configFlagsOffset+4 ||
		binary.NativeEndian.Uint32(v[configFlagsOffset:])&configSockEndPending != 0
}

// markPending sets or clears NP_CONFIG_SOCK_END_PENDING, under the pin
// directory's lock like every write of the targets.
func (s *socketEnder) markPending(pending bool) error {
	v, err := s.config.LookupBytes(uint32(0))
	if err != nil || len(v) < configFlagsOffset+4 {
		return fmt.Errorf("read node_config: %v", err)
	}
	flags := binary.NativeEndian.Uint32(v[configFlagsOffset:])
	want := flags &^ configSockEndPending
	if pending {
		want = flags | configSockEndPending
	}
	if want == flags {
		return nil
	}
	binary.NativeEndian.PutUint32(v[configFlagsOffset:], want)
	if err := s.config.Update(uint32(0), v, ebpf.UpdateExist); err != nil {
		return fmt.Errorf("write node_config: %w", err)
	}
	return nil
}

func (s *socketEnder) close() {
	if s.udpLink >= 0 {
		unix.Close(s.udpLink)
	}
	if s.tcpLink >= 0 {
		unix.Close(s.tcpLink)
	}
	s.udpLink, s.tcpLink = -1, -1
	if s.targets != nil {
		s.targets.Close()
		s.targets = nil
	}
	if s.targets6 != nil {
		s.targets6.Close()
		s.targets6 = nil
	}
	if s.config != nil {
		s.config.Close()
		s.config = nil
	}
}

// record puts the targets a write will end into the map before the write
// changes `ports`. "" when done (or nothing to do); otherwise why not, for
// NotChecked: ending sockets never refuses a mapping.
func (s *socketEnder) record(targets []sockEndTarget) string {
	if len(targets) == 0 || s.unavailable != "" {
		return ""
	}
	// Marked first: a write killed after recording leaves its targets found.
	if err := s.markPending(true); err != nil {
		return "record the socket end targets: " + err.Error()
	}
	for _, t := range targets {
		m := s.mapOf(t)
		if m == nil {
			return "the node's IPv6 sockets were not checked: the pins predate sock_end_targets6 (run this " +
				"nodeport's load)"
		}
		if err := m.Update(t.key(), []byte{0}, ebpf.UpdateAny); err != nil {
			return "record the socket end targets: " + err.Error()
		}
	}
	return ""
}

// pending: every target recorded now.
func (s *socketEnder) pending() ([]sockEndTarget, error) {
	var out []sockEndTarget
	if !s.mayHoldTargets() {
		return out, nil
	}
	keys, err := allKeys(s.targets)
	if err != nil {
		return nil, fmt.Errorf("walk map sock_end_targets: %w", err)
	}
	if s.targets6 != nil {
		keys6, err := allKeys(s.targets6)
		if err != nil {
			return nil, fmt.Errorf("walk map sock_end_targets6: %w", err)
		}
		keys = append(keys, keys6...)
	}
	seen := map[sockEndTarget]bool{}
	for _, k := range keys {
		if t := parseSockEndTarget(k); !seen[t] { // a walk restarted by a delete gives a key twice
			seen[t] = true
			out = append(out, t)
		}
	}
	return out, nil
}

// runIterator reads an iterator to its end: one byte per socket it ended.
func runIterator(linkFD int) (int, error) {
	out, err := readIterator(linkFD)
	return len(out), err
}

// readIterator runs the iterator behind a pinned link and returns its output.
func readIterator(linkFD int) ([]byte, error) {
	attr := struct{ linkFD, flags uint32 }{linkFD: uint32(linkFD)}
	fd, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_ITER_CREATE, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	if errno != 0 {
		return nil, fmt.Errorf("start socket iterator: %w", errno)
	}
	defer unix.Close(int(fd))
	var out []byte
	buf := make([]byte, 4096)
	for {
		n, err := unix.Read(int(fd), buf)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return out, fmt.Errorf("run socket iterator: %w", err)
		}
		if n == 0 {
			return out, nil
		}
		out = append(out, buf[:n]...)
	}
}

// netnsCookie of the calling thread's network namespace.
func currentNetnsCookie() (uint64, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	var cookie uint64
	size := uint32(unsafe.Sizeof(cookie))
	_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, soNetnsCookie,
		uintptr(unsafe.Pointer(&cookie)), uintptr(unsafe.Pointer(&size)), 0)
	if errno != 0 {
		return 0, errno
	}
	return cookie, nil
}

// finish, after the write: a target its node port leads to again is
// forgotten without a walk (its sockets are right); for the rest, each
// protocol's iterator runs once, then they are forgotten. `own` are this
// write's targets; any other walked target was an interrupted write's.
func (s *socketEnder) finish(ports *ebpf.Map, own []sockEndTarget) EndedSockets {
	var ended EndedSockets
	if s.unavailable != "" {
		if len(own) > 0 {
			ended.NotChecked = s.unavailable
		}
		return ended
	}
	recorded, err := s.pending()
	if err != nil {
		ended.NotChecked = err.Error()
		return ended
	}
	// A target is forgotten once its sockets are right; when all are, no
	// later write needs to look (markPending).
	allForgotten := true
	forget := func(t sockEndTarget) {
		if m := s.mapOf(t); m != nil {
			if err := m.Delete(t.key()); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				allForgotten = false
			}
		}
	}
	var stale []sockEndTarget
	for _, t := range recorded {
		if leadsTo(ports, t) {
			forget(t)
		} else {
			stale = append(stale, t)
		}
	}
	if len(stale) == 0 {
		if allForgotten {
			s.markPending(false)
		}
		return ended
	}
	udp, tcp := false, false
	for _, t := range stale {
		if t.proto == protoTCP {
			tcp = true
		} else {
			udp = true
		}
	}
	for _, run := range []struct {
		wanted bool
		link   int
	}{{udp, s.udpLink}, {tcp, s.tcpLink}} {
		if !run.wanted {
			continue
		}
		n, err := runIterator(run.link)
		if err != nil {
			ended.NotChecked = err.Error() // kept recorded: the next write walks again
			return ended
		}
		ended.Count += n
	}
	mine := map[sockEndTarget]bool{}
	for _, t := range own {
		mine[t] = true
	}
	for _, t := range stale {
		forget(t)
		if !mine[t] {
			ended.Resumed++
		}
	}
	if allForgotten {
		s.markPending(false)
	}
	// The iterators walk the sockets of the caller's network namespace only.
	if cookie, err := currentNetnsCookie(); err != nil || cookie != s.netnsCookie {
		ended.NotChecked = "the node's sockets were not checked: this runs outside the network namespace nodeport " +
			"was loaded in"
	}
	return ended
}

// mapOf: the map that records target t, by its backend's family; nil when
// the pins have no sock_end_targets6.
func (s *socketEnder) mapOf(t sockEndTarget) *ebpf.Map {
	if t.addr.Is6() {
		return s.targets6
	}
	return s.targets
}

// leadsTo: `ports` maps the target's node port to the target's backend now
// (the entry of the backend's family).
func leadsTo(ports *ebpf.Map, t sockEndTarget) bool {
	v, err := ports.LookupBytes(portKey(entryKey{t.nodePort, t.addr.Is6()}))
	if err != nil || v == nil {
		return false
	}
	e, _ := parseBackend(t.nodePort, v)
	return e.backend == t.backend()
}

// udpOnly: of the backends a write replaces, those whose node sockets it
// ends. Connected UDP sockets always follow a remap; TCP connections keep
// their sandbox (the C++ library's ChangeOptions{terminate: false}).
func udpOnly(replaced []sockEndTarget) []sockEndTarget {
	out := replaced[:0:0]
	for _, t := range replaced {
		if t.proto == protoUDP {
			out = append(out, t)
		}
	}
	sort.Slice(out, func(i, j int) bool { return string(out[i].key()) < string(out[j].key()) })
	return out
}
