// The TC programs, both builds (Ethernet and L3, bpf/tc.bpf.c), pinned at
// <pin-dir>/progs/ by load, so that an interface that appears later gets the
// programs already running (`nodeport watch`) without loading them again.
#pragma once

#include <string_view>

#include "datapath/tc_attach.hpp"
#include "nodeport/fd.hpp"
#include "nodeport/pin_dir.hpp"
#include "nodeport/result.hpp"

namespace nodeport::tc {

// Pins the programs, replacing earlier pins one by one atomically (pin
// beside, then rename): a watch that opens them meanwhile gets the old
// programs or the new ones, never none. An L3 pair of -1 (putting back the
// pins of an older load) removes the L3 pins.
Result<void> pin_programs(const PinDir& dir, const ProgramFds& programs);

struct PinnedPrograms {
    Fd ingress;
    Fd egress;
    Fd l3_ingress;  // not valid when an older load pinned no L3 programs
    Fd l3_egress;
    ProgramFds fds() const { return {ingress.get(), egress.get(), l3_ingress.get(), l3_egress.get()}; }
};
// The pinned programs, checked to be TC programs of those names; "not
// loaded" (run load) when the Ethernet pair is missing, e.g. pins of an
// older nodeport, which may also lack the L3 pair.
Result<PinnedPrograms> open_pinned_programs(const PinDir& dir);

// Removes the pins and the directory (unload); missing ones are fine.
Result<void> unpin_programs(const PinDir& dir);

}  // namespace nodeport::tc
