// What the datapath does with a client's first packet, for `explain`
// (nodeport/explain.hpp).
#pragma once

#include <filesystem>

#include "nodeport/explain.hpp"
#include "nodeport/pin_dir.hpp"

namespace nodeport::explain_parts {

// The TC programs' decision: np_tc_ingress of a copy of the TC object, run
// (BPF_PROG_TEST_RUN) on the client's first packet, a TCP SYN or a UDP
// datagram from `from` to `to`:port. The copy reads the loaded nodeport's
// maps that the ingress path only reads (ports, node_addrs, node_config,
// flow_timeouts, node_udp); its flow tables and counters are its own, the
// flow tables holding a copy of the client's entries, so the packet meets
// what a real one would, and nothing of the loaded nodeport changes. Runs in
// the caller's network namespace (the socket lookups of the programs).
Result<ExplainDecision> external_decision(const PinDir& pin_dir, NodePort node_port, Backend from,
                                          const IpAddr& to);

// The socket hooks' decision for a process of the node sending to loopback
// address `to`, which cannot be test-run: the rule of bpf/sock.bpf.c
// (loopback in the node's network namespace and a mapped port) applied to
// the `ports` entry.
ExplainDecision local_decision(NodePort node_port, const IpAddr& to, const std::optional<Mapping>& mapping);

}  // namespace nodeport::explain_parts
