// Following the node: interfaces that appear get the TC programs, interfaces
// that go are forgotten, and the node's addresses are re-read, each within a
// fraction of a second of the rtnetlink notification (`nodeport watch`).
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <vector>

#include "nodeport/datapath.hpp"
#include "nodeport/interfaces.hpp"
#include "nodeport/result.hpp"
#include "nodeport/types.hpp"

namespace nodeport {

struct WatchOptions {
    std::filesystem::path pin_dir = default_pin_dir;
    InterfaceChoice interfaces;
    std::vector<Ipv4> node_ips;  // empty: discovered again at each change
    TcAttachMode tc_attach = TcAttachMode::automatic;
    // Notifications come in bursts (a veth pair: two links, then up, an
    // address, its routes): wait this long after the first, then resync once.
    std::chrono::milliseconds settle{100};
    // How long a resync waits for another writer's lock (a load running).
    std::chrono::milliseconds lock_wait = default_lock_wait;
};

// What the datapath follows after one resync.
struct NodeState {
    std::vector<TcAttachment> interfaces;
    std::vector<NodeAddr> node_addrs;
};

// One resync of a loaded nodeport with the node as it is now: the chosen
// interfaces attached (attach_interfaces), the node addresses rewritten
// (refresh).
Result<NodeState> sync_node(const WatchOptions& options);

// Resyncs at start (its failure is returned: not loaded, bad pins), then
// after each burst of link or address notifications, until `stop_fd` is
// readable (e.g. a signalfd for SIGTERM); then returns, leaving everything
// attached. Every resync's outcome goes to `report`; a failed one (an
// interface gone while being attached) does not stop the watch, the next
// notification retries.
Result<void> watch(const WatchOptions& options, int stop_fd,
                   const std::function<void(const Result<NodeState>&)>& report);

}  // namespace nodeport
