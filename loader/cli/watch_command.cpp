// `nodeport watch`: a long-running process (nodeport-watch.service) that
// keeps a loaded datapath on the node's interfaces and addresses as they
// change. It takes load's options, so both units read one config file, and
// reads them again on SIGHUP (a reload of the units after the file changed).
#include <fmt/format.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cstring>
#include <exception>
#include <functional>
#include <iostream>

#include "cli.hpp"
#include "invocation.hpp"
#include "load_options.hpp"
#include "nodeport/fd.hpp"
#include "nodeport/watch.hpp"
#include "signals.hpp"

namespace nodeport::cli {
namespace {

// The command line (and --config file) read into watch's options; bad input
// throws UsageError. Only the interface names' syntax is checked: a named
// interface that is missing now is attached when it appears.
WatchOptions watch_options(const Invocation& inv) {
    // Every load option is checked; watch uses the interfaces, node-ip,
    // tc-attach and wait (cgroup, forward and the timeouts are load's alone).
    auto [load_options, choice] = load_choices(inv, InterfaceCheck::syntax);
    WatchOptions options{.pin_dir = inv.pin_dir,
                         .interfaces = std::move(choice),
                         .node_ips = std::move(load_options.node_ips),
                         .tc_attach = load_options.tc_attach};
    options.lock_wait = load_options.lock_wait;
    return options;
}

// One line per change, so the journal tells when an interface came or went.
// With --json, one JSON object per line: {"event": "started"}, then
// {"event": "changed", "interfaces": [...], "node_addrs": [...]} when either
// changed, {"event": "retry", "error": ..., "retry_in_seconds": S} on stderr
// when a resync failed.
class Reporter {
public:
    explicit Reporter(bool json) : json_(json) {}

    void operator()(const Resync& resync) {
        if (!started_) {
            if (json_)
                std::cout << json_line({{"event", "started"}}) << std::endl;
            else
                std::cout << "watching the interfaces and addresses of this network namespace" << std::endl;
        }
        started_ = true;
        const double retry_in = static_cast<double>(resync.retry_in.count()) / 1000.0;
        if (!resync.state) {
            if (json_)
                std::cerr << json_line({{"event", "retry"},
                                        {"error", printable(resync.state.error().message, true)},
                                        {"retry_in_seconds", retry_in}})
                          << std::endl;
            else
                std::cerr << "nodeport watch: " << printable(resync.state.error().message, true)
                          << fmt::format(" (retried in {} s, or at the next change)", retry_in) << std::endl;
            return;
        }
        auto interfaces = describe(resync.state->interfaces);
        auto addrs = describe(resync.state->node_addrs);
        if (json_ && (interfaces != interfaces_ || addrs != addrs_))
            std::cout << json_line({{"event", "changed"},
                                    {"interfaces", to_json(resync.state->interfaces)},
                                    {"node_addrs", to_json(resync.state->node_addrs)}})
                      << std::endl;
        if (!json_ && interfaces != interfaces_)
            std::cout << "external interfaces: " << interfaces << std::endl;
        if (!json_ && addrs != addrs_)
            std::cout << "node addresses: " << addrs << std::endl;
        interfaces_ = std::move(interfaces);
        addrs_ = std::move(addrs);
    }

private:
    bool json_;
    bool started_ = false;
    std::string interfaces_;
    std::string addrs_;
};

}  // namespace

int cmd_watch(const Args& argv) {
    // Blocked first, so a SIGHUP that comes early (a reload while starting)
    // waits for the loop instead of ending the process.
    Fd signals = block_signals({SIGTERM, SIGINT, SIGHUP});
    auto inv = parse_with_config("watch", argv, load_description());
    if (!inv)
        return exit_ok;
    WatchOptions options = watch_options(*inv);
    const bool json = inv->options.count("json") > 0;
    int stopped_by = 0;
    // SIGHUP: the same command line and --config file, read again; bad input
    // is logged and the options in use are kept.
    auto on_signal = [&]() -> WatchControl {
        signalfd_siginfo info{};
        if (::read(signals.get(), &info, sizeof info) != sizeof info)
            return {};
        int signo = static_cast<int>(info.ssi_signo);
        if (signo != SIGHUP) {
            stopped_by = signo;
            return WatchControl{.stop = true, .reload = std::nullopt};
        }
        try {
            auto again = parse_with_config("watch", argv, load_description());
            if (!again)
                return {};
            auto reloaded = watch_options(*again);
            if (json)
                std::cout << json_line({{"event", "reloaded"}}) << std::endl;
            else
                std::cout << "re-read the options on SIGHUP" << std::endl;
            return WatchControl{.stop = false, .reload = std::move(reloaded)};
        } catch (const std::exception& e) {
            if (json) {
                nlohmann::json out{{"event", "reload_refused"}, {"error", printable(e.what(), true)}};
                if (const auto* bad = dynamic_cast<const UsageError*>(&e))
                    out["field"] = printable(bad->field);
                std::cerr << json_line(out) << std::endl;
            } else {
                std::cerr << "nodeport watch: SIGHUP: " << printable(e.what(), true)
                          << " (the options in use are kept)" << std::endl;
            }
            return {};
        }
    };
    Reporter reporter(json);
    succeeded(watch(std::move(options), signals.get(), on_signal, std::ref(reporter)));
    if (json) {
        std::cout << json_line({{"event", "stopped"},
                                {"signal", stopped_by ? nlohmann::json(sigabbrev_np(stopped_by)) : nlohmann::json()}})
                  << std::endl;
        return exit_ok;
    }
    std::string by = stopped_by ? fmt::format(" by {}", sigabbrev_np(stopped_by)) : "";
    std::cout << "stopped" << by << "; the datapath stays attached" << std::endl;
    return exit_ok;
}

}  // namespace nodeport::cli
