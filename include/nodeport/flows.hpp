// The external datapath's flow tables, for `nodeport flows`: one entry per
// connection that entered through an external interface and was translated.
#pragma once

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <optional>
#include <string_view>
#include <vector>

#include "nodeport/pin_dir.hpp"
#include "nodeport/result.hpp"
#include "nodeport/types.hpp"

// Exported from libnodeport.so (the rest of the library is hidden).
#pragma GCC visibility push(default)

namespace nodeport {

enum class FlowState {
    syn_sent,     // TCP: SYN translated, handshake not finished (`half_open_flows`)
    established,  // TCP connection, or a UDP flow
    picked_up,    // TCP connection picked up mid-stream (its flow was lost); idles out like a closing one
    fin_wait,     // TCP: FIN seen from one side or both; the final ACK ends the flow
};

std::string_view to_string(FlowState state);  // "syn-sent", "established", ...

struct Flow {
    Proto proto = Proto::tcp;
    Backend client;   // the client's address and port, as the sandbox sees them too
    Backend node;     // the node address and port the client addressed
    Backend backend;  // where the flow goes
    FlowState state = FlowState::established;
    std::chrono::nanoseconds idle{0};  // since the last packet (refreshed about once a second)
    std::chrono::nanoseconds expires_in{0};  // until the entry is inert, unless a packet refreshes it
};

// Every flow that is not expired, sorted by protocol, client and node port.
Result<std::vector<Flow>> list_flows(const PinDir& pin_dir);
Result<std::vector<Flow>> list_flows(const std::filesystem::path& pin_dir);

// Forgets the flows of one node port (every flow when nullopt), both entries
// of each; returns how many flows. Their packets then pass untranslated, so
// established connections through the port break: this is for clearing
// state by hand.
Result<std::size_t> flush_flows(const PinDir& pin_dir, std::optional<NodePort> node_port);
Result<std::size_t> flush_flows(const std::filesystem::path& pin_dir, std::optional<NodePort> node_port);

}  // namespace nodeport

#pragma GCC visibility pop
