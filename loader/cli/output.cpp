// How every command prints: text for people, or with --json one JSON value
// on stdout and errors as one JSON object on stderr.
#include <iostream>

#include "cli.hpp"

namespace nodeport::cli {
namespace {

bool json_mode = false;

}  // namespace

bool json_output() { return json_mode; }
void set_json_output(bool on) { json_mode = on; }

std::string json_line(const nlohmann::json& value) {
    return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void print_error(std::string_view command, std::string_view message, std::string_view field, bool keep_newlines) {
    if (json_mode) {
        nlohmann::json out{{"error", printable_message(message, keep_newlines)}};
        if (!field.empty())
            out["field"] = printable_message(field);
        std::cerr << json_line(out) << std::endl;
        return;
    }
    std::cerr << "nodeport" << (command.empty() ? "" : " ") << command << ": "
              << printable_message(message, keep_newlines) << std::endl;
}

}  // namespace nodeport::cli
