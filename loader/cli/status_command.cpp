// nodeport status: what is loaded, and what can make a mapped port
// unreachable. Exit 0 healthy, 1 not loaded, 3 degraded.
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <cerrno>
#include <iostream>

#include "cli/cli.hpp"
#include "cli/invocation.hpp"
#include "nodeport/status.hpp"

namespace nodeport::cli {
namespace {

namespace po = boost::program_options;

// "tcp/6667: iptables_dnat: iptables -t nat rule: -A PREROUTING ..."
std::string describe(const Problem& p) {
    return fmt::format("{}{}: {}", p.port ? to_string(*p.port) + ": " : "", to_string(p.kind), printable(p.detail));
}

nlohmann::json to_json(const Status& s, const std::filesystem::path& pin_dir) {
    nlohmann::json out{{"pin_dir", printable(pin_dir.string())},
                       {"loaded", true},
                       {"healthy", s.problems.empty()},
                       {"abi", s.abi},
                       {"programs", nlohmann::json::array()},
                       {"interfaces", nlohmann::json::array()},
                       {"node_addrs", nlohmann::json::array()},
                       {"ip_forward", s.ip_forward},
                       {"ipv6_forwarding", s.ipv6_forwarding},
                       {"ports", s.ports},
                       {"flows", {{"tcp", s.flows.tcp}, {"tcp_half_open", s.flows.tcp_half_open}, {"udp", s.flows.udp}}},
                       {"problems", nlohmann::json::array()},
                       {"not_checked", nlohmann::json::array()}};
    for (const auto& p : s.programs) {
        nlohmann::json entry{{"pin", printable(p.pin)},
                             {"prog_id", p.prog_id},
                             {"link_type", printable(p.link_type)},
                             {"attach_type", printable(p.attach_type)}};
        if (p.link_type == "cgroup")
            entry["cgroup_id"] = p.cgroup_id;
        if (p.link_type == "tcx")
            entry["ifindex"] = p.ifindex;
        out["programs"].push_back(entry);
    }
    for (const auto& i : s.interfaces)
        out["interfaces"].push_back({{"name", printable(i.name)},
                                     {"ifindex", i.ifindex},
                                     {"mode", to_string(i.mode)},
                                     {"link", to_string(i.link)},
                                     {"present", i.present ? nlohmann::json(*i.present) : nlohmann::json()},
                                     {"ingress_prog_id", i.ingress_prog_id},
                                     {"egress_prog_id", i.egress_prog_id}});
    for (const auto& a : s.node_addrs)
        out["node_addrs"].push_back(to_string(a));
    for (const auto& p : s.problems)
        out["problems"].push_back({{"kind", to_string(p.kind)},
                                   {"port", p.port ? nlohmann::json(to_string(*p.port)) : nlohmann::json()},
                                   {"detail", printable(p.detail)}});
    for (const auto& n : s.not_checked)
        out["not_checked"].push_back(printable(n));
    return out;
}

void print_human(const Status& s, const std::filesystem::path& pin_dir) {
    std::cout << fmt::format("nodeport loaded at {} (map ABI {})\n", printable(pin_dir.string()), s.abi);
    std::cout << "programs:\n";
    for (const auto& p : s.programs) {
        std::string where = p.link_type;
        if (p.link_type == "cgroup")
            where += fmt::format(" id {}", p.cgroup_id);
        if (p.link_type == "tcx")
            where += fmt::format(" if{}", p.ifindex);
        if (!p.attach_type.empty())
            where += " (" + p.attach_type + ")";
        std::cout << fmt::format("  {:<22} prog id {:<7} {}\n", printable(p.pin), p.prog_id, where);
    }
    std::cout << "external interfaces:" << (s.interfaces.empty() ? " none (local forwarding only)" : "") << "\n";
    for (const auto& i : s.interfaces)
        std::cout << fmt::format("  {} (if{}, {}, {}): {}, prog ids ingress {} egress {}\n", printable(i.name),
                                 i.ifindex, to_string(i.mode), to_string(i.link),
                                 !i.present ? "not checked" : *i.present ? "present" : "MISSING", i.ingress_prog_id,
                                 i.egress_prog_id);
    std::vector<std::string> addrs;
    for (const auto& a : s.node_addrs)
        addrs.push_back(to_string(a));
    std::cout << fmt::format("node addresses: {}\n", addrs.empty() ? "none" : fmt::format("{}", fmt::join(addrs, ", ")));
    std::cout << fmt::format("ip_forward: {}, ipv6 forwarding: {}\n", s.ip_forward ? "on" : "off",
                             s.ipv6_forwarding ? "on" : "off");
    std::cout << fmt::format("ports mapped: {}\n", s.ports);
    std::cout << fmt::format("flows: tcp {}, tcp half-open {}, udp {}\n", s.flows.tcp, s.flows.tcp_half_open, s.flows.udp);
    for (const auto& n : s.not_checked)
        std::cout << "not checked: " << printable(n) << "\n";
    if (s.problems.empty()) {
        std::cout << "healthy\n";
        return;
    }
    std::cout << fmt::format("degraded: {} problem{}\n", s.problems.size(), s.problems.size() == 1 ? "" : "s");
    for (const auto& p : s.problems)
        std::cout << describe(p) << "\n";
}

}  // namespace

int cmd_status(const Args& argv) {
    auto inv = parse("status", argv, po::options_description{});
    if (!inv)
        return exit_ok;
    const bool json = inv->options.count("json") > 0;
    auto status = read_status(inv->pin_dir);
    if (!status && status.error().kind == ErrorKind::not_loaded) {
        // Not loaded is an answer, not a failure to find one: say it on both.
        if (json)
            std::cout << nlohmann::json{{"pin_dir", printable(inv->pin_dir.string())}, {"loaded", false}}.dump(2)
                      << "\n";
        print_error("status", status.error().message);
        return exit_failure;
    }
    const Status s = succeeded(std::move(status));
    if (json)
        std::cout << to_json(s, inv->pin_dir).dump(2) << "\n";
    else
        print_human(s, inv->pin_dir);
    return s.problems.empty() ? exit_ok : exit_degraded;
}

}  // namespace nodeport::cli
