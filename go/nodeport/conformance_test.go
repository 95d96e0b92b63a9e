package nodeport

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
)

// The port table conformance suite (tests/conformance/port_table.json), which
// tests/conformance/conformance_runner.cpp runs against the C++ library and
// the C ABI: the same cases, the same expected results and table states.

type caseMapping struct {
	Proto   string `json:"proto"`
	Port    uint16 `json:"port"`
	Backend string `json:"backend"`
	Owner   string `json:"owner"`
}

type caseExpect struct {
	Error    string    `json:"error"`
	Replaced *string   `json:"replaced"`
	Removed  *[]string `json:"removed"` // delete_owner's
	Plan     []int     `json:"plan"`    // sync's added, updated, removed, unchanged
	Resumed  *int      `json:"resumed"`
	// delete_owner's
	ReplacedEarlier *[]string `json:"replaced_earlier"`
}

type caseStep struct {
	Op       string        `json:"op"`
	Mapping  caseMapping   `json:"mapping"`
	Want     []caseMapping `json:"want"`
	Proto    string        `json:"proto"`
	Port     uint16        `json:"port"`
	Owner    string        `json:"owner"`
	Backend  string        `json:"backend"`
	Family   string        `json:"family"` // seed_counter's: "ipv6", or "" for IPv4
	Expect   caseExpect    `json:"expect"`
	Table    *[]string     `json:"table"`
	Counters *[]string     `json:"counters"`
	Targets  *[]string     `json:"targets"`
}

type conformanceCase struct {
	Name  string     `json:"name"`
	APIs  []string   `json:"apis"` // the APIs that run it; none: all
	Steps []caseStep `json:"steps"`
}

func (c caseMapping) mapping(t *testing.T) Mapping {
	backend, err := netip.ParseAddrPort(c.Backend)
	if err != nil {
		t.Fatalf("case backend %q: %v", c.Backend, err)
	}
	return Mapping{Proto: c.Proto, Port: c.Port, Backend: backend, Owner: c.Owner}
}

func row(m Mapping) string {
	s := fmt.Sprintf("%s/%d %s", m.Proto, m.Port, m.Backend)
	if m.Owner != "" {
		s += " " + m.Owner
	}
	return s
}

func errorName(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, ErrBadInput):
		return "bad_input"
	case errors.Is(err, ErrNotFound):
		return "not_found"
	case errors.Is(err, ErrOwnedByOther):
		return "owned"
	}
	return "other: " + err.Error()
}

func mapKeys(t *testing.T, m *ebpf.Map, show func([]byte) string) []string {
	t.Helper()
	out := []string{}
	var prev interface{}
	for {
		next, err := m.NextKeyBytes(prev)
		if err != nil {
			t.Fatal(err)
		}
		if next == nil {
			break
		}
		out = append(out, show(next))
		prev = next
	}
	slices.Sort(out)
	return out
}

func (tb *Table) counterKeys(t *testing.T) []string {
	return mapKeys(t, tb.counters, func(k []byte) string { return parsePortKey(k).String() })
}

func (tb *Table) targetKeys(t *testing.T) []string {
	return mapKeys(t, tb.ender.targets, func(k []byte) string {
		tg := parseSockEndTarget(k)
		return fmt.Sprintf("%s %s", tg.nodePort, tg.backend())
	})
}

