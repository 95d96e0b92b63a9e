// np-connbench: new-connection rate through a path.
//
// Each thread loops: socket, connect (blocking), send 1 byte, read the 1-byte
// reply, close. It stops after --duration seconds or --count connections,
// whichever comes first, and prints one JSON object on stdout: connections/s
// and the p50/p99 of the connect() call and of the whole transaction
// (socket() to close()). Failed connections are counted by errno, never in
// the rate or the latencies.
//
// Every socket has 2 s send/receive timeouts, so a dropped SYN or a lost reply
// costs at most that and the run always ends.

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "args.hpp"

namespace {

using Clock = std::chrono::steady_clock;

constexpr const char* usage =
    "usage: np-connbench [--target] IP:PORT|[IPV6]:PORT [-d|--duration SECONDS] [-n|--count N]\n"
    "                    [-c|--concurrency THREADS] [--warmup SECONDS] [--source IP] [--linger0]\n"
    "  connect, send 1 byte, read 1 byte, close, in a loop; prints JSON on stdout\n"
    "  --duration   run this long (default 5; with --count, whichever ends first)\n"
    "  --count      stop after this many connections in total\n"
    "  --concurrency  client threads (default 1)\n"
    "  --warmup     run this long first without recording (default 0.2)\n"
    "  --source     bind to this local address, of the target's family (port still chosen at connect,\n"
    "               as without it)\n"
    "  --linger0    close with SO_LINGER {1,0} (RST, no TIME_WAIT on the client)\n";

struct Options {
    bench::Endpoint target;
    std::string target_text;
    double duration_s = 5;
    std::uint64_t count = 0;  // 0: no limit
    unsigned threads = 1;
    double warmup_s = 0.2;
    std::optional<bench::Endpoint> source;
    std::string source_text;
    bool linger0 = false;
};

struct ThreadResult {
    std::vector<std::uint32_t> connect_ns;
    std::vector<std::uint32_t> txn_ns;
    std::map<int, std::uint64_t> errors;  // errno -> count
};

std::uint32_t ns_between(Clock::time_point a, Clock::time_point b) {
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(b - a).count();
    return static_cast<std::uint32_t>(std::clamp<std::int64_t>(ns, 0, UINT32_MAX));
}

// One connection; returns 0 or the errno of the step that failed.
int transact(const Options& opt, std::uint32_t& connect_ns, std::uint32_t& txn_ns) {
    auto t0 = Clock::now();
    int fd = socket(opt.target.family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return errno;
    timeval tv{2, 0};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (opt.linger0) {
        linger lg{1, 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    int err = 0;
    if (opt.source) {
        // Without this, bind picks the port and connect can no longer reuse
        // one in TIME_WAIT (tcp_tw_reuse) or share it across destinations.
        // An IPv6 socket takes this IPPROTO_IP option too.
        int one = 1;
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        if (bind(fd, opt.source->addr(), opt.source->len) != 0)
            err = errno;
    }
    auto c0 = Clock::now();
    if (err == 0 && connect(fd, opt.target.addr(), opt.target.len) != 0)
        err = errno;
    auto c1 = Clock::now();
    char byte = 'x';
    if (err == 0 && write(fd, &byte, 1) != 1)
        err = errno ? errno : EIO;
    if (err == 0) {
        ssize_t n = read(fd, &byte, 1);
        if (n != 1)
            err = n == 0 ? ECONNRESET : errno;
    }
    close(fd);
    auto t1 = Clock::now();
    connect_ns = ns_between(c0, c1);
    txn_ns = ns_between(t0, t1);
    return err;
}

void worker(const Options& opt, Clock::time_point warm_until, Clock::time_point deadline,
            std::atomic<std::uint64_t>& claimed, ThreadResult& out) {
    std::uint32_t c = 0, t = 0;
    // Bounded by the warm-up deadline.
    while (Clock::now() < warm_until)
        transact(opt, c, t);
    // Bounded by the deadline and, with --count, by the shared counter.
    while (Clock::now() < deadline) {
        if (opt.count && claimed.fetch_add(1, std::memory_order_relaxed) >= opt.count)
            break;
        if (int err = transact(opt, c, t); err != 0) {
            ++out.errors[err];
            continue;
        }
        out.connect_ns.push_back(c);
        out.txn_ns.push_back(t);
    }
}

double percentile_us(std::vector<std::uint32_t>& v, double p) {
    if (v.empty())
        return 0;
    auto k = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1));
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
    return v[k] / 1000.0;
}

nlohmann::json latency(std::vector<std::uint32_t>& v) {
    double p50 = percentile_us(v, 0.50);
    double p99 = percentile_us(v, 0.99);
    double max = v.empty() ? 0 : *std::max_element(v.begin(), v.end()) / 1000.0;
    return {{"p50", p50}, {"p99", p99}, {"max", max}};
}

Options parse(int argc, char** argv) {
    // Short forms of the common options.
    std::vector<std::string> words(argv, argv + argc);
    std::vector<char*> longs;
    for (auto& w : words) {
        if (w == "-c")
            w = "--concurrency";
        else if (w == "-d")
            w = "--duration";
        else if (w == "-n")
            w = "--count";
        else if (w == "-h")
            w = "--help";
        longs.push_back(w.data());
    }
    bench::Args args(static_cast<int>(longs.size()), longs.data(), {"linger0", "help"},
                     {"target", "duration", "count", "concurrency", "warmup", "source"});
    if (args.has("help")) {
        std::cout << usage;
        std::exit(0);
    }
    Options opt;
    auto target = args.str("target");
    if (!target && args.positional().size() == 1)
        target = args.positional()[0];
    else if (!args.positional().empty())
        throw bench::UsageError("one target IP:PORT, given once");
    if (!target)
        throw bench::UsageError("a target IP:PORT or [IPV6]:PORT is required");
    opt.target = bench::parse_endpoint(*target, "--target");
    opt.target_text = *target;
    opt.duration_s = args.number<double>("duration", 0.01, 3600).value_or(opt.duration_s);
    opt.count = args.number<std::uint64_t>("count", 1, 1'000'000'000).value_or(0);
    opt.threads = args.number<unsigned>("concurrency", 1, 256).value_or(1);
    opt.warmup_s = args.number<double>("warmup", 0, 60).value_or(opt.warmup_s);
    opt.linger0 = args.has("linger0");
    if (auto source = args.str("source")) {
        opt.source = bench::parse_address(*source, 0, "--source");
        opt.source_text = *source;
        if (opt.source->family() != opt.target.family())
            throw bench::UsageError("--source: " + *source + " is not of the target's family (" + *target + ")");
    }
    return opt;
}

}  // namespace

int main(int argc, char** argv) {
    Options opt;
    try {
        opt = parse(argc, argv);
    } catch (const bench::UsageError& e) {
        std::cerr << "np-connbench: " << e.what() << "\n" << usage;
        return 2;
    }

    auto start = Clock::now();
    auto warm_until = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(opt.warmup_s));
    auto deadline = warm_until + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(opt.duration_s));
    std::atomic<std::uint64_t> claimed{0};
    std::vector<ThreadResult> results(opt.threads);
    std::vector<Clock::time_point> ends(opt.threads);
    {
        std::vector<std::jthread> threads;
        for (unsigned i = 0; i < opt.threads; ++i) {
            results[i].connect_ns.reserve(1 << 16);
            results[i].txn_ns.reserve(1 << 16);
            threads.emplace_back([&, i] {
                worker(opt, warm_until, deadline, claimed, results[i]);
                ends[i] = Clock::now();
            });
        }
    }
    auto end = *std::max_element(ends.begin(), ends.end());
    double elapsed = std::chrono::duration<double>(end - warm_until).count();

