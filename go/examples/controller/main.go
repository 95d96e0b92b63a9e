// An example controller: what a sandbox runtime does with nodeport's Go
// package when it creates and destroys a sandbox.
//
//	controller [-pin-dir DIR] create SANDBOX IP PROTO/PORT[:BACKEND_PORT]...
//	controller [-pin-dir DIR] [-drain DURATION] destroy SANDBOX
//
// create maps each node port to the sandbox's address, owned by the sandbox
// id; destroy removes every port the sandbox still owns, and leaves a port
// that a newer sandbox took over, then (-drain) waits for the connections to
// the sandbox to end.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nodeport/nodeport/go/nodeport"
)

// parsePort reads "tcp/6667" or "tcp/6667:8080" (node port : backend port).
func parsePort(text string, ip netip.Addr, owner string) (nodeport.Mapping, error) {
	proto, ports, ok := strings.Cut(text, "/")
	if !ok {
		return nodeport.Mapping{}, fmt.Errorf("%q is not PROTO/PORT[:BACKEND_PORT]", text)
	}
	node, backend, hasBackend := strings.Cut(ports, ":")
	if !hasBackend {
		backend = node
	}
	np, err := strconv.ParseUint(node, 10, 16)
	if err != nil {
		return nodeport.Mapping{}, fmt.Errorf("%q: node port: %v", text, err)
	}
	bp, err := strconv.ParseUint(backend, 10, 16)
	if err != nil {
		return nodeport.Mapping{}, fmt.Errorf("%q: backend port: %v", text, err)
	}
	// Ranges and addresses are the library's to check: it refuses port 0,
	// loopback backends and bad owners with ErrBadInput.
	return nodeport.Mapping{Proto: proto, Port: uint16(np), Backend: netip.AddrPortFrom(ip, uint16(bp)), Owner: owner}, nil
}

// create maps the sandbox's ports. A port that fails leaves the ones before
// it mapped: the runtime destroys the sandbox, and destroy removes them.
func create(ctx context.Context, table *nodeport.Table, sandbox string, ip netip.Addr, ports []string) error {
	for _, text := range ports {
		m, err := parsePort(text, ip, sandbox)
		if err != nil {
			return err
		}
		if _, err := table.Set(ctx, m); err != nil {
			return err
		}
	}
	return nil
}

// destroy removes what the sandbox owns; a port another sandbox took over
// stays, and none left is fine (destroy runs again after a crash). With a
// drain wait, it then waits up to that long for the connections nodeport
// translated to the removed backends to end, before the runtime stops the
// sandbox (new connections already go elsewhere or nowhere).
func destroy(ctx context.Context, table *nodeport.Table, sandbox string, drain time.Duration) error {
	removed, err := table.DeleteOwner(ctx, sandbox)
	for _, m := range removed.Removed {
		fmt.Printf("removed %s/%d %s\n", m.Proto, m.Port, m.Backend)
	}
	// A redeploy's Set gave these ports to the new sandbox first; the old
	// one may still have connections through them.
	for _, m := range removed.ReplacedEarlier {
		fmt.Printf("replaced earlier %s/%d %s\n", m.Proto, m.Port, m.Backend)
	}
	if err != nil || drain <= 0 {
		return err
	}
	drainCtx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	for _, m := range append(removed.Removed, removed.ReplacedEarlier...) {
		left, err := table.Drain(drainCtx, m.Backend)
		if err != nil {
			return err
		}
		fmt.Printf("drained %s (%d connections left)\n", m.Backend, left.Total())
	}
	return nil
}

func run(args []string) error {
	flags := flag.NewFlagSet("controller", flag.ContinueOnError)
	pinDir := flags.String("pin-dir", "", "nodeport's pin directory (default /sys/fs/bpf/nodeport)")
	drain := flags.Duration("drain", 0, "destroy: wait up to this long for the removed backends' connections to end")
	if err := flags.Parse(args); err != nil {
		return err
	}
	rest := flags.Args()
	if len(rest) < 2 {
		return errors.New("usage: controller [-pin-dir DIR] [-drain DURATION] create SANDBOX IP PROTO/PORT[:BACKEND_PORT]... | " +
			"destroy SANDBOX")
	}
	// A bound on the whole call: the lock wait ends with it.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	table, err := nodeport.Open(*pinDir)
	if err != nil {
		return err
	}
	defer table.Close()
	switch rest[0] {
	case "create":
		if len(rest) < 4 {
			return errors.New("create SANDBOX IP PROTO/PORT[:BACKEND_PORT]...")
		}
		ip, err := netip.ParseAddr(rest[2])
		if err != nil {
			return err
		}
		return create(ctx, table, rest[1], ip, rest[3:])
	case "destroy":
		return destroy(ctx, table, rest[1], *drain)
	}
	return fmt.Errorf("unknown command %q", rest[0])
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "controller:", err)
		if errors.Is(err, nodeport.ErrBadInput) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}
