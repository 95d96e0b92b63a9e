#pragma once

#include <bpf/libbpf.h>

#include <filesystem>
#include <functional>

#include "nodeport/result.hpp"

namespace nodeport {

// Makes `prog` run behind the link pinned at `pin`. A link pinned there
// already keeps its attachment and gets the new program in place, so there
// is no moment without a hook (a reload, an upgrade). Otherwise `attach`
// makes a new link (NULL and errno on failure), which is pinned; an empty
// `attach` means nothing new is attached.
Result<void> attach_pinned(bpf_program* prog, const std::filesystem::path& pin,
                           const std::function<bpf_link*()>& attach);

}  // namespace nodeport
