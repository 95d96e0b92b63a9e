// The clock of bpf_ktime_get_ns() (CLOCK_MONOTONIC), read in user space to
// compare with or write beside the times the BPF programs store
// (last_seen_ns and the like).
#pragma once

#include <time.h>

#include <cstdint>

namespace nodeport {

inline std::uint64_t bpf_clock_ns() {
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC, &now);
    return static_cast<std::uint64_t>(now.tv_sec) * 1'000'000'000ULL + static_cast<std::uint64_t>(now.tv_nsec);
}

}  // namespace nodeport
