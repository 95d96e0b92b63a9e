// load's and refresh's input checked as the CLI checks its options, for
// callers that fill LoadOptions themselves: the library is the trust boundary.
#include <net/if.h>

#include <algorithm>
#include <cctype>

#include <fmt/format.h>

#include "nodeport/datapath.hpp"

namespace nodeport {
namespace {

std::unexpected<InputError> bad(std::string_view field, std::string message) {
    return std::unexpected(InputError{std::string(field), std::move(message)});
}

}  // namespace

bool valid_interface_name(std::string_view name) {
    return !name.empty() && name.size() < IF_NAMESIZE && name != "." && name != ".." &&
           std::ranges::none_of(name, [](unsigned char c) {
               return c == '/' || c == ':' || std::isspace(c) || !std::isprint(c);
           });
}

bool valid_interface_pattern(std::string_view pattern) {
    return !pattern.empty() && pattern.size() < IF_NAMESIZE &&
           std::ranges::none_of(pattern, [](unsigned char c) { return c == '/' || std::isspace(c) || !std::isprint(c); });
}

std::expected<void, InputError> check_node_ips(const std::vector<Ipv4>& node_ips) {
    for (auto it = node_ips.begin(); it != node_ips.end(); ++it) {
        // parse_node_ip's rule: unicast, not 0/8, loopback or multicast.
        if (auto ok = parse_node_ip(to_string(*it)); !ok)
            return std::unexpected(ok.error());
        if (std::find(node_ips.begin(), it, *it) != it)
            return bad("node-ip", fmt::format("'{}' is given twice", to_string(*it)));
    }
    return {};
}

std::expected<void, InputError> check_load_options(const LoadOptions& options) {
    // The kernel reads a path as a C string: a NUL would end it early, at
    // another directory than the one named.
    if (options.pin_dir.native().find('\0') != std::string::npos)
        return bad("pin-dir", fmt::format("{} has a NUL byte", quote(options.pin_dir.native())));
    if (options.cgroup && options.cgroup->native().find('\0') != std::string::npos)
        return bad("cgroup", fmt::format("{} has a NUL byte", quote(options.cgroup->native())));
    if (auto ok = check_node_ips(options.node_ips); !ok)
        return ok;
    if (options.interfaces.size() > NP_MAX_TC_ATTACHMENTS)
        return bad("iface", fmt::format("{} interfaces named; nodeport attaches to at most {}",
                                        options.interfaces.size(), NP_MAX_TC_ATTACHMENTS));
    for (auto it = options.interfaces.begin(); it != options.interfaces.end(); ++it) {
        if (!valid_interface_name(*it))
            return bad("iface", fmt::format("{} is not an interface name", quote(*it)));
        if (std::find(options.interfaces.begin(), it, *it) != it)
            return bad("iface", fmt::format("{} is given twice", quote(*it)));
    }
    if (options.interface_choice) {
        // What iface_choice records: at most NP_MAX_IFACE_NAMES names and
        // patterns, each as the CLI takes them.
        const auto& choice = *options.interface_choice;
        if (choice.names.size() > NP_MAX_IFACE_NAMES || choice.exclude.size() > NP_MAX_IFACE_NAMES)
            return bad(choice.names.size() > NP_MAX_IFACE_NAMES ? "iface" : "exclude",
                       fmt::format("at most {} may be given", NP_MAX_IFACE_NAMES));
        for (const auto& name : choice.names)
            if (!valid_interface_name(name))
                return bad("iface", fmt::format("'{}' is not an interface name", printable(name)));
        for (const auto& pattern : choice.exclude)
            if (!valid_interface_pattern(pattern))
                return bad("exclude", fmt::format("'{}' is not an interface name or pattern", printable(pattern)));
    }
    const std::pair<const char*, std::chrono::seconds> timeouts[] = {
        {"tcp-timeout", options.timeouts.tcp_established},
        {"tcp-syn-timeout", options.timeouts.tcp_syn},
        {"tcp-closing-timeout", options.timeouts.tcp_closing},
        {"udp-timeout", options.timeouts.udp},
    };
    for (const auto& [field, value] : timeouts)
        if (value < std::chrono::seconds{1} || value > max_flow_timeout)
            return bad(field,
                       fmt::format("{} s is not a number of seconds (1-{})", value.count(), max_flow_timeout.count()));
    if (options.lock_wait < std::chrono::milliseconds{0})
        return bad("wait", fmt::format("{} ms is negative", options.lock_wait.count()));
    return {};
}

}  // namespace nodeport
