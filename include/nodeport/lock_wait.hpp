// How long a writer waits for the pin directory's lock (held by another
// writer: a CLI call, a controller, `load`, `watch`) before it gives up.
#pragma once

#include <chrono>

// Exported from libnodeport.so (the rest of the library is hidden).
#pragma GCC visibility push(default)

namespace nodeport {

// Far above any writer's normal hold (a load takes well under a second, a
// sync of 65,535 entries 0.3 s), short enough that a stuck holder is reported,
// naming its pid, instead of hanging a controller. 0: fail at once.
inline constexpr std::chrono::milliseconds default_lock_wait{5000};

}  // namespace nodeport

#pragma GCC visibility pop
