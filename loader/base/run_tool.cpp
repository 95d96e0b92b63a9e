#include "base/run_tool.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <fmt/format.h>

#include <array>
#include <cerrno>
#include <thread>

#include "nodeport/fd.hpp"

extern char** environ;

namespace nodeport {
namespace {

using Clock = std::chrono::steady_clock;

struct Pipe {
    Fd read;
    Fd write;
};

Result<Pipe> make_pipe() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0)
        return errno_error(errno, "create pipe");
    return Pipe{Fd(fds[0]), Fd(fds[1])};
}

// stdin is a socket pair, not a pipe: send(MSG_NOSIGNAL) to a tool that
// exited without reading all of it is EPIPE, not a SIGPIPE that kills us.
Result<Pipe> make_input_socket() {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
        return errno_error(errno, "create socket pair");
    ::shutdown(fds[0], SHUT_WR);  // the tool's end only reads
    ::fcntl(fds[1], F_SETFL, O_NONBLOCK);
    return Pipe{Fd(fds[0]), Fd(fds[1])};
}

int remaining_ms(Clock::time_point deadline) {
    auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
    return left < 0 ? 0 : static_cast<int>(std::min<long long>(left, 60'000));
}

// Writes `input` to the tool and reads both of its output pipes until both
// are closed, all at once: reading one to the end first could deadlock on a
// tool that fills the other (iptables -S of 30,000 rules), or that writes
// before it has read all its input. Closes `in` once all is written.
enum class Exchange { done, timed_out, poll_failed };
Exchange exchange(Fd& in, std::string_view input, int out_fd, int err_fd, std::string& out, std::string& err,
                  Clock::time_point deadline) {
    std::array<pollfd, 3> fds{{{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}, {in.get(), POLLOUT, 0}}};
    std::array<std::string*, 2> sinks{&out, &err};
    int open = 2;
    char buf[65536];
    auto close_input = [&] {
        in.reset();  // the tool sees the end of its input
        fds[2].fd = -1;
    };
    if (input.empty())
        close_input();
    while (open > 0 || fds[2].fd >= 0) {
        int ms = remaining_ms(deadline);
        if (ms == 0)
            return Exchange::timed_out;
        int n = ::poll(fds.data(), fds.size(), ms);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return Exchange::poll_failed;
        for (std::size_t i = 0; i < 2; ++i) {
            if (fds[i].fd < 0 || fds[i].revents == 0)
                continue;
            ssize_t got = ::read(fds[i].fd, buf, sizeof buf);
            if (got > 0) {
                sinks[i]->append(buf, static_cast<std::size_t>(got));
            } else if (got == 0 || errno != EINTR) {
                fds[i].fd = -1;  // poll ignores negative fds
                --open;
            }
        }
        if (fds[2].fd >= 0 && fds[2].revents != 0) {
            ssize_t sent = ::send(fds[2].fd, input.data(), input.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
            if (sent > 0)
                input.remove_prefix(static_cast<std::size_t>(sent));
            if (input.empty() || (sent < 0 && errno != EAGAIN && errno != EINTR))
                close_input();  // all written, or the tool stopped reading (its exit code will say why)
        }
    }
    return Exchange::done;
}

// Kills and reaps a tool that is being given up on: a blocking waitpid on a
// tool left running could wait forever.
void kill_and_reap(pid_t pid) {
    ::kill(pid, SIGKILL);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
}

std::unexpected<Error> timed_out(const std::string& tool, std::chrono::milliseconds timeout) {
    return std::unexpected(
        Error{ETIMEDOUT, fmt::format("{}: timed out after {:g} s", tool, static_cast<double>(timeout.count()) / 1000)});
}

}  // namespace

Result<ToolOutput> run_tool(const std::vector<std::string>& argv, const ToolOptions& options) {
    if (argv.empty())
        return plain_error("run_tool: no program");
    const auto deadline = Clock::now() + options.timeout;
    auto out = make_pipe();
    if (!out)
        return std::unexpected(out.error());
    auto err = make_pipe();
    if (!err)
        return std::unexpected(err.error());
    Pipe in;
    if (!options.input.empty()) {
        auto socket = make_input_socket();
        if (!socket)
            return std::unexpected(socket.error());
        in = std::move(*socket);
    }

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    if (in.read.valid())
        posix_spawn_file_actions_adddup2(&actions, in.read.get(), STDIN_FILENO);
    else
        posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, out->write.get(), STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, err->write.get(), STDERR_FILENO);
    std::vector<char*> args;
    for (const auto& a : argv)
        args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    pid_t pid = -1;
    int rc = ::posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0)
        return errno_error(rc, "run " + argv[0]);
    // Our copies of the child's ends must go, or the reads never see the end.
    out->write.reset();
    err->write.reset();
    in.read.reset();

    ToolOutput result;
    auto how = exchange(in.write, options.input, out->read.get(), err->read.get(), result.out, result.err, deadline);
    if (how == Exchange::poll_failed) {
        int poll_errno = errno;
        kill_and_reap(pid);
        return errno_error(poll_errno, "read the output of " + argv[0]);
    }
    int status = 0;
    for (;;) {
        pid_t r = how == Exchange::done ? ::waitpid(pid, &status, WNOHANG) : 0;
        if (r == pid)
            break;
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return errno_error(errno, "wait for " + argv[0]);
        if (how == Exchange::timed_out || Clock::now() >= deadline) {
            kill_and_reap(pid);
            return timed_out(argv[0], options.timeout);
        }
        // Both pipes closed and the tool not gone yet: poll for its exit
        // rather than block in waitpid past the deadline.
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return result;
}

std::string describe_failure(const std::vector<std::string>& argv, const ToolOutput& result) {
    std::string command;
    for (const auto& a : argv)
        command += (command.empty() ? "" : " ") + a;
    std::string why = result.err.substr(0, result.err.find('\n'));
    return command + ": exit " + std::to_string(result.exit_code) + (why.empty() ? "" : ": " + why);
}

}  // namespace nodeport