// reset empties the table, the counters and the targets.
func (tb *Table) reset(t *testing.T) {
	t.Helper()
	if _, err := tb.Sync(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	for _, m := range []*ebpf.Map{tb.counters, tb.ender.targets} {
		for {
			k, err := m.NextKeyBytes(nil)
			if err != nil || k == nil {
				break
			}
			m.Delete(k)
		}
	}
}

// possibleCPUs: how many values a per-CPU map holds ("0-1" in /sys).
func possibleCPUs(t *testing.T) int {
	text, err := os.ReadFile("/sys/devices/system/cpu/possible")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, part := range strings.Split(strings.TrimSpace(string(text)), ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		var a, b int
		fmt.Sscan(lo, &a)
		b = a
		if isRange {
			fmt.Sscan(hi, &b)
		}
		n += b - a + 1
	}
	return n
}

func conformanceCases(t *testing.T) []conformanceCase {
	path := os.Getenv("NODEPORT_CONFORMANCE")
	if path == "" {
		path = "../../tests/conformance/port_table.json"
	}
	text, err := os.ReadFile(path)
	if err != nil {
		t.Skipf("the conformance cases: %v (outside the repository: set NODEPORT_CONFORMANCE)", err)
	}
	var doc struct {
		Cases []conformanceCase `json:"cases"`
	}
	if err := json.Unmarshal(text, &doc); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return doc.Cases
}

func TestConformance(t *testing.T) {
	cases := conformanceCases(t)
	tb := open(t)
	if tb.counters == nil || tb.ender.targets == nil {
		t.Fatal("the test pin directory has no port_counters or no socket iterators")
	}
	ctx := context.Background()
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			if len(c.APIs) > 0 && !slices.Contains(c.APIs, "go") {
				t.Skipf("runs through %v only", c.APIs)
			}
			tb.reset(t)
			for i, s := range c.Steps {
				step := fmt.Sprintf("step %d (%s)", i, s.Op)
				var err error
				var replaced *string
				var removed, replacedEarlier *[]string
				var resumed *int
				var counts []int
				switch s.Op {
				case "set":
					var r SetResult
					r, err = tb.Set(ctx, s.Mapping.mapping(t))
					text := ""
					if r.Replaced.IsValid() {
						text = r.Replaced.String()
					}
					replaced, resumed = &text, &r.Ended.Resumed
				case "delete", "delete_any":
					var ended EndedSockets
					if s.Op == "delete" {
						ended, err = tb.Delete(ctx, s.Proto, s.Port, s.Owner)
					} else {
						ended, err = tb.DeleteAny(ctx, s.Proto, s.Port)
					}
					resumed = &ended.Resumed
				case "delete_owner":
					var r DeleteOwnerResult
					r, err = tb.DeleteOwner(ctx, s.Owner)
					rows := []string{}
					for _, m := range r.Removed {
						rows = append(rows, row(m))
					}
					earlier := []string{}
					for _, m := range r.ReplacedEarlier {
						earlier = append(earlier, row(m))
					}
					removed, replacedEarlier, resumed = &rows, &earlier, &r.Ended.Resumed
				case "sync":
					want := []Mapping{}
					for _, m := range s.Want {
						want = append(want, m.mapping(t))
					}
					var r SyncResult
					r, err = tb.Sync(ctx, want)
					counts = []int{r.Added, r.Updated, r.Removed, r.Unchanged}
					resumed = &r.Ended.Resumed
				case "seed_counter":
					p, _ := checkNodePort(s.Proto, s.Port)
					perCPU := make([][]byte, 0)
					for range possibleCPUs(t) {
						perCPU = append(perCPU, make([]byte, 64))
					}
					if err := tb.counters.Put(portKey(entryKey{p, s.Family == "ipv6"}), perCPU); err != nil {
						t.Fatalf("%s: %v", step, err)
					}
					continue
				case "seed_target":
					p, _ := checkNodePort(s.Proto, s.Port)
					b := netip.MustParseAddrPort(s.Backend)
					tg := sockEndTarget{p, b.Addr(), b.Port()}
					if err := tb.ender.markPending(true); err != nil { // as a write does before it records
						t.Fatalf("%s: %v", step, err)
					}
					if err := tb.ender.mapOf(tg).Put(tg.key(), []byte{0}); err != nil {
						t.Fatalf("%s: %v", step, err)
					}
					continue
				case "check":
					if s.Table != nil {
						got := []string{}
						all, err := tb.List()
						if err != nil {
							t.Fatal(err)
						}
						for _, m := range all {
							got = append(got, row(m))
						}
						if !slices.Equal(got, *s.Table) {
							t.Errorf("%s: table %q, want %q", step, got, *s.Table)
						}
					}
					if s.Counters != nil {
						if got := tb.counterKeys(t); !slices.Equal(got, *s.Counters) {
							t.Errorf("%s: counters %q, want %q", step, got, *s.Counters)
						}
					}
					if s.Targets != nil {
						if got := tb.targetKeys(t); !slices.Equal(got, *s.Targets) {
							t.Errorf("%s: targets %q, want %q", step, got, *s.Targets)
						}
					}
					continue
				default:
					t.Fatalf("%s: unknown op", step)
				}
				e := s.Expect
				if got := errorName(err); got != e.Error {
					t.Errorf("%s: %s, want %s", step, got, e.Error)
				}
				if err != nil {
					if !strings.HasPrefix(err.Error(), "nodeport: ") {
						t.Errorf("%s: message %q", step, err)
					}
					continue
				}
				if e.Replaced != nil && *replaced != *e.Replaced {
					t.Errorf("%s: replaced %q, want %q", step, *replaced, *e.Replaced)
				}
				if e.Removed != nil && !slices.Equal(*removed, *e.Removed) {
					t.Errorf("%s: removed %q, want %q", step, *removed, *e.Removed)
				}
				if e.ReplacedEarlier != nil && !slices.Equal(*replacedEarlier, *e.ReplacedEarlier) {
					t.Errorf("%s: replaced earlier %q, want %q", step, *replacedEarlier, *e.ReplacedEarlier)
				}
				if e.Resumed != nil && *resumed != *e.Resumed {
					t.Errorf("%s: resumed %d, want %d", step, *resumed, *e.Resumed)
				}
				if e.Plan != nil && !slices.Equal(counts, e.Plan) {
					t.Errorf("%s: added, updated, removed, unchanged %v, want %v", step, counts, e.Plan)
				}
			}
		})
	}
}
