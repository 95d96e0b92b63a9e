#include "nodeport/connections.hpp"

#include <arpa/inet.h>
#include <bpf/bpf.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <thread>
#include <tuple>

#include "base/netns.hpp"
#include "base/pin_dir.hpp"
#include "datapath/sock_end_install.hpp"
#include "nodeport/abi.h"
#include "nodeport/flows.hpp"

namespace nodeport {
namespace {

using Key = std::tuple<Backend, NodePort>;

// The node's sockets, from the counting iterators; why not, when they are
// not pinned or this is not the namespace they count.
std::string count_local(const PinDir& dir, std::map<Key, Connections>& counts) {
    const std::string not_counted = "the node's connections were not counted: ";
    std::string out;
    for (const char* name : {"np_count_tcp", "np_count_udp"}) {
        Fd link(dir.obj_get(link_pin(name)));
        if (!link.valid())
            return not_counted + "the counting iterators are not loaded (run `nodeport load` of this version; they "
                                 "need Linux >= 6.5)";
        auto more = sock_end::read_iterator(link.get());
        if (!more)
            return not_counted + more.error().message;
        out += *more;
    }
    // The iterators walk the sockets of the caller's network namespace.
    auto config = dir.config();
    auto cookie = netns::current_cookie();
    if (!config || !cookie || *cookie != config->node_netns_cookie)
        return not_counted + "this runs outside the network namespace nodeport was loaded in";
    for (std::size_t at = 0; at + sizeof(np_local_conn) <= out.size(); at += sizeof(np_local_conn)) {
        np_local_conn conn{};
        std::memcpy(&conn, out.data() + at, sizeof conn);
        Backend backend{Ipv4{conn.backend_addr_be}, ntohs(conn.backend_port_be)};
        ++counts[{backend, NodePort{static_cast<Proto>(conn.proto), ntohs(conn.node_port_be)}}].local;
    }
    return {};
}

}  // namespace

Connections ConnectionCount::of(const Backend& backend) const {
    Connections sum;
    for (const auto& e : entries)
        if (e.backend == backend) {
            sum.external += e.count.external;
            sum.local += e.count.local;
        }
    return sum;
}

Connections ConnectionCount::of(NodePort node_port, const Backend& backend) const {
    for (const auto& e : entries)
        if (e.backend == backend && e.node_port == node_port)
            return e.count;
    return {};
}

Result<ConnectionCount> count_connections(const PinDir& dir) {
    auto flows = list_flows(dir);
    if (!flows)
        return std::unexpected(flows.error());
    std::map<Key, Connections> counts;
    for (const auto& f : *flows)  // a closed connection's flow is gone at its final ACK
        ++counts[{f.backend, NodePort{f.proto, f.node.port}}].external;
    ConnectionCount out;
    out.local_not_counted = count_local(dir, counts);
    for (const auto& [key, count] : counts)
        out.entries.push_back({std::get<NodePort>(key), std::get<Backend>(key), count});
    return out;
}

Result<ConnectionCount> count_connections(const std::filesystem::path& dir) {
    return pin_dir::with_opened(dir, [](const PinDir& opened) { return count_connections(opened); });
}

Result<DrainResult> drain_backends(const std::filesystem::path& dir, const std::vector<Backend>& backends,
                                   std::chrono::milliseconds timeout, const DrainProgress& progress) {
    return pin_dir::with_opened(
        dir, [&](const PinDir& opened) { return drain_backends(opened, backends, timeout, progress); });
}

Result<DrainResult> drain_backends(const PinDir& dir, const std::vector<Backend>& backends,
                                   std::chrono::milliseconds timeout, const DrainProgress& progress) {
    using clock = std::chrono::steady_clock;
    // Often enough that a drain ends within a tenth of a second of the last
    // close; a count walks the flow tables and the translated sockets once.
    constexpr auto poll = std::chrono::milliseconds(100);
    const auto start = clock::now();
    const auto deadline = start + timeout;
    DrainResult result;
    for (;;) {
        auto count = count_connections(dir);
        if (!count)
            return std::unexpected(count.error());
        result.left = {};
        for (const auto& backend : backends) {
            auto c = count->of(backend);
            result.left.external += c.external;
            result.left.local += c.local;
        }
        result.local_not_counted = count->local_not_counted;
        // The socket iterators read `sock_xlat`, the IPv4 translations: a
        // drain of an IPv6 backend must not pass for one of everything.
        if (result.local_not_counted.empty() &&
            std::ranges::any_of(backends, [](const Backend& b) { return family_of(b.addr) == Family::ipv6; }))
            result.local_not_counted = "the node's connections to an IPv6 backend are not counted yet";
        result.waited = std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() - start);
        result.drained = result.left.total() == 0;
        if (result.drained)
            return result;
        if (progress && !progress(result.left)) {
            result.stopped = true;
            return result;
        }
        const auto now = clock::now();
        if (now >= deadline)
            return result;
        std::this_thread::sleep_for(std::min<clock::duration>(poll, deadline - now));
    }
}

}  // namespace nodeport
