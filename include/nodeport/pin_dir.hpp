// The pin directory of a loaded nodeport, opened and checked once: every map
// open, pin, unlink and rename a command makes is done relative to its file
// descriptor (openat, BPF_OBJ_GET with a path fd), never by walking the path
// again, so what was checked is what is used.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "nodeport/abi.h"
#include "nodeport/fd.hpp"
#include "nodeport/result.hpp"

// Exported from libnodeport.so (the rest of the library is hidden).
#pragma GCC visibility push(default)

namespace nodeport {

class PinDir {
public:
    // Opens the directory without following a symbolic link and checks that
    // it can be trusted: a real directory on bpffs, owned by root (or the
    // user running nodeport), not writable by group or others, not the root
    // of a bpffs mount, and every directory above it a trusted owner's and
    // writable by others only when sticky ("pin directory D is not safe:
    // <reason>", ErrorKind::unsafe_pin_dir). Only a trusted owner can then
    // change anything inside, so a name checked not to be a symbolic link
    // stays so until it is opened. Missing: "not loaded".
    //
    // open() also refuses pins of another map ABI (ErrorKind::abi_mismatch);
    // a directory without node_config (a load in progress) passes.
    static Result<PinDir> open(const std::filesystem::path& dir);
    // Without the map ABI check: for load and unload, which migrate or remove
    // pins of an older one.
    static Result<PinDir> open_any_abi(const std::filesystem::path& dir);

    // The same directory under a file descriptor of its own (openat "."),
    // nothing checked again: for an object that outlives the caller's
    // handle, or takes the flock apart from it (a flock belongs to the open
    // file, which a dup would share).
    Result<PinDir> reopen() const;

    const std::filesystem::path& path() const { return path_; }
    int fd() const { return fd_.get(); }
    // A pin's full path, for messages.
    std::filesystem::path shown(std::string_view pin) const { return path_ / pin; }

    // Pins are named relative to the directory: "ports", or one level down,
    // "links/np_connect4". The directory holding the pin is opened with
    // O_NOFOLLOW, and the pin itself must be a bpffs object (a regular
    // file). Return conventions of bpf_obj_get, bpf_obj_pin, unlink and
    // rename (a symbolic link: ELOOP).
    int obj_get(std::string_view pin) const;
    int obj_pin(int fd, std::string_view pin) const;
    int unlink(std::string_view pin) const;
    int rename(std::string_view from, std::string_view to) const;  // within one directory
    // Whether something (a symbolic link included) is at that name.
    bool exists(std::string_view pin) const;

    // The pinned map `name`, checked to have the type and key and value
    // sizes this build gives that name (map_catalog); "not loaded" when it is
    // missing, "not a nodeport map" otherwise. The map ABI was checked when
    // the directory was opened.
    Result<Fd> map(std::string_view name) const;

    // The record `load` keeps in node_config (map ABI, network namespace),
    // read now; all zero when there is none.
    Result<np_config> config() const;

    // The names in links/, listed without following a symbolic link; none
    // when it is missing.
    Result<std::vector<std::string>> link_names() const;

private:
    PinDir(std::filesystem::path path, Fd fd) : path_(std::move(path)), fd_(std::move(fd)) {}
    std::filesystem::path path_;
    Fd fd_;
};

// The pin name of a link pinned under links/.
inline std::string link_pin(std::string_view name) {
    return "links/" + std::string(name);
}

}  // namespace nodeport

#pragma GCC visibility pop
