package nodeport

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// The pin directory of a nodeport loaded with nothing attached; the ctest
// wrapper (tests/capi/go_test.sh) loads it and unloads it afterwards.
func pinDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("NODEPORT_TEST_PIN_DIR")
	if dir == "" {
		t.Skip("NODEPORT_TEST_PIN_DIR is not set: run through ctest -R go_test (tests/capi/go_test.sh)")
	}
	return dir
}

func open(t *testing.T) *Table {
	t.Helper()
	table, err := Open(pinDir(t))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if _, err := table.Sync(context.Background(), nil); err != nil {
		t.Fatalf("empty the table: %v", err)
	}
	t.Cleanup(func() {
		if _, err := table.Sync(context.Background(), nil); err != nil {
			t.Errorf("empty the table: %v", err)
		}
		table.Close()
	})
	return table
}

func mapping(proto string, port uint16, backend string, owner string) Mapping {
	return Mapping{Proto: proto, Port: port, Backend: netip.MustParseAddrPort(backend), Owner: owner}
}

func list(t *testing.T, table *Table) []Mapping {
	t.Helper()
	all, err := table.List()
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	return all
}

// The map layout this package writes is abi.h's (go_test.sh passes the
// version abi.h defines): a new ABI fails here until this package follows.
func TestABIVersionIsAbiH(t *testing.T) {
	want := os.Getenv("NODEPORT_ABI_VERSION")
	if want == "" {
		t.Skip("NODEPORT_ABI_VERSION is not set: run through ctest -R go_test")
	}
	if got := fmt.Sprint(abiVersion); got != want {
		t.Fatalf("abiVersion %s, abi.h's NODEPORT_ABI_VERSION %s: update abi.go", got, want)
	}
	if got, want := fmt.Sprint(configSockEndPending), os.Getenv("NODEPORT_CONFIG_SOCK_END_PENDING"); got != want {
		t.Fatalf("configSockEndPending %s, abi.h's NP_CONFIG_SOCK_END_PENDING %s: update abi.go", got, want)
	}
}

func TestOpenNotLoaded(t *testing.T) {
	_, err := Open("/sys/fs/bpf/nodeport-go-test-never-loaded")
	if !errors.Is(err, ErrNotLoaded) || !strings.Contains(err.Error(), "not loaded") {
		t.Fatalf("Open of an empty pin dir: %v, want ErrNotLoaded", err)
	}
	if _, err := Open("relative/dir"); !errors.Is(err, ErrBadInput) {
		t.Errorf("Open of a relative path: %v, want ErrBadInput", err)
	}
}

// A pin directory anyone may write is not trusted, whatever it holds.
func TestOpenRefusesAnUnsafeDirectory(t *testing.T) {
	dir := pinDir(t) + "-unsafe"
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(dir)
	os.Chmod(dir, 0o777)
	_, err := Open(dir)
	if err == nil || !strings.Contains(err.Error(), "is not safe: it is writable by group or others") {
		t.Fatalf("Open of a 0777 directory: %v", err)
	}
	link := pinDir(t) + "-link"
	if err := os.Symlink(pinDir(t), link); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(link)
	if _, err := Open(link); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("Open through a symbolic link: %v", err)
	}
}

// The empty owner is bad input for Delete (a controller's empty sandbox id
// must never delete another sandbox's port); DeleteAny is the explicit way.
func TestDeleteEmptyOwnerRefused(t *testing.T) {
	table := open(t)
	ctx := context.Background()
	if _, err := table.Set(ctx, mapping("tcp", 6667, "10.8.0.2:6667", "sb-1")); err != nil {
		t.Fatal(err)
	}
	_, err := table.Delete(ctx, "tcp", 6667, "")
	if !errors.Is(err, ErrBadInput) || !strings.Contains(err.Error(), "bad input: owner: must be 1 to 255 characters, got 0") {
		t.Fatalf("Delete with owner \"\": %v, want ErrBadInput naming the owner", err)
	}
	if all := list(t, table); len(all) != 1 || all[0].Owner != "sb-1" {
		t.Fatalf("the refused delete changed the table: %+v", all)
	}
	if _, err := table.DeleteAny(ctx, "tcp", 6667); err != nil {
		t.Fatalf("DeleteAny: %v", err)
	}
}

