// The pure halves of `status`'s checks for what can make a mapped port
// unreachable: reading the text of iptables, nft and /proc/net, without
// running anything, so they are unit-tested on real output.
#pragma once

#include <string_view>
#include <vector>

#include "nodeport/legacy_iptables.hpp"
#include "nodeport/result.hpp"
#include "nodeport/status.hpp"
#include "nodeport/types.hpp"

namespace nodeport::status_checks {

// iptables nat rules that DNAT (or REDIRECT) a mapped port, in any chain:
// one problem per distinct rule and port, duplicates counted in the detail.
std::vector<Problem> iptables_dnat(const std::vector<NatRule>& rules, const std::vector<NodePort>& mapped);

// `nft -j list ruleset` rules with a dnat or redirect statement whose
// tcp/udp/th dport matches select a mapped port. Rules iptables-nft wrote
// carry an `xt` target instead and are reported through iptables_dnat.
// Other matches in the rule (addresses, interfaces) are not weighed: such a
// rule may act on the port's traffic, so it is reported.
Result<std::vector<Problem>> nft_dnat(std::string_view json_text, const std::vector<NodePort>& mapped);

// Sockets of /proc/net/{tcp,tcp6,udp,udp6} (the reading process's network
// namespace) on a mapped port: TCP in LISTEN, UDP in any state (a bound UDP
// socket owns the datagrams to its port, which the TC program then leaves
// alone).
std::vector<Problem> listeners(std::string_view proc_net_text, Proto proto, const std::vector<NodePort>& mapped);

}  // namespace nodeport::status_checks
