#include "nodeport/stats.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <algorithm>
#include <cerrno>
#include <map>

#include "base/map_keys.hpp"
#include "base/pin_dir.hpp"
#include "base/port_key.hpp"
#include "nodeport/port_table.hpp"

namespace nodeport {
namespace {

// A per-CPU map lookup fills one value per possible CPU (each padded to 8
// bytes: both values here are multiples of 8 already).
Result<std::size_t> possible_cpus() {
    int n = libbpf_num_possible_cpus();
    if (n <= 0)
        return errno_error(-n, "count possible CPUs");
    return static_cast<std::size_t>(n);
}

// The programs of a build without counters pin neither map: say so rather
// than "not loaded", which the `ports` map already disproved.
Result<Fd> open_counters(const PinDir& dir, std::string_view name) {
    auto map = dir.map(name);
    if (!map && map.error().kind == ErrorKind::not_loaded)
        return std::unexpected(Error{ENOENT, "the loaded programs keep no counters (" + std::string(name) +
                                                 " is missing): run nodeport load again with this version"});
    return map;
}

// Every port's counters, summed: one walk of `port_counters` (get_next_key
// and a lookup per key), or the keys of `only` (both families).
Result<std::map<MappingKey, PortCounters>> read_port_counters(int fd, std::size_t cpus,
                                                              std::optional<NodePort> only) {
    std::vector<np_port_key> keys;
    if (only) {
        keys.push_back(port_key(*only, Family::ipv4));
        keys.push_back(port_key(*only, Family::ipv6));
    } else {
        auto walked = map_keys<np_port_key>(fd, "port_counters");
        if (!walked)
            return std::unexpected(walked.error());
        keys = std::move(*walked);
    }
    std::map<MappingKey, PortCounters> out;
    std::vector<np_port_counters> per_cpu(cpus);
    for (const auto& key : keys) {
        if (bpf_map_lookup_elem(fd, &key, per_cpu.data()) != 0) {
            if (errno == ENOENT)
                continue;  // never used, or reset since the walk
            return errno_error(errno, "read port_counters");
        }
        out[from_port_key(key)] = sum_per_cpu(per_cpu);
    }
    return out;
}

Result<std::array<std::uint64_t, NP_REASON_COUNT>> read_reasons(int fd, std::size_t cpus) {
    std::array<std::uint64_t, NP_REASON_COUNT> out{};
    std::vector<std::uint64_t> per_cpu(cpus);
    for (__u32 id = 0; id < NP_REASON_COUNT; ++id) {
        if (bpf_map_lookup_elem(fd, &id, per_cpu.data()) != 0)
            return errno_error(errno, "read reason_counters");
        for (auto n : per_cpu)
            out[id] += n;
    }
    return out;
}

using C = PortCounters;
constexpr PortCounterInfo kCounters[] = {
    {"local_connects", &C::local_connects, "CONNECTS", 10, "nodeport_port_socket_calls_total", "kind", "connect"},
    {"local_sends", &C::local_sends, "SENDS", 10, "nodeport_port_socket_calls_total", "kind", "send"},
    {"external_flows", &C::external_flows, "FLOWS", 10, "nodeport_port_flows_total", "", ""},
    {"to_backend_packets", &C::to_backend_packets, "TO-PKTS", 10, "nodeport_port_packets_total", "direction",
     "to_backend"},
    {"to_backend_bytes", &C::to_backend_bytes, "TO-BYTES", 12, "nodeport_port_bytes_total", "direction",
     "to_backend"},
    {"from_backend_packets", &C::from_backend_packets, "FROM-PKTS", 10, "nodeport_port_packets_total", "direction",
     "from_backend"},
    {"from_backend_bytes", &C::from_backend_bytes, "FROM-BYTES", 12, "nodeport_port_bytes_total", "direction",
     "from_backend"},
};

// The table above holds every counter of NP_PORT_COUNTERS, in its order, by
// name and by member.
#define NODEPORT_COUNTER_NAME(name) #name,
#define NODEPORT_COUNTER_MEMBER(name) &C::name,
constexpr std::string_view kCounterNames[] = {NP_PORT_COUNTERS(NODEPORT_COUNTER_NAME)};
constexpr std::uint64_t C::*kCounterMembers[] = {NP_PORT_COUNTERS(NODEPORT_COUNTER_MEMBER)};
#undef NODEPORT_COUNTER_NAME
#undef NODEPORT_COUNTER_MEMBER
static_assert(std::ranges::equal(kCounters, kCounterNames, {}, &PortCounterInfo::name) &&
                  std::ranges::equal(kCounters, kCounterMembers, {}, &PortCounterInfo::member),
              "kCounters must list NP_PORT_COUNTERS, in order");

}  // namespace

std::span<const PortCounterInfo> port_counters() { return kCounters; }

PortCounters sum_per_cpu(std::span<const np_port_counters> per_cpu) {
    PortCounters sum;
#define NODEPORT_COUNTER_ADD(name) sum.name += c.name;
    for (const auto& c : per_cpu) {
        NP_PORT_COUNTERS(NODEPORT_COUNTER_ADD)
    }
#undef NODEPORT_COUNTER_ADD
    return sum;
}

Result<Stats> read_stats(const std::filesystem::path& pin_dir, std::optional<NodePort> only) {
    return pin_dir::with_opened(pin_dir, [&](const PinDir& dir) { return read_stats(dir, only); });
}

Result<Stats> read_stats(const PinDir& pin_dir, std::optional<NodePort> only) {
    auto table = PortTable::open(pin_dir);
    if (!table)
        return std::unexpected(table.error());
    auto port_fd = open_counters(pin_dir, "port_counters");
    if (!port_fd)
        return std::unexpected(port_fd.error());
    auto reason_fd = open_counters(pin_dir, "reason_counters");
    if (!reason_fd)
        return std::unexpected(reason_fd.error());
    auto cpus = possible_cpus();
    if (!cpus)
        return std::unexpected(cpus.error());

    // The mappings first: a port mapped after this read is left out, and the
    // counters of a port unmapped meanwhile have no mapping to join.
    std::vector<Mapping> mappings;
    if (only) {
        auto got = table->get(*only);
        if (!got)
            return std::unexpected(got.error());
        mappings = std::move(*got);
    } else {
        auto all = table->list();
        if (!all)
            return std::unexpected(all.error());
        mappings = std::move(*all);
    }
    auto counters = read_port_counters(port_fd->get(), *cpus, only);
    if (!counters)
        return std::unexpected(counters.error());
    auto passed = read_reasons(reason_fd->get(), *cpus);
    if (!passed)
        return std::unexpected(passed.error());

    Stats stats;
    stats.passed = *passed;
    for (auto& m : mappings) {
        auto found = counters->find(key_of(m));
        stats.ports.push_back({std::move(m), found == counters->end() ? PortCounters{} : found->second});
    }
    return stats;
}

}  // namespace nodeport
