// The sysctls nodeport depends on, read in the current network namespace.
#pragma once

#include "nodeport/result.hpp"

namespace nodeport {

// net.ipv4.ip_forward: true when 1. Both ways of forwarding need it (the
// kernel's forward path, and the FIB lookup of forward = fib).
Result<bool> read_ip_forward();

}  // namespace nodeport
