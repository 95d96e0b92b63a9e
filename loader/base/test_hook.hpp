// Named points where tests stop or fail a command on purpose, to check what
// a command killed or failing at that point leaves behind. Live only in the
// test suite's own CLI, `nodeport-test-hooks` (built with the tests, never
// installed: test_hook.cpp compiled with NODEPORT_TEST_HOOKS); everywhere
// else test_hook() does nothing. There, the environment variable
// NODEPORT_TEST_HOOK=pause:POINT or fail:POINT acts at POINT: `pause` says so
// on stderr ("nodeport: test hook: paused at POINT") and sleeps up to a
// minute (the test SIGKILLs it there, or SIGUSR1 resumes it), `fail` makes
// the step fail; several, separated by commas, each act at their point.
// Points: load:maps, load:cgroup, load:flows_copied (a migration's flows
// copied, no TC program switched), load:tc, load:end, set:locked,
// set:written, sync:added, unload:start, watch:chosen (a resync's
// interfaces chosen, not yet attached).
#pragma once

#include <string_view>

#include "nodeport/result.hpp"

namespace nodeport {

Result<void> test_hook(std::string_view point);

}  // namespace nodeport
