// The nodeport command line: exit 0 on success, 2 on bad input (nothing was
// changed), 1 on a runtime failure.
#pragma once

#include <functional>
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
// `status` only: loaded, but something makes a mapped port unreachable.
inline constexpr int exit_degraded = 3;

// Bad input: a one-line message naming the field; exit 2.
struct UsageError : std::runtime_error {
    using std::runtime_error::runtime_error;
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

// Unwraps a parse result or throws UsageError naming the field.
template <class T>
T valid(Parsed<T> parsed) {
    if (!parsed)
        throw UsageError(parsed.error().field + ": " + parsed.error().message);
    return std::move(*parsed);
}

// Unwraps a library result or throws Failure with its message.
template <class T>
T succeeded(Result<T> result) {
    if (!result)
        throw Failure(result.error().message);
    if constexpr (!std::is_void_v<T>)
        return std::move(*result);
}

}  // namespace nodeport::cli
