#include "base/map_catalog.hpp"

#include <algorithm>
#include <iterator>

#include "nodeport/abi.h"

namespace nodeport::map_catalog {
namespace {

// Written at build time from this build's BPF objects (map_catalog_gen.cpp,
// into the skeletons' directory), then the one map user space creates.
constexpr PinnedMap catalog[] = {
#include "pinned_maps.inc"
    {iface_choice_map, BPF_MAP_TYPE_ARRAY, sizeof(__u32), sizeof(np_iface_choice)},
};
static_assert(std::size(catalog) > 1, "the BPF objects pin no map: pinned_maps.inc is broken");

}  // namespace

std::span<const PinnedMap> pinned_maps() {
    return catalog;
}

const PinnedMap* find(std::string_view name) {
    const auto* found = std::ranges::find(catalog, name, &PinnedMap::name);
    return found == std::end(catalog) ? nullptr : found;
}

}  // namespace nodeport::map_catalog
