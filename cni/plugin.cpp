#include "plugin.hpp"

#include <algorithm>
#include <cerrno>
#include <spanstream>

#include <fmt/format.h>

#include "nodeport/datapath.hpp"
#include "nodeport/interfaces.hpp"
#include "nodeport/port_table.hpp"
#include "records.hpp"

namespace nodeport::cni {
namespace {

using nlohmann::json;

std::string dump(const json& value) {
    // Replace, never throw: text we echo has passed through
    // printable_message(), and a prevResult we pass on came from a JSON parser.
    return value.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

Reply error_reply(const CniError& error, std::string_view version) {
    // The values in a message were escaped where they were quoted; this only
    // guards against what was not (escaping twice would show a\\x1b).
    json out{{"cniVersion", version}, {"code", static_cast<int>(error.code)}, {"msg", printable_message(error.msg)}};
    if (!error.details.empty())
        out["details"] = printable_message(error.details);
    return Reply{1, dump(out)};
}

// A library failure as a CNI error: a held lock is worth retrying, bad input
// is the config's fault, the rest is the datapath's.
CniError from_library(const Error& error) {
    if (error.kind == ErrorKind::busy)
        return CniError{Code::try_again_later, error.message, "another nodeport writer held the pin directory's lock"};
    if (error.kind == ErrorKind::bad_input)
        return CniError{Code::invalid_config, error.message, {}};
    return CniError{Code::datapath, error.message, {}};
}

bool not_loaded(const Error& error) { return error.kind == ErrorKind::not_loaded; }

// The port table; for ADD with a "load" key, loads the datapath first when it
// is not loaded yet, so a node needs no other set-up. Concurrent ADDs may
// both load: load holds the pin directory's lock and a second load reuses the
// maps the first pinned, mappings and all.
CniResult<PortTable> open_table(const NetConfig& config, bool may_load) {
    auto table = PortTable::open(config.pin_dir);
    if (table || !not_loaded(table.error()) || !may_load || !config.load)
        return table ? CniResult<PortTable>(std::move(*table)) : std::unexpected(from_library(table.error()));
    LoadOptions options = *config.load;
    if (config.load_on_default_route) {
        auto names = choose_interfaces(InterfaceChoice{});
        if (!names)
            return cni_error(Code::invalid_config, names.error().message,
                             "name the node's external interfaces in load.interfaces, or [] for local traffic only");
        options.interfaces = std::move(*names);
    }
    if (!options.cgroup) {
        auto root = cgroup2_root();
        if (!root)
            return std::unexpected(from_library(root.error()));
        options.cgroup = *root;
    }
    if (auto loaded = load(options); !loaded)
        return std::unexpected(from_library(loaded.error()));
    table = PortTable::open(config.pin_dir);
    if (!table)
        return std::unexpected(from_library(table.error()));
    return std::move(*table);
}

// The mappings of one port: to each of the container's addresses (one per
// family).
std::vector<Mapping> mappings_for(const NetConfig& config, const PortMapping& port, const std::string& owner) {
    std::vector<Mapping> out;
    for (const auto& addr : config.container_ips)
        out.push_back(Mapping{port.host, Backend{addr, port.container_port}, owner});
    return out;
}

// Newest ADD wins: set replaces whatever holds the port, so a replacement
// container whose ADD runs before the old one's DEL takes the port, and the
// old DEL (owner-checked) leaves it alone. Ports already set stay set when a
// later one fails: the runtime calls DEL after a failed ADD, which removes
// them by owner.
CniResult<void> add(const Environment& env, const NetConfig& config) {
    if (config.port_mappings.empty())
        return {};
    if (!env.owner_storable)
        return cni_error(Code::invalid_environment,
                         fmt::format("CNI_CONTAINERID is {} characters long; nodeport owners are at most 255",
                                     env.container_id.size()));
    auto table = open_table(config, true);
    if (!table)
        return std::unexpected(table.error());
    // Before any port is mapped: a GC must find every container that may hold one.
    if (auto recorded = records::add(config, env.container_id); !recorded)
        return std::unexpected(recorded.error());
    for (const auto& port : config.port_mappings)
        for (const auto& m : mappings_for(config, port, env.container_id))
            if (auto set = table->set(m); !set)
                return std::unexpected(from_library(set.error()));
    return {};
}

// Owner-safe and idempotent: removes exactly the ports this container still
// holds, whatever the config lists (a DEL may come without runtimeConfig or
// prevResult, or after an ADD that failed half-way). Nothing loaded, or an
// id nodeport could never have stored, means nothing to remove.
CniResult<void> del(const Environment& env, const NetConfig& config) {
    if (!env.owner_storable)
        return {};
    auto table = PortTable::open(config.pin_dir);
    if (!table) {
        if (!not_loaded(table.error()))
            return std::unexpected(from_library(table.error()));
        records::remove(config, env.container_id);  // not loaded: no port is held
        return {};
    }
    if (auto removed = table->remove_owner(env.container_id); !removed)
        return std::unexpected(from_library(removed.error()));
    records::remove(config, env.container_id);
    return {};
}

// Spec 1.1.0 GC: the ports of every container this plugin mapped ports for in
// this network (records.hpp) that is not in cni.dev/valid-attachments, as
// its DEL would remove them. Owners the plugin did not record (the CLI, a Go
// controller, another network) are never touched.
CniResult<void> gc(const NetConfig& config) {
    auto recorded = records::list(config);
    if (!recorded)
        return std::unexpected(recorded.error());
    std::vector<std::string> stale;
    for (const auto& id : *recorded)
        if (!std::ranges::binary_search(config.valid_containers, id))
            stale.push_back(id);
    if (stale.empty())
        return {};
    auto table = PortTable::open(config.pin_dir);
    if (!table && !not_loaded(table.error()))
        return std::unexpected(from_library(table.error()));
    for (const auto& id : stale) {
        if (table)
            if (auto removed = table->remove_owner(id); !removed)
                return std::unexpected(from_library(removed.error()));
        records::remove(config, id);
    }
    return {};
}

// Spec 1.1.0 STATUS: ready when nodeport is loaded at pinDir, or the config
// would load it with the first ADD.
CniResult<void> status(const NetConfig& config) {
    auto table = PortTable::open(config.pin_dir);
    if (table)
        return {};
    if (!not_loaded(table.error()))
        return std::unexpected(from_library(table.error()));
    if (config.load)
        return {};
    return cni_error(Code::not_available, table.error().message,
                     "load nodeport (nodeport load), or give the plugin a \"load\" key");
}

CniResult<void> check(const Environment& env, const NetConfig& config) {
    if (config.port_mappings.empty())
        return {};
    auto table = open_table(config, false);
    if (!table)
        return std::unexpected(table.error());
    for (const auto& port : config.port_mappings) {
        auto got = table->get(port.host);
        if (!got)
            return std::unexpected(from_library(got.error()));
        // The entry of each of the container's families (the container has
        // no say over a family it has no address of).
        for (const auto& want : mappings_for(config, port, env.container_id)) {
            auto same = std::ranges::find(*got, want.family(), &Mapping::family);
            if (same == got->end())
                return cni_error(Code::check_failed, fmt::format("{} is not mapped", to_string(key_of(want))),
                                 fmt::format("expected {} owned by {}", to_string(want.backend), want.owner));
            if (*same != want)
                return cni_error(Code::check_failed,
                                 fmt::format("{} is mapped to {} owned by {}", to_string(key_of(want)),
                                             to_string(same->backend), printable(same->owner)),
                                 fmt::format("expected {} owned by {}", to_string(want.backend), want.owner));
        }
    }
    return {};
}

std::string version_reply(std::string_view version) {
    json out{{"cniVersion", version}, {"supportedVersions", json::array()}};
    for (auto v : supported_versions)
        out["supportedVersions"].push_back(v);
    return dump(out);
}

}  // namespace

std::string internal_error_reply(std::string_view version, std::string_view what) {
    return error_reply(CniError{Code::datapath, "nodeport-cni: internal error: " + std::string(what), {}}, version)
        .stdout_text;
}

Reply run(const EnvLookup& lookup, std::istream& in) {
    // stdin is read once, through the bounded reader, whatever the command:
    // the reply's version comes from it too.
    auto read = read_net_config(in);
    std::string version = reply_version(read);
    try {
        auto env = parse_environment(lookup);
        if (!env)
            return error_reply(env.error(), version);
        if (env->command == Command::version)
            return Reply{0, version_reply(version)};
        if (!read)
            return error_reply(read.error(), version);
        auto config = check_net_config(*read, env->command);
        if (!config)
            return error_reply(config.error(), version);
        CniResult<void> done;
        switch (env->command) {
        case Command::add:
            done = add(*env, *config);
            break;
        case Command::del:
            done = del(*env, *config);
            break;
        case Command::check:
            done = check(*env, *config);
            break;
        case Command::gc:
            done = gc(*config);
            break;
        case Command::status:
            done = status(*config);
            break;
        case Command::version:
            break;
        }
        if (!done)
            return error_reply(done.error(), version);
        // ADD passes the previous result on unchanged (nodeport adds no
        // interface or address); DEL, CHECK, GC and STATUS print nothing on success.
        if (env->command == Command::add)
            return Reply{0, dump(*config->prev_result)};
        return Reply{0, {}};
    } catch (const std::exception& e) {
        // Out of memory and the like: still a CNI error, in the caller's version.
        return Reply{1, internal_error_reply(version, e.what())};
    }
}

Reply run(const EnvLookup& lookup, std::string_view stdin_text) {
    std::ispanstream in(std::span<const char>(stdin_text.data(), stdin_text.size()));
    return run(lookup, in);
}

}  // namespace nodeport::cni
