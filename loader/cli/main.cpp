#include <cstring>
#include <iostream>

#include "cli/cli.hpp"
#include "nodeport/datapath.hpp"
#include "nodeport/types.hpp"

namespace {

// Exit status, for `nodeport --help` (COMMAND --help names its own; docs/cli.md has the table).
constexpr const char* exit_table =
    "exit status:\n"
    "  0  done\n"
    "  1  runtime failure (not loaded, no permission, a held lock)\n"
    "  2  bad input: nothing was changed\n"
    "  3  get, del, stats PROTO/PORT: not mapped (nothing to show or remove); status: degraded;\n"
    "     explain: the client does not reach a live backend\n"
    "  4  del --owner: kept, another owner holds the port\n"
    "  5  drain, del/set --drain: the timeout passed with connections left\n";

void print_help(std::ostream& out) {
    out << "nodeport: eBPF port forwarding from node ports to sandboxes\n\n"
           "usage: nodeport COMMAND [--pin-dir DIR] [--json] [ARGS...]\n"
           "       nodeport { --help | --version }\n\ncommands:\n";
    for (const auto& cmd : nodeport::cli::commands())
        out << "  " << cmd.usage << "\n      " << cmd.summary << "\n";
    out << "\n--pin-dir DIR  the bpffs directory of the maps and links (default " << nodeport::default_pin_dir.string()
        << ")\n--json         print the result as JSON on stdout, an error as {\"error\": ..., \"field\": ...} on "
           "stderr\n\n"
        << exit_table
        << "\n`nodeport COMMAND --help` describes a command, with an example.\n"
           "example: nodeport set tcp/8080 10.88.0.5:80 --owner sb-1\n";
}

// --json anywhere before a `--`: decided before parsing, so that bad input on
// the command line is reported as JSON too.
bool wants_json(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--") == 0)
            return false;
        if (std::strcmp(argv[i], "--json") == 0)
            return true;
    }
    return false;
}

}  // namespace

int main(int argc, char** argv) {
    using namespace nodeport::cli;
    set_json_output(wants_json(argc, argv));
    std::string name = argc >= 2 ? argv[1] : "";
    if (name == "--version")
        name = "version";
    if (name == "--help" || name == "-h" || name == "help") {
        print_help(std::cout);
        return exit_ok;
    }
    if (name.empty() || name == "--json") {
        if (json_output())
            print_error("", "command: missing (see nodeport --help)", "command");
        else
            print_help(std::cerr);
        return exit_usage;
    }
    for (const auto& cmd : commands()) {
        if (cmd.name != name)
            continue;
        try {
            return cmd.run(Args(argv + 2, argv + argc));
        } catch (const UsageError& e) {
            // Bad input is echoed: one line, escaped whatever was typed.
            print_error(name, e.what(), e.field);
            return exit_usage;
        } catch (const std::exception& e) {
            // A runtime failure may carry a multi-line libbpf log.
            print_error(name, e.what(), {}, true);
            return exit_failure;
        }
    }
    print_error("", "command: '" + name + "' is not a command (see nodeport --help)", "command");
    return exit_usage;
}
