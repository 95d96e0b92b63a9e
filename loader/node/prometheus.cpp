// nodeport's counters as Prometheus metrics (to_prometheus in
// nodeport/stats.hpp), and the little of the text format it needs.
#include "node/prometheus.hpp"

#include <bpf/bpf.h>
#include <fmt/format.h>

#include "base/pin_dir.hpp"
#include "node/flow_tables.hpp"
#include "nodeport/metrics.hpp"
#include "nodeport/reasons.hpp"
#include "nodeport/stats.hpp"
#include "nodeport/status.hpp"

#include <algorithm>

namespace nodeport {
namespace prometheus {
namespace {

std::string escape(std::string_view text, bool quote) {
    std::string out;
    out.reserve(text.size());
    for (char c : text) {
        if (c == '\\')
            out += "\\\\";
        else if (c == '\n')
            out += "\\n";
        else if (c == '"' && quote)
            out += "\\\"";
        else
            out += c;
    }
    return out;
}

}  // namespace

std::string escape_label_value(std::string_view value) { return escape(value, true); }
std::string escape_help(std::string_view help) { return escape(help, false); }

void Writer::family(std::string_view name, std::string_view type, std::string_view help) {
    family_ = name;
    out_ += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, escape_help(help), name, type);
}

void Writer::sample(const Labels& labels, std::uint64_t value) {
    out_ += family_;
    for (std::size_t i = 0; i < labels.size(); ++i)
        out_ += fmt::format("{}{}=\"{}\"", i == 0 ? "{" : ",", labels[i].first, escape_label_value(labels[i].second));
    out_ += fmt::format("{} {}\n", labels.empty() ? "" : "}", value);
}

}  // namespace prometheus

std::string to_prometheus(const Stats& stats) {
    using prometheus::Labels;
    prometheus::Writer w;
    // A port's series are named by protocol and port alone (and family="ipv6"
    // for an IPv6 backend's), so they go on across a redeploy (a new owner or
    // backend); who holds the port is one info series beside them, joined in
    // a query when wanted:
    //   rate(nodeport_port_flows_total[5m]) * on(proto, port, family) group_left(owner) nodeport_port_info
    auto port_labels = [](const Mapping& m) {
        Labels labels{{"proto", std::string(to_string(m.node_port.proto))}, {"port", std::to_string(m.node_port.port)}};
        if (m.family() == Family::ipv6)
            labels.emplace_back("family", "ipv6");
        return labels;
    };
    auto with = [](Labels labels, std::initializer_list<std::pair<std::string_view, std::string>> more) {
        labels.insert(labels.end(), more);
        return labels;
    };

    w.family("nodeport_port_info", "gauge",
             "1 for each mapped node port, with its owner (printable ASCII, other bytes as \\xNN) and backend.");
    for (const auto& p : stats.ports)
        w.sample(with(port_labels(p.mapping),
                      {{"owner", printable(p.mapping.owner)}, {"backend", to_string(p.mapping.backend)}}),
                 1);
    // The counters' families, each a sample per port of every counter that
    // names it (port_counters()), labelled as the counter says.
    struct CounterFamily {
        std::string_view name, help;
    };
    constexpr CounterFamily counter_families[] = {
        {"nodeport_port_socket_calls_total",
         "Socket calls of the node's processes nodeport sent to the node port's backend (the local path): kind "
         "connect (TCP, connected UDP) or send (an unconnected UDP datagram). From zero when the port changes "
         "owner."},
        {"nodeport_port_flows_total",
         "New flows nodeport sent to the node port's backend on the external path (a TCP SYN, a UDP flow's first "
         "datagram). From zero when the port changes owner."},
        {"nodeport_port_packets_total",
         "Packets nodeport translated for the node port on the external path, to or from the backend (the "
         "local path translates sockets, not packets). From zero when the port changes owner."},
        {"nodeport_port_bytes_total",
         "Bytes of those packets, from the IP header on. From zero when the port changes owner."},
    };
    for (const auto& family : counter_families) {
        w.family(family.name, "counter", family.help);
        for (const auto& p : stats.ports)
            for (const auto& counter : port_counters()) {
                if (counter.metric != family.name)
                    continue;
                w.sample(counter.label.empty()
                             ? port_labels(p.mapping)
                             : with(port_labels(p.mapping), {{counter.label, std::string(counter.label_value)}}),
                         p.counters.*counter.member);
            }
    }
    // Packets and socket calls are different things: two families.
    w.family("nodeport_passed_packets_total", "counter",
             "Packets nodeport left untouched, by path (external: to the node, reply: from a backend) and reason "
             "(nodeport stats --all explains each). Kept across reloads.");
    for (const auto& r : reasons())
        if (r.path != ReasonPath::local)
            w.sample({{"path", std::string(to_string(r.path))}, {"reason", std::string(r.name)}}, stats.passed[r.id]);
    w.family("nodeport_passed_socket_calls_total", "counter",
             "Socket calls of the node's processes nodeport left untouched, by reason (nodeport stats --all "
             "explains each). Kept across reloads.");
    for (const auto& r : reasons())
        if (r.path == ReasonPath::local)
            w.sample({{"reason", std::string(r.name)}}, stats.passed[r.id]);
    return w.text();
}

