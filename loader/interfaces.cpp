// Choosing the interfaces for the TC programs, and attaching to them with the
// programs `load` pinned.
#include "nodeport/interfaces.hpp"

#include <fnmatch.h>
#include <net/if.h>

#include <algorithm>

#include "libbpf_log.hpp"
#include "netlink.hpp"
#include "netns.hpp"
#include "pin_dir.hpp"
#include "tc_attach.hpp"
#include "tc_programs.hpp"

namespace nodeport {
namespace {

bool excluded(const std::string& name, const std::vector<std::string>& patterns) {
    return std::ranges::any_of(patterns, [&](const auto& p) { return ::fnmatch(p.c_str(), name.c_str(), 0) == 0; });
}

}  // namespace

Result<std::vector<std::string>> choose_interfaces(const InterfaceChoice& choice) {
    using Kind = InterfaceChoice::Kind;
    switch (choice.kind) {
    case Kind::none:
        return std::vector<std::string>{};
    case Kind::default_route: {
        auto name = netlink::default_route_interface();
        if (!name)
            return std::unexpected(name.error());
        return std::vector<std::string>{*name};
    }
    case Kind::named: {
        std::vector<std::string> out;
        for (const auto& name : choice.names)
            if (::if_nametoindex(name.c_str()) != 0)
                out.push_back(name);
        return out;
    }
    case Kind::all:
        break;
    }
    auto links = netlink::list_links();
    if (!links)
        return std::unexpected(links.error());
    std::vector<std::string> out;
    for (const auto& link : *links)
        if (!link.loopback && link.master == 0 && !excluded(link.name, choice.exclude))
            out.push_back(link.name);
    std::ranges::sort(out);
    return out;
}

std::string describe(const InterfaceChoice& choice) {
    using Kind = InterfaceChoice::Kind;
    std::string out;
    switch (choice.kind) {
    case Kind::none:
        return "--local-only";
    case Kind::default_route:
        return "the default route's interface";
    case Kind::named:
        for (const auto& name : choice.names)
            out += (out.empty() ? "--iface " : " --iface ") + name;
        return out.empty() ? "--iface (none)" : out;
    case Kind::all:
        out = "--iface all";
        for (const auto& pattern : choice.exclude)
            out += " --exclude " + pattern;
        return out;
    }
    return "?";
}

WithinLimit within_limit(const std::vector<std::string>& chosen, const std::vector<std::string>& attached,
                         std::size_t limit) {
    WithinLimit out;
    for (const auto& name : chosen)
        if (std::ranges::find(attached, name) != attached.end() && out.attach.size() < limit)
            out.attach.push_back(name);
    for (const auto& name : chosen) {
        if (std::ranges::find(out.attach, name) != out.attach.end())
            continue;
        (out.attach.size() < limit ? out.attach : out.left).push_back(name);
    }
    return out;
}

Result<std::vector<TcAttachment>> attach_interfaces(const std::filesystem::path& dir,
                                                    const std::vector<std::string>& interfaces, TcAttachMode mode,
                                                    std::chrono::milliseconds lock_wait) {
    // libbpf's messages are kept for errors, not printed: re-adding a clsact
    // qdisc that exists, on every resync, makes the kernel say so. Whatever
    // an earlier call left is stale.
    auto log_capture = capture_libbpf_log();
    (void)take_libbpf_log();
    auto locked = pin_dir::open_locked(dir, lock_wait);
    if (!locked)
        return std::unexpected(locked.error());
    if (auto ok = netns::check_loaded_here(dir, "watch"); !ok)
        return std::unexpected(ok.error());
    // Opened under the lock: a load running meanwhile has pinned its programs.
    auto programs = tc::open_pinned_programs(dir);
    if (!programs)
        return std::unexpected(programs.error());
    auto attachments = pin_dir::open_map(dir, "tc_attachments");
    if (!attachments)
        return std::unexpected(attachments.error());
    // What attached is kept even when another interface fails: a resync is
    // done again at the next change or retry.
    UndoLog kept;
    auto attached = tc::attach(dir, tc::ProgramFds{programs->ingress.get(), programs->egress.get()}, interfaces, mode,
                               attachments->get(), kept, tc::OnFailure::keep_going);
    kept.commit();
    return attached;
}

}  // namespace nodeport
