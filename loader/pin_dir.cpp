#include "pin_dir.hpp"

#include <bpf/bpf.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include <cerrno>
#include <utility>

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
    return fd;
}

Result<Fd> open_map(const std::filesystem::path& dir, std::string_view name) {
    auto path = dir / name;
    Fd fd(bpf_obj_get(path.c_str()));
    if (!fd.valid())
        return errno == ENOENT ? not_loaded(dir) : errno_error(errno, "open pinned map " + path.string());
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
