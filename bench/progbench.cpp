// np-progbench: what each path through the TC programs costs on its own.
// Loads bpf/tc.bpf.c unattached and unpinned (its maps die with the process),
// sets up one TCP and one UDP flow, then times every kind of packet the
// external path sees with BPF_PROG_TEST_RUN: the kernel's own clock around
// the program, no network, no other CPU. bench.sh prints it beside the
// run-time statistics of the live benchmark, which include what a real skb
// costs on top (uncloning a veth's packet for the rewrite, cache misses).
//
//   np-progbench [--runs N]   prints JSON: {"runs": N, "paths": [{"name", "program", "ns"}]}
//
// One packet per BPF_PROG_TEST_RUN call: with `repeat` > 1 the kernel runs the
// program again on the packet it has already rewritten, which is another
// path. Each figure therefore includes the test run's own timer reads, the
// same for every path (the ARP row is close to that floor).
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_ether.h>
#include <netinet/in.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "args.hpp"
#include "nodeport/abi.h"
#include "rfc1071.hpp"
#include "tc.skel.h"

namespace {

using Bytes = std::vector<std::uint8_t>;
using Skel = std::unique_ptr<tc_bpf, decltype(&tc_bpf__destroy)>;

constexpr const char* kClient = "198.51.100.7";
constexpr const char* kNode = "192.0.2.10";
constexpr const char* kBackend = "10.8.0.2";
constexpr std::uint16_t kTcpPort = 30080, kTcpBackendPort = 8080;
constexpr std::uint16_t kUdpPort = 30053, kUdpBackendPort = 5353;
constexpr std::uint8_t kSyn = 0x02, kPshAck = 0x18, kSynAck = 0x12, kAck = 0x10;

std::uint32_t addr_be(const char* text) {
    in_addr a{};
    if (inet_pton(AF_INET, text, &a) != 1)
        throw std::runtime_error(std::string("bad address ") + text);
    return a.s_addr;
}

void put16(Bytes& b, std::size_t off, std::uint32_t v) {
    b[off] = std::uint8_t(v >> 8);
    b[off + 1] = std::uint8_t(v);
}

using rfc1071::fold;
using rfc1071::sum16;

struct Packet {
    std::uint8_t proto;
    const char* src;
    std::uint16_t sport;
    const char* dst;
    std::uint16_t dport;
    std::uint8_t tcp_flags = 0;
    std::uint16_t frag_off = 0;  // IPv4 flags and fragment offset, host order
};

constexpr std::uint16_t kMoreFragments = 0x2000;

// An Ethernet/IPv4 TCP or UDP frame with a 4-byte payload and valid checksums.
Bytes frame(const Packet& p) {
    const std::size_t l4_len = (p.proto == IPPROTO_TCP ? 20 : 8) + 4, ip = 14, l4 = ip + 20;
    Bytes b(l4 + l4_len, 0);
    put16(b, 12, ETH_P_IP);
    b[ip] = 0x45;
    put16(b, ip + 2, 20 + l4_len);
    put16(b, ip + 4, 0x77);  // the IP id
    put16(b, ip + 6, p.frag_off);
    b[ip + 8] = 64;
    b[ip + 9] = p.proto;
    const std::uint32_t src = addr_be(p.src), dst = addr_be(p.dst);
    std::memcpy(&b[ip + 12], &src, 4);
    std::memcpy(&b[ip + 16], &dst, 4);
    put16(b, ip + 10, std::uint16_t(~fold(sum16(&b[ip], 20))));
    put16(b, l4, p.sport);
    put16(b, l4 + 2, p.dport);
    std::size_t csum_off;
    if (p.proto == IPPROTO_TCP) {
        // Sequence number 0; an acknowledgement ahead of all the other side
        // sent, so the handshake's ACK establishes the flow (map ABI 3 tracks
        // sequence numbers).
        if (p.tcp_flags & 0x10)
            put16(b, l4 + 8, 1);
        b[l4 + 12] = 5 << 4;
        b[l4 + 13] = p.tcp_flags;
        put16(b, l4 + 14, 65535);
        csum_off = l4 + 16;
    } else {
        put16(b, l4 + 4, l4_len);
        csum_off = l4 + 6;
    }
    const std::uint32_t pseudo = sum16(&b[ip + 12], 8) + p.proto + std::uint32_t(l4_len);
    put16(b, csum_off, std::uint16_t(~fold(sum16(&b[l4], l4_len, pseudo))));
    return b;
}

// An ICMP "fragmentation needed" from `src` to `dst` quoting all of `about`
// (a frame()), with valid checksums.
Bytes frag_needed(const char* src, const char* dst, const Bytes& about) {
    const std::size_t ip = 14, icmp = ip + 20;
    Bytes b(about.begin(), about.begin() + ip);
    b.resize(icmp + 8, 0);
    b[ip] = 0x45;
    put16(b, ip + 2, 20 + 8 + about.size() - ip);
    b[ip + 8] = 64;
    b[ip + 9] = IPPROTO_ICMP;
    const std::uint32_t src_be = addr_be(src), dst_be = addr_be(dst);
    std::memcpy(&b[ip + 12], &src_be, 4);
    std::memcpy(&b[ip + 16], &dst_be, 4);
    put16(b, ip + 10, std::uint16_t(~fold(sum16(&b[ip], 20))));
    b[icmp] = 3;
    b[icmp + 1] = 4;
    put16(b, icmp + 6, 1280);
    b.insert(b.end(), about.begin() + ip, about.end());
    put16(b, icmp + 2, std::uint16_t(~fold(sum16(&b[icmp], b.size() - icmp))));
    return b;
}

// The frame as an interface without a link-layer header hands it over.
Bytes without_ethernet(Bytes b) {
    b.erase(b.begin(), b.begin() + 14);
    return b;
}

Bytes arp_frame() {
    Bytes b(14 + 28, 0);
    put16(b, 12, ETH_P_ARP);
    return b;
}

// Runs `prog` once on `in`; returns the kernel's time for the run, in ns.
std::uint32_t run_once(int prog, const Bytes& in) {
    Bytes out(in.size() + 256);
    LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = in.data(), .data_out = out.data(),
                .data_size_in = std::uint32_t(in.size()), .data_size_out = std::uint32_t(out.size()),
                .repeat = 1);
    if (int err = bpf_prog_test_run_opts(prog, &opts); err != 0)
        throw std::runtime_error(std::string("BPF_PROG_TEST_RUN: ") + std::strerror(-err));
    return opts.duration;
}

