// block-device chroots on a real loop device (the project's own loop code attaches an
// ext4 image; the chroot names /dev/loopN), and lvm-snapshot chroots on a kernel
// without device-mapper (this machine's): they fail before anything is made, saying so.
// Real LVM snapshots are tested in the VM (test/vm/lvm_session_test.cc).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cstdlib>
#include <optional>

#include "config.h"
#include "src/sys/loop_device.h"
#ifdef WITH_LVM_SNAPSHOT
#include "src/sys/devmapper.h"
#endif
#include "test/privileged/harness.h"

using schroot::test::path_exists;
using schroot::test::run;
using schroot::test::TestRoot;
using schroot::test::trim;

namespace {

class BlockDevice : public ::testing::Test {
 protected:
  void SetUp() override {
    tree_ = root_.make_tree("bb");
    root_.write_file(tree_ + "/hello", "from the device\n");
    image_ = root_.root() + "/srv/bb.img";
    ASSERT_EQ(run("mke2fs -q -F -t ext4 -d " + tree_ + " " + image_ + " 16M"), 0);
    struct stat st;
    ASSERT_EQ(::stat(image_.c_str(), &st), 0);
    dev_ = st.st_dev;
    ino_ = st.st_ino;
    loop_.emplace(schroot::sys::LoopDevice::attach(image_, {}));
    device_ = loop_->path();
    root_.write_config("[bd]\ntype=block-device\ndevice=" + device_ + "\nprofile=minimal\n" +
                       "[bd-union]\ntype=block-device\ndevice=" + device_ + "\nprofile=minimal\nunion-type=overlay\n" +
                       "[notblock]\ntype=block-device\ndevice=" + image_ + "\nprofile=minimal\n" +
                       "[snap]\ntype=lvm-snapshot\ndevice=" + device_ + "\nlvm-snapshot-options=--size 8M\n" +
                       "profile=minimal\n");
  }
  void TearDown() override {
    loop_.reset();  // detaches: the sessions' mounts must be gone by now
    EXPECT_TRUE(schroot::test::wait_until([&] { return schroot::test::loops_backed_by(dev_, ino_).empty(); },
                                          schroot::test::kDeadline));
  }
  void expect_nothing_left() {
    EXPECT_TRUE(root_.mounts_below_root().empty()) << ::testing::PrintToString(root_.mounts_below_root());
    EXPECT_TRUE(root_.records().empty()) << ::testing::PrintToString(root_.records());
    EXPECT_TRUE(root_.union_dirs().empty()) << ::testing::PrintToString(root_.union_dirs());
  }

