// Every map nodeport pins, read from its BPF objects (the skeletons) at build
// time (map_catalog_gen.cpp), so that no list of names or shapes is kept by
// hand: a map added to a BPF program is checked, reused and unpinned like the
// others without another edit. Plus the one map user space alone creates
// (iface_choice), and the names of the pins older layouts leave, added by hand.
#pragma once

#include <bpf/bpf.h>

#include <array>
#include <cstdint>
#include <span>
#include <string_view>

namespace nodeport::map_catalog {

// The map no BPF object declares: load creates it (datapath/iface_choice.hpp).
inline constexpr std::string_view iface_choice_map = "iface_choice";

// Pins of older layouts, which this build's objects do not create: the ABI 1
// `ports` that its migration sets aside (bpffs names cannot hold a dot), and
// what an ABI 2 load leaves (the old flow maps set aside, and `closed_flows`).
// A pin directory holding them is still nodeport's, and the migrations
// (datapath/) remove them.
inline constexpr std::string_view abi1_set_aside = "ports_abi1";
inline constexpr std::array<std::string_view, 4> abi2_leftovers = {"flows_abi2", "udp_flows_abi2", "node_udp_abi2",
                                                                   "closed_flows"};

struct PinnedMap {
    std::string_view name;  // its file name in the pin directory
    bpf_map_type type;
    std::uint32_t key_size;
    std::uint32_t value_size;
};

// The maps the BPF objects of this build declare pinned by name, each once,
// and iface_choice.
std::span<const PinnedMap> pinned_maps();

// The entry for `name`: nullptr when no object of this build pins it.
const PinnedMap* find(std::string_view name);

}  // namespace nodeport::map_catalog
