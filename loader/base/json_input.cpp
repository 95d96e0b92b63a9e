#include "base/json_input.hpp"

#include <array>
#include <optional>
#include <spanstream>
#include <streambuf>
#include <vector>

#include <fmt/format.h>

#include "nodeport/types.hpp"

namespace nodeport {
namespace {

using nlohmann::json;

// Why BoundedBuffer stopped the input: thrown from underflow(), through
// nlohmann's parser (which would otherwise build an error with a copy of the
// last token, megabytes of it) straight to read_json.
struct InputStopped {
    JsonError error;
};

// Hands the parser `upstream` in chunks, and stops it with InputStopped at
// the first of: a byte past limits.bytes (endless whitespace, /dev/zero); a
// raw NUL (JSON text never holds one, and nlohmann's lexer would take it for
// the end and ignore what follows); a string so long in raw bytes that it
// must be past limits.string_bytes however it is escaped (an escape is at
// most 6 raw bytes for each byte it gives), before the lexer has buffered it.
// Strings shorter than that reach LimitedBuilder, which names their place.
class BoundedBuffer : public std::streambuf {
public:
    BoundedBuffer(std::streambuf* upstream, const JsonLimits& limits)
        : upstream_(upstream), limits_(limits), max_raw_string_(6 * limits.string_bytes) {}

protected:
    int_type underflow() override {
        if (gptr() < egptr())
            return traits_type::to_int_type(*gptr());
        if (upstream_ == nullptr)
            return traits_type::eof();
        // One byte more than the limit allows is how "too large" is seen.
        std::size_t want = std::min(chunk_.size(), limits_.bytes - taken_ + 1);
        std::streamsize got = upstream_->sgetn(chunk_.data(), static_cast<std::streamsize>(want));
        if (got <= 0)
            return traits_type::eof();
        for (std::streamsize i = 0; i < got; ++i)
            scan(chunk_[static_cast<std::size_t>(i)], taken_ + static_cast<std::size_t>(i));
        taken_ += static_cast<std::size_t>(got);
        if (taken_ > limits_.bytes)
            stop(JsonError::Kind::limit, fmt::format("larger than the limit of {} bytes", limits_.bytes));
        setg(chunk_.data(), chunk_.data(), chunk_.data() + got);
        return traits_type::to_int_type(*gptr());
    }

private:
    [[noreturn]] static void stop(JsonError::Kind kind, std::string message) {
        throw InputStopped{JsonError{kind, std::move(message)}};
    }

    void scan(char c, std::size_t offset) {
        if (c == '\0')
            stop(JsonError::Kind::syntax,
                 fmt::format("a NUL byte at offset {} (JSON text has none; a string writes it as \\u0000)", offset));
        if (!in_string_) {
            if (c == '"') {
                in_string_ = true;
                string_start_ = offset;
                string_raw_ = 0;
            }
            return;
        }
        if (escaped_)
            escaped_ = false;
        else if (c == '\\')
            escaped_ = true;
        else if (c == '"')
            in_string_ = false;
        if (in_string_ && ++string_raw_ > max_raw_string_)
            stop(JsonError::Kind::limit, fmt::format("the string at offset {} is longer than the limit of {} bytes",
                                                     string_start_, limits_.string_bytes));
    }

    std::streambuf* upstream_;
    const JsonLimits& limits_;
    std::size_t max_raw_string_;
    std::size_t taken_ = 0;
    bool in_string_ = false, escaped_ = false;
    std::size_t string_start_ = 0, string_raw_ = 0;
    std::array<char, 64 * 1024> chunk_{};
};

// nlohmann's SAX events built into a document as its own DOM parser does,
// with the limits checked at each event; returning false stops the parse at
// once. The open containers are a heap stack, never a call stack.
class LimitedBuilder {
public:
    explicit LimitedBuilder(const JsonLimits& limits) : limits_(limits) {}

    json& root() { return root_; }
    const std::optional<JsonError>& error() const { return error_; }

    bool null() { return scalar(nullptr); }
    bool boolean(bool value) { return scalar(value); }
    bool number_integer(json::number_integer_t value) { return scalar(value); }
    bool number_unsigned(json::number_unsigned_t value) { return scalar(value); }
    bool number_float(json::number_float_t value, const json::string_t&) { return scalar(value); }
    bool string(json::string_t& value) {
        if (!begin_value())
            return false;
        if (value.size() > limits_.string_bytes)
            return fail(JsonError::Kind::limit, fmt::format("a string of {} bytes, longer than the limit of {}",
                                                            value.size(), limits_.string_bytes));
        store(json(std::move(value)));
        return true;
    }
    bool binary(json::binary_t&) { return fail(JsonError::Kind::syntax, "binary data is not JSON text"); }

