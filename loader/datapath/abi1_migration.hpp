// Moving the pins of a nodeport of map ABI 1 to this build's layout during
// `load`, so that an upgrade keeps every mapping and every connection.
//
// Only `ports` changed from ABI 1 to 2; every other map keeps its layout and
// is reused as it is (sock_xlat, so node sockets keep their reverse
// translation), but for the flow tables, which ABI 3 changed
// (flow_migration.hpp moves them). The old
// programs hold the old `ports` map by reference, not by path, so the steps
// are: read and convert every entry (nothing changed yet; an entry that
// cannot be converted refuses the load), move the old pin aside, let the new
// objects create the new map, fill it, and only then switch the programs;
// the old map goes when the last old program is detached.
#pragma once

#include <optional>
#include <utility>
#include <vector>

#include "nodeport/abi.h"
#include "nodeport/pin_dir.hpp"
#include "nodeport/result.hpp"

namespace nodeport {

class Abi1Migration {
public:
    // Reads the pins of `dir` without changing them (the caller holds the
    // pin-dir lock; `dir` outlives the migration), whose node_config records
    // map ABI `abi` (0: none). nullopt: nothing to migrate (no pins, or this ABI).
    // An error: pins of ABI 1 that cannot be migrated, or of an unknown ABI.
    static Result<std::optional<Abi1Migration>> plan(const PinDir& dir, unsigned abi);

    std::size_t entries() const { return entries_.size(); }

    // Moves the old `ports` pin aside, so the new objects create their own.
    Result<void> set_aside();
    // Writes every converted entry into the new `ports` map.
    Result<void> fill(int ports_fd) const;
    // Puts the old pin back, for a load that fails before any program is
    // switched: the node is as it was.
    void undo();

    // Removes the set-aside pin once no program of this build's ABI can need
    // it: after a successful load, or at the next load after a crash.
    static Result<void> remove_leftover(const PinDir& dir);

private:
    Abi1Migration(const PinDir& dir, bool resumed, std::vector<std::pair<np_port_key, np_backend>> entries)
        : dir_(&dir), resumed_(resumed), entries_(std::move(entries)) {}

    const PinDir* dir_;
    bool resumed_;  // a crashed migration had already set the old pin aside
    bool set_aside_ = false;
    std::vector<std::pair<np_port_key, np_backend>> entries_;
};

}  // namespace nodeport
