// Where nodeport keeps its pins, and the lock that serializes writers.
//   <pin-dir>/ports, node_addrs, ..., flows, closed_flows, udp_flows   maps (map_catalog: what the objects pin)
//   <pin-dir>/links/<program>                                        links (detached when unpinned)
//   <pin-dir>/progs/np_tc_ingress, np_tc_egress                      the TC programs, for attaching after load (watch)
#pragma once

#include <bpf/bpf.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string_view>

#include "nodeport/fd.hpp"
#include "nodeport/lock_wait.hpp"
#include "nodeport/result.hpp"

namespace nodeport::pin_dir {

inline std::filesystem::path links_dir(const std::filesystem::path& dir) {
    return dir / "links";
}

// Creates the directory (mode 0700) on bpffs, mounting bpffs at /sys/fs/bpf
// first when the machine booted without it, as bpftool does.
Result<void> create(const std::filesystem::path& dir);

// Opens the directory of a loaded nodeport; "not loaded" when it is missing,
// "not a nodeport map" when node_config records another map ABI.
Result<Fd> open(const std::filesystem::path& dir);

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
