package main

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"slices"
	"testing"

	"github.com/nodeport/nodeport/go/nodeport"
)

// A sandbox created, redeployed under the same node port by a newer sandbox,
// and both destroyed, through the command line the runtime would call.
func TestCreateDestroy(t *testing.T) {
	dir := os.Getenv("NODEPORT_TEST_PIN_DIR")
	if dir == "" {
		t.Skip("NODEPORT_TEST_PIN_DIR is not set: run through ctest -R go_test")
	}
	table, err := nodeport.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer table.Close()
	if _, err := table.Sync(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	must := func(args ...string) {
		t.Helper()
		if err := run(append([]string{"-pin-dir", dir}, args...)); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
	}
	must("create", "sb-1", "10.8.0.2", "tcp/6667", "udp/5353:53")
	must("create", "sb-2", "10.8.0.3", "tcp/6667:7000") // the redeploy takes tcp/6667
	must("destroy", "sb-1")                             // leaves sb-2's port
	all, err := table.List()
	if err != nil {
		t.Fatal(err)
	}
	want := []nodeport.Mapping{{Proto: "tcp", Port: 6667, Backend: netip.MustParseAddrPort("10.8.0.3:7000"), Owner: "sb-2"}}
	if !slices.Equal(all, want) {
		t.Errorf("after destroying sb-1: %+v, want %+v", all, want)
	}
	must("destroy", "sb-2")
	must("destroy", "sb-2") // again, as after a crash: nothing to do
	if all, _ := table.List(); len(all) != 0 {
		t.Errorf("after destroying both: %d entries left", len(all))
	}
	err = run([]string{"-pin-dir", dir, "create", "sb-3", "127.0.0.1", "tcp/80"})
	if !errors.Is(err, nodeport.ErrBadInput) {
		t.Errorf("a loopback sandbox address: %v, want ErrBadInput", err)
	}
	if all, _ := table.List(); len(all) != 0 {
		t.Errorf("a refused create mapped %d ports", len(all))
	}
}
