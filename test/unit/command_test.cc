// The spawner (src/sys/command.h), without root: what the parent learns about a child
// that could not run its program, exit codes and signals, deadlines, descriptors and
// signals in the child, and output.
#include "src/sys/command.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "src/error.h"

namespace schroot::sys {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

Command shell(const std::string& script) {
  Command cmd;
  cmd.argv = {"/bin/sh", "-c", script};
  cmd.env = {"PATH=/usr/bin:/bin"};
  return cmd;
}

struct Output {
  std::string out, err;
  ExitStatus status;
};

Output run_capturing(Command cmd) {
  Output o;
  cmd.out = Stream::pipe();
  cmd.err = Stream::pipe();
  o.status = run_to_end(cmd, [&o](int stream, std::string_view data) {
    (stream == STDOUT_FILENO ? o.out : o.err).append(data);
  });
  return o;
}

// A scratch directory of the test's own.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/command-test-XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() { std::system(("rm -rf '" + path_ + "'").c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// ---- a child that cannot run its program -----------------------------------------------

TEST(Spawner, ReportsAMissingProgramWithItsErrno) {
  Command cmd;
  cmd.argv = {"/nonexistent/program"};
  Child child = Child::spawn(cmd);

  auto failure = child.started();
  ASSERT_TRUE(failure.has_value());
  EXPECT_EQ(failure->step, kExecStep);
  EXPECT_EQ(failure->error, ENOENT);
  EXPECT_EQ(child.wait().code, 127);
}

TEST(Spawner, ReportsAProgramWithoutExecutePermissionAsEACCES) {
  TempDir dir;
  const std::string file = dir.path() + "/not-executable";
  std::ofstream(file) << "#!/bin/sh\nexit 0\n";
  ASSERT_EQ(::chmod(file.c_str(), 0644), 0);
  Command cmd;
  cmd.argv = {file};

  try {
    run_to_end(cmd);
    FAIL() << "ran a file without execute permission";
  } catch (const SystemError& e) {
    EXPECT_EQ(e.code().value(), EACCES);
    EXPECT_NE(std::string(e.what()).find("execute " + file), std::string::npos) << e.what();
  }
}

TEST(Spawner, ReportsTheBeforeExecStepThatFailedWithItsErrno) {
  Command cmd = shell("exit 0");
  cmd.before_exec = [](ExecTarget& target) {
    target.which = 4;
    errno = EROFS;
    return 3;
  };
  Child child = Child::spawn(cmd);

  auto failure = child.started();
  ASSERT_TRUE(failure.has_value());
  EXPECT_EQ(failure->step, 3);
  EXPECT_EQ(failure->error, EROFS);
  EXPECT_EQ(failure->which, 4);
  EXPECT_EQ(child.wait().code, 127) << "the program must not have run";
}

TEST(Spawner, StartedSaysNothingFailedOnceTheProgramRuns) {
  Child child = Child::spawn(shell("exit 0"));

  EXPECT_FALSE(child.started().has_value());
  EXPECT_TRUE(child.wait().success());
}

TEST(Spawner, BeforeExecMaySwitchToAnotherPreparedProgram) {
  static char arg0[] = "/bin/sh", arg1[] = "-c", arg2[] = "exit 6";
  static char* const argv[] = {arg0, arg1, arg2, nullptr};
  static char* const envp[] = {nullptr};
  Command cmd = shell("exit 0");
  cmd.before_exec = [](ExecTarget& target) {
    target.path = "/bin/sh";
    target.argv = argv;
    target.envp = envp;
    return 0;
  };

  EXPECT_EQ(run_to_end(cmd).code, 6);
}

// The child shares our memory until it execs: its credential changes must stay its
// own. glibc's set*id wrappers would have every thread of ours follow (or hang
// waiting for threads that are not the child's); the child_set* calls do not.
TEST(Spawner, ACredentialChangeInTheChildIsTheChildsAlone) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to change credentials";
  const int groups_before = ::getgroups(0, nullptr);
  std::atomic<bool> stop{false};
  std::atomic<uid_t> thread_euid{0};
  std::thread other([&] {
    while (!stop) {
      uid_t r, e, s;
      ::getresuid(&r, &e, &s);
      if (e != 0) thread_euid = e;
      std::this_thread::sleep_for(milliseconds(1));
    }
  });
  Command cmd = shell("test \"$(id -u):$(id -g):$(id -G)\" = 65534:65534:65534");
  cmd.before_exec = [](ExecTarget&) {
    const gid_t nogroup = 65534;
    if (child_setgroups(1, &nogroup) != 0) return 1;
    if (child_setresgid(65534, 65534, 65534) != 0) return 2;
    if (child_setresuid(65534, 65534, 65534) != 0) return 3;
    return 0;
  };
  const ExitStatus status = run_to_end(cmd);
  std::this_thread::sleep_for(milliseconds(20));
  stop = true;
  other.join();

