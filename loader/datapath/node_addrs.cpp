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
#include <memory>
#include <set>

#include "base/map_keys.hpp"
#include "nodeport/abi.h"

namespace nodeport {
namespace {

bool is_loopback(Ipv4 addr) {
    return (ntohl(addr.addr_be) >> 24) == 127;
}

np_node_addr to_key(Ipv4 addr) {
    np_node_addr key{};
    key.family = NP_FAMILY_IPV4;
    key.addr_be[0] = addr.addr_be;
    return key;
}

}  // namespace

Result<std::vector<InterfaceAddr>> interface_addrs() {
    ifaddrs* raw = nullptr;
    if (::getifaddrs(&raw) != 0)
        return errno_error(errno, "list interface addresses");
    std::unique_ptr<ifaddrs, decltype(&::freeifaddrs)> list(raw, ::freeifaddrs);
    std::vector<InterfaceAddr> out;
    for (const ifaddrs* ifa = raw; ifa; ifa = ifa->ifa_next) {
        if (!ifa->ifa_addr || ifa->ifa_addr->sa_family != AF_INET)
            continue;
        std::uint32_t mask =
            ifa->ifa_netmask ? ntohl(reinterpret_cast<const sockaddr_in*>(ifa->ifa_netmask)->sin_addr.s_addr) : ~0u;
        out.push_back(InterfaceAddr{ifa->ifa_name, Ipv4{reinterpret_cast<const sockaddr_in*>(ifa->ifa_addr)->sin_addr.s_addr},
                                    std::popcount(mask)});
    }
    return out;
}

Result<std::vector<NodeAddr>> discover_node_addrs() {
    auto addrs = interface_addrs();
    if (!addrs)
        return std::unexpected(addrs.error());
    std::vector<NodeAddr> out;
    for (const auto& a : *addrs)
        if (!is_loopback(a.addr))
            out.push_back(NodeAddr{a.addr, a.interface});
    return out;
}

Result<std::vector<NodeAddr>> resolve_node_addrs(const std::vector<Ipv4>& given) {
    if (given.empty())
        return discover_node_addrs();
    std::vector<NodeAddr> out;
    for (Ipv4 addr : given) {
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
    std::set<Ipv4> wanted;
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
        if (key.family != NP_FAMILY_IPV4 || !wanted.contains(Ipv4{key.addr_be[0]}))
            stale.push_back(key);
    for (const auto& key : stale)
        if (bpf_map_delete_elem(map_fd, &key) != 0 && errno != ENOENT)
            return errno_error(errno, "remove stale node address");
    return {};
}

}  // namespace nodeport
