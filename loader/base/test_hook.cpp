#include "base/test_hook.hpp"

#ifdef NODEPORT_TEST_HOOKS
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#endif

namespace nodeport {

#ifdef NODEPORT_TEST_HOOKS

namespace {

// True when the comma-separated `spec` holds `action`:`point`.
bool asks(std::string_view spec, std::string_view action, std::string_view point) {
    const std::string wanted = std::string(action) + ":" + std::string(point);
    while (!spec.empty()) {
        const auto comma = spec.find(',');
        if (spec.substr(0, comma) == wanted)
            return true;
        spec = comma == std::string_view::npos ? std::string_view{} : spec.substr(comma + 1);
    }
    return false;
}

}  // namespace

Result<void> test_hook(std::string_view point) {
    const char* hook = std::getenv("NODEPORT_TEST_HOOK");
    if (!hook)
        return {};
    if (asks(hook, "fail", point))
        return plain_error("test hook: failing at " + std::string(point));
    if (asks(hook, "pause", point)) {
        // SIGUSR1 ends the pause: a handler that does nothing makes sleep()
        // return early, where the default action would end the process. It
        // is in place before the message that tells the test to send it.
        struct sigaction resume{};
        resume.sa_handler = [](int) {};
        ::sigaction(SIGUSR1, &resume, nullptr);
        sigset_t usr1;
        sigemptyset(&usr1);
        sigaddset(&usr1, SIGUSR1);
        ::sigprocmask(SIG_UNBLOCK, &usr1, nullptr);
        std::fprintf(stderr, "nodeport: test hook: paused at %.*s\n", static_cast<int>(point.size()), point.data());
        std::fflush(stderr);
        ::sleep(60);
    }
    return {};
}

#else

// The library, the CLI and the C ABI that are built and installed: no
// environment variable can stop or fail a command half-way.
Result<void> test_hook(std::string_view) {
    return {};
}

#endif

}  // namespace nodeport
