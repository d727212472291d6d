// Hostile chroot contents: symlinks, FIFOs, device nodes and loops planted where
// the session's stages mount or write. Nothing outside the chroot may change, no
// stage may hang, and a refused session leaves nothing behind. Each test also says
// which way the session went: it ran its command (which printed what the stages
// wrote), or it was refused naming what was in the way. "Outside untouched" alone
// would pass for a schroot that failed before any stage ran.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "test/privileged/harness.h"

using schroot::test::path_exists;
using schroot::test::read_text;
using schroot::test::RunResult;
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
  // The command shows what copyfiles wrote: it ran only if every stage did.
  RunResult session() { return root_.schroot({"-c", "bad", "-d", "/", "--", "sh", "-c", "echo ran; cat /etc/copied"}); }
  void expect_ran(const RunResult& r) {
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, "ran\ncopied\n") << r.err;
  }
  // Refused by the stage that met `in_the_way` (the step and path of the message:
  // "mkdir /etc in ROOT"), for `reason`; the command never ran.
  void expect_refused(const RunResult& r, const std::string& in_the_way, const std::string& reason) {
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.err.find(in_the_way + " in " + root_.run_dir() + "/mount/bad-"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(reason), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("the session was rolled back"), std::string::npos) << r.err;
    EXPECT_EQ(r.out, "");
  }

  TestRoot root_;
  std::string tree_, outside_;
};

TEST_F(Hostile, AbsoluteEtcSymlinkToTheHostStaysInsideTheChroot) {
  replace("/etc");
  ASSERT_EQ(symlink(outside_.c_str(), (tree_ + "/etc").c_str()), 0);

  auto r = session();

  // Resolved in the chroot, the link leads to a directory that is not there.
  expect_refused(r, "mkdir /etc", "a dangling symbolic link is in the way");
  expect_outside_untouched();
}

// The same link, with its target present inside the chroot: the session runs and
// every file lands there.
TEST_F(Hostile, AbsoluteEtcSymlinkLeadsToItsTargetInsideTheChroot) {
  replace("/etc");
  ASSERT_EQ(symlink(outside_.c_str(), (tree_ + "/etc").c_str()), 0);
  ASSERT_EQ(system(("mkdir -p '" + tree_ + outside_ + "'").c_str()), 0);

  auto r = session();

  expect_ran(r);
  expect_outside_untouched();
  EXPECT_EQ(read_text(tree_ + outside_ + "/copied"), "copied\n");
  EXPECT_TRUE(path_exists(tree_ + outside_ + "/passwd"));
}

TEST_F(Hostile, RelativeEscapingSymlinkIsClampedToTheRoot) {
  replace("/etc");
  ASSERT_EQ(symlink("../../../../../../outside", (tree_ + "/etc").c_str()), 0);

  auto r = session();

  // Clamped, the link names /outside in the chroot, which is not there.
  expect_refused(r, "mkdir /etc", "a dangling symbolic link is in the way");
  expect_outside_untouched();
}

TEST_F(Hostile, ChainedSymlinksAtAMountPointStayInside) {
  ASSERT_EQ(mkdir((tree_ + "/x").c_str(), 0755), 0);
  ASSERT_EQ(symlink("/x/b", (tree_ + "/mnt").c_str()), 0);
  ASSERT_EQ(symlink(outside_.c_str(), (tree_ + "/x/b").c_str()), 0);

  auto r = session();

  expect_refused(r, "mkdir /mnt", "a dangling symbolic link is in the way");
  expect_outside_untouched();
}

TEST_F(Hostile, DebianChrootSymlinkToAHostFileIsReplacedNotFollowed) {
  ASSERT_EQ(symlink((outside_ + "/victim").c_str(), (tree_ + "/etc/debian_chroot").c_str()), 0);

  auto r = session();

  expect_ran(r);
  expect_outside_untouched();
  EXPECT_EQ(read_text(tree_ + "/etc/debian_chroot"), "bad\n");
}

TEST_F(Hostile, FifoAtAWriteTargetDoesNotHang) {
  ASSERT_EQ(mkfifo((tree_ + "/etc/passwd").c_str(), 0644), 0);
  ASSERT_EQ(mkfifo((tree_ + "/etc/copied").c_str(), 0644), 0);

  auto r = session();

  // Both FIFOs were replaced by the files (the command read the copy).
  expect_ran(r);
  expect_outside_untouched();
  struct stat passwd;
  ASSERT_EQ(lstat((tree_ + "/etc/passwd").c_str(), &passwd), 0);
  EXPECT_TRUE(S_ISREG(passwd.st_mode)) << "/etc/passwd is still the FIFO";
}

TEST_F(Hostile, FifoAtAMountPointIsRefusedCleanly) {
  ASSERT_EQ(mkdir((tree_ + "/mnt").c_str(), 0755), 0);
  ASSERT_EQ(mkfifo((tree_ + "/mnt/t").c_str(), 0644), 0);

  auto r = session();

  expect_refused(r, "mkdir /mnt/t", "a FIFO is in the way");
  expect_outside_untouched();
}

TEST_F(Hostile, DeviceNodeAtAMountPointIsRefusedCleanly) {
  replace("/proc");
  ASSERT_EQ(mknod((tree_ + "/proc").c_str(), S_IFCHR | 0600, makedev(1, 3)), 0);

  auto r = session();

  expect_refused(r, "mkdir /proc", "a character device is in the way");
  expect_outside_untouched();
}

TEST_F(Hostile, SymlinkLoopAtAMountPointIsRefusedCleanly) {
  ASSERT_EQ(symlink("/loop2", (tree_ + "/mnt").c_str()), 0);
  ASSERT_EQ(symlink("/mnt", (tree_ + "/loop2").c_str()), 0);

  auto r = session();

  expect_refused(r, "resolve /mnt", "Too many levels of symbolic links");
  expect_outside_untouched();
}

TEST_F(Hostile, DanglingSymlinkAtAMountPointIsRefusedCleanly) {
  ASSERT_EQ(symlink("/nowhere/deep", (tree_ + "/mnt").c_str()), 0);

  auto r = session();

  expect_refused(r, "mkdir /mnt", "a dangling symbolic link is in the way");
  expect_outside_untouched();
}

}  // namespace
