#include "base/pin_dir.hpp"

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

#include "base/lock_holder.hpp"
#include "base/map_catalog.hpp"
#include "nodeport/abi.h"

namespace nodeport {
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

// Refuses pins of another map ABI than this build's, naming how to go on;
// none recorded passes. Pins of another map ABI are laid out differently and
// must not be read as ours; `load` migrates them.
Result<void> check_abi(const PinDir& dir) {
    auto config = dir.config();
    if (!config)
        return std::unexpected(config.error());
    const unsigned abi = config->abi_version;
    if (abi >= 1 && abi <= 3)
        return plain_error(fmt::format("the maps pinned at {} use map ABI v{}, this nodeport uses v{}: run this "
                                       "nodeport's load to migrate them (mappings and connections are kept)",
                                       dir.path().string(), abi, NODEPORT_ABI_VERSION),
                           ErrorKind::abi_mismatch);
    if (abi != 0 && abi != NODEPORT_ABI_VERSION)
        return plain_error(fmt::format("not a nodeport map: {} (the maps pinned at {} use map ABI v{}, this nodeport "
                                       "uses v{}): use the nodeport that loaded them, or unload with it first",
                                       dir.shown("node_config").string(), dir.path().string(), abi,
                                       NODEPORT_ABI_VERSION),
                           ErrorKind::abi_mismatch);
    return {};
}

// The shape this build gives a pinned map of that name, checked when it has one.
Result<void> check_catalog_shape(int fd, const std::filesystem::path& path, std::string_view name) {
    const auto* want = map_catalog::find(name);
    if (!want)
        return {};
    return pin_dir::check_shape(fd, path, name, want->type, want->key_size, want->value_size);
}

// A pin's name split into the directory that holds it, opened without
// following a symbolic link (the pin directory itself, or one level down:
// "links/NAME"), and its last component.
struct PinParent {
    Fd owned;    // the subdirectory, when there is one
    int fd = -1;
    std::string name;
};

PinParent open_parent(const PinDir& dir, std::string_view pin) {
    PinParent parent;
    auto slash = pin.find('/');
    if (slash == std::string_view::npos) {
        parent.fd = dir.fd();
        parent.name = pin;
        return parent;
    }
    if (pin.find('/', slash + 1) != std::string_view::npos) {
        errno = EINVAL;
        return parent;
    }
    const std::string sub(pin.substr(0, slash));
    parent.owned = Fd(::openat(dir.fd(), sub.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    parent.fd = parent.owned.get();
    parent.name = pin.substr(slash + 1);
    return parent;
}

}  // namespace

int PinDir::obj_get(std::string_view pin) const {
    auto parent = open_parent(*this, pin);
    if (parent.fd < 0)
        return -1;
    struct stat st{};
    if (::fstatat(parent.fd, parent.name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
        return -1;
    // BPF_OBJ_GET follows a symbolic link in the last component
    // (user_path_at with LOOKUP_FOLLOW): refuse one before asking it. No
    // race: only a trusted owner can write the directory.
    if (!S_ISREG(st.st_mode)) {
        errno = S_ISLNK(st.st_mode) ? ELOOP : EINVAL;
        return -1;
    }
    LIBBPF_OPTS(bpf_obj_get_opts, opts, .file_flags = BPF_F_PATH_FD, .path_fd = parent.fd);
    int fd = bpf_obj_get_opts(parent.name.c_str(), &opts);
    if (fd < 0 && errno == EINVAL) {
        // A kernel before 6.5 has no path_fd: the same directory through procfs.
        auto via_proc = fmt::format("/proc/self/fd/{}/{}", parent.fd, parent.name);
        fd = bpf_obj_get(via_proc.c_str());
    }
    return fd;
}

int PinDir::obj_pin(int fd, std::string_view pin) const {
    auto parent = open_parent(*this, pin);
    if (parent.fd < 0)
        return -errno;
    LIBBPF_OPTS(bpf_obj_pin_opts, opts, .file_flags = BPF_F_PATH_FD, .path_fd = parent.fd);
    int rc = bpf_obj_pin_opts(fd, parent.name.c_str(), &opts);
    if (rc == -EINVAL) {
        auto via_proc = fmt::format("/proc/self/fd/{}/{}", parent.fd, parent.name);
        rc = bpf_obj_pin(fd, via_proc.c_str());
    }
    return rc;
}

int PinDir::unlink(std::string_view pin) const {
    auto parent = open_parent(*this, pin);
    if (parent.fd < 0)
        return -1;
    // unlinkat never follows the last component: a symbolic link there is
    // removed itself, never what it points to.
    return ::unlinkat(parent.fd, parent.name.c_str(), 0);
}

int PinDir::rename(std::string_view from, std::string_view to) const {
    const auto dir_of = [](std::string_view pin) { return pin.substr(0, pin.rfind('/') + 1); };  // "" or "links/"
    if (dir_of(from) != dir_of(to)) {
        errno = EXDEV;
        return -1;
    }
    auto parent = open_parent(*this, from);
    if (parent.fd < 0)
        return -1;
    const std::string to_name(to.substr(dir_of(to).size()));
    return ::renameat(parent.fd, parent.name.c_str(), parent.fd, to_name.c_str());
}

bool PinDir::exists(std::string_view pin) const {
    auto parent = open_parent(*this, pin);
    struct stat st{};
    return parent.fd >= 0 && ::fstatat(parent.fd, parent.name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
}

Result<std::vector<std::string>> PinDir::link_names() const {
    struct stat st{};
    if (::fstatat(fd(), "links", &st, AT_SYMLINK_NOFOLLOW) != 0 && errno == ENOENT)
        return std::vector<std::string>{};
    auto listing = pin_dir::list(fd(), "links", shown("links"));
    if (!listing)
        return std::unexpected(listing.error());
    std::vector<std::string> names;
    while (const dirent* entry = ::readdir(listing->get()))
        if (std::string_view(entry->d_name) != "." && std::string_view(entry->d_name) != "..")
            names.emplace_back(entry->d_name);
    return names;
}

Result<Fd> PinDir::map(std::string_view name) const {
    Fd fd(obj_get(name));
    if (!fd.valid())
        return errno == ENOENT ? not_loaded(path_) : errno_error(errno, "open pinned map " + shown(name).string());
    if (auto ok = check_catalog_shape(fd.get(), shown(name), name); !ok)
        return std::unexpected(ok.error());
    return fd;
}

Result<np_config> PinDir::config() const {
    auto config = map("node_config");
    if (!config)
        return config.error().kind == ErrorKind::not_loaded ? Result<np_config>{np_config{}}
                                                            : std::unexpected(config.error());
    __u32 zero = 0;
    np_config cfg{};
    if (bpf_map_lookup_elem(config->get(), &zero, &cfg) != 0)
        return errno_error(errno, "read " + shown("node_config").string());
    return cfg;
}

Result<PinDir> PinDir::open_any_abi(const std::filesystem::path& dir) {
    auto fd = open_checked(dir);
    if (!fd)
        return std::unexpected(fd.error());
    return PinDir(dir, std::move(*fd));
}

Result<PinDir> PinDir::reopen() const {
    Fd fd(::openat(fd_.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd.valid())
        return errno_error(errno, "open " + path_.string());
    return PinDir(path_, std::move(fd));
}

Result<PinDir> PinDir::open(const std::filesystem::path& dir) {
    auto opened = open_any_abi(dir);
    if (!opened)
        return opened;
    if (auto ok = check_abi(*opened); !ok)
        return std::unexpected(ok.error());
    return opened;
}

namespace pin_dir {

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

Result<PinDir> create(const std::filesystem::path& dir) {
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
    return PinDir::open_any_abi(dir);
}

Result<void> check_adoptable(const PinDir& dir) {
    struct stat st{};
    if (::fstatat(dir.fd(), "node_config", &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode))
        return {};
    // Nothing but nodeport's own names (pins of a load killed before it
    // pinned node_config, or an empty directory of one killed right after
    // mkdir): those converge; anything else belongs to someone else.
    auto listing = list(dir.fd(), ".", dir.path());
    if (!listing)
        return std::unexpected(listing.error());
    while (const dirent* entry = ::readdir(listing->get())) {
        std::string_view name = entry->d_name;
        if (name == "." || name == "..")
            continue;
        bool ours = name == "links" || name == "progs" || name == map_catalog::abi1_set_aside ||
                    map_catalog::find(name) != nullptr ||
                    std::ranges::find(map_catalog::abi2_leftovers, name) != map_catalog::abi2_leftovers.end();
        if (!ours || entry->d_type == DT_LNK)
            return not_safe(dir.path(), "not created by nodeport (it has no node_config but holds " + std::string(name) +
                                     "): refusing to adopt it; remove it or use another --pin-dir");
    }
    return {};
}

Result<void> make_links_dir(const PinDir& dir) {
    if (::mkdirat(dir.fd(), "links", 0700) != 0 && errno != EEXIST)
        return errno_error(errno, "create " + dir.shown("links").string());
    struct stat st{};
    if (::fstatat(dir.fd(), "links", &st, AT_SYMLINK_NOFOLLOW) != 0)
        return errno_error(errno, "stat " + dir.shown("links").string());
    if (!S_ISDIR(st.st_mode))
        return not_safe(dir.path(), dir.shown("links").string() + " is not a directory");
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
    // Read under the lock: a load that migrates the pins holds it.
    if (auto ok = check_abi(locked->dir); !ok)
        return std::unexpected(ok.error());
    return locked;
}

Result<Locked> open_locked_any_abi(const std::filesystem::path& dir, std::chrono::milliseconds wait) {
    auto opened = PinDir::open_any_abi(dir);
    if (!opened)
        return std::unexpected(opened.error());
    return lock(std::move(*opened), wait);
}

Result<Locked> lock(PinDir dir, std::chrono::milliseconds wait) {
    auto held = Lock::take(dir.fd(), wait);
    if (!held)
        return std::unexpected(held.error());
    return Locked{std::move(dir), std::move(*held)};
}

}  // namespace pin_dir
}  // namespace nodeport
