#include "datapath/flow_migration.hpp"

#include <bpf/bpf.h>
#include <netinet/in.h>
#include <fmt/format.h>

#include <cerrno>
#include <vector>

#include "base/map_catalog.hpp"
#include "base/map_keys.hpp"
#include "base/pin_dir.hpp"
#include "nodeport/abi.h"

namespace nodeport {
namespace {

// The flow key and value of map ABI 1 and 2 (include/nodeport/abi.h before ABI 3).
struct V2FlowKey {
    __be32 client_addr_be;
    __be32 peer_addr_be;
    __be16 client_port_be;
    __be16 peer_port_be;
    __u8 proto;
    __u8 dir;
    __u8 pad[2];
};

struct V2Flow {
    __be32 addr_be;
    __be16 port_be;
    __u8 state;
    __u8 fin_seen;
    __u64 last_seen_ns;
};

static_assert(sizeof(V2FlowKey) == 16 && sizeof(V2Flow) == 16, "map ABI 2 flow layout");

constexpr __u8 v2_time_wait = 4;  // ABI 2's NP_FLOW_TIME_WAIT, in `closed_flows` only

// The maps whose layout ABI 3 changed, with their old key and value sizes.
struct Moved {
    std::string_view name;
    std::string_view aside;
    bpf_map_type type;
    unsigned key_size, value_size;
};

constexpr std::array<Moved, 3> moved = {{
    {"flows", "flows_abi2", BPF_MAP_TYPE_LRU_HASH, sizeof(V2FlowKey), sizeof(V2Flow)},
    {"udp_flows", "udp_flows_abi2", BPF_MAP_TYPE_LRU_HASH, sizeof(V2FlowKey), sizeof(V2Flow)},
    {"node_udp", "node_udp_abi2", BPF_MAP_TYPE_LRU_HASH, sizeof(V2FlowKey), sizeof(__u64)},
}};

np_flow_key convert(const V2FlowKey& k) {
    np_flow_key key{};
    key.client_addr_be[0] = k.client_addr_be;
    key.peer_addr_be[0] = k.peer_addr_be;
    key.client_port_be = k.client_port_be;
    key.peer_port_be = k.peer_port_be;
    key.proto = k.proto;
    key.dir = k.dir;
    key.family = NP_FAMILY_IPV4;
    return key;
}

// Opens a set-aside pin; a map the old nodeport never had is no error.
Result<std::optional<Fd>> open_aside(const PinDir& dir, std::string_view aside) {
    if (!dir.exists(aside))
        return std::nullopt;
    Fd fd(dir.obj_get(aside));
    if (!fd.valid())
        return errno_error(errno, "open pinned map " + dir.shown(aside).string());
    return std::optional<Fd>(std::move(fd));
}

template <class Value, class Fn>
Result<void> for_each_old(const PinDir& dir, std::string_view aside, Fn&& fn) {
    auto map = open_aside(dir, aside);
    if (!map)
        return std::unexpected(map.error());
    if (!*map)
        return {};
    auto keys = map_keys<V2FlowKey>((*map)->get(), dir.shown(aside).string());
    if (!keys)
        return std::unexpected(keys.error());
    for (const auto& key : *keys)
        if (Value value{}; bpf_map_lookup_elem((*map)->get(), &key, &value) == 0)
            if (auto ok = fn(key, value); !ok)
                return ok;
    return {};
}

// Writes an entry unless there is one (the new programs', or an earlier
// copy's); true when it wrote.
Result<bool> put_new(int fd, const void* key, const void* value, std::string_view map) {
    if (bpf_map_update_elem(fd, key, value, BPF_NOEXIST) == 0)
        return true;
    if (errno == EEXIST)
        return false;
    return errno_error(errno, fmt::format("copy a flow into {}", map));
}

Result<void> done(const Result<bool>& put) {
    if (!put)
        return std::unexpected(put.error());
    return {};
}

}  // namespace

bool FlowMigration::moves(std::string_view map_name) {
    if (map_name == "closed_flows")
        return true;
    for (const auto& m : moved)
        if (m.name == map_name)
            return true;
    return false;
}

Result<std::optional<FlowMigration>> FlowMigration::plan(const PinDir& dir, unsigned abi) {
    if (abi != 1 && abi != 2)
        return std::nullopt;
    // A migration that crashed after setting the old pins aside resumes from them.
    bool resumed = false;
    for (const auto& m : moved) {
        const bool aside = dir.exists(m.aside);
        resumed = resumed || aside;
        const std::string_view source_pin = aside ? m.aside : m.name;
        const auto source = dir.shown(source_pin);
        if (!aside && !dir.exists(source_pin))
            continue;
        Fd fd(dir.obj_get(source_pin));
        if (!fd.valid())
            return errno_error(errno, "open pinned map " + source.string());
        if (auto ok = pin_dir::check_shape(fd.get(), source, fmt::format("{} (map ABI {})", m.name, abi), m.type,
                                           m.key_size, m.value_size);
            !ok)
            return std::unexpected(ok.error());
    }
    return FlowMigration(dir, resumed);
}

Result<void> FlowMigration::set_aside() {
    for (const auto& m : moved) {
        if (dir_->exists(m.aside)) {
            // A new map a crashed migration left half filled is filled again.
            if (dir_->unlink(m.name) != 0 && errno != ENOENT)
                return errno_error(errno, "remove " + dir_->shown(m.name).string());
            continue;
        }
        if (!dir_->exists(m.name))
            continue;
        if (dir_->rename(m.name, m.aside) != 0)
            return errno_error(errno, "move " + dir_->shown(m.name).string() + " to " + dir_->shown(m.aside).string());
        set_aside_ = true;
    }
    return {};
}

Result<std::size_t> FlowMigration::copy(int flows_fd, int half_open_fd, int udp_flows_fd, int node_udp_fd,
                                        std::uint64_t since_ns) const {
    std::size_t copied = 0;
    auto count = [&copied](Result<bool> put) -> Result<void> {
        if (!put)
            return std::unexpected(put.error());
        copied += *put;
        return {};
    };
    auto copy_flows = [&](std::string_view aside, int fd, std::string_view name) {
        return for_each_old<V2Flow>(*dir_, aside, [&](const V2FlowKey& k, const V2Flow& v) -> Result<void> {
            if (v.last_seen_ns < since_ns)
                return {};
            const auto key = convert(k);
            if (v.state == NP_FLOW_SYN_SENT && k.proto == IPPROTO_TCP) {
                // A handshake: its reply entry becomes the half-open one.
                if (k.dir != NP_FLOW_TO_CLIENT)
                    return {};
                np_half_open h{};
                h.node_addr_be[0] = v.addr_be;
                h.node_port_be = v.port_be;
                h.state = NP_FLOW_SYN_SENT;
                h.family = NP_FAMILY_IPV4;
                h.last_seen_ns = v.last_seen_ns;
                return count(put_new(half_open_fd, &key, &h, "half_open_flows"));
            }
            if (v.state == v2_time_wait)
                return {};
            np_flow f{};
            f.addr_be[0] = v.addr_be;
            f.port_be = v.port_be;
            f.state = v.state;
            f.family = NP_FAMILY_IPV4;
            f.last_seen_ns = v.last_seen_ns;
            auto put = put_new(fd, &key, &f, name);
            return k.dir == NP_FLOW_TO_BACKEND ? count(put) : done(put);
        });
    };
    if (auto ok = copy_flows("flows_abi2", flows_fd, "flows"); !ok)
        return std::unexpected(ok.error());
    if (auto ok = copy_flows("udp_flows_abi2", udp_flows_fd, "udp_flows"); !ok)
        return std::unexpected(ok.error());
    auto noted = for_each_old<__u64>(*dir_, "node_udp_abi2", [&](const V2FlowKey& k, const __u64& sent_ns) {
        if (sent_ns < since_ns)
            return Result<void>{};
        const auto key = convert(k);
        return done(put_new(node_udp_fd, &key, &sent_ns, "node_udp"));
    });
    if (!noted)
        return std::unexpected(noted.error());
    return copied;
}

void FlowMigration::undo() {
    if (!set_aside_)
        return;
    for (const auto& m : moved)
        if (dir_->exists(m.aside)) {
            dir_->unlink(m.name);
            dir_->rename(m.aside, m.name);
        }
    set_aside_ = false;
}

Result<void> FlowMigration::remove_leftover(const PinDir& dir) {
    for (auto name : leftovers)
        if (dir.unlink(name) != 0 && errno != ENOENT)
            return errno_error(errno, "remove " + dir.shown(name).string());
    return {};
}

}  // namespace nodeport
