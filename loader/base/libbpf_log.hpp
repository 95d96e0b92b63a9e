#pragma once

#include <string>

#include "nodeport/result.hpp"

namespace nodeport {

// Routes libbpf's messages while it lives: kept quiet, but the last warnings
// are remembered so that a failed load can say why (a verifier log, a missing
// kernel feature). NODEPORT_DEBUG=1 in the environment prints everything to
// stderr as well. libbpf's print callback is one for the whole process, and
// the process is the library user's: the first capture alive installs ours,
// the last one to end puts back whatever was there before (captures on
// several threads at once share it).
class [[nodiscard]] LibbpfLogCapture {
public:
    LibbpfLogCapture();
    ~LibbpfLogCapture();
    LibbpfLogCapture(const LibbpfLogCapture&) = delete;
    LibbpfLogCapture& operator=(const LibbpfLogCapture&) = delete;
};

inline LibbpfLogCapture capture_libbpf_log() {
    return {};
}

// The warnings captured since the last call, then forgets them.
std::string take_libbpf_log();

// A failed Result for a libbpf call, with the tail of libbpf's log (a
// verifier message, a missing kernel feature) when there is one.
std::unexpected<Error> libbpf_error(int err, const std::string& what);

}  // namespace nodeport
