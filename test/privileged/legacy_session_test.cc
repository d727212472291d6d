// Upgrading from Debian's schroot 1.6 with sessions open: the session files 1.6 wrote
// (test/data/legacy-sessions, written by the real 1.6.13) and the mounts it made are
// listed, run in and ended by this schroot, leaving nothing mounted and no file.
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "src/sys/fs.h"
#include "src/sys/mount.h"
#include "test/privileged/harness.h"

using schroot::test::loops_backed_by;
using schroot::test::path_exists;
using schroot::test::read_text;
using schroot::test::run;
using schroot::test::RunResult;
using schroot::test::TestRoot;
using schroot::test::trim;

namespace {

const std::string kFixtures = std::string(SCHROOT_SRC_DIR) + "/test/data/legacy-sessions/";

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  for (auto at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) s.replace(at, from.size(), to);
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

class LegacySession : public ::testing::Test {
 protected:
  void SetUp() override {
    tree_ = root_.make_tree("bb");
    // No chroot is defined any more: a session is ended from its file alone.
    root_.write_config("");
  }
  // The fixture's session file as 1.6 left it in the session directory.
  std::string install(const std::string& id) {
    std::string text = read_text(kFixtures + id);
    replace_all(text, "@ROOT@", root_.root());
    root_.write_file(file(id), text);
    return text;
  }
  std::string file(const std::string& id) const { return root_.state() + "/session/" + id; }
  std::string location(const std::string& id) const { return root_.run_dir() + "/mount/" + id; }
  std::string overlay(const std::string& id) const { return root_.state() + "/union/overlay/" + id; }
  std::string underlay(const std::string& id) const { return root_.state() + "/union/underlay/" + id; }

  // What 1.6's 10mount did at setup-start (mount(8), then the profile's fstab: /proc).
  void mount_directory_like_16(const std::string& id) {
    const std::string at = location(id);
    ASSERT_EQ(run("mkdir -p " + at + " && mount --bind " + tree_ + " " + at + " && mount -t proc proc " + at + "/proc"), 0);
  }
  void mount_union_like_16(const std::string& id) {
    const std::string at = location(id), under = underlay(id), over = overlay(id);
    ASSERT_EQ(run("mkdir -p " + at + " " + under + " " + over + "/upper " + over + "/work && mount --bind " + tree_ +
                  " " + under + " && mount -t overlay legacy-union -o lowerdir=" + under + ",upperdir=" + over +
                  "/upper,workdir=" + over + "/work " + at + " && mount -t proc proc " + at + "/proc"),
              0);
  }
  void mount_loopback_like_16(const std::string& id) {
    const std::string image = root_.root() + "/srv/img.ext2", at = location(id);
    ASSERT_EQ(run("mke2fs -q -F -t ext2 -d " + tree_ + " " + image + " 16M"), 0);
    ASSERT_EQ(run("mkdir -p " + at + " && mount -o loop " + image + " " + at + " && mount -t proc proc " + at + "/proc"), 0);
    struct stat st;
    ASSERT_EQ(::stat(image.c_str(), &st), 0);
    image_dev_ = st.st_dev;
    image_ino_ = st.st_ino;
    ASSERT_EQ(loops_backed_by(image_dev_, image_ino_).size(), 1u);
  }
  void expect_nothing_left() {
    EXPECT_TRUE(root_.mounts_below_root().empty()) << ::testing::PrintToString(root_.mounts_below_root());
    EXPECT_TRUE(root_.records().empty()) << ::testing::PrintToString(root_.records());
    EXPECT_TRUE(root_.union_dirs().empty()) << ::testing::PrintToString(root_.union_dirs());
    if (image_ino_) {
      EXPECT_TRUE(loops_backed_by(image_dev_, image_ino_).empty());
    }
  }

  TestRoot root_;
  std::string tree_;
  dev_t image_dev_ = 0;
  ino_t image_ino_ = 0;
};

TEST_F(LegacySession, SessionsSchroot16BeganAreListedBesideOurs) {
  install("legacy-dir-s1");
  install("legacy-union-s1");
  root_.write_config("[bb]\ntype=directory\ndirectory=" + tree_ + "\nprofile=minimal\n");
  RunResult begun = root_.schroot({"-b", "-c", "bb", "-n", "ours"});
  ASSERT_EQ(begun.status, 0) << begun.err;

  RunResult r = root_.schroot({"--list", "--all-sessions"});

  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "session:legacy-dir-s1\nsession:legacy-union-s1\nsession:ours\n");
  EXPECT_TRUE(succeeded(root_.schroot({"-e", "-c", "ours"})));
}

