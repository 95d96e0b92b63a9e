#include "nodeport/types.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>

#include <fmt/format.h>

#include "nodeport/abi.h"

namespace nodeport {
namespace {

std::unexpected<InputError> bad(std::string_view field, std::string message) {
    return std::unexpected(InputError{std::string(field), std::move(message)});
}

bool is_ipv4_in(std::uint32_t addr_host, std::uint32_t net, int prefix) {
    std::uint32_t mask = prefix == 0 ? 0 : ~std::uint32_t{0} << (32 - prefix);
    return (addr_host & mask) == net;
}

}  // namespace

Parsed<Proto> parse_proto(std::string_view text) {
    std::string lower(text);
    std::ranges::transform(lower, lower.begin(), [](unsigned char c) { return std::tolower(c); });
    if (lower == "tcp")
        return Proto::tcp;
    if (lower == "udp")
        return Proto::udp;
    if (text.empty())
        return bad("protocol", "missing (tcp or udp)");
    return bad("protocol", fmt::format("{} is not supported (tcp or udp)", quote(text)));
}

Parsed<std::uint16_t> parse_port(std::string_view text, std::string_view field) {
    unsigned value = 0;
    bool digits_only = !text.empty() && std::ranges::all_of(text, [](char c) { return c >= '0' && c <= '9'; });
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (!digits_only || ec != std::errc{} || end != text.data() + text.size() || value < 1 || value > 65535)
        return bad(field, fmt::format("{} is not a port number (1-65535)", quote(text)));
    return static_cast<std::uint16_t>(value);
}

Parsed<NodePort> parse_node_port(std::string_view text) {
    auto slash = text.find('/');
    if (slash == std::string_view::npos)
        return bad("node port", fmt::format("{} is not PROTO/PORT, like tcp/6667", quote(text)));
    auto proto = parse_proto(text.substr(0, slash));
    if (!proto)
        return std::unexpected(proto.error());
    auto port = parse_port(text.substr(slash + 1), "node port");
    if (!port)
        return std::unexpected(port.error());
    return NodePort{*proto, *port};
}

Parsed<Ipv4> parse_ipv4(std::string_view text, std::string_view field) {
    // inet_pton reads a C string: a NUL in the text would end the address
    // there ("10.8.0.9\0; rm -rf /" read as 10.8.0.9), so only a dotted
    // quad's characters reach it.
    bool dotted = !text.empty() && text.size() < INET_ADDRSTRLEN &&
                  std::ranges::all_of(text, [](char c) { return (c >= '0' && c <= '9') || c == '.'; });
    in_addr addr{};
    std::string copy(text);
    if (!dotted || inet_pton(AF_INET, copy.c_str(), &addr) != 1)
        return bad(field, fmt::format("{} is not an IPv4 address", quote(text)));
    return Ipv4{addr.s_addr};
}

Parsed<Ipv6> parse_ipv6(std::string_view text, std::string_view field) {
    // As for IPv4: only an IPv6 address's characters reach inet_pton (no
    // NUL, no zone: "%eth0" names an interface of one namespace).
    bool chars = !text.empty() && text.size() < INET6_ADDRSTRLEN && std::ranges::all_of(text, [](char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':' || c == '.';
    });
    Ipv6 addr;
    std::string copy(text);
    if (!chars || inet_pton(AF_INET6, copy.c_str(), addr.bytes.data()) != 1)
        return bad(field, fmt::format("{} is not an IPv6 address", quote(text)));
    return addr;
}

// Unicast and reachable from other namespaces: not 0/8, loopback, multicast
// or the reserved and broadcast range above it.
bool is_routable_unicast(Ipv4 addr) {
    std::uint32_t host = ntohl(addr.addr_be);
    return !is_ipv4_in(host, 0x00000000, 8) && !is_ipv4_in(host, 0x7f000000, 8) && !is_ipv4_in(host, 0xe0000000, 3);
}

// The same for IPv6: not unspecified, loopback, multicast or link-local
// (which names a link, not a host, and needs a zone), and not an IPv4
// address in IPv6 form (v4-mapped or v4-compatible: that is the IPv4
// address's own mapping, given as a dotted quad).
bool is_routable_unicast(const Ipv6& addr) {
    const auto& b = addr.bytes;
    const bool first_ten_zero = std::all_of(b.begin(), b.begin() + 10, [](std::uint8_t x) { return x == 0; });
    if (first_ten_zero && ((b[10] == 0 && b[11] == 0) || (b[10] == 0xff && b[11] == 0xff)))
        return false;  // ::, ::1, ::a.b.c.d, ::ffff:a.b.c.d
    if (b[0] == 0xff)
        return false;  // multicast
    return !(b[0] == 0xfe && (b[1] & 0xc0) == 0x80);  // fe80::/10
}

bool is_routable_unicast(const IpAddr& addr) {
    return std::visit([](const auto& a) { return is_routable_unicast(a); }, addr);
}

Parsed<IpAddr> parse_node_ip(std::string_view text) {
    Parsed<IpAddr> addr = text.find(':') != std::string_view::npos ? Parsed<IpAddr>(parse_ipv6(text, "node-ip"))
                                                                    : Parsed<IpAddr>(parse_ipv4(text, "node-ip"));
    if (addr && !is_routable_unicast(*addr))
        return bad("node-ip", fmt::format("{} is not a unicast, non-loopback address", quote(text)));
    if (!addr)
        return bad("node-ip", fmt::format("{} is not an IPv4 or IPv6 address", quote(text)));
    return addr;
}

// IP:PORT, the IPv6 address in brackets as in a URL: "[fd00::2]:6667".
Parsed<Backend> parse_backend(std::string_view text) {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos)
        return bad("backend", fmt::format("{} is not IP:PORT, like 10.8.32.126:6667 or [fd00::2]:6667", quote(text)));
    std::string_view host = text.substr(0, colon);
    const bool bracketed = host.starts_with('[') && host.ends_with(']') && host.size() >= 2;
    if (!bracketed && host.find_first_of("[]:") != std::string_view::npos)
        return bad("backend", fmt::format("{} is not IP:PORT: an IPv6 address goes in brackets, like [fd00::2]:6667",
                                          quote(text)));
    if (bracketed)
        host = host.substr(1, host.size() - 2);
    Parsed<IpAddr> addr = bracketed ? Parsed<IpAddr>(parse_ipv6(host, "backend address"))
                                    : Parsed<IpAddr>(parse_ipv4(host, "backend address"));
    if (!addr)
        return std::unexpected(addr.error());
    // Loopback as a backend would mean a different host in every namespace.
    if (!is_routable_unicast(*addr))
        return bad("backend address", fmt::format("{} is not a unicast address a sandbox can have", quote(host)));
    auto port = parse_port(text.substr(colon + 1), "backend port");
    if (!port)
        return std::unexpected(port.error());
    return Backend{*addr, *port};
}

