// The user side of bpf/sock_end.bpf.c: installing its iterators at load, and
// running them when a backend is replaced.
#include "nodeport/sock_end.hpp"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

#include "base/backend_key.hpp"
#include "base/libbpf_log.hpp"
#include "base/map_keys.hpp"
#include "base/netns.hpp"
#include "base/pin_dir.hpp"
#include "base/port_key.hpp"
#include "datapath/node_addrs.hpp"
#include "datapath/sock_end_install.hpp"
#include "nodeport/abi.h"
#include "sock_end.skel.h"

namespace nodeport {
namespace {

using Skel = std::unique_ptr<sock_end_bpf, decltype(&sock_end_bpf__destroy)>;
using Link = std::unique_ptr<bpf_link, decltype(&bpf_link__destroy)>;

// Iterator links cannot swap their program in place; nothing waits on them,
// so the old pin is simply replaced.
Result<void> pin_iterator(const PinDir& dir, bpf_program* prog) {
    Link link(bpf_program__attach_iter(prog, nullptr), bpf_link__destroy);
    if (!link)
        return libbpf_error(errno, std::string("attach iterator ") + bpf_program__name(prog));
    const auto pin = link_pin(bpf_program__name(prog));
    if (dir.unlink(pin) != 0 && errno != ENOENT)
        return errno_error(errno, "unpin " + dir.shown(pin).string());
    if (int err = dir.obj_pin(bpf_link__fd(link.get()), pin); err != 0)
        return libbpf_error(-err, "pin " + dir.shown(pin).string());
    return {};
}

// Runs an iterator to its end; returns the bytes it wrote (one per socket ended).
Result<unsigned> run_iterator(int link_fd) {
    auto out = sock_end::read_iterator(link_fd);
    if (!out)
        return std::unexpected(out.error());
    return static_cast<unsigned>(out->size());
}

SocketEnder::Target from_key(const np_sock_end_target& key) {
    auto [node_port, backend] = from_backend_key(key);
    return {node_port, backend};
}

SocketEnder::Target from_key6(const np_sock_end_target6& key) {
    auto [node_port, backend] = from_backend_key6(key);
    return {node_port, backend};
}

// Whether `ports` maps the target's node port to the target's backend now.
bool leads_to(int ports_fd, const SocketEnder::Target& t) {
    np_port_key key = port_key(t.node_port, family_of(t.backend.addr));
    np_backend value{};
    if (bpf_map_lookup_elem(ports_fd, &key, &value) != 0)
        return false;
    return Backend{backend_addr(value), value.port} == t.backend;
}

}  // namespace

Result<std::string> sock_end::install(const PinDir& dir) {
    const std::string pin_root = dir.path().string();
    LIBBPF_OPTS(bpf_object_open_opts, open_opts, .pin_root_path = pin_root.c_str());
    Skel skel(sock_end_bpf__open_opts(&open_opts), sock_end_bpf__destroy);
    if (!skel)
        return libbpf_error(errno, "open the socket iterators");
    if (int err = sock_end_bpf__load(skel.get()); err != 0) {
        // Most likely a kernel before 6.5, without bpf_sock_destroy; the
        // reason goes into the load report, and nodeport works without it.
        auto why = libbpf_error(-err, "load the socket iterators (bpf_sock_destroy needs Linux >= 6.5)");
        // Unpin what an earlier load of a newer build may have left.
        for (const char* name : {"np_end_udp", "np_end_tcp", "np_count_udp", "np_count_tcp", "np_count6_udp",
                                 "np_count6_tcp"})
            dir.unlink(link_pin(name));
        return why.error().message;
    }
    for (bpf_program* prog : {skel->progs.np_end_udp, skel->progs.np_end_tcp, skel->progs.np_count_udp,
                              skel->progs.np_count_tcp, skel->progs.np_count6_udp, skel->progs.np_count6_tcp})
        if (auto ok = pin_iterator(dir, prog); !ok)
            return std::unexpected(ok.error());
    return std::string();
}

Result<std::string> sock_end::read_iterator(int link_fd) {
    Fd iter(bpf_iter_create(link_fd));
    if (!iter.valid())
        return errno_error(errno, "start socket iterator");
    std::string out;
    char buf[4096];
    for (;;) {
        ssize_t n = ::read(iter.get(), buf, sizeof buf);
        if (n == 0)
            return out;
        if (n < 0 && errno != EINTR)
            return errno_error(errno, "run socket iterator");
        if (n > 0)
            out.append(buf, static_cast<std::size_t>(n));
    }
}

SocketEnder SocketEnder::open(const PinDir& dir) {
    SocketEnder ender;
    auto targets = dir.map("sock_end_targets");
    ender.udp_link_ = Fd(dir.obj_get(link_pin("np_end_udp")));
    ender.tcp_link_ = Fd(dir.obj_get(link_pin("np_end_tcp")));
    if (!targets || !ender.udp_link_.valid() || !ender.tcp_link_.valid()) {
        ender.unavailable_ = "socket iterators not loaded (bpf_sock_destroy needs Linux >= 6.5; see nodeport load)";
        return ender;
    }
    ender.targets_ = std::move(*targets);
    if (auto targets6 = dir.map("sock_end_targets6"); targets6)
        ender.targets6_ = std::move(*targets6);
    if (auto config = dir.map("node_config"); config) {
        __u32 zero = 0;
        np_config cfg{};
        if (bpf_map_lookup_elem(config->get(), &zero, &cfg) == 0)
            ender.node_netns_cookie_ = cfg.node_netns_cookie;
        ender.config_ = std::move(*config);
    }
    return ender;
}

bool SocketEnder::may_hold_targets() const {
    __u32 zero = 0;
    np_config cfg{};
    return !config_.valid() || bpf_map_lookup_elem(config_.get(), &zero, &cfg) != 0 ||
           (cfg.flags & NP_CONFIG_SOCK_END_PENDING);
}

std::string SocketEnder::mark_pending(bool pending) const {
    __u32 zero = 0;
    np_config cfg{};
    if (!config_.valid() || bpf_map_lookup_elem(config_.get(), &zero, &cfg) != 0)
        return std::string("read node_config: ") + std::strerror(config_.valid() ? errno : ENOENT);
    const __u32 flags = pending ? cfg.flags | NP_CONFIG_SOCK_END_PENDING : cfg.flags & ~NP_CONFIG_SOCK_END_PENDING;
    if (flags == cfg.flags)
        return {};
    cfg.flags = flags;
    if (bpf_map_update_elem(config_.get(), &zero, &cfg, BPF_EXIST) != 0)
        return std::string("write node_config: ") + std::strerror(errno);
    return {};
}

std::string SocketEnder::record(const std::vector<Target>& targets) const {
    if (targets.empty() || !unavailable_.empty())
        return {};  // finish() says why nothing is ended
    // Marked first: a write killed after recording leaves its targets found.
    if (auto why = mark_pending(true); !why.empty())
        return "record the socket end targets: " + why;
    const __u8 unused = 0;
    for (const auto& t : targets) {
        int rc = 0;
        if (auto key = backend_key(t.node_port, t.backend))
            rc = bpf_map_update_elem(targets_.get(), &*key, &unused, BPF_ANY);
        else if (!targets6_.valid())
            return "the node's IPv6 sockets were not checked: the pins predate sock_end_targets6 (run this "
                   "nodeport's load)";
        else if (auto key6 = backend_key6(t.node_port, t.backend))
            rc = bpf_map_update_elem(targets6_.get(), &*key6, &unused, BPF_ANY);
        if (rc != 0)
            return std::string("record the socket end targets: ") + std::strerror(errno);
    }
    return {};
}

Result<std::vector<SocketEnder::Target>> SocketEnder::pending() const {
    std::vector<Target> out;
    if (!unavailable_.empty() || !may_hold_targets())
        return out;
    auto keys = map_keys<np_sock_end_target>(targets_.get(), "sock_end_targets");
    if (!keys)
        return std::unexpected(keys.error());
    for (const auto& key : *keys)
        out.push_back(from_key(key));
    if (targets6_.valid()) {
        auto keys6 = map_keys<np_sock_end_target6>(targets6_.get(), "sock_end_targets6");
        if (!keys6)
            return std::unexpected(keys6.error());
        for (const auto& key : *keys6)
            out.push_back(from_key6(key));
    }
    std::ranges::sort(out);
    auto dup = std::ranges::unique(out);  // a walk restarted by a delete gives a key twice
    out.erase(dup.begin(), dup.end());
    return out;
}

EndedSockets SocketEnder::finish(int ports_fd, const std::vector<Target>& own) const {
    EndedSockets ended;
    if (!unavailable_.empty()) {
        if (!own.empty())
            ended.not_checked = unavailable_;
        return ended;
    }
    auto recorded = pending();
    if (!recorded) {
        ended.not_checked = recorded.error().message;
        return ended;
    }
    // A target is forgotten once its sockets are right; when all are, no
    // later write needs to look (mark_pending).
    bool all_forgotten = true;
    auto forget = [&](const Target& t) {
        int rc = 0;
        if (auto key = backend_key(t.node_port, t.backend))
            rc = bpf_map_delete_elem(targets_.get(), &*key);
        else if (auto key6 = backend_key6(t.node_port, t.backend); key6 && targets6_.valid())
            rc = bpf_map_delete_elem(targets6_.get(), &*key6);
        if (rc != 0 && errno != ENOENT)
            all_forgotten = false;
    };
    // A target its node port leads to again has sockets that are right.
    std::vector<Target> stale;
    for (const auto& t : *recorded) {
        if (leads_to(ports_fd, t))
            forget(t);
        else
            stale.push_back(t);
    }
    if (stale.empty()) {
        if (all_forgotten)
            mark_pending(false);
        return ended;
    }
    bool tcp = false, udp = false;
    for (const auto& t : stale)
        (t.node_port.proto == Proto::tcp ? tcp : udp) = true;
    for (auto [wanted, link] : {std::pair{udp, udp_link_.get()}, std::pair{tcp, tcp_link_.get()}}) {
        if (!wanted)
            continue;
        auto n = run_iterator(link);
        if (!n) {
            // Kept recorded: the next write walks again.
            ended.not_checked = n.error().message;
            return ended;
        }
        ended.count += *n;
    }
    // Forgotten once walked: a target must match nothing once its remap is done.
    std::vector<Target> mine = own;
    std::ranges::sort(mine);  // a sync may replace 131,072 backends: no linear search per target
    for (const auto& t : stale) {
        forget(t);
        if (!std::ranges::binary_search(mine, t))
            ++ended.resumed;
    }
    if (all_forgotten)
        mark_pending(false);
    // The iterators walk the sockets of the caller's network namespace only.
    auto cookie = netns::current_cookie();
    if (!cookie || *cookie != node_netns_cookie_)
        ended.not_checked = "the node's sockets were not checked: this runs outside the network namespace nodeport "
                            "was loaded in";
    return ended;
}

}  // namespace nodeport
