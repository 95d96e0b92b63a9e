// The pure halves of `status`'s checks for what can make a mapped port
// unreachable: reading the text of iptables, nft and /proc/net, without
// running anything, so they are unit-tested on real output.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "nodeport/legacy_iptables.hpp"
#include "nodeport/result.hpp"
#include "nodeport/status.hpp"
#include "nodeport/types.hpp"

namespace nodeport::status_checks {

// What losing an interface costs: "2 mapped ports cannot be reached through
// it: tcp/6667, udp/5353"; past `shown` ports, the first `shown` and
// "and N more" (65,535 ports must not make a line of hundreds of KB).
std::string lost_ports(const std::vector<NodePort>& mapped, std::size_t shown = 5);

// iptables nat rules that DNAT (or REDIRECT) a mapped port, in any chain:
// one problem per distinct rule and port, duplicates counted in the detail;
// a rule without a port match takes every mapped port (of its protocol, if
// it has one) and is one problem with no port. `tool` names where the rules
// came from in the detail: iptables, or ip6tables for the IPv6 mappings.
std::vector<Problem> iptables_dnat(const std::vector<NatRule>& rules, const std::vector<NodePort>& mapped,
                                   std::string_view tool = "iptables");

// `nft -j list ruleset` rules with a dnat or redirect statement that select a
// mapped port: through their tcp/udp/th dport matches, or an inline map of
// the statement keyed by dport (`dnat to tcp dport map { 6667 : ... }`),
// within what `meta l4proto` lets through. A rule with neither takes every
// port: one problem with no port. A rule whose selection cannot be read (a
// named set or map: `tcp dport @s`, `dnat to tcp dport map @m`) lands in
// not_checked. Rules iptables-nft wrote carry an `xt` target instead and
// are reported through iptables_dnat. Other matches in the rule (addresses,
// interfaces) are not weighed: such a rule may act on the port's traffic,
// so it is reported.
struct NftFindings {
    std::vector<Problem> problems;
    std::vector<std::string> not_checked;
};
Result<NftFindings> nft_dnat(std::string_view json_text, const std::vector<NodePort>& mapped);

// The process holding a socket, found by the socket's inode.
struct SocketOwner {
    int pid;
    std::string comm;  // its executable's file name (/proc/PID/exe)
    // Rootful podman's conmon: an executable named conmon, run by root,
    // whose command line has podman as its --exit-command
    // (podman_conmon_cmdline). Not just any executable named conmon.
    bool podman_conmon = false;
};

// Whether a conmon command line (/proc/PID/cmdline: arguments separated by
// NULs) is podman's: podman starts conmon with `--exit-command
// /usr/bin/podman` (its own path) to clean up when the container exits;
// CRI-O and a stray binary of that name do not.
bool podman_conmon_cmdline(std::string_view cmdline);
using SocketOwnerOf = std::function<std::optional<SocketOwner>(std::uint64_t inode)>;

// Sockets of /proc/net/{tcp,tcp6,udp,udp6} (the reading process's network
// namespace) on a mapped port: TCP in LISTEN, UDP unconnected (no remote
// address; a connected one only takes its peer's datagrams). The mapping wins
// over such a socket, so the service behind it never gets the port's traffic:
// usually two owners for one port. The problem names the process holding the
// socket when `owner_of` finds it. podman's conmon (SocketOwner::podman_conmon)
// is not a problem: rootful podman holds every port it publishes that way, so
// that nothing else can take it, and wants the container to get the traffic.
std::vector<Problem> listeners(std::string_view proc_net_text, Proto proto, const std::vector<NodePort>& mapped,
                               const SocketOwnerOf& owner_of = {});

}  // namespace nodeport::status_checks
