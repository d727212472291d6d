// remove_tree against trees a user can make in their own session: any depth, any width,
// symlinks out of the tree, mounts inside it, directories renamed during the walk. Each
// test works on a tmpfs of its own, sized for it, in the binary's private mount namespace.
// The big ones print their times; SCHROOT_TEST_LONG=1 (make check-long) makes them bigger.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "src/error.h"
#include "src/sys/fs.h"
#include "src/sys/mount.h"
#include "test/privileged/harness.h"

namespace schroot::sys {
namespace {

bool long_run() { return std::getenv("SCHROOT_TEST_LONG") != nullptr; }

bool exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

// The fds this process has open, and the highest of them (/proc/self/fd; the fd that
// lists it is not counted).
struct FdCensus {
  int count = 0;
  int highest = -1;
};
FdCensus take_fd_census() {
  FdCensus c;
  DIR* d = ::opendir("/proc/self/fd");
  if (!d) return c;
  while (struct dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    const int fd = std::atoi(e->d_name);
    if (fd == ::dirfd(d)) continue;
    ++c.count;
    if (fd > c.highest) c.highest = fd;
  }
  ::closedir(d);
  return c;
}

// For its lifetime, lets this process open only `spare` more fds: the holes below the
// highest open fd are filled, RLIMIT_NOFILE's soft limit is lowered to just above it.
// A walk that needs one fd per level fails fast.
class FdBudget {
 public:
  explicit FdBudget(rlim_t spare) {
    const int highest = take_fd_census().highest;
    for (;;) {
      UniqueFd filler(::open("/dev/null", O_RDONLY | O_CLOEXEC));
      if (!filler || filler.get() > highest) break;
      fillers_.push_back(std::move(filler));
    }
    ::getrlimit(RLIMIT_NOFILE, &saved_);
    struct rlimit tight = saved_;
    tight.rlim_cur = static_cast<rlim_t>(highest + 1) + spare;
    ::setrlimit(RLIMIT_NOFILE, &tight);
  }
  ~FdBudget() { ::setrlimit(RLIMIT_NOFILE, &saved_); }
  FdBudget(const FdBudget&) = delete;
  FdBudget& operator=(const FdBudget&) = delete;

