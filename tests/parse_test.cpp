// Tier 1: validation of everything a user types, without root.
#include <gtest/gtest.h>

#include <ostream>

#include "nodeport/types.hpp"

namespace nodeport {
namespace {

TEST(ParseNodePort, AcceptsProtocolAndPort) {
    auto np = parse_node_port("tcp/6667");
    ASSERT_TRUE(np);
    EXPECT_EQ(np->proto, Proto::tcp);
    EXPECT_EQ(np->port, 6667);
    EXPECT_EQ(to_string(*np), "tcp/6667");
    EXPECT_EQ(parse_node_port("UDP/53")->proto, Proto::udp);
    EXPECT_EQ(parse_node_port("udp/65535")->port, 65535);
    EXPECT_EQ(parse_node_port("tcp/1")->port, 1);
}

struct BadInput {
    const char* text;
    const char* field;
};

void PrintTo(const BadInput& input, std::ostream* os) {
    *os << "'" << input.text << "'";
}

class BadNodePort : public testing::TestWithParam<BadInput> {};

TEST_P(BadNodePort, NamesTheField) {
    auto np = parse_node_port(GetParam().text);
    ASSERT_FALSE(np) << GetParam().text;
    EXPECT_EQ(np.error().field, GetParam().field) << np.error().message;
    EXPECT_EQ(np.error().message.find('\n'), std::string::npos);  // one line
}

INSTANTIATE_TEST_SUITE_P(Cases, BadNodePort,
                         testing::Values(BadInput{"tcp/0", "node port"}, BadInput{"tcp/65536", "node port"},
                                         BadInput{"tcp/abc", "node port"}, BadInput{"tcp/-1", "node port"},
                                         BadInput{"tcp/+80", "node port"}, BadInput{"tcp/ 80", "node port"},
                                         BadInput{"tcp/80x", "node port"}, BadInput{"tcp/", "node port"},
                                         BadInput{"tcp/99999999999", "node port"},
                                         BadInput{"sctp/80", "protocol"}, BadInput{"/80", "protocol"},
                                         BadInput{"6667", "node port"}, BadInput{"", "node port"}));

TEST(ParseBackend, AcceptsAddressAndPort) {
    auto be = parse_backend("10.8.32.126:6667");
    ASSERT_TRUE(be);
    EXPECT_EQ(to_string(*be), "10.8.32.126:6667");
    EXPECT_EQ(be->port, 6667);
}

TEST(ParseBackend, AcceptsAnIpv6AddressInBrackets) {
    auto be = parse_backend("[FD00:0::2]:6667");
    ASSERT_TRUE(be) << be.error().message;
    EXPECT_EQ(family_of(be->addr), Family::ipv6);
    EXPECT_EQ(to_string(*be), "[fd00::2]:6667") << "printed in the canonical form (RFC 5952)";
    EXPECT_EQ(std::get<Ipv6>(be->addr).bytes[0], 0xfd);
    EXPECT_EQ(std::get<Ipv6>(be->addr).bytes[15], 2);
    EXPECT_TRUE(parse_backend("[2001:db8::10]:80")) << "a global address";
    EXPECT_LT(*parse_backend("10.8.0.2:80"), *parse_backend("[fd00::1]:80")) << "IPv4 sorts first";
}

class BadBackend : public testing::TestWithParam<BadInput> {};

TEST_P(BadBackend, NamesTheField) {
    auto be = parse_backend(GetParam().text);
    ASSERT_FALSE(be) << GetParam().text;
    EXPECT_EQ(be.error().field, GetParam().field) << be.error().message;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, BadBackend,
    testing::Values(BadInput{"10.0.0.256:80", "backend address"}, BadInput{"10.0.0:80", "backend address"},
                    BadInput{"abc:80", "backend address"}, BadInput{":80", "backend address"},
                    BadInput{"127.0.0.1:80", "backend address"}, BadInput{"0.0.0.0:80", "backend address"},
                    BadInput{"224.0.0.1:80", "backend address"}, BadInput{"255.255.255.255:80", "backend address"},
                    BadInput{"10.0.0.1:0", "backend port"}, BadInput{"10.0.0.1:65536", "backend port"},
                    BadInput{"10.0.0.1:", "backend port"}, BadInput{"10.0.0.1", "backend"},
                    // IPv6: in brackets, a host's unicast address, no zone
                    BadInput{"fd00::2:80", "backend"}, BadInput{"[fd00::2:80", "backend"},
                    BadInput{"[fd00::2]", "backend"}, BadInput{"[fd00::2]:", "backend port"},
                    BadInput{"[fd00::2]:0", "backend port"}, BadInput{"[fd00::g]:80", "backend address"},
                    BadInput{"[10.8.0.2]:80", "backend address"}, BadInput{"[]:80", "backend address"},
                    BadInput{"[::1]:80", "backend address"}, BadInput{"[::]:80", "backend address"},
                    BadInput{"[fe80::1]:80", "backend address"}, BadInput{"[fe80::1%eth0]:80", "backend address"},
                    BadInput{"[ff02::1]:80", "backend address"}, BadInput{"[::ffff:10.8.0.2]:80", "backend address"},
                    BadInput{"[::10.8.0.2]:80", "backend address"}));

TEST(ParseNodeIp, RejectsLoopbackBecauseItIsMatchedPerNamespace) {
    EXPECT_TRUE(parse_node_ip("192.168.1.10"));
    EXPECT_EQ(parse_node_ip("127.0.0.1").error().field, "node-ip");
    EXPECT_EQ(parse_node_ip("10.1.2").error().field, "node-ip");
}

TEST(ParseOwner, LimitsLengthAndCharacters) {
    EXPECT_EQ(*parse_owner("sb-42"), "sb-42");
    // The runtime's sandbox ids: sandbox/<app>-<service>-<22 base58 characters>.
    EXPECT_TRUE(parse_owner("sandbox/checkout-payments-7Hq3xKpLmN2vR8sTzY4wBc"));
    EXPECT_TRUE(parse_owner(std::string(255, 'a')));
    EXPECT_EQ(parse_owner(std::string(256, 'a')).error().field, "owner");
    EXPECT_EQ(parse_owner("").error().field, "owner");
    EXPECT_EQ(parse_owner("sb 42").error().field, "owner");
}

TEST(OwnerId, IsFnv1a64AndZeroForNone) {
    EXPECT_EQ(owner_id(""), 0u);
    // Reference values of FNV-1a 64, so another language can compute the same id.
    EXPECT_EQ(owner_id("a"), 0xaf63dc4c8601ec8cULL);
    EXPECT_EQ(owner_id("foobar"), 0x85944171f73967e8ULL);
    EXPECT_NE(owner_id("sb-41"), owner_id("sb-42"));
}

}  // namespace
}  // namespace nodeport

