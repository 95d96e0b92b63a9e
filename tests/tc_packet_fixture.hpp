// The fixture of the TC packet tests (tc_packet_test.cpp for IPv4,
// tc_packet6_test.cpp for IPv6): crafted packets with checksums of the
// test's own (RFC 1071), and the programs of bpf/tc.bpf.c loaded without
// pins and run through bpf_prog_test_run_opts.
#pragma once

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <vector>

#include "bpf_available.hpp"
#include "nodeport/abi.h"
#include "nodeport/reasons.hpp"
#include "nodeport/stats.hpp"
#include "rfc1071.hpp"
#include "tc.skel.h"

namespace tc_packet {

using Bytes = std::vector<std::uint8_t>;

constexpr const char* kNode = "192.0.2.10";      // a node address (in node_addrs)
constexpr const char* kOtherHost = "192.0.2.99";  // not a node address
constexpr const char* kClient = "198.51.100.7";
constexpr const char* kBackend = "10.8.0.2";
constexpr const char* kBackend2 = "10.8.0.9";
constexpr std::uint16_t kTcpPort = 30080;  // node port -> kBackend:8080
constexpr std::uint16_t kUdpPort = 30053;  // node port -> kBackend:5353
constexpr std::uint16_t kClientPort = 40000;

constexpr std::uint8_t kFin = 0x01, kSyn = 0x02, kRst = 0x04, kPsh = 0x08, kAck = 0x10;
constexpr std::uint64_t kSec = 1'000'000'000ULL;

inline std::uint32_t ip_be(const char* text) {
    in_addr a{};
    EXPECT_EQ(inet_pton(AF_INET, text, &a), 1) << text;
    return a.s_addr;
}

// ---- RFC 1071 checksums, independent of the code under test ----

using rfc1071::fold;
using rfc1071::sum16;

// Sum of the TCP/UDP pseudo-header: addresses, protocol, L4 length.
inline std::uint32_t pseudo_sum(const std::uint8_t* ip, std::uint8_t proto, std::size_t l4_len) {
    std::uint32_t acc = sum16(ip + 12, 8);
    return acc + proto + std::uint32_t(l4_len);
}

// ---- packets ----

struct Spec {
    std::uint16_t ethertype = ETH_P_IP;
    std::uint8_t ihl = 5;
    std::uint16_t frag_off = 0;  // flags and offset, host order
    std::uint16_t ip_id = 0x1234;
    std::uint8_t proto = IPPROTO_TCP;
    std::uint8_t ttl = 64;
    const char* src = kClient;
    const char* dst = kNode;
    std::uint16_t sport = kClientPort;
    std::uint16_t dport = kTcpPort;
    std::uint8_t tcp_flags = kSyn;
    // TCP sequence numbers. The acknowledgement (sent with kAck) is far
    // ahead of every default sequence number, so a default packet
    // acknowledges all the other side sent: the tests of sequence tracking
    // set both.
    std::uint32_t seq = 1;
    std::uint32_t ack = 0x10000;
    bool udp_no_csum = false;  // UDP checksum 0: "none"
    Bytes payload = {'p', 'i', 'n', 'g'};
};

constexpr std::size_t kEth = 14;

inline void put16(Bytes& b, std::size_t off, std::uint16_t v) {
    b[off] = std::uint8_t(v >> 8);
    b[off + 1] = std::uint8_t(v);
}

inline void put32(Bytes& b, std::size_t off, std::uint32_t v) {
    put16(b, off, std::uint16_t(v >> 16));
    put16(b, off + 2, std::uint16_t(v));
}

inline std::uint16_t get16(const Bytes& b, std::size_t off) {
    return std::uint16_t(b[off] << 8 | b[off + 1]);
}

inline std::size_t l4_header_len(std::uint8_t proto) {
    return proto == IPPROTO_TCP ? 20 : 8;  // UDP and ICMP echo: 8
}

// A well-formed Ethernet frame with correct checksums (except UDP with
// udp_no_csum). Non-IPv4 ethertypes get 48 filler bytes: test_run itself
// rejects an IPv6 frame shorter than an IPv6 header.
// The TCP or UDP header of `s` (a Spec, or tc_packet6_test's Spec6) at `l4`
// in `b`, its checksum field 0; returns where that field is. `l4_len`: the
// header and the payload, which UDP's length says.
template <class S>
std::size_t put_tcp_udp_header(Bytes& b, std::size_t l4, const S& s, std::size_t l4_len) {
    put16(b, l4, s.sport);
    put16(b, l4 + 2, s.dport);
    if (s.proto == IPPROTO_UDP) {
        put16(b, l4 + 4, std::uint16_t(l4_len));
        return l4 + 6;
    }
    put32(b, l4 + 4, s.seq);
    put32(b, l4 + 8, (s.tcp_flags & kAck) ? s.ack : 0);
    b[l4 + 12] = 5 << 4;
    b[l4 + 13] = s.tcp_flags;
    put16(b, l4 + 14, 65535);
    return l4 + 16;
}

inline Bytes build(const Spec& s) {
    Bytes b(kEth);
    for (int i = 0; i < 6; ++i) {
        b[i] = std::uint8_t(0x02 + (i == 5));  // dst 02:02:02:02:02:03
        b[6 + i] = 0x02;                       // src 02:02:02:02:02:02
    }
    put16(b, 12, s.ethertype);
    if (s.ethertype != ETH_P_IP) {
        for (int i = 0; i < 48; ++i)
            b.push_back(std::uint8_t(i));
        return b;
    }
    const std::size_t ip_len = s.ihl * 4u, l4_len = l4_header_len(s.proto) + s.payload.size();
    const std::size_t ip = kEth, l4 = kEth + ip_len;
    b.resize(l4 + l4_len);
    b[ip] = std::uint8_t(0x40 | s.ihl);
    put16(b, ip + 2, std::uint16_t(ip_len + l4_len));
    put16(b, ip + 4, s.ip_id);
    put16(b, ip + 6, s.frag_off);
    b[ip + 8] = s.ttl;
    b[ip + 9] = s.proto;
    const std::uint32_t src_be = ip_be(s.src), dst_be = ip_be(s.dst);
    std::memcpy(&b[ip + 12], &src_be, 4);
    std::memcpy(&b[ip + 16], &dst_be, 4);
    for (std::size_t i = 20; i < ip_len; ++i)
        b[ip + i] = 1;  // IP option NOP
    put16(b, ip + 10, std::uint16_t(~fold(sum16(&b[ip], ip_len))));

    std::size_t csum_off = 0;
    if (s.proto == IPPROTO_TCP || s.proto == IPPROTO_UDP) {
        csum_off = put_tcp_udp_header(b, l4, s, l4_len);
    } else {  // ICMP echo request
        b[l4] = 8;
        put16(b, l4 + 4, 0x77);
        csum_off = l4 + 2;
    }
    std::copy(s.payload.begin(), s.payload.end(), b.begin() + long(l4 + l4_header_len(s.proto)));
    if (s.proto == IPPROTO_UDP && s.udp_no_csum)
        return b;
    std::uint32_t acc = sum16(&b[l4], l4_len);
    if (s.proto == IPPROTO_TCP || s.proto == IPPROTO_UDP)
        acc += pseudo_sum(&b[ip], s.proto, l4_len);
    std::uint16_t csum = std::uint16_t(~fold(acc));
    if (s.proto == IPPROTO_UDP && csum == 0)
        csum = 0xffff;  // 0 means "no checksum" for UDP
    put16(b, csum_off, csum);
    return b;
}

inline Bytes prefix(const Bytes& b, std::size_t n) {
    return Bytes(b.begin(), b.begin() + long(n));
}

constexpr std::uint8_t kIcmpUnreachable = 3, kIcmpTimeExceeded = 11, kIcmpParameterProblem = 12;
constexpr std::uint8_t kCodePortUnreachable = 3, kCodeFragNeeded = 4;

// An ICMP error (`type`, `code`) from `src` to `dst` about the packet
// `about` (a frame from build()): it quotes that packet's IPv4 header and the
// first `quote_l4` bytes after it (0: all of them), as a router (8) or Linux
// (up to 576 bytes in all) does. `mtu` goes into bytes 6-7 of the ICMP header
// ("fragmentation needed").
inline Bytes icmp_error(const char* src, const char* dst, std::uint8_t type, std::uint8_t code, const Bytes& about,
                 std::size_t quote_l4 = 0, std::uint16_t mtu = 0) {
    const std::size_t about_ip_len = about.size() - kEth;
    const std::size_t quote = quote_l4 ? std::min(about_ip_len, 20 + quote_l4) : about_ip_len;
    const std::size_t ip = kEth, icmp = ip + 20;
    Bytes b(about.begin(), about.begin() + kEth);  // the same Ethernet header
    b.resize(icmp + 8);
    b[ip] = 0x45;
    put16(b, ip + 2, std::uint16_t(20 + 8 + quote));
    put16(b, ip + 4, 0x4321);
    b[ip + 8] = 64;
    b[ip + 9] = IPPROTO_ICMP;
    const std::uint32_t src_be = ip_be(src), dst_be = ip_be(dst);
    std::memcpy(&b[ip + 12], &src_be, 4);
    std::memcpy(&b[ip + 16], &dst_be, 4);
    put16(b, ip + 10, std::uint16_t(~fold(sum16(&b[ip], 20))));
    b[icmp] = type;
    b[icmp + 1] = code;
    put16(b, icmp + 6, mtu);
    b.insert(b.end(), about.begin() + kEth, about.begin() + long(kEth + quote));
    put16(b, icmp + 2, std::uint16_t(~fold(sum16(&b[icmp], b.size() - icmp))));
    return b;
}

// Offsets of the checksum fields of an option-less IPv4 TCP/UDP frame.
constexpr std::size_t kIpCsum = kEth + 10;
inline std::size_t l4_csum_off(std::uint8_t proto) {
    return kEth + 20 + (proto == IPPROTO_TCP ? 16 : 6);
}

// True when the IPv4 header and the TCP/UDP checksum (with pseudo-header)
// verify: the ones-complement sum over a correct header is 0xffff.
inline ::testing::AssertionResult checksums_valid(const Bytes& b) {
    const std::size_t ip = kEth, ip_len = (b[ip] & 0xf) * 4u;
    if (fold(sum16(&b[ip], ip_len)) != 0xffff)
        return ::testing::AssertionFailure() << "bad IPv4 header checksum";
    const std::uint8_t proto = b[ip + 9];
    const std::size_t l4 = ip + ip_len, l4_len = get16(b, ip + 2) - ip_len;
    if (proto == IPPROTO_UDP && get16(b, l4 + 6) == 0)
        return ::testing::AssertionSuccess();  // no UDP checksum: nothing to verify
    if (fold(pseudo_sum(&b[ip], proto, l4_len) + sum16(&b[l4], l4_len)) != 0xffff)
        return ::testing::AssertionFailure() << "bad L4 checksum";
    return ::testing::AssertionSuccess();
}

// Field by field, then every other byte, then the checksums.
inline void expect_translated(const Bytes& out, const Spec& want) {
    const Bytes exp = build(want);
    ASSERT_EQ(out.size(), exp.size());
    const std::size_t ip = kEth, l4 = kEth + 20;
    EXPECT_EQ(0, std::memcmp(&out[ip + 12], &exp[ip + 12], 4)) << "source address";
    EXPECT_EQ(0, std::memcmp(&out[ip + 16], &exp[ip + 16], 4)) << "destination address";
    EXPECT_EQ(get16(out, l4), want.sport) << "source port";
    EXPECT_EQ(get16(out, l4 + 2), want.dport) << "destination port";
    EXPECT_EQ(out[ip + 8], want.ttl) << "TTL";
    EXPECT_EQ(out[ip + 9], want.proto) << "protocol";
    if (want.proto == IPPROTO_TCP) {
        EXPECT_EQ(out[l4 + 13], want.tcp_flags) << "TCP flags";
    }
    Bytes out_masked = out, exp_masked = exp;
    for (std::size_t off : {kIpCsum, l4_csum_off(want.proto)})
        out_masked[off] = out_masked[off + 1] = exp_masked[off] = exp_masked[off + 1] = 0;
    EXPECT_EQ(out_masked, exp_masked) << "bytes other than the checksums";
    EXPECT_TRUE(checksums_valid(out));
    if (want.proto == IPPROTO_UDP && want.udp_no_csum) {
        EXPECT_EQ(get16(out, l4_csum_off(IPPROTO_UDP)), 0) << "a zero UDP checksum stays zero";
    }
}

inline np_flow_key flow_key(std::uint8_t proto, const char* client, std::uint16_t client_port, const char* peer,
                     std::uint16_t peer_port, std::uint8_t dir) {
    np_flow_key key{};
    key.client_addr_be[0] = ip_be(client);
    key.peer_addr_be[0] = ip_be(peer);
    key.client_port_be = htons(client_port);
    key.peer_port_be = htons(peer_port);
    key.proto = proto;
    key.dir = dir;
    key.family = NP_FAMILY_IPV4;
    return key;
}

// A flow entry for put_flow: translated to `addr`:`port`, in `state`.
inline np_flow flow_value(const char* addr, std::uint16_t port, std::uint8_t state, std::uint64_t last_seen_ns) {
    np_flow f{};
    f.addr_be[0] = ip_be(addr);
    f.port_be = htons(port);
    f.state = state;
    f.family = NP_FAMILY_IPV4;
    f.last_seen_ns = last_seen_ns;
    return f;
}

// ---- fixture ----

using Skel = std::unique_ptr<tc_bpf, decltype(&tc_bpf__destroy)>;

struct RunResult {
    int retval = -1;
    Bytes out;
};

class TcPacketTest : public testing::Test {
protected:
    void SetUp() override {
        // No pins: the programs and maps live only in this process.
        if (auto why = nodeport::testing_support::bpf_unavailable(/*needs_bpffs=*/false); !why.empty())
            GTEST_SKIP() << why;
        skel_.reset(tc_bpf__open());
        ASSERT_TRUE(skel_) << "open: " << std::strerror(errno);
        // No pinning: a pin path would make libbpf reuse or create maps under
        // /sys/fs/bpf, sharing state with a loaded nodeport and leaving pins.
        bpf_map* map;
        bpf_object__for_each_map(map, skel_->obj) ASSERT_EQ(bpf_map__set_pin_path(map, nullptr), 0);
        configure(*skel_->rodata);
        prepare(*skel_);
        int err = tc_bpf__load(skel_.get());
        ASSERT_EQ(err, 0) << "load: " << std::strerror(-err);

        add_node_addr(kNode);
        map_port(IPPROTO_TCP, kTcpPort, kBackend, 8080);
        map_port(IPPROTO_UDP, kUdpPort, kBackend, 5353);
        const np_flow_timeouts t = timeouts();
        const __u32 zero = 0;
        ASSERT_EQ(bpf_map_update_elem(bpf_map__fd(skel_->maps.flow_timeouts), &zero, &t, BPF_ANY), 0);
    }

