// Who holds the flock on a file: for an error that names the process a
// writer waited for.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <sys/types.h>

namespace nodeport {

// The pid /proc/locks gives for the FLOCK lock (not a waiter's, "->") on the
// inode `ino` of device `dev`; nullopt when there is none, or it is not
// visible from this pid namespace (pid 0). Lines look like
// "1: FLOCK  ADVISORY  WRITE 1234 00:2d:5678 0 EOF" (major:minor in hex).
std::optional<pid_t> find_flock_holder(std::string_view proc_locks, dev_t dev, ino_t ino);

// "pid 1234 (flock)", "pid 1234" when its comm cannot be read, or "another
// process" when the holder of the flock on `fd`'s file is not found.
std::string describe_flock_holder(int fd);

}  // namespace nodeport
