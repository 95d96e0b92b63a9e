// The record of the interface choice in force (abi.h np_iface_choice, the
// pinned array map `iface_choice`): written by load and by a watch given
// interface options, read by watch and status (interfaces.hpp).
#pragma once

#include <string_view>

#include "base/map_catalog.hpp"
#include "nodeport/fd.hpp"
#include "nodeport/interfaces.hpp"
#include "nodeport/pin_dir.hpp"
#include "nodeport/result.hpp"

namespace nodeport::iface_choice {

inline constexpr std::string_view map_name = map_catalog::iface_choice_map;

// The map, created and pinned when it is missing (pins of a nodeport before
// the record); `created` says so. The caller holds the pin directory lock.
Result<Fd> open_or_create(const PinDir& dir, bool& created);

// Writes the record; the caller holds the pin directory lock.
Result<void> write(int map_fd, const RecordedChoice& recorded);

// Writes the record, creating the map when it is missing; the caller holds
// the pin directory lock (record_interface_choice takes it).
Result<void> record(const PinDir& dir, const RecordedChoice& recorded);

}  // namespace nodeport::iface_choice
