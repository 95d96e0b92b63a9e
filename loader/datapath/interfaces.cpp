// Choosing the interfaces for the TC programs, and attaching to them with the
// programs `load` pinned.
#include "nodeport/interfaces.hpp"

#include <fmt/format.h>
#include <fnmatch.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <algorithm>

#include "base/libbpf_log.hpp"
#include "base/netlink.hpp"
#include "base/netns.hpp"
#include "base/pin_dir.hpp"
#include "datapath/interfaces_locked.hpp"
#include "datapath/tc_attach.hpp"
#include "datapath/tc_programs.hpp"
#include "nodeport/fd.hpp"

namespace nodeport {
namespace {

bool excluded(const std::string& name, const std::vector<std::string>& patterns) {
    return std::ranges::any_of(patterns, [&](const auto& p) { return ::fnmatch(p.c_str(), name.c_str(), 0) == 0; });
}

// An interface of this network namespace asked of the kernel by ioctl
// `request` (not /sys/class/net, which shows the namespace the process came
// from after nsenter --net); nullopt when there is no such interface.
std::optional<ifreq> ask_interface(const std::string& name, unsigned long request) {
    Fd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    ifreq req{};
    name.copy(req.ifr_name, IF_NAMESIZE - 1);
    if (!sock.valid() || ::ioctl(sock.get(), request, &req) != 0)
        return std::nullopt;
    return req;
}

// The ARPHRD_* link type of an interface.
std::optional<unsigned> link_type_of(const std::string& name) {
    auto req = ask_interface(name, SIOCGIFHWADDR);
    return req ? std::optional<unsigned>(req->ifr_hwaddr.sa_family) : std::nullopt;
}

// IFF_LOOPBACK: TC programs on loopback would see the node's own traffic,
// which the socket hooks already translate; `all` leaves it out too. False
// for an interface that does not exist.
bool is_loopback(const std::string& name) {
    auto req = ask_interface(name, SIOCGIFFLAGS);
    return req && (req->ifr_flags & IFF_LOOPBACK);
}

// A link type as `ip link` names it, for messages.
std::string link_type_name(unsigned arphrd) {
    switch (arphrd) {
    case ARPHRD_INFINIBAND:
        return "infiniband";
    case ARPHRD_IEEE80211_RADIOTAP:
        return "ieee802.11/radiotap";
    case ARPHRD_IEEE802154:
        return "ieee802.15.4";
    case ARPHRD_CAN:
        return "can";
    default:
        return fmt::format("link type {}", arphrd);
    }
}

}  // namespace

std::optional<LinkKind> link_kind_of(unsigned arphrd) {
    switch (arphrd) {
    case ARPHRD_ETHER:
        return LinkKind::ethernet;
    // The IP packet with nothing before it: tun and WireGuard (none), ipip,
    // ip6tnl, sit, GRE and ip6gre without a link header (point-to-point),
    // ppp, raw-IP modems.
    case ARPHRD_NONE:
    case ARPHRD_TUNNEL:
    case ARPHRD_TUNNEL6:
    case ARPHRD_SIT:
    case ARPHRD_IPGRE:
    case 823:  // ARPHRD_IP6GRE, not in glibc's <net/if_arp.h>
    case ARPHRD_PPP:
    case ARPHRD_RAWIP:
        return LinkKind::l3;
    default:
        return std::nullopt;
    }
}

std::optional<LinkKind> link_kind(const std::string& name) {
    auto type = link_type_of(name);
    return type ? link_kind_of(*type) : std::nullopt;
}

std::optional<std::string> unreadable_link(const std::string& name) {
    auto type = link_type_of(name);
    if (!type || link_kind_of(*type))
        return std::nullopt;
    return fmt::format("'{}' is an interface of {}: nodeport's TC programs read an Ethernet header, or none "
                       "(WireGuard, tun, ipip, GRE, ppp), before IPv4",
                       name, link_type_name(*type));
}

std::expected<void, InputError> check_interfaces_here(const std::vector<std::string>& names, bool must_exist) {
    for (const auto& name : names) {
        if (must_exist && ::if_nametoindex(name.c_str()) == 0)
            return std::unexpected(
                InputError{"iface", fmt::format("{} is not an interface in this network namespace", quote(name))});
        if (is_loopback(name))
            return std::unexpected(InputError{"iface", fmt::format("{} is the loopback interface (the node's own "
                                                                   "traffic is forwarded by the socket hooks, "
                                                                   "without TC)",
                                                                   quote(name))});
        if (auto why = unreadable_link(name))
            return std::unexpected(InputError{"iface", *why});
    }
    return {};
}

Result<std::vector<std::string>> choose_interfaces(const InterfaceChoice& choice) {
    using Kind = InterfaceChoice::Kind;
    switch (choice.kind) {
    case Kind::none:
        return std::vector<std::string>{};
    case Kind::default_route: {
        auto name = netlink::default_route_interface();
        if (!name)
            return std::unexpected(name.error());
        return std::vector<std::string>{*name};
    }
    case Kind::named: {
        std::vector<std::string> out;
        for (const auto& name : choice.names)
            if (::if_nametoindex(name.c_str()) != 0)
                out.push_back(name);
        return out;
    }
    case Kind::all:
        break;
    }
    auto links = netlink::list_links();
    if (!links)
        return std::unexpected(links.error());
    std::vector<std::string> out;
    for (const auto& link : *links)
        if (!link.loopback && link.master == 0 && link_kind_of(link.type) && !excluded(link.name, choice.exclude))
            out.push_back(link.name);
    std::ranges::sort(out);
    return out;
}

std::string describe(const InterfaceChoice& choice) {
    using Kind = InterfaceChoice::Kind;
    std::string out;
    switch (choice.kind) {
    case Kind::none:
        return "--local-only";
    case Kind::default_route:
        return "the default route's interface";
    case Kind::named:
        for (const auto& name : choice.names)
            out += (out.empty() ? "--iface " : " --iface ") + name;
        return out.empty() ? "--iface (none)" : out;
    case Kind::all:
        out = "--iface all";
        for (const auto& pattern : choice.exclude)
            out += " --exclude " + pattern;
        return out;
    }
    return "?";
}

WithinLimit within_limit(const std::vector<std::string>& chosen, const std::vector<std::string>& attached,
                         std::size_t limit) {
    WithinLimit out;
    for (const auto& name : chosen)
        if (std::ranges::find(attached, name) != attached.end() && out.attach.size() < limit)
            out.attach.push_back(name);
    for (const auto& name : chosen) {
        if (std::ranges::find(out.attach, name) != out.attach.end())
            continue;
        (out.attach.size() < limit ? out.attach : out.left).push_back(name);
    }
    return out;
}

Result<std::vector<TcAttachment>> attach_interfaces(const std::filesystem::path& dir,
                                                    const std::vector<std::string>& interfaces, TcAttachMode mode,
                                                    std::chrono::milliseconds lock_wait) {
    auto locked = pin_dir::open_locked(dir, lock_wait);
    if (!locked)
        return std::unexpected(locked.error());
    return attach_interfaces_locked(locked->dir, interfaces, mode);
}

Result<std::vector<TcAttachment>> attach_interfaces_locked(const PinDir& dir,
                                                           const std::vector<std::string>& interfaces,
                                                           TcAttachMode mode) {
    // libbpf's messages are kept for errors, not printed: re-adding a clsact
    // qdisc that exists, on every resync, makes the kernel say so. Whatever
    // an earlier call left is stale.
    auto log_capture = capture_libbpf_log();
    (void)take_libbpf_log();
    if (auto ok = netns::check_loaded_here(dir, "watch"); !ok)
        return std::unexpected(ok.error());
    // Opened under the lock: a load running meanwhile has pinned its programs.
    auto programs = tc::open_pinned_programs(dir);
    if (!programs)
        return std::unexpected(programs.error());
    auto attachments = dir.map("tc_attachments");
    if (!attachments)
        return std::unexpected(attachments.error());
    // What attached is kept even when another interface fails: a resync is
    // done again at the next change or retry.
    UndoLog kept;
    auto attached = tc::attach(dir, programs->fds(), interfaces, mode, attachments->get(), kept,
                               tc::OnFailure::keep_going);
    kept.commit();
    return attached;
}

}  // namespace nodeport
