#include "nodeport/watch.hpp"

#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>

#include "base/netlink.hpp"
#include "base/netns.hpp"
#include "base/pin_dir.hpp"
#include "base/test_hook.hpp"
#include "datapath/iface_choice.hpp"
#include "datapath/interfaces_locked.hpp"
#include "datapath/tc_attach.hpp"
#include "nodeport/datapath.hpp"
#include "nodeport/interfaces.hpp"

namespace nodeport {
namespace {

// The choice a resync follows: the options', recorded as the one in force
// when it is not yet (`record`: the caller holds the pin directory lock); or
// the recorded one; or, with none recorded (pins of an earlier nodeport), the
// default route's interface, as watch always did.
Result<std::pair<RecordedChoice, bool>> followed_choice(const PinDir& dir, const WatchOptions& options,
                                                        bool record) {
    auto recorded = recorded_interface_choice(dir);
    if (!recorded)
        return std::unexpected(recorded.error());
    if (options.interfaces) {
        RecordedChoice given{*options.interfaces, options.tc_attach.value_or(TcAttachMode::automatic)};
        if (record && *recorded != given)
            if (auto ok = iface_choice::record(dir, given); !ok)
                return std::unexpected(ok.error());
        return std::pair{given, false};
    }
    RecordedChoice followed = recorded->value_or(RecordedChoice{});
    if (options.tc_attach)
        followed.tc_attach = *options.tc_attach;
    return std::pair{followed, true};
}

// Route notifications only matter when the default route picks the interface.
bool wants_routes(const InterfaceChoice& choice) {
    return choice.kind == InterfaceChoice::Kind::default_route;
}

// The interfaces nodeport is attached to now, by name.
std::vector<std::string> attached_names(const PinDir& dir) {
    std::vector<std::string> names;
    if (auto map = dir.map("tc_attachments"))
        if (auto attached = tc::list(map->get()))
            for (const auto& a : *attached)
                names.push_back(a.interface);
    return names;
}

// Attaches what the followed choice names, noting the choice and what was
// left out in `state`. The choice is read, and what it names attached, under
// one hold of the lock: a load that records another choice in between would
// otherwise have its attachments undone by the choice it replaced
// (watch_limit_test saw `load --iface ext0` followed by a resync attaching
// the 61 of `--iface all` again).
Result<std::vector<TcAttachment>> attach_followed(const WatchOptions& options, NodeState& state) {
    auto locked = pin_dir::open_locked(options.pin_dir, options.lock_wait);
    if (!locked)
        return std::unexpected(locked.error());
    auto followed = followed_choice(locked->dir, options, true);
    if (!followed)
        return std::unexpected(followed.error());
    state.followed = followed->first;
    state.from_record = followed->second;
    auto names = choose_interfaces(state.followed.choice);
    if (!names)
        return std::unexpected(names.error());
    state.chosen = names->size();
    // More than fit: which are attached is decided here, so the records
    // never overflow and what is attached stays put.
    auto fit = within_limit(*names, attached_names(locked->dir));
    state.unattached = std::move(fit.left);
    if (auto ok = test_hook("watch:chosen"); !ok)
        return std::unexpected(ok.error());
    return attach_interfaces_locked(locked->dir, fit.attach, state.followed.tc_attach);
}

}  // namespace

Result<NodeState> sync_node(const WatchOptions& options) {
    NodeState state;
    auto attached = attach_followed(options, state);
    // An interface that failed does not keep the node's addresses stale.
    auto addrs = refresh(options.pin_dir, options.node_ips, options.lock_wait);
    if (!attached && !addrs)
        return plain_error(attached.error().message + "; " + addrs.error().message);
    if (!attached)
        return std::unexpected(attached.error());
    if (!addrs)
        return std::unexpected(addrs.error());
    state.interfaces = std::move(*attached);
    state.node_addrs = std::move(*addrs);
    return state;
}

Result<void> watch(WatchOptions options, int control_fd, const std::function<WatchControl()>& on_control,
                   const std::function<void(const Resync&)>& report) {
    using Clock = std::chrono::steady_clock;
    auto opened = PinDir::open(options.pin_dir);
    if (!opened)
        return std::unexpected(opened.error());
    // What no resync can fix (not loaded, another namespace's load): the
    // watch ends with it at start rather than retry it forever.
    if (auto ok = netns::check_loaded_here(*opened, "watch"); !ok)
        return ok;
    // Subscribed before the first resync, so a change during it is not missed.
    auto first = followed_choice(*opened, options, false);
    bool routes = first && wants_routes(first->first.choice);
    auto events = netlink::subscribe(routes);
    if (!events)
        return std::unexpected(events.error());
    // The choice a resync followed may need other notifications than those
    // subscribed to (the record changed, a SIGHUP): subscribed again, then
    // resynced at once, so a change in between is covered.
    auto follow_routes = [&](const InterfaceChoice& choice) -> Result<bool> {
        if (wants_routes(choice) == routes)
            return false;
        auto resubscribed = netlink::subscribe(wants_routes(choice));
        if (!resubscribed)
            return std::unexpected(resubscribed.error());
        events = std::move(resubscribed);
        routes = wants_routes(choice);
        return true;
    };

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
                auto again = follow_routes(resync.state->followed.choice);
                if (!again)
                    return std::unexpected(again.error());
                if (*again)
                    due = Clock::now();
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
                // The resync below subscribes again when the new options need
                // other notifications.
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
