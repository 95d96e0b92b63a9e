#include "nodeport/datapath.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fmt/format.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <functional>
#include <memory>

#include "base/libbpf_log.hpp"
#include "base/map_catalog.hpp"
#include "base/netlink.hpp"
#include "base/netns.hpp"
#include "base/pin_dir.hpp"
#include "base/test_hook.hpp"
#include "datapath/abi1_migration.hpp"
#include "datapath/flow_migration.hpp"
#include "datapath/node_addrs.hpp"
#include "datapath/pin_removal.hpp"
#include "datapath/sock_end_install.hpp"
#include "datapath/tc_attach.hpp"
#include "datapath/tc_programs.hpp"
#include "nodeport/abi.h"
#include "sock.skel.h"
#include "tc.skel.h"

namespace nodeport {

Result<void> remove_pins(const PinDir& dir, UnloadReport& report, bool remove_dir) {
    // TC first (clsact filters are not links), then the links.
    if (auto attachments = dir.map("tc_attachments"); attachments) {
        if (auto ok = tc::detach_all(dir, attachments->get(), report); !ok)
            return ok;
    }
    auto names = dir.link_names();
    if (!names)
        return std::unexpected(names.error());
    for (const auto& name : *names) {
        const auto pin = link_pin(name);
        // Removing a link's last pin detaches it only later (the kernel frees
        // the file after RCU and the link from a work queue): detach it now,
        // so nothing is attached once unload returns. Iterator links cannot
        // be detached and attach to nothing. A symbolic link is not followed
        // (obj_get refuses it), only removed.
        if (Fd link(dir.obj_get(pin)); link.valid())
            if (bpf_link_detach(link.get()) != 0 && errno != EOPNOTSUPP && errno != EINVAL)
                return errno_error(errno, "detach " + dir.shown(pin).string());
        if (dir.unlink(pin) != 0)
            return errno_error(errno, "unpin " + dir.shown(pin).string());
        ++report.links;
    }
    if (::unlinkat(dir.fd(), "links", AT_REMOVEDIR) != 0 && errno != ENOENT)
        return errno_error(errno, "remove " + dir.shown("links").string());
    if (auto ok = tc::unpin_programs(dir); !ok)
        return ok;
    for (const auto& map : map_catalog::pinned_maps()) {
        if (dir.unlink(map.name) == 0)
            ++report.maps;
        else if (errno != ENOENT)
            return errno_error(errno, "unpin " + dir.shown(map.name).string());
    }
    if (auto ok = Abi1Migration::remove_leftover(dir); !ok)
        return ok;
    if (auto ok = FlowMigration::remove_leftover(dir); !ok)
        return ok;
    if (remove_dir && ::rmdir(dir.path().c_str()) != 0)
        return errno_error(errno, "remove " + dir.path().string() + " (something else is pinned there)");
    return {};
}

Result<UnloadReport> unload(const std::filesystem::path& dir, std::chrono::milliseconds lock_wait) {
    // Pins this build can migrate it can also remove: only tc_attachments is
    // read, and its layout is the same in every ABI so far.
    auto locked = pin_dir::open_locked_any_abi(dir, lock_wait);
    if (!locked)
        return std::unexpected(locked.error());
    if (auto config = locked->dir.config(); !config)
        return std::unexpected(config.error());
    else if (const unsigned abi = config->abi_version; abi > NODEPORT_ABI_VERSION)
        return plain_error(fmt::format("the maps pinned at {} use map ABI v{}, unknown to this nodeport (v{}): "
                                       "unload with the nodeport that loaded them",
                                       dir.string(), abi, NODEPORT_ABI_VERSION),
                           ErrorKind::abi_mismatch);
    // No node_config: a load killed before it pinned its maps, whose other
    // pins go all the same; a directory holding anything else is another's.
    if (auto ok = pin_dir::check_adoptable(locked->dir); !ok)
        return std::unexpected(ok.error());
    UnloadReport report;
    if (auto ok = test_hook("unload:start"); !ok)
        return std::unexpected(ok.error());
    if (auto ok = remove_pins(locked->dir, report, /*remove_dir=*/true); !ok)
        return std::unexpected(ok.error());
    return report;
}

Result<std::vector<NodeAddr>> refresh(const std::filesystem::path& dir, const std::vector<IpAddr>& node_ips,
                                      std::chrono::milliseconds lock_wait) {
    if (auto ok = check_node_ips(node_ips); !ok)
        return input_error(ok.error().field, ok.error().message);
    auto addrs = resolve_node_addrs(node_ips);
    if (!addrs)
        return std::unexpected(addrs.error());
    auto locked = pin_dir::open_locked(dir, lock_wait);
    if (!locked)
        return std::unexpected(locked.error());
    // Another namespace's addresses would replace the node's.
    if (auto ok = netns::check_loaded_here(locked->dir, "refresh"); !ok)
        return std::unexpected(ok.error());
    auto map = locked->dir.map("node_addrs");
    if (!map)
        return std::unexpected(map.error());
    if (auto ok = write_node_addrs(map->get(), *addrs); !ok)
        return std::unexpected(ok.error());
    return *addrs;
}

Result<std::vector<TcAttachment>> external_interfaces(const std::filesystem::path& pin_dir) {
    return pin_dir::with_opened(pin_dir, [](const PinDir& dir) { return external_interfaces(dir); });
}

Result<std::vector<TcAttachment>> external_interfaces(const PinDir& dir) {
    auto attachments = dir.map("tc_attachments");
    if (!attachments)
        return std::unexpected(attachments.error());
    return tc::list(attachments->get());
}

}  // namespace nodeport
