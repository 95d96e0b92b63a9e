#pragma once

#include <string>

#include "nodeport/result.hpp"

namespace nodeport {

// Routes libbpf's messages: kept quiet, but the last warnings are remembered
// so that a failed load can say why (a verifier log, a missing kernel feature).
// NODEPORT_DEBUG=1 in the environment prints everything to stderr as well.
void capture_libbpf_log();

// The warnings captured since the last call, then forgets them.
std::string take_libbpf_log();

// A failed Result for a libbpf call, with the tail of libbpf's log (a
// verifier message, a missing kernel feature) when there is one.
std::unexpected<Error> libbpf_error(int err, const std::string& what);

}  // namespace nodeport
