// Reconciling the port table with a controller's complete desired set: what
// a controller runs after its own restart. Reading and planning are pure (no
// map access), so they are tested without root; PortTable::sync applies a plan.
#pragma once

#include <cstddef>
#include <istream>
#include <string_view>
#include <vector>

#include "nodeport/types.hpp"

// Exported from libnodeport.so (the rest of the library is hidden).
#pragma GCC visibility push(default)

namespace nodeport {

// How much parse_mappings_json reads (docs/cli.md, `sync`). Past any of these it
// stops reading at once and refuses the set, naming the limit ("file: ...").
struct SyncLimits {
    std::size_t bytes;         // the whole input
    std::size_t entries;       // mappings: each node port at most once per family, and no more than `ports` holds
    std::size_t depth;         // arrays and objects inside each other (the set needs 2)
    std::size_t string_bytes;  // one string or key (an owner is at most 255)
};
// 32 MiB holds every node port of both protocols with 100-character owners,
// indented. What the read holds in memory stays near the input's size or
// below: the document of the largest set is about 140 MB, a run of blanks
// (which nlohmann's lexer keeps until the next token) at most 32 MiB.
inline constexpr SyncLimits sync_limits{std::size_t{32} << 20, 131072 /* NP_MAX_PORTS */, 16, 1024};

// A JSON array of {"proto": "tcp", "port": 6667, "backend": "10.8.32.126:6667",
// "owner": "sb-42"} ("owner" may be left out; an IPv6 backend is
// "[fd00::2]:6667"). Every entry is validated as the CLI validates its
// arguments; the first bad one is reported with its index and field ("entry
// 3: backend: ..."), and a node port listed twice for one family is bad, as
// is a key twice in one entry.
Parsed<std::vector<Mapping>> parse_mappings_json(std::string_view text);
// The same, read from a stream (a file, standard input) as it is parsed: the
// input is never held whole, and an endless one stops at sync_limits.bytes.
Parsed<std::vector<Mapping>> parse_mappings_json(std::istream& in);

// What makes the table equal to the desired set. Applied in this order, so a
// port that stays mapped is never missing during the sync: adds and
// overwrites first, removals last.
struct SyncPlan {
    std::vector<Mapping> add;     // not mapped now
    std::vector<Mapping> update;  // mapped now, to another backend or owner
    std::vector<Mapping> remove;  // mapped now, not wanted (as they are now)
    std::size_t unchanged = 0;
};

// `current` and `desired` in any order; each node port at most once per family in each.
SyncPlan plan_sync(const std::vector<Mapping>& current, const std::vector<Mapping>& desired);

}  // namespace nodeport

#pragma GCC visibility pop
