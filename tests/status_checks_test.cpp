// Tier 1: status's readers of iptables rules, `nft -j list ruleset` and
// /proc/net, on output captured from nft 1.0.6 and Linux 6.18, without root.
#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>

#include <fmt/format.h>

#include "base/run_tool.hpp"
#include "node/status_checks.hpp"
#include "nodeport/legacy_iptables.hpp"

namespace nodeport::status_checks {
namespace {

const std::vector<NodePort> mapped = {{Proto::tcp, 6667}, {Proto::udp, 5353}};

TEST(IptablesDnat, MappedPortsOnlyDuplicatesCounted) {
    std::vector<NatRule> rules;
    for (const char* line : {
             "-A PREROUTING -p tcp -m tcp --dport 6667 -j DNAT --to-destination 10.8.9.9:6667",
             "-A PREROUTING -p tcp -m tcp --dport 6667 -j DNAT --to-destination 10.8.9.9:6667",
             "-A MYCHAIN -p udp -m multiport --dports 53,5353 -j DNAT --to-destination 10.8.9.9",
             "-A OUTPUT -p tcp -m tcp --dport 7777 -j DNAT --to-destination 10.8.9.9:7777",  // not mapped
             "-A PREROUTING -p udp -m udp --dport 6667 -j DNAT --to-destination 10.8.9.9",   // other protocol
             "-A POSTROUTING -p tcp -m tcp --dport 6667 -j MASQUERADE",                      // not a DNAT
             "-A PREROUTING -p tcp -m tcp --dport 6000:7000 -j REDIRECT --to-ports 8080",
         })
        rules.push_back(*parse_nat_rule(line));
    auto problems = iptables_dnat(rules, mapped);
    ASSERT_EQ(problems.size(), 3u);
    EXPECT_EQ(problems[0].port, mapped[0]);
    EXPECT_EQ(problems[0].detail,
              "iptables -t nat rule (x2): -A PREROUTING -p tcp -m tcp --dport 6667 -j DNAT --to-destination "
              "10.8.9.9:6667");
    EXPECT_EQ(problems[1].port, mapped[1]);
    EXPECT_EQ(problems[2].port, mapped[0]);  // the REDIRECT of a range holding it
}

TEST(IptablesDnat, Ip6tablesRulesAreNamedAsSuch) {
    const std::vector<NodePort> mapped = {{Proto::tcp, 6667}};
    const std::vector<NatRule> rules = {
        *parse_nat_rule("-A PREROUTING -p tcp -m tcp --dport 6667 -j DNAT --to-destination [fd00:8::9]:6667")};
    auto problems = iptables_dnat(rules, mapped, "ip6tables");
    ASSERT_EQ(problems.size(), 1u);
    EXPECT_EQ(problems[0].detail,
              "ip6tables -t nat rule: -A PREROUTING -p tcp -m tcp --dport 6667 -j DNAT --to-destination "
              "[fd00:8::9]:6667");
}

TEST(NftDnat, ReadsPortsSetsRangesAndNegation) {
    const char* json = R"({"nftables": [
      {"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}},
      {"table": {"family": "inet", "name": "mynat", "handle": 1}},
      {"rule": {"family": "inet", "table": "mynat", "chain": "pre", "handle": 2, "expr": [
        {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 6667}},
        {"dnat": {"family": "ip", "addr": "10.8.0.9", "port": 6667}}]}},
      {"rule": {"family": "inet", "table": "mynat", "chain": "pre", "handle": 4, "expr": [
        {"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}}, "right": {"set": [53, 5353]}}},
        {"dnat": {"family": "ip", "addr": "10.8.0.9"}}]}},
      {"rule": {"family": "inet", "table": "mynat", "chain": "pre", "handle": 5, "expr": [
        {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": {"range": [7000, 7010]}}},
        {"dnat": {"family": "ip", "addr": "10.8.0.9"}}]}},
      {"rule": {"family": "inet", "table": "mynat", "chain": "pre", "handle": 6, "expr": [
        {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": "1.2.3.4"}},
        {"match": {"op": "!=", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 22}},
        {"dnat": {"family": "ip", "addr": "10.8.0.9"}}]}},
      {"rule": {"family": "ip", "table": "nat", "chain": "PREROUTING", "handle": 2, "expr": [
        {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 6667}},
        {"counter": {"packets": 0, "bytes": 0}},
        {"xt": {"type": "target", "name": "DNAT"}}]}},
      {"rule": {"family": "inet", "table": "f", "chain": "in", "handle": 9, "expr": [
        {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 6667}},
        {"accept": null}]}}
    ]})";
    auto found = nft_dnat(json, mapped);
    ASSERT_TRUE(found) << found.error().message;
    const auto& problems = found->problems;
    ASSERT_EQ(problems.size(), 3u);
    EXPECT_EQ(problems[0].port, mapped[0]);
    EXPECT_EQ(problems[0].detail, "nft table inet mynat, chain pre, rule handle 2: dnat to 10.8.0.9:6667");
    EXPECT_EQ(problems[1].port, mapped[1]);  // the set
    EXPECT_EQ(problems[2].port, mapped[0]);  // "!= 22" selects 6667 too
    EXPECT_NE(problems[2].detail.find("handle 6"), std::string::npos);
    EXPECT_TRUE(found->not_checked.empty());
    EXPECT_FALSE(nft_dnat("not json", mapped));
}

