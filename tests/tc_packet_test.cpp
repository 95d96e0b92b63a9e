// Tier 2: the TC programs of bpf/tc.bpf.c on crafted packets through
// bpf_prog_test_run_opts. Nothing is attached and nothing is pinned: every
// map's pin path is cleared before load, so the maps die with the skeleton.
// Checksums are checked with an RFC 1071 implementation of the test's own,
// not with anything the programs use.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include "base/bpf_clock.hpp"
#include "bpf_available.hpp"
#include "nodeport/abi.h"
#include "nodeport/fd.hpp"
#include "nodeport/reasons.hpp"
#include "nodeport/stats.hpp"
#include "rfc1071.hpp"
#include "tc.skel.h"
#include "tc_packet_fixture.hpp"

namespace {

using namespace tc_packet;

// ---- packets that must pass byte for byte, on both programs ----

struct PassCase {
    const char* name;
    Bytes packet;
    np_reason why;  // what np_tc_ingress counts it as (np_tc_egress: reply_no_flow, every one)
};



std::vector<PassCase> pass_cases() {
    const Spec syn = to_node(IPPROTO_TCP);
    const Bytes full_syn = build(syn), full_udp = build(to_node(IPPROTO_UDP));
    return {
        {"tcp_syn_other_port", build(with(syn, [](Spec& s) { s.dport = kTcpPort + 1; })), NP_REASON_PORT_NOT_MAPPED},
        {"udp_other_port", build(with(to_node(IPPROTO_UDP), [](Spec& s) { s.dport = kUdpPort + 1; })),
         NP_REASON_PORT_NOT_MAPPED},
        {"tcp_syn_other_destination", build(with(syn, [](Spec& s) { s.dst = kOtherHost; })), NP_REASON_NOT_NODE_ADDR},
        {"tcp_fin_without_flow", build(to_node(IPPROTO_TCP, kFin | kAck)), NP_REASON_NOT_FLOW_START},
        // The node's own connection from local port kTcpPort gets its SYN-ACK.
        {"tcp_synack_to_node_port", build(to_node(IPPROTO_TCP, kSyn | kAck)), NP_REASON_NOT_FLOW_START},
        {"arp", build(with(syn, [](Spec& s) { s.ethertype = ETH_P_ARP; })), NP_REASON_NOT_IPV4_TCP_UDP},
        {"ipv6_ethertype", build(with(syn, [](Spec& s) { s.ethertype = ETH_P_IPV6; })), NP_REASON_NOT_IPV4_TCP_UDP},
        // Fragments after the first of a datagram whose first was not seen.
        {"later_fragment", build(with(syn, [](Spec& s) { s.frag_off = 0x2000 | 185; })), NP_REASON_FRAGMENT},
        {"last_fragment_udp", build(with(to_node(IPPROTO_UDP), [](Spec& s) { s.frag_off = 3; })), NP_REASON_FRAGMENT},
        {"ip_options_ihl6", build(with(syn, [](Spec& s) { s.ihl = 6; })), NP_REASON_IP_OPTIONS},
        {"icmp_to_node", build(with(syn, [](Spec& s) { s.proto = IPPROTO_ICMP; })), NP_REASON_NOT_IPV4_TCP_UDP},
        // An error about the node's own connection (no flow), and an ICMP
        // type that is not an error nodeport translates (a redirect).
        {"icmp_error_about_no_flow",
         icmp_error("203.0.113.1", kNode, kIcmpUnreachable, kCodeFragNeeded,
                    build(with(syn, [](Spec& s) {
                        s.src = kNode, s.sport = 50000, s.dst = kClient, s.dport = 443, s.tcp_flags = kAck;
                    })),
                    0, 1280),
         NP_REASON_ICMP_NO_FLOW},
        {"icmp_redirect", icmp_error("203.0.113.1", kNode, 5, 1, build(syn)), NP_REASON_NOT_IPV4_TCP_UDP},
        // Shorter cuts cannot be tested: test_run refuses (EINVAL) an IPv4
        // frame shorter than an IPv4 header.
        {"ip_header_only", prefix(full_syn, kEth + 20), NP_REASON_TRUNCATED},
        {"truncated_tcp_header", prefix(full_syn, kEth + 20 + 12), NP_REASON_TRUNCATED},
        {"truncated_udp_header", prefix(full_udp, kEth + 20 + 6), NP_REASON_TRUNCATED},
    };
}

// Test names show the case name, not a byte dump of the parameter.
void PrintTo(const PassCase& c, std::ostream* os) {
    *os << c.name;
}

class PassThrough : public TcPacketTest, public testing::WithParamInterface<PassCase> {};

TEST_P(PassThrough, Untouched) {
    const Bytes& in = GetParam().packet;
    for (auto* prog : {skel_->progs.np_tc_ingress, skel_->progs.np_tc_egress}) {
        SCOPED_TRACE(bpf_program__name(prog));
        RunResult r;
        const bool is_ingress = prog == skel_->progs.np_tc_ingress;
        // A reply that cannot be parsed is no flow's, like one that can.
        expect_counted_once(is_ingress ? GetParam().why : NP_REASON_REPLY_NO_FLOW, [&] { r = run(prog, in); });
        EXPECT_EQ(r.retval, TC_ACT_OK);
        EXPECT_EQ(r.out, in);
    }
    EXPECT_EQ(flow_count(), 0u);
    EXPECT_EQ(port_counter_entries(), 0u) << "nothing translated, nothing counted per port";
}

INSTANTIATE_TEST_SUITE_P(TcPacket, PassThrough, testing::ValuesIn(pass_cases()),
                         [](const auto& info) { return std::string(info.param.name); });

// ---- new flows: translation and the two entries ----

struct NewFlowCase {
    const char* name;
    Spec in;
};

void PrintTo(const NewFlowCase& c, std::ostream* os) {
    *os << c.name;
}

class NewFlow : public TcPacketTest, public testing::WithParamInterface<NewFlowCase> {};

TEST_P(NewFlow, RewritesDestinationAndRecordsBothDirections) {
    const Spec& in = GetParam().in;
    const std::uint16_t node_port = in.dport, backend_port = in.proto == IPPROTO_TCP ? 8080 : 5353;
    const auto before = nodeport::bpf_clock_ns();
    auto r = ingress(build(in));
    const auto after = nodeport::bpf_clock_ns();
    EXPECT_EQ(r.retval, TC_ACT_OK);
    expect_translated(r.out, at_backend(in));

    const auto rev_key = flow_key(in.proto, kClient, kClientPort, kBackend, backend_port, NP_FLOW_TO_CLIENT);
    if (in.proto == IPPROTO_TCP) {
        // A handshake: one entry, under the reply's key, in half_open_flows.
        auto h = half_open(rev_key);
        ASSERT_TRUE(h);
        EXPECT_EQ(h->node_addr_be[0], ip_be(kNode));
        EXPECT_EQ(h->node_port_be, htons(node_port));
        EXPECT_EQ(h->state, NP_FLOW_SYN_SENT);
        EXPECT_EQ(h->client.isn, in.seq);
        EXPECT_GE(h->last_seen_ns, before);
        EXPECT_LE(h->last_seen_ns, after);
        EXPECT_EQ(flow_count(), 1u);
    } else {
        auto fwd = flow(flow_key(in.proto, kClient, kClientPort, kNode, node_port, NP_FLOW_TO_BACKEND));
        ASSERT_TRUE(fwd);
        EXPECT_EQ(fwd->addr_be[0], ip_be(kBackend));
        EXPECT_EQ(fwd->port_be, htons(backend_port));
        EXPECT_EQ(fwd->state, NP_FLOW_OPEN);
        EXPECT_GE(fwd->last_seen_ns, before);
        EXPECT_LE(fwd->last_seen_ns, after);
        auto rev = flow(rev_key);
        ASSERT_TRUE(rev);
        EXPECT_EQ(rev->addr_be[0], ip_be(kNode));
        EXPECT_EQ(rev->port_be, htons(node_port));
        EXPECT_EQ(rev->state, NP_FLOW_OPEN);
        EXPECT_EQ(count(Table::udp), 2u);
        EXPECT_EQ(flow_count(), 2u);
    }

    // The reply leaves with the node address and port as its source.
    Spec reply = from_backend(in.proto);
    reply.udp_no_csum = in.udp_no_csum;
    r = egress(build(reply));
    EXPECT_EQ(r.retval, TC_ACT_OK);
    expect_translated(r.out, from_node(reply));
}

INSTANTIATE_TEST_SUITE_P(TcPacket, NewFlow,
                         testing::Values(NewFlowCase{"tcp_syn", to_node(IPPROTO_TCP)},
                                         NewFlowCase{"udp", to_node(IPPROTO_UDP)},
                                         NewFlowCase{"udp_zero_checksum", with(to_node(IPPROTO_UDP), [](Spec& s) {
                                                         s.udp_no_csum = true;
                                                     })}),
                         [](const auto& info) { return std::string(info.param.name); });

// ---- flows over time ----

TEST_F(TcPacketTest, DataOfRecordedFlowFollowsIt) {
    establish();
    auto data = to_node(IPPROTO_TCP, kAck | kPsh);
    data.payload = Bytes(100, 'x');
    auto r = ingress(build(data));
    EXPECT_EQ(r.retval, TC_ACT_OK);
    expect_translated(r.out, at_backend(data));
}

TEST_F(TcPacketTest, RemapKeepsEstablishedTcpFlowOnItsBackend) {
    establish();
    EXPECT_EQ(flow(tcp_fwd_key())->state, NP_FLOW_OPEN);
    EXPECT_EQ(flow(tcp_rev_key())->state, NP_FLOW_OPEN);
    map_port(IPPROTO_TCP, kTcpPort, kBackend2, 8080);

    auto data = to_node(IPPROTO_TCP, kAck | kPsh);
    expect_translated(ingress(build(data)).out, at_backend(data, kBackend));
    auto reply = from_backend(IPPROTO_TCP, kAck | kPsh);
    expect_translated(egress(build(reply)).out, from_node(reply));

    // A new connection goes to the new backend.
    auto other = with(to_node(IPPROTO_TCP), [](Spec& s) { s.sport = kClientPort + 1; });
    expect_translated(ingress(build(other)).out, at_backend(other, kBackend2));
    EXPECT_EQ(flow_count(), 3u) << "the established pair and a handshake";
}

// A SYN on an established connection changes nothing, whatever its sequence
// number: it goes to the connection's backend (which answers with a
// challenge ACK), even after a remap, and the flow stays.
TEST_F(TcPacketTest, SynOnAnEstablishedConnectionChangesNothing) {
    establish();
    map_port(IPPROTO_TCP, kTcpPort, kBackend2, 8080);
    for (std::uint32_t seq : {1u, 0x12345678u, 0x80000001u}) {
        auto syn = with(to_node(IPPROTO_TCP), [seq](Spec& s) { s.seq = seq; });
        expect_translated(ingress(build(syn)).out, at_backend(syn, kBackend));
    }
    EXPECT_EQ(flow(tcp_fwd_key())->state, NP_FLOW_OPEN);
    EXPECT_EQ(flow(tcp_fwd_key())->addr_be[0], ip_be(kBackend));
    EXPECT_EQ(count(Table::half_open), 0u) << "no handshake started";
    EXPECT_EQ(flow_count(), 2u);
}

// ---- TCP sequence tracking ----
// establish() runs a handshake with these initial sequence numbers.
constexpr std::uint32_t kClientIsn = 1000, kBackendIsn = 5000;

// A client segment with sequence number `seq` acknowledging `ack`, no payload.
Spec client_seg(std::uint8_t flags, std::uint32_t seq, std::uint32_t ack = kBackendIsn + 1) {
    return with(to_node(IPPROTO_TCP, flags), [&](Spec& s) {
        s.seq = seq;
        s.ack = ack;
        s.payload.clear();
    });
}
Spec backend_seg(std::uint8_t flags, std::uint32_t seq, std::uint32_t ack = kClientIsn + 1) {
    return with(from_backend(IPPROTO_TCP, flags), [&](Spec& s) {
        s.seq = seq;
        s.ack = ack;
        s.payload.clear();
    });
}

}  // namespace

