// Moving the flow tables of map ABI 1 and 2 (the same layout) to ABI 3's
// during `load`, so that an upgrade keeps established external connections
// without a reset (abi1_migration.hpp moves `ports` from ABI 1).
//
// ABI 3 widened the flow key and value (16-byte addresses, each side's TCP
// sequence numbers), moved handshakes to `half_open_flows` and dropped
// `closed_flows`. The old programs hold their maps by reference, not by
// path, so the steps are: check the old pins (nothing changed yet), move the
// changed ones aside (flows, udp_flows and node_udp, as NAME_abi2), let the
// new objects create the new maps, copy every live entry over right before
// the new TC programs are attached (everything slow is done by then), switch
// the ingress programs, copy what the old ones recorded meanwhile, switch the
// egress programs, copy what they recorded (entries the new programs wrote
// win), then remove the old pins (load.cpp says why in that order). A
// migrated TCP flow has no sequence numbers yet: each side's are learnt from
// its next packet, and until both are known an RST is taken as conntrack's
// be_liberal would. Closed flows (`closed_flows`) are not copied: a late
// packet of a closed connection finds no flow, as after any lost flow (a
// plain ACK is picked up, a retransmitted FIN reaches the node).
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string_view>

#include "base/map_catalog.hpp"
#include "nodeport/pin_dir.hpp"
#include "nodeport/result.hpp"

namespace nodeport {

class FlowMigration {
public:
    // The pins an ABI 2 load leaves that this build does not create.
    static constexpr auto leftovers = map_catalog::abi2_leftovers;
    // True for the maps whose layout ABI 3 changed (checked by plan, not by
    // the caller's check of the others).
    static bool moves(std::string_view map_name);

    // Reads the pins of `dir` without changing them (the caller holds the
    // pin-dir lock; `dir` outlives the migration), whose node_config records
    // map ABI `abi` (0: none). nullopt: nothing to migrate (no pins, or ABI 3). Pins of
    // ABI 1 or 2 whose flow maps are not that layout are an error.
    static Result<std::optional<FlowMigration>> plan(const PinDir& dir, unsigned abi);

    // Moves the changed pins aside, so the new objects create their own.
    Result<void> set_aside();
    // Copies the old tables' entries last written at or after `since_ns`
    // (the programs' clock, bpf_clock.hpp) into the new maps, keeping any
    // entry already there; returns how many TCP and UDP flows were copied.
    // A second copy passes the first one's start: an older entry is in the
    // new maps already, or the new programs ended it since, and it must not
    // come back.
    Result<std::size_t> copy(int flows_fd, int half_open_fd, int udp_flows_fd, int node_udp_fd,
                             std::uint64_t since_ns) const;
    // Puts the old pins back, for a load that fails before any program is
    // switched: the node is as it was.
    void undo();

    // Removes the set-aside pins and `closed_flows` once no program of this
    // build's ABI can need them: after a successful load, or at the next
    // load or unload after a crash.
    static Result<void> remove_leftover(const PinDir& dir);

private:
    FlowMigration(const PinDir& dir, bool resumed) : dir_(&dir), resumed_(resumed) {}

    const PinDir* dir_;
    bool resumed_;  // a crashed migration had already set the old pins aside
    bool set_aside_ = false;
};

}  // namespace nodeport
