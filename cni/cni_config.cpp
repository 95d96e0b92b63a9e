#include "cni_config.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <map>
#include <spanstream>

#include <fmt/format.h>

namespace nodeport::cni {
namespace {

using nlohmann::json;

std::unexpected<CniError> bad_config(std::string msg, std::string details = {}) {
    return cni_error(Code::invalid_config, std::move(msg), std::move(details));
}

std::unexpected<CniError> bad_env(std::string msg) {
    return cni_error(Code::invalid_environment, std::move(msg));
}

// The spec's container id: an alphanumeric, then alphanumerics, '_', '.', '-'.
// The network name has the same form (spec 1.1.0), so neither can be "." or
// ".." or hold a '/': both are safe as file names under stateDir.
bool is_cni_container_id(std::string_view id) {
    auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); };
    return !id.empty() && alnum(id.front()) &&
           std::ranges::all_of(id, [&](char c) { return alnum(c) || c == '_' || c == '.' || c == '-'; });
}

CniResult<Command> parse_command(const std::optional<std::string>& text) {
    if (!text || text->empty())
        return bad_env("CNI_COMMAND is not set (ADD, DEL, CHECK, GC, STATUS or VERSION)");
    static const std::map<std::string, Command, std::less<>> commands{
        {"ADD", Command::add}, {"DEL", Command::del},       {"CHECK", Command::check},
        {"GC", Command::gc},   {"STATUS", Command::status}, {"VERSION", Command::version}};
    if (auto it = commands.find(*text); it != commands.end())
        return it->second;
    return bad_env(fmt::format("CNI_COMMAND {} is not supported (ADD, DEL, CHECK, GC, STATUS or VERSION)",
                               quote(*text)));
}

bool is_supported_version(std::string_view version) {
    return std::ranges::find(supported_versions, version) != std::end(supported_versions);
}

// 1-65535 from a JSON integer, with parse_port's message.
CniResult<std::uint16_t> port_field(const json& entry, const char* key, std::size_t index) {
    std::string where = fmt::format("runtimeConfig.portMappings[{}].{}", index, key);
    auto it = entry.find(key);
    if (it == entry.end())
        return bad_config(where + " is missing");
    if (!it->is_number_integer())
        return bad_config(fmt::format("{} must be an integer port, not {}", where, describe(*it)));
    auto port = parse_port(it->dump(), key);
    if (!port)
        return bad_config(fmt::format("{}: {}", where, port.error().message));
    return *port;
}

CniResult<PortMapping> parse_port_mapping(const json& entry, std::size_t index) {
    std::string where = fmt::format("runtimeConfig.portMappings[{}]", index);
    if (!entry.is_object())
        return bad_config(where + " must be an object");
    auto host_port = port_field(entry, "hostPort", index);
    if (!host_port)
        return std::unexpected(host_port.error());
    auto container_port = port_field(entry, "containerPort", index);
    if (!container_port)
        return std::unexpected(container_port.error());
    Proto proto = Proto::tcp;  // the spec's and portmap's default
    if (auto it = entry.find("protocol"); it != entry.end()) {
        if (!it->is_string())
            return bad_config(where + ".protocol must be a string (tcp or udp)");
        auto parsed = parse_proto(it->get_ref<const std::string&>());
        if (!parsed)
            return bad_config(fmt::format("{}.protocol: {}", where, parsed.error().message),
                              "nodeport forwards TCP and UDP; SCTP is not supported");
        proto = *parsed;
    }
    // nodeport maps a port on every address of the node (one map entry per
    // protocol and port, matched against the whole node address set), so it
    // cannot honour "only on this address". Mapping it everywhere anyway
    // would expose a port the user asked to keep on one address (often
    // 127.0.0.1): refuse instead.
    if (auto it = entry.find("hostIP"); it != entry.end()) {
        if (!it->is_string())
            return bad_config(where + ".hostIP must be a string");
        // "::" is the IPv6 wildcard (podman and nerdctl send it for
        // `-p [::]:8080:80`): every address, as nodeport maps anyway.
        const auto& host_ip = it->get_ref<const std::string&>();
        if (!host_ip.empty() && host_ip != "0.0.0.0" && host_ip != "::")
            return bad_config(fmt::format("{}.hostIP {}: nodeport-cni maps a host port on every node address and "
                                          "cannot limit it to one",
                                          where, quote(host_ip)),
                              "leave hostIP empty (or 0.0.0.0, ::), or use the portmap plugin for this network");
    }
    return PortMapping{NodePort{proto, *host_port}, *container_port};
}

