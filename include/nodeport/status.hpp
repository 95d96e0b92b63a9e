// What a loaded nodeport is doing, and what on the node can make a mapped
// port unreachable despite it (`nodeport status`). Reads only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "nodeport/datapath_types.hpp"
#include "nodeport/pin_dir.hpp"
#include "nodeport/result.hpp"
#include "nodeport/types.hpp"

// Exported from libnodeport.so (the rest of the library is hidden).
#pragma GCC visibility push(default)

namespace nodeport {

// A pinned link under <pin-dir>/links/.
struct ProgramStatus {
    std::string pin;              // np_connect4, np_tc_ingress_if3, np_end_udp, ...
    std::uint32_t prog_id = 0;    // the program running behind the link now
    std::string link_type;        // libbpf's name: "cgroup", "tcx", "iter"
    std::string attach_type;      // "cgroup_inet4_connect", "tcx_ingress", ... ("" for iter)
    std::uint64_t cgroup_id = 0;  // cgroup links
    int ifindex = 0;              // tcx links; 0 once their interface is gone
};

// A tc_attachments record, checked against the interfaces of this namespace.
struct InterfaceStatus {
    std::string name;  // as recorded at load
    int ifindex = 0;
    TcAttachMode mode = TcAttachMode::tcx;
    LinkKind link = LinkKind::ethernet;  // which build of the programs it was given
    // The ifindex still exists in this network namespace with the same name.
    // nullopt: not checked (recorded from another network namespace).
    std::optional<bool> present;
    std::uint32_t ingress_prog_id = 0;  // 0: not attached (or not checked)
    std::uint32_t egress_prog_id = 0;
};

struct FlowCounts {
    std::size_t tcp = 0;         // `flows`: TCP from SYN to close
    std::size_t tcp_half_open = 0;  // `half_open_flows`: TCP handshakes
    std::size_t udp = 0;         // `udp_flows`
};

// Every kind of problem `status` finds: the one list the enum, its names
// (to_string) and every reader (the metrics' zeros included) come from.
#define NODEPORT_PROBLEM_KINDS(X)                                                                           \
    X(iptables_dnat)        /* an iptables nat rule DNATs/REDIRECTs a mapped port */                     \
    X(nft_dnat)             /* an nft rule does */                                                       \
    X(listener)             /* a node socket is bound to a mapped port */                                \
    X(missing_interface)    /* a recorded interface is gone, or its index has another name */            \
    X(tc_detached)          /* the interface is there, nodeport's TC program is not */                   \
    X(ip_forward_off)       /* external interfaces attached, net.ipv4.ip_forward = 0 */                  \
    X(ipv6_forwarding_off)  /* the same for IPv6 mappings: net.ipv6.conf.all.forwarding = 0 */           \
    X(socket_walk_pending)  /* a write was killed before it ended the node's sockets to what it replaced */ \
    X(unattached_interface) /* the interface choice in force names an interface nodeport is not attached to */

#define NODEPORT_PROBLEM_KIND(name) name,
enum class ProblemKind { NODEPORT_PROBLEM_KINDS(NODEPORT_PROBLEM_KIND) };
inline constexpr ProblemKind kProblemKinds[] = {
#undef NODEPORT_PROBLEM_KIND
#define NODEPORT_PROBLEM_KIND(name) ProblemKind::name,
    NODEPORT_PROBLEM_KINDS(NODEPORT_PROBLEM_KIND)};
#undef NODEPORT_PROBLEM_KIND
std::string_view to_string(ProblemKind kind);  // "iptables_dnat", ...

struct Problem {
    ProblemKind kind = ProblemKind::iptables_dnat;
    std::optional<NodePort> port;  // the mapped port it concerns, when it concerns one (not: a rule taking every port)
    std::string detail;            // one line for people; may quote rule text from the node
};

struct Status {
    std::uint32_t abi = 0;  // the map ABI recorded in node_config
    std::vector<ProgramStatus> programs;
    std::vector<InterfaceStatus> interfaces;
    std::vector<IpAddr> node_addrs;  // IPv4 first
    bool ip_forward = false;
    bool ipv6_forwarding = false;    // net.ipv6.conf.all.forwarding; false too when the node has no IPv6
    std::size_t ports = 0;  // mapped (protocol, port) pairs
    FlowCounts flows;       // flows recorded (expired ones the LRU has not evicted yet included)
    std::vector<Problem> problems;       // empty: healthy
    // Checks that could not run or conclude, and why (no nft binary, a tool
    // that timed out, an nft rule selecting ports through a named set).
    std::vector<std::string> not_checked;
};

// Reads everything, without waiting for the pin directory's lock (a link
// unpinned meanwhile is left out); it tries the lock once, only to tell a
// socket walk an interrupted write left from one a write is doing now. Not loaded at `pin_dir` (no node_config): an error
// with errno ENOENT whose message names the directory. Checks that need a
// tool that is missing, fails or times out land in `not_checked`, not in the
// error.
Result<Status> read_status(const std::filesystem::path& pin_dir);
Result<Status> read_status(const PinDir& pin_dir);

}  // namespace nodeport

#pragma GCC visibility pop
