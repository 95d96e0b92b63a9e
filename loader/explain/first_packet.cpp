#include "explain/first_packet.hpp"

#include <arpa/inet.h>

#include <cstring>

namespace nodeport::explain_parts {
namespace {

// The Internet checksum (RFC 1071) of `len` bytes, added to `sum`.
std::uint32_t sum16(const std::uint8_t* data, std::size_t len, std::uint32_t sum = 0) {
    for (std::size_t i = 0; i + 1 < len; i += 2)
        sum += (data[i] << 8) | data[i + 1];
    if (len % 2)
        sum += data[len - 1] << 8;
    return sum;
}

std::uint16_t fold(std::uint32_t sum) {
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return static_cast<std::uint16_t>(~sum);
}

void put16(std::uint8_t* at, std::uint16_t host) {
    std::uint16_t be = htons(host);
    std::memcpy(at, &be, 2);
}

}  // namespace

std::vector<std::uint8_t> first_packet(Proto proto, Backend from, Backend to) {
    const bool v6 = family_of(to.addr) == Family::ipv6;
    const std::size_t l3_len = v6 ? ip6_hlen : ip_hlen;
    const std::size_t l4_len = proto == Proto::tcp ? 20 : 9;  // TCP header, or UDP header + 1 byte
    std::vector<std::uint8_t> pkt(eth_hlen + l3_len + l4_len, 0);
    put16(pkt.data() + 12, v6 ? 0x86dd : 0x0800);  // ETH_P_IPV6, ETH_P_IP; both MACs 0, the test run's device's
    std::uint8_t* ip = pkt.data() + eth_hlen;
    // The pseudo-header's addresses: where they sit in the IP header.
    const std::uint8_t* addrs = ip + (v6 ? 8 : 12);
    const std::size_t addrs_len = v6 ? 32 : 8;
    if (v6) {
        ip[0] = 0x60;
        put16(ip + 4, static_cast<std::uint16_t>(l4_len));
        ip[6] = static_cast<std::uint8_t>(proto);
        ip[7] = 64;  // hop limit
        std::memcpy(ip + 8, std::get<Ipv6>(from.addr).bytes.data(), 16);
        std::memcpy(ip + 24, std::get<Ipv6>(to.addr).bytes.data(), 16);
    } else {
        ip[0] = 0x45;
        put16(ip + 2, static_cast<std::uint16_t>(ip_hlen + l4_len));
        put16(ip + 4, 1);  // id
        ip[8] = 64;        // ttl
        ip[9] = static_cast<std::uint8_t>(proto);
        std::memcpy(ip + 12, &std::get<Ipv4>(from.addr).addr_be, 4);
        std::memcpy(ip + 16, &std::get<Ipv4>(to.addr).addr_be, 4);
        put16(ip + 10, fold(sum16(ip, ip_hlen)));
    }

    std::uint8_t* l4 = ip + l3_len;
    put16(l4, from.port);
    put16(l4 + 2, to.port);
    std::size_t csum_at = 0;
    if (proto == Proto::tcp) {
        put16(l4 + 4, 0x1000);  // seq 0x1000 (any)
        l4[12] = 5 << 4;        // doff
        l4[13] = 0x02;          // SYN
        put16(l4 + 14, 64240);  // window
        csum_at = 16;
    } else {
        put16(l4 + 4, static_cast<std::uint16_t>(l4_len));
        l4[8] = 'x';
        csum_at = 6;
    }
    // Pseudo-header: addresses, protocol, L4 length.
    std::uint32_t sum = sum16(addrs, addrs_len);
    sum += static_cast<std::uint8_t>(proto) + static_cast<std::uint32_t>(l4_len);
    std::uint16_t csum = fold(sum16(l4, l4_len, sum));
    if (proto == Proto::udp && csum == 0)
        csum = 0xffff;  // 0 means "no checksum" (over IPv4; over IPv6 it is invalid)
    put16(l4 + csum_at, csum);
    return pkt;
}

}  // namespace nodeport::explain_parts