func TestResults(t *testing.T) {
	table := open(t)
	ctx := context.Background()
	r, err := table.Set(ctx, mapping("tcp", 6667, "10.8.0.2:6667", "sb-1"))
	if err != nil || r.Replaced.IsValid() {
		t.Fatalf("first Set: %+v, %v", r, err)
	}
	r, err = table.Set(ctx, mapping("tcp", 6667, "10.8.0.3:7000", "sb-2"))
	if err != nil || r.Replaced != netip.MustParseAddrPort("10.8.0.2:6667") {
		t.Fatalf("Set over sb-1: %+v, %v", r, err)
	}
	_, err = table.Delete(ctx, "tcp", 6667, "sb-1")
	if !errors.Is(err, ErrOwnedByOther) || !strings.Contains(err.Error(), "sb-2") {
		t.Errorf("Delete by sb-1: %v, want ErrOwnedByOther naming sb-2", err)
	}
	table.Set(ctx, mapping("udp", 53, "10.8.0.3:53", "sb-2"))
	removed, err := table.DeleteOwner(ctx, "sb-2")
	want := []Mapping{mapping("tcp", 6667, "10.8.0.3:7000", "sb-2"), mapping("udp", 53, "10.8.0.3:53", "sb-2")}
	if err != nil || !slices.Equal(removed.Removed, want) {
		t.Errorf("DeleteOwner: %+v, %v", removed, err)
	}
	plan, err := table.Plan([]Mapping{mapping("tcp", 1, "10.8.0.2:1", "")})
	if err != nil || len(plan.Add) != 1 || len(plan.Update)+len(plan.Remove)+plan.Unchanged != 0 {
		t.Errorf("Plan: %+v, %v", plan, err)
	}
}

