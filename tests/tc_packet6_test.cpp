// Tier 2 for IPv6: the TC programs of bpf/tc.bpf.c on crafted IPv6 packets
// through bpf_prog_test_run_opts, with the fixture of tc_packet_test.cpp.
// Checksums are checked with the test's own RFC 1071 code over the IPv6
// pseudo-header (RFC 8200 8.1), never with anything the programs use.
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <ostream>
#include <string>
#include <vector>

#include "nodeport/abi.h"
#include "tc_packet_fixture.hpp"

namespace {

using namespace tc_packet;

constexpr const char* kNode6 = "2001:db8::10";      // a node address (in node_addrs)
constexpr const char* kOtherHost6 = "2001:db8::99";  // not a node address
constexpr const char* kClient6 = "2001:db8:1::7";
constexpr const char* kBackend6 = "fd00:8::2";
constexpr const char* kBackend6b = "fd00:8::9";
constexpr std::uint16_t kIpv4OnlyPort = 30081;  // a node port with an IPv4 backend only

constexpr std::uint8_t kIcmp6 = 58, kHopOpts = 0, kRouting = 43, kFragment = 44, kDstOpts = 60;
constexpr std::uint8_t kEchoRequest = 128, kNeighbourSolicitation = 135;
constexpr std::size_t kIp6Hlen = 40;

using Addr6 = std::array<std::uint8_t, 16>;

Addr6 ip6(const char* text) {
    Addr6 a{};
    EXPECT_EQ(inet_pton(AF_INET6, text, a.data()), 1) << text;
    return a;
}

// An extension header: its type and the bytes after its first two (next
// header and length), padded with zeros to a multiple of 8 in all.
struct Ext {
    std::uint8_t type;
    Bytes body;
};

Ext routing(std::uint8_t segments_left) { return {kRouting, {4, segments_left, 0, 0, 0, 0}}; }

struct Spec6 {
    std::uint8_t proto = IPPROTO_TCP;  // TCP, UDP or ICMPv6
    const char* src = kClient6;
    const char* dst = kNode6;
    std::uint16_t sport = kClientPort;
    std::uint16_t dport = kTcpPort;
    std::uint8_t tcp_flags = kSyn;
    std::uint32_t seq = 1;
    std::uint32_t ack = 0x10000;
    std::uint8_t hop_limit = 64;
    std::uint8_t icmp_type = kEchoRequest;
    std::vector<Ext> ext;  // before the L4 header, in order
    Bytes payload = {'p', 'i', 'n', 'g', '6'};
};

Spec6 with6(Spec6 s, auto&& change) {
    change(s);
    return s;
}

// The IPv6 pseudo-header's sum: addresses, upper-layer length, next header.
std::uint32_t pseudo_sum6(const std::uint8_t* ip, std::uint8_t proto, std::size_t l4_len) {
    return sum16(ip + 8, 32) + std::uint32_t(l4_len >> 16) + std::uint32_t(l4_len & 0xffff) + proto;
}

// A well-formed Ethernet frame with a correct TCP, UDP or ICMPv6 checksum.
Bytes build6(const Spec6& s) {
    Bytes b(kEth);
    for (int i = 0; i < 6; ++i) {
        b[i] = std::uint8_t(0x02 + (i == 5));
        b[6 + i] = 0x02;
    }
    put16(b, 12, ETH_P_IPV6);
    const std::size_t ip = kEth;
    b.resize(ip + kIp6Hlen);
    b[ip] = 0x60;
    b[ip + 7] = s.hop_limit;
    const Addr6 src = ip6(s.src), dst = ip6(s.dst);
    std::memcpy(&b[ip + 8], src.data(), 16);
    std::memcpy(&b[ip + 24], dst.data(), 16);
    std::size_t next_at = ip + 6;  // where the next header's type goes
    for (const Ext& e : s.ext) {
        b[next_at] = e.type;
        const std::size_t at = b.size(), len = (2 + e.body.size() + 7) / 8 * 8;
        b.resize(at + len);
        b[at + 1] = std::uint8_t(len / 8 - 1);
        std::copy(e.body.begin(), e.body.end(), b.begin() + long(at + 2));
        next_at = at;
    }
    b[next_at] = s.proto;
    const std::size_t l4 = b.size(), l4_hlen = s.proto == IPPROTO_TCP ? 20 : 8;
    b.resize(l4 + l4_hlen);
    std::size_t csum_off;
    if (s.proto == IPPROTO_TCP || s.proto == IPPROTO_UDP) {
        csum_off = put_tcp_udp_header(b, l4, s, l4_hlen + s.payload.size());
    } else {
        b[l4] = s.icmp_type;
        csum_off = l4 + 2;
    }
    b.insert(b.end(), s.payload.begin(), s.payload.end());
    put16(b, ip + 4, std::uint16_t(b.size() - ip - kIp6Hlen));
    const std::size_t l4_len = b.size() - l4;
    std::uint16_t csum = std::uint16_t(~fold(pseudo_sum6(&b[ip], s.proto, l4_len) + sum16(&b[l4], l4_len)));
    if (s.proto == IPPROTO_UDP && csum == 0)
        csum = 0xffff;
    put16(b, csum_off, csum);
    return b;
}

// Where a frame's upper-layer header starts and which it is, found by
// walking its extension headers as RFC 8200 lays them out.
struct Upper {
    std::size_t off;
    std::uint8_t proto;
};
Upper upper_layer(const Bytes& b) {
    std::size_t off = kEth + kIp6Hlen;
    std::uint8_t next = b[kEth + 6];
    while (next == kHopOpts || next == kRouting || next == kDstOpts || next == kFragment) {
        const std::uint8_t type = next;
        next = b[off];
        off += type == kFragment ? 8 : (b[off + 1] + 1u) * 8;
    }
    return {off, next};
}

// True when the upper-layer checksum verifies over the pseudo-header.
::testing::AssertionResult checksum6_valid(const Bytes& b) {
    const Upper u = upper_layer(b);
    const std::size_t l4_len = b.size() - u.off;
    if (fold(pseudo_sum6(&b[kEth], u.proto, l4_len) + sum16(&b[u.off], l4_len)) != 0xffff)
        return ::testing::AssertionFailure() << "bad L4 checksum";
    return ::testing::AssertionSuccess();
}

// Byte for byte but the upper-layer checksum, which must verify.
void expect_translated6(const Bytes& out, const Spec6& want) {
    const Bytes exp = build6(want);
    ASSERT_EQ(out.size(), exp.size());
    const Upper u = upper_layer(exp);
    const std::size_t csum_off = u.off + (u.proto == IPPROTO_TCP ? 16 : u.proto == IPPROTO_UDP ? 6 : 2);
    EXPECT_EQ(0, std::memcmp(&out[kEth + 8], &exp[kEth + 8], 16)) << "source address";
    EXPECT_EQ(0, std::memcmp(&out[kEth + 24], &exp[kEth + 24], 16)) << "destination address";
    Bytes out_masked = out, exp_masked = exp;
    out_masked[csum_off] = out_masked[csum_off + 1] = exp_masked[csum_off] = exp_masked[csum_off + 1] = 0;
    EXPECT_EQ(out_masked, exp_masked) << "bytes other than the checksum";
    EXPECT_TRUE(checksum6_valid(out));
}

// The frame cut into fragments of at most `max` bytes of what follows the
// IPv6 header (a multiple of 8), each with a fragment header (RFC 8200 4.5).
std::vector<Bytes> fragment6(const Bytes& frame, std::uint32_t id, std::size_t max = 1232) {
    const std::size_t ip = kEth, body = ip + kIp6Hlen, len = frame.size() - body;
    std::vector<Bytes> out;
    for (std::size_t off = 0; off < len; off += max) {
        const std::size_t n = std::min(max, len - off);
        Bytes f(frame.begin(), frame.begin() + long(body));
        f[ip + 6] = kFragment;
        Bytes fh(8);
        fh[0] = frame[ip + 6];
        put16(fh, 2, std::uint16_t(off | (off + n < len ? 1 : 0)));
        put32(fh, 4, id);
        f.insert(f.end(), fh.begin(), fh.end());
        f.insert(f.end(), frame.begin() + long(body + off), frame.begin() + long(body + off + n));
        put16(f, ip + 4, std::uint16_t(8 + n));
        out.push_back(f);
    }
    return out;
}

np_flow_key flow_key6(std::uint8_t proto, const char* client, std::uint16_t client_port, const char* peer,
                      std::uint16_t peer_port, std::uint8_t dir) {
    np_flow_key key{};
    const Addr6 c = ip6(client), p = ip6(peer);
    std::memcpy(key.client_addr_be, c.data(), 16);
    std::memcpy(key.peer_addr_be, p.data(), 16);
    key.client_port_be = htons(client_port);
    key.peer_port_be = htons(peer_port);
    key.proto = proto;
    key.dir = dir;
    key.family = NP_FAMILY_IPV6;
    return key;
}

bool holds(const __be32 (&addr_be)[4], const char* text) { return std::memcmp(addr_be, ip6(text).data(), 16) == 0; }

// What a client sends to the node port, what the backend gets, the
// backend's reply and what the client gets.
Spec6 to_node6(std::uint8_t proto, std::uint8_t tcp_flags = kSyn) {
    Spec6 s;
    s.proto = proto;
    s.tcp_flags = tcp_flags;
    s.dport = proto == IPPROTO_TCP ? kTcpPort : kUdpPort;
    return s;
}
Spec6 at_backend6(Spec6 s, const char* backend = kBackend6) {
    s.dst = backend;
    s.dport = s.proto == IPPROTO_TCP ? 8080 : 5353;
    return s;
}
Spec6 from_backend6(std::uint8_t proto, std::uint8_t tcp_flags = kSyn | kAck, const char* backend = kBackend6) {
    Spec6 s;
    s.proto = proto;
    s.tcp_flags = tcp_flags;
    s.src = backend;
    s.sport = proto == IPPROTO_TCP ? 8080 : 5353;
    s.dst = kClient6;
    s.dport = kClientPort;
    s.payload = {'p', 'o', 'n', 'g', '6', '!'};
    return s;
}
Spec6 from_node6(Spec6 s) {
    s.src = kNode6;
    s.sport = s.proto == IPPROTO_TCP ? kTcpPort : kUdpPort;
    return s;
}

// The node has an IPv6 address, and both node ports an IPv6 backend beside
// their IPv4 one (tc_packet_fixture.hpp); kIpv4OnlyPort has an IPv4 one only.
class TcPacket6Test : public TcPacketTest {
protected:
    void SetUp() override {
        TcPacketTest::SetUp();
        if (IsSkipped() || HasFatalFailure())
            return;
        add_node_addr6(kNode6);
        map_port6(IPPROTO_TCP, kTcpPort, kBackend6, 8080);
        map_port6(IPPROTO_UDP, kUdpPort, kBackend6, 5353);
        map_port(IPPROTO_TCP, kIpv4OnlyPort, kBackend, 8080);
    }
};

TEST_F(TcPacket6Test, TcpConnectionIsTranslatedBothWaysWithItsFlowsUnderIpv6Keys) {
    const Spec6 syn = with6(to_node6(IPPROTO_TCP), [](Spec6& s) { s.seq = 1000; });
    auto r = ingress(build6(syn));
    EXPECT_EQ(r.retval, TC_ACT_OK);
    expect_translated6(r.out, at_backend6(syn));
    const auto rev_key = flow_key6(IPPROTO_TCP, kClient6, kClientPort, kBackend6, 8080, NP_FLOW_TO_CLIENT);
    const auto h = half_open(rev_key);
    ASSERT_TRUE(h) << "the handshake, under the reply's IPv6 key";
    EXPECT_EQ(h->family, NP_FAMILY_IPV6);
    EXPECT_TRUE(holds(h->node_addr_be, kNode6));

    const Spec6 syn_ack = with6(from_backend6(IPPROTO_TCP), [](Spec6& s) {
        s.seq = 5000;
        s.ack = 1001;
        s.payload.clear();
    });
    expect_translated6(egress(build6(syn_ack)).out, from_node6(syn_ack));

    const Spec6 ack = with6(to_node6(IPPROTO_TCP, kAck | kPsh), [](Spec6& s) {
        s.seq = 1001;
        s.ack = 5001;
    });
    expect_translated6(ingress(build6(ack)).out, at_backend6(ack));
    const auto fwd = flow(flow_key6(IPPROTO_TCP, kClient6, kClientPort, kNode6, kTcpPort, NP_FLOW_TO_BACKEND));
    ASSERT_TRUE(fwd) << "established: both entries in flows";
    EXPECT_EQ(fwd->family, NP_FAMILY_IPV6);
    EXPECT_TRUE(holds(fwd->addr_be, kBackend6));
    EXPECT_EQ(fwd->state, NP_FLOW_OPEN);
    const auto rev = flow(rev_key);
    ASSERT_TRUE(rev);
    EXPECT_TRUE(holds(rev->addr_be, kNode6));
    EXPECT_EQ(rev->port_be, htons(kTcpPort));
    EXPECT_EQ(count(Table::half_open), 0u);

    const Spec6 data = with6(from_backend6(IPPROTO_TCP, kAck | kPsh), [](Spec6& s) {
        s.seq = 5001;
        s.ack = 1006;
    });
    expect_translated6(egress(build6(data)).out, from_node6(data));
    const auto c = port_counts(IPPROTO_TCP, kTcpPort, NP_PORT_KEY_IPV6);
    ASSERT_TRUE(c) << "counted under the port's IPv6 mapping";
    EXPECT_EQ(c->external_flows, 1u);
    EXPECT_EQ(c->to_backend_packets, 2u);
    EXPECT_EQ(c->from_backend_packets, 2u);
    EXPECT_EQ(c->to_backend_bytes, build6(syn).size() + build6(ack).size() - 2 * kEth);
    EXPECT_FALSE(port_counts(IPPROTO_TCP, kTcpPort)) << "nothing under the IPv4 mapping";
}

TEST_F(TcPacket6Test, UdpDatagramAndItsAnswerAreTranslated) {
    const Spec6 q = to_node6(IPPROTO_UDP);
    expect_translated6(ingress(build6(q)).out, at_backend6(q));
    const auto fwd = flow(flow_key6(IPPROTO_UDP, kClient6, kClientPort, kNode6, kUdpPort, NP_FLOW_TO_BACKEND));
    ASSERT_TRUE(fwd);
    EXPECT_TRUE(holds(fwd->addr_be, kBackend6));
    EXPECT_EQ(count(Table::udp), 2u);
    const Spec6 a = from_backend6(IPPROTO_UDP);
    expect_translated6(egress(build6(a)).out, from_node6(a));
}

TEST_F(TcPacket6Test, UdpClientKeepingItsPortReachesTheNewBackendAfterARemap) {
    const Spec6 q = to_node6(IPPROTO_UDP);
    expect_translated6(ingress(build6(q)).out, at_backend6(q));
    map_port6(IPPROTO_UDP, kUdpPort, kBackend6b, 5353);
    expect_translated6(ingress(build6(q)).out, at_backend6(q, kBackend6b));
    expect_counted_once(NP_REASON_REPLY_NO_FLOW, [&] {
        const Bytes old_answer = build6(from_backend6(IPPROTO_UDP));
        EXPECT_EQ(egress(old_answer).out, old_answer) << "the old backend's flow is gone";
    });
    const Spec6 a = from_backend6(IPPROTO_UDP, 0, kBackend6b);
    expect_translated6(egress(build6(a)).out, from_node6(a));
}

TEST_F(TcPacket6Test, EachFamilyOfAPortReachesItsOwnBackend) {
    const Spec syn4 = to_node(IPPROTO_TCP);
    expect_translated(ingress(build(syn4)).out, at_backend(syn4));
    const Spec6 syn6 = to_node6(IPPROTO_TCP);
    expect_translated6(ingress(build6(syn6)).out, at_backend6(syn6));
    EXPECT_EQ(count(Table::half_open), 2u);
}

TEST_F(TcPacket6Test, ExtensionHeadersAreWalkedToTheTcpOrUdpHeader) {
    const std::vector<Ext> exts = {{kHopOpts, {1, 4, 0, 0, 0, 0}}, {kDstOpts, Bytes(14, 0)}, routing(0)};
    for (std::uint8_t proto : {IPPROTO_TCP, IPPROTO_UDP}) {
        SCOPED_TRACE(proto == IPPROTO_TCP ? "tcp" : "udp");
        const Spec6 in = with6(to_node6(proto), [&](Spec6& s) {
            s.ext = exts;
            s.sport = kClientPort + 1;
        });
        expect_translated6(ingress(build6(in)).out, at_backend6(in));
        const Spec6 reply = with6(from_backend6(proto), [&](Spec6& s) {
            s.ext = {{kDstOpts, Bytes(6, 0)}};
            s.dport = kClientPort + 1;
        });
        expect_translated6(egress(build6(reply)).out, from_node6(reply));
    }
}

TEST_F(TcPacket6Test, SynAfterFlowsAreLostIsPickedUpMidStream) {
    const Spec6 seg = to_node6(IPPROTO_TCP, kAck);
    expect_translated6(ingress(build6(seg)).out, at_backend6(seg));
    const auto fwd = flow(flow_key6(IPPROTO_TCP, kClient6, kClientPort, kNode6, kTcpPort, NP_FLOW_TO_BACKEND));
    ASSERT_TRUE(fwd);
    EXPECT_EQ(fwd->state, NP_FLOW_PICKED_UP);
}

struct PassCase6 {
    const char* name;
    Bytes packet;
    np_reason why;  // on ingress; egress counts reply_no_flow
};

std::vector<PassCase6> pass_cases6() {
    const Spec6 syn = to_node6(IPPROTO_TCP);
    const Bytes full = build6(syn);
    std::vector<Ext> too_many(5, Ext{kDstOpts, Bytes(6, 0)});
    return {
        {"neighbour_solicitation",
         build6(with6(syn, [](Spec6& s) {
             s.proto = kIcmp6;
             s.icmp_type = kNeighbourSolicitation;
             s.hop_limit = 255;
         })),
         NP_REASON_NOT_IPV4_TCP_UDP},
        {"echo_request", build6(with6(syn, [](Spec6& s) { s.proto = kIcmp6; })), NP_REASON_NOT_IPV4_TCP_UDP},
        {"port_not_mapped", build6(with6(syn, [](Spec6& s) { s.dport = kTcpPort + 7; })), NP_REASON_PORT_NOT_MAPPED},
        {"port_with_an_ipv4_backend_only", build6(with6(syn, [](Spec6& s) { s.dport = kIpv4OnlyPort; })),
         NP_REASON_PORT_NOT_MAPPED},
        {"not_a_node_address", build6(with6(syn, [](Spec6& s) { s.dst = kOtherHost6; })), NP_REASON_NOT_NODE_ADDR},
        {"routing_header_with_segments_left", build6(with6(syn, [](Spec6& s) { s.ext = {routing(1)}; })),
         NP_REASON_IP_OPTIONS},
        {"five_extension_headers", build6(with6(syn, [&](Spec6& s) { s.ext = too_many; })), NP_REASON_IP_OPTIONS},
        {"tcp_header_cut_short", prefix(full, kEth + kIp6Hlen + 12), NP_REASON_TRUNCATED},
    };
}

void PrintTo(const PassCase6& c, std::ostream* os) { *os << c.name; }

class PassThrough6 : public TcPacket6Test, public testing::WithParamInterface<PassCase6> {};

TEST_P(PassThrough6, Untouched) {
    const Bytes& in = GetParam().packet;
    expect_counted_once(GetParam().why, [&] {
        const RunResult r = ingress(in);
        EXPECT_EQ(r.retval, TC_ACT_OK);
        EXPECT_EQ(r.out, in);
    });
    expect_counted_once(NP_REASON_REPLY_NO_FLOW, [&] { EXPECT_EQ(egress(in).out, in); });
    EXPECT_EQ(flow_count(), 0u);
}

INSTANTIATE_TEST_SUITE_P(TcPacket6, PassThrough6, testing::ValuesIn(pass_cases6()),
                         [](const auto& info) { return std::string(info.param.name); });

TEST_F(TcPacket6Test, Ipv4ClientOfAPortWithAnIpv6BackendOnlyIsNotTranslated) {
    constexpr std::uint16_t port = 30082;
    map_port6(IPPROTO_TCP, port, kBackend6, 8080);
    const Bytes syn4 = build(with(to_node(IPPROTO_TCP), [](Spec& s) { s.dport = port; }));
    expect_counted_once(NP_REASON_PORT_NOT_MAPPED, [&] { EXPECT_EQ(ingress(syn4).out, syn4); });
}

// A client's 3,000-byte datagram in three fragments: the first decides, the
// others follow it by the fragment header's identification; the backend's
// fragmented answer leaves from the node address.
TEST_F(TcPacket6Test, FragmentsFollowTheFirstBothWays) {
    const Spec6 big = with6(to_node6(IPPROTO_UDP), [](Spec6& s) { s.payload = Bytes(3000, 'c'); });
    const auto ins = fragment6(build6(big), 0xabcd0001), wants = fragment6(build6(at_backend6(big)), 0xabcd0001);
    ASSERT_EQ(ins.size(), 3u);
    for (std::size_t i : {0u, 2u, 1u}) {
        SCOPED_TRACE("client fragment " + std::to_string(i));
        EXPECT_EQ(ingress(ins[i]).out, wants[i]);
    }
    const Spec6 answer = with6(from_backend6(IPPROTO_UDP), [](Spec6& s) { s.payload = Bytes(4000, 'a'); });
    const auto outs = fragment6(build6(answer), 7), outs_want = fragment6(build6(from_node6(answer)), 7);
    for (std::size_t i = 0; i < outs.size(); ++i) {
        SCOPED_TRACE("backend fragment " + std::to_string(i));
        EXPECT_EQ(egress(outs[i]).out, outs_want[i]);
    }
    const auto c = port_counts(IPPROTO_UDP, kUdpPort, NP_PORT_KEY_IPV6);
    ASSERT_TRUE(c);
    EXPECT_EQ(c->to_backend_packets, 3u);
    EXPECT_EQ(c->from_backend_packets, outs.size());
}

TEST_F(TcPacket6Test, LaterFragmentOfAnotherDatagramPassesUntouched) {
    const Spec6 big = with6(to_node6(IPPROTO_UDP), [](Spec6& s) { s.payload = Bytes(3000, 'c'); });
    const auto ins = fragment6(build6(big), 1);
    ingress(ins[0]);
    const auto other = fragment6(build6(big), 2);
    expect_counted_once(NP_REASON_FRAGMENT, [&] { EXPECT_EQ(ingress(other[1]).out, other[1]); });
}

constexpr std::uint8_t kDestUnreachable = 1, kPacketTooBig = 2, kTimeExceeded = 3;
constexpr std::uint8_t kCodePortUnreachable6 = 4;
constexpr const char* kRouter6 = "2001:db8:ff::1";  // a router on the client's way
constexpr const char* kBridge6 = "fd00:8::1";       // the node's address towards the sandboxes

// An ICMPv6 error (`type`, `code`, the 32 bits after its checksum: an MTU or
// a pointer) from `src` to `dst` quoting the packet `about` (a frame from
// build6()) from its IPv6 header on, as RFC 4443 has it.
Bytes icmp6_error(const char* src, const char* dst, std::uint8_t type, std::uint8_t code, const Bytes& about,
                  std::uint32_t rest = 0) {
    Bytes b = build6(with6(Spec6{}, [&](Spec6& s) {
        s.proto = kIcmp6;
        s.src = src;
        s.dst = dst;
        s.payload.clear();
    }));
    const std::size_t icmp = kEth + kIp6Hlen;
    b[icmp] = type;
    b[icmp + 1] = code;
    put16(b, icmp + 2, 0);
    put32(b, icmp + 4, rest);
    b.insert(b.end(), about.begin() + long(kEth), about.end());
    put16(b, kEth + 4, std::uint16_t(b.size() - icmp));
    put16(b, icmp + 2, std::uint16_t(~fold(pseudo_sum6(&b[kEth], kIcmp6, b.size() - icmp) +
                                           sum16(&b[icmp], b.size() - icmp))));
    return b;
}

struct Icmp6Case {
    const char* name;
    std::uint8_t type, code;
    std::uint32_t rest;
    std::uint8_t proto;
};

void PrintTo(const Icmp6Case& c, std::ostream* os) { *os << c.name; }

class Icmp6Error : public TcPacket6Test, public testing::WithParamInterface<Icmp6Case> {
protected:
    // The client's packet that starts the flow, and a large packet of the
    // backend's (1,200 bytes) for errors to be about.
    Spec6 client_packet() { return to_node6(GetParam().proto); }
    Spec6 backend_reply() {
        return with6(from_backend6(GetParam().proto, kAck), [](Spec6& s) { s.payload = Bytes(1200, 'd'); });
    }
    // A flow of the case's protocol, with its handshake done (TCP).
    void start_flow() {
        ingress(build6(client_packet()));
        if (GetParam().proto == IPPROTO_TCP) {
            egress(build6(from_backend6(IPPROTO_TCP)));
            ingress(build6(to_node6(IPPROTO_TCP, kAck)));
        }
    }
    Bytes error_about(const char* src, const char* dst, const Bytes& quoted) {
        return icmp6_error(src, dst, GetParam().type, GetParam().code, quoted, GetParam().rest);
    }
};

// A router's error about a reply as it left the node goes on to the backend,
// as if the node were not in between: byte for byte the error the router
// would have sent about the backend's own packet, checksums and all.
TEST_P(Icmp6Error, InboundAboutAReplyGoesToTheBackend) {
    start_flow();
    const Spec6 reply = backend_reply();
    egress(build6(reply));
    const Bytes in = error_about(kRouter6, kNode6, build6(from_node6(reply)));
    const RunResult r = ingress(in);
    EXPECT_EQ(r.retval, TC_ACT_OK);
    EXPECT_EQ(r.out, error_about(kRouter6, kBackend6, build6(reply)));
    const std::uint64_t client_packets = GetParam().proto == IPPROTO_TCP ? 2 : 1;
    EXPECT_EQ(port_counts(GetParam().proto, client_packet().dport, NP_PORT_KEY_IPV6)->to_backend_packets,
              client_packets + 1)
        << "the error counts as a packet to the backend";
}

// The backend's error about the client's packet leaves as the node's, about
// the packet the client sent.
TEST_P(Icmp6Error, OutboundFromTheBackendGetsTheNodeAddressInsideAndOutside) {
    start_flow();
    const Spec6 sent = client_packet();
    const RunResult r = egress(error_about(kBackend6, kClient6, build6(at_backend6(sent))));
    EXPECT_EQ(r.out, error_about(kNode6, kClient6, build6(sent)));
}

// One the node sent while forwarding (a smaller MTU towards the sandboxes)
// keeps its source: only the quoted packet is the client's again.
TEST_P(Icmp6Error, OutboundFromTheNodeKeepsItsSource) {
    start_flow();
    const Spec6 sent = client_packet();
    const RunResult r = egress(error_about(kBridge6, kClient6, build6(at_backend6(sent))));
    EXPECT_EQ(r.out, error_about(kBridge6, kClient6, build6(sent)));
}

INSTANTIATE_TEST_SUITE_P(TcPacket6, Icmp6Error,
                         testing::Values(Icmp6Case{"packet_too_big_udp", kPacketTooBig, 0, 1280, IPPROTO_UDP},
                                         Icmp6Case{"packet_too_big_tcp", kPacketTooBig, 0, 1280, IPPROTO_TCP},
                                         Icmp6Case{"port_unreachable_udp", kDestUnreachable, kCodePortUnreachable6, 0,
                                                   IPPROTO_UDP},
                                         Icmp6Case{"time_exceeded_tcp", kTimeExceeded, 0, 0, IPPROTO_TCP}),
                         [](const auto& info) { return std::string(info.param.name); });

TEST_F(TcPacket6Test, Icmp6ErrorAboutNoFlowPassesUntouched) {
    const Spec6 reply = from_node6(from_backend6(IPPROTO_UDP));
    const Bytes in = icmp6_error(kRouter6, kNode6, kPacketTooBig, 0, build6(reply), 1280);
    expect_counted_once(NP_REASON_ICMP_NO_FLOW, [&] { EXPECT_EQ(ingress(in).out, in); });
    const Bytes out = icmp6_error(kBackend6, kClient6, kDestUnreachable, 4, build6(at_backend6(to_node6(IPPROTO_UDP))));
    expect_counted_once(NP_REASON_REPLY_NO_FLOW, [&] { EXPECT_EQ(egress(out).out, out); });
}

// Without a link-layer header, as on a WireGuard or tun interface. test_run
// reads bytes 12-13 as the ethertype: the client's and the backend's
// addresses put 0x86dd there; and it refuses (EINVAL) what is shorter than
// an Ethernet and an IPv6 header: payloads long enough for that.
TEST_F(TcPacket6Test, L3ProgramsTranslateAPacketWithoutALinkHeader) {
    constexpr const char* client = "2001:db8:86dd::7";
    constexpr const char* backend = "fd00:8:86dd::2";
    constexpr std::uint16_t port = 30054;
    map_port6(IPPROTO_UDP, port, backend, 5353);
    const auto bare = [](const Bytes& frame) { return Bytes(frame.begin() + long(kEth), frame.end()); };
    const Spec6 in = with6(to_node6(IPPROTO_UDP), [&](Spec6& s) {
        s.src = client;
        s.dport = port;
        s.payload = Bytes(16, 'l');
    });
    EXPECT_EQ(run(skel_->progs.np_l3_ingress, bare(build6(in))).out, bare(build6(at_backend6(in, backend))));
    const Spec6 reply = with6(from_backend6(IPPROTO_UDP, 0, backend), [&](Spec6& s) {
        s.dst = client;
        s.payload = Bytes(16, 'r');
    });
    const Spec6 reply_out = with6(reply, [&](Spec6& s) {
        s.src = kNode6;
        s.sport = port;
    });
    EXPECT_EQ(run(skel_->progs.np_l3_egress, bare(build6(reply))).out, bare(build6(reply_out)));
}

}  // namespace
