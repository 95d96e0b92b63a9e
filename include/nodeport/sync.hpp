// Reconciling the port table with a controller's complete desired set: what
// a controller runs after its own restart. Reading and planning are pure (no
// map access), so they are tested without root; PortTable::sync applies a plan.
#pragma once

#include <cstddef>
#include <string_view>
#include <vector>

#include "nodeport/types.hpp"

namespace nodeport {

// A JSON array of {"proto": "tcp", "port": 6667, "backend": "10.8.32.126:6667",
// "owner": "sb-42"} ("owner" may be left out). Every entry is validated as the
// CLI validates its arguments; the first bad one is reported with its index
// and field ("entry 3: backend: ..."), and a node port listed twice is bad.
Parsed<std::vector<Mapping>> parse_mappings_json(std::string_view text);

// What makes the table equal to the desired set. Applied in this order, so a
// port that stays mapped is never missing during the sync: adds and
// overwrites first, removals last.
struct SyncPlan {
    std::vector<Mapping> add;     // not mapped now
    std::vector<Mapping> update;  // mapped now, to another backend or owner
    std::vector<Mapping> remove;  // mapped now, not wanted (as they are now)
    std::size_t unchanged = 0;
};

// `current` and `desired` in any order; each node port at most once in each.
SyncPlan plan_sync(const std::vector<Mapping>& current, const std::vector<Mapping>& desired);

}  // namespace nodeport
