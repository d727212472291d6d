// schroot --doctor against the schroot under test: one line per finding, located
// (file:line, the hook, the record), and an exit status a script can use (0 nothing
// wrong, 2 warnings only, 1 errors). It only looks: the tree is the same afterwards.
#include <sys/stat.h>

#include <filesystem>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "test/privileged/harness.h"

using schroot::test::RunResult;
using schroot::test::TestRoot;

namespace {

std::vector<std::string> lines_starting(const std::string& out, const std::string& prefix) {
  std::vector<std::string> found;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);)
    if (line.rfind(prefix, 0) == 0) found.push_back(line);
  return found;
}

std::string joined(const std::vector<std::string>& lines) {
  std::string s;
  for (const auto& l : lines) s += l + "\n";
  return s;
}

// Every path below `dir` with its size and mode: what a read-only action must not change.
std::set<std::string> snapshot_of(const std::string& dir) {
  std::set<std::string> seen;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    struct stat st;
    if (::lstat(e.path().c_str(), &st) != 0) continue;
    seen.insert(e.path().string() + " " + std::to_string(st.st_mode) + " " +
                (S_ISDIR(st.st_mode) ? "" : std::to_string(st.st_size)));
  }
  return seen;
}

class Doctor : public ::testing::Test {
 protected:
  void SetUp() override { tree_ = root_.make_tree("bb"); }
  void good_config() {
    root_.write_config("[bb]\ntype=directory\ndirectory=" + tree_ + "\nprofile=minimal\nusers=root\n");
  }
  TestRoot root_;
  std::string tree_;
};

