// `nodeport stats`: what the datapath counted, per node port and per reason
// a packet or socket call was left untouched (the maps `port_counters` and
// `reason_counters`, nodeport/abi.h). Reads only.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "nodeport/abi.h"
#include "nodeport/result.hpp"
#include "nodeport/types.hpp"

namespace nodeport {

// One port's counters summed over the CPUs (np_port_counters without its
// reserved field). They start from zero when the port goes to a new owner.
struct PortCounters {
    std::uint64_t local_connects = 0;  // connect4/6: TCP connections and connected UDP sockets
    std::uint64_t local_sends = 0;     // sendmsg4: datagrams of unconnected UDP sockets
    std::uint64_t external_flows = 0;  // new external flows: a TCP SYN, a UDP flow's first datagram
    std::uint64_t to_backend_packets = 0;
    std::uint64_t to_backend_bytes = 0;  // from the IP header on
    std::uint64_t from_backend_packets = 0;
    std::uint64_t from_backend_bytes = 0;
    friend bool operator==(const PortCounters&, const PortCounters&) = default;
};

// The sum of one entry's per-CPU values, as a per-CPU map lookup returns them.
PortCounters sum_per_cpu(std::span<const np_port_counters> per_cpu);

struct PortStats {
    Mapping mapping;
    PortCounters counters;  // zeros for a port mapped but not used since
};

struct Stats {
    std::vector<PortStats> ports;  // every mapped port, sorted by protocol and port
    // Packets and calls left untouched, indexed by np_reason, summed over the
    // CPUs; totals since the first load (a reload keeps them).
    std::array<std::uint64_t, NP_REASON_COUNT> passed{};
};

// Reads the counters of a loaded nodeport, joined with the `ports` map for
// backend and owner. With `only`, that port alone (none when it is not
// mapped). Counters of a port unmapped since (a race with del) are skipped.
// "not loaded" (ENOENT) as every reader says it.
Result<Stats> read_stats(const std::filesystem::path& pin_dir, std::optional<NodePort> only = std::nullopt);

// The text exposition format 0.0.4 (node_exporter's textfile collector):
// nodeport_port_translations_total, nodeport_port_packets_total,
// nodeport_port_bytes_total per port, nodeport_passed_total per reason
// (every reason, zeros included, so rates work from the first scrape).
std::string to_prometheus(const Stats& stats);

}  // namespace nodeport
