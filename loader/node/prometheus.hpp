// Prometheus text exposition format 0.0.4, just what nodeport writes:
// counter families with HELP and TYPE once each, then their samples.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace nodeport::prometheus {

// A label value as the format quotes it: backslash, double quote and newline
// escaped (\\, \", \n), every other byte as it is.
std::string escape_label_value(std::string_view value);
// HELP text: backslash and newline escaped.
std::string escape_help(std::string_view help);

using Labels = std::vector<std::pair<std::string_view, std::string>>;

class Writer {
public:
    // Starts a family: its # HELP and # TYPE lines. Samples that follow
    // belong to it, so each family's header is written exactly once.
    void family(std::string_view name, std::string_view type, std::string_view help);
    // One sample of the current family, named as the family.
    void sample(const Labels& labels, std::uint64_t value);
    const std::string& text() const { return out_; }

private:
    std::string out_;
    std::string family_;
};

}  // namespace nodeport::prometheus
