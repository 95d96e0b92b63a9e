// The few rtnetlink questions the loader asks, through libnl.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "nodeport/fd.hpp"
#include "nodeport/result.hpp"

namespace nodeport::netlink {

// The interface of the IPv4 default route in the main table of the calling
// thread's network namespace.
Result<std::string> default_route_interface();

struct Link {
    std::string name;
    int master = 0;         // IFLA_MASTER: the bridge (bond, VRF) it is a port of; 0 for none
    bool loopback = false;  // IFF_LOOPBACK
    unsigned type = 0;      // ARPHRD_*: its link type
};

// The interfaces of the calling thread's network namespace. Asked of
// rtnetlink, not /sys/class/net: a process that only switched its network
// namespace (nsenter --net) still sees the sysfs of the namespace it came from.
Result<std::vector<Link>> list_links();

// A non-blocking rtnetlink socket that receives the namespace's link and
// IPv4 address notifications, and IPv4 route ones when `routes`.
Result<Fd> subscribe(bool routes);

// Reads every notification pending on a subscribed socket. Their content does
// not matter to the caller, which re-reads the whole state; an overrun
// (ENOBUFS: notifications were lost) is not an error for the same reason.
Result<void> drain(int fd);

// How many tc filters hang off a parent (e.g. clsact ingress) of an interface.
Result<int> count_tc_filters(int ifindex, std::uint32_t parent);

}  // namespace nodeport::netlink
