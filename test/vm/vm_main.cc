// The VM tests: real device-mapper and LVM, which the build machines' kernels lack.
// The binary runs as a whole inside test/vm/run-vm's VM (one boot), where the
// runner prepared a volume group and named it in SCHROOT_VM_VG (see run-vm's header
// for the other SCHROOT_VM_* variables). Anywhere else it exits 77 (automake SKIP):
// only --gtest_list_tests works there, so run-tests can count the cases it skipped.
// In the VM it enters a private mount namespace, as the privileged tests do, so
// what a test mounts stays in this process tree.
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  if (GTEST_FLAG_GET(list_tests)) return RUN_ALL_TESTS();
  if (std::getenv("SCHROOT_VM_VG") == nullptr) {
    std::fprintf(stderr,
                 "the VM tests run only inside test/vm/run-vm's VM (no SCHROOT_VM_VG here): skipped\n"
                 "run them with: ../test/vm/run-vm -- %s\n",
                 argv[0]);
    return 77;
  }
  if (geteuid() != 0) {
    std::fprintf(stderr, "the VM tests run as root in the VM\n");
    return 99;
  }
  // In the VM, / is the overlay mount run-vm chroots into: it can be made private.
  if (unshare(CLONE_NEWNS) != 0 || mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    std::perror("a private mount namespace for the VM tests");
    return 99;
  }
  return RUN_ALL_TESTS();
}
