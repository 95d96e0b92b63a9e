// One function per command: parse and validate every argument first, then
// act. A command that throws UsageError has changed nothing.
#include <boost/program_options.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <net/if.h>
#include <bpf/libbpf.h>
#include <nlohmann/json.hpp>

#include <cctype>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <iostream>
#include <optional>

#include "cli.hpp"
#include "nodeport/abi.h"
#include "nodeport/datapath.hpp"
#include "nodeport/flows.hpp"
#include "nodeport/port_table.hpp"
#include "nodeport/sync.hpp"

namespace nodeport::cli {
namespace {

namespace po = boost::program_options;
namespace fs = std::filesystem;

struct Invocation {
    fs::path pin_dir;
    po::variables_map options;
    std::vector<std::string> args;  // the positional arguments, one per name given
};

// Parses the command's options plus --pin-dir and --help, and exactly the
// named positional arguments. nullopt: --help was printed.
// `optional_names` may follow the required ones.
std::optional<Invocation> parse(std::string_view command, const Args& argv, po::options_description options,
                                std::vector<std::string_view> positional_names = {},
                                std::vector<std::string_view> optional_names = {}) {
    const Command* cmd = nullptr;
    for (const auto& c : commands())
        if (c.name == command)
            cmd = &c;
    options.add_options()
        ("pin-dir", po::value<std::string>()->default_value(default_pin_dir.string()),
         "bpffs directory holding nodeport's maps and links")
        ("help,h", "show this help");
    po::options_description all;
    all.add(options).add_options()("positional", po::value<std::vector<std::string>>(), "");
    po::positional_options_description positional;
    positional.add("positional", -1);

    Invocation inv;
    try {
        po::store(po::command_line_parser(argv).options(all).positional(positional).run(), inv.options);
        po::notify(inv.options);
    } catch (const po::error& e) {
        throw UsageError(e.what());
    }
    if (inv.options.count("help")) {
        std::cout << "usage: nodeport " << cmd->usage << "\n" << cmd->summary << "\n\n" << options;
        return std::nullopt;
    }
    if (inv.options.count("positional"))
        inv.args = inv.options["positional"].as<std::vector<std::string>>();
    if (inv.args.size() < positional_names.size())
        throw UsageError(fmt::format("{}: missing argument (usage: nodeport {})",
                                     positional_names[inv.args.size()], cmd->usage));
    if (inv.args.size() > positional_names.size() + optional_names.size())
        throw UsageError(fmt::format("unexpected argument '{}' (usage: nodeport {})",
                                     inv.args[positional_names.size() + optional_names.size()], cmd->usage));
    inv.pin_dir = inv.options["pin-dir"].as<std::string>();
    if (!inv.pin_dir.is_absolute())
        throw UsageError(fmt::format("pin-dir: '{}' is not an absolute path", inv.pin_dir.string()));
    return inv;
}

std::optional<std::string> owner_option(const Invocation& inv) {
    if (!inv.options.count("owner"))
        return std::nullopt;
    return valid(parse_owner(inv.options["owner"].as<std::string>()));
}

std::vector<Ipv4> node_ip_options(const Invocation& inv) {
    std::vector<Ipv4> ips;
    if (inv.options.count("node-ip"))
        for (const auto& text : inv.options["node-ip"].as<std::vector<std::string>>())
            ips.push_back(valid(parse_node_ip(text)));
    return ips;
}

po::options_description node_ip_description() {
    po::options_description options;
    options.add_options()("node-ip", po::value<std::vector<std::string>>()->composing(),
                          "an address of the node (repeatable; default: every non-loopback IPv4 "
                          "address of this network namespace)");
    return options;
}

std::string describe(const Mapping& m) {
    std::string line = fmt::format("{} -> {}", to_string(m.node_port), to_string(m.backend));
    if (!m.owner.empty())
        line += " owner " + printable(m.owner);
    return line;
}

std::string describe(const std::vector<NodeAddr>& addrs) {
    std::string out;
    for (const auto& a : addrs)
        out += fmt::format("{}{}{}", out.empty() ? "" : ", ", to_string(a.addr),
                           a.interface.empty() ? "" : " (" + a.interface + ")");
    return out.empty() ? "none" : out;
}

nlohmann::json to_json(const Mapping& m) {
    return {{"proto", to_string(m.node_port.proto)},
            {"port", m.node_port.port},
            {"backend_ip", to_string(m.backend.addr)},
            {"backend_port", m.backend.port},
            {"owner", printable(m.owner)}};
}

TcAttachMode tc_attach_option(const Invocation& inv) {
    const auto& text = inv.options["tc-attach"].as<std::string>();
    if (text == "auto")
        return TcAttachMode::automatic;
    if (text == "tcx")
        return TcAttachMode::tcx;
    if (text == "clsact")
        return TcAttachMode::clsact;
    throw UsageError(fmt::format("tc-attach: '{}' is not auto, tcx or clsact", text));
}

Forwarding forwarding_option(const Invocation& inv) {
    const auto& text = inv.options["forward"].as<std::string>();
    if (text == "kernel")
        return Forwarding::kernel;
    if (text == "fib")
        return Forwarding::fib;
    throw UsageError(fmt::format("forward: '{}' is not kernel or fib", text));
}

// --iface values, checked to exist here; none given: the default route's
// interface, unless --local-only.
std::vector<std::string> interface_options(const Invocation& inv) {
    bool local_only = inv.options.count("local-only") > 0;
    if (inv.options.count("iface")) {
        if (local_only)
            throw UsageError("iface: --iface and --local-only exclude each other");
        auto names = inv.options["iface"].as<std::vector<std::string>>();
        for (const auto& name : names)
            if (name.empty() || name.size() >= IF_NAMESIZE || if_nametoindex(name.c_str()) == 0)
                throw UsageError(fmt::format("iface: '{}' is not an interface in this network namespace", name));
        return names;
    }
    if (local_only)
        return {};
    auto name = default_route_interface();
    if (!name)
        throw Failure(name.error().message +
                      ": name the node's external interfaces with --iface IF, or pass --local-only");
    return {*name};
}

// A --*-timeout option: whole seconds, 1 s to 30 days (conntrack's longest
// default, established TCP, is 5 days).
std::chrono::seconds seconds_option(const Invocation& inv, const char* name, std::chrono::seconds fallback) {
    constexpr unsigned max_seconds = 30 * 24 * 3600;
    if (!inv.options.count(name))
        return fallback;
    const auto& text = inv.options[name].as<std::string>();
    unsigned value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || !std::isdigit(static_cast<unsigned char>(text[0])) || ec != std::errc{} ||
        end != text.data() + text.size() || value < 1 || value > max_seconds)
        throw UsageError(fmt::format("{}: '{}' is not a number of seconds (1-{})", name, text, max_seconds));
    return std::chrono::seconds(value);
}

FlowTimeouts timeout_options(const Invocation& inv) {
    FlowTimeouts defaults;
    return FlowTimeouts{seconds_option(inv, "tcp-timeout", defaults.tcp_established),
                        seconds_option(inv, "tcp-syn-timeout", defaults.tcp_syn),
                        seconds_option(inv, "tcp-closing-timeout", defaults.tcp_closing),
                        seconds_option(inv, "udp-timeout", defaults.udp)};
}

std::string describe(const std::vector<TcAttachment>& interfaces) {
    std::string out;
    for (const auto& a : interfaces)
        out += fmt::format("{}{} ({})", out.empty() ? "" : ", ", a.interface,
                           a.mode == TcAttachMode::tcx ? "tcx" : "clsact");
    return out.empty() ? "none (local forwarding only)" : out;
}

int cmd_load(const Args& argv) {
    po::options_description options = node_ip_description();
    options.add_options()
        ("cgroup", po::value<std::string>(),
         "cgroup v2 directory whose sockets are forwarded (default: the root of the hierarchy)")
        ("iface", po::value<std::vector<std::string>>()->composing(),
         "an external interface for the TC programs (repeatable; default: the default route's interface)")
        ("local-only", "attach no TC programs: forward only traffic that starts on the node")
        ("tc-attach", po::value<std::string>()->default_value("auto"),
         "auto (tcx where the kernel has it, else clsact), tcx or clsact")
        ("forward", po::value<std::string>()->default_value("kernel"),
         "kernel: the kernel routes translated packets; fib: the TC program does (bpf_fib_lookup + "
         "bpf_redirect_neigh; conntrack does not see client packets)")
        ("tcp-timeout", po::value<std::string>(), "seconds an idle external TCP connection keeps its flow (7800)")
        ("tcp-syn-timeout", po::value<std::string>(), "seconds a SYN the backend did not answer keeps its flow (60)")
        ("tcp-closing-timeout", po::value<std::string>(),
         "seconds a half-closed TCP flow may idle, and a closed one (FIN both ways) lives (120)")
        ("udp-timeout", po::value<std::string>(), "seconds an idle external UDP flow lives (60)");
    auto inv = parse("load", argv, options);
    if (!inv)
        return exit_ok;
    LoadOptions load_options{inv->pin_dir, {}, node_ip_options(*inv), {}, tc_attach_option(*inv),
                             forwarding_option(*inv), timeout_options(*inv)};
    if (inv->options.count("cgroup")) {
        fs::path cgroup = inv->options["cgroup"].as<std::string>();
        if (!fs::is_directory(cgroup))
            throw UsageError(fmt::format("cgroup: '{}' is not a directory", cgroup.string()));
        load_options.cgroup = cgroup;
    }
    load_options.interfaces = interface_options(*inv);
    if (!load_options.cgroup)
        load_options.cgroup = succeeded(cgroup2_root());
    auto report = succeeded(load(load_options));
    std::cout << fmt::format("loaded at {} on cgroup {}{}\nnode addresses: {}\nexternal interfaces: {}\n",
                             inv->pin_dir.string(), load_options.cgroup->string(),
                             report.reused_maps ? " (kept the pinned maps and their mappings)" : "",
                             describe(report.node_addrs), describe(report.interfaces));
    if (!report.socket_ending_unavailable.empty())
        std::cerr << "nodeport load: warning: node sockets will not be ended when a backend is replaced: "
                  << report.socket_ending_unavailable << "\n";
    return exit_ok;
}

int cmd_unload(const Args& argv) {
    auto inv = parse("unload", argv, po::options_description{});
    if (!inv)
        return exit_ok;
    succeeded(unload(inv->pin_dir));
    std::cout << "unloaded " << inv->pin_dir.string() << "\n";
    return exit_ok;
}

po::options_description terminate_description() {
    po::options_description options;
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
    if (!ended.not_checked.empty())
        std::cerr << "nodeport: note: " << ended.not_checked << "\n";
}

int cmd_set(const Args& argv) {
    po::options_description options = terminate_description();
    options.add_options()("owner", po::value<std::string>(), "who holds the port (a sandbox id), checked by del --owner");
    auto inv = parse("set", argv, options, {"node port", "backend"});
    if (!inv)
        return exit_ok;
    Mapping mapping{valid(parse_node_port(inv->args[0])), valid(parse_backend(inv->args[1])),
                    owner_option(*inv).value_or("")};
    auto table = succeeded(PortTable::open(inv->pin_dir));
    auto result = succeeded(table.set(mapping, change_options(*inv)));
    std::cout << describe(mapping) << (result.replaced ? " (was " + to_string(*result.replaced) + ")" : "") << "\n";
    report(result.ended);
    return exit_ok;
}

int cmd_del(const Args& argv) {
    po::options_description options = terminate_description();
    options.add_options()("owner", po::value<std::string>(), "delete only while this owner holds the port");
    auto inv = parse("del", argv, options, {"node port"});
    if (!inv)
        return exit_ok;
    NodePort node_port = valid(parse_node_port(inv->args[0]));
    auto owner = owner_option(*inv);
    auto table = succeeded(PortTable::open(inv->pin_dir));
    auto result = succeeded(table.remove(node_port, owner, change_options(*inv)));
    switch (result.outcome) {
    case RemoveOutcome::removed:
        std::cout << to_string(node_port) << " removed\n";
        report(result.ended);
        break;
    case RemoveOutcome::not_mapped:
        std::cout << to_string(node_port) << " was not mapped\n";
        break;
    case RemoveOutcome::held_by_other:
        std::cout << to_string(node_port) << " kept: owner '" << printable(result.holder) << "' holds it now\n";
        break;
    }
    return exit_ok;
}

int cmd_get(const Args& argv) {
    auto inv = parse("get", argv, po::options_description{}, {"node port"});
    if (!inv)
        return exit_ok;
    NodePort node_port = valid(parse_node_port(inv->args[0]));
    auto table = succeeded(PortTable::open(inv->pin_dir));
    auto mapping = succeeded(table.get(node_port));
    if (!mapping) {
        std::cerr << "nodeport get: " << to_string(node_port) << " is not mapped\n";
        return exit_failure;
    }
    std::cout << describe(*mapping) << "\n";
    return exit_ok;
}

int cmd_list(const Args& argv) {
    po::options_description options;
    options.add_options()("json", "print a JSON array");
    auto inv = parse("list", argv, options);
    if (!inv)
        return exit_ok;
    auto table = succeeded(PortTable::open(inv->pin_dir));
    auto mappings = succeeded(table.list());
    // Every mapped port is reachable from outside through the same interfaces.
    std::vector<std::string> external;
    for (const auto& a : succeeded(external_interfaces(inv->pin_dir)))
        external.push_back(a.interface);
    if (inv->options.count("json")) {
        nlohmann::json out = nlohmann::json::array();
        for (const auto& m : mappings) {
            auto entry = to_json(m);
            entry["external"] = external;
            out.push_back(entry);
        }
        std::cout << out.dump(2) << "\n";
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
    options.add_options()
        ("json", "print a JSON array")
        ("flush", "forget the flows (of PROTO/PORT only, when given); their connections break");
    auto inv = parse("flows", argv, options, {}, {"node port"});
    if (!inv)
        return exit_ok;
    std::optional<NodePort> only;
    if (!inv->args.empty()) {
        if (!inv->options.count("flush"))
            throw UsageError("node port: a PROTO/PORT is taken only with --flush");
        only = valid(parse_node_port(inv->args[0]));
    }
    if (inv->options.count("flush")) {
        auto flushed = succeeded(flush_flows(inv->pin_dir, only));
        std::cout << fmt::format("forgot {} flow{}{}\n", flushed, flushed == 1 ? "" : "s",
                                 only ? " of " + to_string(*only) : "");
        return exit_ok;
    }
    auto flows = succeeded(list_flows(inv->pin_dir));
    auto secs = [](std::chrono::nanoseconds d) { return std::chrono::duration_cast<std::chrono::seconds>(d).count(); };
    if (inv->options.count("json")) {
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
    auto inv = parse("flush", argv, po::options_description{});
    if (!inv)
        return exit_ok;
    auto table = succeeded(PortTable::open(inv->pin_dir));
    std::cout << "removed " << succeeded(table.flush()) << " mappings\n";
    return exit_ok;
}

// The text of --file: a path, or - for standard input.
std::string read_input(const std::string& name) {
    std::ifstream file;
    if (name != "-") {
        file.open(name);
        if (!file)
            throw UsageError(fmt::format("file: cannot read '{}'", name));
    }
    std::istream& in = name == "-" ? std::cin : file;
    return std::string(std::istreambuf_iterator<char>(in), {});
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
        ("dry-run", "print what would change, change nothing")
        ("json", "print the counts as a JSON object");
    auto inv = parse("sync", argv, options);
    if (!inv)
        return exit_ok;
    if (!inv->options.count("file"))
        throw UsageError("file: missing (--file FILE, or --file - for standard input)");
    auto desired = valid(parse_mappings_json(read_input(inv->options["file"].as<std::string>())));
    auto table = succeeded(PortTable::open(inv->pin_dir));
    const bool dry_run = inv->options.count("dry-run") > 0;
    SyncResult counts;
    if (dry_run) {
        auto plan = succeeded(table.plan(desired));
        if (!inv->options.count("json"))
            std::cout << describe_plan(plan);
        counts = SyncResult{plan.add.size(), plan.update.size(), plan.remove.size(), plan.unchanged, {}};
    } else {
        counts = succeeded(table.sync(desired, change_options(*inv)));
    }
    if (inv->options.count("json")) {
        std::cout << nlohmann::json{{"added", counts.added},         {"updated", counts.updated},
                                    {"removed", counts.removed},     {"unchanged", counts.unchanged},
                                    {"sockets_ended", counts.ended.count}, {"dry_run", dry_run}}
                         .dump()
                  << "\n";
    } else {
        std::cout << fmt::format("{}{} added, {} updated, {} removed, {} unchanged\n", dry_run ? "would be: " : "",
                                 counts.added, counts.updated, counts.removed, counts.unchanged);
        report(counts.ended);
    }
    return exit_ok;
}

int cmd_refresh(const Args& argv) {
    auto inv = parse("refresh", argv, node_ip_description());
    if (!inv)
        return exit_ok;
    auto addrs = succeeded(refresh(inv->pin_dir, node_ip_options(*inv)));
    std::cout << "node addresses: " << describe(addrs) << "\n";
    return exit_ok;
}

int cmd_version(const Args& argv) {
    po::options_description options;
    options.add_options()("json", "print a JSON object");
    auto inv = parse("version", argv, options);
    if (!inv)
        return exit_ok;
    const auto libbpf = fmt::format("{}.{}", libbpf_major_version(), libbpf_minor_version());
    if (inv->options.count("json")) {
        std::cout << nlohmann::json{{"version", NODEPORT_VERSION},
                                    {"commit", NODEPORT_GIT_COMMIT},
                                    {"abi", NODEPORT_ABI_VERSION},
                                    {"libbpf", libbpf}}
                         .dump()
                  << "\n";
        return exit_ok;
    }
    std::cout << fmt::format("nodeport {} (commit {}), map ABI {}, libbpf {}\n", NODEPORT_VERSION,
                             NODEPORT_GIT_COMMIT, NODEPORT_ABI_VERSION, libbpf);
    return exit_ok;
}

}  // namespace

const std::vector<Command>& commands() {
    static const std::vector<Command> all = {
        {"load", "load [--cgroup PATH] [--node-ip IP]... [--iface IF]... [--local-only]",
         "attach the forwarding programs and pin them with the maps; idempotent, mappings survive", cmd_load},
        {"unload", "unload", "detach everything nodeport attached and remove its pins", cmd_unload},
        {"set", "set PROTO/PORT IP:PORT [--owner ID] [--terminate]",
         "forward the node port to a sandbox, replacing any earlier target", cmd_set},
        {"del", "del PROTO/PORT [--owner ID] [--terminate]",
         "stop forwarding the node port; with --owner only while that owner holds it", cmd_del},
        {"get", "get PROTO/PORT", "show where a node port goes (exit 1 when it is not mapped)", cmd_get},
        {"list", "list [--json]", "show every mapping", cmd_list},
        {"flows", "flows [--json] | flows --flush [PROTO/PORT]",
         "show the external connections being translated, or forget them", cmd_flows},
        {"flush", "flush", "remove every mapping", cmd_flush},
        {"sync", "sync --file FILE|- [--dry-run] [--json] [--terminate]",
         "make the table equal to a JSON list of mappings (a controller's whole state): adds and overwrites first, "
         "removals last",
         cmd_sync},
        {"refresh", "refresh [--node-ip IP]...", "re-read the node's addresses (after an address change)",
         cmd_refresh},
        {"version", "version [--json]", "print the version, the commit, the map ABI and libbpf's version (also --version)",
         cmd_version},
    };
    return all;
}

}  // namespace nodeport::cli
