#include "nodeport/sync.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <map>
#include <set>
#include <spanstream>
#include <string>

#include "base/json_input.hpp"

namespace nodeport {
namespace {

using nlohmann::json;

std::unexpected<InputError> bad(std::size_t index, std::string_view field, std::string message) {
    return std::unexpected(InputError{fmt::format("entry {}: {}", index, field), std::move(message)});
}

// One entry, every field checked; errors name the field inside the entry.
Parsed<Mapping> parse_entry(const json& entry) {
    static const std::set<std::string> known = {"proto", "port", "backend", "owner"};
    if (!entry.is_object())
        return std::unexpected(InputError{"entry", "is not an object like {\"proto\": \"tcp\", \"port\": 6667, ...}"});
    for (const auto& [name, _] : entry.items())
        if (!known.contains(name))
            return std::unexpected(InputError{shown_key(name), "is not a field (proto, port, backend, owner)"});
    for (const char* name : {"proto", "port", "backend"})
        if (!entry.contains(name))
            return std::unexpected(InputError{name, "missing"});

    const auto& proto_value = entry["proto"];
    if (!proto_value.is_string())
        return std::unexpected(InputError{"protocol", "must be a string, tcp or udp"});
    auto proto = parse_proto(proto_value.get<std::string>());
    if (!proto)
        return std::unexpected(proto.error());

    const auto& port_value = entry["port"];
    if (!port_value.is_number_integer() || port_value.get<long long>() < 1 || port_value.get<long long>() > 65535)
        return std::unexpected(InputError{"port", fmt::format("{} is not a port number (1-65535)", describe(port_value))});

    const auto& backend_value = entry["backend"];
    if (!backend_value.is_string())
        return std::unexpected(InputError{"backend", "must be a string, IP:PORT"});
    auto backend = parse_backend(backend_value.get<std::string>());
    if (!backend)
        return std::unexpected(backend.error());

    std::string owner;
    if (entry.contains("owner")) {
        if (!entry["owner"].is_string())
            return std::unexpected(InputError{"owner", "must be a string"});
        auto parsed = parse_owner(entry["owner"].get<std::string>());
        if (!parsed)
            return std::unexpected(parsed.error());
        owner = std::move(*parsed);
    }
    return Mapping{NodePort{*proto, static_cast<std::uint16_t>(port_value.get<long long>())}, *backend,
                   std::move(owner)};
}

// sync_limits as the JSON reader takes them. An entry is at most five
// values (the object and its four fields), so a set of the most entries
// fits, and the document never grows much past one.
constexpr JsonLimits json_limits{sync_limits.bytes, sync_limits.depth, 1 + 5 * sync_limits.entries,
                                 sync_limits.string_bytes};

}  // namespace

Parsed<std::vector<Mapping>> parse_mappings_json(std::istream& in) {
    auto read = read_json(in, json_limits);
    if (!read)
        return std::unexpected(InputError{"file", read.error().kind == JsonError::Kind::syntax
                                                      ? "is not valid JSON: " + read.error().message
                                                      : read.error().message});
    const json& doc = *read;
    if (!doc.is_array())
        return std::unexpected(InputError{"file", "must be a JSON array of mappings"});
    if (doc.size() > sync_limits.entries)
        return std::unexpected(InputError{
            "file", fmt::format("{} entries, more than the limit of {} (what the port table holds: every node "
                                "port of both protocols, for both families together)",
                                doc.size(), sync_limits.entries)});
    std::vector<Mapping> out;
    out.reserve(doc.size());
    std::map<MappingKey, std::size_t> seen;  // node port and family -> index of its entry
    for (std::size_t i = 0; i < doc.size(); ++i) {
        auto mapping = parse_entry(doc[i]);
        if (!mapping)
            return bad(i, mapping.error().field, mapping.error().message);
        auto [it, fresh] = seen.emplace(key_of(*mapping), i);
        if (!fresh)
            return bad(i, "node port", fmt::format("{} is listed twice (also entry {})",
                                                   to_string(key_of(*mapping)), it->second));
        out.push_back(std::move(*mapping));
    }
    return out;
}

Parsed<std::vector<Mapping>> parse_mappings_json(std::string_view text) {
    std::ispanstream in(std::span<const char>(text.data(), text.size()));
    return parse_mappings_json(in);
}

SyncPlan plan_sync(const std::vector<Mapping>& current, const std::vector<Mapping>& desired) {
    std::map<MappingKey, const Mapping*> now;
    for (const auto& m : current)
        now.emplace(key_of(m), &m);
    SyncPlan plan;
    std::set<MappingKey> wanted;
    for (const auto& m : desired) {
        wanted.insert(key_of(m));
        auto it = now.find(key_of(m));
        if (it == now.end())
            plan.add.push_back(m);
        else if (*it->second != m)
            plan.update.push_back(m);
        else
            ++plan.unchanged;
    }
    for (const auto& m : current)
        if (!wanted.contains(key_of(m)))
            plan.remove.push_back(m);
    return plan;
}

}  // namespace nodeport