  EXPECT_TRUE(status.success()) << "the program must run as 65534:65534 with only that group: " << status.describe();
  uid_t r, e, s;
  ::getresuid(&r, &e, &s);
  EXPECT_EQ(r, 0u);
  EXPECT_EQ(e, 0u);
  EXPECT_EQ(s, 0u);
  EXPECT_EQ(thread_euid.load(), 0u) << "another thread of ours changed its credentials";
  EXPECT_EQ(::getgid(), 0u);
  EXPECT_EQ(::getgroups(0, nullptr), groups_before) << "our supplementary groups changed";
}

// ---- exit codes and signals ------------------------------------------------------------

TEST(Spawner, GivesTheProgramsExitCode) {
  ExitStatus s = run_to_end(shell("exit 3"));

  EXPECT_TRUE(s.exited);
  EXPECT_EQ(s.code, 3);
  EXPECT_FALSE(s.success());
  EXPECT_EQ(s.describe(), "exited with status 3");
}

TEST(Spawner, GivesTheSignalThatKilledTheProgram) {
  ExitStatus s = run_to_end(shell("kill -TERM $$"));

  EXPECT_FALSE(s.exited);
  EXPECT_EQ(s.signal, SIGTERM);
  EXPECT_FALSE(s.timed_out);
  EXPECT_EQ(s.describe(), "killed by signal 15 (SIGTERM)");
}

TEST(Spawner, ForkFunctionExitsWithWhatTheFunctionReturns) {
  Child child = Child::fork_function([] { return 7; });

  EXPECT_FALSE(child.started().has_value());
  EXPECT_EQ(child.wait().code, 7);
}

TEST(Spawner, ForkFunctionExitsWithOneWhenAnExceptionEscapes) {
  Child child = Child::fork_function([]() -> int { throw std::runtime_error("boom"); });

  EXPECT_EQ(child.wait().code, 1);
}

TEST(Spawner, DestroyingAChildNeverWaitedForKillsAndReapsIt) {
  pid_t pid;
  {
    Child child = Child::spawn(shell("exec sleep 60"));
    ASSERT_FALSE(child.started().has_value());
    pid = child.pid();
  }
  // Reaped: not even a zombie is left.
  EXPECT_NE(::kill(pid, 0), 0);
  EXPECT_EQ(errno, ESRCH);
}

TEST(Spawner, WaitAtMostGivesNothingWhileTheChildRunsAndItsStatusOnceItExited) {
  int go[2];
  ASSERT_EQ(::pipe2(go, O_CLOEXEC), 0);
  Command cmd = shell("read line; exit 4");
  cmd.in = Stream::fd(go[0]);
  Child child = Child::spawn(cmd);
  ::close(go[0]);

  const auto running = child.wait_at_most(milliseconds(50));
  ::close(go[1]);  // end of file: `read` returns, the shell exits
  const auto ended = child.wait_at_most(std::chrono::seconds(10));

  EXPECT_FALSE(running.has_value());
  ASSERT_TRUE(ended.has_value());
  EXPECT_EQ(ended->code, 4);
}

TEST(Spawner, AReleasedChildIsLeftToTheCaller) {
  pid_t pid;
  {
    Child child = Child::spawn(shell("exit 5"));
    pid = child.release();
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid) << "reaped by the Child";
  EXPECT_EQ(to_exit_status(status).code, 5) << "killed by the Child";
}

