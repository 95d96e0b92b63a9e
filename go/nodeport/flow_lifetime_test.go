package nodeport

import (
	"encoding/binary"
	"encoding/json"
	"net/netip"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// parseFlowEntry's lifetimes against tests/conformance/flow_lifetime.json,
// the cases include/nodeport/flow_lifetime.h (the rule the BPF programs and
// the C++ library compile) is held to: Go cannot include it.
func TestFlowLifetimeConformance(t *testing.T) {
	text, err := os.ReadFile("../../tests/conformance/flow_lifetime.json")
	if err != nil {
		t.Fatal(err)
	}
	var suite struct {
		Timeouts map[string]uint64 `json:"timeouts_s"`
		Cases    []struct {
			Table, Proto, State, Lifetime string
		} `json:"cases"`
	}
	if err := json.Unmarshal(text, &suite); err != nil {
		t.Fatal(err)
	}
	const sec = uint64(1e9)
	to := flowTimeouts{suite.Timeouts["tcp_established"] * sec, suite.Timeouts["tcp_syn"] * sec,
		suite.Timeouts["tcp_closing"] * sec, suite.Timeouts["udp_idle"] * sec}
	states := map[string]uint8{"open": 1, "fin_wait": flowFinWait, "syn_sent": 3, "picked_up": flowPickedUp}
	protos := map[string]uint8{"tcp": unix.IPPROTO_TCP, "udp": ipprotoUDP}
	client, node := netip.MustParseAddrPort("10.0.0.1:40000"), netip.MustParseAddrPort("10.200.0.1:30080")
	if len(suite.Cases) == 0 {
		t.Fatal("no cases")
	}
	for _, c := range suite.Cases {
		state, ok := states[c.State]
		if !ok {
			t.Fatalf("%+v: unknown state", c)
		}
		var key, value []byte
		if c.Table == "half_open_flows" {
			key, value = flowKeyBytesOf(protos[c.Proto], client, node, 2), make([]byte, halfOpenBytes)
		} else {
			key, value = flowKeyBytesOf(protos[c.Proto], client, node, flowToBackend), make([]byte, flowBytes)
		}
		value[18] = state
		binary.NativeEndian.PutUint64(value[24:], 1)
		f, ok := parseFlowEntry(key, value, to)
		if !ok {
			t.Fatalf("%+v: not parsed", c)
		}
		if want := suite.Timeouts[c.Lifetime] * sec; f.lifetime != want {
			t.Errorf("%+v: lifetime %d ns, want %d", c, f.lifetime, want)
		}
	}
}
