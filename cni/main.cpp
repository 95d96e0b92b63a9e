// nodeport-cni: the CNI plugin binary. The runtime runs it with the CNI_*
// environment variables and the network config on stdin; the reply (a
// result or a CNI error) goes to stdout, diagnostics to nowhere else, since
// runtimes show stdout's error message to their users.
#include <cstdlib>
#include <exception>
#include <iostream>
#include <string>

#include "plugin.hpp"

int main() {
    try {
        // stdin is read as it is parsed, never more of it than the limits allow.
        auto reply = nodeport::cni::run(
            [](const char* name) -> std::optional<std::string> {
                const char* value = std::getenv(name);
                return value ? std::optional<std::string>(value) : std::nullopt;
            },
            std::cin);
        std::cout << reply.stdout_text << std::flush;
        return reply.exit_status;
    } catch (const std::exception& e) {
        // Out of memory while reading stdin: still a CNI error, never a bare crash.
        std::cout << nodeport::cni::internal_error_reply(nodeport::cni::newest_version, e.what()) << std::flush;
        return 1;
    }
}
