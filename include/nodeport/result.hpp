// Runtime errors of the loader library: libbpf's NULL+errno and -errno
// conventions are turned into Error once, where the library calls libbpf.
#pragma once

#include <expected>
#include <string>
#include <string_view>

// Exported from libnodeport.so (the rest of the library is hidden).
#pragma GCC visibility push(default)

namespace nodeport {

// What callers decide on: the CLI's exit status, the C ABI's code, the CNI
// plugin's error code. Set where the error is made, never read back from its
// message or guessed from a bare errno.
enum class ErrorKind {
    system,          // a call failed (errno_value says how, when it has one), or the node is not as needed
    bad_input,       // a value the caller gave is not valid; `field` names it, and nothing was changed
    not_loaded,      // nodeport is not loaded at the pin directory
    busy,            // another writer held the pin directory's lock longer than the wait
    permission,      // the kernel refused (EPERM, EACCES): no CAP_BPF, CAP_NET_ADMIN, ...
    unsafe_pin_dir,  // the pin directory, or a pin in it, is not one nodeport can trust
    abi_mismatch,    // the pins use another map ABI
};
std::string_view to_string(ErrorKind kind);  // "bad_input", ...

struct Error {
    int errno_value = 0;   // 0 when the failure has no errno (e.g. an ABI mismatch)
    std::string message;   // one line, names what failed: "open pinned map /x/ports: No such file or directory"
    ErrorKind kind = ErrorKind::system;
    std::string field = {};  // bad_input: the field ("owner", "backend", "iface"); empty otherwise
};

template <class T>
using Result = std::expected<T, Error>;

// A failed Result whose message is "<what>: <strerror(err)>". Takes a positive
// errno; EPERM and EACCES make a permission error, anything else a system one.
std::unexpected<Error> errno_error(int err, std::string what);

// A failed Result with a message of its own and no errno.
std::unexpected<Error> plain_error(std::string message, ErrorKind kind = ErrorKind::system);

// Bad input naming its field: "bad input: FIELD: MESSAGE" (errno EINVAL).
std::unexpected<Error> input_error(std::string field, const std::string& message);

}  // namespace nodeport

#pragma GCC visibility pop
