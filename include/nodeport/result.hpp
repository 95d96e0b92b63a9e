// Runtime errors of the loader library: libbpf's NULL+errno and -errno
// conventions are turned into Error once, where the library calls libbpf.
#pragma once

#include <expected>
#include <string>

// Exported from libnodeport.so (the rest of the library is hidden).
#pragma GCC visibility push(default)

namespace nodeport {

struct Error {
    int errno_value = 0;   // 0 when the failure has no errno (e.g. an ABI mismatch)
    std::string message;   // one line, names what failed: "open pinned map /x/ports: No such file or directory"
};

template <class T>
using Result = std::expected<T, Error>;

// A failed Result whose message is "<what>: <strerror(err)>". Takes a positive errno.
std::unexpected<Error> errno_error(int err, std::string what);

// A failed Result with a message of its own and no errno.
std::unexpected<Error> plain_error(std::string message);

}  // namespace nodeport

#pragma GCC visibility pop