    // Rodata to set before load; fixtures for options override it.
    virtual void configure(tc_bpf::tc_bpf__rodata&) {}
    // Anything else to change before load (a map's size or type).
    virtual void prepare(tc_bpf&) {}
    // The flow lifetimes `load` would write; fixtures override them.
    virtual np_flow_timeouts timeouts() { return {7800 * kSec, 60 * kSec, 120 * kSec, 60 * kSec}; }

    void unmap_port(std::uint8_t proto, std::uint16_t port) {
        np_port_key key{};
        key.proto = proto;
        key.port = port;
        ASSERT_EQ(bpf_map_delete_elem(bpf_map__fd(skel_->maps.ports), &key), 0);
    }

    void add_node_addr(const char* addr) {
        np_node_addr node{};
        node.family = NP_FAMILY_IPV4;
        node.addr_be[0] = ip_be(addr);
        np_node_addr_info info{};
        ASSERT_EQ(bpf_map_update_elem(bpf_map__fd(skel_->maps.node_addrs), &node, &info, BPF_ANY), 0);
    }

    void add_node_addr6(const char* addr) {
        np_node_addr node{};
        node.family = NP_FAMILY_IPV6;
        ASSERT_EQ(inet_pton(AF_INET6, addr, node.addr_be), 1) << addr;
        np_node_addr_info info{};
        ASSERT_EQ(bpf_map_update_elem(bpf_map__fd(skel_->maps.node_addrs), &node, &info, BPF_ANY), 0);
    }

