// End-to-end sessions: the real binary, real mounts, in a private mount namespace.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include "test/privileged/harness.h"

using schroot::test::Background;
using schroot::test::kDeadline;
using schroot::test::kReadyThenWait;
using schroot::test::path_exists;
using schroot::test::read_text;
using schroot::test::TestRoot;
using schroot::test::trim;

namespace {

class Session : public ::testing::Test {
 protected:
  void SetUp() override {
    tree_ = root_.make_tree("bb");
    root_.write_config("[bb]\ntype=directory\ndirectory=" + tree_ +
                       "\nprofile=minimal\ndescription=busybox test\naliases=box\n");
  }
  void expect_no_leaks() {
    EXPECT_TRUE(root_.mounts_below_root().empty()) << ::testing::PrintToString(root_.mounts_below_root());
    EXPECT_TRUE(root_.records().empty()) << ::testing::PrintToString(root_.records());
    EXPECT_TRUE(root_.union_dirs().empty()) << ::testing::PrintToString(root_.union_dirs());
  }
  TestRoot root_;
  std::string tree_;
};

TEST_F(Session, AutomaticSessionPassesTheCommandsExitStatus) {
  auto r = root_.schroot({"-c", "bb", "--", "sh", "-c", "exit 7"});

  EXPECT_EQ(r.status, 7) << r.err;
  expect_no_leaks();
}

TEST_F(Session, AutomaticSessionRunsInTheChrootWithProcMounted) {
  auto r = root_.schroot({"-c", "box", "-d", "/", "--", "sh", "-c", "test -e /proc/self/stat && echo inside"});

  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(trim(r.out), "inside");
  expect_no_leaks();
}

TEST_F(Session, CommandKilledBySignalGivesExitOneAndSaysWhy) {
  auto r = root_.schroot({"-c", "bb", "-d", "/", "--", "sh", "-c", "kill -TERM $$"});

  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("Child terminated by signal"), std::string::npos) << r.err;
  expect_no_leaks();
}

TEST_F(Session, CommandThatCannotBeExecutedGivesExitOne) {
  auto r = root_.schroot({"-c", "bb", "-d", "/", "--", "/nonexistent"});

  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("Failed to execute"), std::string::npos) << r.err;
  expect_no_leaks();
}

TEST_F(Session, BeginRunEndFromThreeProcesses) {
  auto b = root_.schroot({"-c", "bb", "-b", "-n", "s1"});
  ASSERT_EQ(b.status, 0) << b.err;
  ASSERT_EQ(trim(b.out), "s1");
  EXPECT_TRUE(path_exists(root_.run_dir() + "/mount/s1/bin/busybox"));
  EXPECT_EQ(root_.records().size(), 1u);

  auto r = root_.schroot({"-c", "s1", "-r", "-d", "/", "--", "sh", "-c", "echo ran > /tmp/mark; exit 3"});
  EXPECT_EQ(r.status, 3) << r.err;
  EXPECT_EQ(read_text(tree_ + "/tmp/mark"), "ran\n");

  auto e = root_.schroot({"-c", "s1", "-e"});
  EXPECT_EQ(e.status, 0) << e.err;
  expect_no_leaks();
}

// -r and -e find a session by one stat of its record (not a listing of all of them):
// only a valid session name is looked up, so a path or a writer's temporary in the
// session directory never reads as a session.
TEST_F(Session, RunAndEndFindOnlyASessionByItsName) {
  ASSERT_TRUE(succeeded(root_.schroot({"-c", "bb", "-b", "-n", "s1"})));
  root_.write_file(root_.state() + "/session/.schroot-tmp-0123", "{}");
  for (const std::string name : {"nosuch", "session:nosuch", ".schroot-tmp-0123", "../session/s1", "./s1", "s1/"}) {
    auto r = root_.schroot({"-c", name, "-r", "--", "true"});
    EXPECT_EQ(r.status, 1) << name;
    const std::string shown = name.rfind("session:", 0) == 0 ? name.substr(8) : name;
    EXPECT_NE(r.err.find(shown + ": Session not found"), std::string::npos) << name << ": " << r.err;
    EXPECT_EQ(root_.schroot({"-c", name, "-e"}).status, 1) << name;
  }
  EXPECT_TRUE(path_exists(root_.state() + "/session/s1")) << "none of them ended s1";
  EXPECT_TRUE(succeeded(root_.schroot({"-c", "session:s1", "-r", "--", "true"})));
  EXPECT_TRUE(succeeded(root_.schroot({"-c", "s1", "-e"})));
  ::unlink((root_.state() + "/session/.schroot-tmp-0123").c_str());
  expect_no_leaks();
}

