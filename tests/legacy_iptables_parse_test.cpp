// Tier 1: reading `iptables -t nat -S` lines and telling the old runtime's
// rules from everything else, without root. Every line below was printed by
// iptables v1.8.9 (nf_tables) on Debian 12 for a rule added by hand.
#include <gtest/gtest.h>

#include "nodeport/legacy_iptables.hpp"

namespace nodeport {
namespace {

using legacy::Subnet;

// br0 is 10.8.0.1/16.
const std::vector<Subnet> bridge_subnets = {Subnet{*parse_ipv4("10.8.0.0", "x"), 16, *parse_ipv4("10.8.0.1", "x")}};

Backend backend(const char* text) {
    return *parse_backend(text);
}

std::optional<LegacyRule> legacy(const char* line) {
    auto rule = parse_nat_rule(line);
    EXPECT_TRUE(rule) << line;
    return rule ? classify_legacy(*rule, "br0", bridge_subnets).legacy : std::nullopt;
}

// Why a rule that looks like one of the old runtime's is kept ("" for one
// that does not look like one, or is one).
std::string kept_because(const char* line) {
    auto rule = parse_nat_rule(line);
    EXPECT_TRUE(rule) << line;
    return rule ? classify_legacy(*rule, "br0", bridge_subnets).kept_because : "?";
}

TEST(ParseNatRule, SplitsTheFields) {
    auto rule = parse_nat_rule(
        "-A PREROUTING ! -i br0 -p tcp -m tcp --dport 6667 -j DNAT --to-destination 10.8.32.126:6667");
    ASSERT_TRUE(rule);
    EXPECT_EQ(rule->chain, "PREROUTING");
    EXPECT_EQ(rule->proto, Proto::tcp);
    ASSERT_EQ(rule->dports.size(), 1u);
    EXPECT_EQ(rule->dports[0], (NatRule::PortRange{6667, 6667}));
    ASSERT_TRUE(rule->in);
    EXPECT_EQ(rule->in->name, "br0");
    EXPECT_TRUE(rule->in->negated);
    EXPECT_EQ(rule->target, "DNAT");
    EXPECT_EQ(rule->to_destination, "10.8.32.126:6667");
    EXPECT_TRUE(rule->other.empty());
    // What -D takes back, argument for argument.
    EXPECT_EQ(rule->spec, (std::vector<std::string>{"!", "-i", "br0", "-p", "tcp", "-m", "tcp", "--dport", "6667",
                                                    "-j", "DNAT", "--to-destination", "10.8.32.126:6667"}));
    EXPECT_EQ(rule->text(),
              "-A PREROUTING ! -i br0 -p tcp -m tcp --dport 6667 -j DNAT --to-destination 10.8.32.126:6667");
}

TEST(ParseNatRule, SkipsPolicyAndChainLines) {
    EXPECT_FALSE(parse_nat_rule("-P PREROUTING ACCEPT"));
    EXPECT_FALSE(parse_nat_rule("-N MYCHAIN"));
    EXPECT_FALSE(parse_nat_rule(""));
}

TEST(ParseNatRule, UnquotesAndKeepsUnknownOptions) {
    auto rule = parse_nat_rule(
        R"(-A PREROUTING -p tcp -m tcp --dport 85 -m comment --comment "hello world \"x\"" -j DNAT --to-destination 10.8.0.5)");
    ASSERT_TRUE(rule);
    EXPECT_EQ(rule->other, (std::vector<std::string>{"-m", "comment", "--comment", "hello world \"x\""}));
    EXPECT_EQ(rule->spec.size(), 14u);
    EXPECT_FALSE(parse_nat_rule(R"(-A PREROUTING -m comment --comment "unterminated)"));
}

TEST(ParseNatRule, PortRangesAndLists) {
    auto range = parse_nat_rule("-A PREROUTING -p tcp -m tcp --dport 8000:8010 -j DNAT --to-destination 10.8.0.7");
    ASSERT_TRUE(range);
    EXPECT_TRUE(range->matches_port({Proto::tcp, 8005}));
    EXPECT_FALSE(range->matches_port({Proto::tcp, 8011}));
    EXPECT_FALSE(range->matches_port({Proto::udp, 8005}));
    auto list = parse_nat_rule("-A PREROUTING -p tcp -m multiport --dports 83,84,90:92 -j DNAT --to-destination 10.8.0.5");
    ASSERT_TRUE(list);
    EXPECT_TRUE(list->other.empty());
    EXPECT_TRUE(list->matches_port({Proto::tcp, 84}));
    EXPECT_TRUE(list->matches_port({Proto::tcp, 91}));
    EXPECT_FALSE(list->matches_port({Proto::tcp, 85}));
    auto any = parse_nat_rule("-A PREROUTING -p tcp -j DNAT --to-destination 10.8.0.5");
    ASSERT_TRUE(any);
    EXPECT_TRUE(any->matches_port({Proto::tcp, 80}));  // no port match: every port of its protocol
    EXPECT_FALSE(any->matches_port({Proto::udp, 80}));
    auto all = parse_nat_rule("-A PREROUTING -j DNAT --to-destination 10.8.0.5");
    ASSERT_TRUE(all);
    EXPECT_TRUE(all->matches_port({Proto::udp, 53}));  // no -p either: every port of both
    auto icmp = parse_nat_rule("-A PREROUTING -p icmp -j DNAT --to-destination 10.8.0.5");
    ASSERT_TRUE(icmp);
    EXPECT_FALSE(icmp->matches_port({Proto::tcp, 80}));  // no port of ours
    EXPECT_FALSE(classify_legacy(*any, "br0", bridge_subnets).legacy);  // and none of them is the old runtime's
}

TEST(ParseDnatDestination, OneAddressAndPort) {
    EXPECT_EQ(parse_dnat_destination("10.8.32.126:6667"), backend("10.8.32.126:6667"));
    auto no_port = parse_dnat_destination("10.8.0.5");
    ASSERT_TRUE(no_port);
    EXPECT_EQ(no_port->port, 0);
    EXPECT_FALSE(parse_dnat_destination("10.8.0.5-10.8.0.9:100-200"));
    EXPECT_FALSE(parse_dnat_destination("10.8.0.5:100-200"));
    EXPECT_FALSE(parse_dnat_destination("10.8.0.5:0"));
    EXPECT_FALSE(parse_dnat_destination("[fd00::1]:80"));
}

TEST(ClassifyLegacy, TheOldRuntimesThreeRules) {
    auto pre = legacy("-A PREROUTING ! -i br0 -p tcp -m tcp --dport 6667 -j DNAT --to-destination 10.8.32.126:6667");
    ASSERT_TRUE(pre);
    EXPECT_EQ(pre->port, (NodePort{Proto::tcp, 6667}));
    EXPECT_EQ(pre->target, backend("10.8.32.126:6667"));
    auto out = legacy("-A OUTPUT -p tcp -m tcp --dport 6667 -j DNAT --to-destination 10.8.32.126:6667");
    ASSERT_TRUE(out);
    EXPECT_EQ(out->port, (NodePort{Proto::tcp, 6667}));
    auto out_lo = legacy("-A OUTPUT -d 127.0.0.1/32 -p tcp -m tcp --dport 6667 -j DNAT --to-destination 10.8.32.126:6667");
    ASSERT_TRUE(out_lo);
    auto out_local = legacy(
        "-A OUTPUT -p udp -m addrtype --dst-type LOCAL -m udp --dport 53 -j DNAT --to-destination 10.8.32.126:53");
    ASSERT_TRUE(out_local);
    EXPECT_EQ(out_local->port, (NodePort{Proto::udp, 53}));
    auto masq = legacy("-A POSTROUTING -s 127.0.0.1/32 -d 10.8.32.126/32 -p tcp -m tcp --dport 6667 -j MASQUERADE");
    ASSERT_TRUE(masq);
    EXPECT_EQ(masq->port, (NodePort{Proto::tcp, 6667}));
    EXPECT_FALSE(masq->target);
    auto masq_out = legacy("-A POSTROUTING -s 127.0.0.1/32 -o br0 -j MASQUERADE");
    ASSERT_TRUE(masq_out);
    EXPECT_FALSE(masq_out->port);
}

TEST(ClassifyLegacy, ADnatWithoutPortKeepsThePacketsPort) {
    auto rule = legacy("-A PREROUTING -p tcp -m tcp --dport 81 -j DNAT --to-destination 10.8.0.5");
    ASSERT_TRUE(rule);
    EXPECT_EQ(rule->target, backend("10.8.0.5:81"));
}

// Rules that look close but are not the old runtime's: they must survive.
TEST(ClassifyLegacy, EverythingElseSurvives) {
    for (const char* line : {
             "-A PREROUTING -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.9.0.5:80",  // another subnet
             "-A PREROUTING -p tcp -m tcp --dport 82 -j DNAT --to-destination 10.8.0.5-10.8.0.9:100-200",
             "-A PREROUTING -p tcp -m multiport --dports 83,84 -j DNAT --to-destination 10.8.0.5",
             "-A PREROUTING -p tcp -m tcp --dport 8000:8010 -j DNAT --to-destination 10.8.0.7",
             "-A PREROUTING -p tcp -m tcp --dport 85 -m comment --comment \"keep me\" -j DNAT --to-destination 10.8.0.5",
             "-A PREROUTING -i eth0 -p tcp -m tcp --dport 86 -j DNAT --to-destination 10.8.0.5",  // only from eth0
             "-A PREROUTING ! -i br1 -p tcp -m tcp --dport 86 -j DNAT --to-destination 10.8.0.5",  // another bridge
             "-A PREROUTING -d 10.200.0.1/32 -p tcp -m tcp --dport 87 -j DNAT --to-destination 10.8.0.5",
             "-A PREROUTING -s 192.0.2.0/24 -p tcp -m tcp --dport 88 -j DNAT --to-destination 10.8.0.5",
             "-A PREROUTING -j MYCHAIN",
             "-A MYCHAIN -p tcp -m tcp --dport 6667 -j DNAT --to-destination 10.8.32.126:6667",  // a user chain
             "-A OUTPUT -d 10.200.0.1/32 -p tcp -m tcp --dport 6667 -j DNAT --to-destination 10.8.32.126:6667",
             "-A OUTPUT ! -p tcp -j DNAT --to-destination 10.8.0.5",
             "-A POSTROUTING -s 10.8.0.0/16 ! -o br0 -j MASQUERADE",  // the bridge's egress
             "-A POSTROUTING -s 127.0.0.1/32 ! -o br0 -j MASQUERADE",
             "-A POSTROUTING -s 127.0.0.1/32 -d 10.9.0.5/32 -j MASQUERADE",
             "-A POSTROUTING -s 127.0.0.1/32 -d 10.8.0.0/16 -j MASQUERADE",
             "-A POSTROUTING -s 127.0.0.1/32 -o br0 -j MASQUERADE --to-ports 1000-2000",
             "-A POSTROUTING -s 127.0.0.1/32 -d 10.8.32.126/32 -j SNAT --to-source 10.8.0.1",
         })
        EXPECT_FALSE(legacy(line)) << line;
}

// Issue 22: one port through -m multiport, and DNATs to addresses no sandbox
// has, are an operator's rules: kept, and listed as kept with the reason.
TEST(ClassifyLegacy, MultiportAndTheBridgesOwnAddressesAreKept) {
    const std::pair<const char*, const char*> cases[] = {
        {"-A PREROUTING ! -i br0 -p tcp -m multiport --dports 6667 -j DNAT --to-destination 10.8.32.126:6667",
         "-m multiport (the old runtime matched one port with --dport)"},
        {"-A OUTPUT -p udp -m multiport --dports 53 -j DNAT --to-destination 10.8.32.126:53",
         "-m multiport (the old runtime matched one port with --dport)"},
        {"-A PREROUTING ! -i br0 -p tcp -m tcp --dport 3128 -j DNAT --to-destination 10.8.0.1:3128",
         "DNAT to the bridge's own address 10.8.0.1"},
        {"-A OUTPUT -p tcp -m tcp --dport 3128 -j DNAT --to-destination 10.8.0.1",
         "DNAT to the bridge's own address 10.8.0.1"},
        {"-A PREROUTING ! -i br0 -p udp -m udp --dport 9 -j DNAT --to-destination 10.8.0.0:9",
         "DNAT to the network address of 10.8.0.0/16"},
        {"-A PREROUTING ! -i br0 -p udp -m udp --dport 9 -j DNAT --to-destination 10.8.255.255:9",
         "DNAT to the broadcast address of 10.8.0.0/16"},
        {"-A POSTROUTING -s 127.0.0.1/32 -d 10.8.0.1/32 -p tcp -m tcp --dport 3128 -j MASQUERADE",
         "toward the bridge's own address 10.8.0.1"},
        {"-A POSTROUTING -s 127.0.0.1/32 -o br0 -p tcp -m multiport --dports 6667 -j MASQUERADE",
         "-m multiport (the old runtime matched one port with --dport)"},
    };
    for (const auto& [line, reason] : cases) {
        EXPECT_FALSE(legacy(line)) << line;
        EXPECT_EQ(kept_because(line), reason) << line;
    }
    // The address next to them is a sandbox's.
    EXPECT_TRUE(legacy("-A PREROUTING ! -i br0 -p tcp -m tcp --dport 3128 -j DNAT --to-destination 10.8.0.2:3128"));
    EXPECT_TRUE(legacy("-A PREROUTING ! -i br0 -p udp -m udp --dport 9 -j DNAT --to-destination 10.8.255.254:9"));
}

TEST(ClassifyLegacy, KeptRulesSayWhy) {
    EXPECT_EQ(kept_because("-A PREROUTING -p tcp -m tcp --dport 85 -m comment --comment \"keep me\" -j DNAT "
                           "--to-destination 10.8.0.5"),
              "other matches or options (-m comment --comment keep me)");
    EXPECT_EQ(kept_because("-A PREROUTING -i eth0 -p tcp -m tcp --dport 86 -j DNAT --to-destination 10.8.0.5"),
              "an -i match other than ! -i br0");
    EXPECT_EQ(kept_because("-A OUTPUT -d 10.200.0.1/32 -p tcp -m tcp --dport 6667 -j DNAT --to-destination "
                           "10.8.32.126:6667"),
              "a destination other than loopback (-d 10.200.0.1/32)");
    EXPECT_EQ(kept_because("-A PREROUTING -p tcp -m tcp --dport 8000:8010 -j DNAT --to-destination 10.8.0.7"),
              "not one tcp or udp port (the old runtime matched -p tcp|udp --dport N)");
    // Rules that do not send anything toward the bridge are not listed.
    EXPECT_EQ(kept_because("-A PREROUTING -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.9.0.5:80"), "");
    EXPECT_EQ(kept_because("-A POSTROUTING -s 10.8.0.0/16 ! -o br0 -j MASQUERADE"), "");
    EXPECT_EQ(kept_because("-A PREROUTING -j MYCHAIN"), "");
    // Nor are the old runtime's own.
    EXPECT_EQ(kept_because("-A PREROUTING ! -i br0 -p tcp -m tcp --dport 6667 -j DNAT --to-destination "
                           "10.8.32.126:6667"),
              "");
}

TEST(SummarizeLegacy, FirstMatchDeadTargetsAndShadowing) {
    std::vector<LegacyRule> rules;
    for (const char* line : {
             "-A PREROUTING ! -i br0 -p tcp -m tcp --dport 6667 -j DNAT --to-destination 10.8.32.126:6667",
             "-A PREROUTING ! -i br0 -p tcp -m tcp --dport 6667 -j DNAT --to-destination 10.8.0.2:6667",
             "-A PREROUTING ! -i br0 -p tcp -m tcp --dport 6667 -j DNAT --to-destination 10.8.32.126:6667",
             "-A PREROUTING ! -i br0 -p udp -m udp --dport 53 -j DNAT --to-destination 10.8.0.9:53",
             "-A OUTPUT -p tcp -m tcp --dport 6667 -j DNAT --to-destination 10.8.0.2:6667",
             "-A OUTPUT -p tcp -m tcp --dport 6667 -j DNAT --to-destination 10.8.32.126:6667",
             "-A POSTROUTING -s 127.0.0.1/32 -d 10.8.32.126/32 -p tcp -m tcp --dport 6667 -j MASQUERADE",
             "-A POSTROUTING -s 127.0.0.1/32 -o br0 -j MASQUERADE",
         })
        rules.push_back(*legacy(line));
    std::map<NodePort, Backend> mapped = {{{Proto::tcp, 6667}, backend("10.8.0.2:6667")}};
    auto summary = summarize_legacy(rules, mapped);
    EXPECT_EQ(summary.rule_count, 8u);
    ASSERT_EQ(summary.portless.size(), 1u);
    ASSERT_EQ(summary.ports.size(), 2u);

    const LegacyPort& tcp = summary.ports[0];  // tcp sorts before udp
    EXPECT_EQ(tcp.port, (NodePort{Proto::tcp, 6667}));
    EXPECT_EQ(tcp.rules.size(), 6u);
    EXPECT_EQ(tcp.by_chain.at("PREROUTING"), 3u);
    EXPECT_EQ(tcp.by_chain.at("OUTPUT"), 2u);
    EXPECT_EQ(tcp.by_chain.at("POSTROUTING"), 1u);
    EXPECT_EQ(tcp.first_match.at("PREROUTING"), backend("10.8.32.126:6667"));
    EXPECT_EQ(tcp.first_match.at("OUTPUT"), backend("10.8.0.2:6667"));
    EXPECT_EQ(tcp.nodeport_backend, backend("10.8.0.2:6667"));
    EXPECT_EQ(tcp.dead_targets, (std::vector<Backend>{backend("10.8.32.126:6667")}));
    EXPECT_TRUE(tcp.shadows_nodeport);  // outside traffic goes to the dead target first

    const LegacyPort& udp = summary.ports[1];
    EXPECT_FALSE(udp.nodeport_backend);
    EXPECT_EQ(udp.dead_targets, (std::vector<Backend>{backend("10.8.0.9:53")}));  // unmapped: every target is dead
    EXPECT_FALSE(udp.shadows_nodeport);  // nothing of nodeport's to shadow
}

TEST(Subnet, ContainsAndBroadcast) {
    Subnet s{*parse_ipv4("10.8.0.0", "x"), 16, *parse_ipv4("10.8.0.1", "x")};
    EXPECT_TRUE(s.contains(*parse_ipv4("10.8.255.1", "x")));
    EXPECT_FALSE(s.contains(*parse_ipv4("10.9.0.1", "x")));
    EXPECT_EQ(to_string(s), "10.8.0.0/16");
    EXPECT_EQ(s.broadcast(), *parse_ipv4("10.8.255.255", "x"));
    Subnet all{*parse_ipv4("0.0.0.0", "x"), 0, *parse_ipv4("192.0.2.2", "x")};
    EXPECT_TRUE(all.contains(*parse_ipv4("192.0.2.1", "x")));
    EXPECT_EQ(all.broadcast(), *parse_ipv4("255.255.255.255", "x"));
    // A /31 has no network or broadcast address (RFC 3021): both its addresses are hosts.
    Subnet p2p{*parse_ipv4("10.8.0.0", "x"), 31, *parse_ipv4("10.8.0.0", "x")};
    EXPECT_EQ(p2p.broadcast(), p2p.network);
    EXPECT_TRUE(legacy("-A PREROUTING ! -i br0 -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.8.0.4:80"));
}

}  // namespace
}  // namespace nodeport
