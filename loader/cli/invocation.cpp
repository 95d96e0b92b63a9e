#include "cli/invocation.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <iostream>

#include "nodeport/lock_wait.hpp"

namespace nodeport::cli {

namespace po = boost::program_options;

namespace {

// Boost's default style takes any unambiguous prefix of a long option
// (`--pin X` for `--pin-dir X`, `--jso`): a typo, or an option added later
// that shares the prefix, would silently change what a script means. Every
// option is matched exactly; the only short option is -h.
constexpr int exact_style = po::command_line_style::default_style & ~po::command_line_style::allow_guessing;

// The option a Boost error names, without its dashes ("owner"), or "option".
std::string option_field(const po::error& e) {
    std::string name;
    if (const auto* named = dynamic_cast<const po::error_with_option_name*>(&e))
        name = named->get_option_name();
    name.erase(0, name.find_first_not_of('-'));
    return name.empty() ? "option" : name;
}

// Options from --config FILE, stored after the command line's: po::store
// keeps the first value stored for an option, so the command line wins, also
// for a repeatable option (the file's values are not added to it; none of
// ours is `composing`). A key the command does not know is bad input.
void store_config_file(const po::options_description& file_options, po::variables_map& vm) {
    const auto path = vm["config"].as<std::string>();
    std::ifstream file = open_input("config", path);
    try {
        po::store(po::parse_config_file(file, file_options, false), vm);
    } catch (const po::error& e) {
        throw UsageError("config", fmt::format("{}: {}", path, e.what()));
    }
}

std::optional<Invocation> parse_options(std::string_view command, const Args& argv, po::options_description options,
                                        std::vector<std::string_view> positional_names,
                                        std::vector<std::string_view> optional_names, bool with_config) {
    const Command* cmd = nullptr;
    for (const auto& c : commands())
        if (c.name == command)
            cmd = &c;
    // What a config file may set: the command's options and --pin-dir.
    options.add_options()
        ("pin-dir", po::value<std::string>()->default_value(default_pin_dir.string()),
         "bpffs directory holding nodeport's maps and links");
    po::options_description extra;
    if (with_config)
        extra.add_options()("config", po::value<std::string>(),
                            "read options from FILE (KEY = VALUE lines, the long option names; a repeatable "
                            "option is a repeated key); the command line wins over the file");
    extra.add_options()
        ("json", "print the result as JSON on stdout, an error as {\"error\": ..., \"field\": ...} on stderr")
        ("help,h", "show this help");
    po::options_description visible;
    visible.add(options).add(extra);
    po::options_description all;
    all.add(visible).add_options()("positional", po::value<std::vector<std::string>>(), "");
    po::positional_options_description positional;
    positional.add("positional", -1);

    Invocation inv;
    try {
        po::store(po::command_line_parser(argv).options(all).positional(positional).style(exact_style).run(),
                  inv.options);
    } catch (const po::error& e) {
        throw UsageError(option_field(e), e.what(), UsageError::AsIs{});
    }
    if (inv.options.count("help")) {
        std::cout << "usage: nodeport " << cmd->usage << "\n" << cmd->summary << "\n\nexample: nodeport "
                  << cmd->example << "\n" << visible << "\nexit status: 0 done, 1 runtime failure, 2 bad input "
                  << "(nothing changed)" << (cmd->exits.empty() ? "" : ", ") << cmd->exits << "\n";
        return std::nullopt;
    }
    if (with_config && inv.options.count("config"))
        store_config_file(options, inv.options);
    try {
        po::notify(inv.options);
    } catch (const po::error& e) {
        throw UsageError(option_field(e), e.what(), UsageError::AsIs{});
    }
    if (inv.options.count("positional"))
        inv.args = inv.options["positional"].as<std::vector<std::string>>();
    if (inv.args.size() < positional_names.size())
        throw UsageError(std::string(positional_names[inv.args.size()]),
                         fmt::format("missing argument (usage: nodeport {})", cmd->usage));
    if (inv.args.size() > positional_names.size() + optional_names.size())
        throw UsageError("argument",
                         fmt::format("unexpected argument '{}' (usage: nodeport {})",
                                     inv.args[positional_names.size() + optional_names.size()], cmd->usage),
                         UsageError::AsIs{});
    inv.pin_dir = inv.options["pin-dir"].as<std::string>();
    if (!inv.pin_dir.is_absolute())
        throw UsageError("pin-dir", fmt::format("'{}' is not an absolute path", inv.pin_dir.string()));
    // Missing is a state (not loaded; load creates it), a file is a typo.
    std::error_code ec;
    if (std::filesystem::exists(inv.pin_dir, ec) && !std::filesystem::is_directory(inv.pin_dir, ec))
        throw UsageError("pin-dir", fmt::format("'{}' is not a directory", inv.pin_dir.string()));
    return inv;
}

}  // namespace

std::ifstream open_input(std::string_view field, const std::string& path) {
    // An ifstream opens a directory and then reads nothing (or fails with
    // EISDIR): say what is wrong before reading.
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec))
        throw UsageError(std::string(field), fmt::format("'{}' is a directory, not a file", path));
    std::ifstream file(path);
    if (!file)
        throw UsageError(std::string(field), fmt::format("cannot read '{}': {}", path, std::strerror(errno)));
    return file;
}

