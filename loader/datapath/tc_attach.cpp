#include "datapath/tc_attach.hpp"

#include <bpf/bpf.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <linux/pkt_sched.h>
#include <net/if.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <optional>
#include <set>
#include <tuple>

#include "base/libbpf_log.hpp"
#include "base/map_keys.hpp"
#include "base/netlink.hpp"
#include "base/netns.hpp"
#include "datapath/node_addrs.hpp"
#include "datapath/pinned_link.hpp"
#include "nodeport/abi.h"
#include "nodeport/interfaces.hpp"

namespace nodeport::tc {
namespace {

constexpr std::uint32_t clsact_ingress_parent = TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_INGRESS);
constexpr std::uint32_t clsact_egress_parent = TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_EGRESS);

std::string tc_link_pin(std::string_view prog, int ifindex) {
    return link_pin(link_pin_name(prog, ifindex));
}

std::string interface_name(int ifindex) {
    char name[IF_NAMESIZE] = {};
    return if_indextoname(ifindex, name) ? std::string(name) : "if" + std::to_string(ifindex);
}

// tcx: swap the program behind the pinned link, so there is no moment
// without it, or attach and pin a new link. Program fds rather than libbpf
// objects, so that programs pinned by an earlier load attach the same way.
Result<void> attach_tcx(const PinDir& dir, int prog_fd, std::string_view name,
                        bpf_attach_type type, int ifindex, UndoLog& undo) {
    return attach_pinned(
        dir, prog_fd, tc_link_pin(name, ifindex),
        [&] {
            LIBBPF_OPTS(bpf_link_create_opts, opts);
            return bpf_link_create(prog_fd, ifindex, type, &opts);
        },
        std::string(name) + " to " + interface_name(ifindex) + " (tcx)", undo);
}

Result<void> detach_tcx(const PinDir& dir, int ifindex) {
    for (auto name : {ingress_name, egress_name})
        if (dir.unlink(tc_link_pin(name, ifindex)) != 0 && errno != ENOENT)
            return errno_error(errno, "unpin " + dir.shown(tc_link_pin(name, ifindex)).string());
    return {};
}

// The program of nodeport's clsact filter on one side of an interface, if
// there is one.
std::optional<Fd> clsact_program(bpf_tc_hook& hook) {
    LIBBPF_OPTS(bpf_tc_opts, query, .handle = NP_TC_HANDLE, .priority = NP_TC_PRIORITY);
    if (bpf_tc_query(&hook, &query) != 0)
        return std::nullopt;
    Fd prog(bpf_prog_get_fd_by_id(query.prog_id));
    return prog.valid() ? std::optional<Fd>(std::move(prog)) : std::nullopt;
}

// The pair of programs an interface of kind `link` gets: the Ethernet build
// as `ingress`/`egress`, or the L3 one in their place.
Result<ProgramFds> programs_for(const ProgramFds& programs, LinkKind link) {
    if (link == LinkKind::ethernet)
        return programs;
    if (programs.l3_ingress < 0 || programs.l3_egress < 0)
        return plain_error("an interface without a link-layer header needs the L3 programs, which the load of an "
                           "older nodeport did not pin: run nodeport load again");
    return ProgramFds{programs.l3_ingress, programs.l3_egress};
}

// clsact: a filter with nodeport's handle and priority on each direction,
// replaced in place on a second load. Returns whether it created the qdisc.
// `undo` gets the old filters back, or the new ones (and the qdisc) removed.
Result<bool> attach_clsact(const ProgramFds& programs, int ifindex, UndoLog& undo) {
    LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = BPF_TC_INGRESS);
    int err = bpf_tc_hook_create(&hook);
    if (err != 0 && err != -EEXIST)
        return errno_error(-err, "add clsact qdisc to " + interface_name(ifindex));
    if (err == 0)
        undo.add([ifindex] {
            LIBBPF_OPTS(bpf_tc_hook, created, .ifindex = ifindex,
                        .attach_point = static_cast<bpf_tc_attach_point>(BPF_TC_INGRESS | BPF_TC_EGRESS));
            bpf_tc_hook_destroy(&created);
        });
    for (auto [point, prog, name] : {std::tuple{BPF_TC_INGRESS, programs.ingress, ingress_name},
                                     std::tuple{BPF_TC_EGRESS, programs.egress, egress_name}}) {
        hook.attach_point = point;
        auto old = std::make_shared<std::optional<Fd>>(clsact_program(hook));
        LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = prog, .flags = BPF_TC_F_REPLACE, .handle = NP_TC_HANDLE,
                    .priority = NP_TC_PRIORITY);
        if (int rc = bpf_tc_attach(&hook, &opts); rc != 0)
            return libbpf_error(-rc, "attach " + std::string(name) + " to " + interface_name(ifindex) + " (clsact)");
        undo.add([ifindex, point, old] {
            LIBBPF_OPTS(bpf_tc_hook, side, .ifindex = ifindex, .attach_point = point);
            LIBBPF_OPTS(bpf_tc_opts, back, .flags = BPF_TC_F_REPLACE, .handle = NP_TC_HANDLE,
                        .priority = NP_TC_PRIORITY);
            if (*old) {
                back.prog_fd = (*old)->get();
                bpf_tc_attach(&side, &back);
            } else {
                back.flags = 0;
                bpf_tc_detach(&side, &back);
            }
        });
    }
    return err == 0;
}