// Declared by the fixture (tc_packet_fixture.hpp), which the IPv6 tests share.
void tc_packet::TcPacketTest::establish() {
    ingress(build(client_seg(kSyn, kClientIsn, 0)));
    egress(build(backend_seg(kSyn | kAck, kBackendIsn)));
    ingress(build(client_seg(kAck, kClientIsn + 1)));
}

namespace {

TEST_F(TcPacketTest, HandshakeLivesInHalfOpenFlowsUntilTheClientsAck) {
    auto syn = client_seg(kSyn, kClientIsn, 0);
    expect_translated(ingress(build(syn)).out, at_backend(syn));
    EXPECT_EQ(count(Table::tcp), 0u);
    ASSERT_TRUE(half_open(tcp_rev_key()));
    auto synack = backend_seg(kSyn | kAck, kBackendIsn);
    expect_translated(egress(build(synack)).out, from_node(synack));
    EXPECT_EQ(half_open(tcp_rev_key())->backend.isn, kBackendIsn);
    auto ack = client_seg(kAck, kClientIsn + 1);
    expect_translated(ingress(build(ack)).out, at_backend(ack));
    EXPECT_EQ(count(Table::half_open), 0u) << "promoted";
    ASSERT_TRUE(flow(tcp_fwd_key()));
    EXPECT_EQ(flow(tcp_fwd_key())->state, NP_FLOW_OPEN);
    EXPECT_EQ(flow(tcp_fwd_key())->tcp.seq_end, kClientIsn + 1);
    EXPECT_EQ(flow(tcp_rev_key())->tcp.seq_end, kBackendIsn + 1);
    EXPECT_EQ(port_counts(IPPROTO_TCP, kTcpPort)->external_flows, 1u);
}

TEST_F(TcPacketTest, RetransmittedSynKeepsItsHandshake) {
    auto syn = client_seg(kSyn, kClientIsn, 0);
    expect_translated(ingress(build(syn)).out, at_backend(syn));
    // Aged by a second, so that the refresh shows at the clock's tick resolution.
    const auto key = tcp_rev_key();
    auto aged = *half_open(key);
    aged.last_seen_ns -= kSec;
    ASSERT_EQ(bpf_map_update_elem(table_fd(Table::half_open), &key, &aged, BPF_EXIST), 0);
    expect_translated(ingress(build(syn)).out, at_backend(syn));
    EXPECT_EQ(count(Table::half_open), 1u);
    EXPECT_GT(half_open(key)->last_seen_ns, aged.last_seen_ns)
        << "the retransmitted SYN keeps the handshake alive";
    EXPECT_EQ(port_counts(IPPROTO_TCP, kTcpPort)->external_flows, 1u) << "one flow, not two";
}

// An accept queue overflow: the backend drops the client's ACK and sends
// its SYN-ACK again, before and after nodeport saw that ACK.
TEST_F(TcPacketTest, RetransmittedSynAckIsTranslatedBeforeAndAfterTheClientsAck) {
    auto synack = backend_seg(kSyn | kAck, kBackendIsn);
    ingress(build(client_seg(kSyn, kClientIsn, 0)));
    expect_translated(egress(build(synack)).out, from_node(synack));
    expect_translated(egress(build(synack)).out, from_node(synack));
    ingress(build(client_seg(kAck, kClientIsn + 1)));
    ASSERT_TRUE(flow(tcp_fwd_key()));
    expect_translated(egress(build(synack)).out, from_node(synack));
    EXPECT_EQ(flow(tcp_fwd_key())->state, NP_FLOW_OPEN) << "the flow stays";
}

// The backend, its accept queue full, repeats its SYN-ACK while the client,
// whose ACK it dropped, has sent its request and FIN: still translated, and
// the half-closed flow stays.
TEST_F(TcPacketTest, RetransmittedSynAckIsTranslatedOnAHalfClosedFlow) {
    establish();
    auto fin = with(client_seg(kAck | kPsh | kFin, kClientIsn + 1), [](Spec& s) { s.payload = {'r'}; });
    expect_translated(ingress(build(fin)).out, at_backend(fin));
    auto synack = backend_seg(kSyn | kAck, kBackendIsn);
    expect_translated(egress(build(synack)).out, from_node(synack));
    EXPECT_EQ(flow_count(), 2u) << "the flow stays";
    EXPECT_EQ(flow(tcp_rev_key())->state, NP_FLOW_FIN_WAIT);
}

// The client's ACK of the SYN-ACK was lost; its next segment carries its
// request and its FIN and ends the handshake: the flow starts half closed,
// and the final ACK after the backend's FIN ends it.
TEST_F(TcPacketTest, SegmentWithFinThatEndsTheHandshakeStartsTheFlowHalfClosed) {
    ingress(build(client_seg(kSyn, kClientIsn, 0)));
    egress(build(backend_seg(kSyn | kAck, kBackendIsn)));
    auto request = with(client_seg(kAck | kPsh | kFin, kClientIsn + 1), [](Spec& s) { s.payload = {'r'}; });
    expect_translated(ingress(build(request)).out, at_backend(request));
    ASSERT_TRUE(flow(tcp_fwd_key()));
    EXPECT_EQ(flow(tcp_fwd_key())->state, NP_FLOW_FIN_WAIT);
    EXPECT_TRUE(flow(tcp_fwd_key())->tcp.flags & NP_SIDE_FIN);
    auto fin_back = backend_seg(kFin | kAck, kBackendIsn + 1, kClientIsn + 3);  // 'r' and the FIN acknowledged
    expect_translated(egress(build(fin_back)).out, from_node(fin_back));
    EXPECT_EQ(flow_count(), 2u);
    auto last = client_seg(kAck, kClientIsn + 3, kBackendIsn + 2);
    expect_translated(ingress(build(last)).out, at_backend(last));
    EXPECT_EQ(flow_count(), 0u) << "the final ACK ends the flow";
}

TEST_F(TcPacketTest, BackendRefusingTheSynEndsTheHandshakeOnlyWhenItAcknowledgesIt) {
    ingress(build(client_seg(kSyn, kClientIsn, 0)));
    const Bytes blind = build(backend_seg(kRst | kAck, 0, 777));
    expect_counted_once(NP_REASON_TCP_OUT_OF_WINDOW, [&] { EXPECT_EQ(egress(blind).out, blind); });
    EXPECT_EQ(count(Table::half_open), 1u);
    auto refused = backend_seg(kRst | kAck, 0, kClientIsn + 1);
    expect_translated(egress(build(refused)).out, from_node(refused));
    EXPECT_EQ(flow_count(), 0u);
}

// The client reached the sandbox's own address from port P, then connects
// through the node port from P too: at the backend both are one 4-tuple, so
// the backend answers the translated SYN with the old connection's challenge
// ACK, and that connection's data keeps flowing. None of it is the
// handshake's: it passes untouched, and the handshake's SYN-ACK, should one
// come, is still translated.
TEST_F(TcPacketTest, BackendPacketsOtherThanSynAckOnAHandshakesTupleAreNotTranslated) {
    ingress(build(client_seg(kSyn, kClientIsn, 0)));
    const Bytes challenge_ack = build(backend_seg(kAck, 90000, 70000));
    expect_counted_once(NP_REASON_REPLY_NOT_OURS, [&] { EXPECT_EQ(egress(challenge_ack).out, challenge_ack); });
    const Bytes data = build(with(backend_seg(kAck | kPsh, 90000, 70000), [](Spec& s) { s.payload = {'d'}; }));
    expect_counted_once(NP_REASON_REPLY_NOT_OURS, [&] { EXPECT_EQ(egress(data).out, data); });
    const Bytes fin = build(backend_seg(kFin | kAck, 90001, 70000));
    expect_counted_once(NP_REASON_REPLY_NOT_OURS, [&] { EXPECT_EQ(egress(fin).out, fin); });
    EXPECT_EQ(count(Table::half_open), 1u) << "the handshake is kept";
    auto synack = backend_seg(kSyn | kAck, kBackendIsn);
    expect_translated(egress(build(synack)).out, from_node(synack));
}

TEST_F(TcPacketTest, FinFromOneSideHalfClosesBothEntries) {
    establish();
    auto fin = client_seg(kFin | kAck, kClientIsn + 1);
    expect_translated(ingress(build(fin)).out, at_backend(fin));
    EXPECT_EQ(flow(tcp_fwd_key())->state, NP_FLOW_FIN_WAIT);
    EXPECT_EQ(flow(tcp_rev_key())->state, NP_FLOW_FIN_WAIT);
    // The other side keeps sending: a half-closed flow still translates.
    auto data = with(backend_seg(kAck | kPsh, kBackendIsn + 1, kClientIsn + 2), [](Spec& s) { s.payload = {'x'}; });
    expect_translated(egress(build(data)).out, from_node(data));
    // A retransmitted FIN from the same side does not close it.
    expect_translated(ingress(build(fin)).out, at_backend(fin));
    EXPECT_EQ(flow_count(), 2u);
}

// The client closes first; the backend's FIN acknowledges it; the client's
// ACK of that FIN is the final one and ends the flow at once.
TEST_F(TcPacketTest, FinalAckAfterFinBothWaysEndsTheFlow) {
    establish();
    auto fin = client_seg(kFin | kAck, kClientIsn + 1);
    expect_translated(ingress(build(fin)).out, at_backend(fin));
    auto fin_back = backend_seg(kFin | kAck, kBackendIsn + 1, kClientIsn + 2);
    expect_translated(egress(build(fin_back)).out, from_node(fin_back));
    EXPECT_EQ(flow_count(), 2u) << "the backend's FIN is not acknowledged yet";
    auto last_ack = client_seg(kAck, kClientIsn + 2, kBackendIsn + 2);
    expect_translated(ingress(build(last_ack)).out, at_backend(last_ack));
    EXPECT_EQ(flow_count(), 0u) << "the final ACK ended the flow";
}

// Both close at once: the FINs cross, and each side's ACK of the other's FIN
// is a final ACK; the second one ends the flow.
TEST_F(TcPacketTest, SimultaneousCloseEndsAtTheSecondFinalAck) {
    establish();
    auto fin = client_seg(kFin | kAck, kClientIsn + 1);
    auto fin_back = backend_seg(kFin | kAck, kBackendIsn + 1, kClientIsn + 1);
    expect_translated(ingress(build(fin)).out, at_backend(fin));
    expect_translated(egress(build(fin_back)).out, from_node(fin_back));
    auto ack_back = backend_seg(kAck, kBackendIsn + 2, kClientIsn + 2);
    expect_translated(egress(build(ack_back)).out, from_node(ack_back));
    EXPECT_EQ(flow_count(), 2u);
    auto ack = client_seg(kAck, kClientIsn + 2, kBackendIsn + 2);
    expect_translated(ingress(build(ack)).out, at_backend(ack));
    EXPECT_EQ(flow_count(), 0u);
}

// An RST at the edge of the window (the receiver's next expected sequence
// number, or the sender's next one after data in flight) ends the flow.
TEST_F(TcPacketTest, RstAtTheEdgeOfTheWindowEndsTheFlow) {
    for (bool data_in_flight : {false, true}) {
        SCOPED_TRACE(data_in_flight ? "after data in flight" : "at the backend's ack");
        establish();
        std::uint32_t seq = kClientIsn + 1;
        if (data_in_flight) {
            auto data = with(client_seg(kAck | kPsh, seq), [](Spec& s) { s.payload = Bytes(100, 'x'); });
            ingress(build(data));
            seq += 100;
        }
        auto rst = client_seg(kRst | kAck, seq);
        expect_translated(ingress(build(rst)).out, at_backend(rst));
        EXPECT_EQ(flow_count(), 0u);
    }
}

TEST_F(TcPacketTest, RstFromBackendAtTheEdgeEndsTheFlow) {
    establish();
    auto rst = backend_seg(kRst | kAck, kBackendIsn + 1);
    expect_translated(egress(build(rst)).out, from_node(rst));
    EXPECT_EQ(flow_count(), 0u);
}

// Inside the window but not at its edge: passed on (the receiver answers
// with a challenge ACK), the flow kept.
TEST_F(TcPacketTest, RstInsideTheWindowIsPassedOnAndKeepsTheFlow) {
    establish();
    auto data = with(client_seg(kAck | kPsh, kClientIsn + 1), [](Spec& s) { s.payload = Bytes(100, 'x'); });
    ingress(build(data));
    auto rst = client_seg(kRst | kAck, kClientIsn + 50);
    expect_translated(ingress(build(rst)).out, at_backend(rst));
    EXPECT_EQ(flow_count(), 2u);
}

// Blind RSTs (conntrack: INVALID) pass untranslated to the node, which drops
// them, and change nothing: the connection goes on both ways.
TEST_F(TcPacketTest, RstOutsideTheWindowChangesNothing) {
    establish();
    for (std::uint32_t seq : {0u, 5u, kClientIsn, kClientIsn + 2, kClientIsn + 70000, 0x80000000u, 0xdeadbeefu}) {
        SCOPED_TRACE(seq);
        const Bytes rst = build(client_seg(kRst | kAck, seq));
        expect_counted_once(NP_REASON_TCP_OUT_OF_WINDOW, [&] { EXPECT_EQ(ingress(rst).out, rst); });
        const Bytes rst_back = build(backend_seg(kRst, seq + kBackendIsn));
        EXPECT_EQ(egress(rst_back).out, rst_back);
    }
    EXPECT_EQ(flow(tcp_fwd_key())->state, NP_FLOW_OPEN);
    auto data = client_seg(kAck | kPsh, kClientIsn + 1);
    expect_translated(ingress(build(data)).out, at_backend(data));
    auto reply = backend_seg(kAck | kPsh, kBackendIsn + 1);
    expect_translated(egress(build(reply)).out, from_node(reply));
}

// A picked-up flow knows the backend's numbers only once it sent: until then
// an RST ends it whatever its sequence number (conntrack's be_liberal). If
// the connection lives on, its next segment picks it up again.
TEST_F(TcPacketTest, RstOnAPickedUpFlowEndsItAndTheNextSegmentPicksItUp) {
    auto data = to_node(IPPROTO_TCP, kAck | kPsh);
    ingress(build(data));
    auto rst = to_node(IPPROTO_TCP, kRst | kAck);
    rst.payload.clear();
    expect_translated(ingress(build(rst)).out, at_backend(rst));
    EXPECT_EQ(flow_count(), 0u);
    expect_translated(ingress(build(data)).out, at_backend(data));
    auto answer = from_backend(IPPROTO_TCP, kAck | kPsh);
    expect_translated(egress(build(answer)).out, from_node(answer));
}

// Spoofed SYNs from many sources fill `half_open_flows` (shrunk here); the
// established connection's flow lives in `flows` and stays.
class TcPacketSynFloodTest : public TcPacketTest {
    void prepare(tc_bpf& skel) override { ASSERT_EQ(bpf_map__set_max_entries(skel.maps.half_open_flows, 256), 0); }
};

TEST_F(TcPacketSynFloodTest, FloodFillsTheHalfOpenTableWhileTheEstablishedFlowStays) {
    establish();
    for (std::uint32_t i = 0; i < 4096; ++i) {
        const std::string src = "10.99." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1);
        auto syn = with(client_seg(kSyn, i * 7919, 0), [&](Spec& s) {
            s.src = src.c_str();
            s.sport = std::uint16_t(1024 + i);
        });
        ingress(build(syn));
    }
    EXPECT_LE(count(Table::half_open), 256u);
    EXPECT_GE(count(Table::half_open), 128u) << "the flood filled the half-open table";
    EXPECT_EQ(count(Table::tcp), 2u) << "the established flow is all `flows` holds";
    auto data = client_seg(kAck | kPsh, kClientIsn + 1);
    expect_translated(ingress(build(data)).out, at_backend(data));
    auto reply = backend_seg(kAck | kPsh, kBackendIsn + 1);
    expect_translated(egress(build(reply)).out, from_node(reply));
}