namespace nodeport {
namespace {

TEST(Printable, KeepsPrintableAsciiAndEscapesEverythingElse) {
    EXPECT_EQ(printable("sandbox/app-svc-7xK9"), "sandbox/app-svc-7xK9");
    EXPECT_EQ(printable(std::string("sb\xff\x1b[31m\n\0x", 11)), "sb\\xff\\x1b[31m\\x0a\\x00x");
    EXPECT_EQ(printable("a\\x41"), "a\\\\x41") << "a backslash is escaped, so the output reads one way";
    EXPECT_EQ(printable("log\nline\x07", true), "log\nline\\x07") << "keep_newlines keeps only newlines";
}

// Issue 22: a value in an error message is escaped once, where it is quoted,
// and cut at 100 bytes; the printer after it leaves the escapes alone.
TEST(Quote, EscapesOnceAndCutsLongValues) {
    EXPECT_EQ(quote("sb-42"), "'sb-42'");
    EXPECT_EQ(quote(std::string("a\0b\x1b", 4)), "'a\\x00b\\x1b'") << "nothing after a NUL is lost";
    EXPECT_EQ(quote(std::string(101, 'x')), "'" + std::string(100, 'x') + "...' (101 bytes)");
    EXPECT_EQ(quote(std::string(100, 'x')), "'" + std::string(100, 'x') + "'");
    EXPECT_EQ(printable_message("owner: " + quote("a\x1b\\")), "owner: 'a\\x1b\\\\'") << "not escaped twice";
    EXPECT_EQ(printable_message("raw\x1b\n", true), "raw\\x1b\n") << "what was not quoted is still made safe";
}

// Issue 22, finding 3: inet_pton read the text as a C string, so
// "10.8.0.9\0; rm -rf /" was 10.8.0.9.
TEST(ParseIpv4, RefusesAnythingButADottedQuad) {
    for (std::string text : {std::string("10.8.0.9\0; rm -rf /", 19), std::string("10.8.0.9\0", 9), std::string("10.8.0.9 "),
                             std::string(" 10.8.0.9"), std::string("10.8.0.9/16"), std::string("1.2.3.4.5"),
                             std::string(""), std::string(1000, '1')}) {
        auto parsed = parse_ipv4(text, "address");
        ASSERT_FALSE(parsed) << printable(text);
        EXPECT_EQ(parsed.error().message.find('\0'), std::string::npos);
        EXPECT_LT(parsed.error().message.size(), 200u);
    }
    EXPECT_EQ(parse_ipv4(std::string("10.8.0.9\0; rm -rf /", 19), "a").error().message,
              "'10.8.0.9\\x00; rm -rf /' is not an IPv4 address");
    EXPECT_EQ(to_string(*parse_ipv4("10.8.0.9", "a")), "10.8.0.9");
}

}  // namespace
}  // namespace nodeport
