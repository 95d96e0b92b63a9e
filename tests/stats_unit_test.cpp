// Tier 1: the pure parts of `nodeport stats`, without root: the reason
// table, summing per-CPU values, and the Prometheus text rendering.
#include <gtest/gtest.h>

#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include "node/prometheus.hpp"
#include "nodeport/metrics.hpp"
#include "nodeport/reasons.hpp"
#include "nodeport/stats.hpp"

namespace nodeport {
namespace {

TEST(Reasons, OneEntryPerReasonInIdOrderWithUniqueSnakeCaseNames) {
    auto all = reasons();
    ASSERT_EQ(all.size(), std::size_t(NP_REASON_COUNT));
    std::set<std::string_view> names;
    const std::regex snake("[a-z][a-z0-9]*(_[a-z0-9]+)*");
    for (std::size_t i = 0; i < all.size(); ++i) {
        SCOPED_TRACE(all[i].name);
        EXPECT_EQ(all[i].id, static_cast<np_reason>(i));
        EXPECT_TRUE(std::regex_match(std::string(all[i].name), snake));
        EXPECT_TRUE(names.insert(all[i].name).second) << "name used twice";
        EXPECT_FALSE(all[i].help.empty());
        EXPECT_EQ(all[i].help.find('\n'), std::string_view::npos) << "help is one line";
        EXPECT_EQ(reason_by_name(all[i].name), all[i].id);
    }
    EXPECT_EQ(reason_by_name("no_such_reason"), std::nullopt);
}

// Each program's reasons carry its path: the enum groups them in abi.h.
TEST(Reasons, PathFollowsTheProgramThatCountsIt) {
    EXPECT_EQ(reasons()[NP_REASON_NOT_NODE_ADDR].path, ReasonPath::external);
    EXPECT_EQ(reasons()[NP_REASON_REWRITE_FAILED].path, ReasonPath::external);
    for (int id = NP_REASON_REPLY_NO_FLOW; id <= NP_REASON_REPLY_REWRITE_FAILED; ++id)
        EXPECT_EQ(reasons()[id].path, ReasonPath::reply) << reasons()[id].name;
    for (int id = NP_REASON_LOCAL_PORT_NOT_MAPPED; id <= NP_REASON_LOCAL_NO_STORAGE; ++id)
        EXPECT_EQ(reasons()[id].path, ReasonPath::local) << reasons()[id].name;
    EXPECT_EQ(reasons()[NP_REASON_ICMP_NO_FLOW].path, ReasonPath::external);
    EXPECT_EQ(to_string(ReasonPath::reply), "reply");
}

TEST(SumPerCpu, AddsEveryFieldOverTheCpusAndIgnoresReserved) {
    std::vector<np_port_counters> cpus(3);
    for (std::size_t i = 0; i < cpus.size(); ++i) {
        const std::uint64_t k = i + 1;
        cpus[i] = np_port_counters{k, 10 * k, 100 * k, 1000 * k, 10000 * k, 100000 * k, 1000000 * k, 99};
    }
    PortCounters want{6, 60, 600, 6000, 60000, 600000, 6000000};
    EXPECT_EQ(sum_per_cpu(cpus), want);
    EXPECT_EQ(sum_per_cpu({}), PortCounters{});
}

// Byte counters pass 2^32 within hours: the sums stay 64-bit.
TEST(SumPerCpu, LargeValuesAddWithoutLoss) {
    std::vector<np_port_counters> cpus(2);
    cpus[0].to_backend_bytes = (1ULL << 62);
    cpus[1].to_backend_bytes = (1ULL << 62) + 5;
    EXPECT_EQ(sum_per_cpu(cpus).to_backend_bytes, (1ULL << 63) + 5);
}

TEST(Prometheus, EscapesLabelValuesAndHelpAsTheFormatSays) {
    EXPECT_EQ(prometheus::escape_label_value(R"(a\b"c)"
                                             "\n"
                                             "d"),
              R"(a\\b\"c\nd)");
    EXPECT_EQ(prometheus::escape_help("say \"x\"\\\nnext"), "say \"x\"\\\\\\nnext");
    prometheus::Writer w;
    w.family("m_total", "counter", "h");
    w.sample({}, 3);
    w.sample({{"a", "1"}, {"b", "x\"y"}}, 4);
    EXPECT_EQ(w.text(), "# HELP m_total h\n# TYPE m_total counter\nm_total 3\nm_total{a=\"1\",b=\"x\\\"y\"} 4\n");
}

Stats sample_stats() {
    Stats s;
    Mapping a{{Proto::tcp, 6667}, {Ipv4{0x0100080a}, 6667}, "sb-42"};
    // An owner another writer stored: quote, backslash, newline, a high byte.
    Mapping b{{Proto::udp, 53}, {Ipv4{0x0200080a}, 5353}, "we\"ird\\own\ner\xff"};
    s.ports.push_back({a, PortCounters{1, 2, 3, 4, 5, 6, 7}});
    s.ports.push_back({b, PortCounters{}});
    s.passed[NP_REASON_PORT_NOT_MAPPED] = 9;
    s.passed[NP_REASON_LOCAL_NO_STORAGE] = 1;
    return s;
}

// Lines of the text, split.
std::vector<std::string> lines(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);)
        out.push_back(line);
    return out;
}