Parsed<std::string> parse_owner(std::string_view text) {
    if (text.empty() || text.size() > NP_MAX_OWNER_LEN)
        return bad("owner", fmt::format("must be 1 to {} characters, got {}", NP_MAX_OWNER_LEN, text.size()));
    if (!std::ranges::all_of(text, [](unsigned char c) { return c > 0x20 && c < 0x7f; }))
        return bad("owner", fmt::format("{} has a blank or non-ASCII character", quote(text)));
    return std::string(text);
}

std::expected<void, InputError> check_mapping(const Mapping& mapping) {
    if (mapping.node_port.proto != Proto::tcp && mapping.node_port.proto != Proto::udp)
        return bad("protocol", fmt::format("{} is not supported (tcp or udp)",
                                           static_cast<unsigned>(mapping.node_port.proto)));
    if (mapping.node_port.port == 0)
        return bad("node port", "0 is not a port number (1-65535)");
    if (!is_routable_unicast(mapping.backend.addr))
        return bad("backend address", fmt::format("'{}' is not a unicast address a sandbox can have",
                                                  to_string(mapping.backend.addr)));
    if (mapping.backend.port == 0)
        return bad("backend port", "0 is not a port number (1-65535)");
    if (!mapping.owner.empty())
        if (auto owner = parse_owner(mapping.owner); !owner)
            return std::unexpected(owner.error());
    return {};
}

std::uint64_t owner_id(std::string_view owner) {
    if (owner.empty())
        return 0;
    std::uint64_t hash = 0xcbf29ce484222325ULL;  // FNV-1a 64
    for (unsigned char c : owner) {
        hash ^= c;
        hash *= 0x100000001b3ULL;
    }
    return hash;
}

namespace {

std::string escape(std::string_view text, bool keep_newlines, bool escape_backslash) {
    std::string out;
    out.reserve(text.size());
    for (unsigned char c : text) {
        if (c == '\\' && escape_backslash)
            out += "\\\\";
        else if ((c >= 0x20 && c < 0x7f) || (keep_newlines && c == '\n'))
            out += static_cast<char>(c);
        else
            out += fmt::format("\\x{:02x}", c);
    }
    return out;
}

}  // namespace

std::string printable(std::string_view text, bool keep_newlines) {
    return escape(text, keep_newlines, true);
}

std::string printable_message(std::string_view text, bool keep_newlines) {
    return escape(text, keep_newlines, false);
}

std::string quote(std::string_view text) {
    if (text.size() <= quote_max_bytes)
        return "'" + printable(text) + "'";
    return fmt::format("'{}...' ({} bytes)", printable(text.substr(0, quote_max_bytes)), text.size());
}

std::string_view to_string(Proto proto) {
    return proto == Proto::tcp ? "tcp" : "udp";
}

std::string_view to_string(Family family) {
    return family == Family::ipv4 ? "ipv4" : "ipv6";
}

std::string to_string(Ipv4 addr) {
    char buf[INET_ADDRSTRLEN];
    in_addr in{addr.addr_be};
    inet_ntop(AF_INET, &in, buf, sizeof buf);
    return buf;
}

std::string to_string(const Ipv6& addr) {
    char buf[INET6_ADDRSTRLEN];
    inet_ntop(AF_INET6, addr.bytes.data(), buf, sizeof buf);
    return buf;
}

std::string to_string(const IpAddr& addr) {
    return std::visit([](const auto& a) { return to_string(a); }, addr);
}

std::string to_string(NodePort node_port) {
    return fmt::format("{}/{}", to_string(node_port.proto), node_port.port);
}

std::string to_string(const MappingKey& key) {
    return key.family == Family::ipv6 ? to_string(key.node_port) + " (IPv6)" : to_string(key.node_port);
}

std::string to_string(const Backend& backend) {
    if (const auto* v6 = std::get_if<Ipv6>(&backend.addr))
        return fmt::format("[{}]:{}", to_string(*v6), backend.port);
    return fmt::format("{}:{}", to_string(backend.addr), backend.port);
}

}  // namespace nodeport
