#include "cli/load_options.hpp"

#include <fmt/format.h>
#include <linux/magic.h>
#include <sys/vfs.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <string_view>

#include "nodeport/abi.h"

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
    throw UsageError("tc-attach", fmt::format("'{}' is not auto, tcx or clsact", text));
}

Forwarding forwarding_option(const Invocation& inv) {
    const auto& text = inv.options["forward"].as<std::string>();
    if (text == "kernel")
        return Forwarding::kernel;
    if (text == "fib")
        return Forwarding::fib;
    throw UsageError("forward", fmt::format("'{}' is not kernel or fib", text));
}

// A --*-timeout option: whole seconds, 1 s to max_flow_timeout.
std::chrono::seconds seconds_option(const Invocation& inv, const char* name, std::chrono::seconds fallback) {
    constexpr auto max_seconds = static_cast<unsigned>(max_flow_timeout.count());
    if (!inv.options.count(name))
        return fallback;
    const auto& text = inv.options[name].as<std::string>();
    unsigned value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || !std::isdigit(static_cast<unsigned char>(text[0])) || ec != std::errc{} ||
        end != text.data() + text.size() || value < 1 || value > max_seconds)
        throw UsageError(name, fmt::format("'{}' is not a number of seconds (1-{})", text, max_seconds));
    return std::chrono::seconds(value);
}

FlowTimeouts timeout_options(const Invocation& inv) {
    FlowTimeouts defaults;
    return FlowTimeouts{.tcp_established = seconds_option(inv, "tcp-timeout", defaults.tcp_established),
                        .tcp_syn = seconds_option(inv, "tcp-syn-timeout", defaults.tcp_syn),
                        .tcp_closing = seconds_option(inv, "tcp-closing-timeout", defaults.tcp_closing),
                        .udp = seconds_option(inv, "udp-timeout", defaults.udp)};
}

std::vector<std::string> values(const Invocation& inv, const char* name) {
    return inv.options.count(name) ? inv.options[name].as<std::vector<std::string>>() : std::vector<std::string>{};
}

// What the options say: --iface IF..., --iface all [--exclude IF...],
// --local-only, or none of them (the default route's interface). Only how
// they combine is the CLI's to check; the names and patterns are the
// library's (check_interface_choice, check_interfaces_here).
InterfaceChoice given_choice(const Invocation& inv) {
    using Kind = InterfaceChoice::Kind;
    const bool local_only = inv.options["local-only"].as<bool>();
    auto names = values(inv, "iface");
    auto exclude = values(inv, "exclude");
    if (names.empty())
        return InterfaceChoice{local_only ? Kind::none : Kind::default_route, {}, std::move(exclude)};
    if (local_only)
        throw UsageError("iface", "--iface and --local-only exclude each other");
    const auto alls = std::ranges::count(names, "all");
    if (alls == 1 && names.size() == 1)
        return InterfaceChoice{Kind::all, {}, std::move(exclude)};
    if (alls == 1)
        throw UsageError("iface", "'all' cannot be combined with interface names (leave some out with --exclude)");
    return InterfaceChoice{Kind::named, std::move(names), std::move(exclude)};
}

// The choice, checked: its syntax always, and the named interfaces against
// this network namespace as `check` says.
InterfaceChoice interface_choice(const Invocation& inv, InterfaceCheck check) {
    auto choice = given_choice(inv);
    if (auto ok = check_interface_choice(choice); !ok)
        throw UsageError(ok.error().field, ok.error().message);
    if (auto ok = check_interfaces_here(choice.names, check == InterfaceCheck::exists); !ok)
        throw UsageError(ok.error().field, ok.error().message);
    return choice;
}

}  // namespace

po::options_description load_description() {
    po::options_description options = node_ip_description();
    options.add_options()
        ("cgroup", po::value<std::string>(),
         "cgroup v2 directory whose sockets are forwarded (default: the root of the hierarchy)")
        ("iface", po::value<std::vector<std::string>>(),
         "an external interface for the TC programs (repeatable; default: the default route's interface), or "
         "all: every interface but loopback, bridge and bond ports (a sandbox's veth) and --exclude")
        ("exclude", po::value<std::vector<std::string>>(),
         "with --iface all: an interface to leave out, such as the sandboxes' bridge; a name or an fnmatch "
         "pattern ('cali*'), repeatable")
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
         "seconds a half-closed TCP flow, or one picked up mid-stream, may idle (120)")
        ("udp-timeout", po::value<std::string>(), "seconds an idle external UDP flow lives (60)");
    options.add(wait_description());
    return options;
}

LoadChoices load_choices(const Invocation& inv, InterfaceCheck check) {
    LoadChoices out;
    out.options = LoadOptions{.pin_dir = inv.pin_dir,
                              .cgroup = std::nullopt,  // --cgroup, checked below
                              .node_ips = node_ip_options(inv),
                              .interfaces = {},  // chosen from `choice` when acting
                              .interface_choice = std::nullopt,  // `choice`, below
                              .tc_attach = tc_attach_option(inv),
                              .forwarding = forwarding_option(inv),
                              .timeouts = timeout_options(inv),
                              .lock_wait = lock_wait_option(inv)};
    if (inv.options.count("cgroup")) {
        fs::path cgroup = inv.options["cgroup"].as<std::string>();
        // Missing and wrong-type alike: the path is not what load needs.
        struct statfs st{};
        if (::statfs(cgroup.c_str(), &st) != 0 || st.f_type != CGROUP2_SUPER_MAGIC || !fs::is_directory(cgroup))
            throw UsageError("cgroup", fmt::format("'{}' is not a cgroup v2 directory", cgroup.string()));
        out.options.cgroup = cgroup;
    }
    out.choice = interface_choice(inv, check);
    out.options.interface_choice = out.choice;
    // Options only the TC programs use mean nothing without them; a value
    // other than the default says the writer expected TC programs.
    if (out.choice.kind == InterfaceChoice::Kind::none) {
        if (out.options.tc_attach != TcAttachMode::automatic)
            throw UsageError("tc-attach", "has no effect with --local-only (no TC programs are attached)");
        if (out.options.forwarding != Forwarding::kernel)
            throw UsageError("forward", "has no effect with --local-only (no TC programs are attached)");
    }
    return out;
}

std::vector<std::string> chosen_interfaces(const InterfaceChoice& choice) {
    auto names = choose_interfaces(choice);
    if (!names && choice.kind == InterfaceChoice::Kind::default_route)
        throw Failure(names.error().message +
                      ": name the node's external interfaces with --iface IF (or all), or pass --local-only");
    return succeeded(std::move(names));
}

bool gives_interfaces(const Invocation& inv) {
    return inv.options.count("iface") || inv.options.count("exclude") || inv.options["local-only"].as<bool>();
}

bool gives_tc_attach(const Invocation& inv) {
    return !inv.options["tc-attach"].defaulted();
}

}  // namespace nodeport::cli
