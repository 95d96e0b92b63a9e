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
#include <string_view>
#include <vector>

#include "nodeport/abi.h"
#include "nodeport/pin_dir.hpp"
#include "nodeport/result.hpp"
#include "nodeport/status.hpp"
#include "nodeport/types.hpp"

// Exported from libnodeport.so (the rest of the library is hidden).
#pragma GCC visibility push(default)

namespace nodeport {

// One port's counters summed over the CPUs: np_port_counters without its
// reserved field, generated from the same list (NP_PORT_COUNTERS, abi.h).
// They start from zero when the port goes to a new owner.
#define NODEPORT_COUNTER_FIELD(name) std::uint64_t name = 0;
struct PortCounters {
    NP_PORT_COUNTERS(NODEPORT_COUNTER_FIELD)
    friend bool operator==(const PortCounters&, const PortCounters&) = default;
};
#undef NODEPORT_COUNTER_FIELD

// How `stats` and the metrics show one counter.
struct PortCounterInfo {
    std::string_view name;                 // the field, and the key in `stats --json`
    std::uint64_t PortCounters::*member;
    std::string_view column;               // `stats`' table heading
    int width;                             // and its width
    std::string_view metric;               // the Prometheus family it is a sample of
    std::string_view label, label_value;   // its label there, when the family has several ("" when not)
};

// Every counter, in NP_PORT_COUNTERS order (checked when compiled).
std::span<const PortCounterInfo> port_counters();

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
Result<Stats> read_stats(const PinDir& pin_dir, std::optional<NodePort> only = std::nullopt);

// The text exposition format 0.0.4 (node_exporter's textfile collector),
// per port: nodeport_port_info{proto,port,owner,backend} 1, and counters
// labelled by proto and port alone (nodeport_port_socket_calls_total,
// nodeport_port_flows_total, nodeport_port_packets_total,
// nodeport_port_bytes_total), so a redeploy keeps their series; per reason:
// nodeport_passed_packets_total and nodeport_passed_socket_calls_total
// (every reason, zeros included, so rates work from the first scrape).
std::string to_prometheus(const Stats& stats);

// What the node-level metrics need besides `nodeport status`'s reading.
struct NodeMetricsInfo {
    std::string_view version;  // nodeport_build_info's labels
    std::string_view commit;
    struct FlowTable {
        std::string name;            // "flows", "half_open_flows", "udp_flows"
        std::uint64_t flows = 0;     // as Status::flows counts them
        std::uint64_t capacity = 0;  // flows the table holds (read_flow_tables)
    };
    std::vector<FlowTable> flow_tables;
};

// The flow tables' fill: `counts` (Status::flows) beside each table's
// capacity, read from its pinned map (max_entries; a flow takes one entry
// per direction, a handshake one, as status counts them).
Result<std::vector<NodeMetricsInfo::FlowTable>> read_flow_tables(const std::filesystem::path& pin_dir,
                                                                 const FlowCounts& counts);
Result<std::vector<NodeMetricsInfo::FlowTable>> read_flow_tables(const PinDir& pin_dir, const FlowCounts& counts);

// nodeport_build_info, nodeport_healthy, nodeport_problems{kind},
// nodeport_mapped_ports, nodeport_flows{table} and
// nodeport_flow_table_capacity{table}.
std::string to_prometheus(const Status& status, const NodeMetricsInfo& info);

}  // namespace nodeport

#pragma GCC visibility pop
