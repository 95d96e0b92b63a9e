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

// Reads the counting iterators `names` (one per protocol) into `out`, one
// after the other; false when one is not pinned.
Result<bool> read_iterators(const PinDir& dir, std::initializer_list<const char*> names, std::string& out) {
    for (const char* name : names) {
        Fd link(dir.obj_get(link_pin(name)));
        if (!link.valid())
            return false;
        auto more = sock_end::read_iterator(link.get());
        if (!more)
            return std::unexpected(more.error());
        out += *more;
    }
    return true;
}

// Calls `f` with each record of type T in an iterator's output.
template <class T, class F>
void for_each_record(const std::string& out, F f) {
    for (std::size_t at = 0; at + sizeof(T) <= out.size(); at += sizeof(T)) {
        T record{};
        std::memcpy(&record, out.data() + at, sizeof record);
        f(record);
    }
}

void add_local(std::map<Key, Connections>& counts, const IpAddr& addr, __be16 port_be, __u8 proto,
               __be16 node_port_be) {
    ++counts[{Backend{addr, ntohs(port_be)}, NodePort{static_cast<Proto>(proto), ntohs(node_port_be)}}].local;
}

// The node's sockets, from the counting iterators; why not, when they are
// not pinned or this is not the namespace they count. `not_counted6`: why
// those to IPv6 backends were not, when the others were.
std::string count_local(const PinDir& dir, std::map<Key, Connections>& counts, std::string& not_counted6) {
    const std::string not_counted = "the node's connections were not counted: ";
    std::string out, out6;
    auto read = read_iterators(dir, {"np_count_tcp", "np_count_udp"}, out);
    if (!read)
        return not_counted + read.error().message;
    if (!*read)
        return not_counted + "the counting iterators are not loaded (run `nodeport load` of this version; they "
                             "need Linux >= 6.5)";
    // Pins of a load before np_count6_*: the IPv4 count still stands.
    auto read6 = read_iterators(dir, {"np_count6_tcp", "np_count6_udp"}, out6);
    if (!read6)
        return not_counted + read6.error().message;
    if (!*read6)
        not_counted6 = "the node's connections to IPv6 backends were not counted: the loaded programs predate it "
                       "(run `nodeport load` of this version)";
    // The iterators walk the sockets of the caller's network namespace.
    auto config = dir.config();
    auto cookie = netns::current_cookie();
    if (!config || !cookie || *cookie != config->node_netns_cookie)
        return not_counted + "this runs outside the network namespace nodeport was loaded in";
    for_each_record<np_local_conn>(out, [&](const np_local_conn& c) {
        add_local(counts, Ipv4{c.backend_addr_be}, c.backend_port_be, c.proto, c.node_port_be);
    });
    for_each_record<np_local_conn6>(out6, [&](const np_local_conn6& c) {
        Ipv6 addr;
        std::memcpy(addr.bytes.data(), c.backend_addr_be, sizeof c.backend_addr_be);
        add_local(counts, addr, c.backend_port_be, c.proto, c.node_port_be);
    });
    return {};
}

}  // namespace

const std::string& ConnectionCount::local_not_counted_of(Family family) const {
    return local_not_counted.empty() && family == Family::ipv6 ? local6_not_counted : local_not_counted;
}

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
    out.local_not_counted = count_local(dir, counts, out.local6_not_counted);
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
    // The IPv6 reason for what was not counted only when an IPv6 backend is
    // among them.
    const Family family =
        std::ranges::any_of(backends, [](const Backend& b) { return family_of(b.addr) == Family::ipv6; })
            ? Family::ipv6
            : Family::ipv4;
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
        result.local_not_counted = count->local_not_counted_of(family);
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
