// The flow lifetime rule (include/nodeport/flow_lifetime.h), which the BPF
// programs and the library both compile, against the cases in
// tests/conformance/flow_lifetime.json that the Go package is held to too.
#include "nodeport/flow_lifetime.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <map>
#include <string>

namespace {

using nlohmann::json;

constexpr __u64 kSec = NP_NSEC_PER_SEC;

json cases() {
    std::ifstream in(NODEPORT_FLOW_LIFETIME_CASES);
    return json::parse(in);
}

np_flow_timeouts timeouts_of(const json& s) {
    return np_flow_timeouts{.tcp_established_ns = s.at("tcp_established").get<__u64>() * kSec,
                            .tcp_syn_ns = s.at("tcp_syn").get<__u64>() * kSec,
                            .tcp_closing_ns = s.at("tcp_closing").get<__u64>() * kSec,
                            .udp_idle_ns = s.at("udp_idle").get<__u64>() * kSec};
}

const std::map<std::string, __u8> kStates = {
    {"open", NP_FLOW_OPEN}, {"fin_wait", NP_FLOW_FIN_WAIT}, {"syn_sent", NP_FLOW_SYN_SENT},
    {"picked_up", NP_FLOW_PICKED_UP}};

TEST(FlowLifetime, EachKindOfEntryGetsItsLifetime) {
    const json c = cases();
    const np_flow_timeouts t = timeouts_of(c.at("timeouts_s"));
    ASSERT_FALSE(c.at("cases").empty());
    for (const auto& k : c.at("cases")) {
        const bool udp = k.at("proto") == "udp";
        const __u8 state = kStates.at(k.at("state"));
        const __u64 want = c.at("timeouts_s").at(k.at("lifetime").get<std::string>()).get<__u64>() * kSec;
        EXPECT_EQ(np_flow_lifetime_ns(&t, udp, state), want) << k.dump();
        // A failed map lookup in the programs: the defaults `load` writes.
        const np_flow_timeouts defaults = timeouts_of(json{{"tcp_established", NP_DEFAULT_TCP_ESTABLISHED_S},
                                                           {"tcp_syn", NP_DEFAULT_TCP_SYN_S},
                                                           {"tcp_closing", NP_DEFAULT_TCP_CLOSING_S},
                                                           {"udp_idle", NP_DEFAULT_UDP_IDLE_S}});
        EXPECT_EQ(np_flow_lifetime_ns(nullptr, udp, state), np_flow_lifetime_ns(&defaults, udp, state)) << k.dump();
    }
}

TEST(FlowLifetime, LiveUpToItsLastNanosecond) {
    const np_flow_timeouts t = timeouts_of(cases().at("timeouts_s"));
    const __u64 last = 1000 * kSec, life = t.tcp_established_ns;
    EXPECT_TRUE(np_flow_live(&t, 0, NP_FLOW_OPEN, last, last + life));
    EXPECT_FALSE(np_flow_live(&t, 0, NP_FLOW_OPEN, last, last + life + 1));
    // Another CPU stored a last_seen a little after our clock read: live, not
    // a wrapped idle time of centuries.
    EXPECT_TRUE(np_flow_live(&t, 0, NP_FLOW_OPEN, last + 5, last));
}

}  // namespace
