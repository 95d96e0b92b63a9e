// attach_interfaces (nodeport/interfaces.hpp) for a caller that holds the pin
// directory lock already: `watch` reads the interface choice in force and
// attaches what it names under one hold of the lock.
#pragma once

#include <string>
#include <vector>

#include "nodeport/datapath_types.hpp"
#include "nodeport/pin_dir.hpp"
#include "nodeport/result.hpp"

namespace nodeport {

Result<std::vector<TcAttachment>> attach_interfaces_locked(const PinDir& pin_dir,
                                                           const std::vector<std::string>& interfaces,
                                                           TcAttachMode mode);

}  // namespace nodeport
