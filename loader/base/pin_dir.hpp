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
#include <utility>
#include <vector>

#include "nodeport/abi.h"
#include "nodeport/fd.hpp"
#include "nodeport/lock_wait.hpp"
#include "nodeport/pin_dir.hpp"
#include "nodeport/result.hpp"

namespace nodeport::pin_dir {

// Creates the directory (mode 0700) on bpffs, mounting bpffs at /sys/fs/bpf
// first when the machine booted without it, as bpftool does, and opens it
// (PinDir::open_any_abi). An existing one must pass PinDir's checks.
Result<PinDir> create(const std::filesystem::path& dir);

// For load: a directory without node_config is adopted only when it holds
// nothing but names nodeport pins (a load killed before pinning node_config
// must converge); anything else belongs to someone else.
Result<void> check_adoptable(const PinDir& dir);

// Creates links/ if missing, and checks it is a directory.
Result<void> make_links_dir(const PinDir& dir);

// The entries of the directory `name` under dir_fd, opened without following
// a symbolic link; `shown` names it in errors.
struct CloseDir {
    void operator()(DIR* d) const { ::closedir(d); }
};
using Listing = std::unique_ptr<DIR, CloseDir>;
Result<Listing> list(int dir_fd, const char* name, const std::filesystem::path& shown);

// Checks that the pinned map at `path` has the type and key and value sizes
// given; "not a nodeport map: <path> (...)" otherwise.
Result<void> check_shape(int map_fd, const std::filesystem::path& path, std::string_view name, bpf_map_type type,
                         std::uint32_t key_size, std::uint32_t value_size);

// The path overloads of the public API: opens the directory once
// (PinDir::open) and calls fn with it.
template <class Fn>
auto with_opened(const std::filesystem::path& dir, Fn&& fn) -> decltype(fn(std::declval<const PinDir&>())) {
    auto opened = PinDir::open(dir);
    if (!opened)
        return std::unexpected(opened.error());
    return fn(*opened);
}

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
    PinDir dir;
    Lock lock;
};
Result<Locked> open_locked(const std::filesystem::path& dir, std::chrono::milliseconds wait = default_lock_wait);

// Like open_locked, without looking at the map ABI: for `unload`, which
// removes pins of an older one.
Result<Locked> open_locked_any_abi(const std::filesystem::path& dir,
                                   std::chrono::milliseconds wait = default_lock_wait);
// Locks a directory opened already (load's, just created).
Result<Locked> lock(PinDir dir, std::chrono::milliseconds wait = default_lock_wait);

}  // namespace nodeport::pin_dir
