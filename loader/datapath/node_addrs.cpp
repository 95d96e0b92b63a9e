// The node's own addresses: discovered from the interfaces of the current
// network namespace, and written to the `node_addrs` map.
#include "datapath/node_addrs.hpp"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <iterator>
#include <memory>
#include <set>

#include "base/map_keys.hpp"
#include "nodeport/abi.h"

namespace nodeport {
namespace {

bool is_loopback(const IpAddr& addr) {
    const auto* v4 = std::get_if<Ipv4>(&addr);
    return v4 && (ntohl(v4->addr_be) >> 24) == 127;
}

np_node_addr to_key(const IpAddr& addr) {
    np_node_addr key{};
    if (const auto* v6 = std::get_if<Ipv6>(&addr)) {
        key.family = NP_FAMILY_IPV6;
        std::memcpy(key.addr_be, v6->bytes.data(), sizeof key.addr_be);
    } else {
        key.family = NP_FAMILY_IPV4;
        key.addr_be[0] = std::get<Ipv4>(addr).addr_be;
    }
    return key;
}

IpAddr from_key(const np_node_addr& key) {
    if (key.family == NP_FAMILY_IPV6) {
        Ipv6 addr;
        std::memcpy(addr.bytes.data(), key.addr_be, sizeof key.addr_be);
        return addr;
    }
    return Ipv4{key.addr_be[0]};
}

using IfaddrsList = std::unique_ptr<ifaddrs, decltype(&::freeifaddrs)>;

// The interfaces' addresses, read once (getifaddrs).
Result<IfaddrsList> read_ifaddrs() {
    ifaddrs* raw = nullptr;
    if (::getifaddrs(&raw) != 0)
        return errno_error(errno, "list interface addresses");
    return IfaddrsList(raw, ::freeifaddrs);
}

// Every IPv4 address of `list`, loopback included.
std::vector<InterfaceAddr> interface_addrs4(const ifaddrs* list) {
    std::vector<InterfaceAddr> out;
    for (const ifaddrs* ifa = list; ifa; ifa = ifa->ifa_next) {
        if (!ifa->ifa_addr || ifa->ifa_addr->sa_family != AF_INET)
            continue;
        std::uint32_t mask =
            ifa->ifa_netmask ? ntohl(reinterpret_cast<const sockaddr_in*>(ifa->ifa_netmask)->sin_addr.s_addr) : ~0u;
        out.push_back(InterfaceAddr{ifa->ifa_name, Ipv4{reinterpret_cast<const sockaddr_in*>(ifa->ifa_addr)->sin_addr.s_addr},
                                    std::popcount(mask)});
    }
    return out;
}

// The node's IPv6 addresses other hosts and namespaces can reach: global
// and unique-local, not ::1 or link-local (which needs an interface to mean
// anything), as parse_node_ip takes them.
std::vector<NodeAddr> interface_addrs6(const ifaddrs* list) {
    std::vector<NodeAddr> out;
    for (const ifaddrs* ifa = list; ifa; ifa = ifa->ifa_next) {
        if (!ifa->ifa_addr || ifa->ifa_addr->sa_family != AF_INET6)
            continue;
        Ipv6 addr;
        std::memcpy(addr.bytes.data(), &reinterpret_cast<const sockaddr_in6*>(ifa->ifa_addr)->sin6_addr,
                    addr.bytes.size());
        if (parse_node_ip(to_string(addr)))
            out.push_back(NodeAddr{addr, ifa->ifa_name});
    }
    return out;
}

}  // namespace

Result<std::vector<InterfaceAddr>> interface_addrs() {
    auto list = read_ifaddrs();
    if (!list)
        return std::unexpected(list.error());
    return interface_addrs4(list->get());
}

Result<std::vector<NodeAddr>> discover_node_addrs() {
    auto list = read_ifaddrs();
    if (!list)
        return std::unexpected(list.error());
    std::vector<NodeAddr> out;
    for (const auto& a : interface_addrs4(list->get()))
        if (!is_loopback(a.addr))
            out.push_back(NodeAddr{a.addr, a.interface});
    std::ranges::move(interface_addrs6(list->get()), std::back_inserter(out));
    return out;
}

Result<std::vector<NodeAddr>> resolve_node_addrs(const std::vector<IpAddr>& given) {
    if (given.empty())
        return discover_node_addrs();
    std::vector<NodeAddr> out;
    for (const IpAddr& addr : given) {
        // Loopback is the node only inside the node's netns, which the BPF
        // side checks by cookie; as a node address it would capture
        // every sandbox's own 127.0.0.1.
        if (is_loopback(addr))
            return plain_error("node address " + to_string(addr) +
                                               " is loopback: 127.0.0.0/8 is always the node's in its own namespace");
        out.push_back(NodeAddr{addr, {}});
    }
    return out;
}

Result<void> write_node_addrs(int map_fd, const std::vector<NodeAddr>& addrs) {
    std::set<IpAddr> wanted;
    for (const auto& a : addrs) {
        np_node_addr key = to_key(a.addr);
        np_node_addr_info info{};
        info.ifindex = a.interface.empty() ? 0 : ::if_nametoindex(a.interface.c_str());
        if (bpf_map_update_elem(map_fd, &key, &info, BPF_ANY) != 0)
            return errno_error(errno, "add node address " + to_string(a.addr));
        wanted.insert(a.addr);
    }
    // Then drop the addresses the node no longer has.
    auto keys = map_keys<np_node_addr>(map_fd, "node_addrs");
    if (!keys)
        return std::unexpected(keys.error());
    std::vector<np_node_addr> stale;
    for (const auto& key : *keys)
        if ((key.family != NP_FAMILY_IPV4 && key.family != NP_FAMILY_IPV6) || !wanted.contains(from_key(key)))
            stale.push_back(key);
    for (const auto& key : stale)
        if (bpf_map_delete_elem(map_fd, &key) != 0 && errno != ENOENT)
            return errno_error(errno, "remove stale node address");
    return {};
}

}  // namespace nodeport
