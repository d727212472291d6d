// The installed profiles, access control of a setuid invocation, and the session
// lock seen from the command line.
#include <gtest/gtest.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <regex>

#include "test/privileged/harness.h"

using schroot::test::path_exists;
using schroot::test::read_text;
using schroot::test::RunResult;
using schroot::test::TestRoot;
using schroot::test::trim;

namespace {

std::string source_file(const std::string& rel) { return std::string(getenv("TEST_SRC_DIR")) + "/" + rel; }

class Profiles : public ::testing::TestWithParam<std::string> {
 protected:
  TestRoot root_;
};

// Every profile we ship works as shipped: its fstab, copyfiles and nssdatabases.
TEST_P(Profiles, ShippedProfileGivesAWorkingSessionAndLeavesNothing) {
  const std::string profile = GetParam();
  const std::string tree = root_.make_tree("bb");
  std::string files[3];
  const char* names[3] = {"fstab", "copyfiles", "nssdatabases"};
  for (int i = 0; i < 3; ++i) files[i] = read_text(source_file("etc/" + profile + "/" + names[i]));
  // The sbuild profiles bind the host's sbuild build directory; point it at a
  // scratch directory instead of touching the host.
  files[0] = std::regex_replace(files[0], std::regex("/var/lib/sbuild/build"), root_.root() + "/sbuild-build");
  mkdir((root_.root() + "/sbuild-build").c_str(), 0755);
  root_.write_profile(profile, files[0], files[1], files[2]);
  root_.write_config("[bb]\ntype=directory\ndirectory=" + tree + "\nprofile=" + profile + "\n");

  auto r = root_.schroot({"-c", "bb", "-d", "/", "--", "sh", "-c",
                          "test -e /proc/self/stat && grep -q '^root:' /etc/passwd && echo ok"});

  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(trim(r.out), "ok");
  EXPECT_TRUE(root_.mounts_below_root().empty()) << ::testing::PrintToString(root_.mounts_below_root());
  EXPECT_TRUE(root_.records().empty());
}

INSTANTIATE_TEST_SUITE_P(Shipped, Profiles, ::testing::Values("default", "minimal", "buildd", "sbuild"));

// A setuid copy of the binary run by an unprivileged user, as an installed schroot is.
class Access : public ::testing::Test {
 protected:
  void SetUp() override {
    struct passwd* pw = getpwnam("nobody");
    ASSERT_NE(pw, nullptr);
    nobody_ = pw->pw_uid;
    nogroup_ = pw->pw_gid;
    tree_ = root_.make_tree("bb");
  }
  void config(const std::string& access_lines) {
    root_.write_config("[bb]\ntype=directory\ndirectory=" + tree_ + "\nprofile=minimal\n" + access_lines);
  }
  // Runs the setuid binary as nobody; returns exit status and stderr.
  RunResult as_nobody(const std::vector<std::string>& args, const std::vector<std::string>& env = {}) {
    return schroot::test::run_program(binary_.path(), args, env, "", [this] {
      if (setgroups(0, nullptr) != 0 || setgid(nogroup_) != 0 || setuid(nobody_) != 0) _exit(99);
    });
  }
  TestRoot root_;
  // Its own copy, reachable by nobody from any checkout (the tree under TEST_ROOT may not be).
  schroot::test::SetuidCopy binary_;
  std::string tree_;
  uid_t nobody_ = 0;
  gid_t nogroup_ = 0;
};

TEST_F(Access, UserNotListedIsRefused) {
  config("users=root\n");

  auto r = as_nobody({"-c", "bb", "-d", "/", "--", "true"});

  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("Access not authorised"), std::string::npos) << r.err;
  EXPECT_TRUE(root_.records().empty());
}

TEST_F(Access, ListedUserRunsAsThemselves) {
  config("users=nobody\n");

  auto r = as_nobody({"-c", "bb", "-d", "/", "--", "id", "-u"});

  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(trim(r.out), std::to_string(nobody_));
  EXPECT_TRUE(root_.mounts_below_root().empty());
}

TEST_F(Access, ListedUserCannotBecomeRootWithoutRootUsers) {
  config("users=nobody\n");

  auto r = as_nobody({"-c", "bb", "-u", "root", "-d", "/", "--", "id", "-u"});

  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("authentication"), std::string::npos) << r.err;
}

TEST_F(Access, RootUsersMayRunAsRoot) {
  config("root-users=nobody\n");

  auto r = as_nobody({"-c", "bb", "-u", "root", "-d", "/", "--", "id", "-u"});

  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(trim(r.out), "0");
}

TEST_F(Access, PreservedEnvironmentReachesTheCommandWhenSetuid) {
  config("users=nobody\n");

  auto r = as_nobody({"-c", "bb", "-p", "-d", "/", "--", "env"}, {"KEEP_ME=1", "LD_LIBRARY_PATH=/evil"});

  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("KEEP_ME=1"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("LD_LIBRARY_PATH"), std::string::npos) << r.out;
}

TEST_F(Access, FailPointIsIgnoredWhenSetuid) {
  config("users=nobody\n");

  auto r = as_nobody({"-c", "bb", "-d", "/", "--", "true"}, {"SCHROOT_FAIL_AT=begin:10mount"});

  EXPECT_EQ(r.status, 0) << r.err;
}

