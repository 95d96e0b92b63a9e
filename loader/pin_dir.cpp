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

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <thread>
#include <utility>

#include "lock_holder.hpp"
#include "map_catalog.hpp"
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

// Pins of another map ABI are laid out differently and must not be read as
// ours; `load` migrates them.
Result<void> check_abi(const std::filesystem::path& dir) {
    auto abi = recorded_abi(dir);
    if (!abi)
        return std::unexpected(abi.error());
    if (*abi == 1)
        return plain_error(fmt::format("the maps pinned at {} use map ABI v1, this nodeport uses v{}: run this "
                                       "nodeport's load to migrate them (mappings and connections are kept)",
                                       dir.string(), NODEPORT_ABI_VERSION));
    if (*abi != 0 && *abi != NODEPORT_ABI_VERSION)
        return plain_error(fmt::format("not a nodeport map: {} (the maps pinned at {} use map ABI v{}, this nodeport "
                                       "uses v{}): use the nodeport that loaded them, or unload with it first",
                                       (dir / "node_config").string(), dir.string(), *abi, NODEPORT_ABI_VERSION));
    return {};
}

// The shape this build gives a pinned map of that name, checked when it has one.
Result<void> check_catalog_shape(int fd, const std::filesystem::path& path, std::string_view name) {
    const auto* want = map_catalog::find(name);
    if (!want)
        return {};
    return check_shape(fd, path, name, want->type, want->key_size, want->value_size);
}

}  // namespace

Result<void> check_shape(int fd, const std::filesystem::path& path, std::string_view name, bpf_map_type type,
                         std::uint32_t key_size, std::uint32_t value_size) {
    bpf_map_info info{};
    __u32 len = sizeof info;
    if (bpf_map_get_info_by_fd(fd, &info, &len) != 0)
        return plain_error("not a nodeport map: " + path.string() + " (not a BPF map): remove it or use another --pin-dir");
    if (info.type != type || info.key_size != key_size || info.value_size != value_size)
        return plain_error(fmt::format("not a nodeport map: {} (a {} with {}-byte keys and {}-byte values; nodeport's "
                                       "{} is a {} with {} and {}): remove it or use another --pin-dir",
                                       path.string(), libbpf_bpf_map_type_str(bpf_map_type(info.type)),
                                       info.key_size, info.value_size, name, libbpf_bpf_map_type_str(type), key_size,
                                       value_size));
    return {};
}

Result<unsigned> recorded_abi(const std::filesystem::path& dir) {
    auto path = dir / "node_config";
    Fd config(bpf_obj_get(path.c_str()));
    if (!config.valid())
        return errno == ENOENT ? Result<unsigned>{0u} : errno_error(errno, "open pinned map " + path.string());
    if (auto ok = check_catalog_shape(config.get(), path, "node_config"); !ok)
        return std::unexpected(ok.error());
    __u32 zero = 0;
    np_config cfg{};
    if (bpf_map_lookup_elem(config.get(), &zero, &cfg) != 0)
        return errno_error(errno, "read " + path.string());
    return cfg.abi_version;
}

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
    auto fd = open_map_any_abi(dir, name);
    if (!fd)
        return fd;
    if (name != "node_config")
        if (auto ok = check_abi(dir); !ok)
            return std::unexpected(ok.error());
    return fd;
}

Result<Fd> open_map_any_abi(const std::filesystem::path& dir, std::string_view name) {
    auto path = dir / name;
    Fd fd(bpf_obj_get(path.c_str()));
    if (!fd.valid())
        return errno == ENOENT ? not_loaded(dir) : errno_error(errno, "open pinned map " + path.string());
    if (auto ok = check_catalog_shape(fd.get(), path, name); !ok)
        return std::unexpected(ok.error());
    return fd;
}

// Polls with LOCK_NB rather than blocking in flock: a blocking flock can be
// bounded only by a signal, and a library must not own the process's signals.
Result<Lock> Lock::take(int dir_fd, std::chrono::milliseconds wait) {
    using namespace std::chrono_literals;
    const auto deadline = std::chrono::steady_clock::now() + wait;
    // Holds last about a millisecond (one CLI set): polling every 1-2 ms keeps
    // 8 concurrent writers as fast as a blocking flock did (cli_test), at a
    // few hundred wake-ups per second while waiting.
    std::chrono::microseconds pause = 100us;
    for (;;) {
        if (::flock(dir_fd, LOCK_EX | LOCK_NB) == 0)
            return Lock(dir_fd);
        if (errno == EINTR)
            continue;
        if (errno != EWOULDBLOCK)
            return errno_error(errno, "lock pin directory");
        auto now = std::chrono::steady_clock::now();
        if (now >= deadline)
            break;
        std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(pause, deadline - now));
        pause = std::min<std::chrono::microseconds>(pause * 2, 2ms);
    }
    std::error_code ec;
    auto dir = std::filesystem::read_symlink(fmt::format("/proc/self/fd/{}", dir_fd), ec);
    auto message = fmt::format("pin directory {} is locked by {}", ec ? "(unknown)" : dir.string(),
                               describe_flock_holder(dir_fd));
    if (wait.count() > 0)
        message += fmt::format(" for more than {:g} s", std::chrono::duration<double>(wait).count());
    return std::unexpected(Error{EWOULDBLOCK, message});
}

Lock::Lock(Lock&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}

Lock::~Lock() {
    if (fd_ >= 0)
        ::flock(fd_, LOCK_UN);
}

Result<Locked> open_locked(const std::filesystem::path& dir, std::chrono::milliseconds wait) {
    auto locked = open_locked_any_abi(dir, wait);
    if (!locked)
        return locked;
    if (auto ok = check_abi(dir); !ok)
        return std::unexpected(ok.error());
    return locked;
}

Result<Locked> open_locked_any_abi(const std::filesystem::path& dir, std::chrono::milliseconds wait) {
    Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd.valid())
        return errno == ENOENT ? not_loaded(dir) : errno_error(errno, "open " + dir.string());
    auto lock = Lock::take(fd.get(), wait);
    if (!lock)
        return std::unexpected(lock.error());
    return Locked{std::move(fd), std::move(*lock)};
}

}  // namespace nodeport::pin_dir
