// The first packet of a client's connection, as bytes on an Ethernet link:
// what `explain` gives np_tc_ingress to decide on.
#pragma once

#include <cstdint>
#include <vector>

#include "nodeport/types.hpp"

namespace nodeport::explain_parts {

inline constexpr std::size_t eth_hlen = 14;
inline constexpr std::size_t ip_hlen = 20;
inline constexpr std::size_t ip6_hlen = 40;

// A TCP SYN (no options) or a one-byte UDP datagram from `from` to `to`,
// over IPv4 or IPv6 (the addresses' family, one for both), with valid
// checksums.
std::vector<std::uint8_t> first_packet(Proto proto, Backend from, Backend to);

}  // namespace nodeport::explain_parts
