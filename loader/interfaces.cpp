// Choosing the interfaces for the TC programs, and attaching to them with the
// programs `load` pinned.
#include "nodeport/interfaces.hpp"

#include <fnmatch.h>
#include <net/if.h>

#include <algorithm>

#include "netlink.hpp"

namespace nodeport {
namespace {

bool excluded(const std::string& name, const std::vector<std::string>& patterns) {
    return std::ranges::any_of(patterns, [&](const auto& p) { return ::fnmatch(p.c_str(), name.c_str(), 0) == 0; });
}

}  // namespace

Result<std::vector<std::string>> choose_interfaces(const InterfaceChoice& choice) {
    using Kind = InterfaceChoice::Kind;
    switch (choice.kind) {
    case Kind::none:
        return std::vector<std::string>{};
    case Kind::default_route: {
        auto name = netlink::default_route_interface();
        if (!name)
            return std::unexpected(name.error());
        return std::vector<std::string>{*name};
    }
    case Kind::named: {
        std::vector<std::string> out;
        for (const auto& name : choice.names)
            if (::if_nametoindex(name.c_str()) != 0)
                out.push_back(name);
        return out;
    }
    case Kind::all:
        break;
    }
    auto links = netlink::list_links();
    if (!links)
        return std::unexpected(links.error());
    std::vector<std::string> out;
    for (const auto& link : *links)
        if (!link.loopback && link.master == 0 && !excluded(link.name, choice.exclude))
            out.push_back(link.name);
    std::ranges::sort(out);
    return out;
}

}  // namespace nodeport