// holdLock takes the pin directory's flock as another process would (its
// own open file description), until the returned function is called.
func holdLock(t *testing.T) func() {
	t.Helper()
	fd, err := unix.Open(filepath.Clean(pinDir(t)), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(fd, unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	return func() { unix.Flock(fd, unix.LOCK_UN); unix.Close(fd) }
}

// The wait for another writer's lock is the caller's: Options.LockWait, or
// the call's context, whichever ends first; nothing is changed.
func TestLockWait(t *testing.T) {
	open(t)
	table, err := Open(pinDir(t), Options{LockWait: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer table.Close()
	release := holdLock(t)
	_, err = table.Set(context.Background(), mapping("tcp", 80, "10.8.0.2:80", "a"))
	if !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "for more than 0.05 s") ||
		!strings.Contains(err.Error(), fmt.Sprintf("pid %d", os.Getpid())) {
		t.Errorf("Set while the lock is held: %v, want ErrBusy naming this pid", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	slow, _ := Open(pinDir(t), Options{LockWait: time.Hour})
	defer slow.Close()
	_, err = slow.Sync(ctx, nil)
	if !errors.Is(err, ErrBusy) || !errors.Is(err, context.Canceled) {
		t.Errorf("Sync with a cancelled context: %v, want ErrBusy and context.Canceled", err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	_, err = slow.DeleteOwner(ctx, "a")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("DeleteOwner past the context's deadline: %v", err)
	}
	release()
	if n := len(list(t, table)); n != 0 {
		t.Errorf("a refused write changed the table: %d entries", n)
	}
	if _, err := table.Set(context.Background(), mapping("tcp", 80, "10.8.0.2:80", "a")); err != nil {
		t.Errorf("Set once the lock is free: %v", err)
	}
}

func TestClose(t *testing.T) {
	open(t)
	table, err := Open(pinDir(t))
	if err != nil {
		t.Fatal(err)
	}
	table.Close()
	if _, err := table.Set(context.Background(), mapping("tcp", 80, "10.8.0.2:80", "")); !errors.Is(err, ErrClosed) {
		t.Errorf("Set after Close: %v", err)
	}
	if err := table.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// 8 goroutines share one Table; none of their 2,000 sets is lost.
func TestConcurrentWriters(t *testing.T) {
	table := open(t)
	ctx := context.Background()
	const goroutines, each = 8, 250
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*each)
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			owner := fmt.Sprintf("goroutine-%d", g)
			for i := 0; i < each; i++ {
				port := uint16(10000 + g*each + i)
				proto := []string{"tcp", "udp"}[i%2]
				if _, err := table.Set(ctx, Mapping{proto, port, netip.AddrPortFrom(netip.MustParseAddr("10.8.0.2"), port), owner}); err != nil {
					errs <- err
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if all := list(t, table); len(all) != goroutines*each {
		t.Fatalf("%d entries, want %d", len(all), goroutines*each)
	}
	for g := 0; g < goroutines; g++ {
		if r, err := table.DeleteOwner(ctx, fmt.Sprintf("goroutine-%d", g)); err != nil || len(r.Removed) != each {
			t.Errorf("DeleteOwner: %d removed, %v", len(r.Removed), err)
		}
	}
}

// The median time of Set over 10,000 calls, printed for docs/api.md's table (no
// threshold: the machine's load decides it).
func TestSetTiming(t *testing.T) {
	table := open(t)
	const n = 10000
	times := make([]time.Duration, n)
	backend := netip.MustParseAddrPort("10.8.0.2:80")
	for i := range times {
		start := time.Now()
		_, err := table.Set(context.Background(), Mapping{"tcp", uint16(20000 + i), backend, "bench"})
		times[i] = time.Since(start)
		if err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(times)
	fmt.Printf("Go Table.Set (pure Go): median %.2f us over %d calls (p90 %.2f us)\n",
		float64(times[n/2].Nanoseconds())/1000, n, float64(times[n*9/10].Nanoseconds())/1000)
}

// What only Go can pass (the conformance cases cover the rest): a missing
// backend, an IPv4 address in IPv6 form as netip.AddrFromSlice makes it of
// net.ParseIP's 16 bytes, a zone, a NUL in a string; refused by Set and Sync
// alike, the table unchanged.
func TestBadInputOnlyGoCanPass(t *testing.T) {
	table := open(t)
	ctx := context.Background()
	keep := mapping("tcp", 80, "10.8.0.2:80", "keep")
	if _, err := table.Set(ctx, keep); err != nil {
		t.Fatal(err)
	}
	for _, m := range []Mapping{
		{Proto: "tcp", Port: 81},
		{Proto: "tcp", Port: 81, Backend: netip.AddrPortFrom(mustAddrFromSlice(net.ParseIP("10.8.0.2")), 80)},
		mapping("tcp", 81, "[fd00::2%eth0]:80", ""),
		mapping("tcp", 81, "10.8.0.2:80", "sb\x00"),
		mapping("tcp\x00", 81, "10.8.0.2:80", ""),
	} {
		if _, err := table.Set(ctx, m); !errors.Is(err, ErrBadInput) {
			t.Errorf("Set(%+v): %v, want ErrBadInput", m, err)
		}
		if _, err := table.Sync(ctx, []Mapping{keep, m}); !errors.Is(err, ErrBadInput) {
			t.Errorf("Sync with %+v: %v, want ErrBadInput", m, err)
		}
	}
	if _, err := table.Delete(ctx, "tcp", 80, "kee\x00p"); !errors.Is(err, ErrBadInput) {
		t.Errorf("Delete with a NUL in the owner: %v", err)
	}
	if _, err := Open(pinDir(t) + "\x00x"); !errors.Is(err, ErrBadInput) {
		t.Errorf("Open with a NUL in the path: %v", err)
	}
	if all := list(t, table); !slices.Equal(all, []Mapping{keep}) {
		t.Errorf("bad input changed the table: %+v", all)
	}
}

func mustAddrFromSlice(b []byte) netip.Addr {
	addr, ok := netip.AddrFromSlice(b)
	if !ok {
		panic(fmt.Sprintf("not an address: %v", b))
	}
	return addr
}

// An IPv6 backend by the rules of types.cpp is_routable_unicast, with
// check_mapping's field and message (and, for an IPv4 address in IPv6 form,
// how to give it).
func TestBackendValidation(t *testing.T) {
	for _, c := range []struct{ backend, message string }{
		{"10.8.0.2:80", ""},
		{"[fd00::2]:80", ""},
		{"[2001:db8::1]:80", ""},
		{"[fec0::1]:80", ""},   // above fe80::/10
		{"[::1:0:0:1]:80", ""}, // byte 9 is not 0
		{"[::2:0:0]:80", ""},   // bytes 10-11 are 00 02
		{"[64:ff9b::a08:2]:80", ""},
		{"[::]:80", "backend address: '::' is not a unicast address a sandbox can have"},
		{"[::1]:80", "backend address: '::1' is not a unicast address a sandbox can have"},
		{"[::10.8.0.2]:80", "backend address: '::a08:2' is not a unicast address a sandbox can have"},
		{"[::ffff:10.8.0.2]:80", "backend address: '::ffff:10.8.0.2' is not a unicast address a sandbox can " +
			"have (an IPv4 address in IPv6 form: give it as 10.8.0.2)"},
		{"[::ffff:127.0.0.1]:80", "backend address: '::ffff:127.0.0.1' is not a unicast address a sandbox can have"},
		{"[ff02::1]:80", "backend address: 'ff02::1' is not a unicast address a sandbox can have"},
		{"[fe80::1]:80", "backend address: 'fe80::1' is not a unicast address a sandbox can have"},
		{"[febf:ffff::1]:80", "backend address: 'febf:ffff::1' is not a unicast address a sandbox can have"},
		{"[fd00::2%eth0]:80", "backend address: 'fd00::2%eth0' is not an IPv6 address (no zone: it names an " +
			"interface of one namespace)"},
		{"[fd00::2]:0", "backend port: 0 is not a port number (1-65535)"},
	} {
		err := checkBackend(netip.MustParseAddrPort(c.backend))
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != c.message {
			t.Errorf("%s: %q, want %q", c.backend, got, c.message)
		}
	}
	if err := checkBackend(netip.AddrPort{}); err == nil || err.Error() != "backend address: missing (an IPv4 or IPv6 address)" {
		t.Errorf("the zero AddrPort: %v", err)
	}
}

// np_port_key's family byte and np_backend's family and address, as abi.h
// lays them out.
func TestPortKeyAndBackendLayout(t *testing.T) {
	for _, c := range []struct {
		backend string
		keyByte byte
		family  byte
		addr    []byte
	}{
		{"10.8.0.2:8080", 0, 4, []byte{10, 8, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
		{"[fd00::2]:8080", 6, 6, []byte{0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2}},
	} {
		e, err := checkMapping(mapping("udp", 6667, c.backend, "sb-1"))
		if err != nil {
			t.Fatal(err)
		}
		key := portKey(e.key())
		if key[0] != protoUDP || key[1] != c.keyByte || parsePortKey(key) != e.key() {
			t.Errorf("%s: key %v, read back as %v", c.backend, key, parsePortKey(key))
		}
		v := backendValue(e)
		if v[0] != c.family || !slices.Equal(v[addrOffset:addrOffset+16], c.addr) {
			t.Errorf("%s: value family %d, addr %v", c.backend, v[0], v[addrOffset:addrOffset+16])
		}
		if back, id := parseBackend(e.nodePort, v); back != e || id != ownerID("sb-1") {
			t.Errorf("%s: read back as %+v, %d", c.backend, back, id)
		}
	}
	if k := parsePortKey([]byte{protoTCP, 0, 0, 0}); k.ipv6 || k.String() != "tcp/0" {
		t.Errorf("family 0: %v", k)
	}
	if k := (entryKey{nodePort{protoTCP, 6667}, true}); k.String() != "tcp/6667 (IPv6)" {
		t.Errorf("an IPv6 key shows as %q", k)
	}
}

// Pins of map ABI 1, 2 and 3 are this version's load's to migrate; others
// are another nodeport's.
func TestCheckABI(t *testing.T) {
	for _, v := range []uint32{0, abiVersion} {
		if err := checkABI("open /p", "/p", nodeConfig{abiVersion: v}); err != nil {
			t.Errorf("ABI %d: %v", v, err)
		}
	}
	for _, v := range []uint32{1, 2, 3} {
		want := fmt.Sprintf("nodeport: open /p: the maps pinned at /p use map ABI v%d, this nodeport uses v4: run "+
			"this nodeport's load to migrate them (mappings and connections are kept)", v)
		if err := checkABI("open /p", "/p", nodeConfig{abiVersion: v}); err == nil || err.Error() != want {
			t.Errorf("ABI %d: %v", v, err)
		}
	}
	err := checkABI("open /p", "/p", nodeConfig{abiVersion: 5})
	if err == nil || !strings.Contains(err.Error(), "use the nodeport that loaded them") {
		t.Errorf("ABI 5: %v", err)
	}
}

// A node port leads to an IPv4 and an IPv6 backend side by side: Get gives
// the IPv4 one while there is one, GetAll both, List both in order.
func TestIPv6BesideIPv4(t *testing.T) {
	table := open(t)
	ctx := context.Background()
	v4, v6 := mapping("tcp", 6667, "10.8.0.2:6667", "sb-1"), mapping("tcp", 6667, "[fd00::2]:6667", "sb-1")
	for _, m := range []Mapping{v6, v4} {
		if r, err := table.Set(ctx, m); err != nil || r.Replaced.IsValid() {
			t.Fatalf("Set(%v): %+v, %v", m.Backend, r, err)
		}
	}
	if got, err := table.Get("tcp", 6667); err != nil || got != v4 {
		t.Errorf("Get: %+v, %v; want the IPv4 mapping", got, err)
	}
	if got, err := table.GetAll("tcp", 6667); err != nil || !slices.Equal(got, []Mapping{v4, v6}) {
		t.Errorf("GetAll: %+v, %v", got, err)
	}
	only6 := mapping("udp", 6667, "[2001:db8::7]:53", "")
	if _, err := table.Set(ctx, only6); err != nil {
		t.Fatal(err)
	}
	if got, err := table.Get("udp", 6667); err != nil || got != only6 {
		t.Errorf("Get of a port with an IPv6 backend only: %+v, %v", got, err)
	}
	if _, err := table.GetAll("udp", 6668); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetAll of an unmapped port: %v, want ErrNotFound", err)
	}
	if all := list(t, table); !slices.Equal(all, []Mapping{v4, v6, only6}) {
		t.Errorf("List: %+v", all)
	}
	// The entry is the family's own: key family 6, value family 6 and 16 bytes.
	v, err := table.ports.LookupBytes(portKey(entryKey{nodePort{protoTCP, 6667}, true}))
	if err != nil || v == nil || v[0] != familyIPv6 || v[addrOffset] != 0xfd || v[addrOffset+15] != 2 {
		t.Errorf("the IPv6 entry in the map: %v, %v", v, err)
	}
	r, err := table.Set(ctx, mapping("tcp", 6667, "[fd00::3]:6667", "sb-2"))
	if err != nil || r.Replaced != v6.Backend {
		t.Errorf("Set over the IPv6 backend: %+v, %v; want it replaced", r, err)
	}
	if got, _ := table.Get("tcp", 6667); got != v4 {
		t.Errorf("the IPv6 set changed the IPv4 mapping: %+v", got)
	}
	// The node's sockets to an IPv6 backend are counted as those to an IPv4
	// one (np_count6_*): none here, over at once, nothing left uncounted.
	left, err := table.Drain(ctx, netip.MustParseAddrPort("[fd00::2]:6667"))
	if err != nil || left.Total() != 0 || left.LocalNotCounted != "" {
		t.Errorf("Drain of an IPv6 backend: %+v, %v; want 0, the node's sockets counted", left, err)
	}
	if _, err := table.Drain(ctx, netip.MustParseAddrPort("[::ffff:10.8.0.2]:6667")); !errors.Is(err, ErrBadInput) {
		t.Errorf("Drain of a v4-mapped backend: %v, want ErrBadInput", err)
	}
}

// Delete and DeleteOwner remove both families' entries of the owner; a
// backend replaced is recorded in its family's map (replaced_backends,
// replaced_backends6), so DeleteOwner names both to drain.
func TestDeleteBothFamilies(t *testing.T) {
	table := open(t)
	ctx := context.Background()
	for _, m := range []Mapping{
		mapping("tcp", 80, "10.8.0.2:80", "both-1"), mapping("tcp", 80, "[fd00::2]:80", "both-1"),
		mapping("udp", 53, "10.8.0.2:53", "both-1"), mapping("udp", 53, "[fd00::2]:53", "both-1"),
		mapping("tcp", 81, "10.8.0.2:81", "both-1"), mapping("tcp", 81, "[fd00::2]:81", "both-2"),
	} {
		if _, err := table.Set(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	// A redeploy takes udp/53 in both families: each backend is recorded in its family's map.
	for _, m := range []Mapping{mapping("udp", 53, "10.8.0.3:53", "both-3"), mapping("udp", 53, "[fd00::3]:53", "both-3")} {
		if _, err := table.Set(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if table.replaced == nil || table.replaced6 == nil {
		t.Fatal("replaced_backends or replaced_backends6 not loaded")
	}
	for _, m := range []struct {
		m    *ebpf.Map
		want string
	}{{table.replaced, "udp/53 10.8.0.2:53"}, {table.replaced6, "udp/53 [fd00::2]:53"}} {
		keys, err := allKeys(m.m) // other tests' records stay: those of both-1's
		var recorded []string
		for _, k := range keys {
			if v, _ := m.m.LookupBytes(k); len(v) >= 8 && binary.NativeEndian.Uint64(v) == ownerID("both-1") {
				tg := parseSockEndTarget(k)
				recorded = append(recorded, fmt.Sprintf("%s %s", tg.nodePort, tg.backend()))
			}
		}
		if err != nil || !slices.Equal(recorded, []string{m.want}) {
			t.Errorf("records of both-1: %q, %v; want %q", recorded, err, m.want)
		}
	}
	if _, err := table.Delete(ctx, "tcp", 81, "both-3"); !errors.Is(err, ErrOwnedByOther) ||
		!strings.Contains(err.Error(), "tcp/81 is held by 'both-1', left alone") {
		t.Errorf("Delete by an owner of neither family: %v", err)
	}
	// both-2 holds the IPv6 entry of tcp/81 only: that goes, both-1's stays.
	if _, err := table.Delete(ctx, "tcp", 81, "both-2"); err != nil {
		t.Errorf("Delete of both-2's family: %v", err)
	}
	if got, err := table.GetAll("tcp", 81); err != nil || !slices.Equal(got, []Mapping{mapping("tcp", 81, "10.8.0.2:81", "both-1")}) {
		t.Errorf("after both-2's delete: %+v, %v", got, err)
	}
	r, err := table.DeleteOwner(ctx, "both-1")
	wantRemoved := []Mapping{mapping("tcp", 80, "10.8.0.2:80", "both-1"), mapping("tcp", 80, "[fd00::2]:80", "both-1"),
		mapping("tcp", 81, "10.8.0.2:81", "both-1")}
	if err != nil || !slices.Equal(r.Removed, wantRemoved) || !slices.Equal(r.ReplacedEarlier,
		[]Mapping{mapping("udp", 53, "10.8.0.2:53", "both-1"), mapping("udp", 53, "[fd00::2]:53", "both-1")}) {
		t.Errorf("DeleteOwner: %+v, %v", r, err)
	}
	if all := list(t, table); !slices.Equal(all, []Mapping{mapping("udp", 53, "10.8.0.3:53", "both-3"),
		mapping("udp", 53, "[fd00::3]:53", "both-3")}) {
		t.Errorf("left: %+v", all)
	}
	if _, err := table.DeleteAny(ctx, "udp", 53); err != nil {
		t.Errorf("DeleteAny: %v", err)
	}
	if _, err := table.GetAll("udp", 53); !errors.Is(err, ErrNotFound) {
		t.Errorf("DeleteAny left %v", err)
	}
}

// Sync and Plan key by (node port, family): a port once per family; twice
// for one family is bad input, named as the C++ library names it.
func TestSyncPerFamily(t *testing.T) {
	table := open(t)
	ctx := context.Background()
	v4, v6 := mapping("tcp", 6667, "10.8.0.2:6667", "sb-1"), mapping("tcp", 6667, "[fd00::2]:6667", "sb-1")
	r, err := table.Sync(ctx, []Mapping{v6, v4})
	if err != nil || r.Added != 2 {
		t.Fatalf("Sync of both families: %+v, %v", r, err)
	}
	moved := mapping("tcp", 6667, "[fd00::3]:6667", "sb-1")
	plan, err := table.Plan([]Mapping{v4, moved})
	if err != nil || len(plan.Add)+len(plan.Remove) != 0 || !slices.Equal(plan.Update, []Mapping{moved}) ||
		plan.Unchanged != 1 {
		t.Errorf("Plan of one family's change: %+v, %v", plan, err)
	}
	r, err = table.Sync(ctx, []Mapping{v4})
	if err != nil || r.Removed != 1 || r.Unchanged != 1 {
		t.Errorf("Sync without the IPv6 entry: %+v, %v", r, err)
	}
	_, err = table.Sync(ctx, []Mapping{v4, v6, moved})
	if !errors.Is(err, ErrBadInput) || err.Error() != "nodeport: sync: bad input: node port: tcp/6667 (IPv6) is listed twice" {
		t.Errorf("Sync of a port twice for IPv6: %v", err)
	}
	_, err = table.Sync(ctx, []Mapping{v4, mapping("tcp", 6667, "10.8.0.3:6667", "")})
	if err == nil || err.Error() != "nodeport: sync: bad input: node port: tcp/6667 is listed twice" {
		t.Errorf("Sync of a port twice for IPv4: %v", err)
	}
	if all := list(t, table); !slices.Equal(all, []Mapping{v4}) {
		t.Errorf("refused syncs changed the table: %+v", all)
	}
}
