// How every command prints: text for people, or with --json one JSON value
// on stdout and errors as one JSON object on stderr.
#include <iostream>

#include "cli/cli.hpp"

namespace nodeport::cli {
namespace {

bool json_mode = false;

}  // namespace

bool json_output() { return json_mode; }
void set_json_output(bool on) { json_mode = on; }

std::string json_line(const nlohmann::json& value) {
    return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string json_at_depth(const nlohmann::json& value, int depth) {
    std::string text = value.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
    // JSON strings hold no raw newline: each one ends a line of the layout.
    const std::string indent(static_cast<std::size_t>(2 * depth), ' ');
    std::string out;
    out.reserve(text.size());
    for (char c : text) {
        out += c;
        if (c == '\n')
            out += indent;
    }
    return out;
}

void stream_json_array(std::ostream& out, std::size_t count,
                       const std::function<nlohmann::json(std::size_t)>& element, int depth) {
    if (count == 0) {
        out << "[]";
        return;
    }
    const std::string indent(static_cast<std::size_t>(2 * (depth + 1)), ' ');
    out << "[\n";
    for (std::size_t i = 0; i < count; ++i)
        out << indent << json_at_depth(element(i), depth + 1) << (i + 1 < count ? ",\n" : "\n");
    out << std::string(static_cast<std::size_t>(2 * depth), ' ') << "]";
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
