// FileLock between real processes: children (sys::Child::fork_function) hold locks,
// pipes say when.
#include "src/lock.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <string>
#include <tuple>

#include <gtest/gtest.h>

#include "src/sys/command.h"

namespace schroot {
namespace {

using std::chrono::milliseconds;
namespace fs = std::filesystem;

// A child process that takes `mode` on `path`, says so through a pipe, and holds the
// lock until told to go (or killed).
class LockHolder {
 public:
  LockHolder(const std::string& path, LockMode mode) {
    int ready[2], go[2];
    if (::pipe2(ready, O_CLOEXEC) != 0 || ::pipe2(go, O_CLOEXEC) != 0) return;
    child_ = sys::Child::fork_function([&] {
      ::close(ready[0]);
      ::close(go[1]);
      int rc = 0;
      try {
        FileLock lock = FileLock::acquire(path, mode, milliseconds(1000), "test");
        char c = 'r', b;
        if (::write(ready[1], &c, 1) != 1) rc = 2;
        // A byte, not EOF: other children may hold copies of this pipe's write end.
        if (::read(go[0], &b, 1) != 1) rc = 3;
      } catch (...) {
        rc = 1;
      }
      return rc;
    });
    ::close(ready[1]);
    ::close(go[0]);
    go_ = go[1];
    char c;
    held_ = ::read(ready[0], &c, 1) == 1;
    ::close(ready[0]);
  }
  ~LockHolder() { stop(); }

  bool held() const { return held_; }
  pid_t pid() const { return child_.pid(); }

  // Lets the child release its lock and exit; returns its exit status.
  int stop() {
    if (go_ < 0) return -1;
    char c = 'g';
    (void)!::write(go_, &c, 1);
    return reap();
  }
  void kill9() {
    if (go_ < 0) return;
    child_.send_signal(SIGKILL);
    reap();
  }

 private:
  int reap() {
    const sys::ExitStatus status = child_.wait();
    ::close(go_);
    go_ = -1;
    return status.exited ? status.code : 128 + status.signal;
  }

