// nodeport legacy-iptables: find, report and delete the old runtime's
// per-port iptables rules (include/nodeport/legacy_iptables.hpp).
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <cerrno>
#include <iostream>
#include <map>
#include <optional>

#include "cli/cli.hpp"
#include "cli/invocation.hpp"
#include "nodeport/legacy_iptables.hpp"
#include "nodeport/port_table.hpp"
#include "nodeport/text.hpp"

namespace nodeport::cli {
namespace {

namespace po = boost::program_options;

struct BridgeArg {
    std::string name;
    std::vector<legacy::Subnet> subnets;
};

BridgeArg bridge_option(const Invocation& inv) {
    if (!inv.options.count("bridge"))
        throw UsageError("bridge", "missing (--bridge NAME: the bridge the sandboxes are on, whose subnets the old "
                         "rules DNAT to)");
    BridgeArg bridge{inv.options["bridge"].as<std::string>(), {}};
    auto subnets = legacy::interface_subnets(bridge.name);
    if (!subnets && subnets.error().errno_value == ENODEV)
        throw UsageError("bridge", fmt::format("'{}' is not an interface in this network namespace", bridge.name));
    if (!subnets)
        throw Failure(subnets.error().message);
    bridge.subnets = *subnets;
    if (bridge.subnets.empty())
        throw UsageError("bridge", fmt::format("'{}' has no IPv4 address, so there is no subnet to look for", bridge.name));
    return bridge;
}

// nodeport's mappings, to compare the rules with; nullopt when nodeport is
// not loaded at the pin directory (the rules can be cleaned up before it is).
std::optional<std::map<NodePort, Backend>> nodeport_mappings(const std::filesystem::path& pin_dir) {
    auto table = PortTable::open(pin_dir);
    if (!table && table.error().kind == ErrorKind::not_loaded)
        return std::nullopt;
    std::map<NodePort, Backend> mapped;
    for (const auto& m : succeeded(succeeded(std::move(table)).list()))
        mapped.emplace(m.node_port, m.backend);
    return mapped;
}

// Distinct rule lines in the order first seen, with how often each appears.
std::vector<std::pair<std::string, std::size_t>> counted_lines(const std::vector<LegacyRule>& rules) {
    std::vector<std::string> lines;
    for (const auto& r : rules)
        lines.push_back(printable(r.rule.text()));
    return count_lines(lines);
}

std::string describe_chains(const std::map<std::string, std::size_t>& by_chain) {
    std::vector<std::string> parts;
    for (const auto& [chain, n] : by_chain)
        parts.push_back(fmt::format("{} {}", printable(chain), n));
    return fmt::format("{}", fmt::join(parts, ", "));
}

void print_human(const BridgeArg& bridge, const LegacySummary& summary, const std::vector<KeptRule>& kept,
                 bool loaded, bool dry_run, const std::filesystem::path& pin_dir) {
    std::vector<std::string> subnets;
    for (const auto& s : bridge.subnets)
        subnets.push_back(to_string(s));
    std::cout << fmt::format("bridge {} ({}); {}\n", printable(bridge.name), fmt::join(subnets, ", "),
                             loaded ? "nodeport loaded at " + printable(pin_dir.string())
                                    : "nodeport not loaded at " + printable(pin_dir.string()) +
                                          ": every target counts as dead");
    for (const auto& port : summary.ports) {
        std::vector<std::string> first;
        for (const auto& [chain, target] : port.first_match)
            first.push_back(fmt::format("{} {}", printable(chain), to_string(target)));
        std::vector<std::string> dead;
        for (const auto& t : port.dead_targets)
            dead.push_back(to_string(t));
        std::cout << fmt::format(
            "{}: {} rule{} ({}); first match: {}; nodeport: {}{}; dead targets: {}\n", to_string(port.port),
            port.rules.size(), port.rules.size() == 1 ? "" : "s", describe_chains(port.by_chain),
            first.empty() ? "-" : fmt::format("{}", fmt::join(first, ", ")),
            port.nodeport_backend ? to_string(*port.nodeport_backend) : "not mapped",
            port.shadows_nodeport ? " (SHADOWED by the first match)" : "",
            dead.empty() ? "none" : fmt::format("{}", fmt::join(dead, ", ")));
        for (const auto& [line, n] : counted_lines(port.rules))
            std::cout << fmt::format("    {:>4}x {}\n", n, line);
    }
    if (!summary.portless.empty()) {
        std::cout << fmt::format("no port: {} rule{}\n", summary.portless.size(),
                                 summary.portless.size() == 1 ? "" : "s");
        for (const auto& [line, n] : counted_lines(summary.portless))
            std::cout << fmt::format("    {:>4}x {}\n", n, line);
    }
    if (!kept.empty()) {
        std::cout << fmt::format("kept: {} rule{} toward the bridge not of the old runtime's shape\n", kept.size(),
                                 kept.size() == 1 ? "" : "s");
        for (const auto& k : kept)
            std::cout << fmt::format("    {} ({})\n", printable(k.rule.text()), printable(k.reason));
    }
    if (summary.rule_count == 0)
        std::cout << "no legacy rules found\n";
    else if (dry_run)
        std::cout << fmt::format("dry run: would delete {} legacy rules; nothing changed\n", summary.rule_count);
    else
        std::cout << fmt::format("deleted {} legacy rules\n", summary.rule_count);
}

nlohmann::json to_json(const std::vector<LegacyRule>& rules) {
    nlohmann::json lines = nlohmann::json::array();
    for (const auto& r : rules)
        lines.push_back(printable(r.rule.text()));
    return lines;
}

void print_json(const BridgeArg& bridge, const LegacySummary& summary, const std::vector<KeptRule>& kept, bool loaded,
                bool dry_run) {
    nlohmann::json out;
    out["bridge"] = printable(bridge.name);
    out["subnets"] = nlohmann::json::array();
    for (const auto& s : bridge.subnets)
        out["subnets"].push_back(to_string(s));
    out["nodeport_loaded"] = loaded;
    out["dry_run"] = dry_run;
    out["found"] = summary.rule_count;
    out["deleted"] = dry_run ? 0 : summary.rule_count;
    out["ports"] = nlohmann::json::array();
    for (const auto& port : summary.ports) {
        nlohmann::json entry{{"port", to_string(port.port)},
                             {"proto", to_string(port.port.proto)},
                             {"node_port", port.port.port},
                             {"rule_count", port.rules.size()},
                             {"rules", to_json(port.rules)},
                             {"by_chain", nlohmann::json::object()},
                             {"first_match", nlohmann::json::object()},
                             {"nodeport_backend", nullptr},
                             {"shadows_nodeport", port.shadows_nodeport},
                             {"dead_targets", nlohmann::json::array()}};
        for (const auto& [chain, n] : port.by_chain)
            entry["by_chain"][printable(chain)] = n;
        for (const auto& [chain, target] : port.first_match)
            entry["first_match"][printable(chain)] = to_string(target);
        if (port.nodeport_backend)
            entry["nodeport_backend"] = to_string(*port.nodeport_backend);
        for (const auto& t : port.dead_targets)
            entry["dead_targets"].push_back(to_string(t));
        out["ports"].push_back(entry);
    }
    out["portless_rules"] = to_json(summary.portless);
    out["kept"] = nlohmann::json::array();
    for (const auto& k : kept)
        out["kept"].push_back({{"rule", printable(k.rule.text())}, {"reason", printable(k.reason)}});
    std::cout << out.dump(2) << "\n";
}

}  // namespace

int cmd_legacy_iptables(const Args& argv) {
    po::options_description options;
    options.add_options()
        ("bridge", po::value<std::string>(),
         "the sandboxes' bridge (required): a rule is the old runtime's only when it DNATs to a sandbox address in "
         "one of its IPv4 subnets (not the bridge's own, the network or the broadcast address), or MASQUERADEs "
         "from 127.0.0.1 toward one or out of the bridge")
        ("dry-run", "report only; change nothing");
    auto inv = parse("legacy-iptables", argv, options);
    if (!inv)
        return exit_ok;
    const BridgeArg bridge = bridge_option(*inv);
    const bool dry_run = inv->options.count("dry-run") > 0;

    auto mapped = nodeport_mappings(inv->pin_dir);
    auto scan = succeeded(find_legacy_rules(bridge.name, bridge.subnets));
    const auto& rules = scan.legacy;
    auto summary = summarize_legacy(rules, mapped.value_or(std::map<NodePort, Backend>{}));
    if (!dry_run) {
        std::vector<NatRule> doomed;
        for (const auto& r : rules)
            doomed.push_back(r.rule);
        succeeded(delete_nat_rules(doomed));
        auto left = succeeded(find_legacy_rules(bridge.name, bridge.subnets)).legacy;
        if (!left.empty())
            throw Failure(fmt::format("{} legacy rules are still there after deleting {} (another writer adding "
                                      "them?), e.g. {}",
                                      left.size(), rules.size(), printable(left.front().rule.text())));
    }
    if (inv->options.count("json"))
        print_json(bridge, summary, scan.kept, mapped.has_value(), dry_run);
    else
        print_human(bridge, summary, scan.kept, mapped.has_value(), dry_run, inv->pin_dir);
    return exit_ok;
}

}  // namespace nodeport::cli
