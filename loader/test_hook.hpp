// Named points where tests stop or fail a command on purpose, to check what
// a command killed or failing at that point leaves behind. Inert unless the
// environment holds NODEPORT_TEST_HOOK=pause:POINT or fail:POINT: at POINT,
// `pause` says so on stderr ("nodeport: test hook: paused at POINT") and
// sleeps up to a minute (the test SIGKILLs it there), `fail` makes the step
// fail. Points: load:maps, load:cgroup, load:tc, load:end, set:locked,
// sync:added, unload:start.
#pragma once

#include <string_view>

#include "nodeport/result.hpp"

namespace nodeport {

Result<void> test_hook(std::string_view point);

}  // namespace nodeport
