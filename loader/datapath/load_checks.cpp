// load's and refresh's input checked as the CLI checks its options, for
// callers that fill LoadOptions themselves: the library is the trust boundary.
#include <net/if.h>

#include <algorithm>
#include <cctype>

#include <fmt/format.h>

#include "nodeport/datapath_types.hpp"

namespace nodeport {
namespace {

std::unexpected<InputError> bad(std::string_view field, std::string message) {
    return std::unexpected(InputError{std::string(field), std::move(message)});
}

// Each at most once: harmless to the datapath, but a list holding one twice
// is not what its writer meant (a copy-paste, a config file's key repeated).
// `text` shows a value as it was given.
template <class Value, class Text>
std::expected<void, InputError> check_distinct(std::string_view field, const std::vector<Value>& values, Text text) {
    for (auto it = values.begin(); it != values.end(); ++it)
        if (std::find(values.begin(), it, *it) != it)
            return bad(field, fmt::format("{} is given twice", quote(text(*it))));
    return {};
}

std::string as_given(const std::string& value) {
    return value;
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

std::expected<void, InputError> check_interface_choice(const InterfaceChoice& choice) {
    if (choice.names.size() > NP_MAX_TC_ATTACHMENTS)
        return bad("iface", fmt::format("{} interfaces named; nodeport attaches to at most {}", choice.names.size(),
                                        NP_MAX_TC_ATTACHMENTS));
    if (choice.exclude.size() > NP_MAX_IFACE_NAMES)
        return bad("exclude", fmt::format("{} patterns given; at most {} (one pattern can leave out many: 'veth*')",
                                          choice.exclude.size(), NP_MAX_IFACE_NAMES));
    if (auto ok = check_distinct("iface", choice.names, as_given); !ok)
        return ok;
    if (auto ok = check_distinct("exclude", choice.exclude, as_given); !ok)
        return ok;
    for (const auto& name : choice.names)
        if (!valid_interface_name(name))
            return bad("iface", fmt::format("{} is not an interface name", quote(name)));
    for (const auto& pattern : choice.exclude)
        if (!valid_interface_pattern(pattern))
            return bad("exclude", fmt::format("{} is not an interface name or pattern", quote(pattern)));
    // What the names and patterns mean depends on the kind (iface_choice records them so).
    if (choice.kind != InterfaceChoice::Kind::named && !choice.names.empty())
        return bad("iface", "interface names are given only to choose exactly those");
    if (choice.kind != InterfaceChoice::Kind::all && !choice.exclude.empty())
        return bad("exclude", "only with --iface all");
    return {};
}

std::expected<void, InputError> check_node_ips(const std::vector<IpAddr>& node_ips) {
    // parse_node_ip's rule: unicast, not 0/8, loopback, link-local or multicast.
    for (const auto& ip : node_ips)
        if (auto ok = parse_node_ip(to_string(ip)); !ok)
            return std::unexpected(ok.error());
    return check_distinct("node-ip", node_ips, [](const IpAddr& ip) { return to_string(ip); });
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
    // The interfaces to attach to now, and the choice recorded for watch
    // (iface_choice: at most NP_MAX_IFACE_NAMES names and patterns).
    if (auto ok = check_interface_choice({InterfaceChoice::Kind::named, options.interfaces, {}}); !ok)
        return ok;
    if (options.interface_choice)
        if (auto ok = check_interface_choice(*options.interface_choice); !ok)
            return ok;
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