CniResult<std::vector<PortMapping>> parse_port_mappings(const json& config) {
    std::vector<PortMapping> mappings;
    auto runtime = config.find("runtimeConfig");
    if (runtime == config.end() || runtime->is_null())
        return mappings;
    if (!runtime->is_object())
        return bad_config("runtimeConfig must be an object");
    auto list = runtime->find("portMappings");
    if (list == runtime->end() || list->is_null())
        return mappings;
    if (!list->is_array())
        return bad_config("runtimeConfig.portMappings must be an array");
    for (std::size_t i = 0; i < list->size(); ++i) {
        auto mapping = parse_port_mapping((*list)[i], i);
        if (!mapping)
            return std::unexpected(mapping.error());
        // One backend per host port: the same mapping twice is one, two
        // different targets for one port are a mistake to report.
        auto same_port = std::ranges::find(mappings, mapping->host, &PortMapping::host);
        if (same_port == mappings.end())
            mappings.push_back(*mapping);
        else if (same_port->container_port != mapping->container_port)
            return bad_config(fmt::format("runtimeConfig.portMappings maps host port {} twice, to container ports "
                                          "{} and {}",
                                          to_string(mapping->host), same_port->container_port,
                                          mapping->container_port));
    }
    return mappings;
}

CniResult<std::optional<LoadOptions>> parse_load(const json& config, const std::filesystem::path& pin_dir) {
    auto it = config.find("load");
    if (it == config.end() || it->is_null())
        return std::nullopt;
    if (!it->is_object())
        return bad_config("\"load\" must be an object: {\"cgroup\": PATH, \"interfaces\": [NAME, ...]}");
    LoadOptions options;
    options.pin_dir = pin_dir;
    for (const auto& [key, value] : it->items()) {
        if (key == "cgroup") {
            if (!value.is_string() || value.get_ref<const std::string&>().empty() ||
                value.get_ref<const std::string&>().front() != '/')
                return bad_config(
                    fmt::format("load.cgroup {} must be the absolute path of a cgroup v2 directory", describe(value)));
            options.cgroup = value.get<std::string>();
        } else if (key == "interfaces") {
            if (!value.is_array())
                return bad_config("load.interfaces must be an array of interface names");
            for (const auto& name : value) {
                if (!name.is_string())
                    return bad_config("load.interfaces must be an array of interface names");
                options.interfaces.push_back(name.get<std::string>());
            }
        } else {
            // A misspelt key would silently load something other than meant.
            return bad_config(
                fmt::format("load.{} is not a key nodeport-cni knows (cgroup, interfaces)", shown_key(key)));
        }
    }
    if (auto ok = check_load_options(options); !ok)
        return bad_config(fmt::format("load: {}: {}", ok.error().field, ok.error().message));
    return options;
}

// A prefix length: 0 to `max` (32 for IPv4, 128 for IPv6) in decimal
// digits, no sign, no leading zero.
bool is_prefix_length(std::string_view text, unsigned max) {
    unsigned value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    return !text.empty() && text.size() <= 3 && ec == std::errc{} && end == text.data() + text.size() &&
           (text.size() == 1 || text.front() != '0') && value <= max;
}

// "10.22.0.5/16" -> 10.22.0.5, "fd00::5/64" -> fd00::5.
CniResult<IpAddr> parse_cidr(std::string_view text, std::size_t index) {
    std::string where = fmt::format("prevResult.ips[{}].address", index);
    auto slash = text.find('/');
    if (slash == std::string_view::npos)
        return bad_config(fmt::format("{} {} is not an address with a prefix length", where, quote(text)));
    auto addr = text.substr(0, slash);
    auto length = text.substr(slash + 1);
    if (addr.find(':') != std::string_view::npos) {
        auto parsed = parse_ipv6(addr, where);
        if (!parsed || !is_prefix_length(length, 128))
            return bad_config(fmt::format("{} {} is not an IPv6 address with a prefix length (/0-/128)", where,
                                          quote(text)));
        return IpAddr{*parsed};
    }
    auto parsed = parse_ipv4(addr, where);
    if (!parsed)
        return bad_config(fmt::format("{}: {}", where, parsed.error().message));
    if (!is_prefix_length(length, 32))
        return bad_config(fmt::format("{} {}: the prefix length is not 0-32", where, quote(text)));
    return IpAddr{*parsed};
}

