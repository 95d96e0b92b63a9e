#include "cli/signals.hpp"

#include <fmt/format.h>
#include <signal.h>
#include <sys/signalfd.h>

#include <cerrno>
#include <cstring>

#include "cli/cli.hpp"

namespace nodeport::cli {

Fd block_signals(std::initializer_list<int> signals) {
    sigset_t mask;
    sigemptyset(&mask);
    for (int s : signals)
        sigaddset(&mask, s);
    if (::sigprocmask(SIG_BLOCK, &mask, nullptr) != 0)
        throw Failure(fmt::format("block signals: {}", std::strerror(errno)));
    Fd fd(::signalfd(-1, &mask, SFD_CLOEXEC));
    if (!fd.valid())
        throw Failure(fmt::format("signalfd: {}", std::strerror(errno)));
    return fd;
}

}  // namespace nodeport::cli
