#include "explain/way.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "base/run_tool.hpp"
#include "nodeport/fd.hpp"

namespace nodeport::explain_parts {
namespace {

// The first line of a failed tool's stderr.
std::string first_line(const std::string& text) {
    return text.substr(0, text.find('\n'));
}

ProbeOutcome outcome_of(int err) {
    switch (err) {
    case 0:
        return ProbeOutcome::answered;
    case ECONNREFUSED:
        return ProbeOutcome::refused;
    case EHOSTUNREACH:
    case ENETUNREACH:
        return ProbeOutcome::unreachable;
    default:
        return ProbeOutcome::no_answer;
    }
}

}  // namespace

// iproute2 answers at once; the bound is for a hung one.
constexpr ToolOptions ip_tool{.input = {}, .timeout = std::chrono::seconds(5)};

ExplainRoute route_to(const IpAddr& addr) {
    ExplainRoute route;
    auto got = run_tool({"ip", "-j", "route", "get", to_string(addr)}, ip_tool);
    if (!got || got->exit_code != 0) {
        route.error = got ? first_line(got->err) : got.error().message;
        return route;
    }
    auto routes = nlohmann::json::parse(got->out, nullptr, false);
    if (!routes.is_array() || routes.empty() || !routes[0].is_object()) {
        route.error = "ip route get printed no route";
        return route;
    }
    route.dev = routes[0].value("dev", "");
    const std::string gateway = routes[0].value("gateway", "");
    if (family_of(addr) == Family::ipv6) {
        if (auto via = parse_ipv6(gateway, "gateway"))
            route.via = *via;
    } else if (auto via = parse_ipv4(gateway, "gateway")) {
        route.via = *via;
    }
    const std::string hop = to_string(route.via.value_or(addr));
    auto neigh = run_tool({"ip", "-j", "neigh", "show", "to", hop, "dev", route.dev}, ip_tool);
    if (neigh && neigh->exit_code == 0) {
        auto entries = nlohmann::json::parse(neigh->out, nullptr, false);
        if (entries.is_array() && !entries.empty() && entries[0].contains("state") && entries[0]["state"].is_array() &&
            !entries[0]["state"].empty() && entries[0]["state"][0].is_string())
            route.neighbour = entries[0]["state"][0].get<std::string>();
    }
    return route;
}

ExplainProbe probe(Proto proto, Backend backend, std::chrono::milliseconds timeout) {
    using clock = std::chrono::steady_clock;
    ExplainProbe result;
    result.backend = backend;
    const auto start = clock::now();
    auto done = [&](ProbeOutcome outcome, int err) {
        result.outcome = outcome;
        result.took = std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() - start);
        if (err != 0)
            result.detail = std::strerror(err);
        return result;
    };
    const bool tcp = proto == Proto::tcp;
    const bool v6 = family_of(backend.addr) == Family::ipv6;
    Fd sock(::socket(v6 ? AF_INET6 : AF_INET, (tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!sock.valid())
        return done(ProbeOutcome::no_answer, errno);
    sockaddr_storage to{};
    socklen_t to_len = 0;
    if (v6) {
        auto* in6 = reinterpret_cast<sockaddr_in6*>(&to);
        in6->sin6_family = AF_INET6;
        std::memcpy(&in6->sin6_addr, std::get<Ipv6>(backend.addr).bytes.data(), sizeof in6->sin6_addr);
        in6->sin6_port = htons(backend.port);
        to_len = sizeof *in6;
    } else {
        auto* in4 = reinterpret_cast<sockaddr_in*>(&to);
        in4->sin_family = AF_INET;
        in4->sin_addr.s_addr = std::get<Ipv4>(backend.addr).addr_be;
        in4->sin_port = htons(backend.port);
        to_len = sizeof *in4;
    }
    if (::connect(sock.get(), reinterpret_cast<const sockaddr*>(&to), to_len) != 0 && errno != EINPROGRESS)
        return done(outcome_of(errno), errno);
    if (!tcp && ::send(sock.get(), "", 0, 0) != 0)
        return done(outcome_of(errno), errno);
    pollfd pfd{sock.get(), static_cast<short>(tcp ? POLLOUT : POLLIN), 0};
    int ready = ::poll(&pfd, 1, static_cast<int>(timeout.count()));
    if (ready <= 0)
        return done(ProbeOutcome::no_answer, 0);
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(sock.get(), SOL_SOCKET, SO_ERROR, &err, &len);
    if (!tcp && err == 0) {
        char byte;
        if (::recv(sock.get(), &byte, 1, 0) < 0)
            err = errno;
    }
    return done(outcome_of(err), err);
}

}  // namespace nodeport::explain_parts
