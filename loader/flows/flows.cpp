#include "nodeport/flows.hpp"

#include <arpa/inet.h>
#include <bpf/bpf.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <tuple>

#include "base/bpf_clock.hpp"
#include "base/pin_dir.hpp"
#include "flows/flow_entries.hpp"
#include "nodeport/abi.h"
#include "nodeport/flow_lifetime.h"

namespace nodeport {
namespace {

using std::chrono::nanoseconds;

FlowState state_of(const np_flow& f) {
    if (f.state == NP_FLOW_FIN_WAIT)
        return FlowState::fin_wait;
    if (f.state == NP_FLOW_PICKED_UP)
        return FlowState::picked_up;
    return FlowState::established;
}

Result<np_flow_timeouts> read_timeouts(const PinDir& dir) {
    auto map = dir.map("flow_timeouts");
    if (!map)
        return std::unexpected(map.error());
    __u32 zero = 0;
    np_flow_timeouts t{};
    if (bpf_map_lookup_elem(map->get(), &zero, &t) != 0)
        return errno_error(errno, "read flow timeouts map");
    return t;
}

// An address and port of a flow entry of `family` (the key's: both entries
// and the handshake hold addresses of the family of their flow).
Backend endpoint(__u8 family, const __be32 (&addr_be)[4], __be16 port_be) {
    if (family == NP_FAMILY_IPV6) {
        Ipv6 addr;
        std::memcpy(addr.bytes.data(), addr_be, sizeof addr.bytes);
        return Backend{addr, ntohs(port_be)};
    }
    return Backend{Ipv4{addr_be[0]}, ntohs(port_be)};
}

// A flow of `flows` or `udp_flows`, or a handshake of `half_open_flows`, as
// people see it: the client, the node address and port it used, the backend.
Flow flow_of(const np_flow_key& key, const np_flow& value) {
    const bool forward = key.dir == NP_FLOW_TO_BACKEND;  // the peer is the node; in a reply entry, the backend
    Flow flow;
    flow.proto = static_cast<Proto>(key.proto);
    flow.client = endpoint(key.family, key.client_addr_be, key.client_port_be);
    flow.node = endpoint(key.family, forward ? key.peer_addr_be : value.addr_be,
                         forward ? key.peer_port_be : value.port_be);
    flow.backend = endpoint(key.family, forward ? value.addr_be : key.peer_addr_be,
                            forward ? value.port_be : key.peer_port_be);
    flow.state = state_of(value);
    return flow;
}

Flow flow_of(const np_flow_key& key, const np_half_open& value) {
    Flow flow;
    flow.client = endpoint(key.family, key.client_addr_be, key.client_port_be);
    flow.node = endpoint(key.family, value.node_addr_be, value.node_port_be);
    flow.backend = endpoint(key.family, key.peer_addr_be, key.peer_port_be);
    flow.state = FlowState::syn_sent;
    return flow;
}

// Every flow of the tables of bpf/flows.bpf.h: fn(map fd, key, flow,
// last_seen_ns, state: the entry's NP_FLOW_*) for the client-to-backend entry
// of each pair (it says all there is to say) and for each handshake; the
// flow's node port says which one it is.
template <class Fn>
Result<void> for_each_flow(const PinDir& dir, Fn&& fn) {
    for (auto name : {"flows", "udp_flows"}) {
        auto walked = for_each_flow_entry<np_flow>(dir, name, [&](int fd, const np_flow_key& key, const np_flow& value) {
            return fn(fd, key, flow_of(key, value), value.last_seen_ns, value.state);
        });
        if (!walked)
            return walked;
    }
    return for_each_flow_entry<np_half_open>(dir, "half_open_flows",
                                        [&](int fd, const np_flow_key& key, const np_half_open& value) {
                                            return fn(fd, key, flow_of(key, value), value.last_seen_ns,
                                                      value.state);
                                        });
}

}  // namespace

std::string_view to_string(FlowState state) {
    switch (state) {
    case FlowState::syn_sent:
        return "syn-sent";
    case FlowState::established:
        return "established";
    case FlowState::picked_up:
        return "picked-up";
    case FlowState::fin_wait:
        return "fin-wait";
    }
    return "?";
}

Result<std::vector<Flow>> list_flows(const std::filesystem::path& dir) {
    return pin_dir::with_opened(dir, [](const PinDir& opened) { return list_flows(opened); });
}

Result<std::size_t> flush_flows(const std::filesystem::path& dir, std::optional<NodePort> node_port) {
    return pin_dir::with_opened(dir, [&](const PinDir& opened) { return flush_flows(opened, node_port); });
}

Result<std::vector<Flow>> list_flows(const PinDir& dir) {
    auto timeouts = read_timeouts(dir);
    if (!timeouts)
        return std::unexpected(timeouts.error());
    const auto now = nanoseconds(bpf_clock_ns());
    std::vector<Flow> out;
    auto walked = for_each_flow(dir, [&](int, const np_flow_key& key, Flow flow, __u64 last_seen_ns, __u8 state) {
        if (key.dir != NP_FLOW_TO_BACKEND && flow.state != FlowState::syn_sent)
            return Result<void>{};
        const bool udp = key.proto == IPPROTO_UDP;
        // Expired entries are inert, waiting for the LRU.
        if (!np_flow_live(&*timeouts, udp, state, last_seen_ns, now.count()))
            return Result<void>{};
        flow.idle = std::max(now - nanoseconds(last_seen_ns), nanoseconds(0));
        flow.expires_in = nanoseconds(np_flow_lifetime_ns(&*timeouts, udp, state)) - flow.idle;
        out.push_back(flow);
        return Result<void>{};
    });
    if (!walked)
        return std::unexpected(walked.error());
    auto order = [](const Flow& f) { return std::tuple(f.proto, f.client, f.node); };
    std::ranges::sort(out, {}, order);
    // A flow can show twice while its handshake moves to `flows`; keep the first.
    auto dup = std::ranges::unique(out, {}, order);
    out.erase(dup.begin(), dup.end());
    return out;
}

Result<std::size_t> flush_flows(const PinDir& dir, std::optional<NodePort> node_port) {
    std::size_t flushed = 0;
    auto walked = for_each_flow(dir, [&](int map_fd, const np_flow_key& key, const Flow& flow, __u64,
                                         __u8) -> Result<void> {
        if (node_port && NodePort{flow.proto, flow.node.port} != *node_port)
            return {};
        if (bpf_map_delete_elem(map_fd, &key) != 0)
            return errno == ENOENT ? Result<void>{} : errno_error(errno, "delete a flow entry");
        flushed += key.dir == NP_FLOW_TO_BACKEND || flow.state == FlowState::syn_sent;
        return {};
    });
    if (!walked)
        return std::unexpected(walked.error());
    return flushed;
}

}  // namespace nodeport
