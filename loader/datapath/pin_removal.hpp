// Removing what nodeport pinned and attached under a pin directory: by
// unload, and by a first load that fails half-way.
#pragma once

#include "nodeport/datapath_types.hpp"
#include "nodeport/pin_dir.hpp"
#include "nodeport/result.hpp"

namespace nodeport {

// Detaches and unpins everything nodeport may have left in `dir` (TC
// attachments recorded in tc_attachments, links, pinned programs, maps),
// whatever is missing, then removes `dir` itself when `remove_dir`. The
// caller holds the pin directory lock.
Result<void> remove_pins(const PinDir& dir, UnloadReport& report, bool remove_dir);

}  // namespace nodeport
