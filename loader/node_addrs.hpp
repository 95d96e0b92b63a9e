#pragma once

#include <cstdint>
#include <vector>

#include "nodeport/datapath.hpp"
#include "nodeport/fd.hpp"
#include "nodeport/result.hpp"

namespace nodeport {

// The given addresses, or the discovered ones when none are given.
Result<std::vector<NodeAddr>> resolve_node_addrs(const std::vector<Ipv4>& given);

// Makes the map hold exactly these addresses.
Result<void> write_node_addrs(int map_fd, const std::vector<NodeAddr>& addrs);

}  // namespace nodeport
