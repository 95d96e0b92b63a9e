// Every map nodeport pins, read from its BPF objects (the skeletons), so that
// no list of names or shapes is kept by hand: a map added to a BPF program is
// checked, reused and unpinned like the others without another edit. Plus
// the one map user space alone creates (iface_choice.hpp), added by hand.
#pragma once

#include <bpf/bpf.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace nodeport::map_catalog {

struct PinnedMap {
    std::string name;  // its file name in the pin directory
    bpf_map_type type;
    std::uint32_t key_size;
    std::uint32_t value_size;
};

// The maps the BPF objects of this build declare pinned by name, each once,
// and iface_choice.
const std::vector<PinnedMap>& pinned_maps();

// The entry for `name`, or nullptr when no object of this build pins it.
const PinnedMap* find(std::string_view name);

}  // namespace nodeport::map_catalog
