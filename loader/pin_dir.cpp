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
#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <utility>

#include "flow_migration.hpp"
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
    return std::unexpected(Error{ENOENT,
                                 "nodeport is not loaded at " + dir.string() + " (run: nodeport load --pin-dir " +
                                     dir.string() + ")",
                                 ErrorKind::not_loaded, {}});
}

std::unexpected<Error> not_safe(const std::filesystem::path& dir, const std::string& reason) {
    return plain_error("pin directory " + dir.string() + " is not safe: " + reason, ErrorKind::unsafe_pin_dir);
}

// Who may own the pin directory and every directory above it: root, or the
// user running nodeport (who, with CAP_BPF, could change the pins anyway).
// Anyone else could swap what nodeport reads, or plant symbolic links that
// make unload delete files elsewhere (the bpffs root is world-writable).
bool trusted_owner(uid_t uid) {
    return uid == 0 || uid == ::geteuid();
}

std::string mode_string(mode_t mode) {
    return fmt::format("{:04o}", mode & 07777);
}

// Nobody but a trusted owner can rename or replace anything between / and
// the pin directory: each ancestor (a symbolic link among them included) is
// a trusted owner's, and writable by others only when sticky (like the
// bpffs root, 1777), where others cannot rename what they do not own.
Result<void> check_ancestors(const std::filesystem::path& dir) {
    for (auto p = dir.parent_path();; p = p.parent_path()) {
        struct stat link{}, st{};
        if (::lstat(p.c_str(), &link) != 0 || ::stat(p.c_str(), &st) != 0)
            return errno_error(errno, "stat " + p.string());
        if (S_ISLNK(link.st_mode) && !trusted_owner(link.st_uid))
            return not_safe(dir, fmt::format("{} is a symbolic link owned by uid {}", p.string(), link.st_uid));
        if (!trusted_owner(st.st_uid))
            return not_safe(dir, fmt::format("{} is owned by uid {}", p.string(), st.st_uid));
        if ((st.st_mode & (S_IWGRP | S_IWOTH)) && !(st.st_mode & S_ISVTX))
            return not_safe(dir, fmt::format("{} is writable by others (mode {}) and not sticky", p.string(),
                                             mode_string(st.st_mode)));
        if (p == p.parent_path())
            return {};
    }
}

// The pin directory itself, through the fd opened without following a
// symbolic link: a directory on bpffs, a trusted owner's, writable by no one
// else, and not the root of a bpffs mount (whose 1777 lets anyone add pins).
Result<void> check_opened(int fd, const std::filesystem::path& dir) {
    struct stat st{}, parent_st{};
    struct statfs fs{};
    if (::fstat(fd, &st) != 0 || ::fstatfs(fd, &fs) != 0)
        return errno_error(errno, "stat " + dir.string());
    if (fs.f_type != BPF_FS_MAGIC)
        return not_safe(dir, "it is not on a bpf filesystem (mount -t bpf bpf DIR)");
    Fd parent(::openat(fd, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!parent.valid() || ::fstat(parent.get(), &parent_st) != 0)
        return errno_error(errno, "stat the parent of " + dir.string());
    if (parent_st.st_dev != st.st_dev || parent_st.st_ino == st.st_ino)
        return not_safe(dir, "it is the root of a bpf filesystem mount: use a directory inside it, e.g. " +
                                 (dir / "nodeport").string());
    if (!trusted_owner(st.st_uid))
        return not_safe(dir, fmt::format("it is owned by uid {}, not root: remove it or use another --pin-dir",
                                         st.st_uid));
    if (st.st_mode & (S_IWGRP | S_IWOTH))
        return not_safe(dir, fmt::format("it is writable by group or others (mode {}): chmod 0700 it",
                                         mode_string(st.st_mode)));
    return check_ancestors(dir);
}

// Opens the pin directory without following a symbolic link in its last
// component and checks that it can be trusted; ENOENT when it is missing.
Result<Fd> open_checked(const std::filesystem::path& dir) {
    Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd.valid()) {
        int err = errno;
        struct stat st{};
        if (::lstat(dir.c_str(), &st) == 0 && S_ISLNK(st.st_mode))
            return not_safe(dir, "it is a symbolic link (pass the directory it points to, if you trust it)");
        if (err == ENOTDIR)
            return not_safe(dir, "it is not a directory");
        return err == ENOENT ? not_loaded(dir) : errno_error(err, "open " + dir.string());
    }
    if (auto ok = check_opened(fd.get(), dir); !ok)
        return std::unexpected(ok.error());
    return fd;
}

