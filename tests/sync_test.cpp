// Tier 1: reading a controller's desired set and planning a sync, no root.
#include <gtest/gtest.h>

#include <array>
#include <istream>
#include <ostream>
#include <streambuf>
#include <string>

#include <fmt/format.h>

#include "nodeport/sync.hpp"

namespace nodeport {
namespace {

Mapping mapping(Proto proto, std::uint16_t port, const char* backend, std::string owner = {}) {
    return Mapping{NodePort{proto, port}, *parse_backend(backend), std::move(owner)};
}

TEST(ParseMappingsJson, ReadsEveryField) {
    auto parsed = parse_mappings_json(R"([
        {"proto": "tcp", "port": 6667, "backend": "10.8.32.126:6667", "owner": "sb-42"},
        {"proto": "UDP", "port": 53, "backend": "10.8.0.3:5353"}
    ])");
    ASSERT_TRUE(parsed) << parsed.error().field << ": " << parsed.error().message;
    EXPECT_EQ(*parsed, (std::vector{mapping(Proto::tcp, 6667, "10.8.32.126:6667", "sb-42"),
                                    mapping(Proto::udp, 53, "10.8.0.3:5353")}));
    EXPECT_EQ(parse_mappings_json("[]")->size(), 0u) << "an empty set is valid: it unmaps everything";
}

struct BadSet {
    const char* name;
    const char* json;
    const char* field;  // what the error must name
};

void PrintTo(const BadSet& c, std::ostream* os) {
    *os << c.name;
}

class ParseMappingsJsonBad : public testing::TestWithParam<BadSet> {};

TEST_P(ParseMappingsJsonBad, NamesTheEntryAndField) {
    auto parsed = parse_mappings_json(GetParam().json);
    ASSERT_FALSE(parsed);
    EXPECT_EQ(parsed.error().field, GetParam().field) << parsed.error().message;
    EXPECT_FALSE(parsed.error().message.empty());
}

constexpr const char* kGood = R"({"proto": "tcp", "port": 1, "backend": "10.8.0.2:80"})";

std::string with_second(const char* entry) {
    return std::string("[") + kGood + ", " + entry + "]";
}

const std::string kBadPort = with_second(R"({"proto": "tcp", "port": 65536, "backend": "10.8.0.2:80"})");
const std::string kPortString = with_second(R"({"proto": "tcp", "port": "80", "backend": "10.8.0.2:80"})");
const std::string kBadProto = with_second(R"({"proto": "sctp", "port": 2, "backend": "10.8.0.2:80"})");
const std::string kBadAddr = with_second(R"({"proto": "tcp", "port": 2, "backend": "10.8.0.256:80"})");
const std::string kLoopback = with_second(R"({"proto": "tcp", "port": 2, "backend": "127.0.0.1:80"})");
const std::string kNoBackendPort = with_second(R"({"proto": "tcp", "port": 2, "backend": "10.8.0.2"})");
const std::string kMissing = with_second(R"({"proto": "tcp", "port": 2})");
const std::string kUnknown = with_second(R"({"proto": "tcp", "port": 2, "backend": "10.8.0.2:80", "ownr": "x"})");
const std::string kBadOwner = with_second(R"({"proto": "tcp", "port": 2, "backend": "10.8.0.2:80", "owner": "a b"})");
const std::string kTwice = with_second(kGood);
const std::string kNotObject = with_second("42");

INSTANTIATE_TEST_SUITE_P(
    Sync, ParseMappingsJsonBad,
    testing::Values(BadSet{"not_json", "[{", "file"}, BadSet{"not_array", R"({"proto": "tcp"})", "file"},
                    BadSet{"port_out_of_range", kBadPort.c_str(), "entry 1: port"},
                    BadSet{"port_as_string", kPortString.c_str(), "entry 1: port"},
                    BadSet{"protocol", kBadProto.c_str(), "entry 1: protocol"},
                    BadSet{"address", kBadAddr.c_str(), "entry 1: backend address"},
                    BadSet{"loopback_backend", kLoopback.c_str(), "entry 1: backend address"},
                    BadSet{"backend_without_port", kNoBackendPort.c_str(), "entry 1: backend"},
                    BadSet{"missing_backend", kMissing.c_str(), "entry 1: backend"},
                    BadSet{"unknown_field", kUnknown.c_str(), "entry 1: ownr"},
                    BadSet{"owner_with_blank", kBadOwner.c_str(), "entry 1: owner"},
                    BadSet{"port_listed_twice", kTwice.c_str(), "entry 1: node port"},
                    BadSet{"entry_not_object", kNotObject.c_str(), "entry 1: entry"}),
    [](const auto& info) { return std::string(info.param.name); });

// Edges the fuzzer (tests/fuzz/fuzz_sync_json) walks through: numbers that
// would wrap into 1-65535 through a careless conversion, a NUL in a string,
// nesting deep enough to overflow a recursive reader.
TEST(ParseMappingsJson, RefusesNumbersThatWouldWrapAndOtherEdges) {
    for (const char* port : {"18446744073709551615", "18446744073709486081", "4294967297", "65537", "-65535", "1e3",
                             "1.0", "-0", "1e400"}) {
        auto parsed = parse_mappings_json(std::string(R"([{"proto": "tcp", "backend": "10.8.0.2:80", "port": )") +
                                          port + "}]");
        ASSERT_FALSE(parsed) << port;
        EXPECT_EQ(parsed.error().field, port == std::string("1e400") ? "file" : "entry 0: port") << port;
    }
    auto nul = parse_mappings_json(R"([{"proto": "tcp", "port": 1, "backend": "10.8.0.2:80", "owner": "a\u0000b"}])");
    ASSERT_FALSE(nul);
    EXPECT_EQ(nul.error().field, "entry 0: owner");
    auto nul_proto = parse_mappings_json(R"([{"proto": "tcp\u0000", "port": 1, "backend": "10.8.0.2:80"}])");
    ASSERT_FALSE(nul_proto);
    EXPECT_EQ(nul_proto.error().field, "entry 0: protocol") << nul_proto.error().message;
    auto deep = parse_mappings_json(std::string(100000, '[') + std::string(100000, ']'));
    ASSERT_FALSE(deep);
    EXPECT_EQ(deep.error().field, "file") << "stopped at the depth limit, before any entry is read";
}

// Issue 22, finding 1: "port" nested 50,000 deep crashed the reader (the
// error message dumped the value recursively). The reader stops at the depth
// limit, and the message names the place and the limit in a few bytes.
TEST(ParseMappingsJsonLimits, DeepNestingIsRefusedNamingTheLimit) {
    const std::size_t n = 50000;
    auto parsed = parse_mappings_json(R"([{"proto": "tcp", "backend": "10.8.0.2:80", "port": )" + std::string(n, '[') +
                                      std::string(n, ']') + "}]");
    ASSERT_FALSE(parsed);
    EXPECT_EQ(parsed.error().field, "file");
    EXPECT_NE(parsed.error().message.find("[0].port[0][0]"), std::string::npos) << parsed.error().message;
    EXPECT_NE(parsed.error().message.find(fmt::format("nested deeper than the limit of {}", sync_limits.depth)),
              std::string::npos)
        << parsed.error().message;
    EXPECT_LT(parsed.error().message.size(), 300u);
    // Within the limit, a nested port is described by its kind, not dumped.
    auto shallow = parse_mappings_json(R"([{"proto": "tcp", "backend": "10.8.0.2:80", "port": [[[1]]]}])");
    ASSERT_FALSE(shallow);
    EXPECT_EQ(shallow.error().field, "entry 0: port");
    EXPECT_EQ(shallow.error().message, "an array is not a port number (1-65535)");
}

// Issue 22, finding 2: 10^6 entries were all read (721 MB) before the
// duplicate port was seen. The reader stops at the value limit, early.
TEST(ParseMappingsJsonLimits, AMillionEntriesStopAtTheValueLimit) {
    std::string text = "[";
    for (int i = 0; i < 1000000; ++i)
        text += fmt::format(R"({}{{"proto":"tcp","port":{},"backend":"10.8.0.2:80"}})", i ? "," : "", i % 65535 + 1);
    text += "]";
    auto parsed = parse_mappings_json(text);
    ASSERT_FALSE(parsed);
    EXPECT_EQ(parsed.error().field, "file");
    EXPECT_NE(parsed.error().message.find(fmt::format("more than the limit of {} values", 1 + 5 * sync_limits.entries)),
              std::string::npos)
        << parsed.error().message;
    // The place is the entry where it stopped (four values an entry): a sixth of the way in.
    EXPECT_NE(parsed.error().message.find(fmt::format("[{}]", 5 * sync_limits.entries / 4)), std::string::npos)
        << parsed.error().message;
}

TEST(ParseMappingsJsonLimits, MoreEntriesThanNodePortsAreRefused) {
    std::string text = "[";
    for (std::size_t i = 0; i <= sync_limits.entries; ++i)
        text += fmt::format(R"({}{{"proto":"tcp","port":1,"backend":"10.8.0.2:80"}})", i ? "," : "");
    text += "]";
    auto parsed = parse_mappings_json(text);
    ASSERT_FALSE(parsed);
    EXPECT_EQ(parsed.error().field, "file");
    EXPECT_EQ(parsed.error().message, "131073 entries, more than the limit of 131072 (what the port table holds: "
                                      "every node port of both protocols, for both families together)");
}

// An endless input (/dev/zero made of blanks, so it is valid JSON so far)
// is read only up to the byte limit, through the reader's own buffer.
TEST(ParseMappingsJsonLimits, AnEndlessInputStopsAtTheByteLimit) {
    struct Endless : std::streambuf {
        std::array<char, 4096> blanks;
        std::size_t served = 0;
        Endless() { blanks.fill(' '); }
        int_type underflow() override {
            served += blanks.size();
            setg(blanks.data(), blanks.data(), blanks.data() + blanks.size());
            return ' ';
        }
    } endless;
    std::istream in(&endless);
    auto parsed = parse_mappings_json(in);
    ASSERT_FALSE(parsed);
    EXPECT_EQ(parsed.error().field, "file");
    EXPECT_EQ(parsed.error().message, fmt::format("larger than the limit of {} bytes", sync_limits.bytes));
    EXPECT_LE(endless.served, sync_limits.bytes + 64 * 1024 + 4096);
}

// Issue 22, finding 2: a 50 MB "port" string was echoed whole. Strings are
// limited, and a bad value is quoted at most 100 bytes, with its length.
TEST(ParseMappingsJsonLimits, LongValuesAreCutInMessages) {
    // Cut while reading, long before the lexer holds 20 MB of it.
    auto huge = parse_mappings_json(R"([{"proto": "tcp", "backend": "10.8.0.2:80", "port": ")" +
                                    std::string(20 << 20, 'x') + "\"}]");
    ASSERT_FALSE(huge);
    EXPECT_EQ(huge.error().field, "file");
    EXPECT_EQ(huge.error().message,
              fmt::format("the string at offset 52 is longer than the limit of {} bytes", sync_limits.string_bytes));
    auto over = parse_mappings_json(R"([{"proto": "tcp", "backend": "10.8.0.2:80", "port": ")" +
                                    std::string(2000, 'x') + "\"}]");
    ASSERT_FALSE(over);
    EXPECT_EQ(over.error().message,
              fmt::format("[0].port: a string of 2000 bytes, longer than the limit of {}", sync_limits.string_bytes));
    auto long_port = parse_mappings_json(R"([{"proto": "tcp", "backend": "10.8.0.2:80", "port": ")" +
                                         std::string(1000, 'x') + "\"}]");
    ASSERT_FALSE(long_port);
    EXPECT_EQ(long_port.error().field, "entry 0: port");
    EXPECT_EQ(long_port.error().message,
              "'" + std::string(100, 'x') + "...' (1000 bytes) is not a port number (1-65535)");
    auto long_key = parse_mappings_json(R"([{")" + std::string(500, 'k') + R"(": 1}])");
    ASSERT_FALSE(long_key);
    EXPECT_EQ(long_key.error().field, "entry 0: " + std::string(40, 'k') + "...");
}