std::optional<Invocation> parse(std::string_view command, const Args& argv, po::options_description options,
                                std::vector<std::string_view> positional_names,
                                std::vector<std::string_view> optional_names) {
    return parse_options(command, argv, std::move(options), std::move(positional_names), std::move(optional_names),
                         false);
}

std::optional<Invocation> parse_with_config(std::string_view command, const Args& argv,
                                            po::options_description options) {
    return parse_options(command, argv, std::move(options), {}, {}, true);
}

po::options_description wait_description() {
    po::options_description options;
    options.add_options()("wait", po::value<std::string>(),
                          fmt::format("seconds to wait for another writer holding the pin directory's lock, then "
                                      "fail naming it (0: fail at once; default {})",
                                      std::chrono::duration_cast<std::chrono::seconds>(default_lock_wait).count())
                              .c_str());
    return options;
}

unsigned seconds_option(const Invocation& inv, const std::string& name, unsigned min_seconds, unsigned max_seconds) {
    const auto& text = inv.options[name].as<std::string>();
    unsigned value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || !std::isdigit(static_cast<unsigned char>(text[0])) || ec != std::errc{} ||
        end != text.data() + text.size() || value < min_seconds || value > max_seconds)
        throw UsageError(name, fmt::format("'{}' is not a number of seconds ({}-{})", text, min_seconds, max_seconds));
    return value;
}

std::chrono::milliseconds lock_wait_option(const Invocation& inv) {
    if (!inv.options.count("wait"))
        return default_lock_wait;
    return std::chrono::seconds(seconds_option(inv, "wait", 0, 3600));
}

std::vector<IpAddr> node_ip_options(const Invocation& inv) {
    std::vector<IpAddr> ips;
    if (inv.options.count("node-ip"))
        for (const auto& text : inv.options["node-ip"].as<std::vector<std::string>>())
            ips.push_back(valid(parse_node_ip(text)));
    // The library's check of the list (each once), as load and refresh run it.
    if (auto ok = check_node_ips(ips); !ok)
        throw UsageError(ok.error().field, ok.error().message);
    return ips;
}

po::options_description node_ip_description() {
    po::options_description options;
    options.add_options()("node-ip", po::value<std::vector<std::string>>(),
                          "an address of the node, IPv4 or IPv6 (repeatable; default: every address of this "
                          "network namespace but loopback and IPv6 link-local)");
    return options;
}

std::string describe(const std::vector<NodeAddr>& addrs) {
    std::string out;
    for (const auto& a : addrs)
        out += fmt::format("{}{}{}", out.empty() ? "" : ", ", to_string(a.addr),
                           a.interface.empty() ? "" : " (" + a.interface + ")");
    return out.empty() ? "none" : out;
}

std::string describe(const std::vector<TcAttachment>& interfaces) {
    std::string out;
    for (const auto& a : interfaces)
        out += fmt::format("{}{} ({}{})", out.empty() ? "" : ", ", a.interface, to_string(a.mode),
                           a.link == LinkKind::l3 ? ", l3" : "");
    return out.empty() ? "none (local forwarding only)" : out;
}

nlohmann::json to_json(const Mapping& m) {
    return {{"proto", to_string(m.node_port.proto)},
            {"port", m.node_port.port},
            {"family", to_string(m.family())},
            {"backend_ip", to_string(m.backend.addr)},
            {"backend_port", m.backend.port},
            {"owner", printable(m.owner)}};
}

nlohmann::json to_json(const std::vector<NodeAddr>& addrs) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& a : addrs)
        out.push_back({{"addr", to_string(a.addr)},
                       {"interface", a.interface.empty() ? nlohmann::json() : nlohmann::json(printable(a.interface))}});
    return out;
}

nlohmann::json to_json(const std::vector<TcAttachment>& interfaces) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& a : interfaces)
        out.push_back({{"name", printable(a.interface)},
                       {"ifindex", a.ifindex},
                       {"mode", to_string(a.mode)},
                       {"link", to_string(a.link)}});
    return out;
}

}  // namespace nodeport::cli
