// `explain`: the decision, the way to the backend and what else acts on the
// port, put together into one verdict (nodeport/explain.hpp).
#include "nodeport/explain.hpp"

#include <arpa/inet.h>
#include <fmt/format.h>

#include <algorithm>

#include "base/netns.hpp"
#include "base/pin_dir.hpp"
#include "explain/decision.hpp"
#include "explain/way.hpp"
#include "nodeport/datapath.hpp"
#include "nodeport/port_table.hpp"
#include "nodeport/reasons.hpp"

namespace nodeport {
namespace {

using namespace explain_parts;

// Documentation addresses (RFC 5737's TEST-NET-1, RFC 3849): no real client,
// and no flow of one.
constexpr std::uint32_t documentation_client = 0xc000020a;  // 192.0.2.10
constexpr std::uint16_t first_client_port = 45678;

IpAddr documentation_client_of(Family family) {
    if (family == Family::ipv6)
        return *parse_ipv6("2001:db8::10", "client");
    return Ipv4{htonl(documentation_client)};
}

bool is_loopback(const IpAddr& addr) {
    if (const auto* v4 = std::get_if<Ipv4>(&addr))
        return (ntohl(v4->addr_be) >> 24) == 127;
    const auto& b = std::get<Ipv6>(addr).bytes;
    return std::all_of(b.begin(), b.end() - 1, [](std::uint8_t x) { return x == 0; }) && b.back() == 1;
}

// A source port of `client` that no flow of the node port uses, so the
// decision is a new connection's.
std::uint16_t unused_client_port(const std::vector<Flow>& flows, const IpAddr& client) {
    std::uint16_t port = first_client_port;
    while (std::ranges::any_of(flows, [&](const Flow& f) { return f.client == Backend{client, port}; }))
        ++port;
    return port;
}

// Where a client of `family` outside the node sends by default: the first
// node address of that family on an interface the TC programs are attached
// to, else the first one of that family; none: an error naming --to.
Result<IpAddr> external_addr(const Status& status, Family family) {
    const auto is_node_addr = [&](const IpAddr& addr) {
        return std::ranges::find(status.node_addrs, addr) != status.node_addrs.end();
    };
    if (auto found = discover_node_addrs())
        for (const auto& a : *found)
            if (family_of(a.addr) == family && is_node_addr(a.addr) &&
                std::ranges::any_of(status.interfaces, [&](const auto& i) { return i.name == a.interface; }))
                return a.addr;
    for (const auto& addr : status.node_addrs)
        if (family_of(addr) == family)
            return addr;
    return plain_error(fmt::format("explain: the node has no {} address recorded (nodeport refresh): give --to",
                                   family == Family::ipv6 ? "IPv6" : "IPv4"));
}

// What status found about this port: a problem of the port, or of every
// port (a DNAT rule without a port match, forwarding off).
std::vector<Problem> problems_of(const Status& status, NodePort node_port) {
    std::vector<Problem> out;
    for (const auto& p : status.problems)
        if (!p.port || *p.port == node_port)
            out.push_back(p);
    return out;
}

std::string reason_text(std::string_view name) {
    auto id = reason_by_name(name);
    if (!id)
        return name.empty() ? "no reason counted" : std::string(name);
    return fmt::format("{}: {}", name, reasons()[*id].help);
}

// The first cause that keeps a client as given from a live backend; "" when
// none does.
std::string first_cause(const Explanation& e, const Status& status) {
    const auto& d = e.decision;
    if (!d.translated)
        return fmt::format("{} does not translate it: {}", d.external ? "np_tc_ingress" : "the socket hooks",
                           reason_text(d.reason));
    for (const auto& p : e.problems)
        if (p.kind == ProblemKind::iptables_dnat || p.kind == ProblemKind::nft_dnat)
            return p.detail;
    if (d.external && status.interfaces.empty())
        return "nodeport's TC programs are attached to no interface (loaded --local-only): clients outside the "
               "node are not translated";
    const ProblemKind forwarding_off =
        family_of(e.to) == Family::ipv6 ? ProblemKind::ipv6_forwarding_off : ProblemKind::ip_forward_off;
    if (d.external)
        for (const auto& p : e.problems)
            if (p.kind == forwarding_off)
                return p.detail;
    if (e.route && e.route->dev.empty())
        return fmt::format("the node has no route to backend {}: {}", to_string(*d.backend), e.route->error);
    if (!e.probe)
        return "";
    const auto& probe = *e.probe;
    const std::string backend = to_string(probe.backend);
    switch (probe.outcome) {
    case ProbeOutcome::answered:
        return "";
    case ProbeOutcome::refused:
        return fmt::format("backend {} refused the {}", backend,
                           e.node_port.proto == Proto::tcp ? "connection" : "datagram (ICMP port unreachable)");
    case ProbeOutcome::unreachable:
        return fmt::format("backend {} is unreachable: {}", backend, probe.detail);
    case ProbeOutcome::no_answer:
        if (e.node_port.proto == Proto::udp)
            return "";  // a UDP service need not answer an empty datagram
        {
            std::string cause = fmt::format("backend {} did not answer within {:.0f} s", backend,
                                            std::chrono::duration<double>(probe.took).count());
            if (e.route && (e.route->neighbour == "FAILED" || e.route->neighbour == "INCOMPLETE"))
                cause += fmt::format(": its neighbour entry on {} is {}, the sandbox looks gone", e.route->dev,
                                     e.route->neighbour);
            return cause;
        }
    }
    return "";
}

}  // namespace

std::string_view to_string(ProbeOutcome outcome) {
    switch (outcome) {
    case ProbeOutcome::answered:
        return "answered";
    case ProbeOutcome::refused:
        return "refused";
    case ProbeOutcome::no_answer:
        return "no_answer";
    case ProbeOutcome::unreachable:
        return "unreachable";
    }
    return "?";
}

Result<Explanation> explain(const std::filesystem::path& pin_dir, const ExplainRequest& request) {
    auto opened = PinDir::open(pin_dir);
    if (!opened)
        return std::unexpected(opened.error());
    const PinDir& dir = *opened;
    if (auto ok = netns::check_loaded_here(dir, "explain"); !ok)
        return std::unexpected(ok.error());
    auto table = PortTable::open(dir);
    if (!table)
        return std::unexpected(table.error());
    auto mapping = table->get(request.node_port);
    if (!mapping)
        return std::unexpected(mapping.error());
    auto status = read_status(dir);
    if (!status)
        return std::unexpected(status.error());
    auto flows = list_flows(dir);
    if (!flows)
        return std::unexpected(flows.error());

    Explanation e;
    e.node_port = request.node_port;
    // One family for the client, the address it sends to and the mapping it
    // reaches: the one given, else IPv4.
    const Family family = request.from ? family_of(*request.from)
                          : request.to ? family_of(*request.to)
                                       : Family::ipv4;
    if (request.from && request.to && family_of(*request.to) != family)
        return std::unexpected(Error{EINVAL, "explain: --from and --to are of different families (no NAT46/64)",
                                     ErrorKind::bad_input, "to"});
    if (auto same = std::ranges::find(*mapping, family, &Mapping::family); same != mapping->end())
        e.mapping = *same;
    const IpAddr client = request.from.value_or(documentation_client_of(family));
    std::erase_if(*flows, [&](const Flow& f) {
        return f.client.addr != client || f.proto != request.node_port.proto || f.node.port != request.node_port.port;
    });
    e.from = {client, request.from_port.value_or(unused_client_port(*flows, client))};
    if (request.from_port)
        std::erase_if(*flows, [&](const Flow& f) { return f.client.port != *request.from_port; });
    e.flows = std::move(*flows);
    if (request.to) {
        e.to = *request.to;
    } else if (!e.flows.empty()) {
        e.to = e.flows.front().node.addr;
    } else {
        auto to = external_addr(*status, family);
        if (!to)
            return std::unexpected(to.error());
        e.to = *to;
    }

    if (is_loopback(e.to)) {
        e.decision = local_decision(e.node_port, e.to, e.mapping);
    } else {
        auto decided = external_decision(dir, e.node_port, e.from, e.to);
        if (!decided)
            return std::unexpected(decided.error());
        e.decision = std::move(*decided);
    }
    if (e.decision.translated) {
        e.route = route_to(e.decision.backend->addr);
        if (!e.route->dev.empty()) {
            e.probe = probe(e.node_port.proto, *e.decision.backend, request.probe_timeout);
            // Read again: the probe made the node resolve the next hop, so
            // a gone sandbox now shows as an INCOMPLETE or FAILED neighbour.
            e.route = route_to(e.decision.backend->addr);
        }
    }
    e.problems = problems_of(*status, e.node_port);
    e.not_checked = status->not_checked;
    if (auto stats = read_stats(dir, e.node_port))
        for (const auto& p : stats->ports)
            if (p.mapping.family() == family)
                e.counters = p.counters;
    e.cause = first_cause(e, *status);
    e.reaches = e.cause.empty();
    return e;
}

}  // namespace nodeport
