#include "nodeport/datapath.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fmt/format.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include <cerrno>
#include <fstream>
#include <functional>
#include <memory>

#include "abi1_migration.hpp"
#include "libbpf_log.hpp"
#include "map_catalog.hpp"
#include "node_addrs.hpp"
#include "nodeport/abi.h"
#include "pin_dir.hpp"
#include "pinned_link.hpp"
#include "sock.skel.h"
#include "sock_end_install.hpp"
#include "tc.skel.h"
#include "tc_attach.hpp"
#include "tc_programs.hpp"
#include "netlink.hpp"

namespace nodeport {
namespace {

using SockSkel = std::unique_ptr<sock_bpf, decltype(&sock_bpf__destroy)>;
using TcSkel = std::unique_ptr<tc_bpf, decltype(&tc_bpf__destroy)>;

Result<Fd> open_cgroup(const std::filesystem::path& cgroup) {
    Fd fd(::open(cgroup.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd.valid())
        return errno_error(errno, "open cgroup " + cgroup.string());
    struct statfs st{};
    if (::fstatfs(fd.get(), &st) != 0 || st.f_type != CGROUP2_SUPER_MAGIC)
        return plain_error(cgroup.string() + " is not a cgroup v2 directory");
    return fd;
}

// On cgroup2 a directory's inode number is the cgroup id that link info reports.
Result<std::uint64_t> cgroup_id(int cgroup_fd) {
    struct stat st{};
    if (::fstat(cgroup_fd, &st) != 0)
        return errno_error(errno, "stat cgroup");
    return st.st_ino;
}

// A second load must not move the hooks: refuse, before changing anything,
// when the pinned cgroup links sit on another cgroup than the one asked for.
Result<void> check_links_cgroup(const std::filesystem::path& dir, int cgroup_fd) {
    if (cgroup_fd < 0)
        return {};
    auto want = cgroup_id(cgroup_fd);
    if (!want)
        return std::unexpected(want.error());
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(pin_dir::links_dir(dir), ec)) {
        Fd link(bpf_obj_get(entry.path().c_str()));
        bpf_link_info info{};
        __u32 len = sizeof info;
        if (!link.valid() || bpf_link_get_info_by_fd(link.get(), &info, &len) != 0)
            return errno_error(errno, "read link " + entry.path().string());
        if (info.type == BPF_LINK_TYPE_CGROUP && info.cgroup.cgroup_id != *want)
            return plain_error("nodeport is already attached to another cgroup (id " +
                               std::to_string(info.cgroup.cgroup_id) + ") at " + dir.string() +
                               "; unload it first");
    }
    return {};
}

// Either way of forwarding needs IPv4 forwarding on (the FIB lookup checks
// it too): without it every translated packet would be dropped silently.
Result<void> check_ip_forward() {
    std::ifstream sysctl("/proc/sys/net/ipv4/ip_forward");
    int enabled = 0;
    if (!(sysctl >> enabled))
        return plain_error("cannot read /proc/sys/net/ipv4/ip_forward");
    if (enabled != 1)
        return plain_error("net.ipv4.ip_forward is 0 in this network namespace, so the kernel would drop every "
                           "packet nodeport translates; enable it (sysctl -w net.ipv4.ip_forward=1) or pass "
                           "--local-only");
    return {};
}

Result<void> write_timeouts(int map_fd, const FlowTimeouts& t) {
    using std::chrono::nanoseconds;
    np_flow_timeouts value{};
    value.tcp_established_ns = nanoseconds(t.tcp_established).count();
    value.tcp_syn_ns = nanoseconds(t.tcp_syn).count();
    value.tcp_closing_ns = nanoseconds(t.tcp_closing).count();
    value.udp_idle_ns = nanoseconds(t.udp).count();
    __u32 zero = 0;
    if (bpf_map_update_elem(map_fd, &zero, &value, BPF_ANY) != 0)
        return errno_error(errno, "write flow timeouts map");
    return {};
}

Result<void> write_config(int config_fd) {
    auto cookie = current_netns_cookie();
    if (!cookie)
        return std::unexpected(cookie.error());
    __u32 zero = 0;
    np_config cfg{};
    cfg.abi_version = NODEPORT_ABI_VERSION;
    cfg.node_netns_cookie = *cookie;
    if (bpf_map_update_elem(config_fd, &zero, &cfg, BPF_ANY) != 0)
        return errno_error(errno, "write config map");
    return {};
}

// Checks the pins a load finds before it changes anything: every map of this
// build's ABI has its layout; pins of ABI 1 are planned for migration.
Result<std::optional<Abi1Migration>> check_pins(const std::filesystem::path& dir) {
    auto migration = Abi1Migration::plan(dir);
    if (!migration || *migration)
        return migration;
    // Pins of another layout would make libbpf refuse to reuse them with a
    // bare "parameter mismatch": name the map first.
    for (const auto& map : map_catalog::pinned_maps())
        if (std::filesystem::exists(dir / map.name))
            if (auto fd = pin_dir::open_map(dir, map.name); !fd)
                return std::unexpected(fd.error());
    return migration;
}

// Loads both objects. Both declare the shared maps pinned by name: the first
// to load creates and pins them, the second (and every later load) reuses
// them. A migration's new `ports` is filled here, before any program that
// reads it is attached.
Result<void> load_objects(sock_bpf* sock, tc_bpf* tc, const Abi1Migration* migration) {
    if (int err = sock_bpf__load(sock); err != 0)
        return libbpf_error(-err, "load socket programs (needs root and Linux >= 5.14 with BTF)");
    if (int err = tc_bpf__load(tc); err != 0)
        return libbpf_error(-err, "load TC programs (needs root and Linux >= 5.14 with BTF)");
    if (migration)
        return migration->fill(bpf_map__fd(sock->maps.ports));
    return {};
}

}  // namespace

Result<LoadReport> load(const LoadOptions& options) {
    capture_libbpf_log();
    const auto& dir = options.pin_dir;
    auto addrs = resolve_node_addrs(options.node_ips);
    if (!addrs)
        return std::unexpected(addrs.error());
    Fd cgroup;
    if (options.cgroup) {
        auto fd = open_cgroup(*options.cgroup);
        if (!fd)
            return std::unexpected(fd.error());
        cgroup = std::move(*fd);
    }
    if (!options.interfaces.empty())
        if (auto ok = check_ip_forward(); !ok)
            return std::unexpected(ok.error());
    if (auto created = pin_dir::create(dir); !created)
        return std::unexpected(created.error());
    auto locked = pin_dir::open_locked_any_abi(dir, options.lock_wait);
    if (!locked)
        return std::unexpected(locked.error());
    auto migration = check_pins(dir);
    if (!migration)
        return std::unexpected(migration.error());
    const bool reused = std::filesystem::exists(dir / "node_config");
    if (auto ok = check_links_cgroup(dir, cgroup.get()); !ok)
        return std::unexpected(ok.error());

    const std::string pin_root = dir.string();
    LIBBPF_OPTS(bpf_object_open_opts, open_opts, .pin_root_path = pin_root.c_str());
    SockSkel sock(sock_bpf__open_opts(&open_opts), sock_bpf__destroy);
    TcSkel tc(tc_bpf__open_opts(&open_opts), tc_bpf__destroy);
    if (!sock || !tc)
        return libbpf_error(errno, "open BPF objects");
    const tc::Programs tc_programs{tc->progs.np_tc_ingress, tc->progs.np_tc_egress};
    tc::prepare(tc_programs, options.tc_attach);
    tc->rodata->fib_redirect = options.forwarding == Forwarding::fib;

    // Until node_config records this ABI, a failure puts the old pins back,
    // and the old programs, never detached, go on as before.
    Abi1Migration* migrating = *migration ? &**migration : nullptr;
    if (migrating)
        if (auto ok = migrating->set_aside(); !ok)
            return std::unexpected(ok.error());
    auto loaded = load_objects(sock.get(), tc.get(), migrating);
    if (loaded)
        loaded = write_config(bpf_map__fd(sock->maps.node_config));
    if (!loaded) {
        if (migrating)
            migrating->undo();
        return std::unexpected(loaded.error());
    }
    if (auto ok = write_node_addrs(bpf_map__fd(sock->maps.node_addrs), *addrs); !ok)
        return std::unexpected(ok.error());
    if (auto ok = write_timeouts(bpf_map__fd(tc->maps.flow_timeouts), options.timeouts); !ok)
        return std::unexpected(ok.error());

    LoadReport report{reused, *addrs, {}, {}, std::nullopt};
    if (migrating)
        report.migrated = MigrationReport{1, migrating->entries()};
    bpf_program* prog;
    bpf_object__for_each_program(prog, sock->obj) {
        auto pin = pin_dir::links_dir(dir) / bpf_program__name(prog);
        std::function<bpf_link*()> attach;
        if (cgroup.valid())
            attach = [prog, fd = cgroup.get()] { return bpf_program__attach_cgroup(prog, fd); };
        if (auto ok = attach_pinned(prog, pin, attach); !ok)
            return std::unexpected(ok.error());
    }
    auto ending = sock_end::install(dir);
    if (!ending)
        return std::unexpected(ending.error());
    report.socket_ending_unavailable = std::move(*ending);
    // For interfaces that appear after this load (nodeport watch).
    if (auto ok = tc::pin_programs(dir, tc_programs); !ok)
        return std::unexpected(ok.error());
    auto attached = tc::attach(dir, tc_programs, options.interfaces, options.tc_attach,
                               bpf_map__fd(tc->maps.tc_attachments));
    if (!attached)
        return std::unexpected(attached.error());
    report.interfaces = std::move(*attached);
    // Every program now reads the new `ports`: the old one may go.
    if (auto ok = Abi1Migration::remove_leftover(dir); !ok)
        return std::unexpected(ok.error());
    return report;
}

Result<void> unload(const std::filesystem::path& dir, std::chrono::milliseconds lock_wait) {
    // Pins this build can migrate it can also remove: only tc_attachments is
    // read, and its layout is the same in every ABI so far.
    auto locked = pin_dir::open_locked_any_abi(dir, lock_wait);
    if (!locked)
        return std::unexpected(locked.error());
    if (!std::filesystem::exists(dir / "node_config"))
        return plain_error(dir.string() + " is not a nodeport pin directory (no node_config map)");
    if (auto abi = pin_dir::recorded_abi(dir); !abi)
        return std::unexpected(abi.error());
    else if (*abi != 1 && *abi != NODEPORT_ABI_VERSION)
        return plain_error(fmt::format("the maps pinned at {} use map ABI v{}, unknown to this nodeport (v{}): "
                                       "unload with the nodeport that loaded them",
                                       dir.string(), *abi, NODEPORT_ABI_VERSION));

    // TC first (clsact filters are not links), then the links: unpinning a
    // link's last reference detaches its program.
    if (auto attachments = pin_dir::open_map_any_abi(dir, "tc_attachments"); attachments) {
        if (auto ok = tc::detach_all(dir, attachments->get()); !ok)
            return ok;
    }
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(pin_dir::links_dir(dir), ec)) {
        // Removing a link's last pin detaches it only later (the kernel frees
        // the file after RCU and the link from a work queue): detach it now,
        // so nothing is attached once unload returns. Iterator links cannot
        // be detached and attach to nothing.
        if (Fd link(bpf_obj_get(entry.path().c_str())); link.valid())
            if (bpf_link_detach(link.get()) != 0 && errno != EOPNOTSUPP && errno != EINVAL)
                return errno_error(errno, "detach " + entry.path().string());
        if (::unlink(entry.path().c_str()) != 0)
            return errno_error(errno, "unpin " + entry.path().string());
    }
    if (::rmdir(pin_dir::links_dir(dir).c_str()) != 0 && errno != ENOENT)
        return errno_error(errno, "remove " + pin_dir::links_dir(dir).string());
    if (auto ok = tc::unpin_programs(dir); !ok)
        return ok;
    for (const auto& map : map_catalog::pinned_maps())
        if (::unlink((dir / map.name).c_str()) != 0 && errno != ENOENT)
            return errno_error(errno, "unpin " + (dir / map.name).string());
    if (auto ok = Abi1Migration::remove_leftover(dir); !ok)
        return ok;
    if (::rmdir(dir.c_str()) != 0)
        return errno_error(errno, "remove " + dir.string() + " (something else is pinned there)");
    return {};
}

Result<std::vector<NodeAddr>> refresh(const std::filesystem::path& dir, const std::vector<Ipv4>& node_ips,
                                      std::chrono::milliseconds lock_wait) {
    auto addrs = resolve_node_addrs(node_ips);
    if (!addrs)
        return std::unexpected(addrs.error());
    auto locked = pin_dir::open_locked(dir, lock_wait);
    if (!locked)
        return std::unexpected(locked.error());
    auto map = pin_dir::open_map(dir, "node_addrs");
    if (!map)
        return std::unexpected(map.error());
    if (auto ok = write_node_addrs(map->get(), *addrs); !ok)
        return std::unexpected(ok.error());
    return *addrs;
}

Result<std::vector<TcAttachment>> external_interfaces(const std::filesystem::path& dir) {
    auto attachments = pin_dir::open_map(dir, "tc_attachments");
    if (!attachments)
        return std::unexpected(attachments.error());
    return tc::list(attachments->get());
}

Result<std::string> default_route_interface() {
    return netlink::default_route_interface();
}

}  // namespace nodeport
