// The user side of bpf/sock_end.bpf.c: installing its iterators at load, and
// running them when a backend is replaced.
#include "nodeport/sock_end.hpp"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "libbpf_log.hpp"
#include "node_addrs.hpp"
#include "nodeport/abi.h"
#include "pin_dir.hpp"
#include "sock_end.skel.h"
#include "sock_end_install.hpp"

namespace nodeport {
namespace {

using Skel = std::unique_ptr<sock_end_bpf, decltype(&sock_end_bpf__destroy)>;
using Link = std::unique_ptr<bpf_link, decltype(&bpf_link__destroy)>;

std::filesystem::path link_pin(const std::filesystem::path& dir, bpf_program* prog) {
    return pin_dir::links_dir(dir) / bpf_program__name(prog);
}

// Iterator links cannot swap their program in place; nothing waits on them,
// so the old pin is simply replaced.
Result<void> pin_iterator(const std::filesystem::path& dir, bpf_program* prog) {
    Link link(bpf_program__attach_iter(prog, nullptr), bpf_link__destroy);
    if (!link)
        return libbpf_error(errno, std::string("attach iterator ") + bpf_program__name(prog));
    auto pin = link_pin(dir, prog);
    if (::unlink(pin.c_str()) != 0 && errno != ENOENT)
        return errno_error(errno, "unpin " + pin.string());
    if (int err = bpf_link__pin(link.get(), pin.c_str()); err != 0)
        return libbpf_error(-err, "pin " + pin.string());
    return {};
}

// Runs an iterator to its end; its program does the work, it prints nothing.
Result<void> run_iterator(int link_fd) {
    Fd iter(bpf_iter_create(link_fd));
    if (!iter.valid())
        return errno_error(errno, "start socket iterator");
    char buf[64];
    ssize_t n;
    while ((n = ::read(iter.get(), buf, sizeof buf)) != 0) {
        if (n < 0 && errno != EINTR)
            return errno_error(errno, "run socket iterator");
    }
    return {};
}

}  // namespace

Result<std::string> sock_end::install(const std::filesystem::path& dir) {
    const std::string pin_root = dir.string();
    LIBBPF_OPTS(bpf_object_open_opts, open_opts, .pin_root_path = pin_root.c_str());
    Skel skel(sock_end_bpf__open_opts(&open_opts), sock_end_bpf__destroy);
    if (!skel)
        return libbpf_error(errno, "open the socket iterators");
    if (int err = sock_end_bpf__load(skel.get()); err != 0) {
        // Most likely a kernel before 6.5, without bpf_sock_destroy; the
        // reason goes into the load report, and nodeport works without it.
        auto why = libbpf_error(-err, "load the socket iterators (bpf_sock_destroy needs Linux >= 6.5)");
        // Unpin what an earlier load of a newer build may have left.
        for (const char* name : {"np_end_udp", "np_end_tcp"})
            ::unlink((pin_dir::links_dir(dir) / name).c_str());
        return why.error().message;
    }
    for (bpf_program* prog : {skel->progs.np_end_udp, skel->progs.np_end_tcp})
        if (auto ok = pin_iterator(dir, prog); !ok)
            return std::unexpected(ok.error());
    return std::string();
}

SocketEnder SocketEnder::open(const std::filesystem::path& dir) {
    SocketEnder ender;
    auto request = pin_dir::open_map(dir, "sock_end_request");
    ender.udp_link_ = Fd(bpf_obj_get((pin_dir::links_dir(dir) / "np_end_udp").c_str()));
    ender.tcp_link_ = Fd(bpf_obj_get((pin_dir::links_dir(dir) / "np_end_tcp").c_str()));
    if (!request || !ender.udp_link_.valid() || !ender.tcp_link_.valid()) {
        ender.unavailable_ = "socket iterators not loaded (bpf_sock_destroy needs Linux >= 6.5; see nodeport load)";
        return ender;
    }
    ender.request_ = std::move(*request);
    if (auto config = pin_dir::open_map(dir, "node_config"); config) {
        __u32 zero = 0;
        np_config cfg{};
        if (bpf_map_lookup_elem(config->get(), &zero, &cfg) == 0)
            ender.node_netns_cookie_ = cfg.node_netns_cookie;
    }
    return ender;
}

EndedSockets SocketEnder::end(NodePort node_port, Backend backend) const {
    EndedSockets ended;
    if (!unavailable_.empty()) {
        ended.not_checked = unavailable_;
        return ended;
    }
    np_sock_end_request req{};
    req.backend_addr_be = backend.addr.addr_be;
    req.backend_port_be = htons(backend.port);
    req.node_port_be = htons(node_port.port);
    req.proto = static_cast<__u8>(node_port.proto);
    __u32 zero = 0;
    int link = node_port.proto == Proto::udp ? udp_link_.get() : tcp_link_.get();
    if (bpf_map_update_elem(request_.get(), &zero, &req, BPF_ANY) != 0) {
        ended.not_checked = std::string("write the socket end request: ") + std::strerror(errno);
        return ended;
    }
    auto ran = run_iterator(link);
    np_sock_end_request done{};
    if (bpf_map_lookup_elem(request_.get(), &zero, &done) == 0)
        ended.count = done.ended;
    // A spent request must match nothing if an iterator ever runs without one.
    np_sock_end_request none{};
    bpf_map_update_elem(request_.get(), &zero, &none, BPF_ANY);
    if (!ran) {
        ended.not_checked = ran.error().message;
        return ended;
    }
    // The iterator walks the sockets of the caller's network namespace only.
    auto cookie = current_netns_cookie();
    if (!cookie || *cookie != node_netns_cookie_)
        ended.not_checked = "the node's sockets were not checked: this runs outside the network namespace nodeport "
                            "was loaded in";
    return ended;
}

}  // namespace nodeport
