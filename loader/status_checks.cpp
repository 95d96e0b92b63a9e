#include "status_checks.hpp"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <map>
#include <optional>
#include <utility>

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

// Whether one nft rule's dport matches all select (proto, port); nullopt when
// the rule has no dport match nodeport can read.
std::optional<bool> nft_rule_selects(const json& expr, NodePort port) {
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
        const std::string protocol = payload.value("protocol", "");
        // "th" (transport header) is either protocol.
        if (protocol != "th" && protocol != to_string(port.proto))
            return false;
        auto holds = nft_value_holds(m.value("right", json()), port.port);
        if (!holds)
            return std::nullopt;
        const std::string op = m.value("op", "==");
        bool selected = op == "!=" ? !*holds : *holds;  // "==" and "in" both test membership
        if (!selected)
            return false;
        any_match = true;
    }
    return any_match ? std::optional(true) : std::nullopt;
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

std::vector<Problem> iptables_dnat(const std::vector<NatRule>& rules, const std::vector<NodePort>& mapped) {
    // (port, rule text) -> copies, in the order first seen
    std::vector<std::pair<std::pair<NodePort, std::string>, std::size_t>> found;
    for (const auto& rule : rules) {
        if (rule.target != "DNAT" && rule.target != "REDIRECT")
            continue;
        for (const auto& port : mapped) {
            if (!rule.matches_port(port))
                continue;
            std::pair key{port, rule.text()};
            auto it = std::ranges::find(found, key, &decltype(found)::value_type::first);
            if (it == found.end())
                found.push_back({key, 1});
            else
                ++it->second;
        }
    }
    std::vector<Problem> problems;
    for (const auto& [key, copies] : found)
        problems.push_back(Problem{ProblemKind::iptables_dnat, key.first,
                                   fmt::format("iptables -t nat rule{}: {}",
                                               copies > 1 ? fmt::format(" (x{})", copies) : "", key.second)});
    return problems;
}

Result<std::vector<Problem>> nft_dnat(std::string_view json_text, const std::vector<NodePort>& mapped) {
    json doc = json::parse(json_text, nullptr, false);
    if (doc.is_discarded() || !doc.is_object() || !doc.contains("nftables") || !doc["nftables"].is_array())
        return plain_error("nft -j list ruleset: not the JSON nft prints");
    std::vector<Problem> problems;
    for (const auto& item : doc["nftables"]) {
        if (!item.is_object() || !item.contains("rule"))
            continue;
        const auto& rule = item["rule"];
        const auto& expr = rule.value("expr", json::array());
        std::string statement = describe_nft_statement(expr);
        if (statement.empty())
            continue;
        for (const auto& port : mapped) {
            if (nft_rule_selects(expr, port) != true)
                continue;
            problems.push_back(Problem{
                ProblemKind::nft_dnat, port,
                fmt::format("nft table {} {}, chain {}, rule handle {}: {}", rule.value("family", "?"),
                            rule.value("table", "?"), rule.value("chain", "?"), rule.value("handle", 0), statement)});
        }
    }
    return problems;
}

std::vector<Problem> listeners(std::string_view text, Proto proto, const std::vector<NodePort>& mapped) {
    constexpr std::string_view tcp_listen = "0A";
    std::vector<Problem> problems;
    bool header = true;
    while (!text.empty()) {
        auto end = text.find('\n');
        std::string_view line = text.substr(0, end);
        text = end == std::string_view::npos ? std::string_view{} : text.substr(end + 1);
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
        auto local = parse_local(fields[1]);
        if (!local)
            continue;
        NodePort port{proto, local->second};
        if (std::ranges::find(mapped, port) == mapped.end())
            continue;
        problems.push_back(Problem{ProblemKind::listener, port,
                                   fmt::format("a {} socket on the node is bound to {}:{}{}", to_string(proto),
                                               local->first, local->second,
                                               proto == Proto::tcp ? " (listening)" : "")});
    }
    return problems;
}

}  // namespace nodeport::status_checks
