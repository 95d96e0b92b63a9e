#include "nodeport/flows.hpp"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <time.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <tuple>

#include "map_keys.hpp"
#include "nodeport/abi.h"
#include "pin_dir.hpp"

namespace nodeport {
namespace {

using std::chrono::nanoseconds;

// The tables of bpf/flows.bpf.h, in the order the datapath reads them.
constexpr std::array<std::string_view, 3> flow_maps = {"flows", "closed_flows", "udp_flows"};

nanoseconds monotonic_now() {
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC, &now);  // the clock of bpf_ktime_get_ns()
    return std::chrono::seconds(now.tv_sec) + nanoseconds(now.tv_nsec);
}

FlowState state_of(std::string_view map, const np_flow& f) {
    if (map == "closed_flows" || f.state == NP_FLOW_TIME_WAIT)
        return FlowState::time_wait;
    if (f.state == NP_FLOW_SYN_SENT)
        return FlowState::syn_sent;
    if (f.state == NP_FLOW_FIN_WAIT)
        return FlowState::fin_wait;
    if (f.state == NP_FLOW_PICKED_UP)
        return FlowState::picked_up;
    return FlowState::established;
}

// The same choice as flow_lifetime() in bpf/flows.bpf.h.
nanoseconds lifetime(std::string_view map, FlowState state, const np_flow_timeouts& t) {
    if (map == "udp_flows")
        return nanoseconds(t.udp_idle_ns);
    switch (state) {
    case FlowState::syn_sent:
        return nanoseconds(t.tcp_syn_ns);
    case FlowState::established:
        return nanoseconds(t.tcp_established_ns);
    case FlowState::picked_up:
    case FlowState::fin_wait:
    case FlowState::time_wait:
        break;
    }
    return nanoseconds(t.tcp_closing_ns);
}

Result<np_flow_timeouts> read_timeouts(const std::filesystem::path& dir) {
    auto map = pin_dir::open_map(dir, "flow_timeouts");
    if (!map)
        return std::unexpected(map.error());
    __u32 zero = 0;
    np_flow_timeouts t{};
    if (bpf_map_lookup_elem(map->get(), &zero, &t) != 0)
        return errno_error(errno, "read flow timeouts map");
    return t;
}

// The node port an entry belongs to: the peer of a forward entry, the value
// of a reply entry.
NodePort node_port_of(const np_flow_key& key, const np_flow& value) {
    auto port_be = key.dir == NP_FLOW_TO_BACKEND ? key.peer_port_be : value.port_be;
    return NodePort{static_cast<Proto>(key.proto), ntohs(port_be)};
}

// Calls fn(table name, map fd, key, value) for every entry of the flow
// tables, stopping at the first error it returns.
template <class Fn>
Result<void> for_each_entry(const std::filesystem::path& dir, Fn&& fn) {
    for (auto name : flow_maps) {
        auto map = pin_dir::open_map(dir, name);
        if (!map)
            return std::unexpected(map.error());
        auto keys = map_keys<np_flow_key>(map->get(), std::string(name));
        if (!keys)
            return std::unexpected(keys.error());
        for (const auto& key : *keys) {
            np_flow value{};
            if (bpf_map_lookup_elem(map->get(), &key, &value) != 0)
                continue;  // gone since the walk
            if (auto ok = fn(name, map->get(), key, value); !ok)
                return ok;
        }
    }
    return {};
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
    case FlowState::time_wait:
        return "time-wait";
    }
    return "?";
}

Result<std::vector<Flow>> list_flows(const std::filesystem::path& dir) {
    auto timeouts = read_timeouts(dir);
    if (!timeouts)
        return std::unexpected(timeouts.error());
    const auto now = monotonic_now();
    std::vector<Flow> out;
    auto walked = for_each_entry(dir, [&](std::string_view name, int, const np_flow_key& key, const np_flow& value) {
        // The client-to-backend entry of each pair says all there is to say.
        if (key.dir != NP_FLOW_TO_BACKEND)
            return Result<void>{};
        Flow flow;
        flow.proto = static_cast<Proto>(key.proto);
        flow.client = Backend{Ipv4{key.client_addr_be}, ntohs(key.client_port_be)};
        flow.node = Backend{Ipv4{key.peer_addr_be}, ntohs(key.peer_port_be)};
        flow.backend = Backend{Ipv4{value.addr_be}, ntohs(value.port_be)};
        flow.state = state_of(name, value);
        flow.idle = std::max(now - nanoseconds(value.last_seen_ns), nanoseconds(0));
        flow.expires_in = lifetime(name, flow.state, *timeouts) - flow.idle;
        if (flow.expires_in >= nanoseconds(0))  // expired entries are inert, waiting for the LRU
            out.push_back(flow);
        return Result<void>{};
    });
    if (!walked)
        return std::unexpected(walked.error());
    auto order = [](const Flow& f) { return std::tuple(f.proto, f.client, f.node); };
    std::ranges::sort(out, {}, order);
    // A flow can show twice while it moves to closed_flows; keep the first.
    auto dup = std::ranges::unique(out, {}, order);
    out.erase(dup.begin(), dup.end());
    return out;
}

Result<std::size_t> flush_flows(const std::filesystem::path& dir, std::optional<NodePort> node_port) {
    std::size_t flushed = 0;
    auto walked = for_each_entry(dir, [&](std::string_view name, int map_fd, const np_flow_key& key,
                                          const np_flow& value) -> Result<void> {
        if (node_port && node_port_of(key, value) != *node_port)
            return {};
        if (bpf_map_delete_elem(map_fd, &key) != 0)
            return errno == ENOENT ? Result<void>{} : errno_error(errno, "delete from " + std::string(name));
        flushed += key.dir == NP_FLOW_TO_BACKEND;
        return {};
    });
    if (!walked)
        return std::unexpected(walked.error());
    return flushed;
}

}  // namespace nodeport
