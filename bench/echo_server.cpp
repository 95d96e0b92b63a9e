// np-echo-server: the far end of np-connbench.
//
// --threads threads (default 1), each with its own SO_REUSEPORT listening
// socket (the kernel spreads connections over them), each looping: accept,
// read 1 byte, write it back, close. No epoll: with one connection per client
// thread in flight, a blocking loop per thread is the cheapest server there
// is. Give it about as many threads as the client has; more cost rate on a
// small machine (2 CPUs, one client thread: 1 thread ~12.8k conn/s, 2 threads
// ~10.3k, 4 threads ~9.9k, from wakeups on the client's CPU).
// Accepted sockets inherit the listener's 2 s timeouts, so a silent client
// holds a thread at most that long.
//
// Both families: each thread's IPv4 socket has an IPv6-only twin with a
// thread of its own, so an IPv4 connection takes the path it took before
// IPv6 was served (not a dual-stack socket's v4-mapped one), and the thread
// of the family not in use waits in accept (woken every 2 s by its timeout).
// Where there is no IPv6 (AF_INET6 refused), it serves IPv4 alone and says so
// on stderr.
//
// Prints "listening" once every socket listens. Exits after --lifetime
// seconds (default 3600) even if nobody stops it.

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>
#include <thread>
#include <vector>

#include "args.hpp"

namespace {

constexpr const char* usage =
    "usage: np-echo-server --port PORT [--threads N] [--lifetime SECONDS]\n"
    "  answers every TCP connection's first byte with that byte, then closes\n"
    "  (IPv4 and IPv6)\n";

int listen_on(int family, std::uint16_t port) {
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    timeval tv{2, 0};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_storage ss{};
    socklen_t len = 0;
    if (family == AF_INET6) {
        // IPv6 only: the IPv4 socket beside it has IPv4 (see the top).
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
        auto* sa = reinterpret_cast<sockaddr_in6*>(&ss);
        sa->sin6_family = AF_INET6;
        sa->sin6_port = htons(port);
        sa->sin6_addr = in6addr_any;
        len = sizeof *sa;
    } else {
        auto* sa = reinterpret_cast<sockaddr_in*>(&ss);
        sa->sin_family = AF_INET;
        sa->sin_port = htons(port);
        sa->sin_addr.s_addr = htonl(INADDR_ANY);
        len = sizeof *sa;
    }
    if (bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 || listen(fd, 4096) != 0) {
        int err = errno;
        close(fd);
        errno = err;
        return -1;
    }
    return fd;
}

[[noreturn]] void serve(int listen_fd) {
    // Runs until the process exits (alarm or a signal).
    for (;;) {
        int fd = accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0)
            continue;  // EAGAIN from the accept timeout, ECONNABORTED, ...
        char byte;
        if (read(fd, &byte, 1) == 1)
            (void)!write(fd, &byte, 1);
        close(fd);
    }
}

}  // namespace

int main(int argc, char** argv) {
    std::uint16_t port = 0;
    unsigned threads = 1;
    unsigned lifetime = 3600;
    try {
        bench::Args args(argc, argv, {"help"}, {"port", "threads", "lifetime"});
        if (args.has("help")) {
            std::cout << usage;
            return 0;
        }
        auto p = args.number<std::uint16_t>("port", 1, 65535);
        if (!p)
            throw bench::UsageError("--port is required");
        port = *p;
        threads = args.number<unsigned>("threads", 1, 64).value_or(threads);
        lifetime = args.number<unsigned>("lifetime", 1, 86400).value_or(lifetime);
    } catch (const bench::UsageError& e) {
        std::cerr << "np-echo-server: " << e.what() << "\n" << usage;
        return 2;
    }

    std::vector<int> fds;
    bool ipv6 = true;
    for (unsigned i = 0; i < threads; ++i) {
        int fd = listen_on(AF_INET, port);
        if (fd < 0) {
            std::cerr << "np-echo-server: listen on port " << port << ": " << std::strerror(errno) << "\n";
            return 1;
        }
        fds.push_back(fd);
        if (!ipv6)
            continue;
        fd = listen_on(AF_INET6, port);
        if (fd >= 0) {
            fds.push_back(fd);
        } else if (errno == EAFNOSUPPORT) {
            std::cerr << "np-echo-server: no IPv6 here (" << std::strerror(errno) << "): IPv4 only\n";
            ipv6 = false;
        } else {
            std::cerr << "np-echo-server: listen on [::]:" << port << ": " << std::strerror(errno) << "\n";
            return 1;
        }
    }
    alarm(lifetime);  // default action: terminate
    std::cout << "listening" << std::endl;
    std::vector<std::jthread> workers;
    for (int fd : fds)
        workers.emplace_back(serve, fd);
    return 0;  // not reached: the workers never return
}
