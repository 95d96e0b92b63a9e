#include "base/netlink.hpp"

#include <linux/rtnetlink.h>
#include <sys/socket.h>
#include <net/if.h>
#include <netlink/netlink.h>
#include <netlink/route/classifier.h>
#include <netlink/route/link.h>
#include <netlink/route/route.h>

#include <array>
#include <cerrno>
#include <memory>

namespace nodeport::netlink {
namespace {

using Socket = std::unique_ptr<nl_sock, decltype(&nl_socket_free)>;
using Cache = std::unique_ptr<nl_cache, decltype(&nl_cache_free)>;

std::unexpected<Error> nl_failure(int err, const std::string& what) {
    return plain_error(what + ": " + nl_geterror(err));
}

Result<Socket> connect() {
    Socket sock(nl_socket_alloc(), nl_socket_free);
    if (!sock)
        return plain_error("allocate netlink socket");
    if (int err = nl_connect(sock.get(), NETLINK_ROUTE); err < 0)
        return nl_failure(err, "connect to rtnetlink");
    return sock;
}

}  // namespace

Result<std::string> default_route_interface() {
    auto sock = connect();
    if (!sock)
        return std::unexpected(sock.error());
    nl_cache* raw = nullptr;
    if (int err = rtnl_route_alloc_cache(sock->get(), AF_INET, 0, &raw); err < 0)
        return nl_failure(err, "list routes");
    Cache routes(raw, nl_cache_free);
    for (nl_object* obj = nl_cache_get_first(raw); obj; obj = nl_cache_get_next(obj)) {
        auto* route = reinterpret_cast<rtnl_route*>(obj);
        nl_addr* dst = rtnl_route_get_dst(route);
        if (rtnl_route_get_table(route) != RT_TABLE_MAIN || !dst || nl_addr_get_prefixlen(dst) != 0 ||
            rtnl_route_get_nnexthops(route) < 1)
            continue;
        char name[IF_NAMESIZE] = {};
        int ifindex = rtnl_route_nh_get_ifindex(rtnl_route_nexthop_n(route, 0));
        if (ifindex > 0 && if_indextoname(ifindex, name))
            return std::string(name);
    }
    return plain_error("this network namespace has no IPv4 default route");
}

Result<std::vector<Link>> list_links() {
    auto sock = connect();
    if (!sock)
        return std::unexpected(sock.error());
    nl_cache* raw = nullptr;
    if (int err = rtnl_link_alloc_cache(sock->get(), AF_UNSPEC, &raw); err < 0)
        return nl_failure(err, "list interfaces");
    Cache links(raw, nl_cache_free);
    std::vector<Link> out;
    for (nl_object* obj = nl_cache_get_first(raw); obj; obj = nl_cache_get_next(obj)) {
        auto* link = reinterpret_cast<rtnl_link*>(obj);
        const char* name = rtnl_link_get_name(link);
        out.push_back(Link{name ? name : "", rtnl_link_get_master(link),
                           (rtnl_link_get_flags(link) & IFF_LOOPBACK) != 0, rtnl_link_get_arptype(link)});
    }
    return out;
}

Result<Fd> subscribe(bool routes) {
    Fd fd(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE));
    if (!fd.valid())
        return errno_error(errno, "open rtnetlink socket");
    sockaddr_nl addr{};
    addr.nl_family = AF_NETLINK;
    addr.nl_groups = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR | (routes ? RTMGRP_IPV4_ROUTE : 0);
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
        return errno_error(errno, "subscribe to rtnetlink link and address notifications");
    return fd;
}

Result<void> drain(int fd) {
    std::array<char, 16384> buf;
    for (;;) {
        ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
        if (n > 0 || (n < 0 && (errno == EINTR || errno == ENOBUFS)))
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return {};
        return errno_error(n == 0 ? EPIPE : errno, "read rtnetlink notifications");
    }
}

Result<int> count_tc_filters(int ifindex, std::uint32_t parent) {
    auto sock = connect();
    if (!sock)
        return std::unexpected(sock.error());
    nl_cache* raw = nullptr;
    if (int err = rtnl_cls_alloc_cache(sock->get(), ifindex, parent, &raw); err < 0)
        return nl_failure(err, "list tc filters");
    Cache filters(raw, nl_cache_free);
    return nl_cache_nitems(raw);
}

}  // namespace nodeport::netlink
