#include "datapath/iface_choice.hpp"

#include <bpf/bpf.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/pin_dir.hpp"
#include "nodeport/abi.h"

namespace nodeport {
namespace {

constexpr std::pair<InterfaceChoice::Kind, __u8> kinds[] = {
    {InterfaceChoice::Kind::none, NP_IFACES_NONE},
    {InterfaceChoice::Kind::named, NP_IFACES_NAMED},
    {InterfaceChoice::Kind::all, NP_IFACES_ALL},
    {InterfaceChoice::Kind::default_route, NP_IFACES_DEFAULT_ROUTE},
};

constexpr std::pair<TcAttachMode, __u8> modes[] = {
    {TcAttachMode::automatic, 0},
    {TcAttachMode::tcx, NP_TC_TCX},
    {TcAttachMode::clsact, NP_TC_CLSACT},
};

np_iface_choice encode(const RecordedChoice& recorded) {
    np_iface_choice value{};
    value.kind = std::ranges::find(kinds, recorded.choice.kind, &std::pair<InterfaceChoice::Kind, __u8>::first)->second;
    value.tc_attach = std::ranges::find(modes, recorded.tc_attach, &std::pair<TcAttachMode, __u8>::first)->second;
    const auto& names = recorded.choice.kind == InterfaceChoice::Kind::all ? recorded.choice.exclude
                                                                           : recorded.choice.names;
    // check_load_options (or the CLI) kept them to NP_MAX_IFACE_NAMES names of at most 15 bytes.
    for (const auto& name : names) {
        if (value.count == NP_MAX_IFACE_NAMES)
            break;
        name.copy(value.names[value.count++], sizeof value.names[0] - 1);
    }
    return value;
}

// nullopt for a record this build cannot read (kind 0: none).
std::optional<RecordedChoice> decode(const np_iface_choice& value) {
    auto kind = std::ranges::find(kinds, value.kind, &std::pair<InterfaceChoice::Kind, __u8>::second);
    auto mode = std::ranges::find(modes, value.tc_attach, &std::pair<TcAttachMode, __u8>::second);
    if (kind == std::end(kinds) || mode == std::end(modes) || value.count > NP_MAX_IFACE_NAMES)
        return std::nullopt;
    RecordedChoice out;
    out.choice.kind = kind->first;
    out.tc_attach = mode->first;
    auto& names = out.choice.kind == InterfaceChoice::Kind::all ? out.choice.exclude : out.choice.names;
    for (unsigned i = 0; i < value.count; ++i)
        names.emplace_back(value.names[i], strnlen(value.names[i], sizeof value.names[i]));
    return out;
}

}  // namespace

Result<Fd> iface_choice::open_or_create(const PinDir& dir, bool& created) {
    created = false;
    if (dir.exists(map_name))
        return dir.map(map_name);
    Fd map(bpf_map_create(BPF_MAP_TYPE_ARRAY, std::string(map_name).c_str(), sizeof(__u32), sizeof(np_iface_choice),
                          1, nullptr));
    if (!map.valid())
        return errno_error(errno, "create map " + std::string(map_name));
    if (int err = dir.obj_pin(map.get(), map_name); err != 0)
        return errno_error(-err, "pin " + dir.shown(map_name).string());
    created = true;
    return map;
}

Result<void> iface_choice::write(int map_fd, const RecordedChoice& recorded) {
    __u32 zero = 0;
    np_iface_choice value = encode(recorded);
    if (bpf_map_update_elem(map_fd, &zero, &value, BPF_ANY) != 0)
        return errno_error(errno, "record the interface choice");
    return {};
}

Result<std::optional<RecordedChoice>> recorded_interface_choice(const std::filesystem::path& pin_dir) {
    return pin_dir::with_opened(pin_dir, [](const PinDir& dir) { return recorded_interface_choice(dir); });
}

Result<std::optional<RecordedChoice>> recorded_interface_choice(const PinDir& dir) {
    if (!dir.exists(iface_choice::map_name))
        return std::optional<RecordedChoice>{};
    auto map = dir.map(iface_choice::map_name);
    if (!map)
        return std::unexpected(map.error());
    __u32 zero = 0;
    np_iface_choice value{};
    if (bpf_map_lookup_elem(map->get(), &zero, &value) != 0)
        return errno_error(errno, "read " + dir.shown(iface_choice::map_name).string());
    return decode(value);
}

Result<void> record_interface_choice(const std::filesystem::path& dir, const RecordedChoice& recorded,
                                     std::chrono::milliseconds lock_wait) {
    auto locked = pin_dir::open_locked(dir, lock_wait);
    if (!locked)
        return std::unexpected(locked.error());
    return iface_choice::record(locked->dir, recorded);
}

Result<void> iface_choice::record(const PinDir& dir, const RecordedChoice& recorded) {
    bool created = false;
    auto map = open_or_create(dir, created);
    if (!map)
        return std::unexpected(map.error());
    return write(map->get(), recorded);
}

}  // namespace nodeport
