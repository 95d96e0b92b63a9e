#include "base/sysctl.hpp"

#include <fstream>
#include <string>

namespace nodeport {

namespace {

Result<bool> read_flag(const char* path) {
    std::ifstream sysctl(path);
    int enabled = 0;
    if (!(sysctl >> enabled))
        return plain_error(std::string("cannot read ") + path);
    return enabled == 1;
}

}  // namespace

Result<bool> read_ip_forward() { return read_flag("/proc/sys/net/ipv4/ip_forward"); }

Result<bool> read_ipv6_forwarding() { return read_flag("/proc/sys/net/ipv6/conf/all/forwarding"); }

std::string ipv6_off_reason() {
    auto disabled = read_flag("/proc/sys/net/ipv6/conf/all/disable_ipv6");
    if (!disabled)
        return "the kernel runs without IPv6 (ipv6.disable=1)";
    if (*disabled)
        return "net.ipv6.conf.all.disable_ipv6 is 1 in this network namespace";
    return "";
}

}  // namespace nodeport
