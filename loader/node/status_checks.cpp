#include "node/status_checks.hpp"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <map>
#include <optional>
#include <ranges>
#include <utility>

#include "nodeport/text.hpp"

namespace nodeport::status_checks {
namespace {

using nlohmann::json;

// The value side of an nft dport match: 6667, {"set": [53, {"range": [1, 9]}]},
// {"range": [7000, 7010]}. nullopt for what cannot be read here (a named set).
std::optional<bool> nft_value_holds(const json& value, std::uint16_t port) {
    if (value.is_number_unsigned())
        return value.get<std::uint64_t>() == port;
    if (value.is_object() && value.contains("range")) {
        const auto& r = value["range"];
        if (r.is_array() && r.size() == 2 && r[0].is_number() && r[1].is_number())
            return r[0].get<std::int64_t>() <= port && port <= r[1].get<std::int64_t>();
        return std::nullopt;
    }
    if (value.is_object() && value.contains("set") && value["set"].is_array()) {
        bool any = false;
        for (const auto& element : value["set"]) {
            auto holds = nft_value_holds(element, port);
            if (!holds)
                return std::nullopt;
            any = any || *holds;
        }
        return any;
    }
    return std::nullopt;
}

// The protocols a rule's `meta l4proto` / `ip protocol` matches let through:
// false only when one excludes `proto` (what cannot be read lets it through).
bool nft_proto_allows(const json& expr, Proto proto) {
    for (const auto& e : expr) {
        if (!e.is_object() || !e.contains("match"))
            continue;
        const auto& m = e["match"];
        const auto& left = m.value("left", json::object());
        bool l4proto = left.is_object() &&
                       ((left.contains("meta") && left["meta"].value("key", "") == "l4proto") ||
                        (left.contains("payload") && left["payload"].value("field", "") == "protocol"));
        if (!l4proto || m.value("op", "==") != "==")
            continue;
        const auto& right = m.value("right", json());
        std::vector<json> names = right.is_object() && right.contains("set") && right["set"].is_array()
                                      ? right["set"].get<std::vector<json>>()
                                      : std::vector<json>{right};
        if (!std::ranges::all_of(names, &json::is_string))
            continue;
        if (std::ranges::find(names, json(to_string(proto))) == names.end())
            return false;
    }
    return true;
}

// The map a dnat/redirect statement looks its address or port up in, keyed by
// the destination port (`dnat to tcp dport map { 6667 : 10.8.0.2 . 6667 }`);
// null when it has none.
const json* nft_port_map(const json& expr) {
    for (const auto& e : expr)
        for (const char* verb : {"dnat", "redirect"}) {
            if (!e.is_object() || !e.contains(verb) || !e[verb].is_object())
                continue;
            for (const char* field : {"addr", "port"}) {
                const auto& s = e[verb];
                if (!s.contains(field) || !s[field].is_object() || !s[field].contains("map"))
                    continue;
                const auto& key = s[field]["map"].value("key", json::object());
                if (key.is_object() && key.contains("payload") && key["payload"].value("field", "") == "dport")
                    return &s[field]["map"];
            }
        }
    return nullptr;
}

enum class Selects { no, yes, every_port, unreadable };

// Whether one nft rule (with a dnat or redirect statement) selects (proto,
// port): through its dport matches (all must select it) and a map its
// statement looks the port up in. every_port: it has neither, so only its
// other matches (not weighed) stand between it and every port.
Selects nft_rule_selects(const json& expr, NodePort port) {
    if (!nft_proto_allows(expr, port.proto))
        return Selects::no;
    auto protocol_selects = [&](const json& payload) {
        const std::string protocol = payload.value("protocol", "");
        return protocol == "th" || protocol == to_string(port.proto);  // "th" (transport header) is either
    };
    bool any_match = false;
    for (const auto& e : expr) {
        if (!e.is_object() || !e.contains("match"))
            continue;
        const auto& m = e["match"];
        const auto& left = m.value("left", json::object());
        if (!left.is_object() || !left.contains("payload"))
            continue;
        const auto& payload = left["payload"];
        if (payload.value("field", "") != "dport")
            continue;
        if (!protocol_selects(payload))
            return Selects::no;
        auto holds = nft_value_holds(m.value("right", json()), port.port);
        if (!holds)
            return Selects::unreadable;  // a named set: "tcp dport @ports"
        const std::string op = m.value("op", "==");
        bool selected = op == "!=" ? !*holds : *holds;  // "==" and "in" both test membership
        if (!selected)
            return Selects::no;
        any_match = true;
    }
    if (const json* map = nft_port_map(expr)) {
        if (!protocol_selects((*map)["key"]["payload"]))
            return Selects::no;
        // An inline map: {"set": [[6667, <data>], ...]}; a named one ("@m") cannot be read here.
        const auto& data = map->value("data", json());
        if (!data.is_object() || !data.contains("set") || !data["set"].is_array())
            return Selects::unreadable;
        bool selected = false;
        for (const auto& element : data["set"]) {
            if (!element.is_array() || element.size() != 2)
                return Selects::unreadable;
            auto holds = nft_value_holds(element[0], port.port);
            if (!holds)
                return Selects::unreadable;
            selected = selected || *holds;
        }
        if (!selected)
            return Selects::no;  // a port the map lacks: the lookup fails, the rule does not apply
        any_match = true;
    }
    return any_match ? Selects::yes : Selects::every_port;
}

// "dnat to 10.8.0.9:6667", "redirect to :8080".
std::string describe_nft_statement(const json& expr) {
    for (const auto& e : expr) {
        for (const char* verb : {"dnat", "redirect"}) {
            if (!e.is_object() || !e.contains(verb))
                continue;
            const auto& s = e[verb];
            std::string to;
            if (s.is_object() && s.contains("addr") && s["addr"].is_string())
                to += s["addr"].get<std::string>();
            if (s.is_object() && s.contains("port"))
                to += ":" + s["port"].dump();
            return fmt::format("{}{}", verb, to.empty() ? "" : " to " + to);
        }
    }
    return {};
}

std::optional<std::uint32_t> parse_hex(std::string_view text) {
    std::uint32_t value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value, 16);
    if (text.empty() || ec != std::errc{} || end != text.data() + text.size())
        return std::nullopt;
    return value;
}

// "0100007F:1A0B" (IPv4) or 32 hex digits and a port (IPv6): the kernel
// prints each 32-bit word of the address as a host-order number.
std::optional<std::pair<std::string, std::uint16_t>> parse_local(std::string_view text) {
    auto colon = text.find(':');
    if (colon == std::string_view::npos)
        return std::nullopt;
    auto hex_addr = text.substr(0, colon);
    auto port = parse_hex(text.substr(colon + 1));
    if (!port || *port > 65535 || (hex_addr.size() != 8 && hex_addr.size() != 32))
        return std::nullopt;
    unsigned char bytes[16];
    for (std::size_t word = 0; word < hex_addr.size() / 8; ++word) {
        auto value = parse_hex(hex_addr.substr(word * 8, 8));
        if (!value)
            return std::nullopt;
        std::memcpy(bytes + word * 4, &*value, 4);
    }
    char buf[INET6_ADDRSTRLEN] = {};
    bool v4 = hex_addr.size() == 8;
    inet_ntop(v4 ? AF_INET : AF_INET6, bytes, buf, sizeof buf);
    return std::pair{v4 ? std::string(buf) : "[" + std::string(buf) + "]", static_cast<std::uint16_t>(*port)};
}

}  // namespace

