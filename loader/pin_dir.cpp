#include "pin_dir.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fmt/format.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include <cerrno>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <utility>

#include "nodeport/abi.h"

namespace nodeport::pin_dir {
namespace {

const std::filesystem::path bpffs_default = "/sys/fs/bpf";

bool on_bpffs(const std::filesystem::path& path) {
    struct statfs st{};
    return ::statfs(path.c_str(), &st) == 0 && st.f_type == BPF_FS_MAGIC;
}

std::unexpected<Error> not_loaded(const std::filesystem::path& dir) {
    return std::unexpected(Error{ENOENT, "nodeport is not loaded at " + dir.string() + " (run: nodeport load --pin-dir " +
                             dir.string() + ")"});
}

// What each of nodeport's maps is, from include/nodeport/abi.h: a pinned
// file of that name that is anything else (another program's map, another
// layout) must not be read or written as if it were ours.
struct Shape {
    bpf_map_type type;
    std::uint32_t key_size;
    std::uint32_t value_size;
};

std::optional<Shape> expected_shape(std::string_view name) {
    static const std::map<std::string_view, Shape, std::less<>> shapes = {
        {"ports", {BPF_MAP_TYPE_HASH, sizeof(np_port_key), sizeof(np_backend)}},
        {"node_addrs", {BPF_MAP_TYPE_HASH, sizeof(np_node_addr), sizeof(np_node_addr_info)}},
        {"node_config", {BPF_MAP_TYPE_ARRAY, sizeof(__u32), sizeof(np_config)}},
        {"sock_xlat", {BPF_MAP_TYPE_SK_STORAGE, sizeof(int), sizeof(np_sock_xlat)}},
        {"tc_attachments", {BPF_MAP_TYPE_HASH, sizeof(__u32), sizeof(np_tc_attachment)}},
        {"flows", {BPF_MAP_TYPE_LRU_HASH, sizeof(np_flow_key), sizeof(np_flow)}},
        {"closed_flows", {BPF_MAP_TYPE_LRU_HASH, sizeof(np_flow_key), sizeof(np_flow)}},
        {"udp_flows", {BPF_MAP_TYPE_LRU_HASH, sizeof(np_flow_key), sizeof(np_flow)}},
        {"flow_timeouts", {BPF_MAP_TYPE_ARRAY, sizeof(__u32), sizeof(np_flow_timeouts)}},
        {"sock_end_targets", {BPF_MAP_TYPE_HASH, sizeof(np_sock_end_target), sizeof(__u8)}},
    };
    auto it = shapes.find(name);
    return it == shapes.end() ? std::nullopt : std::optional(it->second);
}

Result<void> check_shape(int fd, const std::filesystem::path& path, std::string_view name) {
    auto want = expected_shape(name);
    if (!want)
        return {};
    bpf_map_info info{};
    __u32 len = sizeof info;
    if (bpf_map_get_info_by_fd(fd, &info, &len) != 0)
        return plain_error("not a nodeport map: " + path.string() + " (not a BPF map): remove it or use another --pin-dir");
    if (info.type != want->type || info.key_size != want->key_size || info.value_size != want->value_size)
        return plain_error(fmt::format("not a nodeport map: {} (a {} with {}-byte keys and {}-byte values; nodeport's "
                                       "{} is a {} with {} and {}): remove it or use another --pin-dir",
                                       path.string(), libbpf_bpf_map_type_str(bpf_map_type(info.type)),
                                       info.key_size, info.value_size, name, libbpf_bpf_map_type_str(want->type),
                                       want->key_size, want->value_size));
    return {};
}

// The map ABI recorded in node_config, when there is one: maps of another
// version are laid out differently and must not be read as ours.
Result<void> check_abi(const std::filesystem::path& dir) {
    auto path = dir / "node_config";
    Fd config(bpf_obj_get(path.c_str()));
    if (!config.valid())
        return errno == ENOENT ? Result<void>{} : errno_error(errno, "open pinned map " + path.string());
    if (auto ok = check_shape(config.get(), path, "node_config"); !ok)
        return ok;
    __u32 zero = 0;
    np_config cfg{};
    if (bpf_map_lookup_elem(config.get(), &zero, &cfg) != 0)
        return errno_error(errno, "read " + path.string());
    if (cfg.abi_version != 0 && cfg.abi_version != NODEPORT_ABI_VERSION)
        return plain_error(fmt::format("not a nodeport map: {} (the maps pinned at {} use map ABI v{}, this nodeport "
                                       "uses v{}): use the nodeport that loaded them, or unload with it first",
                                       path.string(), dir.string(), cfg.abi_version, NODEPORT_ABI_VERSION));
    return {};
}

}  // namespace

Result<void> create(const std::filesystem::path& dir) {
    if (!dir.is_absolute())
        return plain_error("pin directory " + dir.string() + " is not an absolute path");
    auto parent = dir.parent_path();
    if (!on_bpffs(parent)) {
        bool is_default = parent == bpffs_default || parent.string().starts_with(bpffs_default.string() + "/");
        if (is_default && !on_bpffs(bpffs_default) && ::mount("bpf", bpffs_default.c_str(), "bpf", 0, nullptr) != 0)
            return errno_error(errno, "mount bpffs at " + bpffs_default.string());
    }
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec)
        return errno_error(ec.value(), "create pin directory " + dir.string());
    if (!on_bpffs(dir))
        return plain_error("pin directory " + dir.string() + " is not on a bpf filesystem (mount -t bpf bpf DIR)");
    if (::chmod(dir.c_str(), 0700) != 0)
        return errno_error(errno, "chmod " + dir.string());
    std::filesystem::create_directories(links_dir(dir), ec);
    if (ec)
        return errno_error(ec.value(), "create " + links_dir(dir).string());
    return {};
}

Result<Fd> open(const std::filesystem::path& dir) {
    Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd.valid())
        return errno == ENOENT ? not_loaded(dir) : errno_error(errno, "open " + dir.string());
    if (auto ok = check_abi(dir); !ok)
        return std::unexpected(ok.error());
    return fd;
}

Result<Fd> open_map(const std::filesystem::path& dir, std::string_view name) {
    auto path = dir / name;
    Fd fd(bpf_obj_get(path.c_str()));
    if (!fd.valid())
        return errno == ENOENT ? not_loaded(dir) : errno_error(errno, "open pinned map " + path.string());
    if (auto ok = check_shape(fd.get(), path, name); !ok)
        return std::unexpected(ok.error());
    if (name != "node_config")
        if (auto ok = check_abi(dir); !ok)
            return std::unexpected(ok.error());
    return fd;
}

Result<Lock> Lock::take(int dir_fd) {
    int rc;
    do {
        rc = ::flock(dir_fd, LOCK_EX);
    } while (rc != 0 && errno == EINTR);
    if (rc != 0)
        return errno_error(errno, "lock pin directory");
    return Lock(dir_fd);
}

Lock::Lock(Lock&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}

Lock::~Lock() {
    if (fd_ >= 0)
        ::flock(fd_, LOCK_UN);
}

Result<Locked> open_locked(const std::filesystem::path& dir) {
    auto fd = open(dir);
    if (!fd)
        return std::unexpected(fd.error());
    auto lock = Lock::take(fd->get());
    if (!lock)
        return std::unexpected(lock.error());
    return Locked{std::move(*fd), std::move(*lock)};
}

}  // namespace nodeport::pin_dir