// Loose pick-up, as conntrack's nf_conntrack_tcp_loose=1: a plain segment of
// a connection whose flow is gone (flushed, evicted) reaches the port's
// current backend, and the flow is recorded both ways, picked up.
TEST_F(TcPacketTest, MidStreamSegmentWithoutFlowIsPickedUpToTheCurrentBackend) {
    auto data = to_node(IPPROTO_TCP, kAck | kPsh);
    expect_counted_once(NP_REASON_COUNT, [&] { expect_translated(ingress(build(data)).out, at_backend(data)); });
    ASSERT_TRUE(flow(tcp_fwd_key()));
    ASSERT_TRUE(flow(tcp_rev_key()));
    EXPECT_EQ(flow(tcp_fwd_key())->state, NP_FLOW_PICKED_UP);
    EXPECT_EQ(flow(tcp_rev_key())->state, NP_FLOW_PICKED_UP);
    EXPECT_EQ(port_counts(IPPROTO_TCP, kTcpPort)->external_flows, 1u);
    auto answer = from_backend(IPPROTO_TCP, kAck | kPsh);
    expect_translated(egress(build(answer)).out, from_node(answer));
    // The next segment is the flow's, not a second pick-up.
    expect_translated(ingress(build(data)).out, at_backend(data));
    EXPECT_EQ(port_counts(IPPROTO_TCP, kTcpPort)->external_flows, 1u);

    // After a remap, a lost flow is picked up to the new backend, which
    // resets it, as behind conntrack.
    unmap_port(IPPROTO_TCP, kTcpPort);
    map_port(IPPROTO_TCP, kTcpPort, kBackend2, 8080);
    auto other = with(data, [](Spec& s) { s.sport = kClientPort + 1; });
    expect_translated(ingress(build(other)).out, at_backend(other, kBackend2));
}

// What is not picked up: the segments conntrack would call INVALID without an
// entry (FIN, RST, a SYN-ACK), and segments to an unmapped port or to an
// address that is not the node's. All pass as the node's own.
TEST_F(TcPacketTest, OnlyPlainSegmentsToAMappedNodePortArePickedUp) {
    for (const auto& [name, spec] : std::vector<std::pair<const char*, Spec>>{
             {"fin", to_node(IPPROTO_TCP, kFin | kAck)},
             {"rst", to_node(IPPROTO_TCP, kRst | kAck)},
             {"syn_ack", to_node(IPPROTO_TCP, kSyn | kAck)},
             {"other_port", with(to_node(IPPROTO_TCP, kAck), [](Spec& s) { s.dport = kTcpPort + 1; })},
             {"other_destination", with(to_node(IPPROTO_TCP, kAck), [](Spec& s) { s.dst = kOtherHost; })},
         }) {
        SCOPED_TRACE(name);
        const Bytes in = build(spec);
        expect_counted_once(NP_REASON_NOT_FLOW_START, [&] { EXPECT_EQ(ingress(in).out, in); });
        EXPECT_EQ(flow_count(), 0u);
    }
}

