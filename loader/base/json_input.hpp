// The one JSON reader for untrusted input (`sync`'s file, nodeport-cni's
// stdin): limits checked while parsing, so a hostile input stops the parse
// early instead of growing a document, a stack or an error message without
// bound. Private to the project (it names nlohmann::json, which the public
// headers do not).
#pragma once

#include <cstddef>
#include <expected>
#include <istream>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace nodeport {

// What one reader accepts; beyond any of them the parse stops at once.
struct JsonLimits {
    std::size_t bytes = 0;         // the whole input, whitespace included
    std::size_t depth = 0;         // arrays and objects open inside each other
    std::size_t values = 0;        // values in the document: each object, array, string, number, true, false, null
    std::size_t string_bytes = 0;  // one string or object key, after unescaping
};

struct JsonError {
    enum class Kind {
        syntax,         // not JSON
        limit,          // a JsonLimits bound passed
        duplicate_key,  // a key twice in one object (JSON leaves it open; we refuse it)
    };
    Kind kind = Kind::syntax;
    std::string message;  // names the limit or the place ("[3].owner: ..."); printable ASCII, short
};

// Reads exactly one JSON value from `in` (the rest may only be whitespace)
// through a buffer of its own, never more than limits.bytes + 1 bytes of it.
// No recursion: nesting costs heap, bounded by limits.depth.
std::expected<nlohmann::json, JsonError> read_json(std::istream& in, const JsonLimits& limits);
std::expected<nlohmann::json, JsonError> read_json(std::string_view text, const JsonLimits& limits);

// A key as an error message names it: escaped (types.hpp printable), at most
// 40 bytes of it.
std::string shown_key(std::string_view key);

// A value as an error message shows it: a string quoted (types.hpp quote:
// escaped, at most 100 bytes), a number, true, false or null as JSON, an
// array or object by its kind only, never its (possibly deep) contents.
std::string describe(const nlohmann::json& value);

}  // namespace nodeport
