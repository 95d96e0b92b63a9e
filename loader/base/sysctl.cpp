#include "base/sysctl.hpp"

#include <fstream>

namespace nodeport {

Result<bool> read_ip_forward() {
    std::ifstream sysctl("/proc/sys/net/ipv4/ip_forward");
    int enabled = 0;
    if (!(sysctl >> enabled))
        return plain_error("cannot read /proc/sys/net/ipv4/ip_forward");
    return enabled == 1;
}

}  // namespace nodeport