// A closed flow on the client's tuple, then the client connects again from
// the same port: with the port mapped, remapped or unmapped.
class SynOnClosedTuple : public TcPacketTest {
protected:
    void SetUp() override {
        TcPacketTest::SetUp();
        if (IsSkipped())
            return;
        establish();
        ingress(build(client_seg(kFin | kAck, kClientIsn + 1)));
        egress(build(backend_seg(kFin | kAck, kBackendIsn + 1, kClientIsn + 2)));
        ingress(build(client_seg(kAck, kClientIsn + 2, kBackendIsn + 2)));
        ASSERT_EQ(flow_count(), 0u);
    }
};

TEST_F(SynOnClosedTuple, PortStillMappedStartsAFreshFlow) {
    auto syn = to_node(IPPROTO_TCP);
    expect_translated(ingress(build(syn)).out, at_backend(syn));
    ASSERT_TRUE(half_open(tcp_rev_key()));
    expect_translated(egress(build(from_backend(IPPROTO_TCP))).out, from_node(from_backend(IPPROTO_TCP)));
    auto ack = to_node(IPPROTO_TCP, kAck);
    expect_translated(ingress(build(ack)).out, at_backend(ack));
    EXPECT_EQ(flow(tcp_fwd_key())->state, NP_FLOW_OPEN);
}

TEST_F(SynOnClosedTuple, PortRemappedGoesToTheNewBackendWithEveryLaterPacket) {
    map_port(IPPROTO_TCP, kTcpPort, kBackend2, 8080);
    auto syn = to_node(IPPROTO_TCP);
    expect_translated(ingress(build(syn)).out, at_backend(syn, kBackend2));
    auto synack = with(from_backend(IPPROTO_TCP), [](Spec& s) { s.src = kBackend2; });
    expect_translated(egress(build(synack)).out, from_node(synack));
    for (std::uint8_t flags : {kAck, std::uint8_t(kAck | kPsh)}) {
        auto pkt = to_node(IPPROTO_TCP, flags);
        expect_translated(ingress(build(pkt)).out, at_backend(pkt, kBackend2));
    }
    // The old backend's packets on this tuple are no longer translated.
    const Bytes stale = build(from_backend(IPPROTO_TCP, kFin | kAck));
    EXPECT_EQ(egress(stale).out, stale);
}

TEST_F(SynOnClosedTuple, PortUnmappedPassesTheSynAndEveryLaterPacket) {
    unmap_port(IPPROTO_TCP, kTcpPort);
    for (std::uint8_t flags : {kSyn, kAck, std::uint8_t(kAck | kPsh), std::uint8_t(kFin | kAck)}) {
        const Bytes pkt = build(to_node(IPPROTO_TCP, flags));
        EXPECT_EQ(ingress(pkt).out, pkt) << "flags " << int(flags);
    }
    EXPECT_EQ(flow_count(), 0u);
}

// The same client reaches the sandbox's own address from a port it used
// through the node port before: the sandbox's SYN-ACK is not nodeport's.
struct StaleFlowCase {
    const char* name;
    std::uint8_t state;
};

void PrintTo(const StaleFlowCase& c, std::ostream* os) {
    *os << c.name;
}

class SynAckNotTranslatedByUs : public TcPacketTest, public testing::WithParamInterface<StaleFlowCase> {};

TEST_P(SynAckNotTranslatedByUs, PassesUntouchedAndSoDoesTheRestOfItsConnection) {
    const auto& c = GetParam();
    const std::uint64_t now = nodeport::bpf_clock_ns();
    put_flow(tcp_fwd_key(), flow_value(kBackend, 8080, c.state, now));
    put_flow(tcp_rev_key(), flow_value(kNode, kTcpPort, c.state, now));

    // The client's SYN to the sandbox IP is forwarded, not addressed to the node.
    const Bytes direct_syn = build(at_backend(to_node(IPPROTO_TCP)));
    EXPECT_EQ(ingress(direct_syn).out, direct_syn);
    const Bytes synack = build(from_backend(IPPROTO_TCP));
    EXPECT_EQ(egress(synack).out, synack);
    const Bytes data = build(from_backend(IPPROTO_TCP, kAck | kPsh));
    EXPECT_EQ(egress(data).out, data);
    EXPECT_EQ(flow_count(), 0u) << "the stale flow went with the SYN-ACK";
}

INSTANTIATE_TEST_SUITE_P(TcPacket, SynAckNotTranslatedByUs,
                         testing::Values(StaleFlowCase{"established", NP_FLOW_OPEN},
                                         StaleFlowCase{"picked_up", NP_FLOW_PICKED_UP},
                                         StaleFlowCase{"fin_wait", NP_FLOW_FIN_WAIT}),
                         [](const auto& info) { return std::string(info.param.name); });

// ---- UDP follows the port's mapping ----

TEST_F(TcPacketTest, UdpDatagramAfterRemapGoesToTheNewBackend) {
    auto dgram = to_node(IPPROTO_UDP);
    expect_translated(ingress(build(dgram)).out, at_backend(dgram));
    map_port(IPPROTO_UDP, kUdpPort, kBackend2, 5353);
    expect_translated(ingress(build(dgram)).out, at_backend(dgram, kBackend2));

    auto fwd = flow_key(IPPROTO_UDP, kClient, kClientPort, kNode, kUdpPort, NP_FLOW_TO_BACKEND);
    EXPECT_EQ(flow(fwd)->addr_be[0], ip_be(kBackend2));
    EXPECT_FALSE(flow(flow_key(IPPROTO_UDP, kClient, kClientPort, kBackend, 5353, NP_FLOW_TO_CLIENT)))
        << "the old backend's reply entry is gone";
    EXPECT_EQ(count(Table::udp), 2u);
    auto reply = with(from_backend(IPPROTO_UDP), [](Spec& s) { s.src = kBackend2; });
    expect_translated(egress(build(reply)).out, from_node(reply));
}

TEST_F(TcPacketTest, UdpDatagramAfterUnmapPassesAndTheFlowIsGone) {
    auto dgram = to_node(IPPROTO_UDP);
    expect_translated(ingress(build(dgram)).out, at_backend(dgram));
    unmap_port(IPPROTO_UDP, kUdpPort);
    const Bytes in = build(dgram);
    EXPECT_EQ(ingress(in).out, in);
    EXPECT_EQ(flow_count(), 0u);
}

TEST_F(TcPacketTest, ReplyOfAnotherBackendPortIsUntouched) {
    establish();
    auto reply = with(from_backend(IPPROTO_TCP), [](Spec& s) { s.sport = 8081; });
    const Bytes in = build(reply);
    EXPECT_EQ(egress(in).out, in);
}

// Short timeouts, so a flow can be made idle without waiting or needing an
// uptime longer than the default TCP timeout.
class TcPacketIdleTest : public TcPacketTest {
    np_flow_timeouts timeouts() override { return {2 * kSec, 2 * kSec, 2 * kSec, 2 * kSec}; }
};

// An idle flow is inert: the old backend's replies pass, and the client's
// next segment is decided afresh (picked up to the current backend), as is
// its next SYN.
TEST_F(TcPacketIdleTest, IdleTcpFlowIsForgottenAndSynStartsFresh) {
    const std::uint64_t ago = nodeport::bpf_clock_ns() - 5 * kSec;
    put_flow(tcp_fwd_key(), flow_value(kBackend2, 8080, NP_FLOW_OPEN, ago));
    put_flow(tcp_rev_key(kBackend2), flow_value(kNode, kTcpPort, NP_FLOW_OPEN, ago));

    const Bytes reply = build(with(from_backend(IPPROTO_TCP, kAck), [](Spec& s) { s.src = kBackend2; }));
    EXPECT_EQ(egress(reply).out, reply);
    auto data = to_node(IPPROTO_TCP, kAck);
    expect_translated(ingress(build(data)).out, at_backend(data, kBackend));

    auto syn = to_node(IPPROTO_TCP);
    expect_translated(ingress(build(syn)).out, at_backend(syn, kBackend));
    EXPECT_FALSE(flow(tcp_fwd_key())) << "a SYN on a picked-up flow is decided afresh";
    EXPECT_TRUE(half_open(tcp_rev_key()));
}

TEST_F(TcPacketIdleTest, IdleUdpFlowIsReplacedByTheNextDatagram) {
    const std::uint64_t ago = nodeport::bpf_clock_ns() - 5 * kSec;
    auto fwd = flow_key(IPPROTO_UDP, kClient, kClientPort, kNode, kUdpPort, NP_FLOW_TO_BACKEND);
    put_flow(fwd, flow_value(kBackend2, 5353, NP_FLOW_OPEN, ago));

    auto dgram = to_node(IPPROTO_UDP);
    expect_translated(ingress(build(dgram)).out, at_backend(dgram, kBackend));
    EXPECT_EQ(flow(fwd)->addr_be[0], ip_be(kBackend));
}

// The node's query is remembered for the UDP idle timeout only: a datagram
// from the same remote port after that is a client's.
TEST_F(TcPacketIdleTest, AnswerLongAfterTheNodesUdpIsAClientsAgain) {
    const std::uint64_t ago = nodeport::bpf_clock_ns() - 5 * kSec;
    const np_flow_key key = flow_key(IPPROTO_UDP, kClient, 53, kNode, kUdpPort, NP_FLOW_TO_BACKEND);
    ASSERT_EQ(bpf_map_update_elem(bpf_map__fd(skel_->maps.node_udp), &key, &ago, BPF_ANY), 0);
    const Spec late = with(to_node(IPPROTO_UDP), [](Spec& s) { s.sport = 53; });
    expect_translated(ingress(build(late)).out, at_backend(late));
}

// 1.5 s old: not idle (2 s), but older than the 1 s between last_seen writes,
// so the packet refreshes its entry and the partner entry.
TEST_F(TcPacketIdleTest, RecentFlowIsKeptAndRefreshedBothWays) {
    const std::uint64_t ago = nodeport::bpf_clock_ns() - 1500 * 1000 * 1000ULL;
    put_flow(tcp_fwd_key(), flow_value(kBackend2, 8080, NP_FLOW_OPEN, ago));
    put_flow(tcp_rev_key(kBackend2), flow_value(kNode, kTcpPort, NP_FLOW_OPEN, ago));
    const std::uint64_t before = nodeport::bpf_clock_ns();
    auto data = to_node(IPPROTO_TCP, kAck);
    expect_translated(ingress(build(data)).out, at_backend(data, kBackend2));
    EXPECT_GE(flow(tcp_fwd_key())->last_seen_ns, before);
    EXPECT_GE(flow(tcp_rev_key(kBackend2))->last_seen_ns, before);
}

