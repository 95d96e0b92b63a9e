// nodeport stats: the datapath's counters per node port and per reason a
// packet or socket call was left untouched; as a table, JSON, Prometheus
// text, or a live table of rates (--watch).
#include <fmt/chrono.h>
#include <fmt/format.h>
#include <poll.h>
#include <sys/stat.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>
#include <ctime>
#include <iostream>
#include <map>
#include <optional>
#include <vector>

#include "cli/cli.hpp"
#include "cli/invocation.hpp"
#include "cli/signals.hpp"
#include "nodeport/metrics.hpp"
#include "nodeport/pin_dir.hpp"
#include "nodeport/reasons.hpp"
#include "nodeport/stats.hpp"
#include "nodeport/status.hpp"

namespace nodeport::cli {
namespace {

namespace po = boost::program_options;

nlohmann::json to_json(const PortStats& p) {
    auto entry = cli::to_json(p.mapping);
    for (const auto& counter : port_counters())
        entry[counter.name] = p.counters.*counter.member;
    return entry;
}

// {"passed": [...], "ports": [...]}, as one DOM's dump(2) would write it (keys
// sorted), with the ports streamed (stream_json_array).
void print_json(const Stats& stats) {
    nlohmann::json passed = nlohmann::json::array();
    for (const auto& r : reasons())
        passed.push_back({{"reason", r.name}, {"path", to_string(r.path)}, {"count", stats.passed[r.id]}});
    std::cout << "{\n  \"passed\": " << json_at_depth(passed, 1) << ",\n  \"ports\": ";
    stream_json_array(std::cout, stats.ports.size(), [&](std::size_t i) { return to_json(stats.ports[i]); }, 1);
    std::cout << "\n}\n";
}

// A port's counters as the table shows them (port_counters() order):
// totals, or rates.
using Cells = std::vector<std::string>;

Cells totals(const PortCounters& c) {
    Cells cells;
    for (const auto& counter : port_counters())
        cells.push_back(std::to_string(c.*counter.member));
    return cells;
}

// What one counter counted between two reads. A counter that went down was
// reset in between (the port changed owner; the maps were made again by an
// unload and a load): it counts from zero.
std::uint64_t counted(std::uint64_t now, std::uint64_t before) {
    return now - (now >= before ? before : 0);
}

std::string per_second(std::uint64_t now, std::uint64_t before, double seconds) {
    return fmt::format("{:.1f}", static_cast<double>(counted(now, before)) / seconds);
}

Cells rates(const PortCounters& now, const PortCounters& before, double seconds) {
    Cells cells;
    for (const auto& counter : port_counters())
        cells.push_back(per_second(now.*counter.member, before.*counter.member, seconds));
    return cells;
}

// Whether any counter of the port counted something between the reads.
bool moved(const PortCounters& now, const PortCounters& before) {
    return std::ranges::any_of(port_counters(),
                               [&](const auto& counter) { return counted(now.*counter.member, before.*counter.member) > 0; });
}

// --watch without --all draws only the ports that counted something: a
// frame of every port is some 16 MB at 131,072 mappings. The rest in one line.
void print_quiet_ports(std::size_t quiet, std::string_view what) {
    if (quiet > 0)
        std::cout << fmt::format("({} mapped port{} {}; --all shows every port)\n", quiet, quiet == 1 ? "" : "s",
                                 what);
}

// PORT, BACKEND, the counters, OWNER: `cells` one per counter.
void print_port_line(std::string_view port, std::string_view backend, const Cells& cells, std::string_view owner) {
    std::string line = fmt::format("{:<11} {:<21}", port, backend);
    for (std::size_t i = 0; i < cells.size(); ++i)
        line += fmt::format(" {:>{}}", cells[i], port_counters()[i].width);
    std::cout << line << "  " << owner << "\n";
}

void print_port_header(std::string_view unit) {
    Cells headings;
    for (const auto& counter : port_counters())
        headings.push_back(fmt::format("{}{}", counter.column, unit));
    print_port_line("PORT", "BACKEND", headings, "OWNER");
}

void print_port_row(const Mapping& m, const Cells& c) {
    print_port_line(to_string(m.node_port), to_string(m.backend), c, printable(m.owner));
}

// The reasons whose cell is not empty: every reason with `all`, otherwise
// those the caller gave a value.
void print_reasons(const std::array<std::string, NP_REASON_COUNT>& cells, std::string_view title,
                   std::string_view column, bool all) {
    std::vector<const ReasonInfo*> shown;
    for (const auto& r : reasons())
        if (all || !cells[r.id].empty())
            shown.push_back(&r);
    std::cout << "\n" << title << (shown.empty() ? ": none" : ":") << "\n";
    if (shown.empty())
        return;
    std::cout << fmt::format("{:<9} {:<22} {:>12}  {}\n", "PATH", "REASON", column, "MEANING");
    for (const auto* r : shown)
        std::cout << fmt::format("{:<9} {:<22} {:>12}  {}\n", to_string(r->path), r->name,
                                 cells[r->id].empty() ? "0" : cells[r->id], r->help);
}

// `only_counted`: the ports with a count only (--watch without --all).
void print_totals(const Stats& stats, bool all, bool only_counted = false) {
    print_port_header("");
    std::size_t quiet = 0;
    for (const auto& p : stats.ports) {
        if (only_counted && !moved(p.counters, PortCounters{})) {
            ++quiet;
            continue;
        }
        print_port_row(p.mapping, totals(p.counters));
    }
    print_quiet_ports(quiet, "without any count");
    std::array<std::string, NP_REASON_COUNT> cells;
    for (std::size_t i = 0; i < cells.size(); ++i)
        if (stats.passed[i] != 0)
            cells[i] = std::to_string(stats.passed[i]);
    print_reasons(cells, all ? "passed untouched, every reason" : "passed untouched (reasons counted; --all for every one)",
                  "COUNT", all);
}

void print_rates(const Stats& now, const Stats& before, double seconds, bool all) {
    std::map<std::pair<MappingKey, std::string>, PortCounters> earlier;
    for (const auto& p : before.ports)
        earlier[{key_of(p.mapping), p.mapping.owner}] = p.counters;
    print_port_header("/s");
    std::size_t quiet = 0;
    for (const auto& p : now.ports) {
        // A port that is new, or has a new owner, counts from zero.
        auto found = earlier.find({key_of(p.mapping), p.mapping.owner});
        const PortCounters& base = found == earlier.end() ? PortCounters{} : found->second;
        if (!all && !moved(p.counters, base)) {
            ++quiet;
            continue;
        }
        print_port_row(p.mapping, rates(p.counters, base, seconds));
    }
    print_quiet_ports(quiet, "without traffic since the last frame");
    std::array<std::string, NP_REASON_COUNT> cells;
    for (std::size_t i = 0; i < cells.size(); ++i)
        if (now.passed[i] != before.passed[i] || all)
            cells[i] = per_second(now.passed[i], before.passed[i], seconds);
    print_reasons(cells, "passed untouched, per second", "PER-SECOND", all);
}

// --prometheus without a port: the counters, then the node's health and flow
// tables as `nodeport status` reads them, and the build.
std::string node_prometheus(const PinDir& dir, const Stats& stats) {
    Status status = succeeded(read_status(dir));
    NodeMetricsInfo info{NODEPORT_VERSION, NODEPORT_GIT_COMMIT, succeeded(read_flow_tables(dir, status.flows))};
    return to_prometheus(stats) + to_prometheus(status, info);
}

// Writes `text` to `path` whole or not at all: into a hidden temporary file
// beside it (node_exporter reads only *.prom), flushed, then renamed over it,
// so a scrape reads the old file or the new one, never half of one.
void write_atomically(const std::filesystem::path& path, const std::string& text) {
    std::string tmp = (path.parent_path() / ("." + path.filename().string() + ".XXXXXX")).string();
    Fd fd(::mkstemp(tmp.data()));
    if (fd.get() < 0)
        throw Failure(fmt::format("output: cannot create a temporary file beside {}: {}", path.string(),
                                  std::strerror(errno)));
    auto failed = [&](std::string_view what) {
        int err = errno;
        ::unlink(tmp.c_str());
        throw Failure(fmt::format("output: {} {}: {}", what, tmp, std::strerror(err)));
    };
    for (std::size_t done = 0; done < text.size();) {
        ssize_t n = ::write(fd.get(), text.data() + done, text.size() - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            failed("write");
        done += static_cast<std::size_t>(n);
    }
    // Readable by node_exporter, which runs as its own user.
    if (::fchmod(fd.get(), 0644) != 0)
        failed("chmod");
    if (::fsync(fd.get()) != 0)
        failed("fsync");
    if (::rename(tmp.c_str(), path.c_str()) != 0)
        failed("rename");
}

// Redraws until SIGINT or SIGTERM: the totals first, then every `interval`
// the rates since the read before. On a terminal each frame replaces the
// last (ANSI clear); otherwise frames follow one another.
int watch_stats(const Invocation& inv, std::optional<NodePort> only, Stats before, unsigned interval, bool all) {
    Fd signals = block_signals({SIGINT, SIGTERM});
    const bool tty = ::isatty(STDOUT_FILENO) == 1;
    bool first = true;
    auto frame = [&](std::string_view title) {
        if (tty)
            std::cout << "\033[H\033[2J";
        else if (!first)
            std::cout << "\n";
        first = false;
        std::cout << fmt::format("nodeport stats at {:%H:%M:%S}: {} (every {} s; Ctrl-C stops)\n",
                                 fmt::localtime(std::time(nullptr)), title, interval);
    };
    auto before_at = std::chrono::steady_clock::now();
    frame("totals");
    print_totals(before, all, !all);
    std::cout << std::flush;
    for (;;) {
        pollfd pfd{signals.get(), POLLIN, 0};
        int ready = ::poll(&pfd, 1, static_cast<int>(interval * 1000));
        if (ready < 0 && errno != EINTR)
            throw Failure(fmt::format("poll: {}", std::strerror(errno)));
        if (ready > 0)
            return exit_ok;  // SIGINT or SIGTERM: a normal way to stop watching
        // Opened again each time: the pins may be unloaded and loaded meanwhile.
        Stats now = succeeded(read_stats(inv.pin_dir, only));
        auto now_at = std::chrono::steady_clock::now();
        frame("per second");
        print_rates(now, before, std::chrono::duration<double>(now_at - before_at).count(), all);
        std::cout << std::flush;
        before = std::move(now);
        before_at = now_at;
    }
}

}  // namespace

int cmd_stats(const Args& argv) {
    po::options_description options;
    options.add_options()("all", "list every reason in the table, also those never counted (and with --watch, every port)")(
        "prometheus", "print Prometheus text format (node_exporter's textfile collector); without a port, also "
        "the node's health, flow table fill and build")(
        "output", po::value<std::string>(),
        "with --prometheus: write FILE atomically (a temporary file beside it, renamed over it) instead of stdout")(
        "watch", po::value<std::string>(),
        "redraw a table of rates per second every SECONDS (1-3600) until Ctrl-C: the ports that counted something "
        "(with --all, every port)");
    auto inv = parse("stats", argv, options, {}, {"node port"});
    if (!inv)
        return exit_ok;
    std::optional<NodePort> only;
    if (!inv->args.empty())
        only = valid(parse_node_port(inv->args[0]));
    const bool json = inv->options.count("json") > 0, prometheus = inv->options.count("prometheus") > 0;
    std::optional<unsigned> watch;
    if (inv->options.count("watch"))
        watch = seconds_option(*inv, "watch", 1, 3600);
    if (json && prometheus)
        throw UsageError("prometheus", "--prometheus and --json are two formats: give one");
    if (watch && (json || prometheus))
        throw UsageError("watch", "--watch draws a table for people; --json and --prometheus are read once");

    std::optional<std::filesystem::path> output;
    if (inv->options.count("output")) {
        if (!prometheus)
            throw UsageError("output", "--output writes the --prometheus text: give --prometheus too");
        output = inv->options["output"].as<std::string>();
        std::error_code ec;
        if (output->filename().empty() || !std::filesystem::is_directory(output->parent_path().empty()
                                                                           ? "." : output->parent_path(), ec))
            throw UsageError("output", fmt::format("'{}' is not a file in an existing directory", output->string()));
    }
    const bool all = inv->options.count("all") > 0;

    const PinDir dir = succeeded(PinDir::open(inv->pin_dir));
    Stats stats = succeeded(read_stats(dir, only));
    if (only && stats.ports.empty()) {
        print_error("stats", to_string(*only) + " is not mapped");
        return exit_not_mapped;
    }
    if (watch)
        return watch_stats(*inv, only, std::move(stats), *watch, all);
    if (json)
        print_json(stats);
    else if (prometheus) {
        std::string text = only ? to_prometheus(stats) : node_prometheus(dir, stats);
        if (output)
            write_atomically(*output, text);
        else
            std::cout << text;
    }
    else
        print_totals(stats, all);
    return exit_ok;
}

}  // namespace nodeport::cli
