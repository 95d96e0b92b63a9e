// The commands that attach and detach the datapath: load, unload, refresh.
#include <fmt/format.h>
#include <net/if.h>

#include <cctype>
#include <charconv>
#include <filesystem>
#include <iostream>

#include "cli.hpp"
#include "invocation.hpp"
#include "nodeport/datapath.hpp"

namespace nodeport::cli {
namespace {

namespace po = boost::program_options;
namespace fs = std::filesystem;

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
    bool local_only = inv.options["local-only"].as<bool>();
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

}  // namespace

int cmd_load(const Args& argv) {
    po::options_description options = node_ip_description();
    options.add_options()
        ("cgroup", po::value<std::string>(),
         "cgroup v2 directory whose sockets are forwarded (default: the root of the hierarchy)")
        ("iface", po::value<std::vector<std::string>>(),
         "an external interface for the TC programs (repeatable; default: the default route's interface)")
        // A bool_switch, so a config file says `local-only = true` (or false).
        ("local-only", po::bool_switch(), "attach no TC programs: forward only traffic that starts on the node")
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
    auto inv = parse_with_config("load", argv, options);
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

int cmd_refresh(const Args& argv) {
    auto inv = parse("refresh", argv, node_ip_description());
    if (!inv)
        return exit_ok;
    auto addrs = succeeded(refresh(inv->pin_dir, node_ip_options(*inv)));
    std::cout << "node addresses: " << describe(addrs) << "\n";
    return exit_ok;
}

}  // namespace nodeport::cli
