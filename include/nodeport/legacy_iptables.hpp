// The old runtime's iptables rules: before nodeport, every sandbox deploy
// appended three nat rules and nothing ever deleted them,
//   -A PREROUTING ! -i <bridge> -p tcp --dport 6667 -j DNAT --to-destination 10.8.32.126:6667
//   -A OUTPUT [-d 127.0.0.1 | -m addrtype --dst-type LOCAL] -p tcp --dport 6667 -j DNAT --to-destination ...
//   -A POSTROUTING -s 127.0.0.1 {-d 10.8.32.126 | -o <bridge>} [-p tcp --dport 6667] -j MASQUERADE
// so the first match for a port points at a long-dead sandbox and shadows
// whatever serves the port now. This finds them (by their exact shape, so any
// rule of another shape survives, and those that look like them are listed
// as kept), says what they shadow, and deletes them
// with the iptables tool itself (iptables-legacy or iptables-nft, whichever
// `iptables` is on the node).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "nodeport/result.hpp"
#include "nodeport/types.hpp"

// Exported from libnodeport.so (the rest of the library is hidden).
#pragma GCC visibility push(default)

namespace nodeport {

// One `-A CHAIN ...` line of `iptables -t nat -S`, with the options nodeport
// interprets picked out. `spec` is what `iptables -D CHAIN` takes back to
// delete exactly this rule.
struct NatRule {
    struct Interface {
        std::string name;
        bool negated = false;  // ! -i NAME
    };
    using PortRange = std::pair<std::uint16_t, std::uint16_t>;  // first, last (equal for one port)

    std::string chain;
    std::vector<std::string> spec;  // the arguments after "-A CHAIN", unquoted
    std::optional<Proto> proto;     // -p tcp|udp
    bool other_proto = false;       // -p of another protocol (icmp, sctp, ...): no tcp or udp packet matches
    std::vector<PortRange> dports;  // --dport N, --dport A:B, --dports a,b:c; empty: any port
    bool multiport = false;         // the ports come from -m multiport (--dports), which the old runtime never wrote
    std::optional<Interface> in;    // -i
    std::optional<Interface> out;   // -o
    std::optional<std::string> source;       // -s as printed ("127.0.0.1/32")
    std::optional<std::string> destination;  // -d as printed
    bool dst_type_local = false;             // -m addrtype --dst-type LOCAL
    std::string target;                      // -j: DNAT, MASQUERADE, a user chain, ...
    std::optional<std::string> to_destination;  // DNAT --to-destination, as printed
    // Everything else (a comment, a negated protocol, another match): a rule
    // with any of it is never taken for one of the old runtime's.
    std::vector<std::string> other;

