// Reading a command's arguments: the options every command shares, and the
// ones several commands take.
#pragma once

#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cli/cli.hpp"
#include "nodeport/datapath_types.hpp"

namespace nodeport::cli {

struct Invocation {
    std::filesystem::path pin_dir;
    boost::program_options::variables_map options;
    std::vector<std::string> args;  // the positional arguments, one per name given
};

// Parses the command's options plus --pin-dir and --help, and exactly the
// named positional arguments. nullopt: --help was printed.
// `optional_names` may follow the required ones.
std::optional<Invocation> parse(std::string_view command, const Args& argv,
                                boost::program_options::options_description options,
                                std::vector<std::string_view> positional_names = {},
                                std::vector<std::string_view> optional_names = {});

// parse() for a command that also reads its options from --config FILE
// (Boost.Program_options config file syntax: `name = value` lines with the
// long option names, `#` comments, a repeatable option as a repeated key).
// The command line wins over the file; a key the command does not know, or a
// file that cannot be read, is bad input naming it. No positional arguments.
std::optional<Invocation> parse_with_config(std::string_view command, const Args& argv,
                                            boost::program_options::options_description options);

// A file named by option `field`, open for reading; missing, unreadable or a
// directory is bad input naming the field.
std::ifstream open_input(std::string_view field, const std::string& path);

// --wait SECONDS, for the commands that take the pin directory's lock:
// whole seconds, 0 (fail at once) to 3600; default 5.
boost::program_options::options_description wait_description();
std::chrono::milliseconds lock_wait_option(const Invocation& inv);
// The option `name` (given) as whole seconds from min_seconds to max_seconds;
// anything else is bad input naming it.
unsigned seconds_option(const Invocation& inv, const std::string& name, unsigned min_seconds, unsigned max_seconds);

// --node-ip, repeatable.
boost::program_options::options_description node_ip_description();
std::vector<IpAddr> node_ip_options(const Invocation& inv);

std::string describe(const std::vector<NodeAddr>& addrs);
std::string describe(const std::vector<TcAttachment>& interfaces);
// A mapping: {"proto": "tcp", "port": 6667, "backend_ip": ..., "backend_port": ..., "owner": ...}
nlohmann::json to_json(const Mapping& m);
// [{"addr": "10.8.0.1", "interface": "br0"}] (interface null when given by hand)
nlohmann::json to_json(const std::vector<NodeAddr>& addrs);
// [{"name": "ext0", "ifindex": 3, "mode": "tcx"}]
nlohmann::json to_json(const std::vector<TcAttachment>& interfaces);

}  // namespace nodeport::cli
