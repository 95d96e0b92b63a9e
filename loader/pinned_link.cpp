#include "pinned_link.hpp"

#include <cerrno>
#include <memory>
#include <string>

#include "libbpf_log.hpp"

namespace nodeport {

using Link = std::unique_ptr<bpf_link, decltype(&bpf_link__destroy)>;

Result<void> attach_pinned(bpf_program* prog, const std::filesystem::path& pin,
                           const std::function<bpf_link*()>& attach) {
    // bpf_link__destroy only closes our fd: the pin keeps the link attached.
    if (Link existing(bpf_link__open(pin.c_str()), bpf_link__destroy); existing) {
        if (int err = bpf_link__update_program(existing.get(), prog); err != 0)
            return libbpf_error(-err, "replace the program of " + pin.string());
        return {};
    }
    if (!attach)
        return {};
    Link link(attach(), bpf_link__destroy);
    if (!link)
        return libbpf_error(errno, "attach " + std::string(bpf_program__name(prog)) + " (" + pin.filename().string() + ")");
    if (int err = bpf_link__pin(link.get(), pin.c_str()); err != 0)
        return libbpf_error(-err, "pin " + pin.string());
    return {};
}

}  // namespace nodeport