  TestRoot root_;
  std::string tree_, image_, device_;
  dev_t dev_ = 0;
  ino_t ino_ = 0;
  std::optional<schroot::sys::LoopDevice> loop_;
};

TEST_F(BlockDevice, ASessionMountsTheDeviceRunsInItAndEndsLeavingNothing) {
  auto b = root_.schroot({"-c", "bd", "-b", "-n", "b1"});
  ASSERT_EQ(b.status, 0) << b.err;

  auto r = root_.schroot({"-c", "b1", "-r", "-d", "/", "--", "cat", "/hello"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "from the device\n");
  auto info = root_.schroot({"-c", "session:b1", "-i"});
  EXPECT_NE(info.out.find("Mount Device"), std::string::npos) << info.out;
  EXPECT_NE(info.out.find(device_), std::string::npos) << info.out;

  auto e = root_.schroot({"-c", "b1", "-e"});
  EXPECT_EQ(e.status, 0) << e.err;
  expect_nothing_left();
}

TEST_F(BlockDevice, WritesReachTheDeviceAndHooksSeeIt) {
  root_.add_hook("15show", "#!/bin/sh\n[ \"$1\" = setup-start ] && echo \"$CHROOT_TYPE $CHROOT_DEVICE $CHROOT_MOUNT_DEVICE\" "
                           ">> " + root_.root() + "/hook.log\nexit 0\n");
  auto r = root_.schroot({"-c", "bd", "-d", "/", "--", "sh", "-c", "echo written > /new"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(schroot::test::read_text(root_.root() + "/hook.log"), "block-device " + device_ + " " + device_ + "\n");

  auto again = root_.schroot({"-c", "bd", "-d", "/", "--", "cat", "/new"});
  EXPECT_EQ(again.out, "written\n") << again.err;
  expect_nothing_left();
}

TEST_F(BlockDevice, AUnionKeepsTheDeviceUnchanged) {
  auto r = root_.schroot({"-c", "bd-union", "-d", "/", "--", "sh", "-c", "echo x > /new && rm /hello"});
  ASSERT_EQ(r.status, 0) << r.err;

  auto plain = root_.schroot({"-c", "bd", "-d", "/", "--", "sh", "-c", "cat /hello; test -e /new || echo no-new"});
  EXPECT_EQ(plain.out, "from the device\nno-new\n") << plain.err;
  expect_nothing_left();
}

TEST_F(BlockDevice, AFileThatIsNoBlockDeviceIsRefusedClearly) {
  auto r = root_.schroot({"-c", "notblock", "--", "true"});
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("notblock: device ‘" + image_ + "’ is not a block device"), std::string::npos) << r.err;
  expect_nothing_left();
}

TEST_F(BlockDevice, TwoSessionsNeverMountTheDeviceReadWriteAtOnce) {
  ASSERT_TRUE(succeeded(root_.schroot({"-c", "bd", "-b", "-n", "b1"})));

  auto second = root_.schroot({"-c", "bd", "--source-lock-timeout", "0", "--", "true"});
  EXPECT_NE(second.status, 0);
  EXPECT_NE(second.err.find("in use by session(s) b1"), std::string::npos) << second.err;

  EXPECT_TRUE(succeeded(root_.schroot({"-c", "b1", "-e"})));
  expect_nothing_left();
}

#ifdef WITH_LVM_SNAPSHOT
TEST_F(BlockDevice, AnLvmSnapshotWithoutDeviceMapperFailsSayingSoAndLeavesNothing) {
  if (!schroot::sys::devmapper::unavailable_reason()) GTEST_SKIP() << "this kernel has device-mapper (the VM tests cover it)";
  auto r = root_.schroot({"-c", "snap", "--", "true"});

  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("snap: lvm-snapshot cannot work on this host; missing:"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("  device-mapper: "), std::string::npos) << r.err;
  expect_nothing_left();
  EXPECT_TRUE(root_.lock_holder_files().empty());
}

// libdevmapper is opened only for what needs it (src/sys/devmapper.cc): linked, it and
// its dependencies cost every schroot process ~1.6 ms at start-up. The dynamic loader
// says what it loads (LD_DEBUG=files; the test build is not setuid).
TEST_F(BlockDevice, OnlyAnLvmSnapshotChrootLoadsLibdevmapper) {
  auto plain = root_.schroot({"-c", "bd", "--", "true"}, {"LD_DEBUG=files"});
  ASSERT_TRUE(succeeded(plain));
  ASSERT_NE(plain.err.find("file=libc.so.6"), std::string::npos) << "the loader said nothing:\n" << plain.err;
  EXPECT_EQ(plain.err.find("libdevmapper"), std::string::npos) << plain.err;
  auto list = root_.schroot({"--list"}, {"LD_DEBUG=files"});
  EXPECT_EQ(list.err.find("libdevmapper"), std::string::npos) << list.err;

  auto snap = root_.schroot({"-c", "snap", "--", "true"}, {"LD_DEBUG=files"});
  EXPECT_NE(snap.err.find("file=libdevmapper.so"), std::string::npos) << snap.err;
  EXPECT_EQ(snap.err.find("cannot be loaded"), std::string::npos) << snap.err;
}
#else
TEST_F(BlockDevice, AnLvmSnapshotChrootSaysThisBuildLacksIt) {
  auto r = root_.schroot({"-c", "snap", "--", "true"});
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("--disable-lvm-snapshot"), std::string::npos) << r.err;
  expect_nothing_left();
}
#endif

}  // namespace
