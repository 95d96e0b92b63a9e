// np-portbench: the `ports` table through the C++ API (nodeport::PortTable),
// for the benchmarks.
//
//   fill  --pin-dir DIR --count N --first-port P --backend IP:PORT [--proto tcp|udp]
//       maps node ports P .. P+N-1 to the backend, one PortTable::set each
//   churn --pin-dir DIR --port P --backend IP:PORT --iterations K
//       K times: set(P), then remove(P), each timed on its own (every sample printed)
//
// Prints one JSON object on stdout. A failed call ends the run with exit 1.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <iostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "args.hpp"
#include "nodeport/port_table.hpp"
#include "nodeport/types.hpp"

namespace {

using Clock = std::chrono::steady_clock;

constexpr const char* usage =
    "usage: np-portbench fill  --pin-dir DIR --count N --first-port P --backend IP:PORT [--proto tcp|udp]\n"
    "       np-portbench churn --pin-dir DIR --port P --backend IP:PORT --iterations K\n";

struct Fatal : std::runtime_error {
    using std::runtime_error::runtime_error;
};

double us_since(Clock::time_point t0) {
    return std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
}

template <class T>
T check(nodeport::Result<T> r, const std::string& what) {
    if (!r)
        throw Fatal(what + ": " + r.error().message);
    if constexpr (!std::is_void_v<T>)
        return std::move(*r);
}

template <class T>
T parsed(nodeport::Parsed<T> r) {
    if (!r)
        throw bench::UsageError(r.error().field + ": " + r.error().message);
    return std::move(*r);
}

// Every sample, in µs rounded to 10 ns, in the order measured.
nlohmann::json samples(const std::vector<double>& v) {
    nlohmann::json out = nlohmann::json::array();
    for (double x : v)
        out.push_back(std::round(x * 100) / 100);
    return out;
}

nlohmann::json fill(const bench::Args& args, nodeport::PortTable& table, nodeport::Backend backend) {
    auto count = args.number<std::uint32_t>("count", 1, 65535);
    auto first = args.number<std::uint32_t>("first-port", 1, 65535);
    if (!count || !first)
        throw bench::UsageError("fill needs --count and --first-port");
    if (*first + *count - 1 > 65535)
        throw bench::UsageError("--first-port + --count runs past port 65535");
    auto proto = parsed(nodeport::parse_proto(args.str("proto").value_or("tcp")));
    auto t0 = Clock::now();
    for (std::uint32_t i = 0; i < *count; ++i) {
        nodeport::Mapping m{nodeport::NodePort{proto, static_cast<std::uint16_t>(*first + i)}, backend, ""};
        check(table.set(m), "set " + nodeport::to_string(m.node_port));
    }
    double us = us_since(t0);
    return {{"op", "fill"}, {"count", *count}, {"seconds", us / 1e6}, {"per_s", *count / (us / 1e6)},
            {"us_per_set", us / *count}};
}

nlohmann::json churn(const bench::Args& args, nodeport::PortTable& table, nodeport::Backend backend) {
    auto port = args.number<std::uint16_t>("port", 1, 65535);
    auto iterations = args.number<unsigned>("iterations", 1, 1'000'000);
    if (!port || !iterations)
        throw bench::UsageError("churn needs --port and --iterations");
    nodeport::NodePort np{nodeport::Proto::tcp, *port};
    std::vector<double> set_us, del_us;
    for (unsigned i = 0; i < *iterations; ++i) {
        auto t0 = Clock::now();
        check(table.set(nodeport::Mapping{np, backend, ""}), "set");
        set_us.push_back(us_since(t0));
        t0 = Clock::now();
        auto removed = check(table.remove(np), "remove");
        del_us.push_back(us_since(t0));
        if (removed.outcome != nodeport::RemoveOutcome::removed)
            throw Fatal("remove: the port was not mapped");
    }
    return {{"op", "churn"}, {"add_us", samples(set_us)}, {"del_us", samples(del_us)}};
}

}  // namespace

int main(int argc, char** argv) {
    try {
        bench::Args args(argc, argv, {"help"},
                         {"pin-dir", "count", "first-port", "backend", "proto", "port", "iterations"});
        if (args.has("help")) {
            std::cout << usage;
            return 0;
        }
        if (args.positional().size() != 1)
            throw bench::UsageError("one command: fill or churn");
        auto pin_dir = args.str("pin-dir");
        auto backend_text = args.str("backend");
        if (!pin_dir || !backend_text)
            throw bench::UsageError("--pin-dir and --backend are required");
        auto backend = parsed(nodeport::parse_backend(*backend_text));
        const auto& cmd = args.positional()[0];
        if (cmd != "fill" && cmd != "churn")
            throw bench::UsageError("unknown command " + cmd);

        auto t0 = Clock::now();
        auto table = check(nodeport::PortTable::open(*pin_dir), "open " + *pin_dir);
        double open_us = us_since(t0);
        auto out = cmd == "fill" ? fill(args, table, backend) : churn(args, table, backend);
        out["open_us"] = open_us;
        std::cout << out.dump() << "\n";
        return 0;
    } catch (const bench::UsageError& e) {
        std::cerr << "np-portbench: " << e.what() << "\n" << usage;
        return 2;
    } catch (const Fatal& e) {
        std::cerr << "np-portbench: " << e.what() << "\n";
        return 1;
    }
}
