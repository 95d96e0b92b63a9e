#include "nodeport/legacy_iptables.hpp"

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>

#include <algorithm>
#include <cerrno>
#include <charconv>

#include "base/run_tool.hpp"
#include "datapath/node_addrs.hpp"
#include "nodeport/text.hpp"

namespace nodeport {

using legacy::Subnet;

namespace {

// The chains the old runtime appended to. Rules in user chains are never
// its own, and survive.
constexpr std::string_view legacy_chains[] = {"PREROUTING", "OUTPUT", "POSTROUTING"};

// Splits an `iptables -S` line into arguments. iptables quotes an argument
// holding blanks or quotes ("hello world \"x\""), escaping " and \ inside.
std::optional<std::vector<std::string>> split_arguments(std::string_view line) {
    std::vector<std::string> args;
    std::string current;
    bool in_token = false, quoted = false;
    for (std::size_t i = 0; i < line.size(); ++i) {
        char c = line[i];
        if (quoted) {
            if (c == '\\' && i + 1 < line.size())
                current += line[++i];
            else if (c == '"')
                quoted = false;
            else
                current += c;
        } else if (c == ' ' || c == '\t' || c == '\n') {
            if (in_token)
                args.push_back(std::move(current));
            current.clear();
            in_token = false;
        } else {
            in_token = true;
            if (c == '"')
                quoted = true;
            else
                current += c;
        }
    }
    if (quoted)
        return std::nullopt;
    if (in_token)
        args.push_back(std::move(current));
    return args;
}

// An argument as iptables-restore reads it back: quoted when it holds a
// blank or a quote, with " and \\ escaped inside (split_arguments' inverse).
std::string quote_argument(std::string_view arg) {
    if (!arg.empty() && arg.find_first_of(" \t\"\\'") == std::string_view::npos)
        return std::string(arg);
    std::string quoted = "\"";
    for (char c : arg) {
        if (c == '"' || c == '\\')
            quoted += '\\';
        quoted += c;
    }
    return quoted + "\"";
}

std::optional<std::uint16_t> parse_port_number(std::string_view text) {
    unsigned value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || ec != std::errc{} || end != text.data() + text.size() || value > 65535)
        return std::nullopt;
    return static_cast<std::uint16_t>(value);
}

// "6667" or "8000:8010".
std::optional<NatRule::PortRange> parse_port_range(std::string_view text) {
    auto colon = text.find(':');
    auto first = parse_port_number(text.substr(0, colon));
    auto last = colon == std::string_view::npos ? first : parse_port_number(text.substr(colon + 1));
    if (!first || !last || *first > *last)
        return std::nullopt;
    return NatRule::PortRange{*first, *last};
}

// "10.8.32.126/32" or "10.8.32.126": one host.
std::optional<Ipv4> parse_host(std::string_view text) {
    if (text.ends_with("/32"))
        text.remove_suffix(3);
    auto addr = parse_ipv4(text, "address");
    return addr ? std::optional(*addr) : std::nullopt;
}

bool is_loopback_host(const std::optional<std::string>& text) {
    if (!text)
        return false;
    auto addr = parse_host(*text);
    return addr && (ntohl(addr->addr_be) >> 24) == 127;
}

bool in_subnets(Ipv4 addr, const std::vector<Subnet>& subnets) {
    return std::ranges::any_of(subnets, [addr](const Subnet& s) { return s.contains(addr); });
}

// Why an address in the bridge's subnets cannot be a sandbox's; empty when
// it can be. The old runtime only ever sent traffic to sandboxes: a rule to
// the bridge itself (an operator's proxy there) or to a subnet's network or
// broadcast address is someone else's.
std::string not_a_sandbox(Ipv4 addr, const std::vector<Subnet>& subnets) {
    for (const auto& s : subnets)
        if (addr == s.address)
            return "the bridge's own address " + nodeport::to_string(addr);
    for (const auto& s : subnets) {
        if (!s.contains(addr) || s.prefix_len >= 31)
            continue;
        if (addr == s.network)
            return "the network address of " + legacy::to_string(s);
        if (addr == s.broadcast())
            return "the broadcast address of " + legacy::to_string(s);
    }
    return {};
}

// Why a rule's port match is not the old runtime's `-p P -m P --dport N`;
// empty when it is. `optional`: a MASQUERADE may have no port match at all.
std::string not_one_port(const NatRule& rule, bool optional) {
    if (rule.multiport)
        return "-m multiport (the old runtime matched one port with --dport)";
    if (rule.dports.empty() && optional)
        return {};
    if (!rule.proto || rule.dports.size() != 1 || rule.dports[0].first != rule.dports[0].second)
        return "not one tcp or udp port (the old runtime matched -p tcp|udp --dport N)";
    return {};
}

std::string joined(const std::vector<std::string>& words) {
    std::string out;
    for (const auto& w : words)
        out += (out.empty() ? "" : " ") + w;
    return out;
}

// The first reason in the list that is not empty.
std::string first_reason(std::initializer_list<std::string> reasons) {
    for (const auto& r : reasons)
        if (!r.empty())
            return r;
    return {};
}

// PREROUTING / OUTPUT: -p P --dport N -j DNAT --to-destination A[:N'], A a sandbox's address.
LegacyVerdict classify_dnat(const NatRule& rule, std::string_view bridge, const std::vector<Subnet>& subnets) {
    if (rule.target != "DNAT" || !rule.to_destination)
        return {};
    auto target = parse_dnat_destination(*rule.to_destination);
    if (!target || !in_subnets(std::get<Ipv4>(target->addr), subnets))
        return {};  // not toward the bridge: nothing like the old runtime's
    const Ipv4 target_addr = std::get<Ipv4>(target->addr);  // iptables: IPv4
    std::string chain_shape;
    if (rule.chain == "PREROUTING") {
        // Traffic arriving from outside the bridge: "! -i <bridge>", or no -i at all.
        if (rule.in && !(rule.in->negated && rule.in->name == bridge))
            chain_shape = "an -i match other than ! -i " + std::string(bridge);
        else if (rule.destination || rule.dst_type_local)
            chain_shape = "a destination match (the old runtime's PREROUTING rule had none)";
    } else {  // OUTPUT: the node's own connections, to loopback or any local address
        if (rule.in)
            chain_shape = "an -i match";
        else if (rule.destination && !is_loopback_host(rule.destination))
            chain_shape = "a destination other than loopback (-d " + *rule.destination + ")";
    }
    std::string kept = first_reason({
        rule.other.empty() ? "" : "other matches or options (" + joined(rule.other) + ")",
        not_one_port(rule, false),
        rule.out ? "an -o match" : "",
        rule.source ? "a source match (-s " + *rule.source + ")" : "",
        chain_shape,
        not_a_sandbox(target_addr, subnets).empty() ? "" : "DNAT to " + not_a_sandbox(target_addr, subnets),
    });
    if (!kept.empty())
        return {std::nullopt, kept};
    NodePort port{*rule.proto, rule.dports[0].first};
    if (target->port == 0)
        target->port = port.port;  // DNAT without a port keeps the packet's
    return {LegacyRule{rule, port, target}, {}};
}

// POSTROUTING: -s 127.0.0.1 {-d A | -o <bridge>} [-p P --dport N] -j MASQUERADE.
LegacyVerdict classify_masquerade(const NatRule& rule, std::string_view bridge, const std::vector<Subnet>& subnets) {
    if (rule.target != "MASQUERADE" || rule.source != "127.0.0.1/32")
        return {};
    std::optional<Ipv4> host = rule.destination ? parse_host(*rule.destination) : std::nullopt;
    const bool to_bridge_host = host && in_subnets(*host, subnets);
    const bool out_bridge = rule.out && !rule.out->negated && rule.out->name == bridge;
    if (!to_bridge_host && !out_bridge)
        return {};  // not toward the bridge
    std::string kept = first_reason({
        rule.other.empty() ? "" : "other matches or options (" + joined(rule.other) + ")",
        rule.in || rule.dst_type_local || rule.to_destination ? "an -i, --dst-type or --to-destination option" : "",
        rule.destination && rule.out ? "both -d and -o" : "",
        rule.destination && !to_bridge_host ? "a destination that is not one address in the bridge's subnets" : "",
        not_one_port(rule, true),
        to_bridge_host && !not_a_sandbox(*host, subnets).empty() ? "toward " + not_a_sandbox(*host, subnets) : "",
    });
    if (!kept.empty())
        return {std::nullopt, kept};
    if (rule.dports.empty())
        return {LegacyRule{rule, std::nullopt, std::nullopt}, {}};
    return {LegacyRule{rule, NodePort{*rule.proto, rule.dports[0].first}, std::nullopt}, {}};
}

// Runs iptables; a missing binary is said plainly.
Result<ToolOutput> run_iptables(const std::vector<std::string>& argv, const ToolOptions& options = {}) {
    auto result = run_tool(argv, options);
    if (!result && result.error().errno_value == ENOENT)
        return plain_error(argv[0] + " is not installed (the iptables package provides it, for either backend)");
    if (!result)
        return std::unexpected(result.error());
    if (result->exit_code != 0)
        return plain_error(describe_failure(argv, *result));
    return result;
}

}  // namespace

