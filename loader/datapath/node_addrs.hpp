#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "nodeport/datapath_types.hpp"
#include "nodeport/fd.hpp"
#include "nodeport/result.hpp"

namespace nodeport {

// An IPv4 address of an interface of the current network namespace.
struct InterfaceAddr {
    std::string interface;
    Ipv4 addr;
    int prefix_len = 32;
};

// Every IPv4 address of the interfaces of the current network namespace
// (getifaddrs), loopback included.
Result<std::vector<InterfaceAddr>> interface_addrs();

// The given addresses, or the discovered ones when none are given.
Result<std::vector<NodeAddr>> resolve_node_addrs(const std::vector<IpAddr>& given);

// Makes the map hold exactly these addresses.
Result<void> write_node_addrs(int map_fd, const std::vector<NodeAddr>& addrs);

}  // namespace nodeport
