// Privileged tests: real mounts, loop devices and sessions. Each run happens in a
// private mount namespace so nothing a test mounts can reach the host, even when
// the test process dies. Exit 77 (automake SKIP) when not root.
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cstdio>

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  if (geteuid() != 0) {
    std::fprintf(stderr, "privileged tests need root: skipped\n");
    return 77;
  }
  if (unshare(CLONE_NEWNS) != 0 || mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    std::perror("unshare/make-private");
    return 99;
  }
  return RUN_ALL_TESTS();
}