  sys::Child child_;
  int go_ = -1;
  bool held_ = false;
};

// Runs f in a forked child and returns its exit status (f's return value).
template <typename F>
int in_child(F f) {
  const sys::ExitStatus status = sys::Child::fork_function([&] {
                                   try {
                                     return f();
                                   } catch (...) {
                                     return 99;
                                   }
                                 }).wait();
  return status.exited ? status.code : 128 + status.signal;
}

class FileLockTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "schroot-lock-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/test.lock";
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string dir_, path_;
};

const char* name(LockMode m) { return m == LockMode::kShared ? "shared" : "exclusive"; }

class FileLockMatrix : public FileLockTest,
                       public ::testing::WithParamInterface<std::tuple<LockMode, LockMode>> {};

TEST_P(FileLockMatrix, OnlySharedWithSharedIsGranted) {
  auto [held, wanted] = GetParam();
  LockHolder holder(path_, held);
  ASSERT_TRUE(holder.held());
  const bool compatible = held == LockMode::kShared && wanted == LockMode::kShared;
  if (compatible) {
    FileLock lock = FileLock::acquire(path_, wanted, milliseconds(100), "test");
    EXPECT_EQ(lock.mode(), wanted);
  } else {
    EXPECT_THROW(FileLock::acquire(path_, wanted, milliseconds(100), "test"), LockTimeout);
  }
  EXPECT_EQ(holder.stop(), 0);
}

INSTANTIATE_TEST_SUITE_P(
    FileLock, FileLockMatrix,
    ::testing::Combine(::testing::Values(LockMode::kShared, LockMode::kExclusive),
                       ::testing::Values(LockMode::kShared, LockMode::kExclusive)),
    [](const auto& info) {
      return std::string(name(std::get<0>(info.param))) + "_held_" + name(std::get<1>(info.param)) + "_wanted";
    });

TEST_F(FileLockTest, CreatesTheLockFile) {
  FileLock lock = FileLock::acquire(path_, LockMode::kExclusive, milliseconds(0), "test");
  struct stat st;
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(lock.path(), path_);
  EXPECT_GE(lock.fd(), 0);
  EXPECT_TRUE(::fcntl(lock.fd(), F_GETFD) & FD_CLOEXEC);
}

TEST_F(FileLockTest, TimeoutIsRespected) {
  LockHolder holder(path_, LockMode::kExclusive);
  ASSERT_TRUE(holder.held());
  const auto start = std::chrono::steady_clock::now();
  EXPECT_THROW(FileLock::acquire(path_, LockMode::kExclusive, milliseconds(300), "test"), LockTimeout);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_GE(elapsed, milliseconds(300));
  EXPECT_LT(elapsed, milliseconds(800));
}

TEST_F(FileLockTest, WaiterGetsTheLockWhenTheHolderLetsGo) {
  LockHolder holder(path_, LockMode::kExclusive);
  ASSERT_TRUE(holder.held());
  int waiting[2];
  ASSERT_EQ(::pipe2(waiting, O_CLOEXEC), 0);
  sys::Child waiter = sys::Child::fork_function([&] {
    ::close(waiting[0]);
    char c = 'w';
    if (::write(waiting[1], &c, 1) != 1) return 4;
    try {
      FileLock lock = FileLock::acquire(path_, LockMode::kExclusive, milliseconds(1500), "test");
    } catch (...) {
      return 1;
    }
    return 0;
  });
  ::close(waiting[1]);
  char c;
  ASSERT_EQ(::read(waiting[0], &c, 1), 1);
  ::close(waiting[0]);
  EXPECT_EQ(holder.stop(), 0);
  const sys::ExitStatus status = waiter.wait();
  EXPECT_TRUE(status.success()) << status.describe();
}

TEST_F(FileLockTest, KilledHolderReleasesItsLock) {
  LockHolder holder(path_, LockMode::kExclusive);
  ASSERT_TRUE(holder.held());
  EXPECT_FALSE(FileLock::try_acquire(path_, LockMode::kExclusive));
  holder.kill9();
  EXPECT_TRUE(FileLock::try_acquire(path_, LockMode::kExclusive));
}

TEST_F(FileLockTest, TwoLocksInOneProcessConflict) {
  FileLock first = FileLock::acquire(path_, LockMode::kExclusive, milliseconds(0), "test");
  EXPECT_FALSE(FileLock::try_acquire(path_, LockMode::kExclusive));
  EXPECT_FALSE(FileLock::try_acquire(path_, LockMode::kShared));
}

TEST_F(FileLockTest, TwoSharedLocksInOneProcessCoexist) {
  FileLock first = FileLock::acquire(path_, LockMode::kShared, milliseconds(0), "test");
  std::optional<FileLock> second = FileLock::try_acquire(path_, LockMode::kShared);
  ASSERT_TRUE(second);
  first.release();
  // Still held by the second one.
  EXPECT_FALSE(FileLock::is_free(path_, LockMode::kExclusive));
  EXPECT_EQ(FileLock::holder_pids(path_), std::vector<pid_t>{::getpid()});
}

TEST_F(FileLockTest, ClosingAnotherFdOfTheFileKeepsTheLock) {
  FileLock lock = FileLock::acquire(path_, LockMode::kExclusive, milliseconds(0), "test");
  // With POSIX fcntl locks this close would drop the process's lock.
  int other = ::open(path_.c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(other, 0);
  ::close(other);
  int rc = in_child([&] { return FileLock::try_acquire(path_, LockMode::kShared) ? 1 : 0; });
  EXPECT_EQ(rc, 0) << "another process got the lock";
}

TEST_F(FileLockTest, ReleaseInAForkedChildKeepsTheParentsLock) {
  FileLock lock = FileLock::acquire(path_, LockMode::kExclusive, milliseconds(0), "test");
  int rc = in_child([&] {
    lock.release();  // the child's copy of the fd: closes it, must not unlock
    return 0;
  });
  ASSERT_EQ(rc, 0);
  EXPECT_FALSE(FileLock::is_free(path_, LockMode::kShared));
  lock.release();
  EXPECT_TRUE(FileLock::is_free(path_, LockMode::kExclusive));
}

TEST_F(FileLockTest, ExecutedProgramsDoNotInheritTheLock) {
  FileLock lock = FileLock::acquire(path_, LockMode::kExclusive, milliseconds(0), "test");
  // Returns whether a program exec'd by a child has the lock's fd open.
  auto exec_inherits = [&]() {
    int hold[2];
    if (::pipe2(hold, O_CLOEXEC) != 0) return false;
    sys::Command cat;
    cat.argv = {"/bin/cat"};
    cat.in = sys::Stream::fd(hold[0]);
    cat.close_other_fds = false;  // what the lock's own close-on-exec flag does
    sys::Child child = sys::Child::spawn(cat);
    ::close(hold[0]);
    const bool ran = !child.started().has_value();  // returns once cat runs
    char target[4096] = {};
    std::string fd_link = "/proc/" + std::to_string(child.pid()) + "/fd/" + std::to_string(lock.fd());
    ssize_t n = ::readlink(fd_link.c_str(), target, sizeof target - 1);
    ::close(hold[1]);  // cat sees EOF and exits
    child.wait();
    return ran && n > 0 && fs::equivalent(target, path_);
  };
  EXPECT_FALSE(exec_inherits());
  // The probe does see an fd that is inherited.
  ASSERT_EQ(::fcntl(lock.fd(), F_SETFD, 0), 0);
  EXPECT_TRUE(exec_inherits());
}

TEST_F(FileLockTest, TimeoutMessageNamesWhatTheFileAndTheHolder) {
  LockHolder holder(path_, LockMode::kExclusive);
  ASSERT_TRUE(holder.held());
  try {
    FileLock::acquire(path_, LockMode::kShared, milliseconds(50), "session sid-42");
    FAIL() << "acquired a held lock";
  } catch (const LockTimeout& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("session sid-42"), std::string::npos) << msg;
    EXPECT_NE(msg.find(path_), std::string::npos) << msg;
    EXPECT_NE(msg.find("pid " + std::to_string(holder.pid())), std::string::npos) << msg;
    EXPECT_EQ(e.holders(), std::vector<pid_t>{holder.pid()});
  }
}

TEST_F(FileLockTest, HolderPidsListsEverySharedHolder) {
  LockHolder child(path_, LockMode::kShared);
  ASSERT_TRUE(child.held());
  FileLock mine = FileLock::acquire(path_, LockMode::kShared, milliseconds(0), "test");
  std::vector<pid_t> expected{child.pid(), ::getpid()};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(FileLock::holder_pids(path_), expected);
  EXPECT_EQ(child.stop(), 0);
  EXPECT_EQ(FileLock::holder_pids(path_), std::vector<pid_t>{::getpid()});
  mine.release();
  EXPECT_TRUE(FileLock::holder_pids(path_).empty());
}

TEST_F(FileLockTest, NotesOfKilledHoldersAreIgnoredAndRemoved) {
  LockHolder holder(path_, LockMode::kExclusive);
  ASSERT_TRUE(holder.held());
  holder.kill9();  // leaves its note behind
  EXPECT_FALSE(fs::is_empty(path_ + ".holders"));
  EXPECT_TRUE(FileLock::holder_pids(path_).empty());
  EXPECT_TRUE(fs::is_empty(path_ + ".holders"));
}

TEST_F(FileLockTest, DowngradeLetsASharedWaiterIn) {
  FileLock lock = FileLock::acquire(path_, LockMode::kExclusive, milliseconds(0), "test");
  int waiting[2];
  ASSERT_EQ(::pipe2(waiting, O_CLOEXEC), 0);
  sys::Child waiter = sys::Child::fork_function([&] {
    ::close(waiting[0]);
    int rc = 0;
    try {
      if (FileLock::try_acquire(path_, LockMode::kShared)) return 3;  // not yet
      char c = 'w';
      if (::write(waiting[1], &c, 1) != 1) return 4;
      FileLock shared = FileLock::acquire(path_, LockMode::kShared, milliseconds(1500), "test");
    } catch (...) {
      rc = 1;
    }
    return rc;
  });
  ::close(waiting[1]);
  char c;
  ASSERT_EQ(::read(waiting[0], &c, 1), 1);
  ::close(waiting[0]);
  lock.downgrade_to_shared();
  EXPECT_EQ(lock.mode(), LockMode::kShared);
  const sys::ExitStatus status = waiter.wait();
  EXPECT_TRUE(status.success()) << status.describe();
  // Still held shared: an exclusive lock is refused.
  EXPECT_FALSE(FileLock::try_acquire(path_, LockMode::kExclusive));
  EXPECT_TRUE(FileLock::is_free(path_, LockMode::kShared));
}

TEST_F(FileLockTest, IsFreeFollowsTheHeldMode) {
  EXPECT_TRUE(FileLock::is_free(path_));  // no file yet
  EXPECT_TRUE(FileLock::is_free(path_, LockMode::kShared));
  {
    FileLock lock = FileLock::acquire(path_, LockMode::kShared, milliseconds(0), "test");
    EXPECT_TRUE(FileLock::is_free(path_, LockMode::kShared));
    EXPECT_FALSE(FileLock::is_free(path_, LockMode::kExclusive));
  }
  {
    FileLock lock = FileLock::acquire(path_, LockMode::kExclusive, milliseconds(0), "test");
    EXPECT_FALSE(FileLock::is_free(path_, LockMode::kShared));
    EXPECT_FALSE(FileLock::is_free(path_, LockMode::kExclusive));
  }
  EXPECT_TRUE(FileLock::is_free(path_));
}

TEST_F(FileLockTest, MovedLockKeepsHoldingIt) {
  FileLock a = FileLock::acquire(path_, LockMode::kExclusive, milliseconds(0), "test");
  FileLock b = std::move(a);
  EXPECT_EQ(a.fd(), -1);
  EXPECT_FALSE(FileLock::is_free(path_));
  a.release();  // the moved-from object owns nothing
  EXPECT_FALSE(FileLock::is_free(path_));
  b.release();
  EXPECT_TRUE(FileLock::is_free(path_));
}

TEST_F(FileLockTest, MissingDirectoryIsASystemError) {
  EXPECT_THROW(FileLock::acquire(dir_ + "/no/such.lock", LockMode::kShared, milliseconds(0), "test"),
               SystemError);
}

}  // namespace
}  // namespace schroot

