#include "base/lock_holder.hpp"

#include <fmt/format.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <charconv>
#include <fstream>
#include <iterator>
#include <sstream>

namespace nodeport {

std::optional<pid_t> find_flock_holder(std::string_view proc_locks, dev_t dev, ino_t ino) {
    const std::string file = fmt::format("{:02x}:{:02x}:{}", major(dev), minor(dev), ino);
    std::istringstream lines{std::string(proc_locks)};
    for (std::string line; std::getline(lines, line);) {
        std::istringstream fields(line);
        std::string id, kind, mode, access, pid_text, where;
        fields >> id >> kind;
        if (kind != "FLOCK")  // also skips "->": a process waiting, not holding
            continue;
        fields >> mode >> access >> pid_text >> where;
        pid_t pid = 0;
        auto [end, ec] = std::from_chars(pid_text.data(), pid_text.data() + pid_text.size(), pid);
        if (where == file && ec == std::errc{} && end == pid_text.data() + pid_text.size() && pid > 0)
            return pid;
    }
    return std::nullopt;
}

std::string describe_flock_holder(int fd) {
    struct stat st{};
    std::ifstream locks("/proc/locks");
    if (::fstat(fd, &st) != 0 || !locks)
        return "another process";
    auto pid = find_flock_holder(std::string(std::istreambuf_iterator<char>(locks), {}), st.st_dev, st.st_ino);
    if (!pid)
        return "another process";
    std::string comm;
    std::ifstream comm_file(fmt::format("/proc/{}/comm", *pid));
    if (!std::getline(comm_file, comm) || comm.empty())
        return fmt::format("pid {}", *pid);
    return fmt::format("pid {} ({})", *pid, comm);
}

}  // namespace nodeport
