#include "explain/decision.hpp"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>
#include <string_view>

#include "base/libbpf_log.hpp"
#include "base/pin_dir.hpp"
#include "explain/first_packet.hpp"
#include "flows/flow_entries.hpp"
#include "nodeport/abi.h"
#include "nodeport/reasons.hpp"
#include "tc.skel.h"

namespace nodeport::explain_parts {
namespace {

using TcSkel = std::unique_ptr<tc_bpf, decltype(&tc_bpf__destroy)>;

// The loaded nodeport's maps that np_tc_ingress only reads on the way of a
// SYN or a datagram: shared with the copy. Every other map of the copy is
// its own.
constexpr std::array<std::string_view, 5> shared_maps{"ports", "node_addrs", "node_config", "flow_timeouts",
                                                      "node_udp"};
// The copy's own flow tables: room for the client's entries copied in.
constexpr __u32 private_entries = 1024;

// Copies the entries of the client `from` (either direction, and its
// handshakes) from the loaded nodeport's table `name` into the copy's.
template <class Value>
Result<void> copy_client_entries(const PinDir& dir, std::string_view name, int to_fd, Backend from) {
    // The client as flow keys hold it: IPv4 in the first word, the rest 0.
    __be32 client_be[4] = {};
    if (const auto* v6 = std::get_if<Ipv6>(&from.addr))
        std::memcpy(client_be, v6->bytes.data(), sizeof client_be);
    else
        client_be[0] = std::get<Ipv4>(from.addr).addr_be;
    const __u8 family = family_of(from.addr) == Family::ipv6 ? NP_FAMILY_IPV6 : NP_FAMILY_IPV4;
    return for_each_flow_entry<Value>(dir, name, [&](int, const np_flow_key& key, const Value& value) {
        if (key.family == family && std::memcmp(key.client_addr_be, client_be, sizeof client_be) == 0 &&
            key.client_port_be == htons(from.port))
            bpf_map_update_elem(to_fd, &key, &value, BPF_ANY);
        return Result<void>{};
    });
}

// The reason the copy counted, summed over the CPUs; "" for none.
std::string counted_reason(int reasons_fd) {
    const int cpus = libbpf_num_possible_cpus();
    std::vector<__u64> per_cpu(cpus > 0 ? cpus : 1);
    for (const auto& info : reasons()) {
        __u32 key = info.id;
        if (bpf_map_lookup_elem(reasons_fd, &key, per_cpu.data()) != 0)
            continue;
        if (std::ranges::any_of(per_cpu, [](__u64 n) { return n != 0; }))
            return std::string(info.name);
    }
    return "";
}

}  // namespace

Result<ExplainDecision> external_decision(const PinDir& dir, NodePort node_port, Backend from,
                                          const IpAddr& to) {
    auto log_capture = capture_libbpf_log();
    // Opened without a pin root and every pin path cleared: nothing of the
    // copy is pinned or reuses a pin by name.
    TcSkel tc(tc_bpf__open(), tc_bpf__destroy);
    if (!tc)
        return libbpf_error(errno, "open the TC programs");
    bpf_map* map = nullptr;
    bpf_object__for_each_map(map, tc->obj) {
        bpf_map__set_pin_path(map, nullptr);
        std::string_view name = bpf_map__name(map);
        if (std::ranges::find(shared_maps, name) != shared_maps.end()) {
            auto fd = dir.map(name);
            if (!fd)
                return std::unexpected(fd.error());
            if (int err = bpf_map__reuse_fd(map, fd->get()); err != 0)
                return libbpf_error(-err, fmt::format("use the pinned map {}", name));
        } else if (bpf_map__type(map) == BPF_MAP_TYPE_LRU_HASH) {
            bpf_map__set_max_entries(map, private_entries);
        }
    }
    if (int err = tc_bpf__load(tc.get()); err != 0)
        return libbpf_error(-err, "load a copy of the TC programs (needs root and Linux >= 5.14 with BTF)");
    for (auto copied : {copy_client_entries<np_flow>(dir, "flows", bpf_map__fd(tc->maps.flows), from),
                        copy_client_entries<np_half_open>(dir, "half_open_flows",
                                                          bpf_map__fd(tc->maps.half_open_flows), from),
                        copy_client_entries<np_flow>(dir, "udp_flows", bpf_map__fd(tc->maps.udp_flows), from)})
        if (!copied)
            return std::unexpected(copied.error());

    const Backend dest{to, node_port.port};
    auto packet = first_packet(node_port.proto, from, dest);
    std::vector<std::uint8_t> out(packet.size() + 256);
    LIBBPF_OPTS(bpf_test_run_opts, run, .data_in = packet.data(), .data_out = out.data(),
                .data_size_in = static_cast<__u32>(packet.size()), .data_size_out = static_cast<__u32>(out.size()),
                .repeat = 1);
    if (int err = bpf_prog_test_run_opts(bpf_program__fd(tc->progs.np_tc_ingress), &run); err != 0)
        return libbpf_error(-err, "test-run np_tc_ingress");

    ExplainDecision decision;
    decision.external = true;
    decision.how = fmt::format("np_tc_ingress test-run (BPF_PROG_TEST_RUN) on a {} from {} to {}, with the loaded "
                               "maps and a copy of the client's flows",
                               node_port.proto == Proto::tcp ? "TCP SYN" : "UDP datagram", to_string(from),
                               to_string(dest));
    // Where the packet came out addressed to: its destination address and port.
    const bool v6 = family_of(to) == Family::ipv6;
    const std::size_t dst_at = eth_hlen + (v6 ? 24 : 16), dport_at = eth_hlen + (v6 ? ip6_hlen : ip_hlen) + 2;
    Backend sent{};
    std::uint16_t dport_be = 0;
    if (run.data_size_out >= dport_at + 2) {
        if (v6) {
            Ipv6 addr;
            std::memcpy(addr.bytes.data(), out.data() + dst_at, addr.bytes.size());
            sent.addr = addr;
        } else {
            Ipv4 addr;
            std::memcpy(&addr.addr_be, out.data() + dst_at, 4);
            sent.addr = addr;
        }
        std::memcpy(&dport_be, out.data() + dport_at, 2);
        sent.port = ntohs(dport_be);
    }
    decision.translated = run.data_size_out >= dport_at + 2 && sent != dest;
    if (decision.translated)
        decision.backend = sent;
    else
        decision.reason = counted_reason(bpf_map__fd(tc->maps.reason_counters));
    return decision;
}

ExplainDecision local_decision(NodePort node_port, const IpAddr& to, const std::optional<Mapping>& mapping) {
    ExplainDecision decision;
    decision.external = false;
    const char* hooks = family_of(to) == Family::ipv6 ? "np_connect6 / np_sendmsg6" : "np_connect4 / np_sendmsg4";
    decision.how = fmt::format("{} on nodeport's cgroup, not test-run: a socket of the node to {} is translated by "
                               "the `ports` entry {} of its family (bpf/sock.bpf.c: loopback in the node's network "
                               "namespace, or a node address, and a mapped port)",
                               hooks, to_string(Backend{to, node_port.port}), to_string(node_port));
    if (!mapping) {
        decision.reason = "local_port_not_mapped";
        return decision;
    }
    decision.translated = true;
    decision.backend = mapping->backend;
    return decision;
}

}  // namespace nodeport::explain_parts
