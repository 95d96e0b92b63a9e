#include "datapath/tc_programs.hpp"

#include <bpf/bpf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "base/libbpf_log.hpp"

namespace nodeport::tc {
namespace {

constexpr const char* progs_dir = "progs";

// bpffs refuses names with a dot, hence "_new".
std::string pin_path(std::string_view name, bool staged = false) {
    return std::string(progs_dir) + "/" + std::string(name) + (staged ? "_new" : "");
}

Result<void> pin_one(const PinDir& dir, int prog_fd, std::string_view name) {
    const auto staged = pin_path(name, true);
    dir.unlink(staged);  // left by a load that died between pin and rename
    if (int err = dir.obj_pin(prog_fd, staged); err != 0)
        return libbpf_error(-err, "pin " + dir.shown(staged).string());
    if (dir.rename(staged, pin_path(name)) != 0) {
        int err = errno;
        dir.unlink(staged);
        return errno_error(err, "rename " + dir.shown(staged).string() + " to " + dir.shown(pin_path(name)).string());
    }
    return {};
}

Result<Fd> open_one(const PinDir& dir, std::string_view name) {
    const auto pin = pin_path(name);
    const auto path = dir.shown(pin);
    Fd fd(dir.obj_get(pin));
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
Result<std::pair<Fd, Fd>> open_pair(const PinDir& dir, std::string_view ingress,
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

Result<void> pin_programs(const PinDir& dir, const ProgramFds& programs) {
    if (::mkdirat(dir.fd(), progs_dir, 0700) != 0 && errno != EEXIST)
        return errno_error(errno, "create " + dir.shown(progs_dir).string());
    // PinDir::obj_pin refuses a progs that is a symbolic link (O_NOFOLLOW).
    for (auto [fd, name] : {std::pair{programs.ingress, ingress_name}, std::pair{programs.egress, egress_name},
                            std::pair{programs.l3_ingress, l3_ingress_name},
                            std::pair{programs.l3_egress, l3_egress_name}}) {
        if (fd >= 0) {
            if (auto ok = pin_one(dir, fd, name); !ok)
                return ok;
        } else if (dir.unlink(pin_path(name)) != 0 && errno != ENOENT) {
            return errno_error(errno, "unpin " + dir.shown(pin_path(name)).string());
        }
    }
    return {};
}

Result<PinnedPrograms> open_pinned_programs(const PinDir& dir) {
    auto ethernet = open_pair(dir, ingress_name, egress_name);
    if (!ethernet)
        return std::unexpected(ethernet.error());
    PinnedPrograms out{std::move(ethernet->first), std::move(ethernet->second), Fd(), Fd()};
    if (dir.exists(pin_path(l3_ingress_name)) || dir.exists(pin_path(l3_egress_name))) {
        auto l3 = open_pair(dir, l3_ingress_name, l3_egress_name);
        if (!l3)
            return std::unexpected(l3.error());
        out.l3_ingress = std::move(l3->first);
        out.l3_egress = std::move(l3->second);
    }
    return out;
}

Result<void> unpin_programs(const PinDir& dir) {
    for (auto name : {ingress_name, egress_name, l3_ingress_name, l3_egress_name})
        for (bool staged : {false, true})
            if (dir.unlink(pin_path(name, staged)) != 0 && errno != ENOENT)
                return errno_error(errno, "unpin " + dir.shown(pin_path(name, staged)).string());
    if (::unlinkat(dir.fd(), progs_dir, AT_REMOVEDIR) != 0 && errno != ENOENT)
        return errno_error(errno, "remove " + dir.shown(progs_dir).string());
    return {};
}

}  // namespace nodeport::tc
