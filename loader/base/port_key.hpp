// The key of `ports` and `port_counters` (struct np_port_key): a node port
// and a family; and the backend address a `ports` value holds.
#pragma once

#include <cstring>
#include <optional>

#include "nodeport/abi.h"
#include "nodeport/types.hpp"

namespace nodeport {

inline np_port_key port_key(NodePort node_port, Family family) {
    np_port_key key{};
    key.proto = static_cast<__u8>(node_port.proto);
    key.family = family == Family::ipv6 ? NP_PORT_KEY_IPV6 : NP_PORT_KEY_IPV4;
    key.port = node_port.port;
    return key;
}

inline np_port_key port_key(const MappingKey& key) { return port_key(key.node_port, key.family); }

inline MappingKey from_port_key(const np_port_key& key) {
    return {NodePort{static_cast<Proto>(key.proto), key.port},
            key.family == NP_PORT_KEY_IPV6 ? Family::ipv6 : Family::ipv4};
}

// The backend address of a `ports` value (np_backend.family and addr).
inline IpAddr backend_addr(const np_backend& value) {
    if (value.family == NP_FAMILY_IPV6) {
        Ipv6 addr;
        std::memcpy(addr.bytes.data(), value.addr, sizeof value.addr);
        return addr;
    }
    Ipv4 addr;
    std::memcpy(&addr.addr_be, value.addr, sizeof addr.addr_be);
    return addr;
}

inline void store_backend_addr(np_backend& value, const IpAddr& addr) {
    std::memset(value.addr, 0, sizeof value.addr);
    if (const auto* v6 = std::get_if<Ipv6>(&addr)) {
        value.family = NP_FAMILY_IPV6;
        std::memcpy(value.addr, v6->bytes.data(), sizeof value.addr);
    } else {
        value.family = NP_FAMILY_IPV4;
        std::memcpy(value.addr, &std::get<Ipv4>(addr).addr_be, sizeof(__be32));
    }
}

}  // namespace nodeport