// The LRU evicted the reply entry: the next refresh writes it again, so a
// flow does not stay split.
TEST_F(TcPacketIdleTest, EvictedPartnerIsRebuiltOnTheNextRefresh) {
    const std::uint64_t ago = nodeport::bpf_clock_ns() - 1500 * 1000 * 1000ULL;
    put_flow(tcp_fwd_key(), flow_value(kBackend, 8080, NP_FLOW_OPEN, ago));
    auto data = to_node(IPPROTO_TCP, kAck);
    expect_translated(ingress(build(data)).out, at_backend(data));
    auto rev = flow(tcp_rev_key());
    ASSERT_TRUE(rev);
    EXPECT_EQ(rev->addr_be[0], ip_be(kNode));
    EXPECT_EQ(rev->port_be, htons(kTcpPort));
    EXPECT_EQ(rev->state, NP_FLOW_OPEN);
    auto reply = from_backend(IPPROTO_TCP, kAck);
    expect_translated(egress(build(reply)).out, from_node(reply));
}

TEST_F(TcPacketTest, ClientPortReusedThroughAnotherNodePortToSameBackendIsNotTranslated) {
    establish();
    map_port(IPPROTO_TCP, kTcpPort + 10, kBackend, 8080);
    // Same client addr:port, same backend addr:port: the replies of the two
    // flows would be identical, so the second one is left alone.
    const Bytes second = build(with(to_node(IPPROTO_TCP), [](Spec& s) { s.dport = kTcpPort + 10; }));
    expect_counted_once(NP_REASON_FLOW_CONFLICT, [&] { EXPECT_EQ(ingress(second).out, second); });
    EXPECT_FALSE(port_counts(IPPROTO_TCP, kTcpPort + 10));
    EXPECT_EQ(flow_count(), 2u);
    EXPECT_EQ(flow(tcp_rev_key())->port_be, htons(kTcpPort));
}

