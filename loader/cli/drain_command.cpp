// `nodeport drain BACKEND`, and the wait behind `del --drain` / `set --drain`.
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <unistd.h>

#include <cmath>
#include <iostream>

#include "cli/cli.hpp"
#include "cli/drain.hpp"

namespace nodeport::cli {
namespace {

namespace po = boost::program_options;
using std::chrono::milliseconds;

constexpr unsigned default_timeout_s = 30;
constexpr unsigned max_timeout_s = 86400;

std::string plural(unsigned n, std::string_view word) {
    return fmt::format("{} {}{}", n, word, n == 1 ? "" : "s");
}

std::string by_path(const Connections& c) { return fmt::format("external {}, local {}", c.external, c.local); }

nlohmann::json to_json(const Connections& c) {
    return {{"external", c.external}, {"local", c.local}, {"total", c.total()}};
}

}  // namespace

po::options_description drain_description() {
    po::options_description options;
    options.add_options()("drain", "then wait until no connection nodeport translated reaches the removed or replaced "
                                   "backend (exit 5 when --timeout passes first)")(
        "timeout", po::value<std::string>(),
        fmt::format("seconds --drain waits at most (0-{}, default {})", max_timeout_s, default_timeout_s).c_str());
    return options;
}

std::optional<milliseconds> drain_option(const Invocation& inv) {
    const bool timeout = inv.options.count("timeout") > 0;
    if (!inv.options.count("drain")) {
        if (timeout)
            throw UsageError("timeout", "is taken only with --drain");
        return std::nullopt;
    }
    return std::chrono::seconds(timeout ? seconds_option(inv, "timeout", 0, max_timeout_s) : default_timeout_s);
}

int drain_and_report(const PortTable& table, const std::vector<Backend>& backends,
                     milliseconds timeout, nlohmann::json* out) {
    std::vector<std::string> names;
    for (const auto& b : backends)
        names.push_back(to_string(b));
    const bool progress_lines = out == nullptr && !json_output() && isatty(STDOUT_FILENO);
    auto next_line = milliseconds(1000);
    const auto start = std::chrono::steady_clock::now();
    auto result = succeeded(table.drain(backends, timeout, [&](const Connections& left) {
        auto waited = std::chrono::steady_clock::now() - start;
        if (progress_lines && waited >= next_line) {
            std::cout << fmt::format("waiting: {} left ({})\n", plural(left.total(), "connection"), by_path(left))
                      << std::flush;
            next_line += milliseconds(1000);
        }
        return true;
    }));
    const double secs = std::chrono::duration<double>(result.waited).count();
    if (out != nullptr || json_output()) {
        nlohmann::json drained{{"backends", names},
                               {"drained", result.drained},
                               {"waited_seconds", std::round(secs * 1000) / 1000},
                               {"timeout_seconds", std::chrono::duration_cast<std::chrono::seconds>(timeout).count()},
                               {"left", to_json(result.left)},
                               {"local_not_counted", result.local_not_counted.empty()
                                                         ? nlohmann::json()
                                                         : nlohmann::json(result.local_not_counted)}};
        if (out != nullptr)
            (*out)["drain"] = std::move(drained);
        else
            std::cout << json_line(drained) << "\n";
    } else {
        if (!result.local_not_counted.empty())
            std::cerr << "nodeport: note: " << result.local_not_counted << "\n";
        const std::string who = names.empty() ? "nothing to drain" : fmt::format("{}", fmt::join(names, ", "));
        if (result.drained)
            std::cout << fmt::format("{}{} ({:.1f} s)\n", who, names.empty() ? "" : " drained", secs);
        else
            std::cout << fmt::format("{}: {} left after {:.1f} s ({})\n", who,
                                     plural(result.left.total(), "connection"), secs, by_path(result.left));
    }
    return result.drained ? exit_ok : exit_not_drained;
}

// drain BACKEND [--timeout S]: changes nothing.
int cmd_drain(const Args& argv) {
    po::options_description options;
    options.add_options()("timeout", po::value<std::string>(),
                          fmt::format("seconds to wait at most (0-{}, default {})", max_timeout_s, default_timeout_s)
                              .c_str());
    auto inv = parse("drain", argv, options, {"backend"});
    if (!inv)
        return exit_ok;
    Backend backend = valid(parse_backend(inv->args[0]));
    const milliseconds timeout = std::chrono::seconds(
        inv->options.count("timeout") ? seconds_option(*inv, "timeout", 0, max_timeout_s) : default_timeout_s);
    auto table = succeeded(PortTable::open(inv->pin_dir));
    // Still mapped: new connections keep arriving, and the wait may not end.
    for (const auto& m : succeeded(table.list()))
        if (m.backend == backend)
            std::cerr << fmt::format("nodeport: note: {} is still mapped on {}: new connections keep reaching it\n",
                                     to_string(backend), to_string(m.node_port));
    return drain_and_report(table, {backend}, timeout, nullptr);
}

}  // namespace nodeport::cli
