// Running the node's own netfilter tools (iptables, nft) with an argument
// vector: never through a shell, so no rule text is ever re-parsed by one.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "nodeport/result.hpp"

namespace nodeport {

struct ToolOutput {
    int exit_code = 0;  // 128 + signal when the tool was killed
    std::string out;
    std::string err;
};

struct ToolOptions {
    std::string_view input;  // written to the tool's stdin (then closed); empty: stdin is /dev/null
    // How long the tool may run, from start to exit. Past it the tool is
    // killed (SIGKILL), reaped, and the result is an error with errno
    // ETIMEDOUT, "<tool>: timed out after N s".
    std::chrono::milliseconds timeout = std::chrono::seconds(30);
};

// Runs argv[0] (looked up in PATH) and waits for it, up to options.timeout.
// An error when it could not be started (errno ENOENT: not installed) or
// timed out; a tool that ran and failed is a ToolOutput with a non-zero
// exit_code.
Result<ToolOutput> run_tool(const std::vector<std::string>& argv, const ToolOptions& options = {});

// "iptables -w 5 -t nat -S: exit 4: <the first line of its stderr>".
std::string describe_failure(const std::vector<std::string>& argv, const ToolOutput& result);

}  // namespace nodeport