TEST_F(Session, DefaultSessionIdIsChrootNameAndUuid) {
  auto b = root_.schroot({"-c", "bb", "-b"});
  ASSERT_EQ(b.status, 0) << b.err;
  std::string id = trim(b.out);

  EXPECT_EQ(id.rfind("bb-", 0), 0u) << id;
  EXPECT_EQ(id.size(), 3u + 36u) << id;
  EXPECT_TRUE(succeeded(root_.schroot({"-c", id, "-e"})));
  expect_no_leaks();
}

TEST_F(Session, RunAndEndUseOnlyTheRecordEvenAfterChrootConfChanged) {
  ASSERT_TRUE(succeeded(root_.schroot({"-c", "bb", "-b", "-n", "s2"})));
  // Broken, not just empty (an empty file is only a warning): a verb that reads it fails.
  root_.write_config("[bb]\ntype=directory\ndirectory=srv/relative\n");
  auto begin = root_.schroot({"-c", "bb", "--", "true"});
  ASSERT_EQ(begin.status, 1) << "chroot.conf is not broken";
  ASSERT_NE(begin.err.find("chroot.conf"), std::string::npos) << begin.err;

  auto r = root_.schroot({"-c", "s2", "-r", "-d", "/", "--", "cat", "/etc/debian_chroot"});
  auto e = root_.schroot({"-c", "s2", "-e"});

  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(trim(r.out), "bb") << "the command ran in the session";
  EXPECT_EQ(e.status, 0) << e.err;
  expect_no_leaks();
}

TEST_F(Session, ListAllSessionsShowsSessionNames) {
  ASSERT_TRUE(succeeded(root_.schroot({"-c", "bb", "-b", "-n", "s3"})));

  auto l = root_.schroot({"--list", "--all-sessions"});

  EXPECT_EQ(trim(l.out), "session:s3") << l.err;
  EXPECT_TRUE(succeeded(root_.schroot({"-c", "s3", "-e"})));
}

TEST_F(Session, InfoOfASessionHasSchrootsSessionBlock) {
  ASSERT_TRUE(succeeded(root_.schroot({"-c", "box", "-b", "-n", "s4"})));

  auto i = root_.schroot({"--info", "-c", "session:s4"});

  EXPECT_EQ(i.status, 0) << i.err;
  EXPECT_NE(i.out.find("─── Session ───"), std::string::npos) << i.out;
  EXPECT_NE(i.out.find("s4"), std::string::npos) << i.out;
  EXPECT_NE(i.out.find(root_.run_dir() + "/mount/s4"), std::string::npos) << i.out;
  EXPECT_TRUE(succeeded(root_.schroot({"-c", "s4", "-e"})));
}

