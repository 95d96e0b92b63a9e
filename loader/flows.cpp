#include "nodeport/flows.hpp"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <time.h>

#include <algorithm>
#include <cerrno>

#include "map_keys.hpp"
#include "nodeport/abi.h"
#include "pin_dir.hpp"

namespace nodeport {

Result<std::vector<Flow>> list_flows(const std::filesystem::path& dir) {
    auto map = pin_dir::open_map(dir, "flows");
    if (!map)
        return std::unexpected(map.error());
    auto keys = map_keys<np_flow_key>(map->get(), "flows");
    if (!keys)
        return std::unexpected(keys.error());
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC, &now);  // the clock of bpf_ktime_get_ns()
    const auto now_ns = std::chrono::seconds(now.tv_sec) + std::chrono::nanoseconds(now.tv_nsec);

    std::vector<Flow> out;
    for (const auto& key : *keys) {
        np_flow value{};
        // The client-to-backend entry of each pair says all there is to say.
        if (key.dir != NP_FLOW_TO_BACKEND || bpf_map_lookup_elem(map->get(), &key, &value) != 0)
            continue;
        Flow flow;
        flow.proto = static_cast<Proto>(key.proto);
        flow.client = Backend{Ipv4{key.client_addr_be}, ntohs(key.client_port_be)};
        flow.node = Backend{Ipv4{key.peer_addr_be}, ntohs(key.peer_port_be)};
        flow.backend = Backend{Ipv4{value.addr_be}, ntohs(value.port_be)};
        flow.closing = value.state == NP_FLOW_CLOSING;
        flow.idle = std::max(now_ns - std::chrono::nanoseconds(value.last_seen_ns), std::chrono::nanoseconds(0));
        out.push_back(flow);
    }
    std::ranges::sort(out, {}, [](const Flow& f) { return std::tuple(f.proto, f.client, f.node); });
    auto dup = std::ranges::unique(out, {}, [](const Flow& f) { return std::tuple(f.proto, f.client, f.node); });
    out.erase(dup.begin(), dup.end());
    return out;
}

}  // namespace nodeport
