// Tier 1: finding who holds the pin directory's flock in /proc/locks text.
#include <gtest/gtest.h>
#include <sys/sysmacros.h>

#include "base/lock_holder.hpp"

namespace nodeport {
namespace {

// bpffs is an anonymous device, 00:2d here; inode numbers are decimal.
const dev_t bpffs = makedev(0, 0x2d);

TEST(FindFlockHolder, ReturnsTheHolderOfThatInode) {
    const char* locks =
        "1: POSIX  ADVISORY  WRITE 900 00:2d:5678 0 EOF\n"       // a POSIX lock on it: not ours
        "2: FLOCK  ADVISORY  WRITE 1111 00:2d:567 0 EOF\n"       // a prefix of the inode number
        "3: FLOCK  ADVISORY  WRITE 2222 00:2e:5678 0 EOF\n"      // another device
        "4: FLOCK  ADVISORY  WRITE 1234 00:2d:5678 0 EOF\n"      // the holder
        "4: -> FLOCK  ADVISORY  WRITE 4321 00:2d:5678 0 EOF\n";  // a process waiting for it
    EXPECT_EQ(find_flock_holder(locks, bpffs, 5678), 1234);
}

TEST(FindFlockHolder, SkipsWaitersAndUnknownPids) {
    EXPECT_EQ(find_flock_holder("4: -> FLOCK  ADVISORY  WRITE 4321 00:2d:5678 0 EOF\n", bpffs, 5678), std::nullopt);
    // A holder in a pid namespace this process cannot see.
    EXPECT_EQ(find_flock_holder("4: FLOCK  ADVISORY  WRITE 0 00:2d:5678 0 EOF\n", bpffs, 5678), std::nullopt);
    EXPECT_EQ(find_flock_holder("", bpffs, 5678), std::nullopt);
    EXPECT_EQ(find_flock_holder("garbage\n4: FLOCK\n", bpffs, 5678), std::nullopt);
}

TEST(FindFlockHolder, PrintsMajorAndMinorInHex) {
    EXPECT_EQ(find_flock_holder("7: FLOCK  ADVISORY  WRITE 77 fd:1a:42 0 EOF\n", makedev(0xfd, 0x1a), 42), 77);
    EXPECT_EQ(find_flock_holder("7: FLOCK  ADVISORY  WRITE 77 253:26:42 0 EOF\n", makedev(0xfd, 0x1a), 42),
              std::nullopt);
}

}  // namespace
}  // namespace nodeport