    ThreadResult all;
    for (auto& r : results) {
        all.connect_ns.insert(all.connect_ns.end(), r.connect_ns.begin(), r.connect_ns.end());
        all.txn_ns.insert(all.txn_ns.end(), r.txn_ns.begin(), r.txn_ns.end());
        for (auto [err, n] : r.errors)
            all.errors[err] += n;
    }
    std::uint64_t ok = all.connect_ns.size();
    std::uint64_t failed = 0;
    nlohmann::json errors = nlohmann::json::object();
    for (auto [err, n] : all.errors) {
        errors[strerrorname_np(err) ? strerrorname_np(err) : std::to_string(err)] = n;
        failed += n;
    }
    nlohmann::json out = {
        {"target", opt.target_text},
        {"threads", opt.threads},
        {"source", opt.source ? nlohmann::json(opt.source_text) : nlohmann::json(nullptr)},
        {"duration_s", elapsed},
        {"connections", ok},
        {"errors", failed},
        {"error_kinds", errors},
        {"conn_per_s", elapsed > 0 ? static_cast<double>(ok) / elapsed : 0.0},
        {"connect_us", latency(all.connect_ns)},
        {"txn_us", latency(all.txn_ns)},
    };
    std::cout << out.dump() << "\n";
    return ok > 0 ? 0 : 1;
}