 private:
  std::vector<UniqueFd> fillers_;
  struct rlimit saved_ {};
};

// remove_tree needs the top's parent, the directory it is in and the one it steps into.
constexpr rlim_t kFdsRemoveTreeMayUse = 3;

// A `levels` deep chain top/d/d/.../d, made with two fds whatever the depth.
void make_deep(const std::string& top, long levels) {
  ASSERT_EQ(::mkdir(top.c_str(), 0755), 0) << top << ": " << std::strerror(errno);
  UniqueFd fd(::open(top.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  ASSERT_TRUE(fd) << top;
  for (long i = 0; i < levels; ++i) {
    ASSERT_EQ(::mkdirat(fd.get(), "d", 0755), 0) << "level " << i << ": " << std::strerror(errno);
    UniqueFd next(::openat(fd.get(), "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    ASSERT_TRUE(next) << "level " << i << ": " << std::strerror(errno);
    fd = std::move(next);
  }
}

// `count` empty files f0, f1, ... in `dir`.
void make_files(const std::string& dir, long count) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  ASSERT_TRUE(fd) << dir;
  for (long i = 0; i < count; ++i) {
    UniqueFd f(::openat(fd.get(), ("f" + std::to_string(i)).c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644));
    ASSERT_TRUE(f) << dir << " file " << i << ": " << std::strerror(errno);
  }
}

std::string deep_path(const std::string& top, int levels) {
  std::string p = top;
  for (int i = 0; i < levels; ++i) p += "/d";
  return p;
}

// The system error code a call throws, or 0.
template <typename F>
int error_of(F f, std::string* message = nullptr) {
  try {
    f();
  } catch (const SystemError& e) {
    if (message) *message = e.what();
    return e.code().value();
  }
  return 0;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

class RemoveTree : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/schroot-rmtree-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    if (mounted_) ::umount2(dir_.c_str(), MNT_DETACH);
    ::rmdir(dir_.c_str());
  }
  // A tmpfs over dir_ with room for `inodes` files and directories.
  void use_tmpfs(long inodes) {
    const std::string opts = "mode=0755,size=64m,nr_inodes=" + std::to_string(inodes + 1000);
    ASSERT_EQ(::mount("rmtree-test", dir_.c_str(), "tmpfs", 0, opts.c_str()), 0) << std::strerror(errno);
    mounted_ = true;
    top_ = dir_ + "/tree";
  }
  // Runs remove_tree(top_) with a small fd budget; returns the seconds it took.
  double remove_timed(const std::string& what) {
    const auto start = std::chrono::steady_clock::now();
    {
      FdBudget budget(kFdsRemoveTreeMayUse);
      remove_tree(top_);
    }
    const double s = seconds_since(start);
    std::cout << "[ timing   ] remove_tree: " << what << " in " << s << " s" << std::endl;
    return s;
  }

  std::string dir_, top_;
  bool mounted_ = false;
};

TEST_F(RemoveTree, RemovesATreeDeeperThanTheFdLimitWithAFewFds) {
  const long levels = long_run() ? 100000 : 20000;
  use_tmpfs(levels);
  make_deep(top_, levels);
  const int fds_before = take_fd_census().count;

  const double s = remove_timed(std::to_string(levels) + " nested levels");

  EXPECT_FALSE(exists(top_));
  EXPECT_EQ(take_fd_census().count, fds_before);
  RecordProperty("levels", std::to_string(levels));
  RecordProperty("seconds", std::to_string(s));
}

TEST_F(RemoveTree, RemovesManyFilesFlatAndInSubdirectoriesWithAFewFds) {
  const long files = long_run() ? 1000000 : 200000;
  const long subdirs = 100;
  use_tmpfs(files + subdirs);
  ASSERT_EQ(::mkdir(top_.c_str(), 0755), 0);
  // Half in one big directory, half spread over subdirectories.
  make_files(top_, files / 2);
  for (long i = 0; i < subdirs; ++i) {
    const std::string sub = top_ + "/s" + std::to_string(i);
    ASSERT_EQ(::mkdir(sub.c_str(), 0755), 0);
    make_files(sub, files / 2 / subdirs);
  }
  const int fds_before = take_fd_census().count;

  const double s = remove_timed(std::to_string(files) + " files");

  EXPECT_FALSE(exists(top_));
  EXPECT_EQ(take_fd_census().count, fds_before);
  RecordProperty("files", std::to_string(files));
  RecordProperty("seconds", std::to_string(s));
}

TEST_F(RemoveTree, UnlinksSymlinksDeepInTheTreeAndKeepsTheirTargets) {
  use_tmpfs(5000);
  const std::string outside = dir_ + "/outside";
  ASSERT_EQ(::mkdir(outside.c_str(), 0755), 0);
  make_files(outside, 1);
  make_deep(top_, 2000);
  const std::string mid = deep_path(top_, 1000);
  ASSERT_EQ(::symlink(outside.c_str(), (mid + "/to-dir").c_str()), 0);
  ASSERT_EQ(::symlink((outside + "/f0").c_str(), (mid + "/to-file").c_str()), 0);
  std::string up;
  for (int i = 0; i < 1001; ++i) up += "../";
  ASSERT_EQ(::symlink((up + "outside").c_str(), (mid + "/relative").c_str()), 0);
  ASSERT_EQ(::symlink(outside.c_str(), (deep_path(top_, 2000) + "/at-the-bottom").c_str()), 0);
  const int fds_before = take_fd_census().count;

  {
    FdBudget budget(kFdsRemoveTreeMayUse);
    remove_tree(top_);
  }

  EXPECT_FALSE(exists(top_));
  EXPECT_TRUE(exists(outside + "/f0"));
  EXPECT_EQ(take_fd_census().count, fds_before);
}

TEST_F(RemoveTree, StopsAtAnotherFilesystemMountedDeepInTheTreeAndNamesIt) {
  use_tmpfs(5000);
  make_deep(top_, 2000);
  const std::string mnt = deep_path(top_, 30) + "/mnt";
  ASSERT_EQ(::mkdir(mnt.c_str(), 0755), 0);
  ASSERT_EQ(::mount("rmtree-inner", mnt.c_str(), "tmpfs", 0, "mode=0755,size=1m"), 0) << std::strerror(errno);
  make_files(mnt, 1);
  const int fds_before = take_fd_census().count;

  std::string msg;
  int err;
  {
    FdBudget budget(kFdsRemoveTreeMayUse);
    err = error_of([&] { remove_tree(top_); }, &msg);
  }

  EXPECT_EQ(err, EBUSY) << msg;
  EXPECT_NE(msg.find(mnt), std::string::npos) << msg;
  EXPECT_TRUE(exists(mnt + "/f0"));
  EXPECT_EQ(take_fd_census().count, fds_before);
  ASSERT_EQ(::umount2(mnt.c_str(), 0), 0) << std::strerror(errno);
  remove_tree(top_);
  EXPECT_FALSE(exists(top_));
}

TEST_F(RemoveTree, StopsAtABindMountOfTheSameFilesystemDeepInTheTreeAndNamesIt) {
  use_tmpfs(5000);
  const std::string outside = dir_ + "/outside";
  ASSERT_EQ(::mkdir(outside.c_str(), 0755), 0);
  make_files(outside, 1);
  make_deep(top_, 2000);
  const std::string mnt = deep_path(top_, 30) + "/home";
  ASSERT_EQ(::mkdir(mnt.c_str(), 0755), 0);
  ASSERT_EQ(::mount(outside.c_str(), mnt.c_str(), nullptr, MS_BIND, nullptr), 0) << std::strerror(errno);

  std::string msg;
  int err;
  {
    FdBudget budget(kFdsRemoveTreeMayUse);
    err = error_of([&] { remove_tree(top_); }, &msg);
  }

  EXPECT_EQ(err, EBUSY) << msg;
  EXPECT_NE(msg.find(mnt), std::string::npos) << msg;
  EXPECT_TRUE(exists(outside + "/f0"));
  ASSERT_EQ(::umount2(mnt.c_str(), 0), 0) << std::strerror(errno);
}

// Undo removes a union dir whose parent a failed begin never made.
TEST_F(RemoveTree, OfAPathWhoseParentIsMissingIsDone) {
  EXPECT_NO_THROW(remove_tree(dir_ + "/never-was/tree"));
}

TEST_F(RemoveTree, ReportsProgressEveryNEntriesAndTheTotalAtTheEnd) {
  use_tmpfs(3000);
  ASSERT_EQ(::mkdir(top_.c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((top_ + "/sub").c_str(), 0755), 0);
  make_files(top_, 1500);
  make_files(top_ + "/sub", 1000);
  std::vector<std::uint64_t> calls;

  remove_tree(top_, [&](std::uint64_t removed) { calls.push_back(removed); }, 1000);

  // 2,500 files, sub and the top itself.
  EXPECT_EQ(calls, (std::vector<std::uint64_t>{1000, 2000, 2502}));
  EXPECT_FALSE(exists(top_));
}

// A user renames the directory being emptied to below a directory of someone else's:
// its ".." is no longer the parent recorded on the way down, and the walk must not
// continue there.
TEST_F(RemoveTree, StopsWhenTheDirectoryItIsInIsMovedOutOfTheTree) {
  use_tmpfs(1000);
  const std::string victim = dir_ + "/victim";
  ASSERT_EQ(::mkdir(victim.c_str(), 0755), 0);
  make_files(victim, 1);
  ASSERT_EQ(::mkdir(top_.c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((top_ + "/a").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((top_ + "/a/x").c_str(), 0755), 0);
  make_files(top_ + "/a/x", 100);
  const int fds_before = take_fd_census().count;
  bool moved = false;
  auto move_x_to_victim = [&](std::uint64_t) {
    if (!moved) moved = ::rename((top_ + "/a/x").c_str(), (victim + "/x").c_str()) == 0;
  };

  std::string msg;
  const int err = error_of([&] { remove_tree(top_, move_x_to_victim, 10); }, &msg);

  ASSERT_TRUE(moved);
  EXPECT_NE(err, 0);
  EXPECT_NE(msg.find("moved"), std::string::npos) << msg;
  EXPECT_TRUE(exists(victim + "/f0"));
  EXPECT_EQ(take_fd_census().count, fds_before);
}

// --- end to end: a union session whose user made a deep tree -------------------------

class RemoveTreeSession : public ::testing::Test {
 protected:
  void SetUp() override {
    tree_ = root_.make_tree("bb");
    root_.write_config("[bb]\ntype=directory\ndirectory=" + tree_ + "\nprofile=minimal\nunion-type=overlay\n");
    // A user's usual fd limit (Debian's default soft limit), which schroot inherits:
    // one fd per level runs out of it long before 1,200 levels.
    ::getrlimit(RLIMIT_NOFILE, &saved_);
    struct rlimit usual = saved_;
    usual.rlim_cur = std::min<rlim_t>(saved_.rlim_cur, 1024);
    ::setrlimit(RLIMIT_NOFILE, &usual);
  }
  void TearDown() override { ::setrlimit(RLIMIT_NOFILE, &saved_); }

  test::TestRoot root_;
  std::string tree_;
  struct rlimit saved_ {};
};

TEST_F(RemoveTreeSession, EndsAUnionSessionWhoseUserMade1200NestedDirectories) {
  ASSERT_TRUE(succeeded(root_.schroot({"-c", "bb", "-b", "-n", "deep"})));
  auto made = root_.schroot({"-c", "deep", "-r", "-d", "/tmp", "--", "sh", "-c",
                             "i=0; while [ $i -lt 1200 ]; do mkdir d && cd d || exit 1; i=$((i+1)); done"});
  ASSERT_EQ(made.status, 0) << made.err;
  ASSERT_TRUE(exists(root_.state() + "/union/overlay/deep/upper/tmp/d/d/d"));

  auto ended = root_.schroot({"-c", "deep", "-e"});

  EXPECT_EQ(ended.status, 0) << ended.err;
  EXPECT_TRUE(root_.records().empty()) << ::testing::PrintToString(root_.records());
  EXPECT_TRUE(root_.union_dirs().empty()) << ::testing::PrintToString(root_.union_dirs());
  EXPECT_TRUE(root_.mounts_below_root().empty()) << ::testing::PrintToString(root_.mounts_below_root());
}

}  // namespace
}  // namespace schroot::sys
