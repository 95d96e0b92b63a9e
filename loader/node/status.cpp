#include "nodeport/status.hpp"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fmt/format.h>
#include <net/if.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <filesystem>
#include <set>
#include <map>
#include <optional>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>

#include "base/libbpf_log.hpp"
#include "base/map_keys.hpp"
#include "base/netns.hpp"
#include "base/pin_dir.hpp"
#include "base/run_tool.hpp"
#include "base/sysctl.hpp"
#include "datapath/node_addrs.hpp"
#include "datapath/pinned_link.hpp"
#include "datapath/tc_attach.hpp"
#include "node/flow_tables.hpp"
#include "node/status_checks.hpp"
#include "nodeport/abi.h"
#include "nodeport/interfaces.hpp"
#include "nodeport/legacy_iptables.hpp"
#include "nodeport/port_table.hpp"
#include "nodeport/sock_end.hpp"

namespace nodeport {
namespace {

// How long status waits for nft: a tool stuck on a lock or a huge ruleset
// must not hang status (the check lands in not_checked instead).
constexpr std::chrono::seconds tool_timeout{10};

std::string or_empty(const char* text) {
    return text ? text : "";
}

// status takes no lock (it only reads, and must answer while a load or
// watch holds it): a link unpinned meanwhile is simply not listed.
Result<std::vector<ProgramStatus>> read_programs(const PinDir& dir) {
    std::vector<ProgramStatus> programs;
    auto links = pinned_links(dir);
    if (!links)
        return std::unexpected(links.error());
    for (const auto& [name, info] : *links) {
        ProgramStatus p;
        p.pin = name;
        p.prog_id = info.prog_id;
        p.link_type = or_empty(libbpf_bpf_link_type_str(bpf_link_type(info.type)));
        if (info.type == BPF_LINK_TYPE_CGROUP) {
            p.cgroup_id = info.cgroup.cgroup_id;
            p.attach_type = or_empty(libbpf_bpf_attach_type_str(bpf_attach_type(info.cgroup.attach_type)));
        } else if (info.type == BPF_LINK_TYPE_TCX) {
            p.ifindex = static_cast<int>(info.tcx.ifindex);
            p.attach_type = or_empty(libbpf_bpf_attach_type_str(bpf_attach_type(info.tcx.attach_type)));
        }
        programs.push_back(std::move(p));
    }
    std::ranges::sort(programs, {}, &ProgramStatus::pin);
    return programs;
}

// The program nodeport's clsact filter runs in one direction; 0 when it is not there.
std::uint32_t clsact_prog_id(int ifindex, bpf_tc_attach_point point) {
    LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = point);
    LIBBPF_OPTS(bpf_tc_opts, opts, .handle = NP_TC_HANDLE, .priority = NP_TC_PRIORITY);
    int rc = bpf_tc_query(&hook, &opts);
    (void)take_libbpf_log();  // a missing filter is an answer here, not an error to explain
    return rc == 0 ? opts.prog_id : 0;
}

// The id behind a tcx link pinned for this interface, when the link is still
// attached to it (a link whose interface went reports ifindex 0).
std::uint32_t tcx_prog_id(const std::vector<ProgramStatus>& programs, std::string_view name, int ifindex) {
    auto pin = tc::link_pin_name(name, ifindex);
    auto it = std::ranges::find(programs, pin, &ProgramStatus::pin);
    return it != programs.end() && it->ifindex == ifindex ? it->prog_id : 0;
}

// The recorded attachments, and the problems of those that no longer work.
Result<std::vector<InterfaceStatus>> read_interfaces(const PinDir& dir, const std::vector<ProgramStatus>& programs,
                                                     const std::vector<NodePort>& mapped, Status& status) {
    auto map = dir.map("tc_attachments");
    if (!map)
        return std::unexpected(map.error());
    auto records = tc::records(map->get());
    if (!records)
        return std::unexpected(records.error());
    auto cookie = netns::current_cookie();
    if (!cookie)
        return std::unexpected(cookie.error());
    // Every mapped port is reachable through every external interface.
    const std::string lost = status_checks::lost_ports(mapped);
    std::vector<InterfaceStatus> out;
    for (const auto& r : *records) {
        InterfaceStatus s;
        s.name = std::string(r.ifname, strnlen(r.ifname, sizeof r.ifname));
        s.ifindex = static_cast<int>(r.ifindex);
        s.mode = tc::mode_of(r);
        s.link = tc::link_of(r);
        if (r.netns_cookie != *cookie) {
            // An ifindex names another interface in another namespace.
            status.not_checked.push_back("interface " + s.name + ": attached from another network namespace; run "
                                         "status there");
            out.push_back(std::move(s));
            continue;
        }
        char now[IF_NAMESIZE] = {};
        bool exists = if_indextoname(r.ifindex, now) != nullptr;
        s.present = exists && s.name == now;
        if (!exists) {
            status.problems.push_back({ProblemKind::missing_interface, std::nullopt,
                                       "interface " + s.name + " (if" + std::to_string(s.ifindex) +
                                           ") that nodeport is attached to no longer exists: " + lost});
        } else if (!*s.present) {
            status.problems.push_back({ProblemKind::missing_interface, std::nullopt,
                                       "interface " + s.name + " (if" + std::to_string(s.ifindex) + ") is now " +
                                           now + ": the interface nodeport was attached to is gone: " + lost});
        } else {
            if (s.mode == TcAttachMode::clsact) {
                s.ingress_prog_id = clsact_prog_id(s.ifindex, BPF_TC_INGRESS);
                s.egress_prog_id = clsact_prog_id(s.ifindex, BPF_TC_EGRESS);
            } else {
                s.ingress_prog_id = tcx_prog_id(programs, tc::ingress_name, s.ifindex);
                s.egress_prog_id = tcx_prog_id(programs, tc::egress_name, s.ifindex);
            }
            if (s.ingress_prog_id == 0 || s.egress_prog_id == 0)
                status.problems.push_back({ProblemKind::tc_detached, std::nullopt,
                                           "interface " + s.name + ": nodeport's TC programs are no longer attached "
                                           "(run load again): " + lost});
        }
        out.push_back(std::move(s));
    }
    std::ranges::sort(out, {}, &InterfaceStatus::name);
    return out;
}

Result<std::vector<IpAddr>> read_node_addrs(const PinDir& dir) {
    auto map = dir.map("node_addrs");
    if (!map)
        return std::unexpected(map.error());
    auto keys = map_keys<np_node_addr>(map->get(), "node_addrs");
    if (!keys)
        return std::unexpected(keys.error());
    std::vector<IpAddr> addrs;
    for (const auto& key : *keys) {
        if (key.family == NP_FAMILY_IPV4) {
            addrs.push_back(Ipv4{key.addr_be[0]});
        } else if (key.family == NP_FAMILY_IPV6) {
            Ipv6 addr;
            std::memcpy(addr.bytes.data(), key.addr_be, sizeof addr.bytes);
            addrs.push_back(addr);
        }
    }
    std::ranges::sort(addrs, [](const IpAddr& a, const IpAddr& b) {
        if (a.index() != b.index())
            return a.index() < b.index();
        if (const auto* v4 = std::get_if<Ipv4>(&a))
            return ntohl(v4->addr_be) < ntohl(std::get<Ipv4>(b).addr_be);
        return std::get<Ipv6>(a) < std::get<Ipv6>(b);
    });
    auto dup = std::ranges::unique(addrs);
    addrs.erase(dup.begin(), dup.end());
    return addrs;
}

// Connections, not entries: each flow has a client-to-backend entry and a
// reply entry; a handshake in `half_open_flows` has one.
Result<std::size_t> count_flows(const PinDir& dir, const FlowTableLayout& table) {
    std::string name(table.name);
    auto map = dir.map(name);
    if (!map)
        return std::unexpected(map.error());
    auto keys = map_keys<np_flow_key>(map->get(), name);
    if (!keys)
        return std::unexpected(keys.error());
    // By their bytes: the key holds arrays (16-byte addresses), which a
    // tuple of members would compare as pointers.
    auto bytes_less = [](const np_flow_key& a, const np_flow_key& b) { return std::memcmp(&a, &b, sizeof a) < 0; };
    auto bytes_equal = [](const np_flow_key& a, const np_flow_key& b) { return std::memcmp(&a, &b, sizeof a) == 0; };
    std::ranges::sort(*keys, bytes_less);
    auto dup = std::ranges::unique(*keys, bytes_equal);  // a walk restarted by a concurrent delete can give a key twice
    return static_cast<std::size_t>(
        std::count_if(keys->begin(), dup.begin(), [one_entry = table.entries_per_flow == 1](const np_flow_key& k) {
            return one_entry || k.dir == NP_FLOW_TO_BACKEND;
        }));
}

// Interfaces the choice in force (recorded_interface_choice) names now that
// nodeport is not attached to: more than it attaches to, or no watch to
// attach one that appeared (or the default route moved). Only in the
// namespace load ran in, where the names mean the same interfaces.
void check_chosen(const PinDir& dir, const np_config& config, const std::vector<NodePort>& mapped, Status& status) {
    auto cookie = netns::current_cookie();
    if (!cookie || config.node_netns_cookie != *cookie) {
        status.not_checked.push_back("chosen interfaces: run status in the network namespace load ran in");
        return;
    }
    auto recorded = recorded_interface_choice(dir);
    if (!recorded) {
        status.not_checked.push_back("chosen interfaces: " + recorded.error().message);
        return;
    }
    if (!*recorded) {
        status.not_checked.push_back("chosen interfaces: no interface choice recorded (loaded by an earlier "
                                     "nodeport; a load records it)");
        return;
    }
    const InterfaceChoice& choice = (*recorded)->choice;
    auto chosen = choose_interfaces(choice);
    if (!chosen) {
        status.not_checked.push_back("chosen interfaces (" + describe(choice) + "): " + chosen.error().message);
        return;
    }
    const std::string why = chosen->size() > NP_MAX_TC_ATTACHMENTS
                                ? fmt::format("{} are chosen and nodeport attaches to at most {}: leave some out "
                                              "with --exclude",
                                              chosen->size(), NP_MAX_TC_ATTACHMENTS)
                                : "run nodeport watch, which attaches chosen interfaces as they appear, or load again";
    for (const auto& name : *chosen) {
        const int ifindex = static_cast<int>(::if_nametoindex(name.c_str()));
        if (std::ranges::any_of(status.interfaces, [&](const InterfaceStatus& i) {
                return i.name == name && i.ifindex == ifindex && i.present.value_or(false);
            }))
            continue;
        status.problems.push_back({ProblemKind::unattached_interface, std::nullopt,
                                   fmt::format("interface {} is chosen ({}) but nodeport is not attached to it ({}): "
                                               "{}",
                                               name, describe(choice), why, status_checks::lost_ports(mapped))});
    }
}

// The targets a killed write recorded and no write has walked since, whose
// node port no longer leads to their backend (a write killed before it
// changed the map left sockets that are right). Only when no writer holds
// the lock: a running write has its own recorded.
void check_pending_walk(const PinDir& dir, const std::vector<Mapping>& mappings, Status& status) {
    auto lock = pin_dir::Lock::take(dir.fd(), std::chrono::milliseconds{0});
    if (!lock)
        return;
    auto pending = SocketEnder::open(dir).pending();
    if (!pending) {
        status.not_checked.push_back("pending socket walk: " + pending.error().message);
        return;
    }
    for (const auto& t : *pending) {
        if (std::ranges::find(mappings, SocketEnder::Target{t.node_port, t.backend}, [](const Mapping& m) {
                return SocketEnder::Target{m.node_port, m.backend};
            }) != mappings.end())
            continue;
        status.problems.push_back(
            {ProblemKind::socket_walk_pending, t.node_port,
             fmt::format("a write was interrupted before it ended the node's {} sockets connected to {}, which "
                         "{} no longer leads to: they may still reach the old backend; the next set, del, sync "
                         "or load ends them",
                         to_string(t.node_port.proto), to_string(t.backend), to_string(t.node_port))});
    }
}

void append(std::vector<Problem>& to, std::vector<Problem> from) {
    to.insert(to.end(), std::make_move_iterator(from.begin()), std::make_move_iterator(from.end()));
}

// The iptables rules acting on the IPv4 mappings' ports, or the ip6tables
// rules on the IPv6 mappings' (`family`).
void check_iptables(const std::vector<NodePort>& mapped, Family family, Status& status) {
    if (mapped.empty())
        return;
    auto rules = read_nat_rules({}, family);
    if (!rules) {
        status.not_checked.push_back(rules.error().message);  // names the tool: "iptables: timed out after 30 s", ...
        return;
    }
    append(status.problems, status_checks::iptables_dnat(*rules, mapped, family == Family::ipv6 ? "ip6tables" : "iptables"));
}

void check_nft(const std::vector<NodePort>& mapped, Status& status) {
    const std::vector<std::string> argv{"nft", "-j", "list", "ruleset"};
    auto result = run_tool(argv, {.input = {}, .timeout = tool_timeout});
    if (!result) {
        status.not_checked.push_back(result.error().errno_value == ENOENT ? "nft: not installed"
                                                                          : result.error().message);
        return;
    }
    if (result->exit_code != 0) {
        status.not_checked.push_back(describe_failure(argv, *result));
        return;
    }
    auto found = status_checks::nft_dnat(result->out, mapped);
    if (!found) {
        status.not_checked.push_back(found.error().message);
        return;
    }
    append(status.problems, std::move(found->problems));
    status.not_checked.insert(status.not_checked.end(), found->not_checked.begin(), found->not_checked.end());
}

// Whether process `pid`, whose executable is named conmon, is rootful
// podman's: run by root (podman's reservation sockets are root's; anyone can
// run a binary named conmon) with podman as its --exit-command.
bool is_podman_conmon(const std::filesystem::path& proc_pid) {
    struct stat st{};
    if (::stat(proc_pid.c_str(), &st) != 0 || st.st_uid != 0)
        return false;
    std::ifstream in(proc_pid / "cmdline", std::ios::binary);
    std::string cmdline((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return status_checks::podman_conmon_cmdline(cmdline);
}

// Every socket inode held open by a process, and that process: the links
// /proc/PID/fd/N -> "socket:[INODE]". A process that exits meanwhile, or
// whose fds cannot be read, is skipped (the error_code overloads throughout:
// the walk races with every process on the node). A socket several processes
// hold is named after podman's conmon when that is one of them.
std::map<std::uint64_t, status_checks::SocketOwner> socket_owners() {
    namespace fs = std::filesystem;
    std::map<std::uint64_t, status_checks::SocketOwner> owners;
    std::error_code ec;
    for (fs::directory_iterator proc("/proc", ec), end; !ec && proc != end; proc.increment(ec)) {
        const std::string pid_text = proc->path().filename();
        int pid = 0;
        if (std::from_chars(pid_text.data(), pid_text.data() + pid_text.size(), pid).ec != std::errc{})
            continue;
        // The executable's name, not /proc/PID/comm: any process can set its comm.
        std::error_code exe_ec;
        const std::string exe = fs::read_symlink(proc->path() / "exe", exe_ec).filename();
        const bool podman_conmon = exe == "conmon" && is_podman_conmon(proc->path());
        std::error_code fd_ec;
        for (fs::directory_iterator fd(proc->path() / "fd", fd_ec); !fd_ec && fd != end; fd.increment(fd_ec)) {
            std::error_code link_ec;
            const std::string target = fs::read_symlink(fd->path(), link_ec);
            std::uint64_t inode = 0;
            if (link_ec || !target.starts_with("socket:[") ||
                std::from_chars(target.data() + 8, target.data() + target.size(), inode).ec != std::errc{})
                continue;
            const status_checks::SocketOwner owner{pid, exe, podman_conmon};
            auto [it, added] = owners.try_emplace(inode, owner);
            if (!added && podman_conmon)
                it->second = owner;
        }
    }
    return owners;
}

void check_listeners(const std::vector<NodePort>& mapped, Status& status) {
    std::optional<std::map<std::uint64_t, status_checks::SocketOwner>> owners;  // read once, when first needed
    const status_checks::SocketOwnerOf owner_of = [&](std::uint64_t inode) -> std::optional<status_checks::SocketOwner> {
        if (!owners)
            owners = socket_owners();
        auto it = owners->find(inode);
        if (it == owners->end())
            return std::nullopt;
        return it->second;
    };
    for (auto [file, proto] : {std::pair{"tcp", Proto::tcp}, std::pair{"tcp6", Proto::tcp},
                               std::pair{"udp", Proto::udp}, std::pair{"udp6", Proto::udp}}) {
        std::ifstream in(std::string("/proc/net/") + file);
        if (!in)
            continue;  // no IPv6 on this node
        std::stringstream text;
        text << in.rdbuf();
        append(status.problems, status_checks::listeners(text.str(), proto, mapped, owner_of));
    }
}

}  // namespace

std::string_view to_string(ProblemKind kind) {
    switch (kind) {
#define NODEPORT_PROBLEM_KIND_CASE(name) \
    case ProblemKind::name:              \
        return #name;
        NODEPORT_PROBLEM_KINDS(NODEPORT_PROBLEM_KIND_CASE)
#undef NODEPORT_PROBLEM_KIND_CASE
    }
    return "?";
}

Result<Status> read_status(const std::filesystem::path& pin_dir) {
    return pin_dir::with_opened(pin_dir, [](const PinDir& dir) { return read_status(dir); });
}

Result<Status> read_status(const PinDir& dir) {
    auto log_capture = capture_libbpf_log();  // libbpf would print a kernel message for every filter it does not find
    Status status;
    // Only node_config's absence means "not loaded" (ENOENT, naming the
    // directory); opening refused pins of another map ABI.
    auto config = dir.config();
    if (!config)
        return std::unexpected(config.error());
    if (config->abi_version == 0)
        return std::unexpected(Error{ENOENT,
                                     "nodeport is not loaded at " + dir.path().string() + " (no node_config there)",
                                     ErrorKind::not_loaded, {}});
    status.abi = config->abi_version;
    auto table = PortTable::open(dir);
    if (!table)
        return std::unexpected(table.error());
    auto mappings = table->list();
    if (!mappings)
        return std::unexpected(mappings.error());
    // Node ports, each once whatever its families (`mapped`), and those of
    // each family's mappings, for the rules of that family's tables.
    std::set<NodePort> ports;
    std::vector<NodePort> mapped4, mapped6;
    for (const auto& m : *mappings) {
        ports.insert(m.node_port);
        (m.family() == Family::ipv4 ? mapped4 : mapped6).push_back(m.node_port);
    }
    const std::vector<NodePort> mapped(ports.begin(), ports.end());
    status.ports = ports.size();

    auto programs = read_programs(dir);
    if (!programs)
        return std::unexpected(programs.error());
    status.programs = std::move(*programs);
    auto interfaces = read_interfaces(dir, status.programs, mapped, status);
    if (!interfaces)
        return std::unexpected(interfaces.error());
    status.interfaces = std::move(*interfaces);
    check_chosen(dir, *config, mapped, status);
    auto addrs = read_node_addrs(dir);
    if (!addrs)
        return std::unexpected(addrs.error());
    status.node_addrs = std::move(*addrs);
    for (const auto& table : flow_tables) {
        auto n = count_flows(dir, table);
        if (!n)
            return std::unexpected(n.error());
        status.flows.*table.count = *n;
    }
    auto ip_forward = read_ip_forward();
    if (!ip_forward)
        status.not_checked.push_back("ip_forward: " + ip_forward.error().message);
    status.ip_forward = ip_forward.value_or(false);
    if (ip_forward && !status.ip_forward && !status.interfaces.empty())
        status.problems.push_back({ProblemKind::ip_forward_off, std::nullopt,
                                   "net.ipv4.ip_forward is 0: the kernel drops every packet the TC programs "
                                   "translate (sysctl -w net.ipv4.ip_forward=1)"});
    // A node without IPv6 has no such sysctl, and nothing to say about it.
    // IPv6 forwarding is off on many nodes that serve IPv4 only: a problem
    // only once a port has an IPv6 backend.
    if (ipv6_off_reason().empty()) {
        auto forwarding = read_ipv6_forwarding();
        if (!forwarding)
            status.not_checked.push_back("ipv6 forwarding: " + forwarding.error().message);
        status.ipv6_forwarding = forwarding.value_or(false);
        if (forwarding && !status.ipv6_forwarding && !status.interfaces.empty() && !mapped6.empty())
            status.problems.push_back({ProblemKind::ipv6_forwarding_off, std::nullopt,
                                       "net.ipv6.conf.all.forwarding is 0: the kernel drops every IPv6 packet the TC "
                                       "programs translate (sysctl -w net.ipv6.conf.all.forwarding=1)"});
    }

    check_pending_walk(dir, *mappings, status);

    // What else on the node acts on the mapped ports' traffic.
    check_iptables(mapped4, Family::ipv4, status);
    check_iptables(mapped6, Family::ipv6, status);
    check_nft(mapped, status);
    check_listeners(mapped, status);
    return status;
}

}  // namespace nodeport