// The container's addresses, one per family: the first of the family on an
// interface inside the sandbox (interfaces[].sandbox set), which is the
// container side of a veth; else the first of the family at all (a result
// that names no interfaces). An IPv6 address a host cannot be reached at
// from elsewhere (link-local, v4-mapped) is not one. Also checks the shape of
// every entry, so a malformed result is refused whatever we use.
CniResult<std::vector<IpAddr>> container_addresses(const json& result) {
    if (!result.is_object())
        return bad_config("prevResult must be an object");
    std::vector<bool> in_sandbox;
    if (auto it = result.find("interfaces"); it != result.end() && !it->is_null()) {
        if (!it->is_array())
            return bad_config("prevResult.interfaces must be an array");
        for (std::size_t i = 0; i < it->size(); ++i) {
            const auto& iface = (*it)[i];
            if (!iface.is_object())
                return bad_config(fmt::format("prevResult.interfaces[{}] must be an object", i));
            auto sandbox = iface.find("sandbox");
            if (sandbox != iface.end() && !sandbox->is_null() && !sandbox->is_string())
                return bad_config(fmt::format("prevResult.interfaces[{}].sandbox must be a string", i));
            in_sandbox.push_back(sandbox != iface.end() && sandbox->is_string() &&
                                 !sandbox->get_ref<const std::string&>().empty());
        }
    }
    // Per family (IpAddr's index: IPv4 0, IPv6 1).
    std::array<std::optional<IpAddr>, 2> first, first_in_sandbox;
    if (auto it = result.find("ips"); it != result.end() && !it->is_null()) {
        if (!it->is_array())
            return bad_config("prevResult.ips must be an array");
        for (std::size_t i = 0; i < it->size(); ++i) {
            const auto& ip = (*it)[i];
            if (!ip.is_object() || !ip.contains("address") || !ip["address"].is_string())
                return bad_config(fmt::format("prevResult.ips[{}] must be an object with an \"address\" string", i));
            auto addr = parse_cidr(ip["address"].get_ref<const std::string&>(), i);
            if (!addr)
                return std::unexpected(addr.error());
            bool sandbox_side = false;
            if (auto index = ip.find("interface"); index != ip.end() && !index->is_null()) {
                if (!index->is_number_integer() || index->get<long long>() < 0 ||
                    index->get<long long>() >= static_cast<long long>(in_sandbox.size()))
                    return bad_config(fmt::format("prevResult.ips[{}].interface {} is not an index into "
                                                  "prevResult.interfaces ({} entries)",
                                                  i, describe(*index), in_sandbox.size()));
                sandbox_side = in_sandbox[index->get<std::size_t>()];
            }
            if (std::holds_alternative<Ipv6>(*addr) && !is_routable_unicast(*addr))
                continue;
            const std::size_t family = addr->index();
            if (!first[family])
                first[family] = *addr;
            if (sandbox_side && !first_in_sandbox[family])
                first_in_sandbox[family] = *addr;
        }
    }
    std::vector<IpAddr> out;
    for (std::size_t family : {0, 1})
        if (auto chosen = first_in_sandbox[family] ? first_in_sandbox[family] : first[family])
            out.push_back(*chosen);
    return out;
}

// An absolute path under `key`, or `fallback` when the key is absent;
// `what` says in the error what the path is for. A NUL would end the path
// early where the kernel reads it, a C string.
CniResult<std::filesystem::path> parse_path(const json& config, const char* key, std::string_view fallback,
                                            std::string_view what) {
    auto it = config.find(key);
    if (it == config.end() || it->is_null())
        return std::filesystem::path(fallback);
    if (!it->is_string() || it->get_ref<const std::string&>().empty() ||
        it->get_ref<const std::string&>().front() != '/' ||
        it->get_ref<const std::string&>().find('\0') != std::string::npos)
        return bad_config(fmt::format("{} {} must be an absolute path ({})", key, describe(*it), what));
    return std::filesystem::path(it->get<std::string>());
}

// "pinDir", absolute when given; the default pin directory otherwise.
CniResult<std::filesystem::path> parse_pin_dir(const json& config) {
    return parse_path(config, "pinDir", default_pin_dir.string(), "a directory under /sys/fs/bpf");
}

// portmap's "conditionsV4"/"conditionsV6" (iptables matches limiting who may
// reach the ports): nodeport has no such filter, and ignoring them would
// expose the ports to everyone the user meant to keep out.
CniResult<void> refuse_conditions(const json& config) {
    for (const char* key : {"conditionsV4", "conditionsV6"})
        if (auto it = config.find(key); it != config.end() && !it->is_null())
            return bad_config(fmt::format("{} is not supported: nodeport-cni cannot limit who reaches a host port", key),
                              "remove the key, or use the portmap plugin for this network");
    return {};
}