// Issue 22, finding 2: a key twice in an entry was taken silently (the last won).
TEST(ParseMappingsJsonLimits, AKeyTwiceIsBadInput) {
    auto parsed = parse_mappings_json(R"([{"proto": "tcp", "port": 1, "backend": "10.8.0.2:80"},
                                          {"proto": "tcp", "port": 2, "port": 3, "backend": "10.8.0.2:80"}])");
    ASSERT_FALSE(parsed);
    EXPECT_EQ(parsed.error().field, "file");
    EXPECT_EQ(parsed.error().message, "[1]: 'port' is a key twice");
}

// Issue 22, finding 3: "10.8.0.9\u0000; rm -rf /:1" passed as 10.8.0.9:1
// (inet_pton read it as a C string), and an owner's message ended at its NUL.
TEST(ParseMappingsJsonLimits, NulBytesAreRefusedAndShown) {
    auto backend = parse_mappings_json(R"([{"proto": "tcp", "port": 1, "backend": "10.8.0.9\u0000; rm -rf /:1"}])");
    ASSERT_FALSE(backend);
    EXPECT_EQ(backend.error().field, "entry 0: backend address");
    EXPECT_EQ(backend.error().message, R"('10.8.0.9\x00; rm -rf /' is not an IPv4 address)");
    auto owner = parse_mappings_json(R"([{"proto": "tcp", "port": 1, "backend": "10.8.0.2:80", "owner": "a\u0000b"}])");
    ASSERT_FALSE(owner);
    EXPECT_EQ(owner.error().field, "entry 0: owner");
    EXPECT_EQ(owner.error().message, R"('a\x00b' has a blank or non-ASCII character)");
    EXPECT_EQ(std::string(owner.error().message.c_str()), owner.error().message) << "no NUL to cut a C string";
    // A raw NUL is not JSON text; nlohmann's lexer alone would stop there and
    // take the set before it.
    auto raw = parse_mappings_json(std::string("[]\0[{\"proto\": \"tcp\"}]", 20));
    ASSERT_FALSE(raw);
    EXPECT_EQ(raw.error().field, "file");
    EXPECT_EQ(raw.error().message,
              "is not valid JSON: a NUL byte at offset 2 (JSON text has none; a string writes it as \\u0000)");
}

