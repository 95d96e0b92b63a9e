// The key of `sock_end_targets` and `replaced_backends` (struct
// np_sock_end_target): an IPv4 backend and the node port it was mapped on;
// and of `sock_end_targets6` and `replaced_backends6` (np_sock_end_target6),
// the same for an IPv6 backend.
#pragma once

#include <arpa/inet.h>

#include <cstring>
#include <optional>
#include <utility>

#include "nodeport/abi.h"
#include "nodeport/types.hpp"

namespace nodeport {

inline std::optional<np_sock_end_target> backend_key(NodePort node_port, const Backend& backend) {
    const auto* v4 = std::get_if<Ipv4>(&backend.addr);
    if (!v4)
        return std::nullopt;
    np_sock_end_target key{};
    key.backend_addr_be = v4->addr_be;
    key.backend_port_be = htons(backend.port);
    key.node_port_be = htons(node_port.port);
    key.proto = static_cast<__u8>(node_port.proto);
    return key;
}

inline std::pair<NodePort, Backend> from_backend_key(const np_sock_end_target& key) {
    return {NodePort{static_cast<Proto>(key.proto), ntohs(key.node_port_be)},
            Backend{Ipv4{key.backend_addr_be}, ntohs(key.backend_port_be)}};
}

inline std::optional<np_sock_end_target6> backend_key6(NodePort node_port, const Backend& backend) {
    const auto* v6 = std::get_if<Ipv6>(&backend.addr);
    if (!v6)
        return std::nullopt;
    np_sock_end_target6 key{};
    std::memcpy(key.backend_addr_be, v6->bytes.data(), sizeof key.backend_addr_be);
    key.backend_port_be = htons(backend.port);
    key.node_port_be = htons(node_port.port);
    key.proto = static_cast<__u8>(node_port.proto);
    return key;
}

inline std::pair<NodePort, Backend> from_backend_key6(const np_sock_end_target6& key) {
    Ipv6 addr;
    std::memcpy(addr.bytes.data(), key.backend_addr_be, sizeof key.backend_addr_be);
    return {NodePort{static_cast<Proto>(key.proto), ntohs(key.node_port_be)}, Backend{addr, ntohs(key.backend_port_be)}};
}

}  // namespace nodeport
