// Fault injection: schroot is SIGKILLed at every fail point of begin and end, and
// from outside at random moments; then recovery runs, and nothing may leak: no
// mount, loop device, record, lock holder or union directory. The counts are
// printed so CI logs carry them. SCHROOT_TEST_LONG=1 (make check-long) runs more.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <random>
#include <thread>

#include "src/sys/command.h"
#include "src/sys/loop_device.h"
#include "test/privileged/harness.h"

using schroot::test::TestRoot;

namespace {

bool long_run() { return getenv("SCHROOT_TEST_LONG") != nullptr; }

int run_cmd(const std::string& cmd) {
  int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

// Starts the schroot under test without waiting; returns its pid.
pid_t spawn(const std::vector<std::string>& args, const std::vector<std::string>& env = {}) {
  schroot::sys::Command cmd = schroot::test::program_command(SCHROOT_UNDER_TEST, args, env);
  cmd.in = cmd.out = cmd.err = schroot::sys::Stream::null();
  return schroot::sys::Child::spawn(cmd).release();  // reaped by wait_status
}

bool has_exited(const schroot::sys::UniqueFd& pidfd) {
  struct pollfd p = {pidfd.get(), POLLIN, 0};
  return poll(&p, 1, 0) == 1;  // a pidfd is readable once its process has exited
}

int wait_status(pid_t pid) {
  int ws = 0;
  while (waitpid(pid, &ws, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
}

class Fault : public ::testing::Test {
 protected:
  void SetUp() override {
    tree_ = root_.make_tree("bb");
    image_ = root_.root() + "/srv/bb.img";
    ASSERT_EQ(run_cmd("mke2fs -q -F -t ext4 -d " + tree_ + " " + image_ + " 16M"), 0);
    struct stat st;
    ASSERT_EQ(stat(image_.c_str(), &st), 0);
    dev_ = st.st_dev;
    ino_ = st.st_ino;
    root_.add_hook("15hook", "#!/bin/sh\nexit 0\n");
    root_.write_config("[dir]\ntype=directory\ndirectory=" + tree_ + "\nprofile=minimal\n"
                       "[ovl]\ntype=directory\ndirectory=" + tree_ + "\nprofile=minimal\nunion-type=overlay\n"
                       "[img]\ntype=loopback\nfile=" + image_ + "\nprofile=minimal\nunion-type=overlay\n");
  }

  // Recovers everything, then ends what survived; counts failed recoveries.
  void recover_all() {
    auto rec = root_.schroot({"--recover-session", "--all-sessions"});
    if (rec.status != 0) {
      ++failed_recoveries_;
      ADD_FAILURE() << "recover failed: " << rec.err;
    }
    auto end = root_.schroot({"--end-session", "--all-sessions"});
    if (end.status != 0) {
      ++failed_recoveries_;
      ADD_FAILURE() << "end failed: " << end.err;
    }
  }

  int leaks() {
    int n = 0;
    auto mounts = root_.mounts_below_root();
    auto records = root_.records();
    auto dirs = root_.union_dirs();
    auto loops = schroot::test::loops_backed_by(dev_, ino_);
    auto holders = root_.lock_holder_files();
    n += static_cast<int>(mounts.size() + records.size() + dirs.size() + loops.size() + holders.size());
    EXPECT_EQ(n, 0) << "mounts " << ::testing::PrintToString(mounts) << " records "
                    << ::testing::PrintToString(records) << " dirs " << ::testing::PrintToString(dirs)
                    << " loops " << ::testing::PrintToString(loops) << " lock holders "
                    << ::testing::PrintToString(holders);
    return n;
  }

  TestRoot root_;
  std::string tree_, image_;
  dev_t dev_ = 0;
  ino_t ino_ = 0;
  int failed_recoveries_ = 0;
};

const char* const kBeginPoints[] = {"begin:written", "begin:00device", "begin:10mount", "begin:15hook",
                                    "begin:20fstab", "begin:21copyfiles", "begin:22nssdatabases",
                                    "begin:50chrootname", "begin:done", "begin:active"};
const char* const kEndPoints[] = {"end:ending", "end:unmount-listed", "end:undo", "end:undone"};
const char* const kChroots[] = {"dir", "ovl", "img"};

TEST_F(Fault, KillAtEveryFailPointOfBeginAndEndLeaksNothing) {
  int kills = 0, leaked = 0;
  for (const char* chroot : kChroots) {
    for (const char* point : kBeginPoints) {
      int st = wait_status(spawn({"-c", chroot, "-b", "-n", "f"}, {std::string("SCHROOT_FAIL_AT=") + point}));
      EXPECT_EQ(st, 128 + SIGKILL) << chroot << " " << point;
      kills += st == 128 + SIGKILL;
      recover_all();
      leaked += leaks();
    }
    for (const char* point : kEndPoints) {
      ASSERT_TRUE(succeeded(root_.schroot({"-c", chroot, "-b", "-n", "f"})));
      int st = wait_status(spawn({"-c", "f", "-e"}, {std::string("SCHROOT_FAIL_AT=") + point}));
      EXPECT_EQ(st, 128 + SIGKILL) << chroot << " " << point;
      kills += st == 128 + SIGKILL;
      recover_all();
      leaked += leaks();
    }
    for (const char* point : kBeginPoints) {
      int st = wait_status(spawn({"-c", chroot, "--", "true"}, {std::string("SCHROOT_FAIL_AT=") + point}));
      kills += st == 128 + SIGKILL;
      recover_all();
      leaked += leaks();
    }
  }
  std::printf("fault injection (fail points): %d SIGKILLs, %d leaked objects, %d failed recoveries\n", kills, leaked,
              failed_recoveries_);
  std::fflush(stdout);
  EXPECT_EQ(leaked, 0);
  EXPECT_EQ(failed_recoveries_, 0);
}

TEST_F(Fault, RandomKillsFromOutsideDuringBeginAndEndLeakNothing) {
  std::mt19937 rng(12345);
  // Counts only kills that landed (the process died of SIGKILL, not finished first).
  const int wanted = long_run() ? 1000 : 200;
  const int max_rounds = wanted * 5;
  int kills = 0, leaked = 0, rounds = 0;
  std::uniform_int_distribution<int> delay_us(0, 8000);
  for (; rounds < max_rounds && kills < wanted && leaked == 0; ++rounds) {
    const char* chroot = kChroots[rounds % 3];
    const bool during_end = (rounds / 3) % 2 == 1;
    if (during_end) {
      ASSERT_TRUE(succeeded(root_.schroot({"-c", chroot, "-b", "-n", "r"})));
    }
    pid_t pid = during_end ? spawn({"-c", "r", "-e"}) : spawn({"-c", chroot, "-b", "-n", "r"});
    std::this_thread::sleep_for(std::chrono::microseconds(delay_us(rng)));
    kill(pid, SIGKILL);
    if (wait_status(pid) == 128 + SIGKILL) ++kills;
    recover_all();
    leaked += leaks();
  }
  std::printf("fault injection (random): %d SIGKILLs in %d rounds, %d leaked objects, %d failed recoveries\n", kills,
              rounds, leaked, failed_recoveries_);
  std::fflush(stdout);
  EXPECT_GE(kills, wanted);
  EXPECT_EQ(leaked, 0);
  EXPECT_EQ(failed_recoveries_, 0);
}

TEST_F(Fault, KilledAutomaticSessionIsCleanedUpByRecovery) {
  for (const char* chroot : kChroots) {
    SCOPED_TRACE(chroot);
    // The command prints its pid once it runs (the session is active), then waits.
    schroot::test::Background session(SCHROOT_UNDER_TEST, {"-c", chroot, "-d", "/", "--", "sh", "-c",
                                                           std::string("echo $$; ") + schroot::test::kReadyThenWait});
    const auto pid_line = session.read_line(schroot::test::kDeadline);
    ASSERT_TRUE(pid_line) << "the command never ran: " << session.err();
    const schroot::sys::UniqueFd command = schroot::sys::open_pidfd(std::atoi(pid_line->c_str()));
    ASSERT_TRUE(command) << "command pid " << *pid_line;

    // The kill lands while the command runs: schroot dies of it, the command lives on.
    ASSERT_EQ(kill(session.pid(), SIGKILL), 0);
    ASSERT_EQ(session.wait(schroot::test::kDeadline), 128 + SIGKILL) << session.err();
    ASSERT_FALSE(has_exited(command)) << "the command went with its schroot: nothing left to recover";

    auto list = root_.schroot({"--list", "--all-sessions"});
    EXPECT_NE(list.out.find("session:"), std::string::npos) << "automatic sessions are listed";
    recover_all();
    EXPECT_EQ(leaks(), 0);
    EXPECT_TRUE(schroot::test::wait_until([&] { return has_exited(command); }, schroot::test::kDeadline))
        << "recovery left the stale session's command running";
  }
}

class Concurrency : public Fault {};

TEST_F(Concurrency, SixteenParallelBeginRunEndLoopsNeverFailOrLeak) {
  const auto duration = std::chrono::seconds(long_run() ? 120 : 30);
  const int loops = 16;
  std::vector<pid_t> workers;
  for (int w = 0; w < loops; ++w) {
    schroot::sys::Child worker = schroot::sys::Child::fork_function([&, w] {
      const char* chroot = kChroots[w % 2];  // dir and ovl: images have one claim each
      const auto end = std::chrono::steady_clock::now() + duration;
      int n = 0;
      while (std::chrono::steady_clock::now() < end) {
        const std::string id = "c" + std::to_string(w) + "-" + std::to_string(n++);
        auto b = root_.schroot({"-c", chroot, "-b", "-n", id});
        auto r = root_.schroot({"-c", id, "-r", "-d", "/", "--", "true"});
        auto e = root_.schroot({"-c", id, "-e"});
        if (b.status || r.status || e.status) {
          std::fprintf(stderr, "worker %d: %s %s %s\n", w, b.err.c_str(), r.err.c_str(), e.err.c_str());
          return 1;
        }
      }
      std::printf("worker %d: %d sessions\n", w, n);
      std::fflush(stdout);
      return 0;
    });
    workers.push_back(worker.release());  // reaped by wait_status
  }
  int failures = 0;
  for (pid_t pid : workers) failures += wait_status(pid) != 0;
  int leaked = leaks();
  std::printf("concurrency: %d loops, %d failures, %d leaked objects\n", loops, failures, leaked);
  std::fflush(stdout);
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(leaked, 0);
}

}  // namespace