std::string NatRule::text() const {
    std::string line = "-A " + chain;
    for (const auto& a : spec)
        line += " " + a;
    return line;
}

bool NatRule::matches_port(NodePort port) const {
    if (proto ? *proto != port.proto : other_proto)
        return false;
    return dports.empty() || std::ranges::any_of(dports, [&](const PortRange& r) {
               return r.first <= port.port && port.port <= r.second;
           });
}

std::optional<NatRule> parse_nat_rule(std::string_view line) {
    auto args = split_arguments(line);
    if (!args || args->size() < 2 || (*args)[0] != "-A")
        return std::nullopt;
    NatRule rule;
    rule.chain = (*args)[1];
    rule.spec.assign(args->begin() + 2, args->end());
    const auto& spec = rule.spec;
    bool negated = false;
    for (std::size_t i = 0; i < spec.size(); ++i) {
        const std::string& opt = spec[i];
        const bool has_value = i + 1 < spec.size();
        const std::string value = has_value ? spec[i + 1] : "";
        auto other = [&](bool with_value) {
            if (negated)
                rule.other.push_back("!");
            rule.other.push_back(opt);
            if (with_value && has_value)
                rule.other.push_back(value);
        };
        if (opt == "!") {
            negated = true;
            continue;
        }
        bool took_value = has_value;
        if (opt == "-p" && !negated && (value == "tcp" || value == "udp")) {
            rule.proto = value == "tcp" ? Proto::tcp : Proto::udp;
        } else if (opt == "-p" && !negated && has_value && value != "all" && value != "0") {
            rule.other_proto = true;
            other(true);  // never the old runtime's
        } else if (opt == "-m" && (value == "tcp" || value == "udp" || value == "multiport" || value == "addrtype")) {
            // The modules whose options are read below; any other module's
            // options land in `other`.
            rule.multiport = rule.multiport || value == "multiport";
        } else if ((opt == "--dport" || opt == "--destination-port") && !negated && parse_port_range(value)) {
            rule.dports.push_back(*parse_port_range(value));
        } else if ((opt == "--dports" || opt == "--destination-ports") && !negated) {
            std::string_view list = value;
            bool ok = true;
            std::vector<NatRule::PortRange> ranges;
            while (ok && !list.empty()) {
                auto comma = list.find(',');
                auto range = parse_port_range(list.substr(0, comma));
                ok = range.has_value();
                if (ok)
                    ranges.push_back(*range);
                list = comma == std::string_view::npos ? std::string_view{} : list.substr(comma + 1);
            }
            if (ok && !ranges.empty())
                rule.dports.insert(rule.dports.end(), ranges.begin(), ranges.end());
            else
                other(true);
        } else if (opt == "-i" || opt == "-o") {
            (opt == "-i" ? rule.in : rule.out) = NatRule::Interface{value, negated};
        } else if ((opt == "-s" || opt == "-d") && !negated) {
            (opt == "-s" ? rule.source : rule.destination) = value;
        } else if (opt == "--dst-type" && !negated && value == "LOCAL") {
            rule.dst_type_local = true;
        } else if (opt == "-j") {
            rule.target = value;
        } else if (opt == "--to-destination") {
            rule.to_destination = value;
        } else {
            // Unknown: keep the token alone; its values (if any) follow as
            // their own unknown tokens.
            other(false);
            took_value = false;
        }
        if (took_value)
            ++i;
        negated = false;
    }
    return rule;
}