// Pins of another map ABI are laid out differently and must not be read as
// ours; `load` migrates them.
Result<void> check_abi(const std::filesystem::path& dir) {
    auto abi = recorded_abi(dir);
    if (!abi)
        return std::unexpected(abi.error());
    if (*abi == 1 || *abi == 2)
        return plain_error(fmt::format("the maps pinned at {} use map ABI v{}, this nodeport uses v{}: run this "
                                       "nodeport's load to migrate them (mappings and connections are kept)",
                                       dir.string(), *abi, NODEPORT_ABI_VERSION),
                           ErrorKind::abi_mismatch);
    if (*abi != 0 && *abi != NODEPORT_ABI_VERSION)
        return plain_error(fmt::format("not a nodeport map: {} (the maps pinned at {} use map ABI v{}, this nodeport "
                                       "uses v{}): use the nodeport that loaded them, or unload with it first",
                                       (dir / "node_config").string(), dir.string(), *abi, NODEPORT_ABI_VERSION),
                           ErrorKind::abi_mismatch);
    return {};
}

// The shape this build gives a pinned map of that name, checked when it has one.
Result<void> check_catalog_shape(int fd, const std::filesystem::path& path, std::string_view name) {
    auto want = map_catalog::find(name);
    if (!want)
        return std::unexpected(want.error());
    if (!*want)
        return {};
    return check_shape(fd, path, name, (*want)->type, (*want)->key_size, (*want)->value_size);
}