    // The IPv6 backend of a node port, beside its IPv4 one.
    void map_port6(std::uint8_t proto, std::uint16_t port, const char* backend, std::uint16_t backend_port) {
        np_port_key key{};
        key.proto = proto;
        key.family = NP_PORT_KEY_IPV6;
        key.port = port;
        np_backend be{};
        be.family = NP_FAMILY_IPV6;
        be.port = backend_port;
        ASSERT_EQ(inet_pton(AF_INET6, backend, be.addr), 1) << backend;
        ASSERT_EQ(bpf_map_update_elem(bpf_map__fd(skel_->maps.ports), &key, &be, BPF_ANY), 0);
    }

    void map_port(std::uint8_t proto, std::uint16_t port, const char* backend, std::uint16_t backend_port) {
        np_port_key key{};
        key.proto = proto;
        key.port = port;
        np_backend be{};
        be.family = NP_FAMILY_IPV4;
        be.port = backend_port;
        const __be32 addr = ip_be(backend);
        std::memcpy(be.addr, &addr, sizeof addr);
        ASSERT_EQ(bpf_map_update_elem(bpf_map__fd(skel_->maps.ports), &key, &be, BPF_ANY), 0);
    }

    RunResult run(bpf_program* prog, const Bytes& in) {
        RunResult r;
        r.out.assign(in.size() + 256, 0);
        LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = in.data(), .data_out = r.out.data(),
                    .data_size_in = std::uint32_t(in.size()),
                    // in: room in data_out; out: bytes written. Set on every run.
                    .data_size_out = std::uint32_t(r.out.size()), .repeat = 1);
        int err = bpf_prog_test_run_opts(bpf_program__fd(prog), &opts);
        EXPECT_EQ(err, 0) << "test_run: " << std::strerror(-err);
        r.retval = int(opts.retval);
        r.out.resize(opts.data_size_out);
        return r;
    }
    RunResult ingress(const Bytes& in) { return run(skel_->progs.np_tc_ingress, in); }
    RunResult egress(const Bytes& in) { return run(skel_->progs.np_tc_egress, in); }