void update(bpf_map* map, const void* key, const void* value) {
    if (bpf_map_update_elem(bpf_map__fd(map), key, value, BPF_ANY) != 0)
        throw std::runtime_error(std::string("map update: ") + std::strerror(errno));
}

void map_port(tc_bpf& skel, std::uint8_t proto, std::uint16_t port, std::uint16_t backend_port) {
    np_port_key key{};
    key.proto = proto;
    key.port = port;
    np_backend value{};
    value.family = NP_FAMILY_IPV4;
    value.port = backend_port;
    const std::uint32_t backend = addr_be(kBackend);
    std::memcpy(value.addr, &backend, 4);
    update(skel.maps.ports, &key, &value);
}

// The node's address, two mapped ports and `load`'s default flow lifetimes.
Skel load() {
    Skel skel(tc_bpf__open(), tc_bpf__destroy);
    if (!skel)
        throw std::runtime_error(std::string("open the TC object: ") + std::strerror(errno));
    bpf_map* map;
    bpf_object__for_each_map(map, skel->obj) bpf_map__set_pin_path(map, nullptr);  // private maps
    if (int err = tc_bpf__load(skel.get()); err != 0)
        throw std::runtime_error(std::string("load the TC object (root?): ") + std::strerror(-err));
    np_node_addr node{};
    node.family = NP_FAMILY_IPV4;
    node.addr_be[0] = addr_be(kNode);
    const np_node_addr_info info{};
    update(skel->maps.node_addrs, &node, &info);
    map_port(*skel, IPPROTO_TCP, kTcpPort, kTcpBackendPort);
    map_port(*skel, IPPROTO_UDP, kUdpPort, kUdpBackendPort);
    constexpr std::uint64_t s = 1'000'000'000;
    const np_flow_timeouts t{NP_DEFAULT_TCP_ESTABLISHED_S * s, NP_DEFAULT_TCP_SYN_S * s, NP_DEFAULT_TCP_CLOSING_S * s,
                             NP_DEFAULT_UDP_IDLE_S * s};
    const __u32 zero = 0;
    update(skel->maps.flow_timeouts, &zero, &t);
    return skel;
}

}  // namespace