std::string lost_ports(const std::vector<NodePort>& mapped, std::size_t shown) {
    if (mapped.empty())
        return "no port is mapped";
    std::string list;
    for (std::size_t i = 0; i < mapped.size() && i < shown; ++i)
        list += (i ? ", " : "") + to_string(mapped[i]);
    if (mapped.size() > shown)
        list += fmt::format(" and {} more", mapped.size() - shown);
    return fmt::format("{} mapped port{} cannot be reached through it: {}", mapped.size(),
                       mapped.size() == 1 ? "" : "s", list);
}

std::vector<Problem> iptables_dnat(const std::vector<NatRule>& rules, const std::vector<NodePort>& mapped,
                                   std::string_view tool) {
    // Each distinct DNAT/REDIRECT rule line once, with its copies; then the
    // mapped ports it takes.
    std::vector<std::string> lines;
    std::map<std::string, const NatRule*> by_line;
    for (const auto& rule : rules)
        if (rule.target == "DNAT" || rule.target == "REDIRECT") {
            lines.push_back(rule.text());
            by_line.try_emplace(lines.back(), &rule);
        }
    std::vector<Problem> problems;
    for (const auto& [line, copies] : count_lines(lines)) {
        const NatRule& rule = *by_line.at(line);
        std::string times = copies > 1 ? fmt::format(" (x{})", copies) : "";
        auto taken = [&](NodePort p) { return rule.matches_port(p); };
        if (rule.dports.empty()) {
            // No port match: every mapped port it lets through, in one problem.
            auto n = std::ranges::count_if(mapped, taken);
            if (n > 0)
                problems.push_back(Problem{ProblemKind::iptables_dnat, std::nullopt,
                                           fmt::format("{} -t nat rule{} takes every port ({} mapped; no port "
                                                       "match): {}",
                                                       tool, times, n, line)});
            continue;
        }
        for (NodePort port : mapped)
            if (taken(port))
                problems.push_back(Problem{ProblemKind::iptables_dnat, port,
                                           fmt::format("{} -t nat rule{}: {}", tool, times, line)});
    }
    return problems;
}