// "name" (the network) when it is a valid one, else empty; `strict` refuses
// a malformed one (ADD, CHECK, GC), DEL takes it as absent.
CniResult<std::string> parse_network(const json& config, bool strict) {
    auto it = config.find("name");
    if (it == config.end() || it->is_null())
        return std::string();
    if (it->is_string() && is_cni_container_id(it->get_ref<const std::string&>()))
        return it->get<std::string>();
    if (!strict)
        return std::string();
    return bad_config(fmt::format("name {} is not a network name (a letter or digit, then letters, digits, '_', '.', "
                                  "'-')",
                                  describe(*it)));
}

// "stateDir", absolute when given (GC and DEL read what ADD wrote there).
CniResult<std::filesystem::path> parse_state_dir(const json& config) {
    return parse_path(config, "stateDir", default_state_dir, "where nodeport-cni records its containers");
}

// GC's "cni.dev/valid-attachments": [{"containerID": ..., "ifname": ...}].
CniResult<std::vector<std::string>> parse_valid_attachments(const json& config) {
    const std::string key = "cni.dev/valid-attachments";
    auto it = config.find(key);
    if (it == config.end() || it->is_null())
        return bad_config(key + " is missing: GC removes what no attachment in it holds",
                          "a runtime sends the list of every attachment still in use");
    if (!it->is_array())
        return bad_config(key + " must be an array");
    std::vector<std::string> ids;
    for (std::size_t i = 0; i < it->size(); ++i) {
        const auto& entry = (*it)[i];
        auto id = entry.is_object() ? entry.find("containerID") : entry.end();
        if (!entry.is_object() || id == entry.end() || !id->is_string() ||
            !is_cni_container_id(id->get_ref<const std::string&>()))
            return bad_config(fmt::format("{}[{}] must be an object with a \"containerID\" container id", key, i));
        ids.push_back(id->get<std::string>());
    }
    std::ranges::sort(ids);
    ids.erase(std::ranges::unique(ids).begin(), ids.end());
    return ids;
}

bool acts_on_container(Command command) {
    return command == Command::add || command == Command::del || command == Command::check;
}

}  // namespace

CniResult<Environment> parse_environment(const EnvLookup& lookup) {
    auto command = parse_command(lookup("CNI_COMMAND"));
    if (!command)
        return std::unexpected(command.error());
    Environment env{*command, {}, true};
    if (!acts_on_container(*command))
        return env;  // VERSION, GC, STATUS: no container
    auto id = lookup("CNI_CONTAINERID");
    if (!id || id->empty())
        return bad_env("CNI_CONTAINERID is not set");
    if (!is_cni_container_id(*id))
        return bad_env(fmt::format("CNI_CONTAINERID {} is not a container id (a letter or digit, then letters, "
                                   "digits, '_', '.', '-')",
                                   quote(*id)));
    env.container_id = *id;
    env.owner_storable = parse_owner(*id).has_value();  // nodeport stores owners of 1-255 characters
    // The spec requires these for every command that acts on a container;
    // nodeport does not enter the container (its address is in prevResult),
    // but a runtime that leaves them out is broken, and saying so helps.
    if (auto ifname = lookup("CNI_IFNAME"); !ifname || ifname->empty())
        return bad_env("CNI_IFNAME is not set");
    if (*command != Command::del)
        if (auto netns = lookup("CNI_NETNS"); !netns || netns->empty())
            return bad_env("CNI_NETNS is not set");
    return env;
}

CniResult<json> read_net_config(std::istream& in) {
    auto config = read_json(in, config_limits);
    if (!config && config.error().kind == JsonError::Kind::syntax)
        return cni_error(Code::decode_failure, "the network config on stdin is not JSON: " + config.error().message);
    if (!config)
        return bad_config("the network config on stdin: " + config.error().message,
                          fmt::format("nodeport-cni reads at most {} bytes, {} values, nested {} deep, strings of "
                                      "{} bytes, each key once in an object",
                                      config_limits.bytes, config_limits.values, config_limits.depth,
                                      config_limits.string_bytes));
    if (!config->is_object())
        return cni_error(Code::decode_failure, "the network config on stdin is not a JSON object");
    return std::move(*config);
}

