// The clock the BPF programs store their times in (last_seen_ns and the
// like: bpf_ktime_get_coarse_ns(), bpf/clock.bpf.h), read in user space to
// compare with them or write beside them. The same clock, not merely the same
// base: a copy of "what was written since T" (flow_migration.hpp) must not
// miss an entry stamped by a coarse read taken after T.
#pragma once

#include <time.h>

#include <cstdint>

namespace nodeport {

inline std::uint64_t bpf_clock_ns() {
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
    return static_cast<std::uint64_t>(now.tv_sec) * 1'000'000'000ULL + static_cast<std::uint64_t>(now.tv_nsec);
}

}  // namespace nodeport
