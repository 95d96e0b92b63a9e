// The `ports` map of a loaded nodeport: one backend per (protocol, node port,
// family): a node port may lead to an IPv4 backend, an IPv6 one, or both.
// Writers serialize on an flock of the pin directory, so several processes
// (CLI calls, a controller) and threads lose no update and an owner-checked
// remove never deletes an entry written after its check. Every write also
// finishes the socket walk of a write that was killed before it ended the
// node's sockets to what it replaced (sock_end.hpp).
#pragma once

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "nodeport/connections.hpp"
#include "nodeport/fd.hpp"
#include "nodeport/lock_wait.hpp"
#include "nodeport/pin_dir.hpp"
#include "nodeport/sock_end.hpp"
#include "nodeport/sync.hpp"
#include "nodeport/result.hpp"
#include "nodeport/types.hpp"

// Exported from libnodeport.so (the rest of the library is hidden).
#pragma GCC visibility push(default)

namespace nodeport {

struct ChangeOptions {
    // Also end the node's TCP connections to the replaced backend, for
    // callers that know the old sandbox is gone. Established TCP otherwise
    // keeps its sandbox across a remap.
    bool terminate = false;
};

struct SetResult {
    std::optional<Backend> replaced;  // the port's earlier backend of the same family, when the set changed it
    EndedSockets ended;
};

struct SyncResult {
    std::size_t added = 0;
    std::size_t updated = 0;
    std::size_t removed = 0;
    std::size_t unchanged = 0;
    EndedSockets ended;  // node sockets of replaced or removed backends (see set)
};

enum class RemoveOutcome {
    removed,        // an entry was there (with the given owner, if one was given) and is gone
    not_mapped,     // nothing was mapped on that node port
    held_by_other,  // another owner holds the port (both families of it) now; its entries were left alone
};

struct RemoveResult {
    RemoveOutcome outcome = RemoveOutcome::not_mapped;
    std::string holder;  // the owner that holds the port, for held_by_other
    EndedSockets ended;  // for removed
    // The mappings removed (one per family), as read under the write lock
    // (what `del --drain` waits for); for an owner-checked remove, the
    // owner's backends of this port an earlier set or sync replaced (a
    // redeploy's new sandbox took the port first, so the outcome is
    // held_by_other), as remove_owner gives them.
    std::vector<Mapping> removed;
    std::vector<Mapping> replaced_earlier;
};

struct RemoveOwnerResult {
    std::vector<Mapping> removed;  // what the owner held, sorted by protocol, port and family
    EndedSockets ended;
    // Backends of the owner that an earlier set or sync had already replaced
    // (a redeploy's new sandbox took the port first), as recorded then:
    // what drain still has to wait for. Sorted like `removed`.
    std::vector<Mapping> replaced_earlier;
};

class PortTable {
public:
    // Opens the pinned map of a loaded nodeport. Fails when it is not loaded.
    // A writer (set, remove, flush, sync) waits at most `lock_wait` for the
    // write lock, then fails naming the holder (pin_dir::Lock::take).
    static Result<PortTable> open(const std::filesystem::path& pin_dir,
                                  std::chrono::milliseconds lock_wait = default_lock_wait);
    // The same for a directory the caller opened (the table keeps a handle
    // of its own).
    static Result<PortTable> open(const PinDir& pin_dir, std::chrono::milliseconds lock_wait = default_lock_wait);

