// The few rtnetlink questions the loader asks, through libnl.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "nodeport/result.hpp"

namespace nodeport::netlink {

// The interface of the IPv4 default route in the main table of the calling
// thread's network namespace.
Result<std::string> default_route_interface();

struct Link {
    std::string name;
    int ifindex = 0;
    int master = 0;         // IFLA_MASTER: the bridge (bond, VRF) it is a port of; 0 for none
    bool loopback = false;  // IFF_LOOPBACK
};

// The interfaces of the calling thread's network namespace. Asked of
// rtnetlink, not /sys/class/net: a process that only switched its network
// namespace (nsenter --net) still sees the sysfs of the namespace it came from.
Result<std::vector<Link>> list_links();

// How many tc filters hang off a parent (e.g. clsact ingress) of an interface.
Result<int> count_tc_filters(int ifindex, std::uint32_t parent);

}  // namespace nodeport::netlink
