#include "pinned_link.hpp"

#include <bpf/bpf.h>

#include <cerrno>
#include <memory>
#include <string>

#include "libbpf_log.hpp"
#include "pin_dir.hpp"

namespace nodeport {

using Link = std::unique_ptr<bpf_link, decltype(&bpf_link__destroy)>;

Result<void> attach_pinned(bpf_program* prog, const std::filesystem::path& pin,
                           const std::function<bpf_link*()>& attach) {
    if (Fd existing(pin_dir::obj_get(pin)); existing.valid()) {
        if (int err = bpf_link_update(existing.get(), bpf_program__fd(prog), nullptr); err != 0)
            return libbpf_error(-err, "replace the program of " + pin.string());
        return {};
    }
    if (!attach)
        return {};
    // bpf_link__destroy only closes our fd: the pin keeps the link attached.
    Link link(attach(), bpf_link__destroy);
    if (!link)
        return libbpf_error(errno, "attach " + std::string(bpf_program__name(prog)) + " (" + pin.filename().string() + ")");
    if (int err = pin_dir::obj_pin(bpf_link__fd(link.get()), pin); err != 0)
        return libbpf_error(-err, "pin " + pin.string());
    return {};
}

}  // namespace nodeport
