// The `ports` map of a loaded nodeport: one backend per (protocol, node port).
// Writers serialize on an flock of the pin directory, so several processes
// (CLI calls, a controller) and threads lose no update and an owner-checked
// remove never deletes an entry written after its check.
#pragma once

#include <cstddef>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "nodeport/fd.hpp"
#include "nodeport/result.hpp"
#include "nodeport/types.hpp"

namespace nodeport {

enum class RemoveOutcome {
    removed,        // the entry was there (with the given owner, if one was given) and is gone
    not_mapped,     // nothing was mapped on that node port
    held_by_other,  // another owner holds the port now; its entry was left alone
};

struct RemoveResult {
    RemoveOutcome outcome = RemoveOutcome::not_mapped;
    std::string holder;  // the owner that holds the port, for held_by_other
};

class PortTable {
public:
    // Opens the pinned map of a loaded nodeport. Fails when it is not loaded.
    static Result<PortTable> open(const std::filesystem::path& pin_dir);

    // Maps the node port to the backend, replacing whatever was there.
    Result<void> set(const Mapping& mapping);
    // Unmaps the node port; with an owner, only while that owner holds it.
    Result<RemoveResult> remove(NodePort node_port, std::optional<std::string_view> owner = std::nullopt);
    Result<std::optional<Mapping>> get(NodePort node_port) const;
    // Every mapping, sorted by protocol and port.
    Result<std::vector<Mapping>> list() const;
    // Removes every mapping; returns how many there were.
    Result<std::size_t> flush();

private:
    PortTable(Fd dir, Fd map);
    class WriteLock;

    Fd dir_;  // the pin directory, flock'ed by writers
    Fd map_;
    std::unique_ptr<std::mutex> mutex_;  // threads sharing one PortTable share dir_'s flock
};

}  // namespace nodeport
