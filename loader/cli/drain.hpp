// Draining: `nodeport drain BACKEND` and the --drain option of del and set.
#pragma once

#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <optional>
#include <vector>

#include "cli/invocation.hpp"
#include "nodeport/port_table.hpp"

namespace nodeport::cli {

// --drain and --timeout S, for del and set.
boost::program_options::options_description drain_description();
// The drain timeout when --drain was given (default 30 s); nullopt without
// it. --timeout without --drain is bad input.
std::optional<std::chrono::milliseconds> drain_option(const Invocation& inv);

// Waits for `backends` to drain, printing progress each second on a terminal
// (not with --json) and a final line; with `out`, adds "drain": {...} to it
// instead of the final line. Returns exit_ok when drained, exit_not_drained
// when the timeout passed with connections left.
int drain_and_report(const PortTable& table, const std::vector<Backend>& backends,
                     std::chrono::milliseconds timeout, nlohmann::json* out);

}  // namespace nodeport::cli
