// The names, paths and meanings of `enum np_reason` (nodeport/abi.h): why a
// packet or a socket call was left untouched. The one table in user space;
// `nodeport stats` and its Prometheus output read it; tests/docs_test.sh checks
// docs/debugging.md's table against it.
#pragma once

#include <optional>
#include <span>
#include <string_view>

#include "nodeport/abi.h"

// Exported from libnodeport.so (the rest of the library is hidden).
#pragma GCC visibility push(default)

namespace nodeport {

// Which program counted the reason, as the `path` label shows it.
enum class ReasonPath {
    external,  // np_tc_ingress: a client's packet arriving at the node
    reply,     // np_tc_egress: a packet leaving towards a client
    local,     // np_connect4 / np_sendmsg4: a socket call of the node or a sandbox
};

std::string_view to_string(ReasonPath path);  // "external", "reply", "local"

struct ReasonInfo {
    np_reason id = NP_REASON_NOT_IPV4_TCP_UDP;
    std::string_view name;  // snake_case, stable: the `reason` label and the JSON value
    ReasonPath path = ReasonPath::external;
    std::string_view help;  // one line for people: what happened, and whether it needs anything
};

// Every reason in use, indexed by its id: NP_REASON_COUNT entries.
std::span<const ReasonInfo> reasons();

// The reason of that name; nullopt for none.
std::optional<np_reason> reason_by_name(std::string_view name);

}  // namespace nodeport

#pragma GCC visibility pop
