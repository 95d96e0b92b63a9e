#include "nodeport/result.hpp"

#include <cstring>

namespace nodeport {

std::unexpected<Error> errno_error(int err, std::string what) {
    return std::unexpected(Error{err, std::move(what) + ": " + std::strerror(err)});
}

std::unexpected<Error> plain_error(std::string message) {
    return std::unexpected(Error{0, std::move(message)});
}

}  // namespace nodeport