// ---- deadlines -------------------------------------------------------------------------

TEST(Spawner, DeadlineTerminatesAProgramStillRunning) {
  Command cmd = shell("exec sleep 30");
  cmd.timeout = milliseconds(100);
  const auto start = Clock::now();

  ExitStatus s = run_to_end(cmd);

  EXPECT_LT(Clock::now() - start, std::chrono::seconds(5));
  EXPECT_TRUE(s.timed_out);
  EXPECT_EQ(s.signal, SIGTERM);
  EXPECT_EQ(s.describe(), "killed by signal 15 (SIGTERM) after its deadline");
}

TEST(Spawner, DeadlineKillsAProgramThatIgnoresSIGTERMAfterTheGrace) {
  // An ignored signal survives execve: sleep ignores SIGTERM.
  Command cmd = shell("trap '' TERM; exec sleep 30");
  cmd.timeout = milliseconds(100);
  cmd.kill_grace = milliseconds(200);
  cmd.out = Stream::pipe();  // the deadline holds while output is relayed too
  const auto start = Clock::now();

  ExitStatus s = run_to_end(cmd);

  const auto took = Clock::now() - start;
  EXPECT_GE(took, milliseconds(300));
  EXPECT_LT(took, std::chrono::seconds(5));
  EXPECT_TRUE(s.timed_out);
  EXPECT_EQ(s.signal, SIGKILL);
}

TEST(Spawner, ProgramEndingBeforeItsDeadlineIsNotTimedOut) {
  Command cmd = shell("exit 0");
  cmd.timeout = std::chrono::seconds(30);

  ExitStatus s = run_to_end(cmd);

  EXPECT_TRUE(s.success());
  EXPECT_FALSE(s.timed_out);
}

// ---- descriptors -----------------------------------------------------------------------

// A descriptor of ours without FD_CLOEXEC: a child would inherit it unless closed.
class SpawnerDescriptors : public ::testing::Test {
 protected:
  void SetUp() override {
    fd_ = ::open("/dev/null", O_RDONLY);  // no O_CLOEXEC, on purpose
    ASSERT_GE(fd_, 0);
  }
  void TearDown() override { ::close(fd_); }
  // What the child's shell sees at descriptor number n.
  std::string in_child(Command cmd, int n) {
    cmd.argv = {"/bin/sh", "-c", "if test -e /proc/self/fd/" + std::to_string(n) + "; then echo open; else echo closed; fi"};
    return run_capturing(cmd).out;
  }
  int fd_ = -1;
};

TEST_F(SpawnerDescriptors, OurDescriptorsAreClosedInTheChild) {
  EXPECT_EQ(in_child(Command{}, fd_), "closed\n");
}

TEST_F(SpawnerDescriptors, OurDescriptorsStayOpenWhenTheCallerKeepsThem) {
  Command cmd;
  cmd.close_other_fds = false;

  EXPECT_EQ(in_child(cmd, fd_), "open\n");
}

TEST_F(SpawnerDescriptors, APassedDescriptorIsOpenAtTheNumberAsked) {
  Command cmd;
  cmd.pass_fds = {{fd_, 7}};

  EXPECT_EQ(in_child(cmd, 7), "open\n");
  EXPECT_EQ(in_child(cmd, fd_), fd_ == 7 ? "open\n" : "closed\n");
}

TEST(Spawner, TheProgramHasNoDescriptorOfTheSpawners) {
  // Descriptors 0-2 are the only ones the program has.
  Command cmd = shell("ls /proc/self/fd | wc -l");
  cmd.in = Stream::null();
  Output o = run_capturing(cmd);
  // ls's own directory descriptor makes four.
  EXPECT_EQ(o.out, "4\n") << o.err;
}

TEST(Spawner, StdinFromDevNullReadsNothing) {
  Command cmd;
  cmd.argv = {"/bin/cat"};
  cmd.in = Stream::null();

  Output o = run_capturing(cmd);

  EXPECT_TRUE(o.status.success());
  EXPECT_EQ(o.out, "");
}

// ---- signals in the child --------------------------------------------------------------

