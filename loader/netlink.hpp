// The few rtnetlink questions the loader asks, through libnl.
#pragma once

#include <cstdint>
#include <string>

#include "nodeport/result.hpp"

namespace nodeport::netlink {

// The interface of the IPv4 default route in the main table of the calling
// thread's network namespace.
Result<std::string> default_route_interface();

// How many tc filters hang off a parent (e.g. clsact ingress) of an interface.
Result<int> count_tc_filters(int ifindex, std::uint32_t parent);

}  // namespace nodeport::netlink
