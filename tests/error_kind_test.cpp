// Error kinds are set where an error is made (include/nodeport/result.hpp):
// the helpers' part of that.
#include "nodeport/result.hpp"

#include <gtest/gtest.h>

#include <cerrno>

namespace nodeport {
namespace {

TEST(ErrorKind, ErrnoErrorsArePermissionOnlyForEpermAndEacces) {
    EXPECT_EQ(errno_error(EPERM, "attach").error().kind, ErrorKind::permission);
    EXPECT_EQ(errno_error(EACCES, "open").error().kind, ErrorKind::permission);
    // ENOENT says nothing about being loaded: only the pin directory's
    // reader, which knows what was missing, makes a not_loaded error.
    EXPECT_EQ(errno_error(ENOENT, "open /x").error().kind, ErrorKind::system);
    EXPECT_EQ(errno_error(EINVAL, "update").error().kind, ErrorKind::system);
    EXPECT_EQ(errno_error(ENOENT, "open /x").error().message, "open /x: No such file or directory");
}

TEST(ErrorKind, InputErrorsNameTheirField) {
    const Error e = input_error("owner", "longer than 255 bytes").error();
    EXPECT_EQ(e.kind, ErrorKind::bad_input);
    EXPECT_EQ(e.field, "owner");
    EXPECT_EQ(e.errno_value, EINVAL);
    EXPECT_EQ(e.message, "bad input: owner: longer than 255 bytes");
}

TEST(ErrorKind, PlainErrorsAreSystemUnlessTold) {
    EXPECT_EQ(plain_error("no route").error().kind, ErrorKind::system);
    EXPECT_EQ(plain_error("v2 pins", ErrorKind::abi_mismatch).error().kind, ErrorKind::abi_mismatch);
    EXPECT_EQ(to_string(ErrorKind::unsafe_pin_dir), "unsafe_pin_dir");
    EXPECT_EQ(to_string(ErrorKind::not_loaded), "not_loaded");
}

}  // namespace
}  // namespace nodeport