TEST_F(LegacySession, InfoShowsWhatTheSchroot16FileSays) {
  install("legacy-union-s1");
  mount_union_like_16("legacy-union-s1");

  RunResult r = root_.schroot({"--info", "-c", "session:legacy-union-s1"});

  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "legacy-union-s1")) << r.out;
  EXPECT_TRUE(contains(r.out, "legacy overlay (session chroot)")) << r.out;
  EXPECT_TRUE(contains(r.out, overlay("legacy-union-s1"))) << r.out;
  // Reading converts nothing: the file stays as 1.6 wrote it (a downgrade can read it).
  EXPECT_EQ(read_text(file("legacy-union-s1")).substr(0, 17), "[legacy-union-s1]");
}

TEST_F(LegacySession, RunsInADirectorySessionSchroot16Mounted) {
  install("legacy-dir-s1");
  mount_directory_like_16("legacy-dir-s1");
  root_.write_file(tree_ + "/etc/marker", "from the tree\n");

  RunResult r = root_.schroot({"-r", "-c", "legacy-dir-s1", "-d", "/", "--", "sh", "-c", "cat /etc/marker; test -r /proc/self/stat && echo proc"});

  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "from the tree\nproc\n");
}

TEST_F(LegacySession, EndingADirectorySessionUnmountsAllAndRemovesTheFile) {
  install("legacy-dir-s1");
  mount_directory_like_16("legacy-dir-s1");

  RunResult r = root_.schroot({"-e", "-c", "legacy-dir-s1"});

  EXPECT_EQ(r.status, 0) << r.err;
  expect_nothing_left();
  EXPECT_TRUE(path_exists(tree_ + "/bin/sh"));  // the chroot itself is untouched
}

TEST_F(LegacySession, EndingAUnionSessionRemovesItsUnionDirectories) {
  install("legacy-union-s1");
  mount_union_like_16("legacy-union-s1");
  ASSERT_TRUE(succeeded(root_.schroot({"-r", "-c", "legacy-union-s1", "-d", "/", "--", "touch", "/changed"})));
  ASSERT_TRUE(path_exists(overlay("legacy-union-s1") + "/upper/changed"));

  RunResult r = root_.schroot({"-e", "-c", "legacy-union-s1"});

  EXPECT_EQ(r.status, 0) << r.err;
  expect_nothing_left();
  EXPECT_FALSE(path_exists(tree_ + "/changed"));
}

TEST_F(LegacySession, EndingASourceSessionLeavesTheSourceAsItIs) {
  install("legacy-src-s1");
  mount_directory_like_16("legacy-src-s1");
  ASSERT_TRUE(succeeded(root_.schroot({"-r", "-c", "legacy-src-s1", "-d", "/", "--", "touch", "/kept"})));

  RunResult r = root_.schroot({"-e", "-c", "legacy-src-s1"});

  EXPECT_EQ(r.status, 0) << r.err;
  expect_nothing_left();
  EXPECT_TRUE(path_exists(tree_ + "/kept"));
}

TEST_F(LegacySession, EndingALoopbackSessionFreesTheLoopDeviceMountMadeFor16) {
  install("legacy-loop-s1");
  mount_loopback_like_16("legacy-loop-s1");

  RunResult r = root_.schroot({"-e", "-c", "legacy-loop-s1"});

  EXPECT_EQ(r.status, 0) << r.err;
  expect_nothing_left();
}

TEST_F(LegacySession, SetupDHooksGetSetupStopAsFrom16) {
  install("legacy-dir-s1");
  mount_directory_like_16("legacy-dir-s1");
  root_.add_hook("50site", "#!/bin/sh\necho \"$1 $2 $SESSION_ID $CHROOT_MOUNT_LOCATION\" >> " + root_.root() + "/hook.log\n");

  ASSERT_TRUE(succeeded(root_.schroot({"-e", "-c", "legacy-dir-s1"})));

  EXPECT_EQ(read_text(root_.root() + "/hook.log"), "setup-stop ok legacy-dir-s1 " + location("legacy-dir-s1") + "\n");
  expect_nothing_left();
}

