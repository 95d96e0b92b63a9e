// Which of the node's interfaces get the TC programs, and attaching to a set
// of them after load (`nodeport watch`, as interfaces come and go).
#pragma once

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "nodeport/datapath_types.hpp"
#include "nodeport/lock_wait.hpp"
#include "nodeport/pin_dir.hpp"
#include "nodeport/result.hpp"

// Exported from libnodeport.so (the rest of the library is hidden).
#pragma GCC visibility push(default)

namespace nodeport {

// The kind of an interface of ARPHRD_* link type `arphrd`; nullopt for one
// whose packets the TC programs cannot read (InfiniBand, CAN, ...).
std::optional<LinkKind> link_kind_of(unsigned arphrd);

// The kind of interface `name` of this network namespace; nullopt when
// there is no such interface, or the programs cannot read its link type.
std::optional<LinkKind> link_kind(const std::string& name);

// Why the TC programs cannot go on interface `name` of this network
// namespace: its link type is neither Ethernet nor none (link_kind_of), said
// in one line that names it. nullopt when they can, or when there is no such
// interface (yet). `load` refuses such an interface (the CLI with exit 2).
std::optional<std::string> unreadable_link(const std::string& name);

// The named interfaces as the TC programs need them in this network
// namespace: not loopback, of a link type they read (unreadable_link), and,
// with `must_exist` (load), present now; watch attaches one that appears
// later. Their syntax is check_interface_choice's (datapath.hpp). The error's
// field is "iface".
std::expected<void, InputError> check_interfaces_here(const std::vector<std::string>& names, bool must_exist);

// The interfaces of the calling thread's network namespace that `choice`
// names now. `all` leaves out loopback, interfaces whose link type the
// programs cannot read (unreadable_link), every interface with a master
// (IFLA_MASTER: a bridge port such as a sandbox's veth, a bond slave; the
// traffic for the node's addresses reaches the master, which is chosen
// unless excluded) and the excluded ones. Sandbox veths without a master
// (routed, one per sandbox) must be excluded by pattern.
Result<std::vector<std::string>> choose_interfaces(const InterfaceChoice& choice);

// Makes the TC attachments of a loaded nodeport exactly `interfaces`, with
// the programs `load` pinned (no reload): attaches new ones, keeps the
// others, detaches and forgets those no longer wanted or gone. Under the pin
// directory lock, waited for at most `lock_wait`. `mode` applies to new
// interfaces only. One interface that fails does not stop the others; the
// error names every one that failed.
Result<std::vector<TcAttachment>> attach_interfaces(const std::filesystem::path& pin_dir,
                                                    const std::vector<std::string>& interfaces, TcAttachMode mode,
                                                    std::chrono::milliseconds lock_wait = default_lock_wait);

// "--iface all --exclude br0", "--iface eth0 --iface eth1", "--local-only",
// "the default route's interface": for logs and status.
std::string describe(const InterfaceChoice& choice);

// The interface choice in force: recorded in the pin directory (abi.h
// np_iface_choice) by `load`, and by a `watch` given interface options of its
// own. A watch without them follows it; status checks the attachments
// against it.
struct RecordedChoice {
    InterfaceChoice choice;
    TcAttachMode tc_attach = TcAttachMode::automatic;
    bool operator==(const RecordedChoice&) const = default;
};
// nullopt when nothing is recorded: pins that a nodeport before the record
// loaded (a load of this one records it).
Result<std::optional<RecordedChoice>> recorded_interface_choice(const std::filesystem::path& pin_dir);
Result<std::optional<RecordedChoice>> recorded_interface_choice(const PinDir& pin_dir);
// Records it, under the pin directory lock (waited for at most `lock_wait`).
Result<void> record_interface_choice(const std::filesystem::path& pin_dir, const RecordedChoice& recorded,
                                     std::chrono::milliseconds lock_wait = default_lock_wait);

// Which chosen interfaces to attach when they are more than the `limit`
// nodeport attaches to (NP_MAX_TC_ATTACHMENTS): those attached now first, so
// that nothing attached is displaced by a newcomer, then the others in the
// order given, up to the limit. The rest are left unattached.
struct WithinLimit {
    std::vector<std::string> attach;
    std::vector<std::string> left;
};
WithinLimit within_limit(const std::vector<std::string>& chosen, const std::vector<std::string>& attached,
                         std::size_t limit = NP_MAX_TC_ATTACHMENTS);

}  // namespace nodeport

#pragma GCC visibility pop
