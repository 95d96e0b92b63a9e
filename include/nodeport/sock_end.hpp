// Ending the node's sockets that a remap left talking to the old backend
// (bpf/sock_end.bpf.c): the pinned socket iterators of a loaded nodeport,
// run by PortTable when set or remove replaces a backend.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "nodeport/fd.hpp"
#include "nodeport/types.hpp"

namespace nodeport {

// What a set or remove did to the sockets that still talked to the backend
// it replaced (connected UDP sockets always; TCP with ChangeOptions::terminate).
// They are ended with bpf_sock_destroy (Linux >= 6.5): the application gets
// ECONNABORTED and connects again, to the current backend.
struct EndedSockets {
    unsigned count = 0;       // sockets ended
    std::string not_checked;  // why the node's sockets were not (all) checked; empty when they were
};

class SocketEnder {
public:
    // The iterators pinned under `pin_dir`. When `load` could not install
    // them (a kernel without bpf_sock_destroy), every end() says why it did
    // nothing.
    static SocketEnder open(const std::filesystem::path& pin_dir);

    // A backend that `node_port` no longer leads to.
    struct Target {
        NodePort node_port;
        Backend backend;
    };

    // Ends the sockets of the calling thread's network namespace that are
    // connected to a target's backend through a translation of its node
    // port: one walk of each protocol's sockets, however many targets. The
    // caller holds the pin directory lock: the target map is shared.
    EndedSockets end(const std::vector<Target>& targets) const;

private:
    Fd targets_;  // the `sock_end_targets` map
    Fd udp_link_;
    Fd tcp_link_;
    std::uint64_t node_netns_cookie_ = 0;
    std::string unavailable_;  // why nothing can be ended; empty when it can
};

}  // namespace nodeport