    // The three flow tables of bpf/flows.bpf.h.
    enum class Table { tcp, half_open, udp };
    int table_fd(Table t) {
        switch (t) {
        case Table::tcp:
            return bpf_map__fd(skel_->maps.flows);
        case Table::half_open:
            return bpf_map__fd(skel_->maps.half_open_flows);
        case Table::udp:
            break;
        }
        return bpf_map__fd(skel_->maps.udp_flows);
    }
    // UDP keys are looked up in the UDP table, TCP keys in `flows`.
    std::optional<np_flow> flow(const np_flow_key& key) {
        np_flow value{};
        if (bpf_map_lookup_elem(table_fd(key.proto == IPPROTO_UDP ? Table::udp : Table::tcp), &key, &value) != 0)
            return std::nullopt;
        return value;
    }
    // The handshake under the reply key `key`.
    std::optional<np_half_open> half_open(const np_flow_key& key) {
        np_half_open value{};
        if (bpf_map_lookup_elem(table_fd(Table::half_open), &key, &value) != 0)
            return std::nullopt;
        return value;
    }

    void put_flow(const np_flow_key& key, const np_flow& value) {
        ASSERT_EQ(bpf_map_update_elem(table_fd(key.proto == IPPROTO_UDP ? Table::udp : Table::tcp), &key, &value,
                                      BPF_ANY),
                  0);
    }