TEST_F(Access, OnlyTheCreatorMayUseOrEndASession) {
  config("users=nobody\n");
  ASSERT_EQ(root_.schroot({"-c", "bb", "-b", "-n", "roots"}).status, 0);

  auto run = as_nobody({"-c", "roots", "-r", "-d", "/", "--", "true"});
  auto end = as_nobody({"-c", "roots", "-e"});

  EXPECT_EQ(run.status, 1);
  EXPECT_NE(run.err.find("Access not authorised"), std::string::npos) << run.err;
  EXPECT_EQ(end.status, 1);
  EXPECT_EQ(root_.schroot({"-c", "roots", "-e"}).status, 0);
}

TEST_F(Access, UsersOwnSessionLifecycle) {
  config("users=nobody\n");

  auto b = as_nobody({"-c", "bb", "-b", "-n", "mine"});
  auto r = as_nobody({"-c", "mine", "-r", "-d", "/", "--", "id", "-u"});
  auto e = as_nobody({"-c", "mine", "-e"});

  EXPECT_EQ(b.status, 0) << b.err;
  EXPECT_EQ(trim(r.out), std::to_string(nobody_)) << r.err;
  EXPECT_EQ(e.status, 0) << e.err;
  EXPECT_TRUE(root_.records().empty());
  EXPECT_TRUE(root_.mounts_below_root().empty());
}

class Locks : public ::testing::Test {
 protected:
  void SetUp() override {
    tree_ = root_.make_tree("bb");
    root_.write_config("[bb]\ntype=directory\ndirectory=" + tree_ + "\nprofile=minimal\n");
  }
  TestRoot root_;
  std::string tree_;
};

TEST_F(Locks, EndDuringBeginWaitsForTheBeginThenEnds) {
  root_.add_hook("15slow", "#!/bin/sh\n[ \"$1\" = setup-start ] && sleep 1\nexit 0\n");
  pid_t begin = fork();
  if (begin == 0) _exit(root_.schroot({"-c", "bb", "-b", "-n", "slow"}).status);
  while (root_.records().empty()) usleep(5000);

  auto e = root_.schroot({"-c", "slow", "-e"});
  int ws;
  waitpid(begin, &ws, 0);

  EXPECT_EQ(WEXITSTATUS(ws), 0) << "the begin was not torn down from under its builder";
  EXPECT_EQ(e.status, 0) << e.err;
  EXPECT_TRUE(root_.records().empty());
  EXPECT_TRUE(root_.mounts_below_root().empty());
}

TEST_F(Locks, TwoConcurrentEndsEndTheSessionOnce) {
  root_.add_hook("15slowstop", "#!/bin/sh\n[ \"$1\" = setup-stop ] && sleep 1\nexit 0\n");
  ASSERT_EQ(root_.schroot({"-c", "bb", "-b", "-n", "twice"}).status, 0);
  pid_t first = fork();
  if (first == 0) _exit(root_.schroot({"-c", "twice", "-e"}).status);
  usleep(200 * 1000);

  auto second = root_.schroot({"-c", "twice", "-e"});
  int ws;
  waitpid(first, &ws, 0);

  EXPECT_EQ(WEXITSTATUS(ws), 0);
  EXPECT_EQ(second.status, 1);
  EXPECT_NE(second.err.find("not found"), std::string::npos) << second.err;
  EXPECT_TRUE(root_.mounts_below_root().empty());
}

TEST_F(Locks, EndTimeoutNamesTheBusyPid) {
  ASSERT_EQ(root_.schroot({"-c", "bb", "-b", "-n", "busy"}).status, 0);
  pid_t runner = fork();
  if (runner == 0) _exit(root_.schroot({"-c", "busy", "-r", "-d", "/", "--", "sleep", "2"}).status);
  usleep(300 * 1000);

  auto e = root_.schroot({"-c", "busy", "-e", "--session-lock-timeout", "0"});

  EXPECT_EQ(e.status, 1);
  EXPECT_NE(e.err.find("pid"), std::string::npos) << e.err;
  int ws;
  waitpid(runner, &ws, 0);
  EXPECT_EQ(WEXITSTATUS(ws), 0) << "-r finished undisturbed";
  EXPECT_EQ(root_.schroot({"-c", "busy", "-e"}).status, 0);
}

}  // namespace

namespace {

TEST_F(Locks, InterruptDuringBeginRollsBackAndLeavesNothing) {
  root_.add_hook("15slow", "#!/bin/sh\n[ \"$1\" = setup-start ] && sleep 1\nexit 0\n");
  for (int sig : {SIGINT, SIGTERM}) {
    pid_t pid = fork();
    if (pid == 0) {
      // The child resets signals the test process ignores (ctest/make may).
      signal(SIGINT, SIG_DFL);
      signal(SIGTERM, SIG_DFL);
      schroot::test::exec_program(SCHROOT_UNDER_TEST, {"-c", "bb", "-d", "/", "--", "true"}, {});
    }
    while (root_.records().empty()) usleep(5000);
    usleep(200 * 1000);

    kill(pid, sig);
    int ws;
    waitpid(pid, &ws, 0);

    EXPECT_FALSE(WIFEXITED(ws) && WEXITSTATUS(ws) == 0) << "signal " << sig;
    EXPECT_TRUE(root_.records().empty()) << "signal " << sig;
    EXPECT_TRUE(root_.mounts_below_root().empty()) << "signal " << sig;
    EXPECT_TRUE(root_.union_dirs().empty()) << "signal " << sig;
  }
}

TEST_F(Locks, TerminatedCommandEndsTheSessionAndSaysWhy) {
  auto r = root_.schroot({"-c", "bb", "-d", "/", "--", "sh", "-c", "kill -TERM $PPID; sleep 5; exit 0"});

  EXPECT_EQ(r.status, 1);
  EXPECT_TRUE(root_.records().empty());
  EXPECT_TRUE(root_.mounts_below_root().empty());
}

}  // namespace
