// Loading and unloading nodeport: BPF programs, their links and the maps, all
// pinned under one directory so the datapath works with no process running,
// and a later `load` (or an upgrade) finds and reuses the same maps.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "nodeport/result.hpp"
#include "nodeport/types.hpp"

namespace nodeport {

inline const std::filesystem::path default_pin_dir = "/sys/fs/bpf/nodeport";

struct NodeAddr {
    Ipv4 addr;
    std::string interface;  // empty when given by hand
};

struct LoadOptions {
    std::filesystem::path pin_dir = default_pin_dir;
    // cgroup v2 directory whose sockets get the local-forwarding hooks.
    // nullopt: create and pin the maps, attach nothing (tests, later attach).
    std::optional<std::filesystem::path> cgroup;
    // The node's addresses. Empty: every IPv4 address of the interfaces of
    // the calling thread's network namespace, loopback excepted.
    std::vector<Ipv4> node_ips;
};

struct LoadReport {
    bool reused_maps = false;        // pinned maps from an earlier load were kept, entries and all
    std::vector<std::string> links;  // pinned links, created or updated
    std::vector<NodeAddr> node_addrs;
};

// Idempotent: a second load reuses the pinned maps and replaces the programs
// behind the pinned links in place.
Result<LoadReport> load(const LoadOptions& options);

// Detaches what nodeport attached and removes its pins. Not loaded: an error.
Result<void> unload(const std::filesystem::path& pin_dir);

// Replaces the node address set (empty `node_ips`: discover them again).
Result<std::vector<NodeAddr>> refresh(const std::filesystem::path& pin_dir, const std::vector<Ipv4>& node_ips);

// What `load` would use by default.
Result<std::filesystem::path> cgroup2_root();
Result<std::vector<NodeAddr>> discover_node_addrs();

}  // namespace nodeport
