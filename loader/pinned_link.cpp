#include "pinned_link.hpp"

#include <bpf/bpf.h>

#include <cerrno>
#include <memory>
#include <string>

#include "libbpf_log.hpp"
#include "pin_dir.hpp"

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

Result<std::vector<PinnedLink>> pinned_links(const std::filesystem::path& dir) {
    auto names = pin_dir::link_names(dir);
    if (!names)
        return std::unexpected(names.error());
    std::vector<PinnedLink> links;
    for (const auto& name : *names) {
        const auto pin = pin_dir::links_dir(dir) / name;
        Fd link(pin_dir::obj_get(pin));
        if (!link.valid() && errno == ENOENT)
            continue;
        PinnedLink out{name, {}};
        __u32 len = sizeof out.info;
        if (!link.valid() || bpf_link_get_info_by_fd(link.get(), &out.info, &len) != 0)
            return errno_error(errno, "read link " + pin.string());
        links.push_back(std::move(out));
    }
    return links;
}

Result<void> attach_pinned(int prog_fd, const std::filesystem::path& pin, const std::function<int()>& make_link,
                           const std::string& what, UndoLog& undo) {
    // Closing our fd leaves the link attached: the pin holds it.
    if (auto existing = std::make_shared<Fd>(pin_dir::obj_get(pin)); existing->valid()) {
        auto old = program_of_link(existing->get());
        if (!old)
            return std::unexpected(old.error());
        if (bpf_link_update(existing->get(), prog_fd, nullptr) != 0)
            return libbpf_error(errno, "replace the program of " + pin.string());
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
    if (int err = pin_dir::obj_pin(link->get(), pin); err != 0)
        return libbpf_error(-err, "pin " + pin.string());
    undo.add([link, pin] {
        bpf_link_detach(link->get());
        pin_dir::unlink(pin);
    });
    return {};
}

}  // namespace nodeport
