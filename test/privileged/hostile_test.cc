// Hostile chroot contents: symlinks, FIFOs, device nodes and loops planted where
// the session's stages mount or write. Nothing outside the chroot may change, no
// stage may hang, and a refused session leaves nothing behind.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "test/privileged/harness.h"

using schroot::test::path_exists;
using schroot::test::read_text;
using schroot::test::TestRoot;

namespace {

class Hostile : public ::testing::Test {
 protected:
  void SetUp() override {
    tree_ = root_.make_tree("bad");
    outside_ = root_.root() + "/outside";
    ASSERT_EQ(mkdir(outside_.c_str(), 0755), 0);
    root_.write_file(outside_ + "/victim", "host data\n");
    root_.write_file(root_.root() + "/hostfile", "copied\n");
    root_.write_profile("hostile", "proc /proc proc defaults 0 0\ntmpfs /mnt/t tmpfs defaults 0 0\n",
                        root_.root() + "/hostfile /etc/copied\n", "passwd\n");
    root_.write_config("[bad]\ntype=directory\ndirectory=" + tree_ + "\nprofile=hostile\n");
  }
  void expect_outside_untouched() {
    EXPECT_EQ(read_text(outside_ + "/victim"), "host data\n");
    EXPECT_FALSE(path_exists(outside_ + "/passwd"));
    EXPECT_FALSE(path_exists(outside_ + "/copied"));
    EXPECT_FALSE(path_exists(outside_ + "/debian_chroot"));
    EXPECT_FALSE(path_exists(outside_ + "/t"));
    EXPECT_TRUE(root_.mounts_below_root().empty()) << ::testing::PrintToString(root_.mounts_below_root());
    EXPECT_TRUE(root_.records().empty());
  }
  void replace(const std::string& in_chroot) {
    std::string p = tree_ + in_chroot;
    std::string cmd = "rm -rf '" + p + "'";
    ASSERT_EQ(system(cmd.c_str()), 0);
  }
  schroot::test::RunResult session() { return root_.schroot({"-c", "bad", "-d", "/", "--", "true"}); }

  TestRoot root_;
  std::string tree_, outside_;
};

TEST_F(Hostile, AbsoluteEtcSymlinkToTheHostStaysInsideTheChroot) {
  replace("/etc");
  ASSERT_EQ(symlink(outside_.c_str(), (tree_ + "/etc").c_str()), 0);

  session();

  expect_outside_untouched();
}

TEST_F(Hostile, RelativeEscapingSymlinkIsClampedToTheRoot) {
  replace("/etc");
  ASSERT_EQ(symlink("../../../../../../outside", (tree_ + "/etc").c_str()), 0);

  session();

  expect_outside_untouched();
}

TEST_F(Hostile, ChainedSymlinksAtAMountPointStayInside) {
  ASSERT_EQ(mkdir((tree_ + "/x").c_str(), 0755), 0);
  ASSERT_EQ(symlink("/x/b", (tree_ + "/mnt").c_str()), 0);
  ASSERT_EQ(symlink(outside_.c_str(), (tree_ + "/x/b").c_str()), 0);

  session();

  expect_outside_untouched();
}

TEST_F(Hostile, DebianChrootSymlinkToAHostFileIsReplacedNotFollowed) {
  ASSERT_EQ(symlink((outside_ + "/victim").c_str(), (tree_ + "/etc/debian_chroot").c_str()), 0);

  auto r = session();

  EXPECT_EQ(r.status, 0) << r.err;
  expect_outside_untouched();
  EXPECT_EQ(read_text(tree_ + "/etc/debian_chroot"), "bad\n");
}

TEST_F(Hostile, FifoAtAWriteTargetDoesNotHang) {
  ASSERT_EQ(mkfifo((tree_ + "/etc/passwd").c_str(), 0644), 0);
  ASSERT_EQ(mkfifo((tree_ + "/etc/copied").c_str(), 0644), 0);

  session();

  expect_outside_untouched();
}

TEST_F(Hostile, FifoAtAMountPointIsRefusedCleanly) {
  ASSERT_EQ(mkdir((tree_ + "/mnt").c_str(), 0755), 0);
  ASSERT_EQ(mkfifo((tree_ + "/mnt/t").c_str(), 0644), 0);

  auto r = session();

  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("/mnt/t"), std::string::npos) << r.err;
  expect_outside_untouched();
}

TEST_F(Hostile, DeviceNodeAtAMountPointIsRefusedCleanly) {
  replace("/proc");
  ASSERT_EQ(mknod((tree_ + "/proc").c_str(), S_IFCHR | 0600, makedev(1, 3)), 0);

  auto r = session();

  EXPECT_EQ(r.status, 1);
  expect_outside_untouched();
}

TEST_F(Hostile, SymlinkLoopAtAMountPointIsRefusedCleanly) {
  ASSERT_EQ(symlink("/loop2", (tree_ + "/mnt").c_str()), 0);
  ASSERT_EQ(symlink("/mnt", (tree_ + "/loop2").c_str()), 0);

  auto r = session();

  EXPECT_EQ(r.status, 1);
  expect_outside_untouched();
}

TEST_F(Hostile, DanglingSymlinkAtAMountPointIsHandledInside) {
  ASSERT_EQ(symlink("/nowhere/deep", (tree_ + "/mnt").c_str()), 0);

  session();

  expect_outside_untouched();
}

}  // namespace