    std::size_t count(Table t) {
        std::size_t n = 0;
        np_flow_key key{}, next{};
        const np_flow_key* prev = nullptr;
        while (bpf_map_get_next_key(table_fd(t), prev, &next) == 0) {
            key = next;
            prev = &key;
            ++n;
        }
        return n;
    }
    // Entries in all three tables.
    std::size_t flow_count() { return count(Table::tcp) + count(Table::half_open) + count(Table::udp); }

    // reason_counters summed over the CPUs, as `nodeport stats` reads them.
    using Reasons = std::array<std::uint64_t, NP_REASON_COUNT>;
    Reasons reason_totals() {
        Reasons out{};
        std::vector<std::uint64_t> per_cpu(static_cast<std::size_t>(libbpf_num_possible_cpus()));
        for (__u32 id = 0; id < NP_REASON_COUNT; ++id) {
            EXPECT_EQ(bpf_map_lookup_elem(bpf_map__fd(skel_->maps.reason_counters), &id, per_cpu.data()), 0);
            for (auto n : per_cpu)
                out[id] += n;
        }
        return out;
    }
    // Runs `send` and checks that it counted reason `why` once and no other.
    template <class Send>
    void expect_counted_once(np_reason why, Send&& send) {
        const Reasons before = reason_totals();
        send();
        const Reasons after = reason_totals();
        for (const auto& r : nodeport::reasons())
            EXPECT_EQ(after[r.id] - before[r.id], r.id == why ? 1u : 0u) << r.name;
    }
    // One node port's port_counters summed over the CPUs; nullopt: no entry.
    std::optional<nodeport::PortCounters> port_counts(std::uint8_t proto, std::uint16_t port,
                                                      std::uint8_t key_family = NP_PORT_KEY_IPV4) {
        np_port_key key{};
        key.proto = proto;
        key.family = key_family;
        key.port = port;
        std::vector<np_port_counters> per_cpu(static_cast<std::size_t>(libbpf_num_possible_cpus()));
        if (bpf_map_lookup_elem(bpf_map__fd(skel_->maps.port_counters), &key, per_cpu.data()) != 0)
            return std::nullopt;
        return nodeport::sum_per_cpu(per_cpu);
    }
    std::size_t port_counter_entries() {
        std::size_t n = 0;
        np_port_key key{}, next{};
        const np_port_key* prev = nullptr;
        while (bpf_map_get_next_key(bpf_map__fd(skel_->maps.port_counters), prev, &next) == 0) {
            key = next;
            prev = &key;
            ++n;
        }
        return n;
    }