std::string reply_version(const CniResult<json>& config) {
    if (config)
        if (auto it = config->find("cniVersion"); it != config->end() && it->is_string() &&
                                                  is_supported_version(it->get_ref<const std::string&>()))
            return it->get<std::string>();
    return std::string(newest_version);
}

CniResult<NetConfig> parse_net_config(std::string_view text, Command command) {
    std::ispanstream in(std::span<const char>(text.data(), text.size()));
    auto config = read_net_config(in);
    if (!config)
        return std::unexpected(config.error());
    return check_net_config(*config, command);
}

CniResult<NetConfig> check_net_config(const json& config, Command command) {
    NetConfig out;
    auto version = config.find("cniVersion");
    if (version == config.end() || !version->is_string())
        return bad_config("cniVersion is missing");
    out.cni_version = version->get<std::string>();
    // DEL reads nothing but the pin directory, and refuses nothing else: the
    // runtime deletes a config list in reverse and stops at the first error,
    // so a DEL refused over what it does not use (a mapping ADD refused, a
    // prevResult it does not read, a version) would keep bridge and
    // host-local from releasing the container's interface and address.
    auto pin_dir = parse_pin_dir(config);
    if (!pin_dir)
        return std::unexpected(pin_dir.error());
    out.pin_dir = std::move(*pin_dir);
    auto state_dir = parse_state_dir(config);
    auto network = parse_network(config, command != Command::del);
    if (command == Command::del) {
        // The record of the container, when name and stateDir can be read.
        if (state_dir && network)
            out.state_dir = std::move(*state_dir), out.network = std::move(*network);
        return out;
    }
    if (!is_supported_version(out.cni_version))
        return cni_error(Code::incompatible_version,
                         fmt::format("cniVersion {} is not supported", quote(out.cni_version)),
                         "nodeport-cni speaks 0.3.0, 0.3.1, 0.4.0, 1.0.0 and 1.1.0");
    if (command == Command::check && (out.cni_version == "0.3.0" || out.cni_version == "0.3.1"))
        return cni_error(Code::incompatible_version, "CHECK needs cniVersion 0.4.0 or later");
    if ((command == Command::gc || command == Command::status) && out.cni_version != "1.1.0")
        return cni_error(Code::incompatible_version, "GC and STATUS need cniVersion 1.1.0");
    if (!state_dir)
        return std::unexpected(state_dir.error());
    out.state_dir = std::move(*state_dir);
    if (!network)
        return std::unexpected(network.error());
    out.network = std::move(*network);
    if (command == Command::gc) {
        if (out.network.empty())
            return bad_config("name is missing: GC removes the ports of one network's containers");
        auto valid = parse_valid_attachments(config);
        if (!valid)
            return std::unexpected(valid.error());
        out.valid_containers = std::move(*valid);
    }

    auto load = parse_load(config, out.pin_dir);
    if (!load)
        return std::unexpected(load.error());
    out.load = std::move(*load);
    out.load_on_default_route = out.load && !config.at("load").contains("interfaces");
    if (command == Command::gc || command == Command::status)
        return out;  // no container: no mappings, no prevResult
    if (auto ok = refuse_conditions(config); !ok)
        return std::unexpected(ok.error());
    auto mappings = parse_port_mappings(config);
    if (!mappings)
        return std::unexpected(mappings.error());
    out.port_mappings = std::move(*mappings);

    if (auto it = config.find("prevResult"); it != config.end() && !it->is_null()) {
        auto addrs = container_addresses(*it);
        if (!addrs)
            return std::unexpected(addrs.error());
        out.container_ips = std::move(*addrs);
        out.prev_result = *it;
    }
    if (!out.prev_result)
        return bad_config("prevResult is missing: nodeport-cni is a chained plugin",
                          "put it after the plugin that creates the interface (bridge, ptp, ...) in a conflist");
    if (!out.port_mappings.empty()) {
        if (out.container_ips.empty())
            return bad_config("prevResult has no address for the container (IPv4, or IPv6 other than link-local)");
        // The same check set() makes, before anything is changed: a sandbox
        // address (not 0/8, loopback or multicast).
        for (const auto& m : out.port_mappings)
            for (const auto& addr : out.container_ips)
                if (auto ok = check_mapping(Mapping{m.host, Backend{addr, m.container_port}, {}}); !ok)
                    return bad_config(fmt::format("prevResult: {}: {}", ok.error().field, ok.error().message));
    }
    return out;
}

}  // namespace nodeport::cni
