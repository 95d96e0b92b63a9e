// nodeport's metrics in the Prometheus text exposition format: the port
// and reason counters (`nodeport stats PORT --prometheus`), and the node's
// health beside them (`nodeport stats --prometheus`).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "nodeport/pin_dir.hpp"
#include "nodeport/result.hpp"
#include "nodeport/stats.hpp"
#include "nodeport/status.hpp"

// Exported from libnodeport.so (the rest of the library is hidden).
#pragma GCC visibility push(default)

namespace nodeport {

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
