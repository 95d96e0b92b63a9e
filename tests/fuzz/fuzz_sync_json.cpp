// libFuzzer target: sync's JSON reader, the input a controller sends. Beyond
// not crashing: an accepted set lists each node port once, with valid
// fields; a refusal names its field.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <set>
#include <string_view>

#include "nodeport/sync.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace nodeport;
    auto parsed = parse_mappings_json(std::string_view(reinterpret_cast<const char*>(data), size));
    if (!parsed) {
        if (parsed.error().field.empty() || parsed.error().message.empty())
            std::abort();
        return 0;
    }
    std::set<NodePort> seen;
    for (const auto& m : *parsed) {
        bool valid = m.node_port.port != 0 && m.backend.port != 0 && seen.insert(m.node_port).second &&
                     (m.owner.empty() || parse_owner(m.owner)) && parse_backend(to_string(m.backend));
        if (!valid)
            std::abort();
    }
    // The plan of the set against itself changes nothing.
    auto plan = plan_sync(*parsed, *parsed);
    if (!plan.add.empty() || !plan.update.empty() || !plan.remove.empty() || plan.unchanged != parsed->size())
        std::abort();
    return 0;
}
