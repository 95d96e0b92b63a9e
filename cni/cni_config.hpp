// What the runtime hands nodeport-cni, validated once: the CNI_* environment
// variables and the network config on stdin (our keys, runtimeConfig's
// portMappings, prevResult). Everything past here is typed; nothing is
// changed until all of it has been read and found good.
#pragma once

#include <cstdint>
#include <functional>
#include <istream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/json_input.hpp"
#include "cni_error.hpp"
#include "nodeport/datapath_types.hpp"
#include "nodeport/types.hpp"

namespace nodeport::cni {

// The versions whose config and result formats this plugin reads: the
// prevResult fields it uses (ips[].address, ips[].interface,
// interfaces[].sandbox) are the same in all of them. Oldest first.
inline constexpr std::string_view supported_versions[] = {"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"};
inline constexpr std::string_view newest_version = "1.1.0";

// GC and STATUS are spec 1.1.0's: they act on the network, not on one
// container, and come without CNI_CONTAINERID, CNI_IFNAME and CNI_NETNS.
enum class Command { add, del, check, version, gc, status };

struct Environment {
    Command command = Command::version;
    std::string container_id;  // the mapping owner; empty only for VERSION
    // False when CNI_CONTAINERID is a valid CNI id that nodeport cannot store
    // as an owner (over 255 characters): no port can be owned by it, so DEL
    // has nothing to do, and ADD refuses.
    bool owner_storable = true;
};

// getenv-like: the variable's value, or nullopt when it is not set.
using EnvLookup = std::function<std::optional<std::string>(const char* name)>;
CniResult<Environment> parse_environment(const EnvLookup& lookup);

struct PortMapping {
    NodePort host;
    std::uint16_t container_port = 0;
};

// Where ADD records the containers of each network that it mapped ports for
// (<stateDir>/<network>/<container id>, empty files), for GC.
inline constexpr std::string_view default_state_dir = "/var/lib/nodeport-cni";

struct NetConfig {
    std::string cni_version;
    std::filesystem::path pin_dir = default_pin_dir;
    // The "load" key: load the datapath with these options when it is not
    // loaded yet. pin_dir filled in; cgroup nullopt means the cgroup v2 root.
    std::optional<LoadOptions> load;
    // "load" without an "interfaces" key: the default route's interface, as
    // `nodeport load` picks it (an empty list is local-only forwarding).
    bool load_on_default_route = false;
    std::vector<PortMapping> port_mappings;  // runtimeConfig.portMappings, duplicates removed
    std::optional<nlohmann::json> prev_result;
    // The container's addresses from prevResult: its IPv4 one, its IPv6 one,
    // or both (IPv4 first). Each port is mapped to each: a dual-stack
    // container is reached by clients of either family.
    std::vector<IpAddr> container_ips;
    // The network's "name" (empty when the config has none) and where the
    // plugin records which containers of it hold ports ("stateDir"): GC
    // removes only what these records say the plugin itself mapped.
    std::string network;
    std::filesystem::path state_dir = default_state_dir;
    // GC: cni.dev/valid-attachments, the container ids still attached.
    std::vector<std::string> valid_containers;
};

// What nodeport-cni reads of stdin (docs/cni.md); past
// any of these the read stops at once: code 7, naming the limit. The largest
// real config, a portMappings list of every port of both protocols, is about
// 10 MiB and 655,000 values.
inline constexpr JsonLimits config_limits{
    .bytes = std::size_t{16} << 20,
    .depth = 64,
    .values = 1'000'000,
    .string_bytes = std::size_t{64} << 10,
};

// stdin read through the shared bounded reader (json_input.hpp): a JSON
// object within config_limits, each key once in an object. Not JSON, or not
// an object: code 6; past a limit or a key twice: code 7.
CniResult<nlohmann::json> read_net_config(std::istream& in);

// Checks a config read by read_net_config for `command`. ADD and CHECK need
// prevResult, and an IPv4 container address when there are ports to map; DEL
// needs neither (a DEL after a failed ADD, or from a runtime that kept no
// result).
CniResult<NetConfig> check_net_config(const nlohmann::json& config, Command command);
// Both steps, from text.
CniResult<NetConfig> parse_net_config(std::string_view text, Command command);

// The cniVersion of the config when it is one we speak, for the error reply;
// the newest otherwise (and when stdin could not be read).
std::string reply_version(const CniResult<nlohmann::json>& config);

}  // namespace nodeport::cni
