// Argument parsing shared by the benchmark tools: "--name value" pairs and
// flags, every number checked (no unchecked strtol), errors thrown as
// UsageError and reported by main with exit status 2.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <charconv>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace bench {

struct UsageError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

class Args {
public:
    // `flags` take no value; every other "--name" takes one.
    Args(int argc, char** argv, std::set<std::string> flags, std::set<std::string> options) {
        for (int i = 1; i < argc; ++i) {
            std::string arg = argv[i];
            if (!arg.starts_with("--"))
                positional_.push_back(arg);
            else if (flags.contains(arg.substr(2)))
                values_[arg.substr(2)] = "";
            else if (options.contains(arg.substr(2))) {
                if (i + 1 >= argc)
                    throw UsageError(arg + " needs a value");
                values_[arg.substr(2)] = argv[++i];
            } else {
                throw UsageError("unknown option " + arg);
            }
        }
    }

    bool has(const std::string& name) const { return values_.contains(name); }

    std::optional<std::string> str(const std::string& name) const {
        auto it = values_.find(name);
        if (it == values_.end())
            return std::nullopt;
        return it->second;
    }

    template <class T>
    std::optional<T> number(const std::string& name, T min, T max) const {
        auto text = str(name);
        if (!text)
            return std::nullopt;
        return parse_number<T>(*text, "--" + name, min, max);
    }

    const std::vector<std::string>& positional() const { return positional_; }

private:
    std::map<std::string, std::string> values_;
    std::vector<std::string> positional_;

public:
    template <class T>
    static T parse_number(std::string_view text, const std::string& what, T min, T max) {
        T value{};
        auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
        if (ec == std::errc::result_out_of_range)
            throw UsageError(what + ": " + std::string(text) + " is out of range");
        if (ec != std::errc{} || end != text.data() + text.size())
            throw UsageError(what + ": '" + std::string(text) + "' is not a number");
        if (value < min || value > max)
            throw UsageError(what + ": " + std::string(text) + " is out of range");
        return value;
    }
};

// An IPv4 or IPv6 socket address, as bind and connect take it.
struct Endpoint {
    sockaddr_storage sa{};
    socklen_t len = 0;

    int family() const { return sa.ss_family; }
    const sockaddr* addr() const { return reinterpret_cast<const sockaddr*>(&sa); }
};

// "10.8.0.2" or "fd00:8::2" (no brackets) and a port -> Endpoint
inline Endpoint parse_address(const std::string& ip, std::uint16_t port, const std::string& what) {
    Endpoint e;
    auto* v4 = reinterpret_cast<sockaddr_in*>(&e.sa);
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&e.sa);
    if (inet_pton(AF_INET, ip.c_str(), &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        e.len = sizeof *v4;
    } else if (inet_pton(AF_INET6, ip.c_str(), &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        e.len = sizeof *v6;
    } else {
        throw UsageError(what + ": '" + ip + "' is not an IPv4 or IPv6 address");
    }
    return e;
}

// "10.8.0.2:8080" or "[fd00:8::2]:8080" -> Endpoint. An IPv6 address takes
// brackets, as nodeport's own backends do: its colons would read as a port.
inline Endpoint parse_endpoint(std::string_view text, const std::string& what) {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos)
        throw UsageError(what + ": expected IP:PORT or [IPV6]:PORT, got '" + std::string(text) + "'");
    auto ip = text.substr(0, colon);
    bool bracketed = ip.starts_with('[') && ip.ends_with(']');
    if (bracketed)
        ip = ip.substr(1, ip.size() - 2);
    auto port = Args::parse_number<std::uint16_t>(text.substr(colon + 1), what + " port", 1, 65535);
    Endpoint e = parse_address(std::string(ip), port, what);
    if ((e.family() == AF_INET6) != bracketed)
        throw UsageError(what + ": expected IP:PORT or [IPV6]:PORT, got '" + std::string(text) + "'");
    return e;
}

}  // namespace bench