// Removes nodeport's filters (and the qdisc it added, when nothing else uses
// it) from an interface of the calling thread's namespace.
Result<void> detach_clsact_here(const np_tc_attachment& record) {
    LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = static_cast<int>(record.ifindex));
    for (auto point : {BPF_TC_INGRESS, BPF_TC_EGRESS}) {
        hook.attach_point = point;
        LIBBPF_OPTS(bpf_tc_opts, opts, .handle = NP_TC_HANDLE, .priority = NP_TC_PRIORITY);
        if (int rc = bpf_tc_detach(&hook, &opts); rc != 0 && rc != -ENOENT && rc != -ENODEV && rc != -EINVAL)
            return errno_error(-rc, "detach from " + interface_name(record.ifindex));
    }
    if (!record.created_qdisc)
        return {};
    // Only remove the qdisc nodeport added, and only when nothing else uses it.
    auto ingress = netlink::count_tc_filters(record.ifindex, clsact_ingress_parent);
    auto egress = netlink::count_tc_filters(record.ifindex, clsact_egress_parent);
    if (ingress && egress && *ingress == 0 && *egress == 0) {
        hook.attach_point = static_cast<bpf_tc_attach_point>(BPF_TC_INGRESS | BPF_TC_EGRESS);
        if (int rc = bpf_tc_hook_destroy(&hook); rc != 0 && rc != -ENOENT && rc != -ENODEV && rc != -EINVAL)
            return errno_error(-rc, "remove clsact qdisc from " + interface_name(record.ifindex));
    }
    return {};
}

std::string recorded_name(const np_tc_attachment& record) {
    return std::string(record.ifname, strnlen(record.ifname, sizeof record.ifname));
}

// An ifindex means another interface in another namespace: the filters are
// removed from inside the namespace they were attached in. nullopt when
// they were removed; otherwise why they could not be (that namespace is gone,
// and the filters went with its interfaces, or nothing visible refers to it).
Result<std::optional<std::string>> detach_clsact(const np_tc_attachment& record) {
    auto cookie = netns::current_cookie();
    if (!cookie)
        return std::unexpected(cookie.error());
    if (*cookie == record.netns_cookie) {
        if (auto ok = detach_clsact_here(record); !ok)
            return std::unexpected(ok.error());
        return std::nullopt;
    }
    auto there = netns::find(record.netns_cookie);
    if (!there)
        return fmt::format("clsact filters on {} (if{}) in {}: not removed; they go with that namespace's interfaces",
                           recorded_name(record), record.ifindex, netns::describe(record.netns_cookie, there));
    if (auto ok = netns::run_in(there->path, [&] { return detach_clsact_here(record); }); !ok)
        return std::unexpected(ok.error());
    return std::nullopt;
}

// `unpin_links` false: unload, which drops every link pin afterwards.
// Returns what was left attached (see detach_clsact), or nullopt.
Result<std::optional<std::string>> detach_one(const PinDir& dir, bool unpin_links,
                                              const np_tc_attachment& record, int attachments_fd) {
    std::optional<std::string> left;
    if (record.mode == NP_TC_CLSACT) {
        auto detached = detach_clsact(record);
        if (!detached)
            return std::unexpected(detached.error());
        left = *detached;
    } else if (unpin_links) {
        if (auto ok = detach_tcx(dir, record.ifindex); !ok)
            return std::unexpected(ok.error());
    }
    if (bpf_map_delete_elem(attachments_fd, &record.ifindex) != 0 && errno != ENOENT)
        return errno_error(errno, "forget attachment of if" + std::to_string(record.ifindex));
    return left;
}

}  // namespace

