#include "base/netns.hpp"

#include <fcntl.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <fstream>
#include <set>
#include <thread>

#include "nodeport/fd.hpp"

namespace nodeport::netns {
namespace {

// The cookie of the namespace a file refers to, read from a thread that
// entered it (setns of a network namespace affects only the calling thread).
std::optional<std::uint64_t> cookie_of(const std::filesystem::path& path) {
    std::optional<std::uint64_t> out;
    auto ok = run_in(path, [&]() -> Result<void> {
        auto cookie = current_cookie();
        if (!cookie)
            return std::unexpected(cookie.error());
        out = *cookie;
        return {};
    });
    return ok ? out : std::nullopt;
}

std::string comm_of(const std::string& pid) {
    std::ifstream file("/proc/" + pid + "/comm");
    std::string comm;
    std::getline(file, comm);
    return comm;
}

}  // namespace

Result<std::uint64_t> current_cookie() {
#ifndef SO_NETNS_COOKIE
    constexpr int SO_NETNS_COOKIE = 71;
#endif
    Fd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!sock.valid())
        return errno_error(errno, "open socket to read netns cookie");
    std::uint64_t cookie = 0;
    socklen_t len = sizeof cookie;
    if (::getsockopt(sock.get(), SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &len) != 0)
        return errno_error(errno, "read netns cookie (SO_NETNS_COOKIE needs Linux 5.14)");
    return cookie;
}

Result<void> run_in(const std::filesystem::path& path, const std::function<Result<void>()>& fn) {
    Result<void> result = plain_error("not run");
    std::thread([&] {
        Fd ns(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
        if (!ns.valid()) {
            result = errno_error(errno, "open " + path.string());
            return;
        }
        if (::setns(ns.get(), CLONE_NEWNET) != 0) {
            result = errno_error(errno, "enter the network namespace of " + path.string());
            return;
        }
        result = fn();
    }).join();
    return result;
}

std::optional<Found> find(std::uint64_t cookie) {
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator("/run/netns", ec))
        if (cookie_of(entry.path()) == cookie)
            return Found{entry.path(), fmt::format("network namespace '{}'", entry.path().filename().string())};
    if (cookie_of("/proc/1/ns/net") == cookie)
        return Found{"/proc/1/ns/net", "the host's network namespace (PID 1's)"};
    // Unnamed ones: each namespace once, by the inode its files share.
    std::set<ino_t> seen;
    for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
        const auto pid = entry.path().filename().string();
        if (pid.find_first_not_of("0123456789") != std::string::npos)
            continue;
        auto path = entry.path() / "ns" / "net";
        struct stat st{};
        if (::stat(path.c_str(), &st) != 0 || !seen.insert(st.st_ino).second)
            continue;
        if (cookie_of(path) == cookie)
            return Found{path, fmt::format("the network namespace of pid {} ({})", pid, comm_of(pid))};
    }
    return std::nullopt;
}

std::string describe(std::uint64_t cookie) {
    return describe(cookie, find(cookie));
}

std::string describe(std::uint64_t cookie, const std::optional<Found>& found) {
    if (!found)
        return fmt::format("a network namespace that no longer exists or that no process uses (cookie {})", cookie);
    return fmt::format("{} (cookie {})", found->description, cookie);
}

Result<void> check_same(std::uint64_t loaded_in, const std::filesystem::path& pin_dir, const std::string& command) {
    auto here = current_cookie();
    if (!here)
        return std::unexpected(here.error());
    if (loaded_in == 0 || loaded_in == *here)
        return {};
    auto there = find(loaded_in);
    return plain_error(fmt::format("nodeport at {} was loaded in {}, and {} runs in {}: run it there{}",
                                   pin_dir.string(), describe(loaded_in, there), command, describe(*here),
                                   there ? " (nsenter --net=" + there->path.string() + " nodeport " + command + " ...)"
                                         : ", or run unload, which removes what remains"));
}

Result<void> check_loaded_here(const PinDir& pin_dir, const std::string& command) {
    auto recorded = pin_dir.config();
    if (!recorded)
        return std::unexpected(recorded.error());
    return check_same(recorded->node_netns_cookie, pin_dir.path(), command);
}

}  // namespace nodeport::netns
