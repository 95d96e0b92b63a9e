// Signals read from an fd, for the commands that run until stopped (watch,
// stats --watch): blocked, so they act where the loop reads them, never in
// the middle of a change or a frame.
#pragma once

#include <initializer_list>

#include "nodeport/fd.hpp"

namespace nodeport::cli {

// Blocks the signals and returns a signalfd that reads them; throws Failure.
Fd block_signals(std::initializer_list<int> signals);

}  // namespace nodeport::cli
