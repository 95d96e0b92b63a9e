#include "nodeport/datapath.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include <cerrno>
#include <memory>

#include "libbpf_log.hpp"
#include "node_addrs.hpp"
#include "nodeport/abi.h"
#include "pin_dir.hpp"
#include "sock.skel.h"

namespace nodeport {
namespace {

using SockSkel = std::unique_ptr<sock_bpf, decltype(&sock_bpf__destroy)>;
using Link = std::unique_ptr<bpf_link, decltype(&bpf_link__destroy)>;

// A libbpf failure, with the tail of libbpf's own log when it has one.
std::unexpected<Error> libbpf_error(int err, const std::string& what) {
    auto failure = errno_error(err, what);
    if (auto log = take_libbpf_log(); !log.empty())
        failure.error().message += "\nlibbpf said:\n" + log;
    return failure;
}

// Refuses to reuse pinned maps written under another map ABI: their layout
// would be misread. An upgrade that changes the ABI must migrate explicitly.
Result<bool> check_pinned_abi(const std::filesystem::path& dir) {
    Fd config(bpf_obj_get((dir / "node_config").c_str()));
    if (!config.valid())
        return false;  // nothing pinned yet
    __u32 zero = 0;
    np_config cfg{};
    if (bpf_map_lookup_elem(config.get(), &zero, &cfg) != 0)
        return errno_error(errno, "read pinned config map");
    if (cfg.abi_version != 0 && cfg.abi_version != NODEPORT_ABI_VERSION)
        return plain_error(
            "the maps pinned at " + dir.string() + " use map ABI v" + std::to_string(cfg.abi_version) +
            ", this nodeport uses v" + std::to_string(NODEPORT_ABI_VERSION) +
            "; unload with the nodeport that loaded them first");
    return true;
}

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

// Keeps the pinned link and swaps its program in place (no moment without
// a hook), or attaches a new link and pins it.
Result<void> attach_or_update(bpf_program* prog, const std::filesystem::path& pin, int cgroup_fd) {
    if (Link existing(bpf_link__open(pin.c_str()), bpf_link__destroy); existing) {
        if (int err = bpf_link__update_program(existing.get(), prog); err != 0)
            return libbpf_error(-err, "replace program of link " + pin.string());
        return {};
    }
    if (cgroup_fd < 0)
        return {};
    Link link(bpf_program__attach_cgroup(prog, cgroup_fd), bpf_link__destroy);
    if (!link)
        return libbpf_error(errno, std::string("attach ") + bpf_program__name(prog) + " to cgroup");
    if (int err = bpf_link__pin(link.get(), pin.c_str()); err != 0)
        return libbpf_error(-err, "pin link " + pin.string());
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
    if (auto created = pin_dir::create(dir); !created)
        return std::unexpected(created.error());
    auto dir_fd = pin_dir::open(dir);
    if (!dir_fd)
        return std::unexpected(dir_fd.error());
    auto lock = pin_dir::Lock::take(dir_fd->get());
    if (!lock)
        return std::unexpected(lock.error());

    auto reused = check_pinned_abi(dir);
    if (!reused)
        return std::unexpected(reused.error());
    if (auto ok = check_links_cgroup(dir, cgroup.get()); !ok)
        return std::unexpected(ok.error());

    const std::string pin_root = dir.string();
    LIBBPF_OPTS(bpf_object_open_opts, open_opts, .pin_root_path = pin_root.c_str());
    SockSkel skel(sock_bpf__open_opts(&open_opts), sock_bpf__destroy);
    if (!skel)
        return libbpf_error(errno, "open BPF object");
    if (int err = sock_bpf__load(skel.get()); err != 0)
        return libbpf_error(-err, "load BPF programs (needs root and Linux >= 5.14 with BTF)");

    if (auto ok = write_config(bpf_map__fd(skel->maps.node_config)); !ok)
        return std::unexpected(ok.error());
    if (auto ok = write_node_addrs(bpf_map__fd(skel->maps.node_addrs), *addrs); !ok)
        return std::unexpected(ok.error());

    LoadReport report{*reused, {}, *addrs};
    bpf_program* prog;
    bpf_object__for_each_program(prog, skel->obj) {
        auto pin = pin_dir::links_dir(dir) / bpf_program__name(prog);
        if (auto ok = attach_or_update(prog, pin, cgroup.get()); !ok)
            return std::unexpected(ok.error());
        if (std::filesystem::exists(pin))
            report.links.push_back(pin.string());
    }
    return report;
}

Result<void> unload(const std::filesystem::path& dir) {
    auto dir_fd = pin_dir::open(dir);
    if (!dir_fd)
        return std::unexpected(dir_fd.error());
    auto lock = pin_dir::Lock::take(dir_fd->get());
    if (!lock)
        return std::unexpected(lock.error());
    if (!std::filesystem::exists(dir / "node_config"))
        return plain_error(dir.string() + " is not a nodeport pin directory (no node_config map)");

    // Links first: unpinning the last reference detaches the program.
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(pin_dir::links_dir(dir), ec))
        if (::unlink(entry.path().c_str()) != 0)
            return errno_error(errno, "unpin " + entry.path().string());
    if (::rmdir(pin_dir::links_dir(dir).c_str()) != 0 && errno != ENOENT)
        return errno_error(errno, "remove " + pin_dir::links_dir(dir).string());
    for (auto name : pin_dir::map_names)
        if (::unlink((dir / name).c_str()) != 0 && errno != ENOENT)
            return errno_error(errno, "unpin " + (dir / name).string());
    if (::rmdir(dir.c_str()) != 0)
        return errno_error(errno, "remove " + dir.string() + " (something else is pinned there)");
    return {};
}

Result<std::vector<NodeAddr>> refresh(const std::filesystem::path& dir, const std::vector<Ipv4>& node_ips) {
    auto addrs = resolve_node_addrs(node_ips);
    if (!addrs)
        return std::unexpected(addrs.error());
    auto dir_fd = pin_dir::open(dir);
    if (!dir_fd)
        return std::unexpected(dir_fd.error());
    auto map = pin_dir::open_map(dir, "node_addrs");
    if (!map)
        return std::unexpected(map.error());
    auto lock = pin_dir::Lock::take(dir_fd->get());
    if (!lock)
        return std::unexpected(lock.error());
    if (auto ok = write_node_addrs(map->get(), *addrs); !ok)
        return std::unexpected(ok.error());
    return *addrs;
}

}  // namespace nodeport
