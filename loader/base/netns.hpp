// Network namespaces: which one nodeport was loaded in, finding it again by
// its cookie to name it to a person, and acting inside it.
//
// `load` records its namespace's cookie in node_config. What it attached
// there (clsact filters, node addresses, interface indexes) only means
// something in that namespace, so the commands bound to it refuse to run
// anywhere else, and `unload` enters it to remove what it attached.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>

#include "nodeport/pin_dir.hpp"
#include "nodeport/result.hpp"

namespace nodeport::netns {

// The cookie of the calling thread's network namespace (SO_NETNS_COOKIE).
Result<std::uint64_t> current_cookie();

struct Found {
    std::filesystem::path path;  // a file that refers to it: /run/netns/NAME or /proc/PID/ns/net
    std::string description;     // "network namespace 'NAME'", "the host's network namespace", ...
};

// Looks for the namespace with this cookie among the named ones
// (/run/netns), PID 1's and every process's. nullopt: it is gone, or nothing
// this process can see refers to it.
std::optional<Found> find(std::uint64_t cookie);

// "network namespace 'x' (cookie N)" or "a network namespace that no longer
// exists or that no process uses (cookie N)".
std::string describe(std::uint64_t cookie);
std::string describe(std::uint64_t cookie, const std::optional<Found>& found);

// Runs `fn` on a thread that entered the namespace at `path`, and waits.
Result<void> run_in(const std::filesystem::path& path, const std::function<Result<void>()>& fn);

// For the commands bound to the namespace of the load at `pin_dir` (recorded
// cookie `loaded_in`, 0 when nothing is recorded): an error naming both
// namespaces when this thread is in another one.
Result<void> check_same(std::uint64_t loaded_in, const std::filesystem::path& pin_dir, const std::string& command);

// check_same with the namespace recorded in <pin_dir>/node_config.
Result<void> check_loaded_here(const PinDir& pin_dir, const std::string& command);

}  // namespace nodeport::netns
