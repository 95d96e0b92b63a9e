#include "base/map_catalog.hpp"

#include <bpf/libbpf.h>

#include <cerrno>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "nodeport/abi.h"
#include "sock.skel.h"
#include "sock_end.skel.h"
#include "tc.skel.h"

namespace nodeport::map_catalog {
namespace {

// Opening a skeleton parses the embedded object (no kernel call); the maps'
// types and sizes then come from the same BTF the kernel will see.
void collect(bpf_object* obj, std::vector<PinnedMap>& out) {
    bpf_map* map;
    bpf_object__for_each_map(map, obj) {
        if (!bpf_map__pin_path(map))
            continue;  // not pinned: .rodata, .bss and per-object maps
        std::string name = bpf_map__name(map);
        bool seen = false;
        for (const auto& known : out)
            seen = seen || known.name == name;
        if (!seen)
            out.push_back(PinnedMap{name, bpf_map__type(map), bpf_map__key_size(map), bpf_map__value_size(map)});
    }
}

template <class Skel>
Result<void> collect_from(Skel* (*open)(), void (*destroy)(Skel*), std::vector<PinnedMap>& out) {
    std::unique_ptr<Skel, void (*)(Skel*)> skel(open(), destroy);
    if (!skel)
        return errno_error(errno, "open an embedded BPF object");
    collect(skel->obj, out);
    return {};
}

Result<std::vector<PinnedMap>> read_catalog() {
    std::vector<PinnedMap> out;
    if (auto ok = collect_from(sock_bpf__open, sock_bpf__destroy, out); !ok)
        return std::unexpected(ok.error());
    if (auto ok = collect_from(tc_bpf__open, tc_bpf__destroy, out); !ok)
        return std::unexpected(ok.error());
    if (auto ok = collect_from(sock_end_bpf__open, sock_end_bpf__destroy, out); !ok)
        return std::unexpected(ok.error());
    // The one map no BPF object declares: load creates it from user space.
    out.push_back(PinnedMap{std::string(iface_choice_map), BPF_MAP_TYPE_ARRAY, sizeof(__u32),
                            sizeof(np_iface_choice)});
    return out;
}

}  // namespace

Result<std::span<const PinnedMap>> pinned_maps() {
    // Read once per process (a library user's too); the lock makes the first
    // read safe from several threads.
    static std::mutex mutex;
    static std::optional<std::vector<PinnedMap>> catalog;
    std::lock_guard lock(mutex);
    if (!catalog) {
        auto read = read_catalog();
        if (!read)
            return std::unexpected(read.error());
        catalog = std::move(*read);
    }
    return std::span<const PinnedMap>(*catalog);
}

Result<const PinnedMap*> find(std::string_view name) {
    auto maps = pinned_maps();
    if (!maps)
        return std::unexpected(maps.error());
    for (const auto& map : *maps)
        if (map.name == name)
            return &map;
    return nullptr;
}

}  // namespace nodeport::map_catalog
