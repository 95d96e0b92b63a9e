// The external datapath's flow table, for `nodeport flows`: one entry per
// connection that entered through an external interface and was translated.
#pragma once

#include <chrono>
#include <filesystem>
#include <vector>

#include "nodeport/result.hpp"
#include "nodeport/types.hpp"

namespace nodeport {

struct Flow {
    Proto proto = Proto::tcp;
    Backend client;   // the client's address and port, as the sandbox sees them too
    Backend node;     // the node address and port the client addressed
    Backend backend;  // where the flow goes
    bool closing = false;  // TCP FIN or RST seen
    std::chrono::nanoseconds idle{0};  // since the last packet (refreshed about once a second)
};

// Every recorded flow, sorted by client.
Result<std::vector<Flow>> list_flows(const std::filesystem::path& pin_dir);

}  // namespace nodeport
