// libFuzzer target: nodeport-cni's reader of stdin (the network config, its
// runtimeConfig and the prevResult another plugin wrote), through the shared
// bounded JSON reader. The first byte picks the command, the rest is stdin.
// Beyond not crashing (deep nesting included): a refusal has a short,
// printable message with a CNI code; an accepted config holds what ADD may
// act on (an absolute pin directory without NUL, each host port once, a
// container address a sandbox can have).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <set>
#include <string_view>

#include "cni_config.hpp"

namespace {

void require(bool ok) {
    if (!ok)
        std::abort();  // libFuzzer saves the input as a crash
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace nodeport;
    using namespace nodeport::cni;
    if (size == 0)
        return 0;
    const Command commands[] = {Command::add, Command::del, Command::check};
    const Command command = commands[data[0] % 3];
    auto config = parse_net_config(std::string_view(reinterpret_cast<const char*>(data) + 1, size - 1), command);
    if (!config) {
        const auto& msg = config.error().msg;
        require(!msg.empty() && msg.size() < 2048 && printable_message(msg) == msg);
        require(config.error().code != Code::datapath && config.error().code != Code::check_failed);
        return 0;
    }
    const auto& pin_dir = config->pin_dir.native();
    require(!pin_dir.empty() && pin_dir.front() == '/' && pin_dir.find('\0') == std::string::npos);
    std::set<NodePort> hosts;
    for (const auto& m : config->port_mappings) {
        require(hosts.insert(m.host).second && m.host.port != 0 && m.container_port != 0);
        // At most one address per family, each a valid backend.
        require(!config->container_ips.empty() && config->container_ips.size() <= 2);
        for (const auto& addr : config->container_ips)
            require(check_mapping(Mapping{m.host, Backend{addr, m.container_port}, {}}).has_value());
    }
    if (command != Command::del)
        require(config->prev_result.has_value());
    return 0;
}
