// The CNI commands of nodeport-cni, a chained plugin in place of `portmap`:
// ADD maps each runtimeConfig.portMappings entry to the container's address
// with the container id as owner, DEL removes what that container still
// owns, CHECK compares, GC removes the ports of containers no longer
// attached, STATUS says whether nodeport is loaded, VERSION answers.
#pragma once

#include <istream>
#include <string>
#include <string_view>

#include "cni_config.hpp"

namespace nodeport::cni {

// What the plugin prints on stdout and its exit status.
struct Reply {
    int exit_status = 0;
    std::string stdout_text;  // a result, a version answer, a CNI error, or empty (DEL)
};

// Runs one CNI invocation, reading the network config from `in` (within
// config_limits). Never throws for bad input: every failure is a CNI error
// reply.
Reply run(const EnvLookup& env, std::istream& in);
Reply run(const EnvLookup& env, std::string_view stdin_text);

// The CNI error (code 100) for an exception: out of memory and the like.
// Built with the JSON library, so any text is escaped.
std::string internal_error_reply(std::string_view version, std::string_view what);

}  // namespace nodeport::cni