Result<std::vector<np_tc_attachment>> records(int attachments_fd) {
    auto keys = map_keys<__u32>(attachments_fd, "tc_attachments");
    if (!keys)
        return std::unexpected(keys.error());
    std::vector<np_tc_attachment> out;
    for (__u32 ifindex : *keys) {
        np_tc_attachment record{};
        if (bpf_map_lookup_elem(attachments_fd, &ifindex, &record) == 0)
            out.push_back(record);
    }
    return out;
}

void prepare(const Programs& programs, TcAttachMode mode) {
    if (mode == TcAttachMode::clsact)
        return;
    // SEC("tc") programs load with no attach type; tcx links need one.
    // clsact accepts these programs all the same, so automatic mode can
    // still fall back to it after load.
    for (auto* prog : {programs.ingress, programs.l3_ingress})
        bpf_program__set_expected_attach_type(prog, BPF_TCX_INGRESS);
    for (auto* prog : {programs.egress, programs.l3_egress})
        bpf_program__set_expected_attach_type(prog, BPF_TCX_EGRESS);
}

Result<std::vector<TcAttachment>> attach(const PinDir& dir, const Programs& programs,
                                         const std::vector<std::string>& interfaces, TcAttachMode mode,
                                         int attachments_fd, UndoLog& undo, OnFailure on_failure) {
    return attach(dir, fds_of(programs), interfaces, mode, attachments_fd, undo, on_failure);
}

namespace {

// Attaches both programs of the build for the interface's link kind to it,
// or swaps them in place, and records it. Every step goes into `undo`.
Result<TcAttachMode> attach_one(const PinDir& dir, const ProgramFds& all_programs,
                                const std::string& name, int ifindex, LinkKind link, TcAttachMode mode,
                                std::uint64_t cookie, int attachments_fd, UndoLog& undo) {
    auto chosen = programs_for(all_programs, link);
    if (!chosen)
        return std::unexpected(chosen.error());
    const ProgramFds& programs = *chosen;
    np_tc_attachment before{};
    const bool had = bpf_map_lookup_elem(attachments_fd, &ifindex, &before) == 0;
    // The same index in another namespace is another interface.
    if (had && before.netns_cookie != cookie)
        return plain_error("nodeport at " + dir.path().string() +
                           " was attached to it from another network namespace (load and unload it there)");
    // An interface keeps the mode it was attached with, so a reload swaps
    // programs in place instead of attaching a second copy.
    bool use_tcx = had ? before.mode == NP_TC_TCX : mode != TcAttachMode::clsact;
    np_tc_attachment record{};
    record.ifindex = ifindex;
    record.netns_cookie = cookie;
    record.link = link == LinkKind::l3 ? NP_TC_LINK_L3 : NP_TC_LINK_ETHERNET;
    name.copy(record.ifname, sizeof record.ifname - 1);
    auto write_record = [&]() -> Result<void> {
        if (bpf_map_update_elem(attachments_fd, &record.ifindex, &record, BPF_ANY) != 0)
            return errno_error(errno, "record its attachment");
        return {};
    };
    // Recorded before anything is attached: a clsact filter is held by no
    // file descriptor, so a load killed right after adding one must have
    // left a record for unload to find it by. A qdisc is counted as ours
    // until we know it was there before.
    record.mode = use_tcx ? NP_TC_TCX : NP_TC_CLSACT;
    record.created_qdisc = !use_tcx && (!had || before.created_qdisc);
    if (auto ok = write_record(); !ok)
        return std::unexpected(ok.error());
    undo.add([attachments_fd, had, before, ifindex] {
        if (had)
            bpf_map_update_elem(attachments_fd, &ifindex, &before, BPF_ANY);
        else
            bpf_map_delete_elem(attachments_fd, &ifindex);
    });
    if (use_tcx) {
        auto ok = attach_tcx(dir, programs.ingress, ingress_name, BPF_TCX_INGRESS, ifindex, undo);
        if (ok)
            ok = attach_tcx(dir, programs.egress, egress_name, BPF_TCX_EGRESS, ifindex, undo);
        if (!ok && (mode != TcAttachMode::automatic || had))
            return std::unexpected(ok.error());
        if (!ok) {
            (void)detach_tcx(dir, ifindex);
            use_tcx = false;  // a kernel without tcx: fall back to clsact
            record.mode = NP_TC_CLSACT;
            record.created_qdisc = 1;
            if (auto written = write_record(); !written)
                return std::unexpected(written.error());
        }
    }
    if (!use_tcx) {
        auto created = attach_clsact(programs, ifindex, undo);
        if (!created)
            return std::unexpected(created.error());
        record.created_qdisc = *created || (had && before.created_qdisc);
        if (auto ok = write_record(); !ok)
            return std::unexpected(ok.error());
    }
    return use_tcx ? TcAttachMode::tcx : TcAttachMode::clsact;
}

}  // namespace

