// A CNI error (spec 1.0.0, "Error"): printed on stdout as
// {"cniVersion", "code", "msg", "details"} with a non-zero exit, so the
// runtime can show `msg` to its user and act on `code`.
#pragma once

#include <expected>
#include <string>

namespace nodeport::cni {

// 1-99 are the spec's well-known codes, 100 and up this plugin's own.
enum class Code : int {
    incompatible_version = 1,  // a cniVersion this plugin does not speak
    invalid_environment = 4,   // CNI_COMMAND, CNI_CONTAINERID, ... missing or malformed
    decode_failure = 6,        // stdin is not a JSON object
    invalid_config = 7,        // the network config (our keys, runtimeConfig, prevResult) is wrong
    try_again_later = 11,      // another writer held nodeport's lock too long
    not_available = 50,        // STATUS: nodeport is not loaded and the config would not load it
    datapath = 100,            // nodeport's library failed: not loaded, no permission, ...
    check_failed = 101,        // CHECK: a mapping is missing or points elsewhere
};

struct CniError {
    Code code = Code::invalid_config;
    std::string msg;
    std::string details;
};

template <class T>
using CniResult = std::expected<T, CniError>;

inline std::unexpected<CniError> cni_error(Code code, std::string msg, std::string details = {}) {
    return std::unexpected(CniError{code, std::move(msg), std::move(details)});
}

}  // namespace nodeport::cni
