#pragma once

#include <bpf/bpf.h>

#include <cerrno>
#include <string>
#include <vector>

#include "nodeport/result.hpp"

namespace nodeport {

// Every key of a BPF hash map. get_next_key walks a map that may change under
// us: a key deleted meanwhile restarts the walk, so a key can come twice.
template <class Key>
Result<std::vector<Key>> map_keys(int map_fd, const std::string& map_name) {
    std::vector<Key> keys;
    Key next{};
    const void* prev = nullptr;
    while (bpf_map_get_next_key(map_fd, prev, &next) == 0) {
        keys.push_back(next);
        prev = &keys.back();  // refreshed after every push_back, so never dangling
    }
    if (errno != ENOENT)
        return errno_error(errno, "walk map " + map_name);
    return keys;
}

}  // namespace nodeport
