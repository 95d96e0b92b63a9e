#pragma once

#include <filesystem>
#include <string>

#include "nodeport/pin_dir.hpp"
#include "nodeport/result.hpp"

namespace nodeport::sock_end {

// At load: loads the socket iterators and pins their links under the pin
// directory, replacing earlier ones. An empty string when they are in
// place; otherwise why they are not (a kernel without bpf_sock_destroy),
// which is not an error: nodeport works without them.
Result<std::string> install(const PinDir& pin_dir);

// Runs a pinned iterator link to its end; returns what it wrote.
Result<std::string> read_iterator(int link_fd);

}  // namespace nodeport::sock_end