TEST_F(LegacySession, ASessionFileFromBeforeTheRebootNeedsRecoveryBeforeARun) {
  install("legacy-dir-s1");
  ASSERT_EQ(run("touch -d @1 " + file("legacy-dir-s1")), 0);

  RunResult r = root_.schroot({"-r", "-c", "legacy-dir-s1", "--", "true"});

  EXPECT_EQ(r.status, 1);
  EXPECT_TRUE(contains(r.err, "before the last reboot")) << r.err;
}

TEST_F(LegacySession, ASessionSchroot16BeganBeforeTheRebootIsRemountedByRecovery) {
  install("legacy-union-s1");
  ASSERT_EQ(run("mkdir -p " + overlay("legacy-union-s1") + "/upper " + overlay("legacy-union-s1") + "/work && touch " +
                overlay("legacy-union-s1") + "/upper/kept && touch -d @1 " + file("legacy-union-s1")),
            0);

  RunResult recovered = root_.schroot({"--recover-session", "-c", "legacy-union-s1"});
  RunResult in = root_.schroot({"-r", "-c", "legacy-union-s1", "-d", "/", "--", "ls", "/kept"});

  EXPECT_EQ(recovered.status, 0) << recovered.err;
  EXPECT_EQ(in.status, 0) << in.err;
  EXPECT_TRUE(succeeded(root_.schroot({"-e", "-c", "legacy-union-s1"})));
  expect_nothing_left();
}

TEST_F(LegacySession, ATornSessionFileIsAnErrorNamingItAndTheOthersStillWork) {
  const std::string text = install("legacy-dir-s1");
  root_.write_file(file("legacy-torn"), "[legacy-torn]\n" + text.substr(16, 300));
  mount_directory_like_16("legacy-dir-s1");

  RunResult info = root_.schroot({"--info", "-c", "session:legacy-torn"});
  RunResult end = root_.schroot({"-e", "-c", "legacy-torn"});
  RunResult list = root_.schroot({"--list", "--all-sessions"});

  EXPECT_EQ(info.status, 1);
  EXPECT_TRUE(contains(info.err, file("legacy-torn"))) << info.err;
  EXPECT_EQ(end.status, 1);
  EXPECT_TRUE(contains(end.err, file("legacy-torn"))) << end.err;
  EXPECT_EQ(list.status, 0) << list.err;
  EXPECT_EQ(list.out, "session:legacy-dir-s1\nsession:legacy-torn\n");
  EXPECT_TRUE(succeeded(root_.schroot({"-e", "-c", "legacy-dir-s1"})));
  EXPECT_TRUE(root_.mounts_below_root().empty());
}

TEST_F(LegacySession, AMountLocationOutsideTheMountDirectoryIsRefusedAndNothingIsUnmounted) {
  std::string text = install("legacy-dir-s1");
  mount_directory_like_16("legacy-dir-s1");
  replace_all(text, "mount-location=" + location("legacy-dir-s1"), "mount-location=" + root_.root());
  root_.write_file(file("legacy-dir-s1"), text);

  RunResult r = root_.schroot({"-e", "-c", "legacy-dir-s1"});

  EXPECT_EQ(r.status, 1);
  EXPECT_TRUE(contains(r.err, file("legacy-dir-s1") + ": ")) << r.err;
  EXPECT_TRUE(contains(r.err, "mount-location")) << r.err;
  EXPECT_EQ(root_.mounts_below_root().size(), 2u);
  EXPECT_TRUE(path_exists(file("legacy-dir-s1")));
}

TEST_F(LegacySession, OddUnionDirectoriesAreRefused) {
  std::string text = install("legacy-union-s1");
  replace_all(text, "/union/overlay/legacy-union-s1", "/union/overlay");
  root_.write_file(file("legacy-union-s1"), text);

  RunResult r = root_.schroot({"-e", "-c", "legacy-union-s1"});

  EXPECT_EQ(r.status, 1);
  EXPECT_TRUE(contains(r.err, "union-overlay-directory")) << r.err;
  EXPECT_TRUE(path_exists(file("legacy-union-s1")));
}

// Sessions the real Debian schroot 1.6.13 began, then listed, run in and ended by this
// schroot after an upgrade: test/package/check-package does that in CI, in a throw-away
// root where 1.6.13 is installed from Debian's archive and our package over it. (A test
// here would need /usr/bin/schroot to be Debian's 1.6.13, and would be skipped in CI.)

}  // namespace
