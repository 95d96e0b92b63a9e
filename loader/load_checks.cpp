// load's and refresh's input checked as the CLI checks its options, for
// callers that fill LoadOptions themselves: the library is the trust boundary.
#include <net/if.h>

#include <algorithm>
#include <cctype>

#include <fmt/format.h>

#include "nodeport/datapath.hpp"
#include "nodeport/interfaces.hpp"

namespace nodeport {
namespace {

std::unexpected<InputError> bad(std::string_view field, std::string message) {
    return std::unexpected(InputError{std::string(field), std::move(message)});
}

// What the kernel takes as an interface name (dev_valid_name): 1 to 15
// bytes, not "." or "..", no '/', ':' or blank; nor, here, anything unprintable.
bool valid_interface_name(const std::string& name) {
    return !name.empty() && name.size() < IF_NAMESIZE && name != "." && name != ".." &&
           std::ranges::none_of(name, [](unsigned char c) {
               return c == '/' || c == ':' || std::isspace(c) || !std::isprint(c);
           });
}

}  // namespace

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
    if (auto ok = check_node_ips(options.node_ips); !ok)
        return ok;
    if (options.interfaces.size() > NP_MAX_TC_ATTACHMENTS)
        return bad("iface", fmt::format("{} interfaces named; nodeport attaches to at most {}",
                                        options.interfaces.size(), NP_MAX_TC_ATTACHMENTS));
    for (auto it = options.interfaces.begin(); it != options.interfaces.end(); ++it) {
        if (!valid_interface_name(*it))
            return bad("iface", fmt::format("'{}' is not an interface name", printable(*it)));
        if (std::find(options.interfaces.begin(), it, *it) != it)
            return bad("iface", fmt::format("'{}' is given twice", *it));
        if (auto why = unreadable_link(*it))
            return bad("iface", *why);
    }
    constexpr std::chrono::seconds max_timeout{30 * 24 * 3600};  // as the CLI's --*-timeout
    const std::pair<const char*, std::chrono::seconds> timeouts[] = {
        {"tcp-timeout", options.timeouts.tcp_established},
        {"tcp-syn-timeout", options.timeouts.tcp_syn},
        {"tcp-closing-timeout", options.timeouts.tcp_closing},
        {"udp-timeout", options.timeouts.udp},
    };
    for (const auto& [field, value] : timeouts)
        if (value < std::chrono::seconds{1} || value > max_timeout)
            return bad(field, fmt::format("{} s is not a number of seconds (1-{})", value.count(), max_timeout.count()));
    if (options.lock_wait < std::chrono::milliseconds{0})
        return bad("wait", fmt::format("{} ms is negative", options.lock_wait.count()));
    return {};
}

}  // namespace nodeport
