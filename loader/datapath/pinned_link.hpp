// Links pinned under <pin-dir>/links: replaced in place on a reload, and
// taken back when the load that changed them fails.
#pragma once

#include <bpf/bpf.h>

#include <functional>
#include <string>
#include <vector>

#include "base/undo_log.hpp"
#include "nodeport/fd.hpp"
#include "nodeport/pin_dir.hpp"
#include "nodeport/result.hpp"

namespace nodeport {

// Makes the program `prog_fd` run behind the link pinned at `pin` (a name
// under `dir`, which must outlive `undo`). A link
// pinned there already keeps its attachment and gets the new program in
// place, so there is no moment without a hook (a reload, an upgrade).
// Otherwise `make_link` makes a new link (an fd, or -1 and errno), which is
// pinned; an empty `make_link` means nothing new is attached. `undo` gets
// the way back: the old program swapped in again, or the new link detached
// and unpinned. `what` names the attachment in errors.
Result<void> attach_pinned(const PinDir& dir, int prog_fd, const std::string& pin,
                           const std::function<int()>& make_link, const std::string& what, UndoLog& undo);

// The program a link runs.
Result<Fd> program_of_link(int link_fd);

struct PinnedLink {
    std::string name;  // its file name under <pin-dir>/links
    bpf_link_info info;
};

// Every link pinned under <pin-dir>/links, with what the kernel says of it. A
// link unpinned between the listing and its open is gone, not an error:
// readers that take no lock (status) see loads and watches at work.
Result<std::vector<PinnedLink>> pinned_links(const PinDir& dir);

}  // namespace nodeport
