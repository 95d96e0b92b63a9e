// One function per command: parse and validate every argument first, then
// act. A command that throws UsageError has changed nothing.
#include <boost/program_options.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <bpf/libbpf.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>

#include "cli/cli.hpp"
#include "cli/drain.hpp"
#include "cli/invocation.hpp"
#include "nodeport/abi.h"
#include "nodeport/datapath.hpp"
#include "nodeport/flows.hpp"
#include "nodeport/pin_dir.hpp"
#include "nodeport/port_table.hpp"
#include "nodeport/sync.hpp"

namespace nodeport::cli {
namespace {

namespace po = boost::program_options;

std::optional<std::string> owner_option(const Invocation& inv) {
    if (!inv.options.count("owner"))
        return std::nullopt;
    return valid(parse_owner(inv.options["owner"].as<std::string>()));
}

std::string describe(const Mapping& m) {
    std::string line = fmt::format("{} -> {}", to_string(m.node_port), to_string(m.backend));
    if (!m.owner.empty())
        line += " owner " + printable(m.owner);
    return line;
}

// The options of a command that changes the table: --terminate and --wait.
po::options_description terminate_description() {
    po::options_description options = wait_description();
    options.add_options()("terminate",
                          "also end the node's TCP connections to the replaced backend (connected UDP sockets "
                          "are always ended)");
    return options;
}

ChangeOptions change_options(const Invocation& inv) {
    return ChangeOptions{.terminate = inv.options.count("terminate") > 0};
}

// One line per socket effect, on stderr when nothing could be checked.
void report(const EndedSockets& ended) {
    if (ended.count > 0)
        std::cout << fmt::format("ended {} node socket{} connected to the old backend\n", ended.count,
                                 ended.count == 1 ? "" : "s");
    if (ended.resumed > 0)
        std::cout << fmt::format("finished the socket walk of an interrupted write ({} replaced backend{})\n",
                                 ended.resumed, ended.resumed == 1 ? "" : "s");
    if (!ended.not_checked.empty())
        std::cerr << "nodeport: note: " << ended.not_checked << "\n";
}

// The same in a JSON result: "sockets_ended", "resumed_targets" (replaced
// backends an interrupted write left to walk) and "sockets_not_checked"
// (null when they were checked).
void add_ended(nlohmann::json& out, const EndedSockets& ended) {
    out["sockets_ended"] = ended.count;
    out["resumed_targets"] = ended.resumed;
    out["sockets_not_checked"] =
        ended.not_checked.empty() ? nlohmann::json() : nlohmann::json(printable(ended.not_checked));
}

bool json(const Invocation& inv) { return inv.options.count("json") > 0; }

// {"external": N, "local": N}; "local" null when the node's sockets to the
// mapping's family could not be counted (ConnectionCount::local_not_counted_of).
nlohmann::json connections_json(const Mapping& m, const Connections& live, const ConnectionCount& counted) {
    const bool local_counted = counted.local_not_counted_of(m.family()).empty();
    return {{"external", live.external}, {"local", local_counted ? nlohmann::json(live.local) : nlohmann::json()}};
}

void print(const nlohmann::json& out) { std::cout << json_line(out) << "\n"; }

// The backends of `mappings` that `draining` does not hold yet, added to it
// in order: what a del --drain waits for, each once.
void add_backends(std::vector<Backend>& draining, const std::vector<Mapping>& mappings) {
    for (const auto& m : mappings)
        if (std::ranges::find(draining, m.backend) == draining.end())
            draining.push_back(m.backend);
}

int cmd_set(const Args& argv) {
    po::options_description options = terminate_description();
    options.add(drain_description());
    options.add_options()("owner", po::value<std::string>(), "who holds the port (a sandbox id), checked by del --owner");
    auto inv = parse("set", argv, options, {"node port", "backend"});
    if (!inv)
        return exit_ok;
    Mapping mapping{valid(parse_node_port(inv->args[0])), valid(parse_backend(inv->args[1])),
                    owner_option(*inv).value_or("")};
    const auto drain = drain_option(*inv);
    auto table = succeeded(PortTable::open(inv->pin_dir, lock_wait_option(*inv)));
    auto result = succeeded(table.set(mapping, change_options(*inv)));
    // After the write, without its lock: the replaced backend, if any.
    std::vector<Backend> draining;
    if (result.replaced)
        draining.push_back(*result.replaced);
    if (json(*inv)) {
        auto out = to_json(mapping);
        out["replaced"] = result.replaced ? nlohmann::json(to_string(*result.replaced)) : nlohmann::json();
        add_ended(out, result.ended);
        const int code = drain ? drain_and_report(table, draining, *drain, &out) : exit_ok;
        print(out);
        return code;
    }
    std::cout << describe(mapping) << (result.replaced ? " (was " + to_string(*result.replaced) + ")" : "") << "\n";
    report(result.ended);
    return drain ? drain_and_report(table, draining, *drain, nullptr) : exit_ok;
}

// del --owner ID without a port: every port of that owner, each only while
// the owner holds it. Exit 3 when it held none.
// With --drain it then waits for every backend it removed and for those of
// the owner an earlier set or sync replaced (a redeploy's new sandbox took
// the port first); exit 3 only when there was neither.
int del_owner(const Invocation& inv, const std::string& owner, std::optional<std::chrono::milliseconds> drain) {
    auto table = succeeded(PortTable::open(inv.pin_dir, lock_wait_option(inv)));
    auto result = succeeded(table.remove_owner(owner, change_options(inv)));
    const auto& removed = result.removed;
    std::vector<Backend> draining;
    add_backends(draining, result.removed);
    add_backends(draining, result.replaced_earlier);
    const int none = drain && !result.replaced_earlier.empty() ? exit_ok : exit_not_mapped;
    if (json(inv)) {
        nlohmann::json out{{"owner", printable(owner)},
                           {"removed", nlohmann::json::array()},
                           {"sockets_ended", result.ended.count},
                           {"resumed_targets", result.ended.resumed}};
        for (const auto& m : removed)
            out["removed"].push_back(to_json(m));
        int code = removed.empty() ? none : exit_ok;
        if (drain) {
            out["replaced_earlier"] = nlohmann::json::array();
            for (const auto& m : result.replaced_earlier)
                out["replaced_earlier"].push_back(to_json(m));
            if (int drained = drain_and_report(table, draining, *drain, &out); drained != exit_ok)
                code = drained;
        }
        print(out);
        return code;
    }
    if (removed.empty() && result.replaced_earlier.empty()) {
        std::cout << "owner '" << printable(owner) << "' holds no port\n";
    } else {
        for (const auto& m : removed)
            std::cout << describe(m) << " removed\n";
        if (drain)
            for (const auto& m : result.replaced_earlier)
                std::cout << describe(m) << " replaced earlier\n";
        report(result.ended);
    }
    int code = removed.empty() ? none : exit_ok;
    if (drain)
        if (int drained = drain_and_report(table, draining, *drain, nullptr); drained != exit_ok)
            code = drained;
    return code;
}

int cmd_del(const Args& argv) {
    po::options_description options = terminate_description();
    options.add(drain_description());
    options.add_options()("owner", po::value<std::string>(),
                          "delete only while this owner holds the port; without PROTO/PORT, every port it holds");
    auto inv = parse("del", argv, options, {}, {"node port"});
    if (!inv)
        return exit_ok;
    auto owner = owner_option(*inv);
    const auto drain = drain_option(*inv);
    if (inv->args.empty()) {
        if (!owner)
            throw UsageError("node port", "missing (PROTO/PORT, or --owner ID for every port of that owner)");
        return del_owner(*inv, *owner, drain);
    }
    NodePort node_port = valid(parse_node_port(inv->args[0]));
    auto table = succeeded(PortTable::open(inv->pin_dir, lock_wait_option(*inv)));
    auto result = succeeded(table.remove(node_port, owner, change_options(*inv)));
    int code = result.outcome == RemoveOutcome::removed      ? exit_ok
               : result.outcome == RemoveOutcome::not_mapped ? exit_not_mapped
                                                             : exit_held_by_other;
    // --drain: the backend removed, read under the write lock, and with
    // --owner the owner's backends of this port a redeploy's set replaced
    // first (then the port is another's or gone, and that is no failure).
    std::vector<Backend> draining;
    add_backends(draining, result.removed);
    if (drain)
        add_backends(draining, result.replaced_earlier);
    if (drain && !result.replaced_earlier.empty())
        code = exit_ok;
    auto drain_now = [&](nlohmann::json* out) {
        if (!drain || draining.empty())
            return;
        if (int drained = drain_and_report(table, draining, *drain, out); drained != exit_ok)
            code = drained;
    };
    if (json(*inv)) {
        nlohmann::json out{{"proto", to_string(node_port.proto)},
                           {"port", node_port.port},
                           {"outcome", result.outcome == RemoveOutcome::removed      ? "removed"
                                       : result.outcome == RemoveOutcome::not_mapped ? "not_mapped"
                                                                                     : "held_by_other"},
                           {"holder", result.outcome == RemoveOutcome::held_by_other
                                          ? nlohmann::json(printable(result.holder))
                                          : nlohmann::json()},
                           {"removed", nlohmann::json::array()}};  // the mappings removed, one per family
        for (const auto& m : result.removed)
            out["removed"].push_back(to_json(m));
        add_ended(out, result.ended);
        if (drain) {
            out["replaced_earlier"] = nlohmann::json::array();
            for (const auto& m : result.replaced_earlier)
                out["replaced_earlier"].push_back(to_json(m));
        }
        drain_now(&out);
        print(out);
        return code;
    }
    switch (result.outcome) {
    case RemoveOutcome::removed:
        for (const auto& m : result.removed)
            std::cout << to_string(key_of(m)) << " removed\n";
        report(result.ended);
        break;
    case RemoveOutcome::not_mapped:
        std::cout << to_string(node_port) << " was not mapped\n";
        break;
    case RemoveOutcome::held_by_other:
        std::cout << to_string(node_port) << " kept: owner '" << printable(result.holder) << "' holds it now\n";
        break;
    }
    if (drain)
        for (const auto& m : result.replaced_earlier)
            std::cout << describe(m) << " replaced earlier\n";
    drain_now(nullptr);
    return code;
}

int cmd_get(const Args& argv) {
    auto inv = parse("get", argv, po::options_description{}, {"node port"});
    if (!inv)
        return exit_ok;
    NodePort node_port = valid(parse_node_port(inv->args[0]));
    auto table = succeeded(PortTable::open(inv->pin_dir));
    auto mappings = succeeded(table.get(node_port));
    if (mappings.empty()) {
        print_error("get", to_string(node_port) + " is not mapped");
        return exit_not_mapped;
    }
    // One line (with --json one object) per family mapped, IPv4 first: a
    // port of one family prints what it always did.
    auto counted = succeeded(table.connections());
    for (const auto& mapping : mappings) {
        const Connections live = counted.of(node_port, mapping.backend);
        if (json(*inv)) {
            auto out = to_json(mapping);
            out["connections"] = connections_json(mapping, live, counted);
            print(out);
        } else {
            std::cout << describe(mapping)
                      << (live.total() > 0
                              ? fmt::format(" ({} live connection{})", live.total(), live.total() == 1 ? "" : "s")
                              : "")
                      << "\n";
        }
    }
    return exit_ok;
}

int cmd_list(const Args& argv) {
    po::options_description options;
    options.add_options()("unmapped", "with --json: also the backends no longer mapped that still have connections "
                                      "(\"mapped\": false)");
    auto inv = parse("list", argv, options);
    if (!inv)
        return exit_ok;
    // Off by default: a controller reading `list --json` as its mappings
    // must not meet entries that are none (cni_test did).
    const bool with_unmapped = inv->options.count("unmapped") > 0;
    if (with_unmapped && !json(*inv))
        throw UsageError("--unmapped", "is taken only with --json");
    const PinDir dir = succeeded(PinDir::open(inv->pin_dir));
    auto table = succeeded(PortTable::open(dir));
    auto mappings = succeeded(table.list());
    // Every mapped port is reachable from outside through the same interfaces.
    std::vector<std::string> external;
    for (const auto& a : succeeded(external_interfaces(dir)))
        external.push_back(printable(a.interface));
    if (json(*inv)) {
        // An array (what controllers already read), one entry per mapping,
        // then, with --unmapped, one per node port and backend that is no
        // longer mapped but still has connections ("mapped": false, "owner": null).
        auto counted = succeeded(table.connections());
        std::vector<Mapping> unmapped;
        if (with_unmapped)
            for (const auto& e : counted.entries)
                if (std::ranges::none_of(mappings, [&](const Mapping& m) {
                        return m.node_port == e.node_port && m.backend == e.backend;
                    }))
                    unmapped.push_back(Mapping{e.node_port, e.backend, {}});
        stream_json_array(std::cout, mappings.size() + unmapped.size(), [&](std::size_t i) {
            const bool mapped = i < mappings.size();
            const Mapping& m = mapped ? mappings[i] : unmapped[i - mappings.size()];
            auto entry = to_json(m);
            if (!mapped)
                entry["owner"] = nullptr;
            entry["external"] = external;
            entry["mapped"] = mapped;
            entry["connections"] = connections_json(m, counted.of(m.node_port, m.backend), counted);
            return entry;
        });
        std::cout << "\n";
        return exit_ok;
    }
    std::string reach = external.empty() ? "- (local only)" : fmt::format("{}", fmt::join(external, ","));
    std::cout << fmt::format("{:<12} {:<22} {:<16} {}\n", "PORT", "BACKEND", "EXTERNAL", "OWNER");
    for (const auto& m : mappings)
        std::cout << fmt::format("{:<12} {:<22} {:<16} {}\n", to_string(m.node_port), to_string(m.backend), reach,
                                 printable(m.owner));
    return exit_ok;
}

int cmd_flows(const Args& argv) {
    po::options_description options;
    options.add_options()("flush", "forget the flows (of PROTO/PORT only, when given); their connections break");
    auto inv = parse("flows", argv, options, {}, {"node port"});
    if (!inv)
        return exit_ok;
    std::optional<NodePort> only;
    if (!inv->args.empty()) {
        if (!inv->options.count("flush"))
            throw UsageError("node port", "a PROTO/PORT is taken only with --flush");
        only = valid(parse_node_port(inv->args[0]));
    }
    if (inv->options.count("flush")) {
        auto flushed = succeeded(flush_flows(inv->pin_dir, only));
        if (json(*inv))
            print({{"forgotten", flushed}, {"node_port", only ? nlohmann::json(to_string(*only)) : nlohmann::json()}});
        else
            std::cout << fmt::format("forgot {} flow{}{}\n", flushed, flushed == 1 ? "" : "s",
                                     only ? " of " + to_string(*only) : "");
        return exit_ok;
    }
    auto flows = succeeded(list_flows(inv->pin_dir));
    auto secs = [](std::chrono::nanoseconds d) { return std::chrono::duration_cast<std::chrono::seconds>(d).count(); };
    if (json(*inv)) {
        nlohmann::json out = nlohmann::json::array();
        for (const auto& f : flows)
            out.push_back({{"proto", to_string(f.proto)},
                           {"client", to_string(f.client)},
                           {"node", to_string(f.node)},
                           {"backend", to_string(f.backend)},
                           {"state", to_string(f.state)},
                           {"idle_seconds", secs(f.idle)},
                           {"expires_in_seconds", secs(f.expires_in)}});
        std::cout << out.dump(2) << "\n";
        return exit_ok;
    }
    std::cout << fmt::format("{:<5} {:<22} {:<22} {:<22} {:<12} {:>6} {:>8}\n", "PROTO", "CLIENT", "NODE", "BACKEND",
                             "STATE", "IDLE", "EXPIRES");
    for (const auto& f : flows)
        std::cout << fmt::format("{:<5} {:<22} {:<22} {:<22} {:<12} {:>5}s {:>7}s\n", to_string(f.proto),
                                 to_string(f.client), to_string(f.node), to_string(f.backend), to_string(f.state),
                                 secs(f.idle), secs(f.expires_in));
    return exit_ok;
}

int cmd_flush(const Args& argv) {
    auto inv = parse("flush", argv, wait_description());
    if (!inv)
        return exit_ok;
    auto table = succeeded(PortTable::open(inv->pin_dir, lock_wait_option(*inv)));
    auto removed = succeeded(table.flush());
    if (json(*inv))
        print({{"removed", removed}});
    else
        std::cout << "removed " << removed << " mappings\n";
    return exit_ok;
}

// The desired set of --file: a path, or - for standard input, read as it
// is parsed (within sync_limits, so /dev/zero or an endless pipe stops early).
std::vector<Mapping> read_desired(const std::string& name) {
    std::ifstream file;
    if (name != "-")
        file = open_input("file", name);
    return valid(parse_mappings_json(name == "-" ? std::cin : file));
}

std::string describe_plan(const SyncPlan& plan) {
    std::string out;
    for (const auto& m : plan.add)
        out += "+ " + describe(m) + "\n";
    for (const auto& m : plan.update)
        out += "~ " + describe(m) + "\n";
    for (const auto& m : plan.remove)
        out += "- " + describe(m) + "\n";
    return out;
}

int cmd_sync(const Args& argv) {
    po::options_description options = terminate_description();
    options.add_options()
        ("file", po::value<std::string>(), "the complete desired set, a JSON array (- for standard input)")
        ("dry-run", "print what would change, change nothing");
    auto inv = parse("sync", argv, options);
    if (!inv)
        return exit_ok;
    if (!inv->options.count("file"))
        throw UsageError("file", "missing (--file FILE, or --file - for standard input)");
    const auto lock_wait = lock_wait_option(*inv);
    auto desired = read_desired(inv->options["file"].as<std::string>());
    auto table = succeeded(PortTable::open(inv->pin_dir, lock_wait));
    const bool dry_run = inv->options.count("dry-run") > 0;
    SyncResult counts;
    if (dry_run) {
        auto plan = succeeded(table.plan(desired));
        if (!json(*inv))
            std::cout << describe_plan(plan);
        counts = SyncResult{plan.add.size(), plan.update.size(), plan.remove.size(), plan.unchanged, {}};
    } else {
        counts = succeeded(table.sync(desired, change_options(*inv)));
    }
    if (json(*inv)) {
        nlohmann::json out{{"added", counts.added},     {"updated", counts.updated}, {"removed", counts.removed},
                           {"unchanged", counts.unchanged}, {"dry_run", dry_run}};
        add_ended(out, counts.ended);
        print(out);
    } else {
        std::cout << fmt::format("{}{} added, {} updated, {} removed, {} unchanged\n", dry_run ? "would be: " : "",
                                 counts.added, counts.updated, counts.removed, counts.unchanged);
        report(counts.ended);
    }
    return exit_ok;
}

int cmd_version(const Args& argv) {
    auto inv = parse("version", argv, po::options_description{});
    if (!inv)
        return exit_ok;
    const auto libbpf = fmt::format("{}.{}", libbpf_major_version(), libbpf_minor_version());
    if (json(*inv)) {
        print({{"version", NODEPORT_VERSION}, {"commit", NODEPORT_GIT_COMMIT}, {"abi", NODEPORT_ABI_VERSION},
               {"libbpf", libbpf}});
        return exit_ok;
    }
    std::cout << fmt::format("nodeport {} (commit {}), map ABI {}, libbpf {}\n", NODEPORT_VERSION,
                             NODEPORT_GIT_COMMIT, NODEPORT_ABI_VERSION, libbpf);
    return exit_ok;
}

}  // namespace

const std::vector<Command>& commands() {
    static const std::vector<Command> all = {
        {"load",
         "load [--config FILE] [--cgroup PATH] [--node-ip IP]... [--iface IF... | --iface all [--exclude IF]... | "
         "--local-only] [--tc-attach auto|tcx|clsact] [--forward kernel|fib] [--tcp-timeout S] [--tcp-syn-timeout S] "
         "[--tcp-closing-timeout S] [--udp-timeout S] [--wait S]",
         "attach the forwarding programs and pin them with the maps; idempotent, mappings survive",
         "load --iface all --exclude cni0 --config /etc/nodeport/nodeport.conf", "", cmd_load},
        {"unload", "unload [--wait S]", "detach everything nodeport attached and remove its pins", "unload", "",
         cmd_unload},
        {"set", "set PROTO/PORT IP:PORT [--owner ID] [--terminate] [--drain [--timeout S]] [--wait S]",
         "forward the node port to a sandbox, replacing any earlier target; --drain then waits until no connection "
         "reaches the replaced one",
         "set tcp/8080 10.88.0.5:80 --owner sb-1", "5 --drain: the timeout passed with connections left", cmd_set},
        {"del",
         "del PROTO/PORT [--owner ID] [--terminate] [--drain [--timeout S]] [--wait S] | del --owner ID [--terminate] "
         "[--drain [--timeout S]] [--wait S]",
         "stop forwarding the node port, with --owner only while that owner holds it; --owner without a port: "
         "every port that owner holds (a sandbox's teardown); --drain then waits until no connection reaches what "
         "was removed (with --owner alone, also the owner's backends a redeploy's set replaced)",
         "del --owner sb-1 --drain --timeout 30",
         "3 not mapped (the owner holds no port), 4 kept: another owner holds the port, 5 --drain: the timeout "
         "passed with connections left",
         cmd_del},
        {"get", "get PROTO/PORT", "show where a node port goes, and its live connections", "get tcp/8080",
         "3 not mapped", cmd_get},
        {"drain", "drain IP:PORT [--timeout S]",
         "wait until no connection nodeport translated (external flows, the node's sockets) reaches the backend, "
         "or the timeout (default 30 s) passes; changes nothing",
         "drain 10.88.0.5:80 --timeout 60", "5 the timeout passed with connections left", cmd_drain},
        {"explain", "explain PROTO/PORT [--from IP[:PORT]] [--to ADDR]",
         "say whether a client reaches the port's sandbox, and if not why: the datapath's own decision, the way to "
         "the backend, what else acts on the port; changes nothing",
         "explain tcp/8080 --from 203.0.113.7", "3 the client does not reach a live backend (the cause last)",
         cmd_explain},
        {"list", "list [--json [--unmapped]]", "show every mapping", "list --json", "", cmd_list},
        {"flows", "flows | flows --flush [PROTO/PORT]",
         "show the external connections being translated, or forget them", "flows --flush tcp/8080", "", cmd_flows},
        {"flush", "flush [--wait S]", "remove every mapping", "flush", "", cmd_flush},
        {"sync", "sync --file FILE|- [--dry-run] [--terminate] [--wait S]",
         "make the table equal to a JSON list of mappings (a controller's whole state): adds and overwrites first, "
         "removals last",
         "sync --dry-run --file ports.json", "", cmd_sync},
        {"refresh", "refresh [--node-ip IP]... [--wait S]", "re-read the node's addresses (after an address change)",
         "refresh --node-ip 192.0.2.10", "", cmd_refresh},
        {"status", "status",
         "what is loaded and attached, and what makes a mapped port unreachable (exit 1 not loaded, 3 degraded)",
         "status --json", "3 degraded: loaded, but something makes a mapped port unreachable (not loaded is 1)",
         cmd_status},
        {"stats", "stats [PROTO/PORT] [--all] [--json | --prometheus [--output FILE] | --watch SECONDS]",
         "what the datapath counted: per port the connections, datagrams, flows, packets and bytes it translated, "
         "and per reason what it left untouched (--prometheus: text format for node_exporter; --watch: rates per "
         "second until Ctrl-C)",
         "stats --watch 2", "3 not mapped (PROTO/PORT)", cmd_stats},
        {"legacy-iptables", "legacy-iptables --bridge NAME [--dry-run]",
         "find the old runtime's per-port iptables DNAT/MASQUERADE rules, report what they shadow, delete every "
         "copy; a target is dead when it is not the port's current nodeport backend (unmapped port, or nodeport "
         "not loaded: every target)",
         "legacy-iptables --bridge cni0 --dry-run", "", cmd_legacy_iptables},
        {"watch",
         "watch [--config FILE] [--node-ip IP]... [--iface IF... | --iface all [--exclude IF]... | --local-only] "
         "[--tc-attach auto|tcx|clsact] [load's other options: --cgroup PATH --forward kernel|fib --tcp-timeout S "
         "--tcp-syn-timeout S --tcp-closing-timeout S --udp-timeout S] [--wait S]",
         "follow the node: attach to interfaces as they appear, forget those that go, re-read the node's addresses; "
         "takes load's options (uses iface, exclude, node-ip, tc-attach), runs until SIGTERM and leaves the datapath "
         "attached (--json: one JSON object per line and event)",
         "watch --config /etc/nodeport/nodeport.conf", "", cmd_watch},
        {"version", "version", "print the version, the commit, the map ABI and libbpf's version (also --version)",
         "version --json", "", cmd_version},
    };
    return all;
}

}  // namespace nodeport::cli
