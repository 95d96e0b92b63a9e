package nodeport

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// The pin directory of a nodeport loaded with nothing attached; the ctest
// wrapper (tests/capi/go_test.sh) loads it and unloads it afterwards.
func open(t *testing.T) *Table {
	t.Helper()
	dir := os.Getenv("NODEPORT_TEST_PIN_DIR")
	if dir == "" {
		t.Skip("NODEPORT_TEST_PIN_DIR is not set: run through ctest -R go_test (tests/capi/go_test.sh)")
	}
	table, err := Open(dir)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if err := table.Sync(nil); err != nil {
		t.Fatalf("empty the table: %v", err)
	}
	t.Cleanup(func() {
		if err := table.Sync(nil); err != nil {
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

func TestOpenNotLoaded(t *testing.T) {
	_, err := Open("/sys/fs/bpf/nodeport-go-test-never-loaded")
	if !errors.Is(err, ErrNotLoaded) {
		t.Fatalf("Open of an empty pin dir: %v, want ErrNotLoaded", err)
	}
	if !strings.Contains(err.Error(), "not loaded") {
		t.Errorf("message: %v", err)
	}
}

func TestSetGetDelete(t *testing.T) {
	table := open(t)
	if err := table.Set(mapping("tcp", 6667, "10.8.0.2:6667", "sb-1")); err != nil {
		t.Fatal(err)
	}
	got, err := table.Get("tcp", 6667)
	if err != nil || got != mapping("tcp", 6667, "10.8.0.2:6667", "sb-1") {
		t.Fatalf("Get: %+v, %v", got, err)
	}
	if _, err := table.Get("udp", 6667); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get udp/6667: %v, want ErrNotFound", err)
	}
	// A redeploy: the old sandbox's delete leaves the new one's entry.
	if err := table.Set(mapping("tcp", 6667, "10.8.0.3:7000", "sb-2")); err != nil {
		t.Fatal(err)
	}
	err = table.Delete("tcp", 6667, "sb-1")
	if !errors.Is(err, ErrOwnedByOther) || !strings.Contains(err.Error(), "sb-2") {
		t.Errorf("Delete by sb-1: %v, want ErrOwnedByOther naming sb-2", err)
	}
	if got, _ := table.Get("tcp", 6667); got.Owner != "sb-2" {
		t.Errorf("after sb-1's delete: %+v", got)
	}
	if err := table.Delete("tcp", 6667, "sb-2"); err != nil {
		t.Errorf("Delete by sb-2: %v", err)
	}
	if err := table.Delete("tcp", 6667, ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("Delete of nothing: %v, want ErrNotFound", err)
	}
	if err := table.Set(mapping("udp", 53, "10.8.0.4:5353", "")); err != nil {
		t.Fatal(err)
	}
	if err := table.Delete("UDP", 53, ""); err != nil {
		t.Errorf("Delete any owner: %v", err)
	}
	if n := len(list(t, table)); n != 0 {
		t.Errorf("%d entries left", n)
	}
}

// Everything the CLI refuses, refused with nothing changed.
func TestBadInput(t *testing.T) {
	table := open(t)
	keep := mapping("tcp", 80, "10.8.0.2:80", "keep")
	if err := table.Set(keep); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("a", 256)
	bad := []Mapping{
		mapping("tcp", 0, "10.8.0.2:80", ""),
		mapping("tcp", 81, "10.8.0.2:0", ""),
		mapping("sctp", 81, "10.8.0.2:80", ""),
		mapping("", 81, "10.8.0.2:80", ""),
		mapping("tcp", 81, "127.0.0.1:80", ""),
		mapping("tcp", 81, "0.0.0.0:80", ""),
		mapping("tcp", 81, "224.0.0.1:80", ""),
		mapping("tcp", 81, "[2001:db8::1]:80", ""),
		{Proto: "tcp", Port: 81},                    // no backend at all
		mapping("tcp", 81, "10.8.0.2:80", long),     // one character too many
		mapping("tcp", 81, "10.8.0.2:80", "sb 1"),   // blank
		mapping("tcp", 81, "10.8.0.2:80", "sb\x00"), // C would see "sb"
		mapping("tcp\x00", 81, "10.8.0.2:80", ""),
	}
	for _, m := range bad {
		if err := table.Set(m); !errors.Is(err, ErrBadInput) {
			t.Errorf("Set(%+v): %v, want ErrBadInput", m, err)
		}
		if err := table.Sync([]Mapping{keep, m}); !errors.Is(err, ErrBadInput) {
			t.Errorf("Sync with %+v: %v, want ErrBadInput", m, err)
		}
	}
	if err := table.Delete("tcp", 80, "kee\x00p"); !errors.Is(err, ErrBadInput) {
		t.Errorf("Delete with a NUL in the owner: %v", err)
	}
	if err := table.Delete("tcp", 0, ""); !errors.Is(err, ErrBadInput) {
		t.Errorf("Delete port 0: %v", err)
	}
	if err := table.DeleteOwner(""); !errors.Is(err, ErrBadInput) {
		t.Errorf("DeleteOwner(\"\"): %v", err)
	}
	if err := table.Sync([]Mapping{keep, mapping("tcp", 80, "10.8.0.3:80", "x")}); !errors.Is(err, ErrBadInput) {
		t.Errorf("Sync with a port twice: %v", err)
	}
	if all := list(t, table); !slices.Equal(all, []Mapping{keep}) {
		t.Errorf("bad input changed the table: %+v", all)
	}
	// The longest owner is stored whole, and its delete works.
	owner := strings.Repeat("b", 255)
	if err := table.Set(mapping("tcp", 82, "10.8.0.2:80", owner)); err != nil {
		t.Fatal(err)
	}
	if err := table.Delete("tcp", 82, owner); err != nil {
		t.Errorf("Delete by a 255-character owner: %v", err)
	}
}

func TestDeleteOwnerAndSync(t *testing.T) {
	table := open(t)
	for _, m := range []Mapping{
		mapping("tcp", 1000, "10.8.0.2:80", "a"), mapping("udp", 1000, "10.8.0.2:80", "a"),
		mapping("tcp", 1001, "10.8.0.3:80", "b"), mapping("tcp", 1002, "10.8.0.3:80", ""),
	} {
		if err := table.Set(m); err != nil {
			t.Fatal(err)
		}
	}
	if err := table.DeleteOwner("a"); err != nil {
		t.Fatal(err)
	}
	want := []Mapping{mapping("tcp", 1001, "10.8.0.3:80", "b"), mapping("tcp", 1002, "10.8.0.3:80", "")}
	if all := list(t, table); !slices.Equal(all, want) {
		t.Errorf("after DeleteOwner(a): %+v", all)
	}
	desired := []Mapping{mapping("udp", 2000, "10.8.0.9:90", "c"), mapping("tcp", 1001, "10.8.0.9:80", "b")}
	if err := table.Sync(desired); err != nil {
		t.Fatal(err)
	}
	sort.Slice(desired, func(i, j int) bool { return desired[i].Proto < desired[j].Proto })
	if all := list(t, table); !slices.Equal(all, desired) {
		t.Errorf("after Sync: %+v, want %+v", all, desired)
	}
}

func TestClose(t *testing.T) {
	open(t) // skips without a pin directory
	table, err := Open(os.Getenv("NODEPORT_TEST_PIN_DIR"))
	if err != nil {
		t.Fatal(err)
	}
	table.Close()
	if err := table.Set(mapping("tcp", 80, "10.8.0.2:80", "")); !errors.Is(err, ErrClosed) {
		t.Errorf("Set after Close: %v", err)
	}
	if err := table.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// 8 goroutines share one Table; none of their 2,000 sets is lost.
func TestConcurrentWriters(t *testing.T) {
	table := open(t)
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
				if err := table.Set(Mapping{proto, port, netip.AddrPortFrom(netip.MustParseAddr("10.8.0.2"), port), owner}); err != nil {
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
	all := list(t, table)
	if len(all) != goroutines*each {
		t.Fatalf("%d entries, want %d", len(all), goroutines*each)
	}
	for g := 0; g < goroutines; g++ {
		if err := table.DeleteOwner(fmt.Sprintf("goroutine-%d", g)); err != nil {
			t.Error(err)
		}
	}
	if n := len(list(t, table)); n != 0 {
		t.Errorf("%d entries left after DeleteOwner of each", n)
	}
}

// The median time of Set over 10,000 calls, printed for the README (no
// threshold: the machine's load decides it).
func TestSetTiming(t *testing.T) {
	table := open(t)
	const n = 10000
	times := make([]time.Duration, n)
	backend := netip.MustParseAddrPort("10.8.0.2:80")
	for i := range times {
		start := time.Now()
		err := table.Set(Mapping{"tcp", uint16(20000 + i), backend, "bench"})
		times[i] = time.Since(start)
		if err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(times)
	fmt.Printf("Go Table.Set: median %.2f us over %d calls (p90 %.2f us)\n",
		float64(times[n/2].Nanoseconds())/1000, n, float64(times[n*9/10].Nanoseconds())/1000)
}
