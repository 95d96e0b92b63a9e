// The node's way to a backend, for `explain` (nodeport/explain.hpp): the
// route and neighbour entry iproute2 shows, and whether the backend answers.
// Run in the node's network namespace.
#pragma once

#include <chrono>

#include "nodeport/explain.hpp"

namespace nodeport::explain_parts {

// `ip -j route get ADDR`, and `ip -j neigh show` of the next hop.
ExplainRoute route_to(const IpAddr& addr);

// A TCP connect (then closed at once), or an empty UDP datagram on a
// connected socket waiting for an answer or an ICMP error, straight to the
// backend, within `timeout`.
ExplainProbe probe(Proto proto, Backend backend, std::chrono::milliseconds timeout);

}  // namespace nodeport::explain_parts