    // The two entries of the TCP flow kClient:kClientPort -> kNode:kTcpPort.
    np_flow_key tcp_fwd_key() { return flow_key(IPPROTO_TCP, kClient, kClientPort, kNode, kTcpPort, NP_FLOW_TO_BACKEND); }
    np_flow_key tcp_rev_key(const char* backend = kBackend) {
        return flow_key(IPPROTO_TCP, kClient, kClientPort, backend, 8080, NP_FLOW_TO_CLIENT);
    }

    // A TCP handshake through the programs: the client's SYN, the backend's
    // SYN-ACK, the client's ACK; the flow is then established in `flows`.
    void establish();

    Skel skel_{nullptr, tc_bpf__destroy};
};

// What the client sends to the node port, and what it should become.
inline Spec to_node(std::uint8_t proto, std::uint8_t tcp_flags = kSyn) {
    Spec s;
    s.proto = proto;
    s.tcp_flags = tcp_flags;
    s.dport = proto == IPPROTO_TCP ? kTcpPort : kUdpPort;
    return s;
}
inline Spec at_backend(Spec s, const char* backend = kBackend) {
    s.dst = backend;
    s.dport = s.proto == IPPROTO_TCP ? 8080 : 5353;
    return s;
}
// The backend's reply, before and after egress.
inline Spec from_backend(std::uint8_t proto, std::uint8_t tcp_flags = kSyn | kAck) {
    Spec s;
    s.proto = proto;
    s.tcp_flags = tcp_flags;
    s.src = kBackend;
    s.sport = proto == IPPROTO_TCP ? 8080 : 5353;
    s.dst = kClient;
    s.dport = kClientPort;
    s.payload = {'p', 'o', 'n', 'g', '!'};
    return s;
}
inline Spec from_node(Spec s) {
    s.src = kNode;
    s.sport = s.proto == IPPROTO_TCP ? kTcpPort : kUdpPort;
    return s;
}

inline Spec with(Spec s, auto&& change) {
    change(s);
    return s;
}

}  // namespace tc_packet