// A UDP socket of the test process bound to `local` (port 0: the kernel
// picks one) and, when `peer` is given, connected to it; returns its port.
std::uint16_t udp_socket(nodeport::Fd& sock, const char* local, std::optional<sockaddr_in> peer = std::nullopt) {
    sock = nodeport::Fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    EXPECT_TRUE(sock.valid());
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = ip_be(local);
    EXPECT_EQ(::bind(sock.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    if (peer) {
        EXPECT_EQ(::connect(sock.get(), reinterpret_cast<sockaddr*>(&*peer), sizeof *peer), 0);
    }
    socklen_t len = sizeof addr;
    EXPECT_EQ(::getsockname(sock.get(), reinterpret_cast<sockaddr*>(&addr), &len), 0);
    return ntohs(addr.sin_port);
}

// The node's own query: its socket, connected to the server, got a local
// port that is also a mapped node port; the server's answer must reach the
// socket, not the sandbox. Loopback addresses, so connect() needs no route
// and nothing is sent.
TEST_F(TcPacketTest, UdpReplyToAConnectedNodeSocketIsUntouched) {
    sockaddr_in server{};
    server.sin_family = AF_INET;
    server.sin_addr.s_addr = ip_be("127.0.0.1");
    server.sin_port = htons(kClientPort);
    nodeport::Fd sock;
    const std::uint16_t port = udp_socket(sock, "127.0.0.1", server);
    map_port(IPPROTO_UDP, port, kBackend, 5353);
    add_node_addr("127.0.0.1");

    const Bytes in = build(with(to_node(IPPROTO_UDP), [&](Spec& s) {
        s.src = "127.0.0.1";
        s.dst = "127.0.0.1";
        s.dport = port;
    }));
    expect_counted_once(NP_REASON_UDP_ANSWERS_NODE, [&] { EXPECT_EQ(ingress(in).out, in); });
    EXPECT_EQ(flow_count(), 0u);
    EXPECT_FALSE(port_counts(IPPROTO_UDP, port));
}

// The node's own UDP from a mapped node port (its query, or a sandbox's
// datagram it MASQUERADEd to that port) leaves through egress with no flow;
// the answer must reach the node, not start a flow to the sandbox.
TEST_F(TcPacketTest, AnswerToUdpTheNodeSentFromANodePortIsUntouched) {
    const Spec query = with(from_backend(IPPROTO_UDP), [](Spec& s) {
        s.src = kNode;
        s.sport = kUdpPort;
        s.dport = 53;
    });
    const Bytes sent = build(query);
    EXPECT_EQ(egress(sent).out, sent) << "the node's datagram leaves untouched";
    const Bytes answer = build(with(to_node(IPPROTO_UDP), [](Spec& s) { s.sport = 53; }));
    expect_counted_once(NP_REASON_UDP_ANSWERS_NODE, [&] { EXPECT_EQ(ingress(answer).out, answer); });
    EXPECT_EQ(count(Table::udp), 0u) << "no flow to the sandbox";

    // Another client of the same node port is the sandbox's, as ever.
    const Spec other = to_node(IPPROTO_UDP);
    expect_translated(ingress(build(other)).out, at_backend(other));
}

// From a port that is not mapped, the node's UDP is not noted at all.
TEST_F(TcPacketTest, UdpTheNodeSendsFromAnUnmappedPortIsNotNoted) {
    const Bytes sent = build(with(from_backend(IPPROTO_UDP), [](Spec& s) {
        s.src = kNode;
        s.sport = 31999;
    }));
    EXPECT_EQ(egress(sent).out, sent);
    np_flow_key first{};
    EXPECT_NE(bpf_map_get_next_key(bpf_map__fd(skel_->maps.node_udp), nullptr, &first), 0) << "node_udp is empty";
}

// An unconnected socket bound to a mapped port (a node service, podman's
// conmon reserving a published port) does not keep the datagrams from the
// sandbox: the mapping wins, as for TCP and with an iptables DNAT rule.
TEST_F(TcPacketTest, UdpToPortAnUnconnectedNodeSocketIsBoundToIsTranslated) {
    nodeport::Fd sock;
    const std::uint16_t port = udp_socket(sock, "0.0.0.0");
    map_port(IPPROTO_UDP, port, kBackend, 5353);

    const Spec dgram = with(to_node(IPPROTO_UDP), [&](Spec& s) { s.dport = port; });
    expect_translated(ingress(build(dgram)).out, at_backend(dgram));
    EXPECT_EQ(count(Table::udp), 2u);
}

// A translation whose correct UDP checksum is 0 must be sent as 0xffff:
// 0 would mean "no checksum" (BPF_F_MARK_MANGLED_0).
TEST_F(TcPacketTest, UdpChecksumComputingToZeroIsSentAsAllOnes) {
    Spec in = to_node(IPPROTO_UDP);
    in.payload = {0, 0};
    // Choose the payload word that makes the translated packet sum to 0xffff.
    Bytes translated = build(with(at_backend(in), [](Spec& s) { s.udp_no_csum = true; }));
    const std::size_t l4 = kEth + 20, l4_len = translated.size() - l4;
    const std::uint16_t rest = fold(pseudo_sum(&translated[kEth], IPPROTO_UDP, l4_len) + sum16(&translated[l4], l4_len));
    const std::uint16_t word = std::uint16_t(0xffff - rest);
    in.payload = {std::uint8_t(word >> 8), std::uint8_t(word)};

    auto r = ingress(build(in));
    ASSERT_EQ(r.out.size(), translated.size());
    EXPECT_EQ(get16(r.out, l4_csum_off(IPPROTO_UDP)), 0xffff);
    expect_translated(r.out, at_backend(in));
}

// ---- ICMP errors about translated packets ----

constexpr const char* kRouter = "203.0.113.1";  // a router between the node and the client

// True when the outer IPv4 header, the ICMP message and the quoted IPv4
// header all checksum right (the quoted TCP/UDP checksum covers bytes the
// error does not carry: expect_icmp_translated compares it to the real one).
::testing::AssertionResult icmp_checksums_valid(const Bytes& b) {
    const std::size_t ip = kEth, icmp = ip + 20, quoted = icmp + 8;
    if (fold(sum16(&b[ip], 20)) != 0xffff)
        return ::testing::AssertionFailure() << "bad outer IPv4 header checksum";
    if (fold(sum16(&b[icmp], b.size() - icmp)) != 0xffff)
        return ::testing::AssertionFailure() << "bad ICMP checksum";
    if (fold(sum16(&b[quoted], 20)) != 0xffff)
        return ::testing::AssertionFailure() << "bad quoted IPv4 header checksum";
    return ::testing::AssertionSuccess();
}

// `out` must be exactly `want`, an error built from the translated packets
// with checksums of the test's own: addresses, ports, every checksum
// (the quoted TCP/UDP one included), every other byte.
void expect_icmp_translated(const Bytes& out, const Bytes& want) {
    ASSERT_EQ(out.size(), want.size());
    EXPECT_EQ(0, std::memcmp(&out[kEth + 12], &want[kEth + 12], 8)) << "outer addresses";
    const std::size_t quoted = kEth + 28;
    EXPECT_EQ(0, std::memcmp(&out[quoted + 12], &want[quoted + 12], 8)) << "quoted addresses";
    EXPECT_EQ(0, std::memcmp(&out[quoted + 20], &want[quoted + 20], 4)) << "quoted ports";
    EXPECT_TRUE(icmp_checksums_valid(out));
    EXPECT_EQ(out, want);
}

struct IcmpCase {
    const char* name;
    std::uint8_t proto;
    std::uint8_t type;
    std::uint8_t code;
    std::size_t quote_l4;  // bytes of the TCP/UDP header and payload quoted; 0: all
    bool udp_no_csum = false;
};

void PrintTo(const IcmpCase& c, std::ostream* os) {
    *os << c.name;
}

const auto icmp_cases = testing::Values(
    // Linux quotes the whole packet (up to 576 bytes), TCP checksum included.
    IcmpCase{"tcp_frag_needed", IPPROTO_TCP, kIcmpUnreachable, kCodeFragNeeded, 0},
    // A router may quote only the 8 bytes it must: no TCP checksum to update.
    IcmpCase{"tcp_frag_needed_8_bytes", IPPROTO_TCP, kIcmpUnreachable, kCodeFragNeeded, 8},
    IcmpCase{"tcp_time_exceeded", IPPROTO_TCP, kIcmpTimeExceeded, 0, 0},
    IcmpCase{"udp_port_unreachable", IPPROTO_UDP, kIcmpUnreachable, kCodePortUnreachable, 0},
    IcmpCase{"udp_zero_checksum", IPPROTO_UDP, kIcmpUnreachable, kCodePortUnreachable, 0, true},
    IcmpCase{"udp_parameter_problem", IPPROTO_UDP, kIcmpParameterProblem, 0, 8});

class IcmpError : public TcPacketTest, public testing::WithParamInterface<IcmpCase> {
protected:
    // A flow of the case's protocol, with its handshake done (TCP).
    void start_flow() {
        const std::uint8_t proto = GetParam().proto;
        ingress(build(to_node(proto)));
        if (proto == IPPROTO_TCP) {
            egress(build(from_backend(IPPROTO_TCP)));
            ingress(build(to_node(IPPROTO_TCP, kAck)));
        }
    }
    std::uint16_t mtu() const { return GetParam().code == kCodeFragNeeded ? 1280 : 0; }
    // A large segment or datagram, a case's packet to quote.
    Spec sized(Spec s) const {
        s.payload = Bytes(1400, 'd');
        s.udp_no_csum = GetParam().udp_no_csum;
        return s;
    }
};

// A router on the way to the client (or the client itself) answers a
// backend's reply, which left as <node>:<port> -> client: the error goes on
// to the backend, about the reply as the backend sent it.
TEST_P(IcmpError, InboundAboutAReplyGoesToTheBackend) {
    const auto& c = GetParam();
    start_flow();
    const Spec reply = sized(from_backend(c.proto, kAck | kPsh));
    const Bytes in = icmp_error(kRouter, kNode, c.type, c.code, build(from_node(reply)), c.quote_l4, mtu());
    const std::uint16_t node_port = c.proto == IPPROTO_TCP ? kTcpPort : kUdpPort;
    const auto before = port_counts(c.proto, node_port);
    const Reasons reasons_before = reason_totals();
    const RunResult r = ingress(in);
    EXPECT_EQ(reason_totals(), reasons_before) << "translated: no reason counted";
    EXPECT_EQ(r.retval, TC_ACT_OK);
    expect_icmp_translated(r.out, icmp_error(kRouter, kBackend, c.type, c.code, build(reply), c.quote_l4, mtu()));
    const auto after = port_counts(c.proto, node_port);
    ASSERT_TRUE(before && after);
    EXPECT_EQ(after->to_backend_packets - before->to_backend_packets, 1u) << "counted for the node port";
    EXPECT_EQ(after->to_backend_bytes - before->to_backend_bytes, in.size() - kEth);
    EXPECT_EQ(after->external_flows, before->external_flows) << "an error starts no flow";
}

// The sandbox answers a client's packet with an error (its UDP port is
// closed): it leaves with the node address as its source, about the
// client's packet as the client sent it.
TEST_P(IcmpError, OutboundFromTheBackendGetsTheNodeAddressInsideAndOutside) {
    const auto& c = GetParam();
    start_flow();
    const Spec sent = sized(to_node(c.proto, kAck | kPsh));
    const Bytes in = icmp_error(kBackend, kClient, c.type, c.code, build(at_backend(sent)), c.quote_l4, mtu());
    const auto before = port_counts(c.proto, sent.dport);
    const Reasons reasons_before = reason_totals();
    const RunResult r = egress(in);
    EXPECT_EQ(reason_totals(), reasons_before) << "translated: no reason counted";
    EXPECT_EQ(r.retval, TC_ACT_OK);
    expect_icmp_translated(r.out, icmp_error(kNode, kClient, c.type, c.code, build(sent), c.quote_l4, mtu()));
    const auto after = port_counts(c.proto, sent.dport);
    ASSERT_TRUE(before && after);
    EXPECT_EQ(after->from_backend_packets - before->from_backend_packets, 1u) << "counted for the node port";
}

// The node itself cannot forward the client's packet to the sandbox (its
// network has a smaller MTU) or a router on the sandbox's side answers: the
// error keeps the source it was sent from; the quoted packet becomes the
// client's own.
TEST_P(IcmpError, OutboundFromTheNodeOrARouterKeepsItsSource) {
    const auto& c = GetParam();
    start_flow();
    const Spec sent = sized(to_node(c.proto, kAck | kPsh));
    for (const char* source : {kNode, "10.8.0.1"}) {
        SCOPED_TRACE(source);
        const Bytes in = icmp_error(source, kClient, c.type, c.code, build(at_backend(sent)), c.quote_l4, mtu());
        expect_icmp_translated(egress(in).out,
                               icmp_error(source, kClient, c.type, c.code, build(sent), c.quote_l4, mtu()));
    }
}

INSTANTIATE_TEST_SUITE_P(TcPacket, IcmpError, icmp_cases,
                         [](const auto& info) { return std::string(info.param.name); });

// Errors about no flow pass as they are, both ways: about the node's own
// connection, about a flow's reply but addressed to another host, about a
// client's packet to the sandbox's own address; and so do echo requests and
// replies, flow or not.
TEST_F(TcPacketTest, IcmpWithoutAFlowAndEchoPassUntouched) {
    ingress(build(to_node(IPPROTO_UDP)));
    const Bytes reply = build(from_node(from_backend(IPPROTO_UDP)));
    for (const auto& [why, in] : {
             std::pair{NP_REASON_ICMP_NO_FLOW, icmp_error(kRouter, kNode, kIcmpUnreachable, kCodeFragNeeded,
                                                          build(from_node(from_backend(IPPROTO_TCP, kAck))), 0, 1280)},
             std::pair{NP_REASON_ICMP_NO_FLOW, icmp_error(kRouter, "192.0.2.11", kIcmpUnreachable, 1, reply)},
             std::pair{NP_REASON_NOT_IPV4_TCP_UDP,
                       build(with(to_node(IPPROTO_UDP), [](Spec& s) { s.proto = IPPROTO_ICMP; }))},
         }) {
        expect_counted_once(why, [&] { EXPECT_EQ(ingress(in).out, in); });
    }
    const Bytes echo_reply = build(with(from_backend(IPPROTO_UDP), [](Spec& s) { s.proto = IPPROTO_ICMP; }));
    const Bytes direct = icmp_error(kBackend, kClient, kIcmpUnreachable, kCodePortUnreachable,
                                    build(with(at_backend(to_node(IPPROTO_UDP)), [](Spec& s) { s.sport = 40999; })));
    for (const Bytes& out : {echo_reply, direct})
        expect_counted_once(NP_REASON_REPLY_NO_FLOW, [&] { EXPECT_EQ(egress(out).out, out); });
    EXPECT_EQ(flow_count(), 2u) << "errors change no flow";
}

// ---- IP fragments ----

// `frame` (from build()) cut into IPv4 fragments carrying at most `max_l4`
// bytes (a multiple of 8) of what follows its IP header, as a sender's stack
// cuts it: each with the IP header copied, its offset and MF bit, its length
// and its header checksum. The TCP/UDP checksum, in the first fragment, is
// the whole datagram's.
std::vector<Bytes> fragment(const Bytes& frame, std::size_t max_l4 = 1480) {
    const std::size_t ip = kEth, l4 = kEth + 20, l4_len = frame.size() - l4;
    std::vector<Bytes> out;
    for (std::size_t off = 0; off < l4_len; off += max_l4) {
        const std::size_t n = std::min(max_l4, l4_len - off);
        Bytes f(frame.begin(), frame.begin() + long(l4));
        f.insert(f.end(), frame.begin() + long(l4 + off), frame.begin() + long(l4 + off + n));
        put16(f, ip + 2, std::uint16_t(20 + n));
        put16(f, ip + 6, std::uint16_t((off + n < l4_len ? 0x2000 : 0) | off / 8));
        put16(f, kIpCsum, 0);
        put16(f, kIpCsum, std::uint16_t(~fold(sum16(&f[ip], 20))));
        out.push_back(f);
    }
    return out;
}

struct FragCase {
    const char* name;
    std::uint8_t proto;
    std::vector<std::size_t> order;  // the fragments' order of arrival
};

void PrintTo(const FragCase& c, std::ostream* os) {
    *os << c.name;
}

class Fragments : public TcPacketTest, public testing::WithParamInterface<FragCase> {
protected:
    // Runs `prog` on each fragment of `in` in the case's order; each must
    // come out as the same fragment of `want` (translated as a whole, with
    // the test's own checksums), and be counted under node port `port`.
    void expect_fragments_translated(bpf_program* prog, const Bytes& in, const Bytes& want, std::uint16_t port,
                                     bool to_backend) {
        const auto ins = fragment(in), wants = fragment(want);
        ASSERT_EQ(ins.size(), 3u);
        ASSERT_EQ(GetParam().order.size(), ins.size());
        const auto before = port_counts(GetParam().proto, port).value_or(nodeport::PortCounters{});
        const Reasons reasons_before = reason_totals();
        std::uint64_t bytes = 0;
        for (std::size_t i : GetParam().order) {
            SCOPED_TRACE("fragment " + std::to_string(i));
            const RunResult r = run(prog, ins[i]);
            EXPECT_EQ(r.retval, TC_ACT_OK);
            EXPECT_EQ(r.out, wants[i]);
            bytes += ins[i].size() - kEth;
        }
        EXPECT_EQ(reason_totals(), reasons_before) << "every fragment translated";
        const auto after = port_counts(GetParam().proto, port);
        ASSERT_TRUE(after);
        EXPECT_EQ((to_backend ? after->to_backend_packets - before.to_backend_packets
                              : after->from_backend_packets - before.from_backend_packets),
                  3u);
        EXPECT_EQ((to_backend ? after->to_backend_bytes - before.to_backend_bytes
                              : after->from_backend_bytes - before.from_backend_bytes),
                  bytes);
    }
};

// A client's 3,000-byte datagram (or segment) to the node port, in three
// fragments: the first starts the flow (UDP) and decides, the others follow.
TEST_P(Fragments, ClientsFragmentsFollowTheFirst) {
    const std::uint8_t proto = GetParam().proto;
    if (proto == IPPROTO_TCP)
        ingress(build(to_node(IPPROTO_TCP)));
    const Spec big = with(to_node(proto, kAck | kPsh), [](Spec& s) { s.payload = Bytes(3000, 'c'); });
    expect_fragments_translated(skel_->progs.np_tc_ingress, build(big), build(at_backend(big)), big.dport, true);
    EXPECT_EQ(count(proto == IPPROTO_TCP ? Table::tcp : Table::udp), 2u) << "one flow";
}

// The backend's 4,000-byte answer, fragmented by the sandbox: every fragment
// leaves with the node address as its source.
TEST_P(Fragments, BackendsFragmentsLeaveFromTheNode) {
    const std::uint8_t proto = GetParam().proto;
    if (proto == IPPROTO_TCP)
        establish();  // a backend sends data only on an established connection
    else
        ingress(build(to_node(proto)));
    const Spec big = with(from_backend(proto, kAck | kPsh), [](Spec& s) {
        s.payload = Bytes(4000, 'a');
        s.ip_id = 0x5678;
    });
    expect_fragments_translated(skel_->progs.np_tc_egress, build(big), build(from_node(big)),
                                proto == IPPROTO_TCP ? kTcpPort : kUdpPort, false);
}

INSTANTIATE_TEST_SUITE_P(TcPacket, Fragments,
                         testing::Values(FragCase{"udp_in_order", IPPROTO_UDP, {0, 1, 2}},
                                         FragCase{"udp_last_before_the_middle", IPPROTO_UDP, {0, 2, 1}},
                                         FragCase{"tcp_in_order", IPPROTO_TCP, {0, 1, 2}}),
                         [](const auto& info) { return std::string(info.param.name); });

// Two datagrams from two clients' ports, to two node ports of two backends,
// their fragments interleaved: each follows its own first fragment.
TEST_F(TcPacketTest, InterleavedDatagramsEachFollowTheirOwnFirstFragment) {
    map_port(IPPROTO_UDP, kUdpPort + 1, kBackend2, 5353);
    const Spec a = with(to_node(IPPROTO_UDP), [](Spec& s) {
        s.payload = Bytes(3000, 'a');
        s.ip_id = 1;
    });
    const Spec b = with(a, [](Spec& s) {
        s.sport = kClientPort + 1;
        s.dport = kUdpPort + 1;
        s.ip_id = 2;
    });
    const auto in_a = fragment(build(a)), in_b = fragment(build(b));
    const auto want_a = fragment(build(at_backend(a))), want_b = fragment(build(at_backend(b, kBackend2)));
    for (auto [which, i] : {std::pair{'a', 0}, {'b', 0}, {'b', 1}, {'a', 1}, {'b', 2}, {'a', 2}}) {
        SCOPED_TRACE(std::string(1, which) + std::to_string(i));
        const auto& in = which == 'a' ? in_a : in_b;
        const auto& want = which == 'a' ? want_a : want_b;
        EXPECT_EQ(ingress(in[std::size_t(i)]).out, want[std::size_t(i)]);
    }
}

// A later fragment that arrives before its first finds nothing to follow: it
// passes untouched (to the node, which drops it once its reassembly time runs
// out: the datagram is lost); the first and those after it are translated.
TEST_F(TcPacketTest, LaterFragmentBeforeItsFirstPassesUntouched) {
    const Spec big = with(to_node(IPPROTO_UDP), [](Spec& s) { s.payload = Bytes(3000, 'x'); });
    const auto in = fragment(build(big)), want = fragment(build(at_backend(big)));
    expect_counted_once(NP_REASON_FRAGMENT, [&] { EXPECT_EQ(ingress(in[2]).out, in[2]); });
    EXPECT_EQ(ingress(in[0]).out, want[0]);
    EXPECT_EQ(ingress(in[1]).out, want[1]);
}

// The same client, node address, protocol and IP id again (ids wrap): a new
// first fragment to a port nodeport does not map is not translated, and its
// later fragments must not follow the earlier datagram's entry.
TEST_F(TcPacketTest, FirstFragmentNotTranslatedClearsAnEarlierDatagramsEntry) {
    const Spec big = with(to_node(IPPROTO_UDP), [](Spec& s) { s.payload = Bytes(3000, 'x'); });
    ingress(fragment(build(big))[0]);
    const auto other = fragment(build(with(big, [](Spec& s) { s.dport = 31999; })));
    EXPECT_EQ(ingress(other[0]).out, other[0]);
    expect_counted_once(NP_REASON_FRAGMENT, [&] { EXPECT_EQ(ingress(other[1]).out, other[1]); });
}

// An entry older than a reassembly time (30 s) belongs to a datagram the
// receiver has given up on: a later fragment with that id passes.
TEST_F(TcPacketTest, LaterFragmentAfterTheReassemblyTimePassesUntouched) {
    const Spec big = with(to_node(IPPROTO_UDP), [](Spec& s) { s.payload = Bytes(3000, 'x'); });
    const auto in = fragment(build(big));
    ingress(in[0]);
    np_frag_key key{};
    key.saddr_be[0] = ip_be(kClient);
    key.daddr_be[0] = ip_be(kNode);
    key.id_be = htonl(big.ip_id);
    key.proto = IPPROTO_UDP;
    key.dir = NP_FLOW_TO_BACKEND;
    key.family = NP_FAMILY_IPV4;
    np_frag entry{};
    const int fd = bpf_map__fd(skel_->maps.frag_flows);
    ASSERT_EQ(bpf_map_lookup_elem(fd, &key, &entry), 0) << "the first fragment's entry, under the documented key";
    EXPECT_EQ(entry.addr_be[0], ip_be(kBackend));
    EXPECT_EQ(entry.node_port_be, htons(kUdpPort));
    entry.first_ns = nodeport::bpf_clock_ns() - (NP_FRAG_LIFETIME_S + 1) * kSec;
    ASSERT_EQ(bpf_map_update_elem(fd, &key, &entry, BPF_ANY), 0);
    expect_counted_once(NP_REASON_FRAGMENT, [&] { EXPECT_EQ(ingress(in[1]).out, in[1]); });
}

// ---- interfaces without a link-layer header ----

// A frame from build() as an L3 interface (WireGuard, tun, ipip) hands it
// over: the IPv4 packet alone.
Bytes without_ethernet(const Bytes& frame) {
    return Bytes(frame.begin() + kEth, frame.end());
}

// The L3 build of the programs reads the IPv4 header at offset 0. test_run
// always takes the data for an Ethernet frame and sets skb->protocol from
// bytes 12-13, which in a bare IPv4 packet are the first two bytes of the
// source address: sources in 8.0.0.0/16 read as 0x0800, IPv4. Replies then
// come from a backend there too.
TEST_F(TcPacketTest, L3ProgramsTranslateAPacketWithoutALinkHeader) {
    constexpr const char* client = "8.0.0.7";
    constexpr const char* backend = "8.0.8.2";
    constexpr std::uint16_t port = 30054;
    for (std::uint8_t proto : {IPPROTO_TCP, IPPROTO_UDP}) {
        SCOPED_TRACE(proto == IPPROTO_TCP ? "tcp" : "udp");
        map_port(proto, port, backend, 5353);
        // test_run refuses (EINVAL) what is shorter than an Ethernet and an
        // IPv4 header: a payload long enough for that.
        const Spec in = with(to_node(proto), [&](Spec& s) {
            s.src = client;
            s.dport = port;
            s.payload = Bytes(16, 'l');
        });
        const Spec want = with(in, [&](Spec& s) {
            s.dst = backend;
            s.dport = 5353;
        });
        const RunResult r = run(skel_->progs.np_l3_ingress, without_ethernet(build(in)));
        EXPECT_EQ(r.retval, TC_ACT_OK);
        EXPECT_EQ(r.out, without_ethernet(build(want)));
        const Spec reply = with(from_backend(proto), [&](Spec& s) {
            s.src = backend;
            s.sport = 5353;
            s.dst = client;
            s.payload = Bytes(16, 'r');
        });
        const Spec reply_out = with(reply, [&](Spec& s) {
            s.src = kNode;
            s.sport = port;
        });
        EXPECT_EQ(run(skel_->progs.np_l3_egress, without_ethernet(build(reply))).out,
                  without_ethernet(build(reply_out)));
        const auto c = port_counts(proto, port);
        ASSERT_TRUE(c);
        EXPECT_EQ(c->to_backend_bytes, build(in).size() - kEth) << "the whole packet is IP: nothing taken off";
        EXPECT_EQ(c->from_backend_bytes, build(reply).size() - kEth);
    }
    // The Ethernet build would read that packet's source address as an
    // ethertype and its payload as IPv4, and leave it alone.
    const Bytes bare = without_ethernet(build(with(to_node(IPPROTO_UDP), [&](Spec& s) {
        s.src = client;
        s.payload = Bytes(16, 'l');
    })));
    EXPECT_EQ(ingress(bare).out, bare);
}

// ---- the fib_redirect option ----

class TcPacketFibRedirectTest : public TcPacketTest {
    void configure(tc_bpf::tc_bpf__rodata& rodata) override { rodata.fib_redirect = true; }
};

// The route depends on the host, so either outcome is accepted; what must
// hold is that the option passes the verifier, still translates, and when it
// redirects it did the forwarding work (TTL - 1, checksum still right).
TEST_F(TcPacketFibRedirectTest, LoadsTranslatesAndDecrementsTtlWhenRedirecting) {
    auto in = to_node(IPPROTO_TCP);
    auto r = ingress(build(in));
    ASSERT_TRUE(r.retval == TC_ACT_OK || r.retval == TC_ACT_REDIRECT) << r.retval;
    RecordProperty("retval", r.retval);
    auto want = at_backend(in);
    if (r.retval == TC_ACT_REDIRECT)
        want.ttl = in.ttl - 1;
    expect_translated(r.out, want);
    EXPECT_EQ(flow_count(), 1u) << "a handshake: one entry";
}

// A private network namespace for the calling thread only (it and its veth
// vanish when the thread ends), with forwarding on, a route to the backend
// over a 1500-byte veth, and a neighbour entry: test_run looks devices and
// routes up in the calling thread's namespace.
void enter_fib_netns() {
    ASSERT_EQ(::unshare(CLONE_NEWNET), 0) << std::strerror(errno);
    const char* setup =
        "ip link set lo up && ip link add np0 type veth peer name np1 && ip link set np0 up && "
        "ip link set np1 up && ip addr add 10.8.0.1/24 dev np0 && "
        "ip neigh replace 10.8.0.2 lladdr 02:00:00:00:00:08 dev np0 && "
        "sysctl -qw net.ipv4.ip_forward=1";
    ASSERT_EQ(std::system(setup), 0) << setup;
}

// Runs `prog` on `packet` as if it arrived on lo (the FIB checks forwarding
// on the input device), with `ctx` for the rest of the skb's fields.
RunResult run_arrived(bpf_program* prog, const Bytes& packet, __sk_buff ctx = {}) {
    RunResult r;
    r.out.assign(packet.size() + 256, 0);
    ctx.ingress_ifindex = 1;
    LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = packet.data(), .data_out = r.out.data(),
                .data_size_in = std::uint32_t(packet.size()), .data_size_out = std::uint32_t(r.out.size()),
                .ctx_in = &ctx, .ctx_size_in = sizeof ctx, .repeat = 1);
    EXPECT_EQ(bpf_prog_test_run_opts(bpf_program__fd(prog), &opts), 0) << std::strerror(errno);
    r.retval = int(opts.retval);
    r.out.resize(opts.data_size_out);
    return r;
}

// The redirect path for real.
TEST_F(TcPacketFibRedirectTest, RedirectsInPrivateNetnsWithRouteAndForwarding) {
    std::thread([this] {
        enter_fib_netns();
        auto in = to_node(IPPROTO_TCP);
        auto r = run_arrived(skel_->progs.np_tc_ingress, build(in));
        EXPECT_EQ(r.retval, TC_ACT_REDIRECT);
        auto want = at_backend(in);
        want.ttl = in.ttl - 1;  // the forwarding the kernel no longer does
        expect_translated(r.out, want);
    }).join();
}

// A GRO-built skb holds many segments: its IPv4 total length is their sum
// (claimed here: 64,000 bytes), gso_size one segment's payload. The route's
// MTU must be checked against one segment (20 + 20 + gso_size), or no bulk
// transfer would ever be redirected: 1460 fits the 1500-byte route, 1461
// does not and goes to the kernel, which sends "fragmentation needed".
TEST_F(TcPacketFibRedirectTest, GroSkbIsCheckedAgainstTheMtuAsOneSegment) {
    std::thread([this] {
        enter_fib_netns();
        ASSERT_EQ(run_arrived(skel_->progs.np_tc_ingress, build(to_node(IPPROTO_TCP))).retval, TC_ACT_REDIRECT);
        Bytes data = build(to_node(IPPROTO_TCP, kAck | kPsh));
        put16(data, kEth + 2, 64000);
        put16(data, kIpCsum, 0);
        put16(data, kIpCsum, std::uint16_t(~fold(sum16(&data[kEth], 20))));
        for (auto [gso_size, want] : {std::pair{1460u, TC_ACT_REDIRECT}, std::pair{1461u, TC_ACT_OK}}) {
            SCOPED_TRACE(gso_size);
            __sk_buff ctx{};
            ctx.gso_size = gso_size;
            ctx.gso_segs = 44;
            EXPECT_EQ(run_arrived(skel_->progs.np_tc_ingress, data, ctx).retval, want);
        }
    }).join();
}
// ---- counters: per node port what was translated, per reason what was not ----

// What a byte counter adds for a frame: its length from the IP header on.
std::uint64_t ip_bytes(const Bytes& frame) {
    return frame.size() - kEth;
}

TEST_F(TcPacketTest, TranslatedTcpCountsOneFlowAndEachPacketEachWayAndNoReason) {
    const Bytes syn = build(to_node(IPPROTO_TCP)), ack = build(to_node(IPPROTO_TCP, kAck));
    const Bytes synack = build(from_backend(IPPROTO_TCP)), data = build(from_backend(IPPROTO_TCP, kAck | kPsh));
    const Reasons before = reason_totals();
    for (const auto& [out, in] : {std::pair{ingress(syn).out, syn}, std::pair{egress(synack).out, synack},
                                  std::pair{ingress(ack).out, ack}, std::pair{egress(data).out, data}})
        EXPECT_NE(out, in) << "translated";
    EXPECT_EQ(reason_totals(), before) << "a translated packet counts no reason";
    auto c = port_counts(IPPROTO_TCP, kTcpPort);
    ASSERT_TRUE(c);
    EXPECT_EQ(c->external_flows, 1u);
    EXPECT_EQ(c->to_backend_packets, 2u);
    EXPECT_EQ(c->to_backend_bytes, ip_bytes(syn) + ip_bytes(ack));
    EXPECT_EQ(c->from_backend_packets, 2u);
    EXPECT_EQ(c->from_backend_bytes, ip_bytes(synack) + ip_bytes(data));
    EXPECT_EQ(c->local_connects + c->local_sends, 0u) << "the TC programs count no socket call";
    EXPECT_EQ(port_counter_entries(), 1u);
}

TEST_F(TcPacketTest, TranslatedUdpCountsAFlowPerClientPortAndEachDatagram) {
    const Bytes first = build(to_node(IPPROTO_UDP)), reply = build(from_backend(IPPROTO_UDP));
    const Bytes other = build(with(to_node(IPPROTO_UDP), [](Spec& s) {
        s.sport = kClientPort + 1;
        s.payload = Bytes(100, 'x');
    }));
    const Reasons before = reason_totals();
    EXPECT_NE(ingress(first).out, first);
    EXPECT_NE(ingress(first).out, first);  // the same flow
    EXPECT_NE(egress(reply).out, reply);
    EXPECT_NE(ingress(other).out, other);  // a flow of its own
    EXPECT_EQ(reason_totals(), before);
    auto c = port_counts(IPPROTO_UDP, kUdpPort);
    ASSERT_TRUE(c);
    EXPECT_EQ(*c, (nodeport::PortCounters{.external_flows = 2,
                                          .to_backend_packets = 3,
                                          .to_backend_bytes = 2 * ip_bytes(first) + ip_bytes(other),
                                          .from_backend_packets = 1,
                                          .from_backend_bytes = ip_bytes(reply)}));
}

// The established flow's SYN-ACK (a connection nodeport did not translate),
// on an established and a picked-up flow.
TEST_F(TcPacketTest, ReasonReplyNotOurs) {
    const std::uint64_t now = nodeport::bpf_clock_ns();
    const Bytes synack = build(from_backend(IPPROTO_TCP));
    for (std::uint8_t state : {NP_FLOW_OPEN, NP_FLOW_PICKED_UP}) {
        put_flow(tcp_fwd_key(), flow_value(kBackend, 8080, state, now));
        put_flow(tcp_rev_key(), flow_value(kNode, kTcpPort, state, now));
        expect_counted_once(NP_REASON_REPLY_NOT_OURS, [&] { EXPECT_EQ(egress(synack).out, synack); });
    }
}

// reply_expired: a reply of an expired flow (an expired flow's client
// segment is picked up instead, see IdleTcpFlowIsForgottenAndSynStartsFresh).
TEST_F(TcPacketIdleTest, ReasonReplyExpired) {
    const std::uint64_t ago = nodeport::bpf_clock_ns() - 5 * kSec;
    put_flow(tcp_fwd_key(), flow_value(kBackend, 8080, NP_FLOW_OPEN, ago));
    put_flow(tcp_rev_key(), flow_value(kNode, kTcpPort, NP_FLOW_OPEN, ago));
    const Bytes tcp_reply = build(from_backend(IPPROTO_TCP, kAck));
    expect_counted_once(NP_REASON_REPLY_EXPIRED, [&] { EXPECT_EQ(egress(tcp_reply).out, tcp_reply); });
    put_flow(flow_key(IPPROTO_UDP, kClient, kClientPort, kBackend, 5353, NP_FLOW_TO_CLIENT),
             flow_value(kNode, kUdpPort, NP_FLOW_OPEN, ago));
    const Bytes reply = build(from_backend(IPPROTO_UDP));
    expect_counted_once(NP_REASON_REPLY_EXPIRED, [&] { EXPECT_EQ(egress(reply).out, reply); });
    EXPECT_EQ(port_counter_entries(), 0u);
}

// The client's port, used before through another node port to the same
// backend, comes back for a new connection while that flow's expired
// entries wait for the LRU: the reply entry (the same key as the new
// handshake's) must not hide the handshake from the SYN-ACK.
TEST_F(TcPacketIdleTest, ExpiredReplyEntryDoesNotHideANewHandshakeOnItsTuple) {
    const std::uint64_t ago = nodeport::bpf_clock_ns() - 5 * kSec;
    map_port(IPPROTO_TCP, kTcpPort + 1, kBackend, 8080);
    put_flow(flow_key(IPPROTO_TCP, kClient, kClientPort, kNode, kTcpPort + 1, NP_FLOW_TO_BACKEND),
             flow_value(kBackend, 8080, NP_FLOW_OPEN, ago));
    put_flow(tcp_rev_key(), flow_value(kNode, kTcpPort + 1, NP_FLOW_OPEN, ago));
    auto syn = client_seg(kSyn, kClientIsn, 0);
    expect_translated(ingress(build(syn)).out, at_backend(syn));
    auto synack = backend_seg(kSyn | kAck, kBackendIsn);
    expect_translated(egress(build(synack)).out, from_node(synack));
    auto ack = client_seg(kAck, kClientIsn + 1);
    expect_translated(ingress(build(ack)).out, at_backend(ack));
    auto data = with(backend_seg(kAck | kPsh, kBackendIsn + 1), [](Spec& s) { s.payload = {'d'}; });
    expect_translated(egress(build(data)).out, from_node(data));
    EXPECT_EQ(flow(tcp_rev_key())->port_be, htons(kTcpPort)) << "the new connection's node port";
}

// `half_open_flows` is an LRU hash, which makes room rather than refuse, except under
// memory pressure that test_run cannot bring about. Loaded here as a plain
// hash of one entry, it refuses the second of the pair's two writes, and the
// program's handling of a refused write runs as it would on the LRU.
class TcPacketFullFlowTableTest : public TcPacketTest {
    void prepare(tc_bpf& skel) override {
        ASSERT_EQ(bpf_map__set_type(skel.maps.half_open_flows, BPF_MAP_TYPE_HASH), 0);
        ASSERT_EQ(bpf_map__set_max_entries(skel.maps.half_open_flows, 1), 0);
    }
};

TEST_F(TcPacketFullFlowTableTest, ReasonFlowTableFull) {
    const auto other = flow_key(IPPROTO_TCP, kOtherHost, 1, kBackend, 8080, NP_FLOW_TO_CLIENT);
    const np_half_open filler{};
    ASSERT_EQ(bpf_map_update_elem(table_fd(Table::half_open), &other, &filler, BPF_ANY), 0);
    const Bytes syn = build(to_node(IPPROTO_TCP));
    expect_counted_once(NP_REASON_FLOW_TABLE_FULL, [&] { EXPECT_EQ(ingress(syn).out, syn); });
    EXPECT_FALSE(port_counts(IPPROTO_TCP, kTcpPort)) << "nothing translated";
}

// Every reason of the TC programs is triggered by one of the cases above,
// but the two "rewrite failed" ones: their helpers fail only on an offset
// outside the packet or an skb that cannot be written, which the parsing
// before them and test_run's private skb rule out. The local reasons belong
// to the socket hooks, which test_run cannot run (tests/stats_test.sh).

}  // namespace