TEST(Prometheus, EachFamilyHasHelpAndTypeOnceBeforeItsSamples) {
    const std::string text = to_prometheus(sample_stats());
    ASSERT_FALSE(text.empty());
    EXPECT_EQ(text.back(), '\n');
    std::map<std::string, int> help, type;
    std::string current;
    const std::regex sample(R"(([a-z_]+)(\{([a-z_]+="([^"\\]|\\.)*",?)*\})? [0-9]+)");
    for (const auto& line : lines(text)) {
        std::smatch m;
        if (line.starts_with("# HELP ")) {
            current = line.substr(7, line.find(' ', 7) - 7);
            ++help[current];
        } else if (line.starts_with("# TYPE ")) {
            EXPECT_EQ(line, "# TYPE " + current + (current == "nodeport_port_info" ? " gauge" : " counter"));
            ++type[current];
        } else {
            ASSERT_TRUE(std::regex_match(line, m, sample)) << line;
            EXPECT_EQ(m[1], current) << "a sample of another family than the last HELP: " << line;
        }
    }
    const std::set<std::string> families = {"nodeport_port_info",
                                            "nodeport_port_socket_calls_total",
                                            "nodeport_port_flows_total",
                                            "nodeport_port_packets_total",
                                            "nodeport_port_bytes_total",
                                            "nodeport_passed_packets_total",
                                            "nodeport_passed_socket_calls_total"};
    for (const auto& f : families) {
        EXPECT_EQ(help[f], 1) << f;
        EXPECT_EQ(type[f], 1) << f;
    }
    EXPECT_EQ(help.size(), families.size());
}

