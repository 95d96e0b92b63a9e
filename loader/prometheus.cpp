// nodeport's counters as Prometheus metrics (to_prometheus in
// nodeport/stats.hpp), and the little of the text format it needs.
#include "prometheus.hpp"

#include <fmt/format.h>

#include "nodeport/reasons.hpp"
#include "nodeport/stats.hpp"

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
    // The port's labels: the owner printed as everywhere else (printable
    // ASCII, other bytes as \xNN), then escaped for the format.
    auto port_labels = [](const Mapping& m) {
        return Labels{{"proto", std::string(to_string(m.node_port.proto))},
                      {"port", std::to_string(m.node_port.port)},
                      {"owner", printable(m.owner)}};
    };
    auto with = [](Labels labels, std::initializer_list<std::pair<std::string_view, std::string>> more) {
        labels.insert(labels.end(), more);
        return labels;
    };

    w.family("nodeport_port_translations_total", "counter",
             "New connections and datagrams nodeport sent to the node port's backend: path local, kind connect "
             "(TCP, connected UDP) or send (an unconnected UDP datagram); path external, kind flow (a TCP SYN, a "
             "UDP flow's first datagram). From zero when the port changes owner.");
    for (const auto& p : stats.ports) {
        auto labels = port_labels(p.mapping);
        w.sample(with(labels, {{"path", "local"}, {"kind", "connect"}}), p.counters.local_connects);
        w.sample(with(labels, {{"path", "local"}, {"kind", "send"}}), p.counters.local_sends);
        w.sample(with(labels, {{"path", "external"}, {"kind", "flow"}}), p.counters.external_flows);
    }
    w.family("nodeport_port_packets_total", "counter",
             "Packets nodeport translated for the node port on the external path, to or from the backend (the "
             "local path translates sockets, not packets). From zero when the port changes owner.");
    for (const auto& p : stats.ports) {
        w.sample(with(port_labels(p.mapping), {{"direction", "to_backend"}}), p.counters.to_backend_packets);
        w.sample(with(port_labels(p.mapping), {{"direction", "from_backend"}}), p.counters.from_backend_packets);
    }
    w.family("nodeport_port_bytes_total", "counter",
             "Bytes of those packets, from the IP header on. From zero when the port changes owner.");
    for (const auto& p : stats.ports) {
        w.sample(with(port_labels(p.mapping), {{"direction", "to_backend"}}), p.counters.to_backend_bytes);
        w.sample(with(port_labels(p.mapping), {{"direction", "from_backend"}}), p.counters.from_backend_bytes);
    }
    w.family("nodeport_passed_total", "counter",
             "Packets (path external, reply) and socket calls (path local) nodeport left untouched, by reason "
             "(nodeport stats --all explains each). Kept across reloads.");
    for (const auto& r : reasons())
        w.sample({{"path", std::string(to_string(r.path))}, {"reason", std::string(r.name)}}, stats.passed[r.id]);
    return w.text();
}

}  // namespace nodeport
