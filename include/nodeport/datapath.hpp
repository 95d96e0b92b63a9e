// Loading and unloading nodeport: BPF programs, their links and the maps, all
// pinned under one directory so the datapath works with no process running,
// and a later `load` (or an upgrade) finds and reuses the same maps. The
// types these take and report are in datapath_types.hpp.
#pragma once

#include <chrono>
#include <filesystem>
#include <vector>

#include "nodeport/datapath_types.hpp"
#include "nodeport/lock_wait.hpp"
#include "nodeport/pin_dir.hpp"
#include "nodeport/result.hpp"
#include "nodeport/types.hpp"

// Exported from libnodeport.so (the rest of the library is hidden).
#pragma GCC visibility push(default)

namespace nodeport {

// Idempotent: a second load reuses the pinned maps and replaces the programs
// behind the pinned links in place, so mappings and connections survive it.
// Pins of map ABI 1 are migrated (abi1_migration.hpp); pins it cannot use
// are refused before anything changes.
Result<LoadReport> load(const LoadOptions& options);

// Detaches what nodeport attached and removes its pins, also those of a load
// that failed half-way. Not loaded: an error. Waits at most `lock_wait` for
// another writer (as refresh does).
Result<UnloadReport> unload(const std::filesystem::path& pin_dir,
                            std::chrono::milliseconds lock_wait = default_lock_wait);

// Replaces the node address set (empty `node_ips`: discover them again).
Result<std::vector<NodeAddr>> refresh(const std::filesystem::path& pin_dir, const std::vector<IpAddr>& node_ips,
                                      std::chrono::milliseconds lock_wait = default_lock_wait);

// The interfaces the TC programs are attached to.
Result<std::vector<TcAttachment>> external_interfaces(const std::filesystem::path& pin_dir);
Result<std::vector<TcAttachment>> external_interfaces(const PinDir& pin_dir);

// What `load` would use by default.
Result<std::filesystem::path> cgroup2_root();
Result<std::vector<NodeAddr>> discover_node_addrs();

}  // namespace nodeport

#pragma GCC visibility pop
