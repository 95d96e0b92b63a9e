// Running the node's own netfilter tools (iptables, nft) with an argument
// vector: never through a shell, so no rule text is ever re-parsed by one.
#pragma once

#include <string>
#include <vector>

#include "nodeport/result.hpp"

namespace nodeport {

struct ToolOutput {
    int exit_code = 0;  // 128 + signal when the tool was killed
    std::string out;
    std::string err;
};

// Runs argv[0] (looked up in PATH) with stdin from /dev/null and waits for it.
// An error only when it could not be started (errno ENOENT: not installed);
// a tool that ran and failed is a ToolOutput with a non-zero exit_code.
Result<ToolOutput> run_tool(const std::vector<std::string>& argv);

}  // namespace nodeport
