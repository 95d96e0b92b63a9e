// Walking a pinned flow table (`flows`, `half_open_flows`, `udp_flows`: keys
// np_flow_key) entry by entry: for `nodeport flows`, drain's counts and
// explain's copy of a client's entries.
#pragma once

#include <bpf/bpf.h>

#include <filesystem>
#include <string>
#include <string_view>

#include "base/map_keys.hpp"
#include "base/pin_dir.hpp"
#include "nodeport/abi.h"
#include "nodeport/result.hpp"

namespace nodeport {

// Calls fn(map fd, key, value) for every entry of pinned map `name` (values
// of type Value), stopping at the first error it returns. An entry gone
// since the walk is skipped.
template <class Value, class Fn>
Result<void> for_each_flow_entry(const PinDir& dir, std::string_view name, Fn&& fn) {
    auto map = dir.map(name);
    if (!map)
        return std::unexpected(map.error());
    auto keys = map_keys<np_flow_key>(map->get(), std::string(name));
    if (!keys)
        return std::unexpected(keys.error());
    for (const auto& key : *keys) {
        Value value{};
        if (bpf_map_lookup_elem(map->get(), &key, &value) != 0)
            continue;
        if (auto ok = fn(map->get(), key, value); !ok)
            return ok;
    }
    return {};
}

}  // namespace nodeport
