// RFC 1071 Internet checksum arithmetic, written apart from anything the BPF
// programs use, so that the packet tests check the programs' checksums
// independently. Also used by bench/progbench.cpp to craft valid packets.
#pragma once

#include <cstddef>
#include <cstdint>

namespace rfc1071 {

// One's complement sum of 16-bit big-endian words, not folded; an odd last
// byte is padded with zero.
inline std::uint32_t sum16(const std::uint8_t* p, std::size_t n, std::uint32_t acc = 0) {
    for (std::size_t i = 0; i + 1 < n; i += 2)
        acc += std::uint32_t(p[i]) << 8 | p[i + 1];
    if (n % 2)
        acc += std::uint32_t(p[n - 1]) << 8;
    return acc;
}

// Folds the carries back in: a 16-bit one's complement sum.
inline std::uint16_t fold(std::uint32_t acc) {
    while (acc >> 16)
        acc = (acc & 0xffff) + (acc >> 16);
    return std::uint16_t(acc);
}

}  // namespace rfc1071
