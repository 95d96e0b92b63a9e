// Live connections that nodeport translated, per backend: what `drain` waits
// for and what `get` and `list` show. Counted from what nodeport itself
// knows, read only:
//  - external: the flows of the external datapath (list_flows in flows.hpp,
//    so this never reads the flow maps' layout): TCP from the SYN until the
//    final ACK after FIN both ways, or an RST (a half-closed connection
//    still carries data), UDP
//    until its flow idles out (load's --udp-timeout, 60 s);
//  - local: the node's sockets the socket hooks translated, found by the
//    pinned socket iterators `np_count_tcp`/`np_count_udp`, and
//    `np_count6_tcp`/`np_count6_udp` for IPv6 backends (bpf/sock_end.bpf.c),
//    in the caller's network namespace (the one nodeport was loaded in):
//    TCP until the socket is closed, connected UDP.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "nodeport/pin_dir.hpp"
#include "nodeport/result.hpp"
#include "nodeport/types.hpp"

#pragma GCC visibility push(default)

namespace nodeport {

struct Connections {
    unsigned external = 0;
    unsigned local = 0;
    unsigned total() const { return external + local; }
    bool operator==(const Connections&) const = default;
};

struct BackendConnections {
    NodePort node_port;  // the node port they were translated for
    Backend backend;
    Connections count;
};

struct ConnectionCount {
    std::vector<BackendConnections> entries;  // only backends with connections, by backend then node port
    // Why the node's sockets were not counted (pins of a load before this
    // version, a kernel without the socket iterators, or another network
    // namespace than nodeport's); empty when they were.
    std::string local_not_counted;
    // Why those connected to IPv6 backends were not, when the others were
    // (pins of a load before the IPv6 counting iterators); empty otherwise.
    std::string local6_not_counted;

    // Why the node's connections to backends of `family` were not counted;
    // empty when they were.
    const std::string& local_not_counted_of(Family family) const;
    Connections of(const Backend& backend) const;  // over every node port
    Connections of(NodePort node_port, const Backend& backend) const;
};

Result<ConnectionCount> count_connections(const PinDir& pin_dir);
Result<ConnectionCount> count_connections(const std::filesystem::path& pin_dir);

struct DrainResult {
    bool drained = false;  // no connection left to any of the backends
    bool stopped = false;  // the caller's progress function asked to stop first
    Connections left;      // at the last count
    std::chrono::milliseconds waited{0};
    std::string local_not_counted;  // as in ConnectionCount, for the backends' families
};

// Called with each count (every 100 ms); returning false stops the wait.
using DrainProgress = std::function<bool(const Connections& left)>;

// Waits until no connection nodeport translated reaches any of `backends`,
// or `timeout` passes; counts at least once (timeout 0: one count). Changes
// nothing and takes no lock, so writers go on meanwhile.
Result<DrainResult> drain_backends(const PinDir& pin_dir, const std::vector<Backend>& backends,
                                   std::chrono::milliseconds timeout, const DrainProgress& progress = {});
Result<DrainResult> drain_backends(const std::filesystem::path& pin_dir, const std::vector<Backend>& backends,
                                   std::chrono::milliseconds timeout, const DrainProgress& progress = {});

}  // namespace nodeport

#pragma GCC visibility pop