std::optional<Backend> parse_dnat_destination(std::string_view text) {
    auto colon = text.find(':');
    auto addr = parse_ipv4(text.substr(0, colon), "address");
    if (!addr)
        return std::nullopt;
    if (colon == std::string_view::npos)
        return Backend{*addr, 0};
    auto port = parse_port_number(text.substr(colon + 1));
    if (!port || *port == 0)
        return std::nullopt;
    return Backend{*addr, *port};
}

namespace legacy {

namespace {

std::uint32_t prefix_mask(int prefix_len) {
    return prefix_len == 0 ? 0 : ~std::uint32_t{0} << (32 - prefix_len);
}

}  // namespace

bool Subnet::contains(Ipv4 addr) const {
    std::uint32_t mask = prefix_mask(prefix_len);
    return (ntohl(addr.addr_be) & mask) == (ntohl(network.addr_be) & mask);
}

Ipv4 Subnet::broadcast() const {
    if (prefix_len >= 31)
        return network;
    return Ipv4{htonl(ntohl(network.addr_be) | ~prefix_mask(prefix_len))};
}

std::string to_string(const Subnet& subnet) {
    return nodeport::to_string(subnet.network) + "/" + std::to_string(subnet.prefix_len);
}

Result<std::vector<Subnet>> interface_subnets(const std::string& interface) {
    if (interface.empty() || interface.size() >= IF_NAMESIZE || ::if_nametoindex(interface.c_str()) == 0)
        return std::unexpected(Error{ENODEV, "interface '" + interface + "' does not exist in this network namespace"});
    auto addrs = interface_addrs();
    if (!addrs)
        return std::unexpected(addrs.error());
    std::vector<Subnet> out;
    for (const auto& a : *addrs) {
        if (a.interface != interface)
            continue;
        out.push_back(Subnet{Ipv4{htonl(ntohl(a.addr.addr_be) & prefix_mask(a.prefix_len))}, a.prefix_len, a.addr});
    }
    return out;
}

}  // namespace legacy

