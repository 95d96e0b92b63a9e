// `nodeport explain`: from "this port is unreachable" to the cause, from the
// datapath's own decision rather than a re-implementation of it. Read only:
// no map of the loaded nodeport is written, no flow is made, no counter moves.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "nodeport/flows.hpp"
#include "nodeport/result.hpp"
#include "nodeport/stats.hpp"
#include "nodeport/status.hpp"
#include "nodeport/types.hpp"

// Exported from libnodeport.so (the rest of the library is hidden).
#pragma GCC visibility push(default)

namespace nodeport {

struct ExplainRequest {
    NodePort node_port;
    // The client: a documentation address of the family of `to` (192.0.2.10,
    // RFC 5737; 2001:db8::10, RFC 3849) by default, IPv4 without `to`;
    // without a port, one no flow of that client uses. `from` and `to` are of
    // one family: a client reaches the backend of its own.
    std::optional<IpAddr> from;
    std::optional<std::uint16_t> from_port;
    // The address the client sends to: by default the node address of the
    // client's flow on the port (--from), else the first node address on an
    // interface the TC programs are attached to.
    // A loopback address (127.0.0.0/8, ::1) asks about the node's own
    // processes (the socket hooks), any other about a client outside the
    // node (the TC programs).
    std::optional<IpAddr> to;
    std::chrono::milliseconds probe_timeout{1000};
};

// What the datapath does with the client's first packet (a TCP SYN, a UDP
// datagram).
struct ExplainDecision {
    bool external = true;  // the TC programs decide; false: the socket hooks
    bool translated = false;
    std::optional<Backend> backend;  // where the packet (or the socket) goes, when translated
    std::string reason;              // why not, as `stats` names it ("port_not_mapped"); "" when translated
    std::string how;                 // one line: what was run or read to decide
};

// The node's way to the backend.
struct ExplainRoute {
    std::string dev;           // the interface the node sends to the backend on; "" when there is no route
    std::optional<IpAddr> via; // a gateway, when not on a link of the node
    std::string neighbour;     // the backend's (or gateway's) neighbour entry state ("REACHABLE", "FAILED"), "" for none
    std::string error;         // why the route could not be read
};

enum class ProbeOutcome {
    answered,  // TCP: the connection was accepted; UDP: a datagram came back
    refused,   // TCP RST, or ICMP port unreachable
    no_answer, // nothing within the timeout (UDP: open or filtered, or gone)
    unreachable,  // ICMP host or net unreachable, or no route
};
std::string_view to_string(ProbeOutcome outcome);  // "answered", ...

struct ExplainProbe {
    Backend backend;
    ProbeOutcome outcome = ProbeOutcome::no_answer;
    std::chrono::milliseconds took{0};
    std::string detail;  // the error, for people
};

struct Explanation {
    NodePort node_port;
    Backend from;
    IpAddr to;
    std::optional<Mapping> mapping;  // the `ports` entry of the client's family, if any
    ExplainDecision decision;
    std::vector<Flow> flows;         // flows recorded for the client (--from) on this node port
    std::optional<ExplainRoute> route;  // to the backend the decision chose
    std::optional<ExplainProbe> probe;
    std::vector<Problem> problems;   // what `status` finds about this port: DNAT rules, listeners, ...
    std::vector<std::string> not_checked;
    std::optional<PortCounters> counters;
    // The verdict: a client as given reaches a live backend. Otherwise
    // `cause` names the first reason, in one line.
    bool reaches = false;
    std::string cause;
};

// Runs every check. Fails (a Result error) only when nodeport is not
// loaded at `pin_dir`, or loaded in another network namespace.
Result<Explanation> explain(const std::filesystem::path& pin_dir, const ExplainRequest& request);

}  // namespace nodeport

#pragma GCC visibility pop
