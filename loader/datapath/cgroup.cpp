// Finding the cgroup v2 hierarchy: from /proc/self/mountinfo, because its
// mount point differs between machines (/sys/fs/cgroup, /sys/fs/cgroup/unified).
#include <fstream>
#include <sstream>
#include <string>

#include "nodeport/datapath.hpp"

namespace nodeport {
namespace {

// mountinfo escapes blanks and backslashes in paths as \ooo.
std::string unescape_mountinfo(const std::string& field) {
    std::string out;
    for (std::size_t i = 0; i < field.size(); ++i) {
        if (field[i] == '\\' && i + 3 < field.size()) {
            out += static_cast<char>(std::stoi(field.substr(i + 1, 3), nullptr, 8));
            i += 3;
        } else {
            out += field[i];
        }
    }
    return out;
}

}  // namespace

Result<std::filesystem::path> cgroup2_root() {
    std::ifstream mountinfo("/proc/self/mountinfo");
    if (!mountinfo)
        return plain_error("cannot read /proc/self/mountinfo");
    // "36 35 98:0 / /mnt/point rw,noatime master:1 - cgroup2 cgroup2 rw"
    for (std::string line; std::getline(mountinfo, line);) {
        std::istringstream fields(line);
        std::string id, parent, dev, root, mount_point, word;
        fields >> id >> parent >> dev >> root >> mount_point;
        while (fields >> word && word != "-") {
        }
        std::string fstype;
        fields >> fstype;
        if (fstype == "cgroup2")
            return std::filesystem::path(unescape_mountinfo(mount_point));
    }
    return plain_error("no cgroup v2 hierarchy is mounted (see /proc/self/mountinfo)");
}

}  // namespace nodeport