    // Every write checks its input as the CLI's parsers do (check_mapping,
    // parse_owner) and refuses bad input with EINVAL before anything changes.
    //
    // Maps the node port to the backend, replacing whatever was there. When
    // that changes the backend, the node's sockets translated to the old one
    // are ended (see EndedSockets). External flows need nothing: a UDP flow
    // follows the new mapping with its next datagram, a TCP connection keeps
    // its backend until it closes.
    Result<SetResult> set(const Mapping& mapping, ChangeOptions options = {});
    // Unmaps the node port, both families; with an owner, only what that
    // owner holds. The node's sockets translated to a removed backend are
    // ended as for set.
    Result<RemoveResult> remove(NodePort node_port, std::optional<std::string_view> owner = std::nullopt,
                                ChangeOptions options = {});
    // Unmaps every port the owner holds, each checked under the write lock
    // (a port handed to another owner meanwhile stays). None held: not an error.
    Result<RemoveOwnerResult> remove_owner(std::string_view owner, ChangeOptions options = {});
    // The node port's mappings: none, or one per family (IPv4 first).
    Result<std::vector<Mapping>> get(NodePort node_port) const;
    // Every mapping, sorted by protocol, port and family.
    Result<std::vector<Mapping>> list() const;
    // Removes every mapping; returns how many there were. (It ends no
    // socket of its own; a walk an interrupted write left is finished.)
    Result<std::size_t> flush();
    // The live connections nodeport translated, per backend (connections.hpp).
    Result<ConnectionCount> connections() const;
    // Waits until no connection nodeport translated reaches `backend`, or
    // `timeout` passes (drain_backends in connections.hpp). Takes no lock.
    Result<DrainResult> drain(const Backend& backend, std::chrono::milliseconds timeout,
                              const DrainProgress& progress = {}) const;
    Result<DrainResult> drain(const std::vector<Backend>& backends, std::chrono::milliseconds timeout,
                              const DrainProgress& progress = {}) const;
    // What sync(desired, family) would do now.
    Result<SyncPlan> plan(const std::vector<Mapping>& desired, std::optional<Family> family = std::nullopt) const;
    // Makes the table equal to `desired` (each node port at most once per
    // family, as parse_mappings_json guarantees): adds and overwrites first, removals
    // last, all under the write lock, so a port that stays mapped is never
    // missing and no other writer interleaves. A failure part-way leaves the
    // table between the two states; running sync again converges. With a
    // family, only that family's entries are compared and changed (and
    // `desired` must hold no other): the C ABI's nodeport_sync, whose
    // mappings are IPv4, leaves the IPv6 ones alone.
    Result<SyncResult> sync(const std::vector<Mapping>& desired, ChangeOptions options = {},
                            std::optional<Family> family = std::nullopt);

private:
    PortTable(PinDir dir, Fd map, Fd config, Fd counters, Fd replaced, Fd replaced6, SocketEnder ender,
              std::chrono::milliseconds lock_wait);
    class WriteLock;
    Result<std::vector<Mapping>> current(std::optional<Family> family) const;
    // Refuses a write once another build's `load` took the maps over.
    Result<void> check_abi() const;
    // Writes one entry; the caller holds the write lock.
    Result<void> put(const Mapping& mapping);
    // Drops the port's counters (a new owner, or unmapped); the caller holds the write lock.
    void forget_counters(const MappingKey& key);
    // Records what a write replaced, and whose it was, for a later
    // remove_owner (`replaced_backends`, IPv6 backends in `replaced_backends6`);
    // the caller holds the write lock.
    void remember_replaced(const std::vector<Mapping>& replaced);
    // The owner's records, forgotten as they are read; those whose port
    // leads to the backend again are left out.
    // `owner`'s records (of `node_port` only, when given), forgotten.
    std::vector<Mapping> take_replaced(std::string_view owner, std::optional<NodePort> node_port = std::nullopt);
    // Of the backends a write replaces, those whose node sockets it ends: UDP
    // always, TCP when asked. The write records them (SocketEnder::record)
    // before it changes the map.
    static std::vector<SocketEnder::Target> to_end(std::vector<SocketEnder::Target> replaced,
                                                   ChangeOptions options);
    // After the write: ends the sockets of `targets` and of whatever an
    // interrupted write left recorded (SocketEnder::finish). `not_recorded`:
    // why `targets` could not be recorded, if they could not.
    EndedSockets end_sockets(const std::vector<SocketEnder::Target>& targets, std::string not_recorded);

    PinDir dir_;  // flock'ed by writers
    Fd map_;
    Fd config_;  // `node_config`: its map ABI, checked again by every write under the lock
    Fd counters_;  // `port_counters`; invalid when the loaded programs have none
    Fd replaced_;  // `replaced_backends`; invalid without the socket iterators' object
    Fd replaced6_;  // `replaced_backends6`; invalid also with pins of a load before it (IPv6 not recorded)
    SocketEnder ender_;
    std::chrono::milliseconds lock_wait_;
    std::unique_ptr<std::timed_mutex> mutex_;  // threads sharing one PortTable share dir_'s flock
};

}  // namespace nodeport

#pragma GCC visibility pop
