package nodeport

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

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

// What only Go can pass (the conformance cases cover the rest): an IPv6 or
// missing backend, a NUL in a string; refused by Set and Sync alike, the
// table unchanged.
func TestBadInputOnlyGoCanPass(t *testing.T) {
	table := open(t)
	ctx := context.Background()
	keep := mapping("tcp", 80, "10.8.0.2:80", "keep")
	if _, err := table.Set(ctx, keep); err != nil {
		t.Fatal(err)
	}
	for _, m := range []Mapping{
		mapping("tcp", 81, "[2001:db8::1]:80", ""),
		{Proto: "tcp", Port: 81},
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
