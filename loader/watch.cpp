#include "nodeport/watch.hpp"

#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>

#include "netlink.hpp"

namespace nodeport {

Result<NodeState> sync_node(const WatchOptions& options) {
    auto names = choose_interfaces(options.interfaces);
    if (!names)
        return std::unexpected(names.error());
    auto attached = attach_interfaces(options.pin_dir, *names, options.tc_attach, options.lock_wait);
    if (!attached)
        return std::unexpected(attached.error());
    auto addrs = refresh(options.pin_dir, options.node_ips, options.lock_wait);
    if (!addrs)
        return std::unexpected(addrs.error());
    return NodeState{std::move(*attached), std::move(*addrs)};
}

Result<void> watch(const WatchOptions& options, int stop_fd,
                   const std::function<void(const Result<NodeState>&)>& report) {
    using Clock = std::chrono::steady_clock;
    // Subscribed before the first resync, so a change during it is not missed.
    auto events = netlink::subscribe(options.interfaces.kind == InterfaceChoice::Kind::default_route);
    if (!events)
        return std::unexpected(events.error());
    auto first = sync_node(options);
    if (!first)
        return std::unexpected(first.error());
    report(first);

    // When the pending burst is resynced; max(): nothing pending. (Not an
    // optional: g++ 12 warns about it, wrongly, as maybe uninitialized.)
    constexpr auto none = Clock::time_point::max();
    auto due = none;
    for (;;) {
        int timeout_ms = -1;
        if (due != none)
            timeout_ms = static_cast<int>(
                std::max<std::int64_t>(0, std::chrono::ceil<std::chrono::milliseconds>(due - Clock::now()).count()));
        pollfd fds[] = {{stop_fd, POLLIN, 0}, {events->get(), POLLIN, 0}};
        int n = ::poll(fds, 2, timeout_ms);
        if (n < 0 && errno != EINTR)
            return errno_error(errno, "wait for rtnetlink notifications");
        if (n > 0 && fds[0].revents)
            return {};
        if (n > 0 && fds[1].revents) {
            if (auto ok = netlink::drain(events->get()); !ok)
                return ok;
            if (due == none)
                due = Clock::now() + options.settle;
        }
        if (due != none && Clock::now() >= due) {
            due = none;
            report(sync_node(options));
        }
    }
}

}  // namespace nodeport
