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

#include "cli/cli.hpp"
#include "cli/invocation.hpp"
#include "cli/load_options.hpp"
#include "cli/signals.hpp"
#include "nodeport/abi.h"
#include "nodeport/fd.hpp"
#include "nodeport/interfaces.hpp"
#include "nodeport/watch.hpp"

namespace nodeport::cli {
namespace {

// The command line (and --config file) read into watch's options; bad input
// throws UsageError. Only the interface names' syntax is checked: a named
// interface that is missing now is attached when it appears. Without
// interface options (or --tc-attach), watch follows the recorded ones.
WatchOptions watch_options(const Invocation& inv) {
    // Every load option is checked; watch uses the interfaces, node-ip,
    // tc-attach and wait (cgroup, forward and the timeouts are load's alone).
    auto [load_options, choice] = load_choices(inv, InterfaceCheck::syntax);
    WatchOptions options{.pin_dir = inv.pin_dir,
                         .interfaces = std::nullopt,
                         .node_ips = std::move(load_options.node_ips),
                         .tc_attach = std::nullopt};
    if (gives_interfaces(inv))
        options.interfaces = std::move(choice);
    if (gives_tc_attach(inv))
        options.tc_attach = load_options.tc_attach;
    options.lock_wait = load_options.lock_wait;
    return options;
}

// "a, b, c and 7 more": a line that stays readable with hundreds of names.
std::string some_of(const std::vector<std::string>& names, std::size_t shown = 10) {
    std::string out;
    for (std::size_t i = 0; i < names.size() && i < shown; ++i)
        out += (i ? ", " : "") + printable(names[i]);
    if (names.size() > shown)
        out += fmt::format(" and {} more", names.size() - shown);
    return out;
}

// One line per change, so the journal tells when an interface came or went.
// With --json, one JSON object per line: {"event": "started"}, then
// {"event": "changed", "choice", "choice_from", "interfaces", "node_addrs",
// "unattached"} when any of them changed, {"event": "retry", "error": ...,
// "retry_in_seconds": S} on stderr when a resync failed, and {"event":
// "error", "error": ..., "unattached": [...]} on stderr when more interfaces
// are chosen than nodeport attaches to (no retry: the next change resyncs).
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
        const NodeState& state = *resync.state;
        auto interfaces = describe(state.interfaces);
        auto addrs = describe(state.node_addrs);
        auto choice = describe(state.followed.choice) + (state.from_record ? " (recorded)" : "");
        const bool changed = interfaces != interfaces_ || addrs != addrs_ || choice != choice_ ||
                             state.unattached != unattached_;
        if (json_ && changed) {
            nlohmann::json unattached = nlohmann::json::array();
            for (const auto& name : state.unattached)
                unattached.push_back(printable(name));
            std::cout << json_line({{"event", "changed"},
                                    {"choice", printable(describe(state.followed.choice))},
                                    {"choice_from", state.from_record ? "recorded" : "options"},
                                    {"interfaces", to_json(state.interfaces)},
                                    {"node_addrs", to_json(state.node_addrs)},
                                    {"unattached", unattached}})
                      << std::endl;
        }
        // Given on the command line or in --config, the choice says itself.
        if (!json_ && choice != choice_ && state.from_record)
            std::cout << "interface choice: " << printable(choice) << std::endl;
        if (!json_ && interfaces != interfaces_)
            std::cout << "external interfaces: " << interfaces << std::endl;
        if (!json_ && addrs != addrs_)
            std::cout << "node addresses: " << addrs << std::endl;
        if (!state.unattached.empty() && state.unattached != unattached_)
            report_over_limit(state);
        interfaces_ = std::move(interfaces);
        addrs_ = std::move(addrs);
        choice_ = std::move(choice);
        unattached_ = state.unattached;
    }

private:
    void report_over_limit(const NodeState& state) const {
        const std::string message =
            fmt::format("{} interfaces chosen ({}); nodeport attaches to at most {}: {} not attached, so mapped ports "
                        "cannot be reached through {}: {} (leave some out with --exclude)",
                        state.chosen, describe(state.followed.choice), NP_MAX_TC_ATTACHMENTS, state.unattached.size(),
                        state.unattached.size() == 1 ? "it" : "them", some_of(state.unattached));
        if (json_) {
            nlohmann::json unattached = nlohmann::json::array();
            for (const auto& name : state.unattached)
                unattached.push_back(printable(name));
            std::cerr << json_line({{"event", "error"}, {"error", printable(message)}, {"unattached", unattached}})
                      << std::endl;
        } else {
            std::cerr << "nodeport watch: " << printable(message) << std::endl;
        }
    }

    bool json_;
    bool started_ = false;
    std::string interfaces_;
    std::string addrs_;
    std::string choice_;
    std::vector<std::string> unattached_;
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
