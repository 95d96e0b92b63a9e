// Ending the node's sockets that a remap left talking to the old backend
// (bpf/sock_end.bpf.c): the pinned socket iterators of a loaded nodeport,
// run by PortTable when set or remove replaces a backend. What a write will
// end is recorded in the pinned map `sock_end_targets` before the write
// changes `ports`, and forgotten only once walked: a write killed in between
// leaves it to the next write, sync or load.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "nodeport/fd.hpp"
#include "nodeport/pin_dir.hpp"
#include "nodeport/result.hpp"
#include "nodeport/types.hpp"

// Exported from libnodeport.so (the rest of the library is hidden).
#pragma GCC visibility push(default)

namespace nodeport {

// What a set or remove did to the sockets that still talked to the backend
// it replaced (connected UDP sockets always; TCP with ChangeOptions::terminate).
// They are ended with bpf_sock_destroy (Linux >= 6.5): the application gets
// ECONNABORTED and connects again, to the current backend.
struct EndedSockets {
    unsigned count = 0;       // sockets ended
    std::string not_checked;  // why the node's sockets were not (all) checked; empty when they were
    // Backends an interrupted earlier write had recorded and this walk
    // ended the sockets of (counted in `count` too).
    std::size_t resumed = 0;
};

class SocketEnder {
public:
    // The iterators pinned under `pin_dir`. When `load` could not install
    // them (a kernel without bpf_sock_destroy), every end() says why it did
    // nothing.
    static SocketEnder open(const PinDir& pin_dir);

    // A backend that `node_port` no longer leads to.
    struct Target {
        NodePort node_port;
        Backend backend;
        auto operator<=>(const Target&) const = default;
    };

    // The caller of these holds the pin directory lock: the target map is
    // shared by every writer.
    //
    // Before a write changes `ports`: records the backends whose sockets it
    // will end. Empty when they are recorded (or there are none); otherwise
    // why not, for EndedSockets::not_checked (the write goes on: ending
    // sockets is a courtesy to their applications, never a reason to refuse
    // a mapping).
    std::string record(const std::vector<Target>& targets) const;

    // After the write: ends the sockets of the calling thread's network
    // namespace connected to a recorded target's backend through a
    // translation of its node port, one walk of each protocol's sockets
    // however many targets, then forgets the targets. Every recorded target
    // counts: this write's (`own`) and any an interrupted write left. A
    // target whose node port leads to its backend again in `ports_fd` (a
    // write killed before it changed the map, a port given back) is
    // forgotten without a walk: its sockets are right.
    EndedSockets finish(int ports_fd, const std::vector<Target>& own = {}) const;

    // The targets recorded now: outside a write, those an interrupted write
    // left (status). Empty when the iterators are not loaded.
    Result<std::vector<Target>> pending() const;

private:
    // NP_CONFIG_SOCK_END_PENDING in `node_config`: whether the target map
    // may hold anything (true when it cannot be read: then the map is walked).
    bool may_hold_targets() const;
    std::string mark_pending(bool pending) const;

    Fd config_;   // the `node_config` map
    Fd targets_;   // the `sock_end_targets` map
    Fd targets6_;  // `sock_end_targets6`; invalid with pins of a load before it (IPv6 targets are then not recorded)
    Fd udp_link_;
    Fd tcp_link_;
    std::uint64_t node_netns_cookie_ = 0;
    std::string unavailable_;  // why nothing can be ended; empty when it can
};

}  // namespace nodeport

#pragma GCC visibility pop
