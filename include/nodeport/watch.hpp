// Following the node: interfaces that appear get the TC programs, interfaces
// that go are forgotten, and the node's addresses are re-read, each within a
// fraction of a second of the rtnetlink notification (`nodeport watch`).
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <filesystem>
#include <functional>
#include <optional>
#include <vector>

#include "nodeport/datapath_types.hpp"
#include "nodeport/interfaces.hpp"
#include "nodeport/result.hpp"
#include "nodeport/types.hpp"

// Exported from libnodeport.so (the rest of the library is hidden).
#pragma GCC visibility push(default)

namespace nodeport {

struct WatchOptions {
    std::filesystem::path pin_dir = default_pin_dir;
    // nullopt: the choice in force (recorded_interface_choice: load's), read
    // again at each resync, or the default route's interface when nothing
    // is recorded. Given, it is recorded as the choice in force.
    std::optional<InterfaceChoice> interfaces;
    std::vector<IpAddr> node_ips;  // empty: discovered again at each change
    // For interfaces attached from now on; nullopt: the recorded one, or auto.
    std::optional<TcAttachMode> tc_attach;
    // Notifications come in bursts (a veth pair: two links, then up, an
    // address, its routes): wait this long after the first, then resync once.
    std::chrono::milliseconds settle{100};
    // A failed resync is tried again without waiting for a notification:
    // after retry_first, then twice as long after each failure in a row, at
    // most retry_max apart.
    std::chrono::milliseconds retry_first{500};
    std::chrono::milliseconds retry_max{30'000};
    // How long a resync waits for another writer's lock (a load running).
    std::chrono::milliseconds lock_wait = default_lock_wait;
};

// What the datapath follows after one resync.
struct NodeState {
    std::vector<TcAttachment> interfaces;
    std::vector<NodeAddr> node_addrs;
    // Chosen, but beyond the NP_MAX_TC_ATTACHMENTS interfaces nodeport
    // attaches to: not attached (within_limit). Empty when every chosen one is.
    std::vector<std::string> unattached;
    std::size_t chosen = 0;  // how many interfaces the choice names now
    RecordedChoice followed;  // the choice and mode the resync followed
    bool from_record = false;  // it is the recorded one (options.interfaces was nullopt)
};

// One resync of a loaded nodeport with the node as it is now: the chosen
// interfaces attached (attach_interfaces), the node addresses rewritten
// (refresh). The addresses are rewritten even when an interface failed; the
// error then names every interface that did. More chosen interfaces than
// nodeport attaches to are not an error: those attached stay, free places
// are filled, the rest are listed in `unattached`, and no retry would help.
Result<NodeState> sync_node(const WatchOptions& options);

// What the owner of watch's control fd wants, read when the fd is readable
// (e.g. a signalfd: SIGTERM stops, SIGHUP re-reads the config).
struct WatchControl {
    bool stop = false;
    // New options: resync with them now, and follow them from now on.
    std::optional<WatchOptions> reload;
};

// How one resync went, for the log.
struct Resync {
    Result<NodeState> state;
    // When it failed: how long until it is tried again (sooner at a notification).
    std::chrono::milliseconds retry_in{0};
};

// Checks at start what no resync can fix (not loaded, pins of another map
// ABI, loaded in another network namespace) and returns that error. Then
// resyncs at start, after each burst of link or address notifications, after
// a reload, and after a failed resync (with a capped backoff), until
// `on_control` asks to stop; then returns, leaving everything attached.
// `on_control` is called when `control_fd` is readable. Every resync's
// outcome goes to `report`; a failed one (an interface gone while being
// attached, one the kernel refused) does not stop the watch.
Result<void> watch(WatchOptions options, int control_fd, const std::function<WatchControl()>& on_control,
                   const std::function<void(const Resync&)>& report);

}  // namespace nodeport

#pragma GCC visibility pop