namespace schroot {
namespace {

// Polls (bounded) until process `pid` has the file now at `path` open.
bool has_open_within(pid_t pid, const std::string& path, std::chrono::milliseconds deadline) {
  struct stat want;
  if (::stat(path.c_str(), &want) != 0) return false;
  const std::string fds = "/proc/" + std::to_string(pid) + "/fd";
  const auto end = std::chrono::steady_clock::now() + deadline;
  do {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(fds, ec)) {
      struct stat st;
      if (::stat(e.path().c_str(), &st) == 0 && st.st_dev == want.st_dev && st.st_ino == want.st_ino) return true;
    }
    ::usleep(1000);
  } while (std::chrono::steady_clock::now() < end);
  return false;
}

// A waiter that was blocked on a lock file its holder removed must end up holding
// the file now at the path, never the removed one (two "holders" otherwise).
TEST_F(FileLockTest, WaiterOnARemovedLockFileLocksTheNewFile) {
  std::optional<FileLock> first = FileLock::acquire(path_, LockMode::kExclusive, milliseconds(100), "test");
  int ready[2], result[2];
  ASSERT_EQ(::pipe2(ready, O_CLOEXEC), 0);
  ASSERT_EQ(::pipe2(result, O_CLOEXEC), 0);
  sys::Child waiter = sys::Child::fork_function([&] {
    char c = 'w';
    if (::write(ready[1], &c, 1) != 1) return 4;
    try {
      FileLock lock = FileLock::acquire(path_, LockMode::kExclusive, milliseconds(2000), "test");
      struct stat by_fd, by_path;
      bool current = ::fstat(lock.fd(), &by_fd) == 0 && ::stat(path_.c_str(), &by_path) == 0 &&
                     by_fd.st_ino == by_path.st_ino && by_fd.st_nlink > 0;
      c = current ? 'y' : 'n';
      if (::write(result[1], &c, 1) != 1) return 4;
      char wait_for_parent;
      if (::read(ready[0], &wait_for_parent, 1) < 0) return 4;
    } catch (...) {
      return 1;
    }
    return 0;
  });
  char c;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  // The race needs the child waiting on the file that is about to go: it has it open
  // (FileLock::acquire opens once, then retries the lock). Without this wait the child
  // could open the path after the removal and pass without the race.
  ASSERT_TRUE(has_open_within(waiter.pid(), path_, std::chrono::seconds(10)))
      << "the child never opened the lock file";

  first->remove_file();
  first.reset();
  ASSERT_EQ(::read(result[0], &c, 1), 1);

  EXPECT_EQ(c, 'y');
  EXPECT_FALSE(FileLock::try_acquire(path_, LockMode::kExclusive).has_value()) << "the child holds the new file";
  ASSERT_EQ(::write(ready[1], &c, 1), 1);
  EXPECT_TRUE(waiter.wait().success());
}

}  // namespace
}  // namespace schroot
