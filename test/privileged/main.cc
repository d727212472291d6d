// Privileged tests: real mounts, loop devices and sessions. Each run happens in a
// private mount namespace so nothing a test mounts can reach the host, even when
// the test process dies. Exit 77 (automake SKIP) when not root.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

// The mount holding our root directory, by id (statx works whatever our root is).
uint64_t mount_id_of_root() {
  struct statx stx;
  if (statx(AT_FDCWD, "/", 0, STATX_MNT_ID, &stx) != 0 || !(stx.stx_mask & STATX_MNT_ID)) return 0;
  return stx.stx_mnt_id;
}

// Mountinfo's fields: id, parent, dev, root, mount point, options, optional fields
// ("shared:N", "master:N"), "-", ...
struct MountLine {
  uint64_t id = 0;
  std::string mount_point;
  bool shared = false;
};

// Mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescape(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      out += static_cast<char>(std::stoi(s.substr(i + 1, 3), nullptr, 8));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::vector<MountLine> read_mountinfo(const char* file) {
  std::vector<MountLine> out;
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);) {
    std::istringstream fields(line);
    MountLine m;
    std::string parent, dev, root, options, f;
    fields >> m.id >> parent >> dev >> root >> m.mount_point >> options;
    m.mount_point = unescape(m.mount_point);
    while (fields >> f && f != "-") m.shared = m.shared || f.rfind("shared:", 0) == 0;
    out.push_back(m);
  }
  return out;
}

// In a chroot whose root is not a mount point (a plain tree, as a CI chroot made by
// mmdebstrap is), "/" cannot be made private (EINVAL), nor a slave by schroot's
// automatic sessions. So, in our new namespace, attach a copy of our tree on top of
// itself and enter it: the root is a mount point from then on. The attach lands on
// the host's mount that holds the tree (our mountinfo does not show it): done only
// when that mount does not propagate, looked up by id in pid 1's view.
bool become_a_mount_point(uint64_t root_mount_id) {
  bool found = false;
  for (const auto& m : read_mountinfo("/proc/1/mountinfo")) {
    if (m.id != root_mount_id) continue;
    found = true;
    if (m.shared) {
      std::fprintf(stderr,
                   "privileged tests: this chroot's root is on a shared mount (%s), so the tests' mounts "
                   "would reach the host; make the chroot's root a private mount point first "
                   "(mount --bind DIR DIR; mount --make-private DIR)\n",
                   m.mount_point.c_str());
      return false;
    }
  }
  if (!found) {
    std::fprintf(stderr, "privileged tests: cannot find the mount that holds this chroot (mount id %llu)\n",
                 static_cast<unsigned long long>(root_mount_id));
    return false;
  }
  char cwd[4096];
  if (!getcwd(cwd, sizeof cwd)) cwd[0] = '\0';
  const int tree = open_tree(AT_FDCWD, "/", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
  if (tree < 0 || move_mount(tree, "", AT_FDCWD, "/", MOVE_MOUNT_F_EMPTY_PATH) != 0 || fchdir(tree) != 0 ||
      chroot(".") != 0 || chdir("/") != 0) {
    std::perror("privileged tests: attach the chroot's tree on itself");
    return false;
  }
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
  const uint64_t root_mount_id = mount_id_of_root();
  if (unshare(CLONE_NEWNS) != 0) {
    std::perror("unshare");
    return 99;
  }
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    if (errno != EINVAL) {
      std::perror("make-private /");
      return 99;
    }
    if (!become_a_mount_point(root_mount_id) || mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
      std::perror("make-private /");
      return 99;
    }
  }
  return RUN_ALL_TESTS();
}
