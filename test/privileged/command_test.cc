// The user's command, as run_in_chroot starts it through the spawner: the steps its
// child takes inside the chroot (shell and directory fallbacks, PATH search), the
// reasons it gives when one fails, what it inherits, and schroot's signal handling
// while it runs (schroot(1), "Signals").
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "src/sys/command.h"
#include "test/privileged/harness.h"

using schroot::test::path_exists;
using schroot::test::RunResult;
using schroot::test::TestRoot;

namespace {

using Clock = std::chrono::steady_clock;

class Command : public ::testing::Test {
 protected:
  void SetUp() override {
    tree_ = root_.make_tree("bb");
    root_.write_config("[bb]\ntype=directory\ndirectory=" + tree_ + "\nprofile=minimal\n");
    // A directory of the host that does not exist inside the chroot.
    host_only_dir_ = root_.sysconf();
    ASSERT_FALSE(path_exists(tree_ + host_only_dir_));
  }
  // schroot run from `cwd`.
  RunResult schroot_in(const std::string& cwd, const std::vector<std::string>& args, const std::string& stdin_text = "") {
    return schroot::test::run_program(SCHROOT_UNDER_TEST, args, {}, stdin_text, [&cwd] {
      if (::chdir(cwd.c_str()) != 0) ::_exit(98);
    });
  }
  // Starts schroot in the background with its output to pipes, bounded by a deadline.
  schroot::sys::Child start(const std::vector<std::string>& args) {
    schroot::sys::Command cmd = schroot::test::program_command(SCHROOT_UNDER_TEST, args, {});
    cmd.in = schroot::sys::Stream::null();
    cmd.out = schroot::sys::Stream::pipe();
    cmd.err = schroot::sys::Stream::pipe();
    cmd.timeout = std::chrono::seconds(30);
    return schroot::sys::Child::spawn(cmd);
  }
  // Waits (at most 20 s) for the command to create tree_/tmp/NAME.
  bool wait_for_file(const std::string& name) {
    const auto give_up = Clock::now() + std::chrono::seconds(20);
    while (!path_exists(tree_ + "/tmp/" + name)) {
      if (Clock::now() > give_up) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return true;
  }
  TestRoot root_;
  std::string tree_, host_only_dir_;
};

// ---- directories --------------------------------------------------------------------

TEST_F(Command, LoginShellFallsBackToHomeWhenTheCallersDirectoryIsMissing) {
  auto r = schroot_in(host_only_dir_, {"-c", "bb"}, "pwd\n");

  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "/root\n");
  EXPECT_NE(r.err.find("W: Falling back to directory ‘/root’"), std::string::npos) << r.err;
}

TEST_F(Command, CommandFailsWhenTheCallersDirectoryIsMissingAndNamesIt) {
  auto r = schroot_in(host_only_dir_, {"-c", "bb", "--", "true"});

  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("E: Failed to change to directory ‘" + host_only_dir_ + "’: No such file or directory\n"
                       "I: The directory does not exist inside the chroot.  Use the --directory option to run the "
                       "command in a different directory.\n"),
            std::string::npos)
      << r.err;
}

TEST_F(Command, MissingDirectoryOptionFailsWithoutFallingBack) {
  auto r = schroot_in("/", {"-c", "bb", "-d", "/nowhere"}, "pwd\n");

  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("E: Failed to change to directory ‘/nowhere’: No such file or directory"), std::string::npos)
      << r.err;
}

// ---- shells and programs ----------------------------------------------------------------

TEST_F(Command, LoginShellFallsBackToAShellThatExistsAndSaysSo) {
  auto r = schroot_in("/", {"-c", "bb", "-s", "/bin/no-such-shell"}, "echo $0 $SHELL\n");

  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "-sh /bin/sh\n");
  EXPECT_NE(r.err.find("W: Falling back to shell ‘/bin/sh’"), std::string::npos) << r.err;
}

TEST_F(Command, ProgramIsFoundOnThePathInsideTheChroot) {
  // Only the chroot has /bin/busybox; the path search happens inside it.
  auto r = schroot_in("/", {"-c", "bb", "-d", "/", "--", "busybox", "echo", "found"});

  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "found\n");
}

TEST_F(Command, ProgramNotOnThePathIsNamedInTheError) {
  auto r = schroot_in("/", {"-c", "bb", "-d", "/", "--", "no-such-program"});

  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("E: Failed to execute “no-such-program”: No such file or directory"), std::string::npos)
      << r.err;
}

TEST_F(Command, TheChildsErrorsAreShownEvenWhenQuietAndItsWarningsAreNot) {
  auto failed = schroot_in("/", {"-q", "-c", "bb", "-d", "/", "--", "/nonexistent"});
  auto fell_back = schroot_in("/", {"-q", "-c", "bb", "-s", "/bin/no-such-shell"}, "true\n");

  EXPECT_EQ(failed.status, 1);
  EXPECT_NE(failed.err.find("E: Failed to execute “/nonexistent”: No such file or directory"), std::string::npos)
      << failed.err;
  EXPECT_EQ(fell_back.status, 0) << fell_back.err;
  EXPECT_EQ(fell_back.err.find("Falling back"), std::string::npos) << fell_back.err;
}

TEST_F(Command, CommandKeepsTheDescriptorsItsCallerGaveSchroot) {
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  schroot::sys::Command cmd = schroot::test::program_command(
      SCHROOT_UNDER_TEST, {"-c", "bb", "-d", "/", "--", "sh", "-c", "echo through-fd-5 >&5"}, {});
  cmd.pass_fds = {{p[1], 5}};
  auto status = schroot::sys::run_to_end(cmd);
  ::close(p[1]);
  char buf[64] = {};
  const ssize_t n = ::read(p[0], buf, sizeof buf - 1);
  ::close(p[0]);

  EXPECT_TRUE(status.success()) << status.describe();
  EXPECT_EQ(std::string(buf, n > 0 ? static_cast<size_t>(n) : 0), "through-fd-5\n");
}

// ---- signals while the command runs ---------------------------------------------------

TEST_F(Command, SigintToSchrootLeavesTheCommandToTheTerminal) {
  auto child = start({"-c", "bb", "-d", "/", "--", "sh", "-c", "touch /tmp/ready; sleep 1; exit 6"});
  ASSERT_TRUE(wait_for_file("ready"));

  ASSERT_TRUE(child.send_signal(SIGINT));
  const auto status = child.wait();

  EXPECT_TRUE(status.exited) << status.describe();
  EXPECT_EQ(status.code, 6) << "schroot ignores SIGINT and gives the command's status";
}

TEST_F(Command, SighupToSchrootIsPassedOnToTheCommand) {
  auto child = start({"-c", "bb", "-d", "/", "--", "sh", "-c",
                      "trap 'exit 9' HUP; touch /tmp/ready; while :; do sleep 0.05; done"});
  ASSERT_TRUE(wait_for_file("ready"));

  ASSERT_TRUE(child.send_signal(SIGHUP));
  const auto status = child.wait();

  EXPECT_TRUE(status.exited) << status.describe();
  EXPECT_EQ(status.code, 9) << "the command's HUP trap ran and schroot gave its status";
  EXPECT_TRUE(root_.records().empty());
}

}  // namespace