int main(int argc, char** argv) try {
    bench::Args args(argc, argv, {}, {"runs"});
    const int runs = args.number<int>("runs", 1, 10'000'000).value_or(100'000);
    Skel skel = load();
    const int ingress = bpf_program__fd(skel->progs.np_tc_ingress);
    const int egress = bpf_program__fd(skel->progs.np_tc_egress);
    const int l3_ingress = bpf_program__fd(skel->progs.np_l3_ingress);

    // One established TCP flow (SYN, SYN-ACK, ACK) and one UDP flow; one
    // fragmented datagram each way whose first fragment was translated. The
    // L3 flow's client is in 8.0.0.0/16: test_run reads the ethertype from a
    // bare IPv4 packet's source address (tests/tc_packet_test.cpp).
    run_once(ingress, frame({IPPROTO_TCP, kClient, 40000, kNode, kTcpPort, kSyn}));
    run_once(egress, frame({IPPROTO_TCP, kBackend, kTcpBackendPort, kClient, 40000, kSynAck}));
    run_once(ingress, frame({IPPROTO_TCP, kClient, 40000, kNode, kTcpPort, kAck}));
    run_once(ingress, frame({IPPROTO_UDP, kClient, 40001, kNode, kUdpPort}));
    run_once(ingress, frame({IPPROTO_UDP, kClient, 40001, kNode, kUdpPort, 0, kMoreFragments}));
    run_once(egress, frame({IPPROTO_UDP, kBackend, kUdpBackendPort, kClient, 40001, 0, kMoreFragments}));
    constexpr const char* kL3Client = "8.0.0.7";
    run_once(l3_ingress, without_ethernet(frame({IPPROTO_TCP, kL3Client, 40000, kNode, kTcpPort, kSyn})));
    run_once(l3_ingress, without_ethernet(frame({IPPROTO_TCP, kL3Client, 40000, kNode, kTcpPort, kAck})));

    struct Path {
        const char* name;
        const char* program;
        int fd;
        Bytes packet;
    };
    const std::vector<Path> paths = {
        {"TCP data of an established flow", "np_tc_ingress", ingress,
         frame({IPPROTO_TCP, kClient, 40000, kNode, kTcpPort, kPshAck})},
        {"UDP datagram of a flow", "np_tc_ingress", ingress, frame({IPPROTO_UDP, kClient, 40001, kNode, kUdpPort})},
        {"SYN on a recorded tuple (ABI 2: flow replaced, 2 deletes, 2 inserts; ABI 3: a retransmitted SYN of a "
         "handshake)",
         "np_tc_ingress", ingress,
         frame({IPPROTO_TCP, kClient, 40002, kNode, kTcpPort, kSyn})},
        {"SYN to an unmapped port", "np_tc_ingress", ingress, frame({IPPROTO_TCP, kClient, 40003, kNode, 30999, kSyn})},
        {"TCP of the node's own connection (no flow)", "np_tc_ingress", ingress,
         frame({IPPROTO_TCP, kClient, 443, kNode, 50000, kAck})},
        {"ARP (not IPv4)", "np_tc_ingress", ingress, arp_frame()},
        {"ICMP fragmentation needed about a flow's reply (to the backend)", "np_tc_ingress", ingress,
         frag_needed("203.0.113.1", kNode, frame({IPPROTO_TCP, kNode, kTcpPort, kClient, 40000, kPshAck}))},
        {"a later fragment of a translated datagram", "np_tc_ingress", ingress,
         frame({IPPROTO_UDP, kClient, 40001, kNode, kUdpPort, 0, 185})},
        {"TCP data of an established flow, L3 interface", "np_l3_ingress", l3_ingress,
         without_ethernet(frame({IPPROTO_TCP, kL3Client, 40000, kNode, kTcpPort, kPshAck}))},
        {"TCP reply of an established flow", "np_tc_egress", egress,
         frame({IPPROTO_TCP, kBackend, kTcpBackendPort, kClient, 40000, kPshAck})},
        {"UDP reply of a flow", "np_tc_egress", egress,
         frame({IPPROTO_UDP, kBackend, kUdpBackendPort, kClient, 40001})},
        {"ICMP error from the backend about a client's packet", "np_tc_egress", egress,
         frag_needed(kBackend, kClient, frame({IPPROTO_UDP, kClient, 40001, kBackend, kUdpBackendPort}))},
        {"a later fragment of a backend's translated datagram", "np_tc_egress", egress,
         frame({IPPROTO_UDP, kBackend, kUdpBackendPort, kClient, 40001, 0, 185})},
        {"the node's own packet (no flow)", "np_tc_egress", egress,
         frame({IPPROTO_TCP, kNode, 50000, kClient, 443, kAck})},
        {"the node's own UDP from a mapped port (noted in node_udp)", "np_tc_egress", egress,
         frame({IPPROTO_UDP, kNode, kUdpPort, kClient, 53})},
    };
    nlohmann::json out = {{"runs", runs}, {"paths", nlohmann::json::array()}};
    for (const auto& path : paths) {
        std::uint64_t total = 0;
        for (int i = 0; i < runs; ++i)
            total += run_once(path.fd, path.packet);
        out["paths"].push_back({{"name", path.name}, {"program", path.program}, {"ns", double(total) / runs}});
    }
    std::cout << out.dump() << '\n';
    return 0;
} catch (const bench::UsageError& e) {
    std::cerr << "np-progbench: " << e.what() << "\nusage: np-progbench [--runs N]\n";
    return 2;
} catch (const std::exception& e) {
    std::cerr << "np-progbench: " << e.what() << '\n';
    return 1;
}
