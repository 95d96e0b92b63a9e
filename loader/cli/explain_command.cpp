// `nodeport explain PROTO/PORT [--from IP[:PORT]] [--to ADDR]`: why a port
// does or does not reach its sandbox (nodeport/explain.hpp). Exit 0 when a
// client as given reaches a live backend, 3 when not, the cause last.
#include <fmt/format.h>

#include <iostream>

#include "cli/cli.hpp"
#include "cli/invocation.hpp"
#include "nodeport/explain.hpp"

namespace nodeport::cli {
namespace {

namespace po = boost::program_options;

// An address of either family, IPv6 without brackets.
IpAddr parse_addr(std::string_view text, std::string_view field) {
    if (text.find(':') != std::string_view::npos)
        return valid(parse_ipv6(text, field));
    return valid(parse_ipv4(text, field));
}

// --from IP[:PORT]: 10.0.0.7, 10.0.0.7:40000, 2001:db8::7, [2001:db8::7]:40000.
void parse_from(const std::string& text, ExplainRequest& request) {
    std::string_view host = text, port;
    if (text.starts_with('[')) {
        auto close = text.find(']');
        if (close == std::string::npos || (close + 1 < text.size() && text[close + 1] != ':'))
            throw UsageError("from", fmt::format("{} is not [IPV6] or [IPV6]:PORT", quote(text)));
        host = std::string_view(text).substr(1, close - 1);
        if (close + 1 < text.size())
            port = std::string_view(text).substr(close + 2);
    } else if (std::ranges::count(text, ':') == 1) {
        host = std::string_view(text).substr(0, text.find(':'));
        port = std::string_view(text).substr(text.find(':') + 1);
    }
    request.from = parse_addr(host, "from");
    if (!port.empty() || text.ends_with(':'))
        request.from_port = valid(parse_port(port, "from"));
}

nlohmann::json to_json(const ExplainDecision& d) {
    return {{"path", d.external ? "external" : "local"},
            {"translated", d.translated},
            {"backend", d.backend ? nlohmann::json(to_string(*d.backend)) : nlohmann::json()},
            {"reason", d.reason.empty() ? nlohmann::json() : nlohmann::json(d.reason)},
            {"how", d.how}};
}

nlohmann::json to_json(const Explanation& e) {
    nlohmann::json flows = nlohmann::json::array();
    for (const auto& f : e.flows)
        flows.push_back({{"client", to_string(f.client)},
                         {"node", to_string(f.node)},
                         {"backend", to_string(f.backend)},
                         {"state", to_string(f.state)},
                         {"idle_seconds", std::chrono::duration<double>(f.idle).count()}});
    nlohmann::json problems = nlohmann::json::array();
    for (const auto& p : e.problems)
        problems.push_back({{"kind", to_string(p.kind)}, {"detail", p.detail}});
    nlohmann::json out{{"proto", to_string(e.node_port.proto)},
                       {"port", e.node_port.port},
                       {"from", to_string(e.from)},
                       {"to", to_string(e.to)},
                       {"mapping", e.mapping ? cli::to_json(*e.mapping) : nlohmann::json()},
                       {"decision", to_json(e.decision)},
                       {"flows", flows},
                       {"route", nullptr},
                       {"probe", nullptr},
                       {"problems", problems},
                       {"not_checked", e.not_checked},
                       {"counters", nullptr},
                       {"reaches", e.reaches},
                       {"cause", e.reaches ? nlohmann::json() : nlohmann::json(e.cause)}};
    if (e.route)
        out["route"] = {{"dev", e.route->dev.empty() ? nlohmann::json() : nlohmann::json(e.route->dev)},
                        {"via", e.route->via ? nlohmann::json(to_string(*e.route->via)) : nlohmann::json()},
                        {"neighbour", e.route->neighbour.empty() ? nlohmann::json() : nlohmann::json(e.route->neighbour)},
                        {"error", e.route->error.empty() ? nlohmann::json() : nlohmann::json(e.route->error)}};
    if (e.probe)
        out["probe"] = {{"backend", to_string(e.probe->backend)},
                        {"outcome", to_string(e.probe->outcome)},
                        {"seconds", std::chrono::duration<double>(e.probe->took).count()},
                        {"detail", e.probe->detail.empty() ? nlohmann::json() : nlohmann::json(e.probe->detail)}};
    if (e.counters) {
        out["counters"] = nlohmann::json::object();  // as `stats --json` names them
        for (const auto& counter : port_counters())
            out["counters"][counter.name] = (*e.counters).*counter.member;
    }
    return out;
}

void print_text(const Explanation& e) {
    const auto& d = e.decision;
    std::cout << fmt::format("{} from {} to {}\n", to_string(e.node_port), to_string(e.from), to_string(e.to));
    std::cout << "mapping:   "
              << (e.mapping ? fmt::format("{} -> {}{}", to_string(e.node_port), to_string(e.mapping->backend),
                                          e.mapping->owner.empty() ? "" : " owner " + e.mapping->owner)
                            : "none")
              << "\n";
    std::cout << "decision:  "
              << (d.translated ? fmt::format("translated to {}", to_string(*d.backend))
                               : fmt::format("passed untranslated ({})", d.reason.empty() ? "no reason" : d.reason))
              << " [" << d.how << "]\n";
    for (const auto& f : e.flows)
        std::cout << fmt::format("flow:      {} -> {} -> {} {}\n", to_string(f.client), to_string(f.node),
                                 to_string(f.backend), to_string(f.state));
    if (e.route)
        std::cout << "route:     "
                  << (e.route->dev.empty()
                          ? "none (" + e.route->error + ")"
                          : fmt::format("dev {}{}, neighbour {}", e.route->dev,
                                        e.route->via ? " via " + to_string(*e.route->via) : "",
                                        e.route->neighbour.empty() ? "none" : e.route->neighbour))
                  << "\n";
    if (e.probe)
        std::cout << fmt::format("backend:   {} {} in {:.3f} s{}\n", to_string(e.probe->backend),
                                 to_string(e.probe->outcome), std::chrono::duration<double>(e.probe->took).count(),
                                 e.probe->detail.empty() ? "" : " (" + e.probe->detail + ")");
    for (const auto& p : e.problems)
        std::cout << fmt::format("also:      {}: {}\n", to_string(p.kind), p.detail);
    for (const auto& n : e.not_checked)
        std::cout << "not checked: " << n << "\n";
    if (e.counters)
        std::cout << fmt::format("counters:  {} external flows, {} local connects, {} packets to the backend\n",
                                 e.counters->external_flows, e.counters->local_connects,
                                 e.counters->to_backend_packets);
    std::cout << (e.reaches ? fmt::format("reaches {}: {}", to_string(*d.backend),
                                          e.probe ? std::string(to_string(e.probe->outcome)) : "translated")
                            : e.cause)
              << "\n";
}

}  // namespace

int cmd_explain(const Args& argv) {
    po::options_description options;
    options.add_options()("from", po::value<std::string>(),
                          "the client, IP[:PORT] or [IPV6]:PORT (default 192.0.2.10, or 2001:db8::10 with an IPv6 --to, "
                          "and a port none of its flows uses)")(
        "to", po::value<std::string>(),
        "the address the client sends to, IPv4 or IPv6 (default the node's first address of the client's family; "
        "127.0.0.1 or ::1: the node's own processes)");
    auto inv = parse("explain", argv, options, {"node port"});
    if (!inv)
        return exit_ok;
    ExplainRequest request;
    request.node_port = valid(parse_node_port(inv->args[0]));
    if (inv->options.count("from"))
        parse_from(inv->options["from"].as<std::string>(), request);
    if (inv->options.count("to"))
        request.to = parse_addr(inv->options["to"].as<std::string>(), "to");
    if (request.from && request.to && family_of(*request.from) != family_of(*request.to))
        throw UsageError("to", "--from and --to are of different families: a client reaches the backend of its own "
                               "(no NAT46/64)");
    auto e = succeeded(explain(inv->pin_dir, request));
    if (json_output())
        std::cout << json_line(to_json(e)) << "\n";
    else
        print_text(e);
    return e.reaches ? exit_ok : exit_unreachable;
}

}  // namespace nodeport::cli
