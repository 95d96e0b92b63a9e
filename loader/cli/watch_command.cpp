// `nodeport watch`: a long-running process (nodeport-watch.service) that
// keeps a loaded datapath on the node's interfaces and addresses as they
// change. It takes load's options, so both units read one config file.
#include <fmt/format.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <iostream>

#include "cli.hpp"
#include "invocation.hpp"
#include "load_options.hpp"
#include "nodeport/fd.hpp"
#include "nodeport/watch.hpp"

namespace nodeport::cli {
namespace {

// SIGTERM and SIGINT as a readable fd. Blocked, so a signal ends the watch
// between two resyncs, never halfway through attaching an interface.
Fd stop_signals() {
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    if (::sigprocmask(SIG_BLOCK, &mask, nullptr) != 0)
        throw Failure(fmt::format("block SIGTERM and SIGINT: {}", std::strerror(errno)));
    Fd fd(::signalfd(-1, &mask, SFD_CLOEXEC));
    if (!fd.valid())
        throw Failure(fmt::format("signalfd: {}", std::strerror(errno)));
    return fd;
}

// One line per change, so the journal tells when an interface came or went.
class Reporter {
public:
    void operator()(const Result<NodeState>& state) {
        if (!state) {
            std::cerr << "nodeport watch: " << printable(state.error().message, true) << " (retried at the next change)"
                      << std::endl;
            return;
        }
        if (!started_)
            std::cout << "watching the interfaces and addresses of this network namespace" << std::endl;
        started_ = true;
        auto interfaces = describe(state->interfaces);
        auto addrs = describe(state->node_addrs);
        if (interfaces != interfaces_)
            std::cout << "external interfaces: " << interfaces << std::endl;
        if (addrs != addrs_)
            std::cout << "node addresses: " << addrs << std::endl;
        interfaces_ = std::move(interfaces);
        addrs_ = std::move(addrs);
    }

private:
    bool started_ = false;
    std::string interfaces_;
    std::string addrs_;
};

}  // namespace

int cmd_watch(const Args& argv) {
    auto inv = parse_with_config("watch", argv, load_description());
    if (!inv)
        return exit_ok;
    // Every load option is checked; watch uses the interfaces, node-ip and
    // tc-attach and wait (cgroup, forward and the timeouts are load's alone).
    auto [load_options, choice] = load_choices(*inv);
    WatchOptions options{inv->pin_dir, std::move(choice), std::move(load_options.node_ips), load_options.tc_attach};
    options.lock_wait = load_options.lock_wait;
    Fd stop = stop_signals();
    Reporter reporter;
    succeeded(watch(options, stop.get(), std::ref(reporter)));
    signalfd_siginfo info{};
    ssize_t n = ::read(stop.get(), &info, sizeof info);
    std::string by = n == sizeof info ? fmt::format(" by {}", sigabbrev_np(static_cast<int>(info.ssi_signo))) : "";
    std::cout << "stopped" << by << "; the datapath stays attached" << std::endl;
    return exit_ok;
}

}  // namespace nodeport::cli
