// sys/fs: reading whole files.
#include "src/sys/fs.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <string>

namespace schroot {
namespace {

// Sysctls are read in small reads (the kernel allocates a buffer of the size asked
// for each one); what is longer than one read still comes whole.
TEST(ReadFiles, ReadAllInSmallReadsReturnsTheWholeFile) {
  char path[] = "/tmp/schroot-read-all-XXXXXX";
  const int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  const std::string text(1000, 'x');
  ASSERT_EQ(::write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  ASSERT_EQ(::lseek(fd, 0, SEEK_SET), 0);
  EXPECT_EQ(sys::read_all(fd, path, 7), text);
  ::close(fd);
  ::unlink(path);
}

TEST(ReadFiles, BootIdIsTheKernelsUuidWithoutItsNewline) {
  const std::string id = sys::boot_id();
  EXPECT_EQ(id.size(), 36u) << id;
  EXPECT_EQ(id + "\n", sys::read_file("/proc/sys/kernel/random/boot_id"));
  EXPECT_EQ(sys::read_sysctl("/proc/sys/kernel/random/uuid").size(), 37u);
}

}  // namespace
}  // namespace schroot
