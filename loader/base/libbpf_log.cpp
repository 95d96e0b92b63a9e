#include "base/libbpf_log.hpp"

#include <bpf/libbpf.h>

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <utility>

namespace nodeport {
namespace {

std::mutex log_mutex;
std::string log_tail;
constexpr std::size_t max_log_tail = 4096;  // the end of a verifier log says what failed

// The captures alive in the process, and the callback the first one replaced.
std::mutex capture_mutex;
int captures = 0;
libbpf_print_fn_t previous = nullptr;

int print(enum libbpf_print_level level, const char* format, va_list args) {
    static const bool debug = std::getenv("NODEPORT_DEBUG") != nullptr;
    // Formatted whole: libbpf hands a verifier log over as one message, and
    // its end, which says what failed, is what log_tail keeps.
    va_list copy;
    va_copy(copy, args);
    const int size = std::vsnprintf(nullptr, 0, format, copy);
    va_end(copy);
    if (size <= 0)
        return 0;
    std::string line(static_cast<std::size_t>(size) + 1, '\0');
    va_copy(copy, args);
    std::vsnprintf(line.data(), line.size(), format, copy);
    va_end(copy);
    line.pop_back();
    if (debug)
        std::fputs(line.c_str(), stderr);
    if (level == LIBBPF_DEBUG)
        return 0;
    std::lock_guard guard(log_mutex);
    log_tail += line;
    if (log_tail.size() > max_log_tail)
        log_tail.erase(0, log_tail.size() - max_log_tail);
    return 0;
}

}  // namespace

LibbpfLogCapture::LibbpfLogCapture() {
    std::lock_guard guard(capture_mutex);
    if (captures++ == 0)
        previous = libbpf_set_print(print);
}

LibbpfLogCapture::~LibbpfLogCapture() {
    std::lock_guard guard(capture_mutex);
    if (--captures == 0)
        libbpf_set_print(previous);
}

std::string take_libbpf_log() {
    std::lock_guard guard(log_mutex);
    return std::exchange(log_tail, {});
}

std::unexpected<Error> libbpf_error(int err, const std::string& what) {
    auto failure = errno_error(err, what);
    if (auto log = take_libbpf_log(); !log.empty())
        failure.error().message += "\nlibbpf said:\n" + log;
    return failure;
}

}  // namespace nodeport
