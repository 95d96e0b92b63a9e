// Where nodeport keeps its pins, and the lock that serializes writers.
//   <pin-dir>/ports, node_addrs, ..., flows, closed_flows, udp_flows         maps (map_names)
//   <pin-dir>/links/<program>                         links (detached when unpinned)
#pragma once

#include <array>
#include <filesystem>
#include <string_view>

#include "nodeport/fd.hpp"
#include "nodeport/result.hpp"

namespace nodeport::pin_dir {

inline constexpr std::array<std::string_view, 10> map_names = {
    "ports", "node_addrs", "node_config", "sock_xlat", "tc_attachments", "flows", "closed_flows", "udp_flows",
    "flow_timeouts", "sock_end_targets"};

inline std::filesystem::path links_dir(const std::filesystem::path& dir) {
    return dir / "links";
}

// Creates the directory (mode 0700) on bpffs, mounting bpffs at /sys/fs/bpf
// first when the machine booted without it, as bpftool does.
Result<void> create(const std::filesystem::path& dir);

// Opens the directory of a loaded nodeport; "not loaded" when it is missing,
// "not a nodeport map" when node_config records another map ABI.
Result<Fd> open(const std::filesystem::path& dir);

// Opens a pinned map of a loaded nodeport; "not loaded" when it is missing,
// "not a nodeport map" when it is not a map of the type and key and value
// sizes abi.h gives that name, or the pins are of another map ABI.
Result<Fd> open_map(const std::filesystem::path& dir, std::string_view name);

// Holds an exclusive flock on the pin directory for the scope's lifetime.
class Lock {
public:
    static Result<Lock> take(int dir_fd);
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
Result<Locked> open_locked(const std::filesystem::path& dir);

}  // namespace nodeport::pin_dir