TEST(Spawner, AnIgnoredSignalGetsItsDefaultActionInTheChild) {
  struct sigaction ign {}, old {};
  ign.sa_handler = SIG_IGN;
  ::sigaction(SIGUSR1, &ign, &old);
  Command all_default = shell("kill -USR1 $$; echo survived");
  Command keep_ignored = all_default;
  keep_ignored.default_signals = std::vector<int>{SIGPIPE};

  Output reset = run_capturing(all_default);
  Output kept = run_capturing(keep_ignored);
  ::sigaction(SIGUSR1, &old, nullptr);

  EXPECT_EQ(reset.status.signal, SIGUSR1);
  EXPECT_EQ(kept.out, "survived\n");
}

TEST(Spawner, TheProgramStartsWithNoSignalBlocked) {
  sigset_t term, old;
  ::sigemptyset(&term);
  ::sigaddset(&term, SIGTERM);
  ::sigprocmask(SIG_BLOCK, &term, &old);

  ExitStatus s = run_to_end(shell("kill -TERM $$; echo survived"));
  ::sigprocmask(SIG_SETMASK, &old, nullptr);

  EXPECT_EQ(s.signal, SIGTERM);
}

// ---- output ----------------------------------------------------------------------------

TEST(Spawner, PipedStreamsArriveApart) {
  Output o = run_capturing(shell("echo out; echo err >&2; exit 3"));

  EXPECT_EQ(o.out, "out\n");
  EXPECT_EQ(o.err, "err\n");
  EXPECT_EQ(o.status.code, 3);
}

TEST(Spawner, RunProgramCapturesStdoutAndStderrInOrder) {
  std::string out;
  ExitStatus s = run_program({"/bin/sh", "-c", "echo one; echo two >&2; echo three"}, {}, &out);

  EXPECT_EQ(s.code, 0);
  EXPECT_EQ(out, "one\ntwo\nthree\n");
}

TEST(Spawner, RunProgramGivesExactlyTheEnvironment) {
  std::string out;
  run_program({"/usr/bin/env"}, {"ONLY=this"}, &out);

  EXPECT_EQ(out, "ONLY=this\n");
}

TEST(Spawner, RunProgramRefusesARelativePath) {
  try {
    run_program({"sh", "-c", "true"}, {});
    FAIL() << "searched PATH";
  } catch (const SystemError& e) {
    EXPECT_EQ(e.code().value(), EINVAL);
  }
}

TEST(Spawner, SinkHearsEndOfFileOfEachStream) {
  Command cmd = shell("printf partial; printf half >&2");
  cmd.out = Stream::pipe();
  cmd.err = Stream::pipe();
  std::vector<std::string> events;

  run_to_end(cmd, [&](int stream, std::string_view data) {
    events.push_back(std::to_string(stream) + ":" + (data.empty() ? "EOF" : std::string(data)));
  });

  EXPECT_EQ(std::count(events.begin(), events.end(), "1:EOF"), 1);
  EXPECT_EQ(std::count(events.begin(), events.end(), "2:EOF"), 1);
  EXPECT_EQ(std::count(events.begin(), events.end(), "1:partial"), 1);
  EXPECT_EQ(std::count(events.begin(), events.end(), "2:half"), 1);
}

TEST(Spawner, WithADrainLimitOutputHeldByADescendantDoesNotHoldUsUp) {
  // The background sleep keeps the pipe open long after the program exited.
  Command cmd = shell("echo before; sleep 20 & exit 0");
  cmd.drain_limit = milliseconds(300);
  const auto start = Clock::now();

  Output o = run_capturing(cmd);

  EXPECT_LT(Clock::now() - start, std::chrono::seconds(5));
  EXPECT_EQ(o.out, "before\n");
  EXPECT_TRUE(o.status.success());
}

TEST(Spawner, WithADrainLimitOutputWrittenJustBeforeTheExitIsKept) {
  Command cmd = shell("echo one; echo two >&2; echo three");
  cmd.drain_limit = milliseconds(300);

  Output o = run_capturing(cmd);

  EXPECT_EQ(o.out, "one\nthree\n");
  EXPECT_EQ(o.err, "two\n");
}

}  // namespace
}  // namespace schroot::sys
