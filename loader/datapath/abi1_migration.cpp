#include "datapath/abi1_migration.hpp"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>

#include "base/map_catalog.hpp"
#include "base/map_keys.hpp"
#include "base/pin_dir.hpp"
#include "datapath/flow_migration.hpp"

namespace nodeport {
namespace {

// The `ports` layout of map ABI 1 (include/nodeport/abi.h before ABI 2).
struct V1PortKey {
    __u8 proto;
    __u8 pad;
    __be16 port_be;
};

struct V1Backend {
    __u8 family;
    __u8 flags;
    __be16 port_be;
    __u32 reserved;
    __be32 addr_be[4];
    __u64 owner_id;
    char owner[64];
};

static_assert(sizeof(V1PortKey) == 4 && sizeof(V1Backend) == 96, "map ABI 1 layout");

// Where the old `ports` pin waits while the new programs are put in place.
constexpr std::string_view set_aside_name = map_catalog::abi1_set_aside;

std::string describe(const V1PortKey& key) {
    const char* proto = key.proto == IPPROTO_TCP ? "tcp" : key.proto == IPPROTO_UDP ? "udp" : nullptr;
    return proto ? fmt::format("{}/{}", proto, ntohs(key.port_be))
                 : fmt::format("protocol {} port {}", key.proto, ntohs(key.port_be));
}

// The entry of this build's `ports` for an ABI 1 one, or why there is none.
Result<std::pair<np_port_key, np_backend>> convert(const V1PortKey& key, const V1Backend& value) {
    if ((key.proto != IPPROTO_TCP && key.proto != IPPROTO_UDP) || key.pad != 0 || key.port_be == 0)
        return plain_error("its key is not a nodeport mapping");
    if (value.family != NP_FAMILY_IPV4 || value.port_be == 0)
        return plain_error(fmt::format("its backend (family {}, port {}) is not an IPv4 address and port",
                                       value.family, ntohs(value.port_be)));
    np_port_key new_key{};
    new_key.proto = key.proto;
    new_key.port = ntohs(key.port_be);
    np_backend new_value{};
    new_value.family = NP_FAMILY_IPV4;
    new_value.flags = value.flags;
    new_value.port = ntohs(value.port_be);
    new_value.reserved = value.reserved;
    std::memcpy(new_value.addr, &value.addr_be[0], sizeof value.addr_be[0]);
    new_value.owner_id = value.owner_id;
    // At most 64 bytes, so it always fits the new 255.
    std::memcpy(new_value.owner, value.owner, strnlen(value.owner, sizeof value.owner));
    return std::pair{new_key, new_value};
}

// Every other pinned map must already have this build's layout: ABI 2
// changed only `ports`, and ABI 3 the flow tables, which FlowMigration
// checks and moves.
Result<void> check_unchanged_maps(const PinDir& dir) {
    for (const auto& map : map_catalog::pinned_maps()) {
        if (map.name == "ports" || FlowMigration::moves(map.name) || !dir.exists(map.name))
            continue;
        if (auto fd = dir.map(map.name); !fd)
            return std::unexpected(fd.error());
    }
    return {};
}

}  // namespace

Result<std::optional<Abi1Migration>> Abi1Migration::plan(const PinDir& dir, unsigned abi) {
    if (abi == 0 || abi == 2 || abi == 3 || abi == NODEPORT_ABI_VERSION)
        return std::nullopt;  // ABI 2's and 3's `ports` are this build's (abi.h: NODEPORT_ABI_VERSION 3)
    if (abi != 1)
        return plain_error(fmt::format("the maps pinned at {} use map ABI v{}, which this nodeport (v{}) cannot "
                                       "migrate: nothing was changed; unload with the nodeport that loaded them",
                                       dir.path().string(), abi, NODEPORT_ABI_VERSION),
                           ErrorKind::abi_mismatch);
    // A migration that crashed after setting the old pin aside resumes from it.
    const bool resumed = dir.exists(set_aside_name);
    const std::string source_pin(resumed ? set_aside_name : "ports");
    const auto source = dir.shown(source_pin);
    Fd ports(dir.obj_get(source_pin));
    if (!ports.valid())
        return errno_error(errno, "open pinned map " + source.string());
    if (auto ok = pin_dir::check_shape(ports.get(), source, "ports (map ABI 1)", BPF_MAP_TYPE_HASH, sizeof(V1PortKey),
                                       sizeof(V1Backend));
        !ok)
        return std::unexpected(ok.error());
    if (auto ok = check_unchanged_maps(dir); !ok)
        return std::unexpected(ok.error());

    auto keys = map_keys<V1PortKey>(ports.get(), source.string());
    if (!keys)
        return std::unexpected(keys.error());
    std::map<std::pair<__u8, __u16>, std::pair<np_port_key, np_backend>> converted;
    for (const auto& key : *keys) {
        V1Backend value{};
        if (bpf_map_lookup_elem(ports.get(), &key, &value) != 0)
            continue;  // deleted by another writer during the walk
        auto entry = convert(key, value);
        if (!entry)
            return plain_error(fmt::format("cannot migrate {} to map ABI v{}: entry {}: {}; nothing was changed "
                                           "(delete it with the nodeport that loaded it, then load again)",
                                           source.string(), NODEPORT_ABI_VERSION, describe(key),
                                           entry.error().message));
        converted[{entry->first.proto, entry->first.port}] = *entry;
    }
    std::vector<std::pair<np_port_key, np_backend>> entries;
    for (const auto& [_, entry] : converted)
        entries.push_back(entry);
    return Abi1Migration(dir, resumed, std::move(entries));
}

Result<void> Abi1Migration::set_aside() {
    if (resumed_) {
        // A new `ports` a crashed migration left half filled is filled again.
        if (dir_->unlink("ports") != 0 && errno != ENOENT)
            return errno_error(errno, "remove " + dir_->shown("ports").string());
        return {};
    }
    if (dir_->rename("ports", set_aside_name) != 0)
        return errno_error(errno, "move " + dir_->shown("ports").string() + " to " +
                                      dir_->shown(set_aside_name).string());
    set_aside_ = true;
    return {};
}

Result<void> Abi1Migration::fill(int ports_fd) const {
    for (const auto& [key, value] : entries_)
        if (bpf_map_update_elem(ports_fd, &key, &value, BPF_ANY) != 0)
            return errno_error(errno, fmt::format("write migrated mapping {}/{}",
                                                  key.proto == IPPROTO_TCP ? "tcp" : "udp", key.port));
    return {};
}

void Abi1Migration::undo() {
    if (!set_aside_)
        return;
    dir_->unlink("ports");
    dir_->rename(set_aside_name, "ports");
    set_aside_ = false;
}

Result<void> Abi1Migration::remove_leftover(const PinDir& dir) {
    if (dir.unlink(set_aside_name) != 0 && errno != ENOENT)
        return errno_error(errno, "remove " + dir.shown(set_aside_name).string());
    return {};
}

}  // namespace nodeport
