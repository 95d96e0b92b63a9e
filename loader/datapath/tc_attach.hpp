// Attaching the TC programs to the node's external interfaces: tcx links
// (pinned, Linux >= 6.6) or, on older kernels, clsact filters. Every
// attachment is recorded in the `tc_attachments` map, so that unload (or a
// load with fewer interfaces) removes exactly what nodeport attached.
#pragma once

#include <bpf/libbpf.h>

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "base/undo_log.hpp"
#include "nodeport/abi.h"
#include "nodeport/datapath_types.hpp"
#include "nodeport/pin_dir.hpp"
#include "nodeport/result.hpp"

namespace nodeport::tc {

// The programs' names in bpf/tc.bpf.c, which name their pins too. The tcx
// links of an interface are named after the Ethernet pair whichever build
// runs behind them: a link is a hook, ingress or egress of an interface.
inline constexpr std::string_view ingress_name = "np_tc_ingress";
inline constexpr std::string_view egress_name = "np_tc_egress";
inline constexpr std::string_view l3_ingress_name = "np_l3_ingress";
inline constexpr std::string_view l3_egress_name = "np_l3_egress";

// The tcx link pinned for program `prog` on an interface, under
// <pin-dir>/links/: "np_tc_ingress_if3" (bpffs refuses names with a dot).
inline std::string link_pin_name(std::string_view prog, int ifindex) {
    return std::string(prog) + "_if" + std::to_string(ifindex);
}

// How a recorded attachment is attached, and which build of the programs.
inline TcAttachMode mode_of(const np_tc_attachment& record) {
    return record.mode == NP_TC_TCX ? TcAttachMode::tcx : TcAttachMode::clsact;
}
inline LinkKind link_of(const np_tc_attachment& record) {
    return record.link == NP_TC_LINK_L3 ? LinkKind::l3 : LinkKind::ethernet;
}

struct Programs {
    bpf_program* ingress;     // client -> node: DNAT to the backend
    bpf_program* egress;      // backend -> client: restore the node address
    bpf_program* l3_ingress;  // the same two for interfaces without a link-layer header
    bpf_program* l3_egress;
};

// The same programs as file descriptors: loaded ones, or the pins that load
// left (tc_programs.hpp). The L3 pair is -1 when a load of an older nodeport
// pinned none: an L3 interface then cannot be attached.
struct ProgramFds {
    int ingress;
    int egress;
    int l3_ingress = -1;
    int l3_egress = -1;
};
inline ProgramFds fds_of(const Programs& p) {
    return {bpf_program__fd(p.ingress), bpf_program__fd(p.egress), bpf_program__fd(p.l3_ingress),
            bpf_program__fd(p.l3_egress)};
}

// Before load: tcx links need the program's expected attach type.
void prepare(const Programs& programs, TcAttachMode mode);

// Makes the attachments exactly `interfaces`: attaches (or swaps the program
// of) each, the build for its link kind (link_kind_of; an interface of a
// link type it cannot read is an error naming it), detaches interfaces
// attached earlier and no longer asked for
// (tcx records of another network namespace excepted). Each step is
// recorded in `undo`, which takes them back should the caller fail later
// (detaching what is no longer asked for comes last and is not).
// OnFailure::stop (load): the first interface that fails ends it.
// OnFailure::keep_going (watch): an interface that fails has its own steps
// taken back and does not stop the others; the error names every one.
enum class OnFailure { stop, keep_going };
Result<std::vector<TcAttachment>> attach(const PinDir& pin_dir, const Programs& programs,
                                         const std::vector<std::string>& interfaces, TcAttachMode mode,
                                         int attachments_fd, UndoLog& undo, OnFailure on_failure);
Result<std::vector<TcAttachment>> attach(const PinDir& pin_dir, const ProgramFds& programs,
                                         const std::vector<std::string>& interfaces, TcAttachMode mode,
                                         int attachments_fd, UndoLog& undo, OnFailure on_failure);

// A migrating load's first switch (load.cpp): the new ingress program takes
// the place of the old one on every interface attached with tcx in this
// namespace, and the egress programs stay until attach(). Swaps only: an
// interface without a pinned ingress link is left to attach(). Each swap is
// recorded in `undo`.
Result<void> swap_ingress(const PinDir& pin_dir, const ProgramFds& programs, int attachments_fd,
                          UndoLog& undo);

// Removes every recorded attachment (unload), from the namespace each was
// attached in; what cannot be reached is reported in `report.left`.
Result<void> detach_all(const PinDir& pin_dir, int attachments_fd, UnloadReport& report);

// The raw records (status compares their netns cookie and names with this namespace).
Result<std::vector<np_tc_attachment>> records(int attachments_fd);

// What is recorded, with the interface names given at load.
Result<std::vector<TcAttachment>> list(int attachments_fd);

}  // namespace nodeport::tc