TEST_F(Doctor, GoodConfigurationIsOkAndExitsZero) {
  good_config();

  const RunResult r = root_.schroot({"--doctor"});

  EXPECT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_TRUE(lines_starting(r.out, "error:").empty()) << r.out;
  EXPECT_TRUE(lines_starting(r.out, "warning:").empty()) << r.out;
  EXPECT_NE(r.out.find("ok: " + root_.sysconf() + ": 1 chroot(s) defined"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("ok: openat2"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("ok: new mount API"), std::string::npos) << r.out;
}

TEST_F(Doctor, BrokenConfigurationIsAnErrorNamingFileAndLine) {
  root_.write_config("[bb]\ntype=directory\ndirectory=srv/bb\n");

  const RunResult r = root_.schroot({"--doctor"});

  EXPECT_EQ(r.status, 1) << r.out << r.err;
  const auto errors = lines_starting(r.out, "error: " + root_.sysconf() + "/chroot.conf:3: [bb] directory");
  EXPECT_EQ(errors.size(), 1u) << r.out;
  // The rest of the host is still checked.
  EXPECT_NE(r.out.find("ok: openat2"), std::string::npos) << r.out;
}

TEST_F(Doctor, QuietShowsOnlyProblems) {
  root_.write_config("[bb]\ntype=directory\ndirectory=srv/bb\n");

  const RunResult r = root_.schroot({"--doctor", "-q"});

  EXPECT_EQ(r.status, 1);
  EXPECT_TRUE(lines_starting(r.out, "ok:").empty()) << r.out;
  EXPECT_TRUE(lines_starting(r.out, "note:").empty()) << r.out;
  EXPECT_EQ(lines_starting(r.out, "error:").size(), 1u) << r.out;
}

TEST_F(Doctor, WorldWritableHookIsAWarningAndExitsTwo) {
  good_config();
  root_.add_hook("50writable", "#!/bin/sh\nexit 0\n");
  ASSERT_EQ(::chmod((root_.sysconf() + "/setup.d/50writable").c_str(), 0777), 0);

  const RunResult r = root_.schroot({"--doctor"});

  EXPECT_EQ(r.status, 2) << r.out << r.err;
  const auto warnings = lines_starting(r.out, "warning: " + root_.sysconf() + "/setup.d/50writable: writable by everyone");
  EXPECT_EQ(warnings.size(), 1u) << r.out;
  EXPECT_EQ(lines_starting(r.out, "warning:").size(), 1u) << r.out;
}

TEST_F(Doctor, GroupWritableConfigurationFileIsAWarning) {
  root_.write_file(root_.sysconf() + "/chroot.d/bb", "[bb]\ntype=directory\ndirectory=" + tree_ + "\n", 0664);

  const RunResult r = root_.schroot({"--doctor"});

  EXPECT_EQ(r.status, 2) << r.out << r.err;
  EXPECT_EQ(lines_starting(r.out, "warning: " + root_.sysconf() + "/chroot.d/bb: writable by group 0").size(), 1u)
      << r.out;
}

TEST_F(Doctor, HookNameRunPartsSkipsIsANote) {
  good_config();
  root_.add_hook("50setup.sh", "#!/bin/sh\nexit 0\n");

  const RunResult r = root_.schroot({"--doctor"});

  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(lines_starting(r.out, "note: " + root_.sysconf() + "/setup.d/50setup.sh: never run").size(), 1u) << r.out;
}

TEST_F(Doctor, SessionKeyfileOfSchroot16IsAWarning) {
  good_config();
  root_.write_file(root_.state() + "/session/bb-1234", "[bb-1234]\ntype=directory\ndirectory=" + tree_ +
                                                           "\noriginal-name=bb\nselected-name=bb\n");

  const RunResult r = root_.schroot({"--doctor"});

  EXPECT_EQ(r.status, 2) << r.out << r.err;
  const auto warnings = lines_starting(r.out, "warning: " + root_.state() + "/session/bb-1234: a session begun by schroot 1.6");
  EXPECT_EQ(warnings.size(), 1u) << r.out;
}

TEST_F(Doctor, JsonRecordsGetADowngradeNoteOnly) {
  good_config();
  const RunResult begun = root_.schroot({"-b", "-c", "bb", "-n", "s1"});
  ASSERT_EQ(begun.status, 0) << begun.err;

  const RunResult r = root_.schroot({"--doctor"});
  root_.schroot({"-e", "-c", "s1"});

  EXPECT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_EQ(lines_starting(r.out, "note: " + root_.state() + "/session: 1 session(s) recorded as JSON").size(), 1u)
      << r.out;
}

TEST_F(Doctor, ChangesNothing) {
  good_config();
  root_.add_hook("50writable", "#!/bin/sh\nexit 0\n");
  const std::set<std::string> before = snapshot_of(root_.root());

  const RunResult r = root_.schroot({"--doctor"});

  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(snapshot_of(root_.root()), before);
  EXPECT_TRUE(root_.mounts_below_root().empty());
}

TEST_F(Doctor, RefusesAChrootSelection) {
  good_config();

  const RunResult r = root_.schroot({"--doctor", "-c", "bb"});

  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("--doctor checks every chroot"), std::string::npos) << r.err;
}

// As an unprivileged user: the configuration is read as every schroot run reads it (a
// chroot.d file only root may read is no error), the rest with the user's own ids.
TEST_F(Doctor, UnprivilegedUserGetsTheConfigurationCheckAndNotesForTheRest) {
  good_config();
  root_.write_file(root_.sysconf() + "/chroot.d/private", "[private]\ntype=directory\ndirectory=" + tree_ + "\n",
                   0600);
  schroot::test::SetuidCopy binary;
  schroot::test::TestUser nobody;

  const RunResult r = schroot::test::run_program(binary.path(), {"--doctor"}, {}, "", [&] { nobody.become(); });

  EXPECT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("ok: " + root_.sysconf() + ": 2 chroot(s) defined"), std::string::npos) << r.out;
  EXPECT_EQ(lines_starting(r.out, "note: running as uid " + std::to_string(nobody.uid)).size(), 1u) << r.out;
  EXPECT_NE(r.out.find("note: device-mapper: not checked"), std::string::npos) << r.out;
  EXPECT_TRUE(lines_starting(r.out, "error:").empty()) << joined(lines_starting(r.out, "error:"));
}

}  // namespace
