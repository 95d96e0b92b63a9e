#include "datapath/pinned_link.hpp"

#include <bpf/bpf.h>

#include <cerrno>
#include <memory>
#include <string>

#include "base/libbpf_log.hpp"

namespace nodeport {

Result<Fd> program_of_link(int link_fd) {
    bpf_link_info info{};
    __u32 len = sizeof info;
    if (bpf_link_get_info_by_fd(link_fd, &info, &len) != 0)
        return errno_error(errno, "read link info");
    Fd prog(bpf_prog_get_fd_by_id(info.prog_id));
    if (!prog.valid())
        return errno_error(errno, "open program " + std::to_string(info.prog_id));
    return prog;
}

Result<std::vector<PinnedLink>> pinned_links(const PinDir& dir) {
    auto names = dir.link_names();
    if (!names)
        return std::unexpected(names.error());
    std::vector<PinnedLink> links;
    for (const auto& name : *names) {
        const auto pin = link_pin(name);
        Fd link(dir.obj_get(pin));
        if (!link.valid() && errno == ENOENT)
            continue;
        PinnedLink out{name, {}};
        __u32 len = sizeof out.info;
        if (!link.valid() || bpf_link_get_info_by_fd(link.get(), &out.info, &len) != 0)
            return errno_error(errno, "read link " + dir.shown(pin).string());
        links.push_back(std::move(out));
    }
    return links;
}

Result<void> attach_pinned(const PinDir& dir, int prog_fd, const std::string& pin,
                           const std::function<int()>& make_link, const std::string& what, UndoLog& undo) {
    // Closing our fd leaves the link attached: the pin holds it.
    if (auto existing = std::make_shared<Fd>(dir.obj_get(pin)); existing->valid()) {
        auto old = program_of_link(existing->get());
        if (!old)
            return std::unexpected(old.error());
        if (bpf_link_update(existing->get(), prog_fd, nullptr) != 0)
            return libbpf_error(errno, "replace the program of " + dir.shown(pin).string());
        undo.add([existing, old = std::make_shared<Fd>(std::move(*old))] {
            bpf_link_update(existing->get(), old->get(), nullptr);
        });
        return {};
    }
    if (!make_link)
        return {};
    auto link = std::make_shared<Fd>(make_link());
    if (!link->valid())
        return libbpf_error(errno, "attach " + what);
    if (int err = dir.obj_pin(link->get(), pin); err != 0)
        return libbpf_error(-err, "pin " + dir.shown(pin).string());
    undo.add([&dir, link, pin] {
        bpf_link_detach(link->get());
        dir.unlink(pin);
    });
    return {};
}

}  // namespace nodeport