// Rules whose port selection is not a dport match: every port, a map keyed by
// the port, a named set or map. Each "expr" as nft 1.0.6 printed it.
TEST(NftDnat, EveryPortMapsAndWhatCannotBeRead) {
    auto rule = [](int handle, const char* expr) {
        return fmt::format(R"({{"rule": {{"family": "ip", "table": "t", "chain": "pre", "handle": {}, "expr": {}}}}})",
                           handle, expr);
    };
    auto ruleset = [](const std::vector<std::string>& rules) {
        std::string items;
        for (const auto& r : rules)
            items += (items.empty() ? "" : ",") + r;
        return R"({"nftables": [)" + items + "]}";
    };
    // dnat to tcp dport map { 6667 : 10.8.0.2 . 6667 }: selects 6667 only.
    const auto inline_map = rule(2, R"([{"dnat":{"family":"ip","addr":{"map":{"key":{"payload":{"protocol":"tcp","field":"dport"}},"data":{"set":[[6667,{"concat":["10.8.0.2",6667]}]]}}}}}])");
    auto found = nft_dnat(ruleset({inline_map}), mapped);
    ASSERT_TRUE(found);
    ASSERT_EQ(found->problems.size(), 1u);
    EXPECT_EQ(found->problems[0].port, mapped[0]);
    found = nft_dnat(ruleset({inline_map}), {{Proto::tcp, 80}, {Proto::udp, 6667}});
    ASSERT_TRUE(found);
    EXPECT_TRUE(found->problems.empty());  // not in the map; not tcp

    // dnat to 10.8.0.7 (no port match at all): every port, one problem without a port.
    found = nft_dnat(ruleset({rule(3, R"([{"dnat":{"addr":"10.8.0.7"}}])")}), mapped);
    ASSERT_TRUE(found);
    ASSERT_EQ(found->problems.size(), 1u);
    EXPECT_FALSE(found->problems[0].port);
    EXPECT_EQ(found->problems[0].detail,
              "nft table ip t, chain pre, rule handle 3: dnat to 10.8.0.7 takes every port (2 mapped; no port match)");
    // meta l4proto tcp redirect to :8080: every tcp port.
    found = nft_dnat(
        ruleset({rule(4, R"([{"match":{"op":"==","left":{"meta":{"key":"l4proto"}},"right":"tcp"}},{"redirect":{"port":8080}}])")}),
        mapped);
    ASSERT_TRUE(found);
    ASSERT_EQ(found->problems.size(), 1u);
    EXPECT_NE(found->problems[0].detail.find("(1 mapped;"), std::string::npos);

    // dnat ip to tcp dport map @m; tcp dport @s dnat to 10.8.0.6: not read, so said.
    found = nft_dnat(
        ruleset({rule(5, R"([{"dnat":{"family":"ip","addr":{"map":{"key":{"payload":{"protocol":"tcp","field":"dport"}},"data":"@m"}}}}])"),
                 rule(6, R"([{"match":{"op":"==","left":{"payload":{"protocol":"tcp","field":"dport"}},"right":"@s"}},{"dnat":{"addr":"10.8.0.6"}}])")}),
        mapped);
    ASSERT_TRUE(found);
    EXPECT_TRUE(found->problems.empty());
    ASSERT_EQ(found->not_checked.size(), 2u);
    EXPECT_NE(found->not_checked[0].find("rule handle 5"), std::string::npos);
    EXPECT_NE(found->not_checked[1].find("rule handle 6: dnat to 10.8.0.6: which ports it selects cannot be read"),
              std::string::npos);
}

