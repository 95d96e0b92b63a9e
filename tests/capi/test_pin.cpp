// For the C and Go tests: loads nodeport into a private pin directory with
// nothing attached (no cgroup, no interface), or unloads it. The CLI's `load`
// always attaches to a cgroup; these tests need only the maps.
//   test_pin load DIR | test_pin unload DIR
#include <cstdio>
#include <string_view>

#include "nodeport/datapath.hpp"

int main(int argc, char** argv) {
    using namespace nodeport;
    if (argc != 3) {
        std::fprintf(stderr, "usage: test_pin load|unload DIR\n");
        return 2;
    }
    std::string_view verb = argv[1];
    if (verb == "load") {
        LoadOptions options;
        options.pin_dir = argv[2];
        options.node_ips = {*parse_node_ip("10.99.0.1")};
        auto report = load(options);
        if (!report) {
            std::fprintf(stderr, "load: %s\n", report.error().message.c_str());
            return 1;
        }
        return 0;
    }
    if (verb == "unload") {
        auto report = unload(argv[2]);
        if (!report) {
            std::fprintf(stderr, "unload: %s\n", report.error().message.c_str());
            return 1;
        }
        return 0;
    }
    std::fprintf(stderr, "usage: test_pin load|unload DIR\n");
    return 2;
}