    // The line as `iptables -S` prints it (quoting aside): "-A CHAIN spec...".
    std::string text() const;
    // Whether the rule's protocol and port matches let this protocol and
    // destination port through: a rule without -p takes either protocol, one
    // without a port match every port. (What it cannot read, like a negated
    // --dport, counts as matching: "may match".)
    bool matches_port(NodePort port) const;
};

// Parses one line of `iptables -t nat -S [CHAIN]`; nullopt for the -P and -N
// lines, and for a line it cannot split (an unterminated quote).
std::optional<NatRule> parse_nat_rule(std::string_view line);

// A DNAT --to-destination of one address and at most one port ("10.8.0.5",
// "10.8.0.5:80"); nullopt for ranges. A port of 0 means "keep the port".
std::optional<Backend> parse_dnat_destination(std::string_view text);

namespace legacy {
// An IPv4 subnet of the bridge, from one of its addresses.
struct Subnet {
    Ipv4 network;
    int prefix_len = 32;
    Ipv4 address;  // the bridge's own address in it
    bool contains(Ipv4 addr) const;
    // The subnet's last address (all host bits set); its network address
    // for a /31 or /32, which have none (RFC 3021).
    Ipv4 broadcast() const;
};
std::string to_string(const Subnet& subnet);  // "10.8.0.0/16"

// The IPv4 subnets of an interface of this network namespace; an empty list
// when it has no IPv4 address, an error (errno ENODEV) when it does not exist.
Result<std::vector<Subnet>> interface_subnets(const std::string& interface);
}  // namespace legacy

// One of the old runtime's rules.
struct LegacyRule {
    NatRule rule;
    std::optional<NodePort> port;   // the port it serves; nullopt for a MASQUERADE without --dport
    std::optional<Backend> target;  // DNAT: where it sends the port (port filled in when the rule keeps it)
};

// What a rule is to legacy-iptables.
struct LegacyVerdict {
    // One of the old runtime's, to delete: exactly its shape (see the top of
    // this file): a DNAT in PREROUTING or OUTPUT of one tcp/udp port
    // (`-m tcp|udp --dport N`) to one address a sandbox can have (in one of
    // the bridge's subnets, and neither the bridge's own address nor a
    // subnet's network or broadcast address), or a MASQUERADE in POSTROUTING
    // from 127.0.0.1 to such an address (or out of the bridge). Nothing else.
    std::optional<LegacyRule> legacy;
    // Otherwise, for a rule that looks like one (a DNAT to an address in the
    // bridge's subnets, a MASQUERADE from 127.0.0.1 toward one or out of the
    // bridge): why it is kept ("-m multiport", "DNAT to the bridge's own
    // address 10.8.0.1", ...). Empty for every other rule.
    std::string kept_because;
};
LegacyVerdict classify_legacy(const NatRule& rule, std::string_view bridge, const std::vector<legacy::Subnet>& subnets);

// A rule that looks like one of the old runtime's but is not, and why.
struct KeptRule {
    NatRule rule;
    std::string reason;
};

// What the legacy rules of one port do, against what nodeport maps there.
// "Dead" target: a DNAT target that is not the port's current nodeport
// backend, so every target is dead when nodeport does not map the port (or
// is not loaded): nothing sends traffic there on purpose any more.
struct LegacyPort {
    NodePort port;
    std::vector<LegacyRule> rules;               // in the order iptables evaluates them, chain by chain
    std::map<std::string, std::size_t> by_chain;  // rules per chain
    // The target of the first DNAT rule per chain (PREROUTING: traffic from
    // outside, OUTPUT: the node's own): what iptables actually sends to.
    std::map<std::string, Backend> first_match;
    std::optional<Backend> nodeport_backend;  // nullopt: not mapped (or nodeport not loaded)
    std::vector<Backend> dead_targets;        // distinct, in the order first seen
    // nodeport maps the port and a first match sends it elsewhere.
    bool shadows_nodeport = false;
};

struct LegacySummary {
    std::vector<LegacyPort> ports;        // by protocol and port
    std::vector<LegacyRule> portless;     // MASQUERADE rules without a port
    std::size_t rule_count = 0;           // every legacy rule, duplicates included
};

// Groups the legacy rules by port; `mapped` is nodeport's ports map.
LegacySummary summarize_legacy(const std::vector<LegacyRule>& rules, const std::map<NodePort, Backend>& mapped);

// --- Reading and changing the node's rules: the `iptables` tool ---

// The nat table's rules in CHAIN (every chain when empty), in order: of
// iptables, or of ip6tables for `family` ipv6.
Result<std::vector<NatRule>> read_nat_rules(std::string_view chain = {}, Family family = Family::ipv4);

// The rules of the built-in chains the old runtime appended to: its own,
// and those that look like them but are kept.
struct LegacyScan {
    std::vector<LegacyRule> legacy;
    std::vector<KeptRule> kept;
};
Result<LegacyScan> find_legacy_rules(std::string_view bridge, const std::vector<legacy::Subnet>& subnets);

// Deletes the rules, one copy per entry (a rule listed N times: N copies),
// in one `iptables-restore --noflush` transaction: all of them or, when
// one is not there, none.
Result<void> delete_nat_rules(const std::vector<NatRule>& rules);

}  // namespace nodeport

#pragma GCC visibility pop
