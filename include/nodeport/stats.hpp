// `nodeport stats`: what the datapath counted, per node port and per reason
// a packet or socket call was left untouched (the maps `port_counters` and
// `reason_counters`, nodeport/abi.h). Reads only.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "nodeport/abi.h"
#include "nodeport/pin_dir.hpp"
#include "nodeport/result.hpp"
#include "nodeport/types.hpp"

// Exported from libnodeport.so (the rest of the library is hidden).
#pragma GCC visibility push(default)

namespace nodeport {

// One port's counters summed over the CPUs: np_port_counters without its
// reserved field, generated from the same list (NP_PORT_COUNTERS, abi.h).
// They start from zero when the port goes to a new owner.
#define NODEPORT_COUNTER_FIELD(name) std::uint64_t name = 0;
struct PortCounters {
    NP_PORT_COUNTERS(NODEPORT_COUNTER_FIELD)
    friend bool operator==(const PortCounters&, const PortCounters&) = default;
};
#undef NODEPORT_COUNTER_FIELD

// How `stats` and the metrics show one counter.
struct PortCounterInfo {
    std::string_view name;                 // the field, and the key in `stats --json`
    std::uint64_t PortCounters::*member;
    std::string_view column;               // `stats`' table heading
    int width;                             // and its width
    std::string_view metric;               // the Prometheus family it is a sample of
    std::string_view label, label_value;   // its label there, when the family has several ("" when not)
};

// Every counter, in NP_PORT_COUNTERS order (checked when compiled).
std::span<const PortCounterInfo> port_counters();

// The sum of one entry's per-CPU values, as a per-CPU map lookup returns them.
PortCounters sum_per_cpu(std::span<const np_port_counters> per_cpu);

struct PortStats {
    Mapping mapping;
    PortCounters counters;  // zeros for a port mapped but not used since
};

struct Stats {
    std::vector<PortStats> ports;  // every mapped port, sorted by protocol and port
    // Packets and calls left untouched, indexed by np_reason, summed over the
    // CPUs; totals since the first load (a reload keeps them).
    std::array<std::uint64_t, NP_REASON_COUNT> passed{};
};

// Reads the counters of a loaded nodeport, joined with the `ports` map for
// backend and owner. With `only`, that port alone (none when it is not
// mapped). Counters of a port unmapped since (a race with del) are skipped.
// "not loaded" (ENOENT) as every reader says it.
Result<Stats> read_stats(const std::filesystem::path& pin_dir, std::optional<NodePort> only = std::nullopt);
Result<Stats> read_stats(const PinDir& pin_dir, std::optional<NodePort> only = std::nullopt);

}  // namespace nodeport

#pragma GCC visibility pop
