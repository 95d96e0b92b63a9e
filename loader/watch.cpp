#include "nodeport/watch.hpp"

#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>

#include "netlink.hpp"
#include "netns.hpp"
#include "pin_dir.hpp"

namespace nodeport {
namespace {

// What no resync can fix: the watch ends with it at start rather than retry
// it forever.
Result<void> check_followable(const std::filesystem::path& dir) {
    if (auto opened = pin_dir::open(dir); !opened)
        return std::unexpected(opened.error());
    auto recorded = pin_dir::recorded_config(dir);
    if (!recorded)
        return std::unexpected(recorded.error());
    return netns::check_same(recorded->node_netns_cookie, dir, "watch");
}

// Route notifications only matter when the default route picks the interface.
bool wants_routes(const WatchOptions& options) {
    return options.interfaces.kind == InterfaceChoice::Kind::default_route;
}

}  // namespace

Result<NodeState> sync_node(const WatchOptions& options) {
    auto names = choose_interfaces(options.interfaces);
    auto attached = names ? attach_interfaces(options.pin_dir, *names, options.tc_attach, options.lock_wait)
                          : Result<std::vector<TcAttachment>>(std::unexpected(names.error()));
    // An interface that failed does not keep the node's addresses stale.
    auto addrs = refresh(options.pin_dir, options.node_ips, options.lock_wait);
    if (!attached && !addrs)
        return plain_error(attached.error().message + "; " + addrs.error().message);
    if (!attached)
        return std::unexpected(attached.error());
    if (!addrs)
        return std::unexpected(addrs.error());
    return NodeState{std::move(*attached), std::move(*addrs)};
}

Result<void> watch(WatchOptions options, int control_fd, const std::function<WatchControl()>& on_control,
                   const std::function<void(const Resync&)>& report) {
    using Clock = std::chrono::steady_clock;
    if (auto ok = check_followable(options.pin_dir); !ok)
        return ok;
    // Subscribed before the first resync, so a change during it is not missed.
    auto events = netlink::subscribe(wants_routes(options));
    if (!events)
        return std::unexpected(events.error());

    // When the next resync is due; max(): none pending. (Not an optional:
    // g++ 12 warns about it, wrongly, as maybe uninitialized.)
    constexpr auto none = Clock::time_point::max();
    auto due = Clock::now();  // the first one
    auto retry = options.retry_first;
    for (;;) {
        if (due != none && Clock::now() >= due) {
            due = none;
            Resync resync{sync_node(options), std::chrono::milliseconds{0}};
            if (resync.state) {
                retry = options.retry_first;
            } else {
                resync.retry_in = retry;
                due = Clock::now() + retry;
                retry = std::min(retry * 2, options.retry_max);
            }
            report(resync);
        }
        int timeout_ms = -1;
        if (due != none)
            timeout_ms = static_cast<int>(
                std::max<std::int64_t>(0, std::chrono::ceil<std::chrono::milliseconds>(due - Clock::now()).count()));
        pollfd fds[] = {{control_fd, POLLIN, 0}, {events->get(), POLLIN, 0}};
        int n = ::poll(fds, 2, timeout_ms);
        if (n < 0 && errno != EINTR)
            return errno_error(errno, "wait for rtnetlink notifications");
        if (n > 0 && fds[0].revents) {
            auto control = on_control();
            if (control.stop)
                return {};
            if (control.reload) {
                // Subscribed again first when the new options need other
                // notifications; a change in between is covered by the resync.
                if (wants_routes(*control.reload) != wants_routes(options)) {
                    auto resubscribed = netlink::subscribe(wants_routes(*control.reload));
                    if (!resubscribed)
                        return std::unexpected(resubscribed.error());
                    events = std::move(resubscribed);
                }
                options = std::move(*control.reload);
                retry = options.retry_first;
                due = Clock::now();
            }
        }
        if (n > 0 && fds[1].revents) {
            if (auto ok = netlink::drain(events->get()); !ok)
                return ok;
            // A burst's first notification starts the wait; a pending retry
            // comes sooner.
            due = std::min(due, Clock::now() + options.settle);
        }
    }
}

}  // namespace nodeport