TEST(Prometheus, SamplesCarryTheCountersAndEveryReason) {
    const std::string text = to_prometheus(sample_stats());
    auto has = [&](const std::string& line) {
        auto all = lines(text);
        return std::find(all.begin(), all.end(), line) != all.end();
    };
    // The counters by protocol and port alone: a redeploy keeps their series.
    const std::string a = R"(proto="tcp",port="6667")";
    EXPECT_TRUE(has("nodeport_port_socket_calls_total{" + a + R"(,kind="connect"} 1)"));
    EXPECT_TRUE(has("nodeport_port_socket_calls_total{" + a + R"(,kind="send"} 2)"));
    EXPECT_TRUE(has("nodeport_port_flows_total{" + a + "} 3"));
    EXPECT_TRUE(has("nodeport_port_packets_total{" + a + R"(,direction="to_backend"} 4)"));
    EXPECT_TRUE(has("nodeport_port_bytes_total{" + a + R"(,direction="to_backend"} 5)"));
    EXPECT_TRUE(has("nodeport_port_packets_total{" + a + R"(,direction="from_backend"} 6)"));
    EXPECT_TRUE(has("nodeport_port_bytes_total{" + a + R"(,direction="from_backend"} 7)"));
    std::size_t counter_samples = 0;
    for (const auto& line : lines(text))
        if (!line.starts_with("nodeport_port_info{")) {
            EXPECT_EQ(line.find("owner="), std::string::npos) << line;
            counter_samples += line.starts_with("nodeport_port_");
        }
    EXPECT_EQ(counter_samples, sample_stats().ports.size() * port_counters().size()) << "every counter of every port";
    // Who holds the port: one info series. The owner as the CLI prints it
    // everywhere (\xNN, \\), then escaped for the format: the quote as \",
    // each backslash doubled.
    EXPECT_TRUE(has(R"(nodeport_port_info{proto="tcp",port="6667",owner="sb-42",backend=")" +
                    to_string(sample_stats().ports[0].mapping.backend) + R"("} 1)"));
    EXPECT_TRUE(has(R"(nodeport_port_info{proto="udp",port="53",owner="we\"ird\\\\own\\x0aer\\xff",backend=")" +
                    to_string(sample_stats().ports[1].mapping.backend) + R"("} 1)"));
    // Packets and socket calls under two names.
    EXPECT_TRUE(has(R"(nodeport_passed_packets_total{path="external",reason="port_not_mapped"} 9)"));
    EXPECT_TRUE(has(R"(nodeport_passed_socket_calls_total{reason="local_no_storage"} 1)"));
    EXPECT_TRUE(has(R"(nodeport_passed_packets_total{path="reply",reason="reply_no_flow"} 0)"));
    std::size_t passed = 0;
    for (const auto& line : lines(text))
        passed += line.starts_with("nodeport_passed_packets_total{") ||
                  line.starts_with("nodeport_passed_socket_calls_total{");
    EXPECT_EQ(passed, std::size_t(NP_REASON_COUNT)) << "every reason, zeros included";
    EXPECT_EQ(text.find(R"(nodeport_passed_packets_total{path="local")"), std::string::npos);
}

TEST(Prometheus, NoPortsStillDescribesEveryFamily) {
    const std::string text = to_prometheus(Stats{});
    EXPECT_NE(text.find("# TYPE nodeport_port_packets_total counter\n"), std::string::npos);
    EXPECT_EQ(text.find("nodeport_port_packets_total{"), std::string::npos);
}

TEST(Prometheus, NodeMetricsFromStatus) {
    Status status;
    status.ports = 2;
    status.problems.push_back({ProblemKind::listener, std::nullopt, "a listener"});
    NodeMetricsInfo info{"0.1.0", "abc123", {{"flows", 5, 131072}, {"udp_flows", 1, 65536}}};
    const std::string text = to_prometheus(status, info);
    auto all = lines(text);
    auto has = [&](const std::string& line) { return std::find(all.begin(), all.end(), line) != all.end(); };
    EXPECT_TRUE(has(R"(nodeport_build_info{version="0.1.0",commit="abc123"} 1)"));
    EXPECT_TRUE(has("nodeport_healthy 0"));
    EXPECT_TRUE(has(R"(nodeport_problems{kind="listener"} 1)"));
    EXPECT_TRUE(has(R"(nodeport_problems{kind="iptables_dnat"} 0)")) << "every kind, zeros included";
    EXPECT_TRUE(has("nodeport_mapped_ports 2"));
    EXPECT_TRUE(has(R"(nodeport_flows{table="flows"} 5)"));
    EXPECT_TRUE(has(R"(nodeport_flow_table_capacity{table="udp_flows"} 65536)"));
    EXPECT_TRUE(has("# TYPE nodeport_healthy gauge"));
    status.problems.clear();
    EXPECT_NE(to_prometheus(status, info).find("\nnodeport_healthy 1\n"), std::string::npos);
}

}  // namespace
}  // namespace nodeport
