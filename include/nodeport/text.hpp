// Small helpers for the line-oriented text nodeport reads (iptables -S,
// /proc/net) and the rule lines it reports.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

// Exported from libnodeport.so (the rest of the library is hidden).
#pragma GCC visibility push(default)

namespace nodeport {

// The lines of `text`, split at '\n'; a final newline ends the last line
// rather than starting an empty one. The views point into `text`.
std::vector<std::string_view> split_lines(std::string_view text);

// Distinct lines in the order first seen, with how often each appears
// (rule lines iptables holds many copies of).
std::vector<std::pair<std::string, std::size_t>> count_lines(const std::vector<std::string>& lines);

}  // namespace nodeport

#pragma GCC visibility pop
