// libFuzzer target: the parsers of what a user types. The first byte picks
// the parser, the rest is its text. Beyond not crashing, each accepted value
// must print back to text that parses to the same value, and each refusal
// must name a field (the CLI's one-line "field: message").
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "nodeport/types.hpp"

namespace {

using namespace nodeport;

void require(bool ok) {
    if (!ok)
        std::abort();  // libFuzzer saves the input as a crash
}

template <class T>
void check_refusal(const Parsed<T>& parsed) {
    if (!parsed)
        require(!parsed.error().field.empty() && !parsed.error().message.empty());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0)
        return 0;
    const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
    switch (data[0] % 4) {
    case 0: {
        auto parsed = parse_node_port(text);
        check_refusal(parsed);
        if (parsed) {
            auto again = parse_node_port(to_string(*parsed));
            require(again && *again == *parsed && parsed->port != 0);
        }
        break;
    }
    case 1: {
        auto parsed = parse_backend(text);
        check_refusal(parsed);
        if (parsed) {
            auto again = parse_backend(to_string(*parsed));
            require(again && *again == *parsed && parsed->port != 0);
        }
        break;
    }
    case 2: {
        auto parsed = parse_owner(text);
        check_refusal(parsed);
        if (parsed)
            require(*parsed == text);
        break;
    }
    case 3: {
        auto parsed = parse_node_ip(text);
        check_refusal(parsed);
        if (parsed) {
            auto again = parse_node_ip(to_string(*parsed));
            require(again && *again == *parsed);
        }
        break;
    }
    }
    return 0;
}
