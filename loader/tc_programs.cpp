#include "tc_programs.hpp"

#include <bpf/bpf.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "libbpf_log.hpp"
#include "pin_dir.hpp"

namespace nodeport::tc {
namespace {

// bpffs refuses names with a dot, hence "_new".
std::filesystem::path pin_path(const std::filesystem::path& dir, std::string_view name, bool staged = false) {
    return progs_dir(dir) / (std::string(name) + (staged ? "_new" : ""));
}

Result<void> pin_one(const std::filesystem::path& dir, int prog_fd, std::string_view name) {
    auto staged = pin_path(dir, name, true);
    pin_dir::unlink(staged);  // left by a load that died between pin and rename
    if (int err = pin_dir::obj_pin(prog_fd, staged); err != 0)
        return libbpf_error(-err, "pin " + staged.string());
    if (pin_dir::rename(staged, pin_path(dir, name)) != 0) {
        int err = errno;
        pin_dir::unlink(staged);
        return errno_error(err, "rename " + staged.string() + " to " + pin_path(dir, name).string());
    }
    return {};
}

Result<Fd> open_one(const std::filesystem::path& dir, std::string_view name) {
    auto path = pin_path(dir, name);
    Fd fd(pin_dir::obj_get(path));
    if (!fd.valid())
        return errno == ENOENT ? plain_error("no pinned TC program " + path.string() +
                                             " (pinned by load since this version: run nodeport load again)")
                               : errno_error(errno, "open pinned program " + path.string());
    bpf_prog_info info{};
    __u32 len = sizeof info;
    if (bpf_prog_get_info_by_fd(fd.get(), &info, &len) != 0 || info.type != BPF_PROG_TYPE_SCHED_CLS ||
        std::string_view(info.name) != name.substr(0, sizeof info.name - 1))
        return plain_error("not a nodeport program: " + path.string() + ": remove it or use another --pin-dir");
    return fd;
}

// One build's two programs.
Result<std::pair<Fd, Fd>> open_pair(const std::filesystem::path& dir, std::string_view ingress,
                                    std::string_view egress) {
    auto in = open_one(dir, ingress);
    if (!in)
        return std::unexpected(in.error());
    auto out = open_one(dir, egress);
    if (!out)
        return std::unexpected(out.error());
    return std::pair{std::move(*in), std::move(*out)};
}

}  // namespace

Result<void> pin_programs(const std::filesystem::path& dir, const ProgramFds& programs) {
    if (::mkdir(progs_dir(dir).c_str(), 0700) != 0 && errno != EEXIST)
        return errno_error(errno, "create " + progs_dir(dir).string());
    // pin_dir::obj_pin refuses a progs that is a symbolic link (O_NOFOLLOW).
    for (auto [fd, name] : {std::pair{programs.ingress, ingress_name}, std::pair{programs.egress, egress_name},
                            std::pair{programs.l3_ingress, l3_ingress_name},
                            std::pair{programs.l3_egress, l3_egress_name}}) {
        if (fd >= 0) {
            if (auto ok = pin_one(dir, fd, name); !ok)
                return ok;
        } else if (pin_dir::unlink(pin_path(dir, name)) != 0 && errno != ENOENT) {
            return errno_error(errno, "unpin " + pin_path(dir, name).string());
        }
    }
    return {};
}

Result<PinnedPrograms> open_pinned_programs(const std::filesystem::path& dir) {
    auto ethernet = open_pair(dir, ingress_name, egress_name);
    if (!ethernet)
        return std::unexpected(ethernet.error());
    PinnedPrograms out{std::move(ethernet->first), std::move(ethernet->second), Fd(), Fd()};
    if (pin_dir::exists(pin_path(dir, l3_ingress_name)) || pin_dir::exists(pin_path(dir, l3_egress_name))) {
        auto l3 = open_pair(dir, l3_ingress_name, l3_egress_name);
        if (!l3)
            return std::unexpected(l3.error());
        out.l3_ingress = std::move(l3->first);
        out.l3_egress = std::move(l3->second);
    }
    return out;
}

Result<void> unpin_programs(const std::filesystem::path& dir) {
    for (auto name : {ingress_name, egress_name, l3_ingress_name, l3_egress_name})
        for (bool staged : {false, true})
            if (pin_dir::unlink(pin_path(dir, name, staged)) != 0 && errno != ENOENT)
                return errno_error(errno, "unpin " + pin_path(dir, name, staged).string());
    if (::rmdir(progs_dir(dir).c_str()) != 0 && errno != ENOENT)
        return errno_error(errno, "remove " + progs_dir(dir).string());
    return {};
}

}  // namespace nodeport::tc