Result<void> swap_ingress(const PinDir& dir, const ProgramFds& programs, int attachments_fd,
                          UndoLog& undo) {
    auto cookie = netns::current_cookie();
    if (!cookie)
        return std::unexpected(cookie.error());
    auto recorded = records(attachments_fd);
    if (!recorded)
        return std::unexpected(recorded.error());
    for (const auto& record : *recorded) {
        if (record.mode != NP_TC_TCX || record.netns_cookie != *cookie)
            continue;
        auto chosen = programs_for(programs, link_of(record));
        if (!chosen)
            continue;  // attach() names the interface and stops
        if (auto ok = attach_pinned(dir, chosen->ingress, tc_link_pin(ingress_name, record.ifindex), {},
                                    interface_name(record.ifindex) + " (tcx ingress)", undo);
            !ok)
            return ok;
    }
    return {};
}

Result<std::vector<TcAttachment>> attach(const PinDir& dir, const ProgramFds& programs,
                                         const std::vector<std::string>& interfaces, TcAttachMode mode,
                                         int attachments_fd, UndoLog& undo, OnFailure on_failure) {
    auto cookie = netns::current_cookie();
    if (!cookie)
        return std::unexpected(cookie.error());
    auto existing = records(attachments_fd);
    if (!existing)
        return std::unexpected(existing.error());

    // keep_going (watch): one interface that fails (gone mid-way, refused by
    // the kernel) keeps neither the others from being attached nor gone
    // ones from being forgotten; its own half-done steps are taken back, and
    // all failures are named in one error. stop (load): the first failure
    // ends it, and the caller takes everything back.
    std::vector<std::string> failed;
    std::vector<TcAttachment> attached;
    std::set<__u32> wanted;
    for (const auto& name : interfaces) {
        int ifindex = static_cast<int>(if_nametoindex(name.c_str()));
        UndoLog steps;
        Result<TcAttachMode> done = plain_error("does not exist in this network namespace");
        LinkKind link = LinkKind::ethernet;
        if (ifindex != 0) {
            if (auto kind = link_kind(name)) {
                link = *kind;
                done = attach_one(dir, programs, name, ifindex, link, mode, *cookie, attachments_fd, steps);
            } else {
                done = plain_error(unreadable_link(name).value_or("its link type cannot be read"));
            }
        }
        if (ifindex != 0)
            wanted.insert(ifindex);
        if (!done) {
            if (on_failure == OnFailure::stop)
                return plain_error("interface " + name + ": " + done.error().message);
            failed.push_back("interface " + name + ": " + done.error().message);
            continue;
        }
        undo.adopt(steps);
        attached.push_back(TcAttachment{name, ifindex, *done, link});
    }
    // Last, so that every step before it can be taken back.
    for (const auto& record : *existing) {
        // A tcx record of another namespace: its ifindex names an interface
        // there, so that no interface here wants it says nothing about it. It
        // stays, for unload. (detach_one removes a clsact record's filters
        // from inside its own namespace.)
        if (wanted.contains(record.ifindex) || (record.mode == NP_TC_TCX && record.netns_cookie != *cookie))
            continue;
        if (auto ok = detach_one(dir, true, record, attachments_fd); !ok)
            failed.push_back("interface " + recorded_name(record) + ": " + ok.error().message);
    }
    if (!failed.empty())
        return plain_error(fmt::format("{}", fmt::join(failed, "; ")));
    return attached;
}

Result<void> detach_all(const PinDir& dir, int attachments_fd, UnloadReport& report) {
    auto existing = records(attachments_fd);
    if (!existing)
        return std::unexpected(existing.error());
    for (const auto& record : *existing) {
        auto left = detach_one(dir, false, record, attachments_fd);
        if (!left)
            return std::unexpected(left.error());
        if (*left)
            report.left.push_back(**left);
        else if (record.mode == NP_TC_CLSACT)
            report.clsact_interfaces.push_back(recorded_name(record));
    }
    return {};
}

Result<std::vector<TcAttachment>> list(int attachments_fd) {
    auto existing = records(attachments_fd);
    if (!existing)
        return std::unexpected(existing.error());
    std::vector<TcAttachment> out;
    for (const auto& record : *existing)
        out.push_back(TcAttachment{std::string(record.ifname, strnlen(record.ifname, sizeof record.ifname)),
                                   static_cast<int>(record.ifindex), mode_of(record), link_of(record)});
    return out;
}

}  // namespace nodeport::tc
