// The flow tables of map ABI 3, in one list for what counts and reports
// them (status, metrics): a table's pin name, the FlowCounts member its
// count goes to, and how many of its entries one flow takes.
#pragma once

#include <array>
#include <cstddef>
#include <string_view>

#include "nodeport/status.hpp"

namespace nodeport {

struct FlowTableLayout {
    std::string_view name;
    std::size_t FlowCounts::*count;
    unsigned entries_per_flow;  // `flows` keeps one per direction (include/nodeport/abi.h)
};

inline constexpr std::array flow_tables{
    FlowTableLayout{"flows", &FlowCounts::tcp, 2},
    FlowTableLayout{"half_open_flows", &FlowCounts::tcp_half_open, 1},
    FlowTableLayout{"udp_flows", &FlowCounts::udp, 2},
};

}  // namespace nodeport
