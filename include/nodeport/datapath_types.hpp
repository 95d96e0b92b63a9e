// The datapath's value types: what load, unload and refresh take and
// report, and the checks of them that need no kernel (the CLI, nodeport-cni
// and the fuzzers run them). The operations are in datapath.hpp.
#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "nodeport/abi.h"
#include "nodeport/lock_wait.hpp"
#include "nodeport/result.hpp"
#include "nodeport/sock_end.hpp"
#include "nodeport/types.hpp"

// Exported from libnodeport.so (the rest of the library is hidden).
#pragma GCC visibility push(default)

namespace nodeport {

inline const std::filesystem::path default_pin_dir = "/sys/fs/bpf/nodeport";

struct NodeAddr {
    IpAddr addr;
    std::string interface;  // empty when given by hand
};

// How the TC programs are attached to an interface.
enum class TcAttachMode {
    automatic,  // tcx where the kernel has it (Linux >= 6.6), clsact otherwise
    tcx,        // pinned tcx links
    clsact,     // filters on a clsact qdisc (created when missing, removed when nodeport's were the last)
};
std::string_view to_string(TcAttachMode mode);  // "auto", "tcx", "clsact": what --tc-attach takes

// How a client's packet goes on once its destination is the backend.
enum class Forwarding {
    kernel,  // the kernel routes it (IP forward path, netfilter sees it)
    fib,     // bpf_fib_lookup + bpf_redirect_neigh from the TC program; conntrack never
             // sees the client's packets, so a FORWARD rule dropping INVALID drops the replies
};

// How long the external path keeps a flow (bpf/flows.bpf.h); the defaults
// (abi.h) are conntrack's. A TCP RST ends its flow at once.
struct FlowTimeouts {
    std::chrono::seconds tcp_established{NP_DEFAULT_TCP_ESTABLISHED_S};  // idle
    std::chrono::seconds tcp_syn{NP_DEFAULT_TCP_SYN_S};                  // a SYN the backend did not answer
    std::chrono::seconds tcp_closing{NP_DEFAULT_TCP_CLOSING_S};  // idle when half closed or picked up
    std::chrono::seconds udp{NP_DEFAULT_UDP_IDLE_S};             // idle
};

// What an interface carries before the IPv4 header, which decides the build
// of the TC programs it gets (bpf/tc.bpf.c).
enum class LinkKind {
    ethernet,  // an Ethernet header: veth, NICs, bridges, bonds, VLAN devices, gretap, vxlan
    l3,        // none, the IP packet itself: WireGuard, tun, ipip, sit, GRE, ppp
};
std::string_view to_string(LinkKind kind);  // "ethernet", "l3"

struct TcAttachment {
    std::string interface;  // its name when it was attached
    int ifindex = 0;
    TcAttachMode mode = TcAttachMode::tcx;
    LinkKind link = LinkKind::ethernet;
};

// How the external interfaces are chosen: what load's --iface, --exclude and
// --local-only say (interfaces.hpp chooses them).
struct InterfaceChoice {
    enum class Kind {
        none,           // local forwarding only
        named,          // exactly `names` (those that exist now)
        all,            // every interface but loopback, ports of another device, and `exclude`
        default_route,  // the interface of the IPv4 default route
    };
    Kind kind = Kind::default_route;
    std::vector<std::string> names;
    // fnmatch(3) patterns of interface names `all` leaves out, e.g. the
    // sandboxes' bridge "br0", or "cali*".
    std::vector<std::string> exclude;
    bool operator==(const InterfaceChoice&) const = default;
};

struct LoadOptions {
    std::filesystem::path pin_dir = default_pin_dir;
    // cgroup v2 directory whose sockets get the local-forwarding hooks.
    // nullopt: create and pin the maps, attach nothing (tests, later attach).
    std::optional<std::filesystem::path> cgroup;
    // The node's addresses. Empty: every address of the interfaces of the
    // calling thread's network namespace but loopback and IPv6 link-local.
    std::vector<IpAddr> node_ips;
    // External interfaces for the TC programs; empty: none (local forwarding only).
    std::vector<std::string> interfaces;
    // How `interfaces` were chosen, recorded in the pin directory for `watch`
    // (which follows it when given no interface options) and `status` (which
    // names a chosen interface left unattached). nullopt: exactly
    // `interfaces` (named; none when empty).
    std::optional<InterfaceChoice> interface_choice;
    TcAttachMode tc_attach = TcAttachMode::automatic;
    Forwarding forwarding = Forwarding::kernel;
    FlowTimeouts timeouts;
    // How long to wait for another writer's lock on the pin directory.
    std::chrono::milliseconds lock_wait = default_lock_wait;
};

// A load that found the maps of an older nodeport and moved them to this
// build's layout (entries kept, programs switched in place).
struct MigrationReport {
    unsigned from_abi = 0;
    std::size_t mappings = 0;  // entries of `ports` converted (from ABI 1; 0 when its layout was kept)
    std::size_t flows = 0;     // live TCP and UDP flows carried over (from ABI 1 and 2)
};

struct LoadReport {
    bool reused_maps = false;        // pinned maps from an earlier load were kept, entries and all
    std::vector<NodeAddr> node_addrs;
    std::vector<TcAttachment> interfaces;
    // Why the node's sockets cannot be ended on a remap (a kernel without
    // bpf_sock_destroy); empty when they can. Not an error.
    std::string socket_ending_unavailable;
    std::optional<MigrationReport> migrated;
    // The node sockets ended for a write that was killed before it ended
    // them itself (SocketEnder::finish); `resumed` 0: there was none.
    EndedSockets resumed_walk;
    // Why the node serves no IPv6 (the kernel or its network namespace runs
    // without it); empty when it does. IPv4 is served either way. Not an error.
    std::string ipv6_off;
};

// What unload did, for people: each line names one thing.
struct UnloadReport {
    std::vector<std::string> clsact_interfaces;  // whose clsact filters were removed
    std::size_t links = 0;                       // pinned links detached (cgroup hooks, tcx, iterators)
    std::size_t maps = 0;                        // maps unpinned
    std::vector<std::string> left;               // what could not be reached, and why (a namespace that is gone)
};

// What load checks first, as the CLI checks its options (the library is the
// trust boundary for callers that fill LoadOptions themselves): node
// addresses as parse_node_ip takes them and each once, interface names the
// kernel takes, each once and at most NP_MAX_TC_ATTACHMENTS, flow timeouts of
// 1 s to 30 days, a lock wait not negative. load and refresh refuse what
// fails with EINVAL ("bad input: FIELD: ...") before anything changes.
std::expected<void, InputError> check_load_options(const LoadOptions& options);
// The longest flow timeout load takes (conntrack's longest default,
// established TCP, is 5 days); the CLI's --*-timeout options take the same.
inline constexpr std::chrono::seconds max_flow_timeout{30 * 24 * 3600};
// What the kernel takes as an interface name (dev_valid_name): 1 to 15
// bytes, not "." or "..", no '/', ':' or blank; nor, here, anything
// unprintable. A pattern (--exclude, fnmatch) may also hold ':', '.' and "..".
bool valid_interface_name(std::string_view name);
bool valid_interface_pattern(std::string_view pattern);
// Interface options as load and watch take them, without asking the kernel:
// at most NP_MAX_TC_ATTACHMENTS names and NP_MAX_IFACE_NAMES patterns, each
// well formed and given once, names only for Kind::named and patterns only
// for Kind::all. The error names the field (iface, exclude). The interfaces
// themselves are checked by check_interfaces_here (interfaces.hpp).
std::expected<void, InputError> check_interface_choice(const InterfaceChoice& choice);
std::expected<void, InputError> check_node_ips(const std::vector<IpAddr>& node_ips);

}  // namespace nodeport

#pragma GCC visibility pop
