#include "records.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>

#include <fmt/format.h>

namespace nodeport::cni::records {
namespace {

std::filesystem::path network_dir(const NetConfig& config) {
    return config.state_dir / config.network;
}

std::unexpected<CniError> failed(const std::string& what, int err) {
    return cni_error(Code::datapath, fmt::format("{}: {}", what, std::strerror(err)),
                     "nodeport-cni records the containers it maps ports for under stateDir");
}

}  // namespace

CniResult<void> add(const NetConfig& config, std::string_view container_id) {
    if (config.network.empty())
        return {};
    const auto dir = network_dir(config);
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec)
        return failed("create " + dir.string(), ec.value());
    ::chmod(config.state_dir.c_str(), 0700);  // ids of containers are for root
    const auto file = dir / container_id;
    int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return failed("record " + file.string(), errno);
    ::close(fd);
    return {};
}

void remove(const NetConfig& config, std::string_view container_id) {
    if (!config.network.empty())
        ::unlink((network_dir(config) / container_id).c_str());
}

CniResult<std::vector<std::string>> list(const NetConfig& config) {
    std::vector<std::string> ids;
    const auto dir = network_dir(config);
    std::unique_ptr<DIR, int (*)(DIR*)> listing(::opendir(dir.c_str()), ::closedir);
    if (!listing)
        return errno == ENOENT ? CniResult<std::vector<std::string>>(ids) : failed("list " + dir.string(), errno);
    while (const dirent* entry = ::readdir(listing.get()))
        if (entry->d_type == DT_REG)
            ids.emplace_back(entry->d_name);
    return ids;
}

}  // namespace nodeport::cni::records