TEST_F(Session, EnvironmentHasSchrootVariablesAndNothingLeaks) {
  auto r = root_.schroot({"-c", "box", "-d", "/", "--", "env"}, {"SECRET_FROM_CALLER=1", "LANG=C.UTF-8"});

  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("SCHROOT_CHROOT_NAME=bb"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("SCHROOT_ALIAS_NAME=box"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("SCHROOT_SESSION_ID=bb-"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("SECRET_FROM_CALLER"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("LANG="), std::string::npos) << r.out;
}

TEST_F(Session, PreserveEnvironmentKeepsCallerVariablesButFiltersLdPreload) {
  auto r = root_.schroot({"-c", "bb", "-p", "-d", "/", "--", "env"}, {"KEEP_ME=1", "LD_PRELOAD=/x.so"});

  EXPECT_NE(r.out.find("KEEP_ME=1"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("LD_PRELOAD"), std::string::npos) << r.out;
}

TEST_F(Session, FailingHookRollsBackTheWholeSession) {
  root_.add_hook("15fail", "#!/bin/sh\n[ \"$1\" = setup-start ] && exit 3\nexit 0\n");

  auto b = root_.schroot({"-c", "bb", "-b", "-n", "s5"});

  EXPECT_EQ(b.status, 1);
  EXPECT_NE(b.err.find("15fail"), std::string::npos) << b.err;
  expect_no_leaks();
}

TEST_F(Session, HooksRunInOrderBetweenCoreStagesAndInReverseAtStop) {
  const std::string log = root_.root() + "/hook.log";
  for (const char* name : {"05first", "15second", "60third"})
    root_.add_hook(name, std::string("#!/bin/sh\necho \"") + name + " $1 $2 $(test -e \"$CHROOT_PATH/proc/self\" && echo proc)\" >> " + log + "\n");

  ASSERT_TRUE(succeeded(root_.schroot({"-c", "bb", "-b", "-n", "s6"})));
  ASSERT_TRUE(succeeded(root_.schroot({"-c", "s6", "-e"})));

  EXPECT_EQ(read_text(log),
            "05first setup-start ok \n15second setup-start ok \n60third setup-start ok proc\n"
            "60third setup-stop ok proc\n15second setup-stop ok \n05first setup-stop ok \n");
  expect_no_leaks();
}

TEST_F(Session, HookEnvironmentDescribesTheSession) {
  const std::string out = root_.root() + "/env.txt";
  root_.add_hook("30env", "#!/bin/sh\n[ \"$1\" = setup-start ] && env > " + out + "\nexit 0\n");

  ASSERT_TRUE(succeeded(root_.schroot({"-c", "box", "-b", "-n", "s7"})));
  std::string env = read_text(out);
  root_.schroot({"-c", "s7", "-e"});

  EXPECT_NE(env.find("CHROOT_NAME=bb\n"), std::string::npos) << env;
  EXPECT_NE(env.find("SESSION_ID=s7\n"), std::string::npos) << env;
  EXPECT_NE(env.find("CHROOT_ALIAS=box\n"), std::string::npos) << env;
  EXPECT_NE(env.find("CHROOT_MOUNT_LOCATION=" + root_.run_dir() + "/mount/s7\n"), std::string::npos) << env;
  EXPECT_NE(env.find("SETUP_FSTAB=minimal/fstab\n"), std::string::npos) << env;
}

TEST_F(Session, EndWhileRunIsActiveWaitsThenFailsNamingTheSession) {
  ASSERT_TRUE(succeeded(root_.schroot({"-c", "bb", "-b", "-n", "s8"})));
  Background runner(SCHROOT_UNDER_TEST, {"-c", "s8", "-r", "-d", "/", "--", "sh", "-c", kReadyThenWait});
  ASSERT_EQ(runner.read_line(kDeadline), "ready") << runner.err();

  auto e = root_.schroot({"-c", "s8", "-e", "--session-lock-timeout", "1"});

  EXPECT_EQ(e.status, 1);
  EXPECT_NE(e.err.find("session s8"), std::string::npos) << e.err;
  EXPECT_TRUE(path_exists(root_.run_dir() + "/mount/s8/bin/busybox"));
  // --force kills the command that holds the session: its schroot ends too.
  auto f = root_.schroot({"-c", "s8", "-e", "-f"});
  EXPECT_EQ(f.status, 0) << f.err;
  EXPECT_NE(runner.wait(kDeadline), -1) << "the command survived -e --force";
  expect_no_leaks();
}

TEST_F(Session, StageFailureRollsBackForEachStage) {
  struct Case {
    const char* what;
    std::string fstab, copyfiles, nss;
  };
  const Case cases[] = {
      {"fstab", "nosuchfs /proc nosuchfs defaults 0 0\n", "", ""},
      {"copyfiles", "", "/nonexistent/file\n", ""},
      {"nssdatabases", "", "", "nosuchdb\n"},
  };
  for (const auto& c : cases) {
    root_.write_profile("broken", "proc /proc proc defaults 0 0\n" + c.fstab, c.copyfiles, c.nss);
    root_.write_config("[bb]\ntype=directory\ndirectory=" + tree_ + "\nprofile=broken\n");

    auto b = root_.schroot({"-c", "bb", "-b", "-n", "fail"});

    EXPECT_EQ(b.status, 1) << c.what;
    expect_no_leaks();
  }
}

TEST_F(Session, DebianChrootNamesTheChroot) {
  auto r = root_.schroot({"-c", "box", "-d", "/", "--", "cat", "/etc/debian_chroot"});

  EXPECT_EQ(trim(r.out), "bb") << r.err;
}

}  // namespace

namespace {

TEST_F(Session, RunJoinsARunningAutomaticSession) {
  Background automatic(SCHROOT_UNDER_TEST, {"-c", "bb", "-d", "/", "--", "sh", "-c",
                                            std::string("echo here > /tmp/auto-marker; ") + kReadyThenWait});
  ASSERT_EQ(automatic.read_line(kDeadline), "ready") << automatic.err();
  auto l = root_.schroot({"--list", "--all-sessions"});
  ASSERT_EQ(l.out.rfind("session:bb-", 0), 0u) << l.out << l.err;
  const std::string id = trim(l.out).substr(8);

  auto r = root_.schroot({"-c", id, "-r", "-d", "/", "--", "cat", "/tmp/auto-marker"});
  automatic.close_stdin();

  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(trim(r.out), "here");
  EXPECT_EQ(automatic.wait(kDeadline), 0) << automatic.err();
  expect_no_leaks();
}

}  // namespace
