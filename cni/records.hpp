// Which containers of a network nodeport-cni mapped ports for: an empty file
// <stateDir>/<network>/<container id> per container, written by ADD before
// it maps anything and removed by DEL after it unmapped. GC removes the ports
// of recorded containers only, so a port mapped by the CLI, a controller or
// another network's plugin is never taken for garbage.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "cni_config.hpp"

namespace nodeport::cni::records {

// Records the container (nothing when the config names no network).
CniResult<void> add(const NetConfig& config, std::string_view container_id);
// Forgets it; a missing record is fine.
void remove(const NetConfig& config, std::string_view container_id);
// The recorded containers of the config's network; none when there is no record.
CniResult<std::vector<std::string>> list(const NetConfig& config);

}  // namespace nodeport::cni::records