    bool start_object(std::size_t) { return open(json::value_t::object); }
    bool key(json::string_t& key) {
        Frame& frame = stack_.back();
        frame.key = nullptr;  // an error below names the object itself
        if (key.size() > limits_.string_bytes)
            return fail(JsonError::Kind::limit,
                        fmt::format("a key of {} bytes, longer than the limit of {}", key.size(), limits_.string_bytes));
        auto [it, fresh] = frame.value->get_ptr<json::object_t*>()->try_emplace(std::move(key));
        if (!fresh)
            return fail(JsonError::Kind::duplicate_key, fmt::format("{} is a key twice", quote(it->first)));
        frame.key = &it->first;
        frame.slot = &it->second;
        return true;
    }
    bool end_object() { return close(); }
    bool start_array(std::size_t) { return open(json::value_t::array); }
    bool end_array() { return close(); }

    bool parse_error(std::size_t, const std::string&, const json::exception& e) {
        // "[json.exception.parse_error.101] parse error at line 1, column 2: ..., last read: '...'":
        // the part after the tag, cut short (the last token read can be long).
        std::string_view what = e.what();
        if (auto tag_end = what.find("] "); tag_end != std::string_view::npos)
            what.remove_prefix(tag_end + 2);
        constexpr std::size_t max = 160;
        error_ = JsonError{JsonError::Kind::syntax,
                           what.size() <= max ? printable(what) : printable(what.substr(0, max)) + "..."};
        return false;
    }

private:
    struct Frame {
        json* value;                      // the open array or object
        json* slot = nullptr;             // object: where the value of `key` goes
        const std::string* key = nullptr;  // object: the member being read
        std::size_t index = 0;            // array: the element being read
    };

    // Every value starts here: it is counted, and its array index noted for
    // error messages.
    bool begin_value() {
        if (!stack_.empty() && stack_.back().value->is_array())
            stack_.back().index = stack_.back().value->size();
        if (++values_ > limits_.values)
            return fail(JsonError::Kind::limit, fmt::format("more than the limit of {} values", limits_.values));
        return true;
    }

    json* store(json&& value) {
        if (stack_.empty()) {
            root_ = std::move(value);
            return &root_;
        }
        Frame& frame = stack_.back();
        if (frame.value->is_array()) {
            auto& array = *frame.value->get_ptr<json::array_t*>();
            array.push_back(std::move(value));
            return &array.back();
        }
        *frame.slot = std::move(value);
        return frame.slot;
    }

    template <class T>
    bool scalar(T&& value) {
        if (!begin_value())
            return false;
        store(json(std::forward<T>(value)));
        return true;
    }

    // A parent array is not appended to while a child is open, so the
    // pointers on the stack stay valid (as in nlohmann's own DOM parser).
    bool open(json::value_t type) {
        if (!begin_value())
            return false;
        if (stack_.size() >= limits_.depth)
            return fail(JsonError::Kind::limit, fmt::format("nested deeper than the limit of {} arrays and objects", limits_.depth));
        stack_.push_back(Frame{store(json(type))});
        return true;
    }

    bool close() {
        stack_.pop_back();
        return true;
    }

    // Where the value being read is: "runtimeConfig.portMappings[0].hostPort", "[3].owner".
    std::string place() const {
        std::string out;
        for (const auto& frame : stack_) {
            if (out.size() > 160) {
                out += "...";
                break;
            }
            if (frame.value->is_array())
                out += fmt::format("[{}]", frame.index);
            else if (frame.key)
                out += (out.empty() ? "" : ".") + shown_key(*frame.key);
        }
        return out;
    }

    bool fail(JsonError::Kind kind, std::string message) {
        std::string where = place();
        error_ = JsonError{kind, where.empty() ? std::move(message) : where + ": " + message};
        return false;
    }

    const JsonLimits& limits_;
    json root_;
    std::vector<Frame> stack_;
    std::size_t values_ = 0;
    std::optional<JsonError> error_;
};

}  // namespace

std::expected<json, JsonError> read_json(std::istream& in, const JsonLimits& limits) {
    BoundedBuffer buffer(in.rdbuf(), limits);
    std::istream bounded(&buffer);
    LimitedBuilder builder(limits);
    try {
        if (!json::sax_parse(bounded, &builder, json::input_format_t::json, /*strict=*/true))
            return std::unexpected(builder.error().value_or(JsonError{JsonError::Kind::syntax, "not JSON"}));
    } catch (const InputStopped& stopped) {
        return std::unexpected(stopped.error);
    }
    return std::move(builder.root());
}

std::expected<json, JsonError> read_json(std::string_view text, const JsonLimits& limits) {
    std::ispanstream in(std::span<const char>(text.data(), text.size()));
    return read_json(in, limits);
}

std::string shown_key(std::string_view key) {
    constexpr std::size_t max = 40;
    return key.size() <= max ? printable(key) : printable(key.substr(0, max)) + "...";
}

std::string describe(const json& value) {
    switch (value.type()) {
    case json::value_t::string:
        return quote(value.get_ref<const std::string&>());
    case json::value_t::array:
        return "an array";
    case json::value_t::object:
        return "an object";
    default:
        return value.dump();  // a number, true, false or null: short
    }
}

}  // namespace nodeport
