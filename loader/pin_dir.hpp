// Where nodeport keeps its pins, and the lock that serializes writers.
//   <pin-dir>/ports, node_addrs, ..., flows, half_open_flows, udp_flows   maps (map_catalog: what the objects pin)
//   <pin-dir>/links/<program>                                        links (detached when unpinned)
//   <pin-dir>/progs/np_tc_ingress, np_tc_egress                      the TC programs, for attaching after load (watch)
#pragma once

#include <bpf/bpf.h>
#include <dirent.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "nodeport/abi.h"
#include "nodeport/fd.hpp"
#include "nodeport/lock_wait.hpp"
#include "nodeport/result.hpp"

namespace nodeport::pin_dir {

inline std::filesystem::path links_dir(const std::filesystem::path& dir) {
    return dir / "links";
}

// Trust: every function here that opens the pin directory first checks,
// on an fd opened without following a symbolic link, that it is a real
// directory on bpffs, owned by root (or the user running nodeport), not
// writable by group or others, not the root of a bpffs mount, and that every
// directory above it is a trusted owner's and writable by others only when
// sticky; "pin directory <dir> is not safe: <reason>" otherwise. Only a
// trusted owner can then change anything inside, so a name checked not to
// be a symbolic link stays so until it is opened.

// Creates the directory (mode 0700) on bpffs, mounting bpffs at /sys/fs/bpf
// first when the machine booted without it, as bpftool does. An existing one
// must pass the checks above.
Result<void> create(const std::filesystem::path& dir);

// For load: a directory without node_config is adopted only when it holds
// nothing but names nodeport pins (a load killed before pinning node_config
// must converge); anything else belongs to someone else.
Result<void> check_adoptable(int dir_fd, const std::filesystem::path& dir);

// Creates <dir>/links if missing, and checks it is a directory.
Result<void> make_links_dir(int dir_fd, const std::filesystem::path& dir);

// The entries of the directory `name` under dir_fd, opened without following
// a symbolic link; `shown` names it in errors.
struct CloseDir {
    void operator()(DIR* d) const { ::closedir(d); }
};
using Listing = std::unique_ptr<DIR, CloseDir>;
Result<Listing> list(int dir_fd, const char* name, const std::filesystem::path& shown);

// Pins inside the pin directory, never through a symbolic link: the
// directory holding the pin is opened with O_NOFOLLOW, the pin itself must be
// a bpffs object (a regular file), and the work is done relative to that
// directory's fd. Drop-in replacements for bpf_obj_get, bpf_obj_pin, unlink
// and rename with their return conventions (a symbolic link: ELOOP).
int obj_get(const std::filesystem::path& pin);
int obj_pin(int fd, const std::filesystem::path& pin);
int unlink(const std::filesystem::path& pin);
int rename(const std::filesystem::path& from, const std::filesystem::path& to);  // within one directory
// The names in <dir>/links, listed without following a symbolic link;
// none when it is missing.
Result<std::vector<std::string>> link_names(const std::filesystem::path& dir);
// Whether something (a symbolic link included) is at that name.
bool exists(const std::filesystem::path& pin);

// Opens the directory of a loaded nodeport; "not loaded" when it is missing,
// "not a nodeport map" when node_config records another map ABI.
Result<Fd> open(const std::filesystem::path& dir);

// The record `load` keeps in <dir>/node_config (map ABI, network namespace);
// all zero when there is none.
Result<np_config> recorded_config(const std::filesystem::path& dir);

// The map ABI recorded in <dir>/node_config; 0 when there is none.
Result<unsigned> recorded_abi(const std::filesystem::path& dir);

// Checks that the pinned map at `path` has the type and key and value sizes
// given; "not a nodeport map: <path> (...)" otherwise.
Result<void> check_shape(int map_fd, const std::filesystem::path& path, std::string_view name, bpf_map_type type,
                         std::uint32_t key_size, std::uint32_t value_size);

// Opens a pinned map of a loaded nodeport; "not loaded" when it is missing,
// "not a nodeport map" when it is not a map of the type and key and value
// sizes abi.h gives that name, or the pins are of another map ABI.
Result<Fd> open_map(const std::filesystem::path& dir, std::string_view name);

// Like open_map, without looking at the map ABI recorded in node_config:
// for `load`, which migrates pins of an older one.
Result<Fd> open_map_any_abi(const std::filesystem::path& dir, std::string_view name);

// Holds an exclusive flock on the pin directory for the scope's lifetime.
class Lock {
public:
    // Waits at most `wait` for another holder to let go (0: not at all),
    // then fails naming the holder: "pin directory D is locked by pid N
    // (comm) for more than S s" (errno EWOULDBLOCK).
    static Result<Lock> take(int dir_fd, std::chrono::milliseconds wait = default_lock_wait);
    Lock(Lock&& other) noexcept;
    Lock(const Lock&) = delete;
    Lock& operator=(const Lock&) = delete;
    Lock& operator=(Lock&&) = delete;
    ~Lock();

private:
    explicit Lock(int dir_fd) : fd_(dir_fd) {}
    int fd_;
};

// The pin directory of a loaded nodeport, open and locked while this lives
// (members go in reverse order: unlock, then close).
struct Locked {
    Fd dir;
    Lock lock;
};
Result<Locked> open_locked(const std::filesystem::path& dir, std::chrono::milliseconds wait = default_lock_wait);

// Like open_locked, without looking at the map ABI: for `load`, which
// migrates pins of an older one.
Result<Locked> open_locked_any_abi(const std::filesystem::path& dir,
                                   std::chrono::milliseconds wait = default_lock_wait);

}  // namespace nodeport::pin_dir
