// The port table conformance suite (port_table.json) against the C++ library
// (--api cpp: PortTable) or the C ABI (--api c: nodeport_*), over a pin
// directory test_pin loaded; go/nodeport/conformance_test.go runs the same
// cases against the Go package. Prints one line per case; exit 1 when any
// step differs from the case.
//   conformance_runner --api cpp|c CASES.json PIN_DIR
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <arpa/inet.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "nodeport/abi.h"
#include "nodeport/nodeport.h"
#include "nodeport/port_table.hpp"

namespace {

using nlohmann::json;
using namespace nodeport;

// What one step did, as the case states it; unset fields are not compared.
struct Outcome {
    std::string error = "ok";
    std::optional<std::string> replaced;
    std::optional<std::vector<std::string>> removed;
    std::optional<std::vector<std::string>> replaced_earlier;  // delete_owner's; the C ABI returns none
    std::optional<std::vector<std::size_t>> plan;
    std::optional<std::size_t> resumed;
};

Outcome failed(std::string error) {
    Outcome out;
    out.error = std::move(error);
    return out;
}

std::string row(const Mapping& m) {
    auto s = fmt::format("{} {}", to_string(m.node_port), to_string(m.backend));
    return m.owner.empty() ? s : s + " " + m.owner;
}

std::string error_name(const Error& e) {
    return e.errno_value == EINVAL && e.message.starts_with("bad input") ? "bad_input" : "other: " + e.message;
}

std::string error_name(int code) {
    switch (code) {
    case NODEPORT_OK:
        return "ok";
    case NODEPORT_EBADINPUT:
        return "bad_input";
    case NODEPORT_ENOTFOUND:
        return "not_found";
    case NODEPORT_EOWNED:
        return "owned";
    }
    return fmt::format("other: {} ({})", nodeport_strerror(code), nodeport_last_error());
}

// An IPv6 backend is written in brackets, "[fd00::2]:80".
bool ipv6_backend(const json& m) {
    return m.at("backend").get<std::string>().starts_with('[');
}

// The typed values the C++ API takes, from a case's text; what cannot even
// be typed (a protocol that is not one, an address that is not a dotted
// quad or an IPv6 address in brackets) is bad input at this edge, as the
// CLI's parsers make it. The rest (a loopback or v4-mapped address, port 0)
// is left for the library to refuse.
Parsed<Mapping> typed(const json& m) {
    auto proto = parse_proto(m.at("proto").get<std::string>());
    if (!proto)
        return std::unexpected(proto.error());
    auto text = m.at("backend").get<std::string>();
    auto colon = text.rfind(':');
    auto host = text.substr(0, colon);
    auto addr = ipv6_backend(m) ? Parsed<IpAddr>(parse_ipv6(host.substr(1, host.size() - 2), "backend address"))
                                : Parsed<IpAddr>(parse_ipv4(host, "backend address"));
    if (!addr)
        return std::unexpected(addr.error());
    auto port = static_cast<std::uint16_t>(std::stoul(text.substr(colon + 1)));
    return Mapping{NodePort{*proto, m.at("port").get<std::uint16_t>()}, Backend{*addr, port},
                   m.value("owner", std::string())};
}

Outcome run_cpp(PortTable& table, const json& step) {
    Outcome out;
    const auto op = step.at("op").get<std::string>();
    if (op == "set") {
        auto m = typed(step.at("mapping"));
        if (!m)
            return failed("bad_input");
        auto r = table.set(*m);
        if (!r)
            return failed(error_name(r.error()));
        out.replaced = r->replaced ? to_string(*r->replaced) : "";
        out.resumed = r->ended.resumed;
    } else if (op == "delete" || op == "delete_any") {
        auto proto = parse_proto(step.at("proto").get<std::string>());
        auto port = step.at("port").get<std::uint16_t>();
        if (!proto || port == 0)
            return failed("bad_input");
        std::optional<std::string> owner;
        if (op == "delete")
            owner = step.at("owner").get<std::string>();
        auto r = table.remove(NodePort{*proto, port}, owner);
        if (!r)
            return failed(error_name(r.error()));
        out.error = r->outcome == RemoveOutcome::removed      ? "ok"
                    : r->outcome == RemoveOutcome::not_mapped ? "not_found"
                                                              : "owned";
        out.resumed = r->ended.resumed;
    } else if (op == "delete_owner") {
        auto r = table.remove_owner(step.at("owner").get<std::string>());
        if (!r)
            return failed(error_name(r.error()));
        out.removed.emplace();
        for (const auto& m : r->removed)
            out.removed->push_back(row(m));
        out.replaced_earlier.emplace();
        for (const auto& m : r->replaced_earlier)
            out.replaced_earlier->push_back(row(m));
        out.resumed = r->ended.resumed;
    } else if (op == "sync") {
        std::vector<Mapping> want;
        for (const auto& m : step.at("want")) {
            auto t = typed(m);
            if (!t)
                return failed("bad_input");
            want.push_back(*t);
        }
        auto r = table.sync(want);
        if (!r)
            return failed(error_name(r.error()));
        out.plan = std::vector<std::size_t>{r->added, r->updated, r->removed, r->unchanged};
        out.resumed = r->ended.resumed;
    }
    return out;
}

// The C ABI takes text and returns a code: only `error` is compared. It
// spells an IPv6 backend without brackets; sync goes through nodeport_sync2,
// the call of both families (nodeport_sync is the IPv4 view).
Outcome run_c(nodeport_table* np, const json& step) {
    const auto op = step.at("op").get<std::string>();
    auto backend_of = [](const json& m) {
        auto text = m.at("backend").get<std::string>();
        auto colon = text.rfind(':');
        auto host = text.substr(0, colon);
        if (ipv6_backend(m))
            host = host.substr(1, host.size() - 2);
        return std::pair{host, static_cast<std::uint16_t>(std::stoul(text.substr(colon + 1)))};
    };
    int rc = NODEPORT_EINTERNAL;
    if (op == "set") {
        const auto& m = step.at("mapping");
        auto [ip, port] = backend_of(m);
        rc = nodeport_set(np, m.at("proto").get<std::string>().c_str(), m.at("port").get<std::uint16_t>(), ip.c_str(),
                          port, m.value("owner", std::string()).c_str());
    } else if (op == "delete" || op == "delete_any") {
        std::string owner = step.value("owner", std::string());
        rc = nodeport_del(np, step.at("proto").get<std::string>().c_str(), step.at("port").get<std::uint16_t>(),
                          op == "delete" ? owner.c_str() : nullptr);
    } else if (op == "delete_owner") {
        rc = nodeport_del_owner(np, step.at("owner").get<std::string>().c_str());
    } else if (op == "sync") {
        std::vector<nodeport_mapping2> want;
        for (const auto& m : step.at("want")) {
            nodeport_mapping2 c{};
            auto [ip, port] = backend_of(m);
            std::snprintf(c.proto, sizeof c.proto, "%s", m.at("proto").get<std::string>().c_str());
            c.port = m.at("port").get<std::uint16_t>();
            std::snprintf(c.backend_ip, sizeof c.backend_ip, "%s", ip.c_str());
            c.backend_port = port;
            std::snprintf(c.owner, sizeof c.owner, "%s", m.value("owner", std::string()).c_str());
            want.push_back(c);
        }
        rc = nodeport_sync2(np, want.data(), want.size());
    }
    return failed(error_name(rc));
}

// The pinned maps the programs and an interrupted write fill, written and
// read here directly.
struct Maps {
    int counters = -1;
    int targets = -1;
    int config = -1;
};

std::vector<std::string> counter_keys(int fd) {
    std::vector<std::string> out;
    np_port_key key{}, next{};
    const void* prev = nullptr;
    while (bpf_map_get_next_key(fd, prev, &next) == 0) {
        const Family family = next.family == NP_PORT_KEY_IPV6 ? Family::ipv6 : Family::ipv4;
        out.push_back(to_string(MappingKey{NodePort{static_cast<Proto>(next.proto), next.port}, family}));
        key = next;
        prev = &key;
    }
    std::ranges::sort(out);
    return out;
}

std::vector<std::string> target_keys(int fd) {
    std::vector<std::string> out;
    np_sock_end_target key{}, next{};
    const void* prev = nullptr;
    while (bpf_map_get_next_key(fd, prev, &next) == 0) {
        out.push_back(fmt::format("{} {}", to_string(NodePort{static_cast<Proto>(next.proto), ntohs(next.node_port_be)}),
                                  to_string(Backend{Ipv4{next.backend_addr_be}, ntohs(next.backend_port_be)})));
        key = next;
        prev = &key;
    }
    std::ranges::sort(out);
    return out;
}

template <class Key>
void clear(int fd) {
    Key key{};
    while (bpf_map_get_next_key(fd, nullptr, &key) == 0)
        bpf_map_delete_elem(fd, &key);
}

std::string joined(const std::vector<std::string>& v) {
    return v.empty() ? "[]" : "['" + fmt::format("{}", fmt::join(v, "', '")) + "']";
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 5 || std::string_view(argv[1]) != "--api" ||
        (std::string_view(argv[2]) != "cpp" && std::string_view(argv[2]) != "c")) {
        std::fprintf(stderr, "usage: conformance_runner --api cpp|c CASES.json PIN_DIR\n");
        return 2;
    }
    const bool c_api = std::string_view(argv[2]) == "c";
    std::ifstream file(argv[3]);
    const json doc = json::parse(file);
    const std::string pin = argv[4];
    auto table = PortTable::open(pin);
    nodeport_table* np = nullptr;
    if (!table || nodeport_open(pin.c_str(), &np) != NODEPORT_OK) {
        std::fprintf(stderr, "open %s: %s\n", pin.c_str(), table ? nodeport_last_error() : table.error().message.c_str());
        return 1;
    }
    Maps maps{bpf_obj_get((pin + "/port_counters").c_str()), bpf_obj_get((pin + "/sock_end_targets").c_str()),
              bpf_obj_get((pin + "/node_config").c_str())};
    if (maps.counters < 0 || maps.targets < 0 || maps.config < 0) {
        std::fprintf(stderr, "%s has no port_counters, sock_end_targets or node_config\n", pin.c_str());
        return 1;
    }
    const int cpus = libbpf_num_possible_cpus();
    int failed = 0;
    for (const auto& c : doc.at("cases")) {
        if (const auto apis = c.value("apis", std::vector<std::string>{});
            !apis.empty() && std::ranges::find(apis, argv[2]) == apis.end()) {
            std::printf("SKIP %s: %s (runs through %s only)\n", argv[2], c.at("name").get<std::string>().c_str(),
                        c.at("apis").dump().c_str());
            continue;
        }
        std::vector<std::string> problems;
        if (!table->sync({}))
            problems.push_back("could not empty the table");
        clear<np_port_key>(maps.counters);
        clear<np_sock_end_target>(maps.targets);
        int index = 0;
        for (const auto& step : c.at("steps")) {
            const auto op = step.at("op").get<std::string>();
            const auto where = fmt::format("step {} ({})", index++, op);
            if (op == "seed_counter") {
                np_port_key key{};
                key.proto = static_cast<__u8>(*parse_proto(step.at("proto").get<std::string>()));
                key.family = step.value("family", std::string()) == "ipv6" ? NP_PORT_KEY_IPV6 : NP_PORT_KEY_IPV4;
                key.port = step.at("port").get<std::uint16_t>();
                std::vector<np_port_counters> values(cpus);
                bpf_map_update_elem(maps.counters, &key, values.data(), BPF_ANY);
                continue;
            }
            if (op == "seed_target") {
                auto backend = *parse_backend(step.at("backend").get<std::string>());
                np_sock_end_target key{};
                key.backend_addr_be = std::get<Ipv4>(backend.addr).addr_be;
                key.backend_port_be = htons(backend.port);
                key.node_port_be = htons(step.at("port").get<std::uint16_t>());
                key.proto = static_cast<__u8>(*parse_proto(step.at("proto").get<std::string>()));
                __u32 zero = 0;
                np_config cfg{};
                bpf_map_lookup_elem(maps.config, &zero, &cfg);
                cfg.flags |= NP_CONFIG_SOCK_END_PENDING;  // a write marks the walk pending, then records
                bpf_map_update_elem(maps.config, &zero, &cfg, BPF_EXIST);
                const __u8 unused = 0;
                bpf_map_update_elem(maps.targets, &key, &unused, BPF_ANY);
                continue;
            }
            if (op == "check") {
                if (step.contains("table")) {
                    std::vector<std::string> rows;
                    auto all = table->list();
                    if (!all)
                        problems.push_back(where + ": list: " + all.error().message);
                    for (const auto& m : all ? *all : std::vector<Mapping>{})
                        rows.push_back(row(m));
                    if (rows != step["table"].get<std::vector<std::string>>())
                        problems.push_back(fmt::format("{}: table {}, want {}", where, joined(rows),
                                                       joined(step["table"].get<std::vector<std::string>>())));
                }
                for (auto [name, got] : {std::pair{"counters", counter_keys(maps.counters)},
                                         std::pair{"targets", target_keys(maps.targets)}})
                    if (step.contains(name) && got != step[name].get<std::vector<std::string>>())
                        problems.push_back(fmt::format("{}: {} {}, want {}", where, name, joined(got),
                                                       joined(step[name].get<std::vector<std::string>>())));
                continue;
            }
            Outcome got = c_api ? run_c(np, step) : run_cpp(*table, step);
            const auto& want = step.at("expect");
            if (got.error != want.at("error").get<std::string>()) {
                problems.push_back(fmt::format("{}: {}, want {}", where, got.error, want["error"].get<std::string>()));
                continue;
            }
            if (want.contains("replaced") && got.replaced && *got.replaced != want["replaced"].get<std::string>())
                problems.push_back(fmt::format("{}: replaced '{}', want '{}'", where, *got.replaced,
                                               want["replaced"].get<std::string>()));
            if (want.contains("removed") && got.removed &&
                *got.removed != want["removed"].get<std::vector<std::string>>())
                problems.push_back(fmt::format("{}: removed {}, want {}", where, joined(*got.removed),
                                               joined(want["removed"].get<std::vector<std::string>>())));
            if (want.contains("replaced_earlier") && got.replaced_earlier &&
                *got.replaced_earlier != want["replaced_earlier"].get<std::vector<std::string>>())
                problems.push_back(fmt::format("{}: replaced_earlier {}, want {}", where, joined(*got.replaced_earlier),
                                               joined(want["replaced_earlier"].get<std::vector<std::string>>())));
            if (want.contains("plan") && got.plan && *got.plan != want["plan"].get<std::vector<std::size_t>>())
                problems.push_back(fmt::format("{}: plan {}, want {}", where, fmt::join(*got.plan, ","),
                                               want["plan"].dump()));
            if (want.contains("resumed") && got.resumed && *got.resumed != want["resumed"].get<std::size_t>())
                problems.push_back(fmt::format("{}: resumed {}, want {}", where, *got.resumed,
                                               want["resumed"].get<std::size_t>()));
        }
        const auto name = c.at("name").get<std::string>();
        if (problems.empty()) {
            std::printf("PASS %s: %s\n", argv[2], name.c_str());
        } else {
            ++failed;
            for (const auto& p : problems)
                std::printf("FAIL %s: %s: %s\n", argv[2], name.c_str(), p.c_str());
        }
    }
    nodeport_close(np);
    std::printf("%s: %d of %zu cases failed\n", argv[2], failed, doc.at("cases").size());
    return failed == 0 ? 0 : 1;
}
