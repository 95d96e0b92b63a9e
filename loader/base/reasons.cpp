#include "nodeport/reasons.hpp"

#include <array>

namespace nodeport {
namespace {

using enum ReasonPath;

// In id order; the static_assert below keeps it complete and in order when
// abi.h gains a reason.
constexpr std::array<ReasonInfo, NP_REASON_COUNT> table = {{
    {NP_REASON_NOT_IPV4_TCP_UDP, "not_ipv4_tcp_udp", external,
     "not TCP or UDP over IPv4 or IPv6 (ARP, IPv6 neighbour discovery, ICMP and ICMPv6 echo and whatever else is "
     "not an error): not for nodeport; normal (the name is older than IPv6 support)"},
    {NP_REASON_IP_OPTIONS, "ip_options", external,
     "IPv4 with options, or IPv6 with extension headers nodeport does not walk (more than 4, AH, ESP, a routing "
     "header with segments left): never translated (rare; a client's odd stack)"},
    {NP_REASON_FRAGMENT, "fragment", external,
     "a later IP fragment whose first fragment was not translated or has not arrived yet: passed untouched (the "
     "datagram is lost if it was a client's to a node port)"},
    {NP_REASON_TRUNCATED, "truncated", external, "shorter than its IP and TCP/UDP headers"},
    {NP_REASON_NOT_NODE_ADDR, "not_node_addr", external,
     "a new flow to an address that is not the node's (see node_addrs; run refresh after an address change)"},
    {NP_REASON_PORT_NOT_MAPPED, "port_not_mapped", external,
     "a new flow to a node address on a port nodeport does not map (the node's own services, scans)"},
    {NP_REASON_NOT_FLOW_START, "not_flow_start", external,
     "TCP without a flow that is not a SYN and is not picked up (a FIN, an RST, a SYN-ACK, or a segment a "
     "socket of the node owns): the node's own connections"},
    {NP_REASON_FLOW_EXPIRED, "flow_expired", external,
     "a late packet of a closed TCP flow past its lifetime (counted by map ABI 2 only: closed flows now end at "
     "their final ACK)"},
    {NP_REASON_UDP_ANSWERS_NODE, "udp_answers_node", external,
     "UDP answering the node: it sent to the sender from that port within the UDP idle timeout, or a node "
     "socket is connected to the sender; normal"},
    {NP_REASON_FLOW_TABLE_FULL, "flow_table_full", external,
     "the flow table refused a new flow: the connection is not translated; more flows than the tables hold"},
    {NP_REASON_FLOW_CONFLICT, "flow_conflict", external,
     "the new flow's reply tuple belongs to another live flow (a client port reused through another node port "
     "to the same backend)"},
    {NP_REASON_REWRITE_FAILED, "rewrite_failed", external, "a checksum or store helper failed: a bug, report it"},
    {NP_REASON_REPLY_NO_FLOW, "reply_no_flow", reply, "leaving packet of no nodeport flow: the node's own traffic; normal"},
    {NP_REASON_REPLY_EXPIRED, "reply_expired", reply, "a reply of a flow past its lifetime (idle too long)"},
    {NP_REASON_REPLY_NOT_OURS, "reply_not_ours", reply,
     "a SYN-ACK on the tuple of a flow that did not wait for one, or a packet other than a SYN-ACK on the tuple "
     "of a handshake: a connection nodeport did not translate"},
    {NP_REASON_REPLY_REWRITE_FAILED, "reply_rewrite_failed", reply,
     "a checksum or store helper failed on a reply: a bug, report it"},
    {NP_REASON_LOCAL_PORT_NOT_MAPPED, "local_port_not_mapped", local,
     "connect or send to a port nodeport does not map: most of the node's connections; normal"},
    {NP_REASON_LOCAL_NOT_NODE_DEST, "local_not_node_dest", local,
     "connect or send to a mapped port on an address that is not the node's (or 127/8 from a sandbox)"},
    {NP_REASON_LOCAL_NO_STORAGE, "local_no_storage", local,
     "translated, but no socket storage: the app sees the backend's address and set cannot end the socket "
     "(out of memory)"},
    {NP_REASON_ICMP_NO_FLOW, "icmp_no_flow", external,
     "an ICMP error (unreachable, fragmentation needed, time exceeded) about a packet of no nodeport flow: about "
     "the node's own traffic; normal"},
    {NP_REASON_TCP_OUT_OF_WINDOW, "tcp_out_of_window", external,
     "a TCP RST or SYN outside its flow's sequence window (conntrack: INVALID), or an RST answering no SYN: "
     "passed untranslated, the connection unchanged; blind RSTs or SYNs from an off-path sender"},
}};

constexpr bool complete_and_in_order() {
    for (std::size_t i = 0; i < table.size(); ++i)
        if (table[i].id != static_cast<np_reason>(i) || table[i].name.empty() || table[i].help.empty())
            return false;
    return true;
}
static_assert(complete_and_in_order(), "reasons.cpp: one entry per np_reason, in id order (see abi.h)");

}  // namespace

std::string_view to_string(ReasonPath path) {
    switch (path) {
    case ReasonPath::external:
        return "external";
    case ReasonPath::reply:
        return "reply";
    case ReasonPath::local:
        break;
    }
    return "local";
}

std::span<const ReasonInfo> reasons() { return table; }

std::optional<np_reason> reason_by_name(std::string_view name) {
    for (const auto& r : table)
        if (r.name == name)
            return r.id;
    return std::nullopt;
}

}  // namespace nodeport
