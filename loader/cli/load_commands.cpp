// The commands that attach and detach the datapath: load, unload, refresh.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <iostream>

#include "cli/cli.hpp"
#include "cli/invocation.hpp"
#include "cli/load_options.hpp"
#include "nodeport/datapath.hpp"

namespace nodeport::cli {

namespace po = boost::program_options;

int cmd_load(const Args& argv) {
    auto inv = parse_with_config("load", argv, load_description());
    if (!inv)
        return exit_ok;
    auto [load_options, choice] = load_choices(*inv);
    load_options.interfaces = chosen_interfaces(choice);
    if (!load_options.cgroup)
        load_options.cgroup = succeeded(cgroup2_root());
    auto report = succeeded(load(load_options));
    // An interface keeps the mode it was attached with (a reload swaps the
    // programs in place); --tc-attach applies to interfaces attached anew.
    std::vector<std::string> kept_mode;
    for (const auto& a : report.interfaces)
        if (load_options.tc_attach != TcAttachMode::automatic && a.mode != load_options.tc_attach)
            kept_mode.push_back(printable(a.interface));
    if (inv->options.count("json")) {
        nlohmann::json out{{"pin_dir", printable(inv->pin_dir.string())},
                           {"cgroup", printable(load_options.cgroup->string())},
                           {"reused_maps", report.reused_maps},
                           {"node_addrs", to_json(report.node_addrs)},
                           {"interfaces", to_json(report.interfaces)},
                           {"migrated", nullptr},
                           {"socket_ending_unavailable", nullptr},
                           {"ipv6_off", nullptr},
                           {"resumed_targets", report.resumed_walk.resumed},
                           {"sockets_ended", report.resumed_walk.count},
                           {"kept_mode", kept_mode}};
        if (report.migrated)
            out["migrated"] = {{"from_abi", report.migrated->from_abi},
                               {"mappings", report.migrated->mappings},
                               {"flows", report.migrated->flows}};
        if (!report.socket_ending_unavailable.empty())
            out["socket_ending_unavailable"] = printable(report.socket_ending_unavailable);
        if (!report.ipv6_off.empty())
            out["ipv6_off"] = report.ipv6_off;
        std::cout << json_line(out) << "\n";
        return exit_ok;
    }
    std::cout << fmt::format("loaded at {} on cgroup {}{}\nnode addresses: {}\nexternal interfaces: {}\n",
                             inv->pin_dir.string(), load_options.cgroup->string(),
                             report.reused_maps ? " (kept the pinned maps and their mappings)" : "",
                             describe(report.node_addrs), describe(report.interfaces));
    if (const auto& m = report.migrated; m && m->from_abi == 1)
        std::cout << fmt::format("migrated {} mappings and {} flows from map ABI v1 to v{}\n", m->mappings, m->flows,
                                 NODEPORT_ABI_VERSION);
    else if (m && m->from_abi == 3)
        std::cout << fmt::format("adopted the maps of map ABI v3 as v{} (their layouts are the same)\n",
                                 NODEPORT_ABI_VERSION);
    else if (m)
        std::cout << fmt::format("migrated {} flows from map ABI v{} to v{} (the mappings' layout is unchanged)\n",
                                 m->flows, m->from_abi, NODEPORT_ABI_VERSION);
    if (!kept_mode.empty())
        std::cerr << fmt::format("nodeport load: note: {} kept the mode {} attached with (--tc-attach {} applies to "
                                 "interfaces attached anew; unload first to change it)\n",
                                 fmt::join(kept_mode, ", "), kept_mode.size() == 1 ? "it was" : "they were",
                                 to_string(load_options.tc_attach));
    if (!report.socket_ending_unavailable.empty())
        std::cerr << "nodeport load: warning: node sockets will not be ended when a backend is replaced: "
                  << report.socket_ending_unavailable << "\n";
    if (!report.ipv6_off.empty())
        std::cerr << "nodeport load: note: IPv6 is off on this node (" << report.ipv6_off
                  << "): IPv4 is served; IPv6 mappings are kept, but nothing reaches them\n";
    if (report.resumed_walk.resumed > 0)
        std::cout << fmt::format("finished the socket walk of an interrupted write ({} replaced backend{}, {} node "
                                 "socket{} ended)\n",
                                 report.resumed_walk.resumed, report.resumed_walk.resumed == 1 ? "" : "s",
                                 report.resumed_walk.count, report.resumed_walk.count == 1 ? "" : "s");
    return exit_ok;
}

int cmd_unload(const Args& argv) {
    auto inv = parse("unload", argv, wait_description());
    if (!inv)
        return exit_ok;
    auto report = succeeded(unload(inv->pin_dir, lock_wait_option(*inv)));
    if (inv->options.count("json")) {
        nlohmann::json out{{"pin_dir", printable(inv->pin_dir.string())},
                           {"links", report.links},
                           {"maps", report.maps},
                           {"clsact_interfaces", nlohmann::json::array()},
                           {"left", nlohmann::json::array()}};
        for (const auto& name : report.clsact_interfaces)
            out["clsact_interfaces"].push_back(printable(name));
        for (const auto& what : report.left)
            out["left"].push_back(printable(what));
        std::cout << json_line(out) << "\n";
        return exit_ok;
    }
    std::cout << fmt::format("unloaded {} ({} links detached, {} maps unpinned{})\n", inv->pin_dir.string(),
                             report.links, report.maps,
                             report.clsact_interfaces.empty()
                                 ? ""
                                 : fmt::format(", clsact filters removed from {}",
                                               fmt::join(report.clsact_interfaces, ", ")));
    for (const auto& what : report.left)
        std::cerr << "nodeport unload: warning: " << what << "\n";
    return exit_ok;
}

int cmd_refresh(const Args& argv) {
    auto options = node_ip_description();
    options.add(wait_description());
    auto inv = parse("refresh", argv, options);
    if (!inv)
        return exit_ok;
    auto addrs = succeeded(refresh(inv->pin_dir, node_ip_options(*inv), lock_wait_option(*inv)));
    if (inv->options.count("json")) {
        std::cout << json_line({{"node_addrs", to_json(addrs)}}) << "\n";
        return exit_ok;
    }
    std::cout << "node addresses: " << describe(addrs) << "\n";
    return exit_ok;
}

}  // namespace nodeport::cli