LegacyVerdict classify_legacy(const NatRule& rule, std::string_view bridge, const std::vector<Subnet>& subnets) {
    if (rule.chain == "PREROUTING" || rule.chain == "OUTPUT")
        return classify_dnat(rule, bridge, subnets);
    if (rule.chain == "POSTROUTING")
        return classify_masquerade(rule, bridge, subnets);
    return {};
}

LegacySummary summarize_legacy(const std::vector<LegacyRule>& rules, const std::map<NodePort, Backend>& mapped) {
    LegacySummary summary;
    std::map<NodePort, LegacyPort> ports;
    for (const auto& legacy : rules) {
        ++summary.rule_count;
        if (!legacy.port) {
            summary.portless.push_back(legacy);
            continue;
        }
        auto [it, fresh] = ports.try_emplace(*legacy.port);
        LegacyPort& port = it->second;
        if (fresh) {
            port.port = *legacy.port;
            if (auto m = mapped.find(port.port); m != mapped.end())
                port.nodeport_backend = m->second;
        }
        port.rules.push_back(legacy);
        ++port.by_chain[legacy.rule.chain];
        if (!legacy.target)
            continue;
        port.first_match.try_emplace(legacy.rule.chain, *legacy.target);
        if (legacy.target != port.nodeport_backend && std::ranges::find(port.dead_targets, *legacy.target) ==
                                                          port.dead_targets.end())
            port.dead_targets.push_back(*legacy.target);
    }
    for (auto& [node_port, port] : ports) {
        port.shadows_nodeport =
            port.nodeport_backend && std::ranges::any_of(port.first_match, [&](const auto& first) {
                return first.second != *port.nodeport_backend;
            });
        summary.ports.push_back(std::move(port));
    }
    return summary;
}

Result<std::vector<NatRule>> read_nat_rules(std::string_view chain, Family family) {
    // -w 5: wait for the xtables lock instead of failing while another tool
    // holds it (iptables-legacy; iptables-nft ignores it), but not forever.
    std::vector<std::string> argv{family == Family::ipv6 ? "ip6tables" : "iptables", "-w", "5", "-t", "nat", "-S"};
    if (!chain.empty())
        argv.emplace_back(chain);
    auto result = run_iptables(argv);
    if (!result)
        return std::unexpected(result.error());
    std::vector<NatRule> rules;
    for (std::string_view line : split_lines(result->out))
        if (auto rule = parse_nat_rule(line))
            rules.push_back(std::move(*rule));
    return rules;
}

Result<LegacyScan> find_legacy_rules(std::string_view bridge, const std::vector<Subnet>& subnets) {
    LegacyScan found;
    for (auto chain : legacy_chains) {
        auto rules = read_nat_rules(chain);
        if (!rules)
            return std::unexpected(rules.error());
        for (const auto& rule : *rules) {
            auto verdict = classify_legacy(rule, bridge, subnets);
            if (verdict.legacy)
                found.legacy.push_back(std::move(*verdict.legacy));
            else if (!verdict.kept_because.empty())
                found.kept.push_back(KeptRule{rule, std::move(verdict.kept_because)});
        }
    }
    return found;
}

Result<void> delete_nat_rules(const std::vector<NatRule>& rules) {
    if (rules.empty())
        return {};
    // One iptables-restore run is one transaction (one netlink batch for
    // iptables-nft, one table replace for iptables-legacy): all the rules go
    // or none, and the table is read and written once, not once per rule.
    // Each -D removes the first rule equal to its spec, so N copies take N lines.
    std::string input = "*nat\n";
    for (const auto& rule : rules) {
        input += "-D " + quote_argument(rule.chain);
        for (const auto& a : rule.spec)
            input += " " + quote_argument(a);
        input += "\n";
    }
    input += "COMMIT\n";
    std::vector<std::string> argv{"iptables-restore", "-w", "5", "--noflush"};
    auto result = run_iptables(argv, {.input = input, .timeout = std::chrono::minutes(2)});
    if (!result)
        return std::unexpected(result.error());
    return {};
}

}  // namespace nodeport
