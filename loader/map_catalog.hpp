// Every map nodeport pins, read from its BPF objects (the skeletons), so that
// no list of names or shapes is kept by hand: a map added to a BPF program is
// checked, reused and unpinned like the others without another edit. Plus
// the one map user space alone creates (iface_choice.hpp), added by hand.
#pragma once

#include <bpf/bpf.h>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "nodeport/result.hpp"

namespace nodeport::map_catalog {

struct PinnedMap {
    std::string name;  // its file name in the pin directory
    bpf_map_type type;
    std::uint32_t key_size;
    std::uint32_t value_size;
};

// The maps the BPF objects of this build declare pinned by name, each once,
// and iface_choice. An error only when an embedded object cannot be opened
// (no memory, or a broken build); it is not remembered, so the next call
// tries again.
Result<std::span<const PinnedMap>> pinned_maps();

// The entry for `name`: nullptr when no object of this build pins it.
Result<const PinnedMap*> find(std::string_view name);

}  // namespace nodeport::map_catalog
