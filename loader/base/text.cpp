#include "nodeport/text.hpp"

#include <unordered_map>

namespace nodeport {

std::vector<std::string_view> split_lines(std::string_view text) {
    std::vector<std::string_view> lines;
    while (!text.empty()) {
        auto end = text.find('\n');
        lines.push_back(text.substr(0, end));
        text = end == std::string_view::npos ? std::string_view{} : text.substr(end + 1);
    }
    return lines;
}

std::vector<std::pair<std::string, std::size_t>> count_lines(const std::vector<std::string>& lines) {
    std::vector<std::pair<std::string, std::size_t>> counted;
    std::unordered_map<std::string_view, std::size_t> index;  // into `lines`, which outlive it
    for (const auto& line : lines) {
        auto [it, fresh] = index.try_emplace(line, counted.size());
        if (fresh)
            counted.emplace_back(line, 1);
        else
            ++counted[it->second].second;
    }
    return counted;
}

}  // namespace nodeport
