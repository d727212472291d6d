// Privileged tests: real mounts, loop devices and sessions. Each run happens in a
// private mount namespace so nothing a test mounts can reach the host, even when
// the test process dies. Exit 77 (automake SKIP) when not root.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

namespace {

bool same_dir(const char* a, const char* b) {
  struct stat sa, sb;
  return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

// In a chroot whose root is not a mount point (a plain tree, as a CI chroot made by
// mmdebstrap is), "/" cannot be made private (EINVAL), and a setns() into this
// namespace or one cloned from it (a test going back to its namespace, schroot -r
// joining an automatic session) would land in the host's root, which holds the
// tree. So our new namespace gets the tree as its root, as a container has: climb
// out of the chroot to the namespace's root (as root may), make every mount private
// there (nothing was attached yet, so nothing reached the host), attach a copy of
// the tree on itself and pivot_root into it; the host's root is then out of sight.
bool root_the_namespace_at_our_tree() {
  char cwd[4096];
  if (!getcwd(cwd, sizeof cwd)) cwd[0] = '\0';
  const int tree = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  // A root below our cwd leaves the cwd outside it, free to climb by "..".
  if (tree < 0 || fchdir(tree) != 0 || (chroot("/proc") != 0 && chroot("/dev") != 0 && chroot("/tmp") != 0))
    return false;
  for (int level = 0; level < 4096 && !same_dir(".", ".."); ++level)
    if (chdir("..") != 0) return false;
  if (chroot(".") != 0 || mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return false;
  const int copy = open_tree(tree, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE | AT_EMPTY_PATH);
  if (copy < 0 || move_mount(copy, "", tree, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) != 0 ||
      fchdir(copy) != 0)
    return false;
  // pivot_root(".", "."): the old root ends up on top of the new one; detach it.
  if (syscall(SYS_pivot_root, ".", ".") != 0 || umount2(".", MNT_DETACH) != 0 || chdir("/") != 0) return false;
  close(copy);
  close(tree);
  // The same directory, now reached through the copy (make check runs us in the build dir).
  if (cwd[0] == '/' && chdir(cwd) != 0) std::perror(cwd);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  if (geteuid() != 0) {
    std::fprintf(stderr, "privileged tests need root: skipped\n");
    return 77;
  }
  if (unshare(CLONE_NEWNS) != 0) {
    std::perror("unshare");
    return 99;
  }
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    if (errno != EINVAL || !root_the_namespace_at_our_tree()) {
      std::perror("make / a private mount");
      return 99;
    }
  }
  return RUN_ALL_TESTS();
}