// The limits leave room for the largest set there can be: every node port
// of both protocols, with 100-character owners, indented.
TEST(ParseMappingsJsonLimits, TheLargestSetFits) {
    std::string text = "[\n";
    for (auto proto : {"tcp", "udp"})
        for (int port = 1; port <= 65535; ++port)
            text += fmt::format("  {{\n    \"proto\": \"{}\",\n    \"port\": {},\n    \"backend\": "
                                "\"10.88.255.255:65535\",\n    \"owner\": \"{}\"\n  }}{}\n",
                                proto, port, std::string(100, 'o'), ",");
    // What the table holds beyond every IPv4 port: two IPv6 entries.
    text += R"(  {"proto": "tcp", "port": 1, "backend": "[fd00::ffff:ffff:ffff:ffff]:65535"},)"
            "\n"
            R"(  {"proto": "tcp", "port": 2, "backend": "[fd00::ffff:ffff:ffff:ffff]:65535"})"
            "\n]\n";
    ASSERT_LT(text.size(), sync_limits.bytes);
    auto parsed = parse_mappings_json(text);
    ASSERT_TRUE(parsed) << parsed.error().field << ": " << parsed.error().message;
    EXPECT_EQ(parsed->size(), sync_limits.entries);
}

TEST(PlanSync, AddsUpdatesAndRemovesWhatDiffers) {
    const std::vector current = {mapping(Proto::tcp, 1, "10.8.0.2:80", "a"), mapping(Proto::tcp, 2, "10.8.0.2:80", "a"),
                                 mapping(Proto::tcp, 3, "10.8.0.2:80", "a"), mapping(Proto::udp, 1, "10.8.0.2:80")};
    const std::vector desired = {mapping(Proto::tcp, 1, "10.8.0.2:80", "a"),   // unchanged
                                 mapping(Proto::tcp, 2, "10.8.0.9:80", "b"),   // new backend
                                 mapping(Proto::tcp, 3, "10.8.0.2:80", "c"),   // new owner only
                                 mapping(Proto::tcp, 4, "10.8.0.2:80", "d")};  // new port
    auto plan = plan_sync(current, desired);
    EXPECT_EQ(plan.add, std::vector{mapping(Proto::tcp, 4, "10.8.0.2:80", "d")});
    EXPECT_EQ(plan.update, (std::vector{mapping(Proto::tcp, 2, "10.8.0.9:80", "b"), mapping(Proto::tcp, 3, "10.8.0.2:80", "c")}));
    EXPECT_EQ(plan.remove, std::vector{mapping(Proto::udp, 1, "10.8.0.2:80")});
    EXPECT_EQ(plan.unchanged, 1u);
}

// A port that stays mapped is only ever overwritten, never removed, so it is
// reachable through the whole sync.
TEST(PlanSync, NeverRemovesAPortThatStaysMapped) {
    std::vector<Mapping> current, desired;
    for (std::uint16_t p = 1; p <= 100; ++p) {
        current.push_back(mapping(Proto::tcp, p, "10.8.0.2:80", "old"));
        if (p % 3)
            desired.push_back(mapping(p % 2 ? Proto::tcp : Proto::udp, p, "10.8.0.3:80", "new"));
    }
    auto plan = plan_sync(current, desired);
    for (const auto& m : plan.remove)
        for (const auto& d : desired)
            EXPECT_NE(m.node_port, d.node_port) << to_string(m.node_port);
    EXPECT_EQ(plan.add.size() + plan.update.size() + plan.unchanged, desired.size());
}

}  // namespace
}  // namespace nodeport
