// Tier 2 (ctest -L bpf) loads BPF programs and creates maps, which needs root
// (CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN to pin) and, for pinning, a bpffs at
// /sys/fs/bpf. Without them a fixture calls GTEST_SKIP() with the reason this
// returns: ctest reports "[  SKIPPED ]" as skipped (tests/CMakeLists.txt), so
// a non-root `ctest` run says what it could not check instead of failing.
#pragma once

#include <bpf/bpf.h>
#include <linux/magic.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace nodeport::testing_support {

// Empty when tier 2 can run here, else why not.
inline std::string bpf_unavailable(bool needs_bpffs) {
    if (geteuid() != 0)
        return "needs root to load BPF programs and create maps";
    if (needs_bpffs) {
        struct statfs fs {};
        if (statfs("/sys/fs/bpf", &fs) != 0 || fs.f_type != BPF_FS_MAGIC)
            return "no bpffs mounted at /sys/fs/bpf";
    }
    // Root in a container may still lack CAP_BPF / CAP_SYS_ADMIN: ask the kernel.
    const int fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, nullptr, 4, 4, 1, nullptr);
    if (fd < 0)
        return std::string("BPF not permitted here: bpf_map_create: ") + std::strerror(errno);
    close(fd);
    return {};
}

}  // namespace nodeport::testing_support