// The directory that holds a pin, opened without following a symbolic link
// in its last component (above it is the checked pin directory).
Fd open_parent(const std::filesystem::path& pin) {
    return Fd(::open(pin.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
}

}  // namespace

int obj_get(const std::filesystem::path& pin) {
    Fd parent = open_parent(pin);
    if (!parent.valid())
        return -1;
    const auto name = pin.filename();
    struct stat st{};
    if (::fstatat(parent.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
        return -1;
    // BPF_OBJ_GET follows a symbolic link in the last component
    // (user_path_at with LOOKUP_FOLLOW): refuse one before asking it. No
    // race: only a trusted owner can write the directory.
    if (!S_ISREG(st.st_mode)) {
        errno = S_ISLNK(st.st_mode) ? ELOOP : EINVAL;
        return -1;
    }
    LIBBPF_OPTS(bpf_obj_get_opts, opts, .file_flags = BPF_F_PATH_FD, .path_fd = parent.get());
    int fd = bpf_obj_get_opts(name.c_str(), &opts);
    if (fd < 0 && errno == EINVAL) {
        // A kernel before 6.5 has no path_fd: the same directory through procfs.
        auto via_proc = fmt::format("/proc/self/fd/{}/{}", parent.get(), name.string());
        fd = bpf_obj_get(via_proc.c_str());
    }
    return fd;
}

int obj_pin(int fd, const std::filesystem::path& pin) {
    Fd parent = open_parent(pin);
    if (!parent.valid())
        return -errno;
    const auto name = pin.filename();
    LIBBPF_OPTS(bpf_obj_pin_opts, opts, .file_flags = BPF_F_PATH_FD, .path_fd = parent.get());
    int rc = bpf_obj_pin_opts(fd, name.c_str(), &opts);
    if (rc == -EINVAL) {
        auto via_proc = fmt::format("/proc/self/fd/{}/{}", parent.get(), name.string());
        rc = bpf_obj_pin(fd, via_proc.c_str());
    }
    return rc;
}

int unlink(const std::filesystem::path& pin) {
    Fd parent = open_parent(pin);
    if (!parent.valid())
        return -1;
    // unlinkat never follows the last component: a symbolic link there is
    // removed itself, never what it points to.
    return ::unlinkat(parent.get(), pin.filename().c_str(), 0);
}

int rename(const std::filesystem::path& from, const std::filesystem::path& to) {
    Fd parent = open_parent(from);
    if (!parent.valid())
        return -1;
    if (from.parent_path() != to.parent_path()) {
        errno = EXDEV;
        return -1;
    }
    return ::renameat(parent.get(), from.filename().c_str(), parent.get(), to.filename().c_str());
}

Result<std::vector<std::string>> link_names(const std::filesystem::path& dir) {
    Fd dir_fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!dir_fd.valid())
        return errno_error(errno, "open " + dir.string());
    struct stat st{};
    if (::fstatat(dir_fd.get(), "links", &st, AT_SYMLINK_NOFOLLOW) != 0 && errno == ENOENT)
        return std::vector<std::string>{};
    auto listing = list(dir_fd.get(), "links", links_dir(dir));
    if (!listing)
        return std::unexpected(listing.error());
    std::vector<std::string> names;
    while (const dirent* entry = ::readdir(listing->get()))
        if (std::string_view(entry->d_name) != "." && std::string_view(entry->d_name) != "..")
            names.emplace_back(entry->d_name);
    return names;
}

bool exists(const std::filesystem::path& pin) {
    Fd parent = open_parent(pin);
    struct stat st{};
    return parent.valid() && ::fstatat(parent.get(), pin.filename().c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
}

Result<void> check_shape(int fd, const std::filesystem::path& path, std::string_view name, bpf_map_type type,
                         std::uint32_t key_size, std::uint32_t value_size) {
    bpf_map_info info{};
    __u32 len = sizeof info;
    if (bpf_map_get_info_by_fd(fd, &info, &len) != 0)
        return plain_error("not a nodeport map: " + path.string() + " (not a BPF map): remove it or use another --pin-dir",
                           ErrorKind::unsafe_pin_dir);
    if (info.type != type || info.key_size != key_size || info.value_size != value_size)
        return plain_error(fmt::format("not a nodeport map: {} (a {} with {}-byte keys and {}-byte values; nodeport's "
                                       "{} is a {} with {} and {}): remove it or use another --pin-dir",
                                       path.string(), libbpf_bpf_map_type_str(bpf_map_type(info.type)),
                                       info.key_size, info.value_size, name, libbpf_bpf_map_type_str(type), key_size,
                                       value_size),
                           ErrorKind::unsafe_pin_dir);
    return {};
}

Result<np_config> recorded_config(const std::filesystem::path& dir) {
    if (auto checked = open_checked(dir); !checked)
        return checked.error().kind == ErrorKind::not_loaded ? Result<np_config>{np_config{}}
                                                     : std::unexpected(checked.error());
    auto path = dir / "node_config";
    Fd config(obj_get(path));
    if (!config.valid())
        return errno == ENOENT ? Result<np_config>{np_config{}} : errno_error(errno, "open pinned map " + path.string());
    if (auto ok = check_catalog_shape(config.get(), path, "node_config"); !ok)
        return std::unexpected(ok.error());
    __u32 zero = 0;
    np_config cfg{};
    if (bpf_map_lookup_elem(config.get(), &zero, &cfg) != 0)
        return errno_error(errno, "read " + path.string());
    return cfg;
}

Result<unsigned> recorded_abi(const std::filesystem::path& dir) {
    auto config = recorded_config(dir);
    if (!config)
        return std::unexpected(config.error());
    return config->abi_version;
}

Result<void> create(const std::filesystem::path& dir) {
    if (!dir.is_absolute())
        return std::unexpected(
            Error{EINVAL, "pin directory " + dir.string() + " is not an absolute path", ErrorKind::bad_input, "pin directory"});
    auto parent = dir.parent_path();
    if (!on_bpffs(parent)) {
        bool is_default = parent == bpffs_default || parent.string().starts_with(bpffs_default.string() + "/");
        if (is_default && !on_bpffs(bpffs_default) && ::mount("bpf", bpffs_default.c_str(), "bpf", 0, nullptr) != 0)
            return errno_error(errno, "mount bpffs at " + bpffs_default.string());
    }
    std::error_code ec;
    std::filesystem::create_directories(parent, ec);
    if (ec)
        return errno_error(ec.value(), "create " + parent.string());
    // An existing directory is not made ours by chmod: open_checked decides
    // whether it can be trusted, and load whether it may be adopted.
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
        return errno_error(errno, "create pin directory " + dir.string());
    if (auto fd = open_checked(dir); !fd)
        return std::unexpected(fd.error());
    return {};
}

Result<void> check_adoptable(int dir_fd, const std::filesystem::path& dir) {
    struct stat st{};
    if (::fstatat(dir_fd, "node_config", &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode))
        return {};
    // Nothing but nodeport's own names (pins of a load killed before it
    // pinned node_config, or an empty directory of one killed right after
    // mkdir): those converge; anything else belongs to someone else.
    auto listing = list(dir_fd, ".", dir);
    if (!listing)
        return std::unexpected(listing.error());
    while (const dirent* entry = ::readdir(listing->get())) {
        std::string_view name = entry->d_name;
        if (name == "." || name == "..")
            continue;
        auto known = map_catalog::find(name);
        if (!known)
            return std::unexpected(known.error());
        bool ours = name == "links" || name == "progs" || name == "ports_abi1" || *known != nullptr ||
                    std::ranges::find(FlowMigration::leftovers, name) != FlowMigration::leftovers.end();
        if (!ours || entry->d_type == DT_LNK)
            return not_safe(dir, "not created by nodeport (it has no node_config but holds " + std::string(name) +
                                     "): refusing to adopt it; remove it or use another --pin-dir");
    }
    return {};
}

Result<void> make_links_dir(int dir_fd, const std::filesystem::path& dir) {
    if (::mkdirat(dir_fd, "links", 0700) != 0 && errno != EEXIST)
        return errno_error(errno, "create " + links_dir(dir).string());
    struct stat st{};
    if (::fstatat(dir_fd, "links", &st, AT_SYMLINK_NOFOLLOW) != 0)
        return errno_error(errno, "stat " + links_dir(dir).string());
    if (!S_ISDIR(st.st_mode))
        return not_safe(dir, links_dir(dir).string() + " is not a directory");
    return {};
}

Result<Listing> list(int dir_fd, const char* name, const std::filesystem::path& shown) {
    int fd = ::openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return errno_error(errno, "open " + shown.string());
    DIR* d = ::fdopendir(fd);
    if (!d) {
        int err = errno;
        ::close(fd);
        return errno_error(err, "list " + shown.string());
    }
    return Listing(d);
}

Result<Fd> open(const std::filesystem::path& dir) {
    auto fd = open_checked(dir);
    if (!fd)
        return fd;
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
    if (auto checked = open_checked(dir); !checked)
        return std::unexpected(checked.error());
    auto path = dir / name;
    Fd fd(obj_get(path));
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
    return std::unexpected(Error{EWOULDBLOCK, message, ErrorKind::busy, {}});
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
    auto fd = open_checked(dir);
    if (!fd)
        return std::unexpected(fd.error());
    auto lock = Lock::take(fd->get(), wait);
    if (!lock)
        return std::unexpected(lock.error());
    return Locked{std::move(*fd), std::move(*lock)};
}

}  // namespace nodeport::pin_dir
