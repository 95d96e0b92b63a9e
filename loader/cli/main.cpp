#include <iostream>

#include "cli.hpp"
#include "nodeport/types.hpp"

namespace {

void print_help(std::ostream& out) {
    out << "nodeport: eBPF port forwarding from node ports to sandboxes\n\n"
           "usage: nodeport COMMAND [--pin-dir DIR] [ARGS...]\n\ncommands:\n";
    for (const auto& cmd : nodeport::cli::commands())
        out << "  " << cmd.usage << "\n      " << cmd.summary << "\n";
    out << "\n`nodeport COMMAND --help` describes a command.\n"
           "exit status: 0 success, 1 runtime failure (status: not loaded), 2 bad input (nothing changed),\n"
           "3 degraded (status: loaded, but something on the node makes a mapped port unreachable)\n";
}

}  // namespace

int main(int argc, char** argv) {
    using namespace nodeport::cli;
    if (argc < 2) {
        print_help(std::cerr);
        return exit_usage;
    }
    std::string name = argv[1];
    if (name == "--version")
        name = "version";
    if (name == "--help" || name == "-h" || name == "help") {
        print_help(std::cout);
        return exit_ok;
    }
    for (const auto& cmd : commands()) {
        if (cmd.name != name)
            continue;
        try {
            return cmd.run(Args(argv + 2, argv + argc));
        } catch (const UsageError& e) {
            // Bad input is echoed: one line, escaped whatever was typed.
            std::cerr << "nodeport " << name << ": " << nodeport::printable(e.what()) << "\n";
            return exit_usage;
        } catch (const std::exception& e) {
            // A runtime failure may carry a multi-line libbpf log.
            std::cerr << "nodeport " << name << ": " << nodeport::printable(e.what(), true) << "\n";
            return exit_failure;
        }
    }
    std::cerr << "nodeport: command: '" << nodeport::printable(name) << "' is not a command (see nodeport --help)\n";
    return exit_usage;
}
