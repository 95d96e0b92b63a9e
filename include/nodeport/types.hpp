// The values nodeport works with, validated once at the edge (CLI arguments,
// API callers) and passed inward typed.
#pragma once

#include <array>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <expected>
#include <string>
#include <string_view>
#include <variant>

// Exported from libnodeport.so (the rest of the library is hidden).
#pragma GCC visibility push(default)

namespace nodeport {

enum class Proto : std::uint8_t { tcp = 6, udp = 17 };  // IPPROTO_* numbers, as in the map key

struct Ipv4 {
    std::uint32_t addr_be = 0;  // network byte order, as in the maps
    auto operator<=>(const Ipv4&) const = default;
};

struct Ipv6 {
    std::array<std::uint8_t, 16> bytes{};  // network byte order, as in the maps
    auto operator<=>(const Ipv6&) const = default;
};

// An address of either family. IPv4 sorts first.
using IpAddr = std::variant<Ipv4, Ipv6>;

enum class Family : std::uint8_t { ipv4 = 4, ipv6 = 6 };  // NP_FAMILY_*, as a backend stores it

inline Family family_of(const IpAddr& addr) { return std::holds_alternative<Ipv4>(addr) ? Family::ipv4 : Family::ipv6; }

struct NodePort {
    Proto proto = Proto::tcp;
    std::uint16_t port = 0;  // host byte order
    auto operator<=>(const NodePort&) const = default;
};

// A node port leads to one backend per family: a client reaches the backend
// of its own family (no NAT46/64).
struct Backend {
    IpAddr addr;
    std::uint16_t port = 0;  // host byte order
    auto operator<=>(const Backend&) const = default;
};

struct Mapping {
    NodePort node_port;
    Backend backend;
    std::string owner;  // empty: no owner
    bool operator==(const Mapping&) const = default;
    Family family() const { return family_of(backend.addr); }
};

// What identifies an entry of the port table: the node port and the family.
struct MappingKey {
    NodePort node_port;
    Family family = Family::ipv4;
    auto operator<=>(const MappingKey&) const = default;
};

inline MappingKey key_of(const Mapping& mapping) { return {mapping.node_port, mapping.family()}; }

// Bad input: which field, and what is wrong with it. Nothing was changed.
struct InputError {
    std::string field;    // "node port", "protocol", "backend address", ...
    std::string message;  // "65536 is not a port (1-65535)"
};

template <class T>
using Parsed = std::expected<T, InputError>;

Parsed<Proto> parse_proto(std::string_view text);
// "tcp/6667"
Parsed<NodePort> parse_node_port(std::string_view text);
// "10.8.32.126:6667" or "[fd00::2]:6667"
Parsed<Backend> parse_backend(std::string_view text);
// A dotted quad; `field` names the argument in the error.
Parsed<Ipv4> parse_ipv4(std::string_view text, std::string_view field);
// An IPv6 address as inet_pton reads it, without brackets.
Parsed<Ipv6> parse_ipv6(std::string_view text, std::string_view field);
// A unicast address other hosts and namespaces can reach: not unspecified,
// loopback or multicast (nor 0/8 and the reserved range for IPv4), not
// link-local, and not an IPv4 address in IPv6 form (::ffff:a.b.c.d). What a
// backend and a node address must be.
bool is_routable_unicast(const IpAddr& addr);
// An address of the node, IPv4 or IPv6: a unicast address other hosts and
// namespaces can reach (not loopback: 127.0.0.0/8 and ::1 are matched on
// their own, only in the node's netns; not link-local).
Parsed<IpAddr> parse_node_ip(std::string_view text);
// A port number 1-65535; `field` names the argument in the error.
Parsed<std::uint16_t> parse_port(std::string_view text, std::string_view field);
// 1-255 (NP_MAX_OWNER_LEN) printable, non-blank ASCII characters.
Parsed<std::string> parse_owner(std::string_view text);

// What set and sync accept, whoever built the Mapping (the parsers above, a
// C or Go caller, a struct filled by hand): node and backend ports 1-65535,
// a backend address a sandbox can have (not 0/8, loopback or multicast), an
// owner empty or as parse_owner takes it (so the name stored is the name
// hashed, and remove by that owner works). The first bad field is reported.
std::expected<void, InputError> check_mapping(const Mapping& mapping);

// The owner id stored beside the owner name: FNV-1a 64 of the name, 0 for none.
std::uint64_t owner_id(std::string_view owner);

// Text that came from outside (an owner another writer stored, input echoed
// in an error) made safe to print and to put in JSON: printable ASCII stays,
// a backslash becomes \\, every other byte \xNN. Control characters never
// reach a terminal, and invalid UTF-8 never reaches a JSON encoder. With
// `keep_newlines`, \n stays (a multi-line log of our own).
std::string printable(std::string_view text, bool keep_newlines = false);

// A value from outside as an error message quotes it: in single quotes,
// escaped by printable(), at most quote_max_bytes of it ("'xxxx...' (52428800
// bytes)" beyond). Escaped here, once: a message holds no NUL (it may travel
// as a C string) and stays short however large the input.
inline constexpr std::size_t quote_max_bytes = 100;
std::string quote(std::string_view text);

// A message on its way to a terminal or a JSON encoder: what is still not
// printable ASCII becomes \xNN, but a backslash stays, since the values in
// the message were escaped by quote() already (escaping again would show a
// NUL as \\x00).
std::string printable_message(std::string_view text, bool keep_newlines = false);

std::string_view to_string(Proto proto);
std::string_view to_string(Family family);  // "ipv4", "ipv6"
std::string to_string(Ipv4 addr);
std::string to_string(const Ipv6& addr);    // "fd00::2"
std::string to_string(const IpAddr& addr);
std::string to_string(NodePort node_port);  // "tcp/6667"
std::string to_string(const MappingKey& key);  // "tcp/6667", "tcp/6667 (IPv6)"
std::string to_string(const Backend& backend);  // "10.8.32.126:6667", "[fd00::2]:6667"

}  // namespace nodeport

#pragma GCC visibility pop
