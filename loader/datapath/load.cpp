// Loading nodeport: the BPF objects, their maps pinned by name, the links
// and TC attachments, each step recorded so that a load that fails half-way
// is taken back whole (undo_log.hpp).
#include "nodeport/datapath.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>

#include "base/bpf_clock.hpp"
#include "base/libbpf_log.hpp"
#include "base/map_catalog.hpp"
#include "base/map_keys.hpp"
#include "base/netns.hpp"
#include "base/pin_dir.hpp"
#include "base/sysctl.hpp"
#include "base/test_hook.hpp"
#include "base/undo_log.hpp"
#include "datapath/abi1_migration.hpp"
#include "datapath/flow_migration.hpp"
#include "datapath/iface_choice.hpp"
#include "datapath/node_addrs.hpp"
#include "datapath/pin_removal.hpp"
#include "datapath/pinned_link.hpp"
#include "datapath/sock_end_install.hpp"
#include "datapath/tc_attach.hpp"
#include "datapath/tc_programs.hpp"
#include "nodeport/abi.h"
#include "nodeport/interfaces.hpp"
#include "sock.skel.h"
#include "tc.skel.h"

namespace nodeport {
namespace {

using SockSkel = std::unique_ptr<sock_bpf, decltype(&sock_bpf__destroy)>;
using TcSkel = std::unique_ptr<tc_bpf, decltype(&tc_bpf__destroy)>;

Result<Fd> open_cgroup(const std::filesystem::path& cgroup) {
    Fd fd(::open(cgroup.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd.valid())
        return errno_error(errno, "open cgroup " + cgroup.string());
    struct statfs st{};
    if (::fstatfs(fd.get(), &st) != 0 || st.f_type != CGROUP2_SUPER_MAGIC)
        return plain_error(cgroup.string() + " is not a cgroup v2 directory");
    return fd;
}

// On cgroup2 a directory's inode number is the cgroup id that link info reports.
Result<std::uint64_t> cgroup_id(int cgroup_fd) {
    struct stat st{};
    if (::fstat(cgroup_fd, &st) != 0)
        return errno_error(errno, "stat cgroup");
    return st.st_ino;
}

// Whether the cgroup with this id still exists. A cgroup2 id is the kernfs
// node id of its directory, which open_by_handle_at resolves on the cgroup2
// mount (any cgroup's fd names the mount). A removed cgroup lingers, dying,
// until the kernel has released what it holds, and meanwhile its links still
// report its id: without this, a load right after the cgroup was removed and
// made again would be taken for a move to another cgroup. When the kernel
// cannot tell, it counts as alive: the refusal is the safe side.
bool cgroup_alive(int cgroup2_fd, std::uint64_t id) {
    constexpr int fileid_kernfs = 0xfe;  // include/linux/exportfs.h, not in the UAPI headers
    alignas(file_handle) unsigned char buf[sizeof(file_handle) + sizeof id];
    auto* handle = reinterpret_cast<file_handle*>(buf);
    handle->handle_bytes = sizeof id;
    handle->handle_type = fileid_kernfs;
    std::memcpy(handle->f_handle, &id, sizeof id);
    Fd fd(::open_by_handle_at(cgroup2_fd, handle, O_RDONLY | O_CLOEXEC));
    return fd.valid() || (errno != ESTALE && errno != ENOENT);
}

// A second load must not move the hooks: refuse, before changing anything,
// when the pinned cgroup links sit on another cgroup than the one asked for.
// Returns the links whose cgroup is gone (removed, perhaps made again at
// the same path; or still dying): they hold nothing, and this load attaches
// anew.
Result<std::vector<std::string>> check_links_cgroup(const PinDir& dir, int cgroup_fd) {
    std::vector<std::string> defunct;
    if (cgroup_fd < 0)
        return defunct;
    auto want = cgroup_id(cgroup_fd);
    if (!want)
        return std::unexpected(want.error());
    auto links = pinned_links(dir);
    if (!links)
        return std::unexpected(links.error());
    for (const auto& [name, info] : *links) {
        if (info.type != BPF_LINK_TYPE_CGROUP)
            continue;
        if (info.cgroup.cgroup_id == 0 || !cgroup_alive(cgroup_fd, info.cgroup.cgroup_id))
            defunct.push_back(link_pin(name));
        else if (info.cgroup.cgroup_id != *want)
            return plain_error("nodeport is already attached to another cgroup (id " +
                               std::to_string(info.cgroup.cgroup_id) + ") at " + dir.path().string() +
                               "; unload it first");
    }
    return defunct;
}

// Either way of forwarding needs IPv4 forwarding on (the FIB lookup checks
// it too): without it every translated packet would be dropped silently.
Result<void> check_ip_forward() {
    auto enabled = read_ip_forward();
    if (!enabled)
        return std::unexpected(enabled.error());
    if (!*enabled)
        return plain_error("net.ipv4.ip_forward is 0 in this network namespace, so the kernel would drop every "
                           "packet nodeport translates; enable it (sysctl -w net.ipv4.ip_forward=1) or pass "
                           "--local-only");
    return {};
}

Result<void> write_timeouts(int map_fd, const FlowTimeouts& t) {
    using std::chrono::nanoseconds;
    np_flow_timeouts value{};
    value.tcp_established_ns = nanoseconds(t.tcp_established).count();
    value.tcp_syn_ns = nanoseconds(t.tcp_syn).count();
    value.tcp_closing_ns = nanoseconds(t.tcp_closing).count();
    value.udp_idle_ns = nanoseconds(t.udp).count();
    __u32 zero = 0;
    if (bpf_map_update_elem(map_fd, &zero, &value, BPF_ANY) != 0)
        return errno_error(errno, "write flow timeouts map");
    return {};
}

Result<void> write_config(int config_fd) {
    auto cookie = netns::current_cookie();
    if (!cookie)
        return std::unexpected(cookie.error());
    __u32 zero = 0;
    np_config cfg{};
    cfg.abi_version = NODEPORT_ABI_VERSION;
    cfg.flags = NP_CONFIG_SOCK_END_PENDING;  // a killed write's targets may wait: the load's own walk looks
    cfg.node_netns_cookie = *cookie;
    if (bpf_map_update_elem(config_fd, &zero, &cfg, BPF_ANY) != 0)
        return errno_error(errno, "write config map");
    return {};
}

// What a load over the pins of an older map ABI moves to this build's
// layouts: `ports` from ABI 1, the flow tables from ABI 1 and 2 (ABI 3's
// layouts are this build's: only node_config's version changes).
struct Migrations {
    unsigned from_abi = 0;
    std::optional<Abi1Migration> ports;
    std::optional<FlowMigration> flows;
    std::size_t flows_copied = 0;
    std::uint64_t copied_since_ns = 0;  // the first copy's start: what the second copy takes
};

// Checks the pins a load finds before it changes anything: every map of this
// build's ABI has its layout; pins of ABI 1 and 2 are planned for migration
// (and those of an ABI it cannot migrate refused by Abi1Migration::plan).
Result<Migrations> check_pins(const PinDir& dir) {
    auto config = dir.config();
    if (!config)
        return std::unexpected(config.error());
    auto ports = Abi1Migration::plan(dir, config->abi_version);
    if (!ports)
        return std::unexpected(ports.error());
    auto flows = FlowMigration::plan(dir, config->abi_version);
    if (!flows)
        return std::unexpected(flows.error());
    const bool migrating = *ports || *flows;
    // ABI 3's maps have this build's layouts: adopted as they are.
    const bool older = config->abi_version != 0 && config->abi_version != NODEPORT_ABI_VERSION;
    // Pins of another layout would make libbpf refuse to reuse them with a
    // bare "parameter mismatch": name the map first. The maps a migration
    // moves were checked by its plan.
    for (const auto& map : map_catalog::pinned_maps()) {
        if (!dir.exists(map.name) ||
            (migrating && (FlowMigration::moves(map.name) || (*ports && map.name == "ports"))))
            continue;
        if (auto fd = dir.map(map.name); !fd)
            return std::unexpected(fd.error());
    }
    return Migrations{older ? config->abi_version : 0, std::move(*ports), std::move(*flows), 0};
}

// Copies the old flows into the new tables (FlowMigration::copy): every one
// the first time; after each switch (ingress, then egress), only what the
// old programs wrote since the first began, so that a flow the new programs
// ended meanwhile (a final ACK, an RST, a SYN on its tuple) stays ended.
Result<void> copy_flows(tc_bpf* tc, Migrations& migrations) {
    const std::uint64_t started = bpf_clock_ns();
    auto copied = migrations.flows->copy(bpf_map__fd(tc->maps.flows), bpf_map__fd(tc->maps.half_open_flows),
                                         bpf_map__fd(tc->maps.udp_flows), bpf_map__fd(tc->maps.node_udp),
                                         migrations.copied_since_ns);
    if (!copied)
        return std::unexpected(copied.error());
    migrations.flows_copied += *copied;
    if (migrations.copied_since_ns == 0)
        migrations.copied_since_ns = started;
    return {};
}

// Loads both objects. Both declare the shared maps pinned by name: the first
// to load creates and pins them, the second (and every later load) reuses
// them. A migration's new `ports` is filled here, before any program that
// reads it is attached (its flows are copied just before the TC programs
// switch: see load()).
Result<void> load_objects(sock_bpf* sock, tc_bpf* tc, const Migrations& migrations) {
    if (int err = sock_bpf__load(sock); err != 0)
        return libbpf_error(-err, "load socket programs (needs root and Linux >= 5.14 with BTF)");
    if (int err = tc_bpf__load(tc); err != 0)
        return libbpf_error(-err, "load TC programs (needs root and Linux >= 5.14 with BTF)");
    if (migrations.ports)
        return migrations.ports->fill(bpf_map__fd(sock->maps.ports));
    return {};
}

// Puts a value back into an array map's entry 0 when a load is taken back.
template <class Value>
void restore_on_undo(UndoLog& undo, int map_fd) {
    __u32 zero = 0;
    Value old{};
    if (bpf_map_lookup_elem(map_fd, &zero, &old) != 0)
        return;
    undo.add([map_fd, old] {
        __u32 key = 0;
        bpf_map_update_elem(map_fd, &key, &old, BPF_ANY);
    });
}

// The node addresses as they were, put back when a load is taken back.
void restore_node_addrs_on_undo(UndoLog& undo, int map_fd) {
    auto keys = map_keys<np_node_addr>(map_fd, "node_addrs");
    if (!keys)
        return;
    std::vector<std::pair<np_node_addr, np_node_addr_info>> old;
    for (const auto& key : *keys)
        if (np_node_addr_info info{}; bpf_map_lookup_elem(map_fd, &key, &info) == 0)
            old.emplace_back(key, info);
    undo.add([map_fd, old] {
        if (auto now = map_keys<np_node_addr>(map_fd, "node_addrs"))
            for (const auto& key : *now)
                bpf_map_delete_elem(map_fd, &key);
        for (const auto& [key, info] : old)
            bpf_map_update_elem(map_fd, &key, &info, BPF_ANY);
    });
}

// Links whose cgroup is gone are unpinned, so that new ones are attached;
// taken back, they are pinned again.
// `dir` outlives `undo`.
Result<void> unpin_defunct(const PinDir& dir, const std::vector<std::string>& links, UndoLog& undo) {
    for (const auto& pin : links) {
        auto link = std::make_shared<Fd>(dir.obj_get(pin));
        if (!link->valid() || dir.unlink(pin) != 0)
            return errno_error(errno, "unpin " + dir.shown(pin).string() + " (its cgroup is gone)");
        undo.add([&dir, link, pin] { dir.obj_pin(link->get(), pin); });
    }
    return {};
}

// The TC programs an earlier load pinned, pinned again when this one is taken back.
void restore_pinned_programs_on_undo(UndoLog& undo, const PinDir& dir) {
    auto old = tc::open_pinned_programs(dir);
    if (!old)
        return;
    auto kept = std::make_shared<tc::PinnedPrograms>(std::move(*old));
    undo.add([&dir, kept] { (void)tc::pin_programs(dir, kept->fds()); });
}

// How the interfaces were chosen, for watch and status (iface_choice.hpp).
// Pins of a nodeport before the record get the map now.
Result<void> record_choice(const PinDir& dir, const LoadOptions& options, Fd& map, UndoLog& undo) {
    bool created = false;
    auto opened = iface_choice::open_or_create(dir, created);
    if (!opened)
        return std::unexpected(opened.error());
    map = std::move(*opened);
    if (created)
        undo.add([&dir] { dir.unlink(iface_choice::map_name); });
    else
        restore_on_undo<np_iface_choice>(undo, map.get());
    InterfaceChoice exactly{options.interfaces.empty() ? InterfaceChoice::Kind::none : InterfaceChoice::Kind::named,
                            options.interfaces, {}};
    return iface_choice::write(map.get(), RecordedChoice{options.interface_choice.value_or(exactly), options.tc_attach});
}

}  // namespace

Result<LoadReport> load(const LoadOptions& options) {
    auto log_capture = capture_libbpf_log();
    if (auto ok = check_load_options(options); !ok)
        return input_error(ok.error().field, ok.error().message);
    // The named interfaces themselves, asked of the kernel: apart from the
    // checks above, which nodeport-cni's input checks and the fuzzers run
    // without a kernel to ask. One missing is named when attaching.
    if (auto ok = check_interfaces_here(options.interfaces, /*must_exist=*/false); !ok)
        return input_error(ok.error().field, ok.error().message);
    auto addrs = resolve_node_addrs(options.node_ips);
    if (!addrs)
        return std::unexpected(addrs.error());
    Fd cgroup;
    if (options.cgroup) {
        auto fd = open_cgroup(*options.cgroup);
        if (!fd)
            return std::unexpected(fd.error());
        cgroup = std::move(*fd);
    }
    if (!options.interfaces.empty())
        if (auto ok = check_ip_forward(); !ok)
            return std::unexpected(ok.error());
    const bool dir_existed = std::filesystem::exists(options.pin_dir);
    auto created = pin_dir::create(options.pin_dir);
    if (!created)
        return std::unexpected(created.error());
    auto locked = pin_dir::lock(std::move(*created), options.lock_wait);
    if (!locked)
        return std::unexpected(locked.error());
    const PinDir& dir = locked->dir;
    auto migrations = check_pins(dir);
    if (!migrations)
        return std::unexpected(migrations.error());
    if (auto ok = netns::check_loaded_here(dir, "load"); !ok)
        return std::unexpected(ok.error());
    if (auto ok = pin_dir::check_adoptable(dir); !ok)
        return std::unexpected(ok.error());
    const bool reused = dir.exists("node_config");
    auto defunct_links = check_links_cgroup(dir, cgroup.get());
    if (!defunct_links)
        return std::unexpected(defunct_links.error());

    // libbpf pins and reuses maps by path: safe, as the pin directory and
    // everything above it passed pin_dir's checks (only root can change
    // them), and check_pins opened every existing pin without following links.
    const std::string pin_root = dir.path().string();
    LIBBPF_OPTS(bpf_object_open_opts, open_opts, .pin_root_path = pin_root.c_str());
    SockSkel sock(sock_bpf__open_opts(&open_opts), sock_bpf__destroy);
    TcSkel tc(tc_bpf__open_opts(&open_opts), tc_bpf__destroy);
    if (!sock || !tc)
        return libbpf_error(errno, "open BPF objects");
    const tc::Programs tc_programs{tc->progs.np_tc_ingress, tc->progs.np_tc_egress, tc->progs.np_l3_ingress,
                                   tc->progs.np_l3_egress};
    tc::prepare(tc_programs, options.tc_attach);
    tc->rodata->fib_redirect = options.forwarding == Forwarding::fib;

    Fd choice_map;  // iface_choice; declared before the log, whose undo steps use it
    // From here on every change is recorded, and a failure takes them all
    // back (the log's destructor): a first load leaves no pin and nothing
    // attached (whatever a killed earlier attempt left goes too), a reload
    // leaves the node running what it ran before.
    UndoLog undo;
    if (!reused)
        undo.add([&dir, dir_existed] {
            UnloadReport ignored;
            (void)remove_pins(dir, ignored, /*remove_dir=*/!dir_existed);
        });
    if (auto ok = pin_dir::make_links_dir(dir); !ok)
        return std::unexpected(ok.error());
    if (auto* ports = migrations->ports ? &*migrations->ports : nullptr) {
        if (auto ok = ports->set_aside(); !ok)
            return std::unexpected(ok.error());
        undo.add([ports] { ports->undo(); });
    }
    if (auto* flows = migrations->flows ? &*migrations->flows : nullptr) {
        if (auto ok = flows->set_aside(); !ok)
            return std::unexpected(ok.error());
        undo.add([flows] { flows->undo(); });
    }
    if (auto ok = load_objects(sock.get(), tc.get(), *migrations); !ok)
        return std::unexpected(ok.error());
    restore_on_undo<np_config>(undo, bpf_map__fd(sock->maps.node_config));
    if (auto ok = write_config(bpf_map__fd(sock->maps.node_config)); !ok)
        return std::unexpected(ok.error());
    restore_node_addrs_on_undo(undo, bpf_map__fd(sock->maps.node_addrs));
    if (auto ok = write_node_addrs(bpf_map__fd(sock->maps.node_addrs), *addrs); !ok)
        return std::unexpected(ok.error());
    restore_on_undo<np_flow_timeouts>(undo, bpf_map__fd(tc->maps.flow_timeouts));
    if (auto ok = write_timeouts(bpf_map__fd(tc->maps.flow_timeouts), options.timeouts); !ok)
        return std::unexpected(ok.error());
    if (auto ok = record_choice(dir, options, choice_map, undo); !ok)
        return std::unexpected(ok.error());
    if (auto ok = test_hook("load:maps"); !ok)
        return std::unexpected(ok.error());

    LoadReport report{reused, *addrs, {}, {}, std::nullopt, {}, ipv6_off_reason()};
    if (auto ok = unpin_defunct(dir, *defunct_links, undo); !ok)
        return std::unexpected(ok.error());
    bpf_program* prog;
    bpf_object__for_each_program(prog, sock->obj) {
        std::function<int()> make_link;
        if (cgroup.valid())
            make_link = [prog, fd = cgroup.get()] {
                return bpf_link_create(bpf_program__fd(prog), fd, bpf_program__expected_attach_type(prog), nullptr);
            };
        if (auto ok = attach_pinned(dir, bpf_program__fd(prog), link_pin(bpf_program__name(prog)), make_link,
                                    bpf_program__name(prog), undo);
            !ok)
            return std::unexpected(ok.error());
    }
    if (auto ok = test_hook("load:cgroup"); !ok)
        return std::unexpected(ok.error());
    auto ending = sock_end::install(dir);
    if (!ending)
        return std::unexpected(ending.error());
    report.socket_ending_unavailable = std::move(*ending);
    // For interfaces that appear after this load (nodeport watch).
    restore_pinned_programs_on_undo(undo, dir);
    if (auto ok = tc::pin_programs(dir, tc::fds_of(tc_programs)); !ok)
        return std::unexpected(ok.error());
    // A migration's flows: every one now (everything slow, loading and
    // verifying, is done), then the new ingress programs take over, then
    // what the old ones recorded until then, and only then the new egress
    // programs. So every reply the new egress programs see belongs to a flow
    // they know: with both switched at once, a connection the old programs
    // had just made could send its first reply through the new egress
    // programs before the copy, untranslated, and the client reset it
    // (abi_migration_test). Between the two switches, a handshake the new
    // ingress programs start has its SYN-ACK leave through the old egress
    // ones, untranslated; the client's SYN, retransmitted a second later,
    // completes it. UDP: a reply in that window is lost.
    if (migrations->flows) {
        if (auto ok = copy_flows(tc.get(), *migrations); !ok)
            return std::unexpected(ok.error());
        if (auto ok = test_hook("load:flows_copied"); !ok)
            return std::unexpected(ok.error());
        if (auto ok = tc::swap_ingress(dir, tc::fds_of(tc_programs), bpf_map__fd(tc->maps.tc_attachments), undo); !ok)
            return std::unexpected(ok.error());
        if (auto ok = copy_flows(tc.get(), *migrations); !ok)
            return std::unexpected(ok.error());
    }
    auto attached = tc::attach(dir, tc_programs, options.interfaces, options.tc_attach,
                               bpf_map__fd(tc->maps.tc_attachments), undo, tc::OnFailure::stop);
    if (!attached)
        return std::unexpected(attached.error());
    report.interfaces = std::move(*attached);
    if (auto ok = test_hook("load:tc"); !ok)
        return std::unexpected(ok.error());
    // What the old egress programs recorded (node_udp) until they were
    // switched; then every program reads the new maps, and the old ones may go.
    if (migrations->flows)
        if (auto ok = copy_flows(tc.get(), *migrations); !ok)
            return std::unexpected(ok.error());
    if (migrations->from_abi != 0)
        report.migrated =
            MigrationReport{migrations->from_abi, migrations->ports ? migrations->ports->entries() : 0,
                            migrations->flows_copied};
    if (auto ok = Abi1Migration::remove_leftover(dir); !ok)
        return std::unexpected(ok.error());
    if (auto ok = FlowMigration::remove_leftover(dir); !ok)
        return std::unexpected(ok.error());
    undo.commit();
    // A write killed between its change of `ports` and its socket walk left
    // the walk recorded; the iterators are in place again, so it ends here.
    report.resumed_walk = SocketEnder::open(dir).finish(bpf_map__fd(sock->maps.ports));
    if (auto ok = test_hook("load:end"); !ok)
        return std::unexpected(ok.error());
    return report;
}

}  // namespace nodeport
