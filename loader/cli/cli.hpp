// The nodeport command line. Exit status (also in `nodeport --help` and the
// table in docs/cli.md): 0 done, 1 runtime failure, 2 bad input (nothing was
// changed), 3 not mapped (get, del), 4 kept because another owner holds the
// port (del --owner); status alone gives 3 its own meaning, degraded.
#pragma once

#include <nlohmann/json.hpp>

#include <functional>
#include <ostream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "nodeport/result.hpp"
#include "nodeport/types.hpp"

namespace nodeport::cli {

inline constexpr int exit_ok = 0;
inline constexpr int exit_failure = 1;
inline constexpr int exit_usage = 2;
// get, del: the node port (or, for del --owner without a port, any port of
// the owner) is not mapped; nothing was changed.
inline constexpr int exit_not_mapped = 3;
// del --owner: another owner holds the port now; its entry was left alone.
inline constexpr int exit_held_by_other = 4;
// drain, del --drain, set --drain: the timeout passed with connections left.
inline constexpr int exit_not_drained = 5;
// explain: a client as given does not reach a live backend.
inline constexpr int exit_unreachable = 3;
// `status` only: loaded, but something makes a mapped port unreachable.
// Kept at 3 (what monitoring already checks); status never means "not mapped".
inline constexpr int exit_degraded = 3;

// Bad input: a one-line message naming the field (an option without its
// dashes, or an argument: "node port", "backend"); exit 2.
struct UsageError : std::runtime_error {
    UsageError(std::string field_name, const std::string& message)
        : std::runtime_error(field_name + ": " + message), field(std::move(field_name)) {}
    // A message that names the field in its own words (Boost's "unrecognised
    // option '--colour'"), shown as it is.
    struct AsIs {};
    UsageError(std::string field_name, const std::string& message, AsIs)
        : std::runtime_error(message), field(std::move(field_name)) {}
    std::string field;
};

// Something failed at run time (not loaded, no permission); exit 1.
struct Failure : std::runtime_error {
    using std::runtime_error::runtime_error;
};

using Args = std::vector<std::string>;

struct Command {
    std::string_view name;
    std::string_view usage;    // "set PROTO/PORT IP:PORT [--owner ID]"
    std::string_view summary;  // one line for `nodeport --help`
    std::string_view example;  // one command line, for `nodeport COMMAND --help`
    std::string_view exits;    // the exit statuses beyond 0/1/2, or empty
    std::function<int(const Args&)> run;
};

const std::vector<Command>& commands();

// Commands defined outside commands.cpp, one file per group.
int cmd_load(const Args& argv);
int cmd_unload(const Args& argv);
int cmd_refresh(const Args& argv);
int cmd_legacy_iptables(const Args& argv);
int cmd_status(const Args& argv);
int cmd_watch(const Args& argv);
int cmd_stats(const Args& argv);
int cmd_drain(const Args& argv);
int cmd_explain(const Args& argv);

// --json: every command takes it. main() decides it from the command line
// before parsing, so bad input on the command line is reported in JSON too.
bool json_output();
void set_json_output(bool on);
// One JSON value on one line (control bytes and invalid UTF-8 escaped).
std::string json_line(const nlohmann::json& value);
// A JSON array of `count` elements, written to `out` exactly as
// value.dump(2) writes it (invalid UTF-8 replaced) when the array sits
// `depth` levels deep (0: it is the whole document), but built one element
// at a time (`element(i)`), never as one DOM: at 131,072 mappings that DOM
// alone took some 150 MB (list --json) and 280 MB (stats --json).
void stream_json_array(std::ostream& out, std::size_t count,
                       const std::function<nlohmann::json(std::size_t)>& element, int depth = 0);
// A JSON value as value.dump(2) writes it `depth` levels deep: every line
// after the first indented by 2 * depth more.
std::string json_at_depth(const nlohmann::json& value, int depth);
// An error as the mode asks: "nodeport COMMAND: MESSAGE" on stderr, or
// {"error": MESSAGE, "field": FIELD} (field only when given: bad input).
void print_error(std::string_view command, std::string_view message, std::string_view field = {},
                 bool keep_newlines = false);

// Unwraps a parse result or throws UsageError naming the field.
template <class T>
T valid(Parsed<T> parsed) {
    if (!parsed)
        throw UsageError(parsed.error().field, parsed.error().message);
    return std::move(*parsed);
}

// Unwraps a library result, or throws by the error's kind: UsageError
// (exit 2) for bad input, naming its field; Failure (exit 1) for the rest.
template <class T>
T succeeded(Result<T> result) {
    if (!result && result.error().kind == ErrorKind::bad_input)
        throw UsageError(result.error().field, result.error().message, UsageError::AsIs{});
    if (!result)
        throw Failure(result.error().message);
    if constexpr (!std::is_void_v<T>)
        return std::move(*result);
}

}  // namespace nodeport::cli