Result<NftFindings> nft_dnat(std::string_view json_text, const std::vector<NodePort>& mapped) {
    json doc = json::parse(json_text, nullptr, false);
    if (doc.is_discarded() || !doc.is_object() || !doc.contains("nftables") || !doc["nftables"].is_array())
        return plain_error("nft -j list ruleset: not the JSON nft prints");
    NftFindings found;
    for (const auto& item : doc["nftables"]) {
        if (!item.is_object() || !item.contains("rule"))
            continue;
        const auto& rule = item["rule"];
        const auto& expr = rule.value("expr", json::array());
        std::string statement = describe_nft_statement(expr);
        if (statement.empty())
            continue;
        std::string where = fmt::format("nft table {} {}, chain {}, rule handle {}", rule.value("family", "?"),
                                        rule.value("table", "?"), rule.value("chain", "?"), rule.value("handle", 0));
        std::vector<NodePort> selected;
        std::size_t every = 0;
        bool unreadable = false;
        for (const auto& port : mapped) {
            switch (nft_rule_selects(expr, port)) {
            case Selects::no:
                break;
            case Selects::yes:
                selected.push_back(port);
                break;
            case Selects::every_port:
                ++every;
                break;
            case Selects::unreadable:
                unreadable = true;
                break;
            }
        }
        if (unreadable)
            found.not_checked.push_back(where + ": " + statement +
                                        ": which ports it selects cannot be read here (a named set or map); "
                                        "check it against the mapped ports by hand");
        else if (every > 0)
            found.problems.push_back(Problem{
                ProblemKind::nft_dnat, std::nullopt,
                fmt::format("{}: {} takes every port ({} mapped; no port match)", where, statement, every)});
        else
            for (const auto& port : selected)
                found.problems.push_back(Problem{ProblemKind::nft_dnat, port, where + ": " + statement});
    }
    return found;
}

bool podman_conmon_cmdline(std::string_view cmdline) {
    std::vector<std::string_view> args;
    for (std::size_t start = 0; start < cmdline.size();) {
        auto end = std::min(cmdline.find('\0', start), cmdline.size());
        args.push_back(cmdline.substr(start, end - start));
        start = end + 1;
    }
    auto is_podman = [](std::string_view path) { return path.substr(path.rfind('/') + 1) == "podman"; };
    constexpr std::string_view option = "--exit-command";
    for (std::size_t i = 0; i < args.size(); ++i) {
        if (args[i] == option && i + 1 < args.size() && is_podman(args[i + 1]))
            return true;
        if (args[i].starts_with(option) && args[i].substr(option.size()).starts_with('=') &&
            is_podman(args[i].substr(option.size() + 1)))
            return true;
    }
    return false;
}

std::vector<Problem> listeners(std::string_view text, Proto proto, const std::vector<NodePort>& mapped,
                               const SocketOwnerOf& owner_of) {
    constexpr std::string_view tcp_listen = "0A";
    std::vector<Problem> problems;
    bool header = true;
    for (std::string_view line : split_lines(text)) {
        if (std::exchange(header, false))
            continue;  // "sl local_address rem_address st ..."
        // Fields: sl local_address rem_address st ...
        std::vector<std::string_view> fields;
        for (std::size_t i = 0; i < line.size();) {
            while (i < line.size() && line[i] == ' ')
                ++i;
            auto start = i;
            while (i < line.size() && line[i] != ' ')
                ++i;
            if (i > start)
                fields.push_back(line.substr(start, i - start));
        }
        if (fields.size() < 4 || (proto == Proto::tcp && fields[3] != tcp_listen))
            continue;
        // A connected UDP socket (a client whose ephemeral port happens to be
        // a mapped one) only takes datagrams from its peer; an unconnected
        // one ("00000000:0000", or the IPv6 zeros) takes the port's.
        if (proto == Proto::udp && fields[2].find_first_not_of("0:") != std::string_view::npos)
            continue;
        auto local = parse_local(fields[1]);
        if (!local)
            continue;
        NodePort port{proto, local->second};
        if (std::ranges::find(mapped, port) == mapped.end())
            continue;
        // Field 10: the socket's inode, which names its process.
        std::optional<SocketOwner> owner;
        std::uint64_t inode = 0;
        if (owner_of && fields.size() > 9 &&
            std::from_chars(fields[9].data(), fields[9].data() + fields[9].size(), inode).ec == std::errc{})
            owner = owner_of(inode);
        if (owner && owner->podman_conmon)
            continue;
        problems.push_back(Problem{ProblemKind::listener, port,
                                   fmt::format("a {} socket on the node is bound to {}:{}{}{}", to_string(proto),
                                               local->first, local->second,
                                               proto == Proto::tcp ? " (listening)" : "",
                                               owner ? fmt::format(", held by {} (pid {})", owner->comm, owner->pid)
                                                     : "")});
    }
    return problems;
}

}  // namespace nodeport::status_checks
