// The options of `load`, which `watch` takes too: one config file serves
// both units, and watch recomputes the interface set load was given.
#pragma once

#include <boost/program_options.hpp>

#include <filesystem>
#include <optional>

#include "cli/invocation.hpp"
#include "nodeport/datapath_types.hpp"
#include "nodeport/interfaces.hpp"

namespace nodeport::cli {

boost::program_options::options_description load_description();

// How --iface names are checked: `exists` (load: a name that is not an
// interface here is bad input) or `syntax` (watch: one that is missing now is
// attached when it appears).
enum class InterfaceCheck { exists, syntax };

// Every load option, validated (bad input: UsageError naming the field).
// `interfaces` stays empty: they are chosen from `choice` when acting.
struct LoadChoices {
    LoadOptions options;
    InterfaceChoice choice;
};
LoadChoices load_choices(const Invocation& inv, InterfaceCheck check = InterfaceCheck::exists);

// The interfaces `choice` names now; a default route that is missing says
// what to pass instead.
std::vector<std::string> chosen_interfaces(const InterfaceChoice& choice);

// Whether the command line or --config file gives interface options
// (--iface, --exclude, --local-only), and --tc-attach: a watch given none
// follows what load recorded.
bool gives_interfaces(const Invocation& inv);
bool gives_tc_attach(const Invocation& inv);

}  // namespace nodeport::cli