TEST(IptablesDnat, ARuleWithoutAPortMatchTakesEveryPortOnce) {
    std::vector<NatRule> rules;
    for (const char* line : {
             "-A PREROUTING -p tcp -j DNAT --to-destination 10.8.9.9",               // every tcp port
             "-A PREROUTING -p tcp -j DNAT --to-destination 10.8.9.9",
             "-A OUTPUT -d 10.200.0.1/32 -j DNAT --to-destination 10.8.9.8",        // every port, both protocols
             "-A PREROUTING -p icmp -j DNAT --to-destination 10.8.9.7",             // no port of ours
             "-A PREROUTING -p udp -m udp ! --dport 53 -j REDIRECT --to-ports 99",  // may take 5353
         })
        rules.push_back(*parse_nat_rule(line));
    auto problems = iptables_dnat(rules, mapped);
    ASSERT_EQ(problems.size(), 3u);
    EXPECT_FALSE(problems[0].port);
    EXPECT_EQ(problems[0].detail, "iptables -t nat rule (x2) takes every port (1 mapped; no port match): -A PREROUTING "
                                  "-p tcp -j DNAT --to-destination 10.8.9.9");
    EXPECT_FALSE(problems[1].port);
    EXPECT_NE(problems[1].detail.find("(2 mapped;"), std::string::npos);
    EXPECT_FALSE(problems[2].port);
    EXPECT_NE(problems[2].detail.find("! --dport 53"), std::string::npos);
}

TEST(LostPorts, CountAndTheFirstFive) {
    EXPECT_EQ(lost_ports({}), "no port is mapped");
    EXPECT_EQ(lost_ports(mapped), "2 mapped ports cannot be reached through it: tcp/6667, udp/5353");
    std::vector<NodePort> all;
    for (unsigned p = 1; p <= 65535; ++p)
        all.push_back({Proto::tcp, static_cast<std::uint16_t>(p)});
    EXPECT_EQ(lost_ports(all),
              "65535 mapped ports cannot be reached through it: tcp/1, tcp/2, tcp/3, tcp/4, tcp/5 and 65530 more");
}

TEST(Listeners, TcpInListenAndUdpInAnyState) {
    const char* tcp =
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
        "   0: 00000000:1A0B 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 "
        "0000000000000000 100 0 0 10 0\n"
        "   1: 0100007F:1A0B 0200080A:9C40 01 00000000:00000000 00:00000000 00000000     0        0 12346 1 "
        "0000000000000000 20 4 30 10 -1\n"  // established: a connection, not a listener
        "   2: 0100007F:1E61 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12347 1 "
        "0000000000000000 100 0 0 10 0\n";  // 7777: not mapped
    auto problems = listeners(tcp, Proto::tcp, mapped);
    ASSERT_EQ(problems.size(), 1u);
    EXPECT_EQ(problems[0].port, mapped[0]);
    EXPECT_EQ(problems[0].detail, "a tcp socket on the node is bound to 0.0.0.0:6667 (listening)");

    const char* udp6 =
        "  sl  local_address                         remote_address                        st tx_queue rx_queue tr "
        "tm->when retrnsmt   uid  timeout inode ref pointer drops\n"
        "  123: 00000000000000000000000000000000:14E9 00000000000000000000000000000000:0000 07 00000000:00000000 "
        "00:00000000 00000000     0        0 2345 2 0000000000000000 0\n";
    problems = listeners(udp6, Proto::udp, mapped);
    ASSERT_EQ(problems.size(), 1u);
    EXPECT_EQ(problems[0].port, mapped[1]);
    EXPECT_EQ(problems[0].detail, "a udp socket on the node is bound to [::]:5353");
    EXPECT_TRUE(listeners(udp6, Proto::udp, {}).empty());
}

// The problem names the process holding the socket (found by its inode), and
// podman's conmon, which holds every port podman publishes so that the
// container gets it, is no problem.
TEST(Listeners, NameTheProcessAndLeavePodmansReservationAlone) {
    const char* udp =
        "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer "
        "drops             \n"
        "  306: 00000000:14E9 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 41235 2 "
        "0000000000000000 0         \n"
        "  307: 00000000:1A0B 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 41236 2 "
        "0000000000000000 0         \n";
    const SocketOwnerOf owner_of = [](std::uint64_t inode) -> std::optional<SocketOwner> {
        if (inode == 41235)
            return SocketOwner{812, "dnsmasq"};
        if (inode == 41236)
            return SocketOwner{913, "conmon", true};
        return std::nullopt;
    };
    auto problems = listeners(udp, Proto::udp, {{Proto::udp, 6667}, {Proto::udp, 5353}}, owner_of);
    ASSERT_EQ(problems.size(), 1u);
    EXPECT_EQ(problems[0].detail, "a udp socket on the node is bound to 0.0.0.0:5353, held by dnsmasq (pid 812)");

    // Any other executable named conmon is reported like any process.
    const SocketOwnerOf another_conmon = [](std::uint64_t inode) -> std::optional<SocketOwner> {
        return SocketOwner{static_cast<int>(inode - 40000), "conmon", false};
    };
    problems = listeners(udp, Proto::udp, {{Proto::udp, 6667}}, another_conmon);
    ASSERT_EQ(problems.size(), 1u);
    EXPECT_EQ(problems[0].detail, "a udp socket on the node is bound to 0.0.0.0:6667, held by conmon (pid 1236)");
}

