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
    "  answers every TCP connection's first byte with that byte, then closes\n";

int listen_on(std::uint16_t port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    timeval tv{2, 0};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_ANY);
    if (bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || listen(fd, 4096) != 0) {
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
    for (unsigned i = 0; i < threads; ++i) {
        int fd = listen_on(port);
        if (fd < 0) {
            std::cerr << "np-echo-server: listen on port " << port << ": " << std::strerror(errno) << "\n";
            return 1;
        }
        fds.push_back(fd);
    }
    alarm(lifetime);  // default action: terminate
    std::cout << "listening" << std::endl;
    std::vector<std::jthread> workers;
    for (int fd : fds)
        workers.emplace_back(serve, fd);
    return 0;  // not reached: the workers never return
}
