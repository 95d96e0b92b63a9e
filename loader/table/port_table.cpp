#include "nodeport/port_table.hpp"

#include <bpf/bpf.h>
#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>

#include "base/backend_key.hpp"
#include "base/bpf_clock.hpp"
#include "base/map_keys.hpp"
#include "base/pin_dir.hpp"
#include "base/port_key.hpp"
#include "base/test_hook.hpp"
#include "nodeport/abi.h"

namespace nodeport {
namespace {

constexpr Family families[] = {Family::ipv4, Family::ipv6};

np_backend to_value(const Mapping& mapping) {
    np_backend value{};
    store_backend_addr(value, mapping.backend.addr);
    value.port = mapping.backend.port;
    value.owner_id = owner_id(mapping.owner);
    std::memcpy(value.owner, mapping.owner.data(), std::min(mapping.owner.size(), sizeof value.owner - 1));
    return value;
}

std::string owner_of(const np_backend& value) {
    return std::string(value.owner, strnlen(value.owner, sizeof value.owner));
}

Mapping to_mapping(const np_port_key& key, const np_backend& value) {
    return Mapping{from_port_key(key).node_port, Backend{backend_addr(value), value.port}, owner_of(value)};
}

// Sorted by node port, then family (IPv4 first); each entry once (a walk
// restarted by a delete gives a key twice).
void sort_mappings(std::vector<Mapping>& mappings) {
    std::ranges::sort(mappings, {}, key_of);
    auto dup = std::ranges::unique(mappings, {}, key_of);
    mappings.erase(dup.begin(), dup.end());
}

// The library is the trust boundary: a Mapping built by hand (a C or Go
// caller) is checked as the CLI's parsers check theirs. EINVAL, nothing changed.
std::unexpected<Error> bad_input(const InputError& error) {
    return input_error(error.field, error.message);
}

// `id`'s records in one `replaced_backends` map (key type Key), of `only`
// when given, forgotten as they are read.
template <class Key>
std::vector<std::pair<NodePort, Backend>> take_records(const Fd& map, const char* name, std::uint64_t id,
                                                       std::optional<NodePort> only,
                                                       std::pair<NodePort, Backend> (*from_key)(const Key&)) {
    std::vector<std::pair<NodePort, Backend>> out;
    if (!map.valid())
        return out;
    auto keys = map_keys<Key>(map.get(), name);
    if (!keys)
        return out;
    for (const auto& key : *keys) {
        np_replaced_backend value{};
        if (bpf_map_lookup_elem(map.get(), &key, &value) != 0 || value.owner_id != id)
            continue;
        auto record = from_key(key);
        if (only && record.first != *only)
            continue;
        bpf_map_delete_elem(map.get(), &key);
        out.push_back(record);
    }
    return out;
}

Result<void> check_owner(std::string_view owner) {
    if (auto ok = parse_owner(owner); !ok)
        return bad_input(ok.error());
    return {};
}

Result<void> check_desired(const std::vector<Mapping>& desired, std::optional<Family> family) {
    std::vector<MappingKey> keys;
    keys.reserve(desired.size());
    for (std::size_t i = 0; i < desired.size(); ++i) {
        if (auto ok = check_mapping(desired[i]); !ok)
            return bad_input(InputError{fmt::format("entry {}: {}", i, ok.error().field), ok.error().message});
        if (family && desired[i].family() != *family)
            return bad_input(InputError{fmt::format("entry {}: backend address", i),
                                        fmt::format("'{}' is not {}", to_string(desired[i].backend.addr),
                                                    *family == Family::ipv4 ? "IPv4" : "IPv6")});
        keys.push_back(key_of(desired[i]));
    }
    std::ranges::sort(keys);
    if (auto dup = std::ranges::adjacent_find(keys); dup != keys.end())
        return bad_input(InputError{"node port", to_string(*dup) + " is listed twice"});
    return {};
}

}  // namespace

// The process-wide mutex for threads sharing this PortTable, then the
// flock of the pin directory for everyone else; both within lock_wait_.
class PortTable::WriteLock {
public:
    static Result<WriteLock> take(const PortTable& table) {
        const auto start = std::chrono::steady_clock::now();
        std::unique_lock guard(*table.mutex_, std::defer_lock);
        // Free almost always: then the flock gets the whole wait (and its
        // error names it); after waiting for a thread, what is left.
        auto left = table.lock_wait_;
        if (!guard.try_lock()) {
            if (!guard.try_lock_for(table.lock_wait_))
                return plain_error(fmt::format("another thread of this process holds the port table's write lock "
                                               "for more than {:g} s",
                                               std::chrono::duration<double>(table.lock_wait_).count()));
            left = std::max(std::chrono::milliseconds{0},
                            std::chrono::duration_cast<std::chrono::milliseconds>(
                                table.lock_wait_ - (std::chrono::steady_clock::now() - start)));
        }
        auto lock = pin_dir::Lock::take(table.dir_.fd(), left);
        if (!lock)
            return std::unexpected(lock.error());
        if (auto ok = table.check_abi(); !ok)
            return std::unexpected(ok.error());
        return WriteLock(std::move(guard), std::move(*lock));
    }

private:
    WriteLock(std::unique_lock<std::timed_mutex> guard, pin_dir::Lock lock)
        : guard_(std::move(guard)), lock_(std::move(lock)) {}
    std::unique_lock<std::timed_mutex> guard_;
    pin_dir::Lock lock_;
};

PortTable::PortTable(PinDir dir, Fd map, Fd config, Fd counters, Fd replaced, Fd replaced6, SocketEnder ender,
                     std::chrono::milliseconds lock_wait)
    : dir_(std::move(dir)),
      map_(std::move(map)),
      config_(std::move(config)),
      counters_(std::move(counters)),
      replaced_(std::move(replaced)),
      replaced6_(std::move(replaced6)),
      ender_(std::move(ender)),
      lock_wait_(lock_wait),
      mutex_(std::make_unique<std::timed_mutex>()) {}

Result<PortTable> PortTable::open(const std::filesystem::path& pin_dir, std::chrono::milliseconds lock_wait) {
    return pin_dir::with_opened(pin_dir, [&](const PinDir& dir) { return open(dir, lock_wait); });
}

Result<PortTable> PortTable::open(const PinDir& pin_dir, std::chrono::milliseconds lock_wait) {
    auto dir = pin_dir.reopen();
    if (!dir)
        return std::unexpected(dir.error());
    auto map = dir->map("ports");
    if (!map)
        return std::unexpected(map.error());
    auto config = dir->map("node_config");
    if (!config)
        return std::unexpected(config.error());
    // Absent while programs of a build without counters are loaded: then
    // there is nothing to reset.
    auto counters = dir->map("port_counters");
    // Absent with pins of an older load, or without the socket iterators
    // (Linux < 6.5): then nothing is recorded for drain. The IPv6 one may
    // be absent alone: pins of a load before it.
    auto replaced = dir->map("replaced_backends");
    auto replaced6 = dir->map("replaced_backends6");
    auto ender = SocketEnder::open(*dir);
    return PortTable(std::move(*dir), std::move(*map), std::move(*config), counters ? std::move(*counters) : Fd{},
                     replaced ? std::move(*replaced) : Fd{}, replaced6 ? std::move(*replaced6) : Fd{},
                     std::move(ender), lock_wait);
}

// The table was opened for this build's map ABI; a `load` of another build
// may have taken the maps over since, in place (ABI 3 pins are adopted as
// ABI 4's), so a long-running writer checks again before each write: it
// must not write entries the programs now read another way.
Result<void> PortTable::check_abi() const {
    __u32 zero = 0;
    np_config cfg{};
    if (bpf_map_lookup_elem(config_.get(), &zero, &cfg) != 0)
        return errno_error(errno, "read " + dir_.shown("node_config").string());
    if (cfg.abi_version != NODEPORT_ABI_VERSION)
        return plain_error(fmt::format("the maps at {} were taken over by a nodeport of map ABI v{} since this table "
                                       "was opened (this one uses v{}): open it again with that nodeport's library",
                                       dir_.path().string(), cfg.abi_version, NODEPORT_ABI_VERSION),
                           ErrorKind::abi_mismatch);
    return {};
}

// A port's counters start from zero with each owner: the programs create
// the entry again at the next translation. Best effort: the mapping has
// changed already, and a counter left over is not worth failing the change
// for. Done after the `ports` write, so a translation in between is counted
// in the entry that is then dropped. What the counters cannot tell apart:
// the packets of the old owner's established TCP connections, which keep
// their backend across a remap, go on counting under the port.
void PortTable::forget_counters(const MappingKey& mapping_key) {
    if (!counters_.valid())
        return;
    np_port_key key = port_key(mapping_key);
    bpf_map_delete_elem(counters_.get(), &key);
}

// Best effort, as forget_counters: a record missing only makes a later
// `del --owner --drain` wait for less.
void PortTable::remember_replaced(const std::vector<Mapping>& replaced) {
    if (!replaced_.valid() && !replaced6_.valid())
        return;
    const __u64 now = bpf_clock_ns();
    for (const auto& m : replaced) {
        const np_replaced_backend value{owner_id(m.owner), now};
        if (auto key = backend_key(m.node_port, m.backend); key && replaced_.valid())
            bpf_map_update_elem(replaced_.get(), &*key, &value, BPF_ANY);
        else if (auto key6 = backend_key6(m.node_port, m.backend); key6 && replaced6_.valid())
            bpf_map_update_elem(replaced6_.get(), &*key6, &value, BPF_ANY);
    }
}

std::vector<Mapping> PortTable::take_replaced(std::string_view owner, std::optional<NodePort> only) {
    std::vector<Mapping> out;
    const std::uint64_t id = owner_id(owner);
    auto records = take_records(replaced_, "replaced_backends", id, only, from_backend_key);
    auto records6 = take_records(replaced6_, "replaced_backends6", id, only, from_backend_key6);
    records.insert(records.end(), records6.begin(), records6.end());
    for (const auto& [node_port, backend] : records) {
        auto now = get(node_port);
        if (now && std::ranges::any_of(*now, [&](const Mapping& m) { return m.backend == backend; }))
            continue;  // given back: not replaced any more
        out.push_back(Mapping{node_port, backend, std::string(owner)});
    }
    std::ranges::sort(out, {}, [](const Mapping& m) { return std::tuple(m.node_port, m.backend); });
    auto dup = std::ranges::unique(out);  // a walk restarted by a delete gives a key twice
    out.erase(dup.begin(), dup.end());
    return out;
}

Result<ConnectionCount> PortTable::connections() const { return count_connections(dir_); }

Result<DrainResult> PortTable::drain(const Backend& backend, std::chrono::milliseconds timeout,
                                     const DrainProgress& progress) const {
    return drain_backends(dir_, {backend}, timeout, progress);
}

Result<DrainResult> PortTable::drain(const std::vector<Backend>& backends, std::chrono::milliseconds timeout,
                                     const DrainProgress& progress) const {
    return drain_backends(dir_, backends, timeout, progress);
}

Result<void> PortTable::put(const Mapping& mapping) {
    np_port_key key = port_key(key_of(mapping));
    np_backend value = to_value(mapping);
    if (bpf_map_update_elem(map_.get(), &key, &value, BPF_ANY) != 0)
        return errno_error(errno, "set " + to_string(key_of(mapping)));
    return {};
}

// Connected UDP sockets always follow a remap: there is no connection to
// keep, and the old sandbox is usually gone. TCP only when asked.
std::vector<SocketEnder::Target> PortTable::to_end(std::vector<SocketEnder::Target> replaced, ChangeOptions options) {
    if (!options.terminate)
        std::erase_if(replaced, [](const auto& t) { return t.node_port.proto == Proto::tcp; });
    return replaced;
}

EndedSockets PortTable::end_sockets(const std::vector<SocketEnder::Target>& targets, std::string not_recorded) {
    EndedSockets ended = ender_.finish(map_.get(), targets);
    if (!not_recorded.empty())
        ended.not_checked = std::move(not_recorded);
    return ended;
}

Result<SetResult> PortTable::set(const Mapping& mapping, ChangeOptions options) {
    if (auto ok = check_mapping(mapping); !ok)
        return bad_input(ok.error());
    auto lock = WriteLock::take(*this);
    if (!lock)
        return std::unexpected(lock.error());
    if (auto ok = test_hook("set:locked"); !ok)
        return std::unexpected(ok.error());
    np_port_key key = port_key(key_of(mapping));
    np_backend old{};
    bool had = bpf_map_lookup_elem(map_.get(), &key, &old) == 0;
    if (!had && errno != ENOENT)
        return errno_error(errno, "look up " + to_string(key_of(mapping)));
    SetResult result;
    if (had && to_mapping(key, old).backend != mapping.backend)
        result.replaced = to_mapping(key, old).backend;
    std::vector<SocketEnder::Target> targets;
    if (result.replaced)
        targets = to_end({{mapping.node_port, *result.replaced}}, options);
    std::string not_recorded = ender_.record(targets);
    if (result.replaced)
        remember_replaced({to_mapping(key, old)});
    if (auto ok = put(mapping); !ok)
        return std::unexpected(ok.error());
    if (!had || owner_of(old) != mapping.owner)
        forget_counters(key_of(mapping));
    if (auto ok = test_hook("set:written"); !ok)
        return std::unexpected(ok.error());
    result.ended = end_sockets(targets, std::move(not_recorded));
    return result;
}

Result<RemoveResult> PortTable::remove(NodePort node_port, std::optional<std::string_view> owner,
                                       ChangeOptions options) {
    if (owner)
        if (auto ok = check_owner(*owner); !ok)
            return std::unexpected(ok.error());
    auto lock = WriteLock::take(*this);
    if (!lock)
        return std::unexpected(lock.error());
    RemoveResult result;
    // Taken before the delete, as in remove_owner: a backend given back to
    // the owner is `removed`, not replaced earlier too.
    if (owner)
        result.replaced_earlier = take_replaced(*owner, node_port);
    // Both families' entries: those of `owner` (all, without one) go.
    std::vector<Mapping> held;
    for (Family family : families) {
        np_port_key key = port_key(node_port, family);
        np_backend value{};
        if (bpf_map_lookup_elem(map_.get(), &key, &value) != 0) {
            if (errno != ENOENT)
                return errno_error(errno, "look up " + to_string(MappingKey{node_port, family}));
            continue;
        }
        if (owner && (value.owner_id != owner_id(*owner) || owner_of(value) != *owner)) {
            if (result.holder.empty())
                result.holder = owner_of(value);
            result.outcome = RemoveOutcome::held_by_other;
            continue;
        }
        held.push_back(to_mapping(key, value));
    }
    if (held.empty()) {
        result.ended = end_sockets({}, {});
        return result;
    }
    std::vector<SocketEnder::Target> replaced;
    for (const auto& m : held)
        replaced.push_back({m.node_port, m.backend});
    auto targets = to_end(std::move(replaced), options);
    std::string not_recorded = ender_.record(targets);
    remember_replaced(held);
    for (const auto& m : held) {
        np_port_key key = port_key(key_of(m));
        if (bpf_map_delete_elem(map_.get(), &key) != 0 && errno != ENOENT)
            return errno_error(errno, "delete " + to_string(key_of(m)));
        forget_counters(key_of(m));
    }
    result.outcome = RemoveOutcome::removed;
    result.holder.clear();
    result.removed = std::move(held);
    result.ended = end_sockets(targets, std::move(not_recorded));
    return result;
}

Result<RemoveOwnerResult> PortTable::remove_owner(std::string_view owner, ChangeOptions options) {
    if (auto ok = check_owner(owner); !ok)
        return std::unexpected(ok.error());
    auto lock = WriteLock::take(*this);
    if (!lock)
        return std::unexpected(lock.error());
    auto keys = map_keys<np_port_key>(map_.get(), "ports");
    if (!keys)
        return std::unexpected(keys.error());
    const std::uint64_t id = owner_id(owner);
    // Each entry is read and checked under the write lock: no writer can
    // hand a port to another owner between the check and the delete.
    std::vector<Mapping> held;
    for (const auto& key : *keys) {
        np_backend value{};
        if (bpf_map_lookup_elem(map_.get(), &key, &value) != 0) {
            if (errno == ENOENT)
                continue;
            return errno_error(errno, "read ports map");
        }
        if (value.owner_id == id && owner_of(value) == owner)
            held.push_back(to_mapping(key, value));
    }
    std::vector<SocketEnder::Target> replaced;
    for (const auto& m : held)
        replaced.push_back({m.node_port, m.backend});
    auto targets = to_end(std::move(replaced), options);
    std::string not_recorded = ender_.record(targets);
    RemoveOwnerResult result;
    // Taken while the owner still holds its ports: one it was given back
    // (replaced, then set to it again) is in `removed`, not here too.
    result.replaced_earlier = take_replaced(owner);
    for (auto& m : held) {
        np_port_key key = port_key(key_of(m));
        if (bpf_map_delete_elem(map_.get(), &key) != 0) {
            if (errno == ENOENT)
                continue;
            return errno_error(errno, "delete " + to_string(key_of(m)));
        }
        forget_counters(key_of(m));
        result.removed.push_back(std::move(m));
    }
    sort_mappings(result.removed);
    result.ended = end_sockets(targets, std::move(not_recorded));
    return result;
}

Result<std::vector<Mapping>> PortTable::get(NodePort node_port) const {
    std::vector<Mapping> out;
    for (Family family : families) {
        np_port_key key = port_key(node_port, family);
        np_backend value{};
        if (bpf_map_lookup_elem(map_.get(), &key, &value) == 0)
            out.push_back(to_mapping(key, value));
        else if (errno != ENOENT)
            return errno_error(errno, "look up " + to_string(MappingKey{node_port, family}));
    }
    return out;
}

Result<std::vector<Mapping>> PortTable::list() const {
    auto keys = map_keys<np_port_key>(map_.get(), "ports");
    if (!keys)
        return std::unexpected(keys.error());
    std::vector<Mapping> out;
    for (const auto& key : *keys) {
        np_backend value{};
        if (bpf_map_lookup_elem(map_.get(), &key, &value) == 0)
            out.push_back(to_mapping(key, value));
        else if (errno != ENOENT)  // ENOENT: removed since the walk
            return errno_error(errno, "read ports map");
    }
    sort_mappings(out);
    return out;
}

Result<std::size_t> PortTable::flush() {
    auto lock = WriteLock::take(*this);
    if (!lock)
        return std::unexpected(lock.error());
    auto keys = map_keys<np_port_key>(map_.get(), "ports");
    if (!keys)
        return std::unexpected(keys.error());
    std::size_t removed = 0;
    for (const auto& key : *keys) {
        if (bpf_map_delete_elem(map_.get(), &key) == 0) {
            ++removed;
            forget_counters(from_port_key(key));
        } else if (errno != ENOENT)
            return errno_error(errno, "flush ports map");
    }
    (void)end_sockets({}, {});
    return removed;
}

// The table's mappings a sync compares: all, or those of one family.
Result<std::vector<Mapping>> PortTable::current(std::optional<Family> family) const {
    auto all = list();
    if (all && family)
        std::erase_if(*all, [&](const Mapping& m) { return m.family() != *family; });
    return all;
}

Result<SyncPlan> PortTable::plan(const std::vector<Mapping>& desired, std::optional<Family> family) const {
    if (auto ok = check_desired(desired, family); !ok)
        return std::unexpected(ok.error());
    auto now = current(family);
    if (!now)
        return std::unexpected(now.error());
    return plan_sync(*now, desired);
}

Result<SyncResult> PortTable::sync(const std::vector<Mapping>& desired, ChangeOptions options,
                                   std::optional<Family> family) {
    if (auto ok = check_desired(desired, family); !ok)
        return std::unexpected(ok.error());
    auto lock = WriteLock::take(*this);
    if (!lock)
        return std::unexpected(lock.error());
    auto current = this->current(family);
    if (!current)
        return std::unexpected(current.error());
    SyncPlan plan = plan_sync(*current, desired);
    std::map<MappingKey, Mapping> before;
    for (const auto& m : *current)
        before.emplace(key_of(m), m);

    SyncResult result{plan.add.size(), plan.update.size(), plan.remove.size(), plan.unchanged, {}};
    // Recorded before the first change: a sync killed anywhere after it
    // leaves the walk to the next writer.
    std::vector<Mapping> replaced;
    for (const auto& m : plan.update)
        if (const auto& old = before.at(key_of(m)); old.backend != m.backend)
            replaced.push_back(old);
    for (const auto& m : plan.remove)
        replaced.push_back(m);
    std::vector<SocketEnder::Target> all_targets;
    for (const auto& m : replaced)
        all_targets.push_back({m.node_port, m.backend});
    auto targets = to_end(std::move(all_targets), options);
    std::string not_recorded = ender_.record(targets);
    remember_replaced(replaced);
    auto remove_extras = [&]() -> Result<void> {
        for (const auto& m : plan.remove) {
            np_port_key key = port_key(key_of(m));
            if (bpf_map_delete_elem(map_.get(), &key) != 0 && errno != ENOENT)
                return errno_error(errno, "sync: delete " + to_string(key_of(m)));
            forget_counters(key_of(m));
        }
        return {};
    };
    // Removals last, so a port that stays mapped is never missing; but first
    // when the table cannot hold what is there and what comes together (both
    // families share its NP_MAX_PORTS entries): they are not wanted either
    // way, and adds that fail for room would fail again at every retry.
    const bool removals_first = current->size() + plan.add.size() > NP_MAX_PORTS;
    if (removals_first)
        if (auto ok = remove_extras(); !ok)
            return std::unexpected(ok.error());
    for (const auto* group : {&plan.add, &plan.update})
        for (const auto& m : *group) {
            if (auto ok = put(m); !ok)
                return std::unexpected(ok.error());
            if (auto old = before.find(key_of(m)); old == before.end() || old->second.owner != m.owner)
                forget_counters(key_of(m));
        }
    if (auto ok = test_hook("sync:added"); !ok)
        return std::unexpected(ok.error());
    if (!removals_first)
        if (auto ok = remove_extras(); !ok)
            return std::unexpected(ok.error());
    result.ended = end_sockets(targets, std::move(not_recorded));
    return result;
}

}  // namespace nodeport