// podman starts conmon with its own path as the exit command; CRI-O's conmon
// and anything else named conmon lack it.
TEST(Listeners, PodmansConmonByItsCommandLine) {
    using namespace std::string_view_literals;
    EXPECT_TRUE(podman_conmon_cmdline("/usr/bin/conmon\0--api-version\0" "1\0-c\0abc\0--exit-dir\0/run/x\0"
                                      "--exit-command\0/usr/bin/podman\0--exit-command-arg\0--root\0"sv));
    EXPECT_TRUE(podman_conmon_cmdline("conmon\0--exit-command=/usr/local/bin/podman\0"sv));
    EXPECT_FALSE(podman_conmon_cmdline("/usr/bin/conmon\0-c\0abc\0--exit-dir\0/var/run/crio/exits\0"sv));
    EXPECT_FALSE(podman_conmon_cmdline("./conmon\0--exit-command\0/tmp/not-podman\0"sv));
    EXPECT_FALSE(podman_conmon_cmdline("./conmon\0--exit-command\0"sv));
    EXPECT_FALSE(podman_conmon_cmdline(""sv));
}

// Captured from /proc/net/udp{,6} on Linux 6.1: a client socket connected to
// 10.8.0.2:53 from ephemeral port 6667 (0x1A0B), and one connected over IPv6
// from 5353 (0x14E9); neither takes datagrams for the node's port.
TEST(Listeners, ConnectedUdpSocketsAreClientsNotListeners) {
    const char* udp =
        "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer "
        "drops             \n"
        "  305: 0100007F:1A0B 0200080A:0035 01 00000000:00000000 00:00000000 00000000     0        0 41234 2 "
        "0000000000000000 0         \n"
        "  306: 00000000:14E9 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 41235 2 "
        "0000000000000000 0         \n";
    auto problems = listeners(udp, Proto::udp, {{Proto::udp, 6667}, {Proto::udp, 5353}});
    ASSERT_EQ(problems.size(), 1u);  // the unconnected one on 5353 only
    EXPECT_EQ(problems[0].detail, "a udp socket on the node is bound to 0.0.0.0:5353");

    const char* udp6 =
        "  sl  local_address                         remote_address                        st tx_queue rx_queue tr "
        "tm->when retrnsmt   uid  timeout inode ref pointer drops\n"
        "  123: 0000000000000000FFFF00000100007F:14E9 0000000000000000FFFF00000200080A:0035 01 00000000:00000000 "
        "00:00000000 00000000     0        0 2346 2 0000000000000000 0\n";
    EXPECT_TRUE(listeners(udp6, Proto::udp, mapped).empty());
}

using namespace std::chrono_literals;

TEST(RunTool, StdinIsWrittenWhileOutputIsRead) {
    std::string input(1 << 20, 'x');  // more than a pipe holds, both ways
    auto result = run_tool({"cat"}, {.input = input, .timeout = 10s});
    ASSERT_TRUE(result) << result.error().message;
    EXPECT_EQ(result->exit_code, 0);
    EXPECT_EQ(result->out, input);
    // A tool that stops reading early: no SIGPIPE for us, its own exit code.
    result = run_tool({"head", "-c", "1"}, {.input = input, .timeout = 10s});
    ASSERT_TRUE(result) << result.error().message;
    EXPECT_EQ(result->out, "x");
}

TEST(RunTool, ADeadlineKillsAndReapsTheTool) {
    auto start = std::chrono::steady_clock::now();
    auto result = run_tool({"sleep", "30"}, {.input = {}, .timeout = 300ms});
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().errno_value, ETIMEDOUT);
    EXPECT_EQ(result.error().message, "sleep: timed out after 0.3 s");
    // A tool that closed its output and keeps running, and one that fills a
    // pipe and never exits: both end at the deadline too.
    result = run_tool({"sh", "-c", "exec >&- 2>&-; sleep 30"}, {.input = {}, .timeout = 300ms});
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().errno_value, ETIMEDOUT);
    result = run_tool({"sh", "-c", "head -c 1000000 /dev/zero; exec sleep 30"}, {.input = {}, .timeout = 1s});
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().message, "sh: timed out after 1 s");
    EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
}

TEST(RunTool, FailureNamesTheCommandAndTheFirstLineOfStderr) {
    auto result = run_tool({"sh", "-c", "echo first >&2; echo second >&2; exit 4"});
    ASSERT_TRUE(result) << result.error().message;
    EXPECT_EQ(describe_failure({"sh", "-c", "x"}, *result), "sh -c x: exit 4: first");
    auto missing = run_tool({"no-such-tool-nodeport"});
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error().errno_value, ENOENT);
}

}  // namespace
}  // namespace nodeport::status_checks
