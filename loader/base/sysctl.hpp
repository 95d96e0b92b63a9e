// The sysctls nodeport depends on, read in the current network namespace.
#pragma once

#include <string>

#include "nodeport/result.hpp"

namespace nodeport {

// net.ipv4.ip_forward: true when 1. Both ways of forwarding need it (the
// kernel's forward path, and the FIB lookup of forward = fib).
Result<bool> read_ip_forward();

// net.ipv6.conf.all.forwarding: true when 1; the kernel forwards translated
// IPv6 packets only then.
Result<bool> read_ipv6_forwarding();

// Why the namespace has no IPv6, for people: the kernel runs without it
// (ipv6.disable=1: no /proc/sys/net/ipv6), or net.ipv6.conf.all.disable_ipv6
// is 1. Empty when it has IPv6.
std::string ipv6_off_reason();

}  // namespace nodeport
