#include "nodeport/result.hpp"

#include <cerrno>
#include <cstring>

namespace nodeport {

std::string_view to_string(ErrorKind kind) {
    switch (kind) {
    case ErrorKind::system:
        return "system";
    case ErrorKind::bad_input:
        return "bad_input";
    case ErrorKind::not_loaded:
        return "not_loaded";
    case ErrorKind::busy:
        return "busy";
    case ErrorKind::permission:
        return "permission";
    case ErrorKind::unsafe_pin_dir:
        return "unsafe_pin_dir";
    case ErrorKind::abi_mismatch:
        return "abi_mismatch";
    }
    return "?";
}

std::unexpected<Error> errno_error(int err, std::string what) {
    const auto kind = err == EPERM || err == EACCES ? ErrorKind::permission : ErrorKind::system;
    return std::unexpected(Error{err, std::move(what) + ": " + std::strerror(err), kind, {}});
}

std::unexpected<Error> plain_error(std::string message, ErrorKind kind) {
    return std::unexpected(Error{0, std::move(message), kind, {}});
}

std::unexpected<Error> input_error(std::string field, const std::string& message) {
    auto text = "bad input: " + field + ": " + message;
    return std::unexpected(Error{EINVAL, std::move(text), ErrorKind::bad_input, std::move(field)});
}

}  // namespace nodeport
