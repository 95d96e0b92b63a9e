#include "test_hook.hpp"

#ifdef NODEPORT_TEST_HOOKS
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#endif

namespace nodeport {

#ifdef NODEPORT_TEST_HOOKS

Result<void> test_hook(std::string_view point) {
    const char* hook = std::getenv("NODEPORT_TEST_HOOK");
    if (!hook)
        return {};
    const std::string_view spec = hook;
    if (spec == "fail:" + std::string(point))
        return plain_error("test hook: failing at " + std::string(point));
    if (spec == "pause:" + std::string(point)) {
        std::fprintf(stderr, "nodeport: test hook: paused at %.*s\n", static_cast<int>(point.size()), point.data());
        std::fflush(stderr);
        // SIGUSR1 ends the pause: a handler that does nothing makes sleep()
        // return early, where the default action would end the process.
        struct sigaction resume{};
        resume.sa_handler = [](int) {};
        ::sigaction(SIGUSR1, &resume, nullptr);
        sigset_t usr1;
        sigemptyset(&usr1);
        sigaddset(&usr1, SIGUSR1);
        ::sigprocmask(SIG_UNBLOCK, &usr1, nullptr);
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
