#include <iostream>

#include "cli.hpp"

namespace {

void print_help(std::ostream& out) {
    out << "nodeport: eBPF port forwarding from node ports to sandboxes\n\n"
           "usage: nodeport COMMAND [--pin-dir DIR] [ARGS...]\n\ncommands:\n";
    for (const auto& cmd : nodeport::cli::commands())
        out << "  " << cmd.usage << "\n      " << cmd.summary << "\n";
    out << "\n`nodeport COMMAND --help` describes a command.\n"
           "exit status: 0 success, 1 runtime failure, 2 bad input (nothing changed)\n";
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
            std::cerr << "nodeport " << name << ": " << e.what() << "\n";
            return exit_usage;
        } catch (const Failure& e) {
            std::cerr << "nodeport " << name << ": " << e.what() << "\n";
            return exit_failure;
        } catch (const std::exception& e) {
            std::cerr << "nodeport " << name << ": " << e.what() << "\n";
            return exit_failure;
        }
    }
    std::cerr << "nodeport: command: '" << name << "' is not a command (see nodeport --help)\n";
    return exit_usage;
}