Result<std::vector<NodeMetricsInfo::FlowTable>> read_flow_tables(const std::filesystem::path& pin_dir,
                                                                 const FlowCounts& counts) {
    return pin_dir::with_opened(pin_dir, [&](const PinDir& dir) { return read_flow_tables(dir, counts); });
}

Result<std::vector<NodeMetricsInfo::FlowTable>> read_flow_tables(const PinDir& pin_dir, const FlowCounts& counts) {
    std::vector<NodeMetricsInfo::FlowTable> tables;
    for (const auto& table : flow_tables) {
        std::string name(table.name);
        auto map = pin_dir.map(name);
        if (!map)
            return std::unexpected(map.error());
        bpf_map_info info{};
        std::uint32_t len = sizeof info;
        if (int err = bpf_map_get_info_by_fd(map->get(), &info, &len); err != 0)
            return errno_error(-err, fmt::format("read the map info of {}", name));
        tables.push_back({name, counts.*table.count, info.max_entries / table.entries_per_flow});
    }
    return tables;
}

std::string to_prometheus(const Status& status, const NodeMetricsInfo& info) {
    prometheus::Writer w;
    w.family("nodeport_build_info", "gauge", "1, labelled with the version and commit of the nodeport that wrote this.");
    w.sample({{"version", std::string(info.version)}, {"commit", std::string(info.commit)}}, 1);
    w.family("nodeport_healthy", "gauge",
             "1 when nodeport status finds no problem, 0 otherwise (nodeport_problems says which kind).");
    w.sample({}, status.problems.empty() ? 1 : 0);
    w.family("nodeport_problems", "gauge", "Problems nodeport status finds now, by kind (nodeport status explains).");
    // Every kind, zeros included, so an alert's series exists before it fires.
    for (auto kind : kProblemKinds) {
        w.sample({{"kind", std::string(to_string(kind))}},
                 std::ranges::count(status.problems, kind, &Problem::kind));
    }
    w.family("nodeport_mapped_ports", "gauge", "Mapped (protocol, node port) pairs.");
    w.sample({}, status.ports);
    w.family("nodeport_flows", "gauge",
             "Flows of the external path recorded per table (as nodeport status counts them; expired ones the LRU "
             "has not evicted yet included).");
    for (const auto& t : info.flow_tables)
        w.sample({{"table", t.name}}, t.flows);
    w.family("nodeport_flow_table_capacity", "gauge",
             "Flows each table holds before the LRU evicts live ones; alert on nodeport_flows / this.");
    for (const auto& t : info.flow_tables)
        w.sample({{"table", t.name}}, t.capacity);
    return w.text();
}

}  // namespace nodeport
