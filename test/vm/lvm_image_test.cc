// lvm-snapshot chroots whose volume group lives on a loop-file image (lvm-image-file,
// the cros_sdk layout), in run-vm's VM: the image is attached and its VG activated
// when the first session needs it, shared by the sessions that follow, and deactivated
// and detached when the last one ends; a kill between the attach and the first use
// is recovered from; source: sessions use the image as snapshot sessions do. The
// oracles are losetup -j and dmsetup ls, not the code under test.
#include <gtest/gtest.h>
#include <signal.h>

#include <string>
#include <vector>

#include "src/sys/command.h"
#include "src/sys/mount.h"
#include "test/privileged/harness.h"
#include "test/vm/vm_env.h"

namespace schroot::test {
namespace {

const std::vector<std::string> kToolEnv = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "DM_DISABLE_UDEV=1"};

std::string shell(const std::string& command) {
  std::string out;
  sys::run_program({"/bin/sh", "-c", command + " 2>&1"}, kToolEnv, &out);
  return out;
}

class LvmImage : public ::testing::Test {
 protected:
  void SetUp() override {
    image_ = env("SCHROOT_VM_IMAGE");
    vg_ = env("SCHROOT_VM_IMAGE_VG");
    ASSERT_FALSE(image_.empty() || vg_.empty()) << "run-vm set no SCHROOT_VM_IMAGE / SCHROOT_VM_IMAGE_VG";
    ASSERT_FALSE(image_attached()) << "the image is attached before the test: " << shell("losetup -a");
    root_.write_config("[sdk]\ntype=lvm-snapshot\ndevice=/dev/" + vg_ + "/origin\nlvm-image-file=" + image_ +
                       "\nlvm-snapshot-options=--size 8M\nprofile=minimal\n"
                       "[sdk2]\ntype=lvm-snapshot\ndevice=/dev/" + vg_ + "/origin\nlvm-image-file=" + image_ +
                       "\nlvm-snapshot-options=--size 8M\nprofile=minimal\n");
  }
  void TearDown() override {
    root_.schroot({"--end-session", "--all-sessions", "--force"});
    if (image_attached()) {
      ADD_FAILURE() << "the image is still attached: " << shell("losetup -j " + image_);
      shell("lvm vgchange -an " + vg_ + "; losetup -D");
    }
  }

  // losetup -j: the loop devices bound to the image (one line each).
  bool image_attached() { return !shell("losetup -j " + image_).empty(); }
  int loops_of_image() {
    const std::string out = shell("losetup -j " + image_);
    int n = 0;
    for (char c : out) n += c == '\n';
    return n;
  }
  // The VG's device-mapper devices (dmsetup ls names them VG-LV).
  bool vg_active() { return contains(shell("dmsetup ls"), vg_ + "-origin"); }

  void expect_released() {
    EXPECT_FALSE(image_attached()) << shell("losetup -a");
    EXPECT_FALSE(vg_active()) << shell("dmsetup ls");
    EXPECT_TRUE(root_.records().empty()) << ::testing::PrintToString(root_.records());
    EXPECT_TRUE(root_.mounts_below_root().empty()) << ::testing::PrintToString(root_.mounts_below_root());
  }

  TestRoot root_;
  std::string image_, vg_;
};

TEST_F(LvmImage, TheFirstSessionAttachesTheImageAndTheLastOneReleasesIt) {
  ASSERT_TRUE(succeeded(root_.schroot({"-c", "sdk", "-b", "-n", "i1"})));
  EXPECT_EQ(loops_of_image(), 1) << shell("losetup -a");
  EXPECT_TRUE(vg_active()) << shell("dmsetup ls");
  auto r = root_.schroot({"-c", "i1", "-r", "-d", "/", "--", "cat", "/hello"});
  EXPECT_EQ(r.out, "image origin v1\n") << r.err;

  // A second session, of another chroot on the same VG: the same loop device.
  ASSERT_TRUE(succeeded(root_.schroot({"-c", "sdk2", "-b", "-n", "i2"})));
  EXPECT_EQ(loops_of_image(), 1) << shell("losetup -a");

  auto e1 = root_.schroot({"-c", "i1", "-e"});
  EXPECT_EQ(e1.status, 0) << e1.err;
  EXPECT_EQ(loops_of_image(), 1) << "released while i2 still uses it";
  auto r2 = root_.schroot({"-c", "i2", "-r", "-d", "/", "--", "cat", "/hello"});
  EXPECT_EQ(r2.out, "image origin v1\n") << r2.err;

  auto e2 = root_.schroot({"-c", "i2", "-e"});
  EXPECT_EQ(e2.status, 0) << e2.err;
  expect_released();
}

TEST_F(LvmImage, AnAutomaticSessionAttachesAndReleasesTheImage) {
  auto r = root_.schroot({"-c", "sdk", "--", "sh", "-c", "cat /hello; echo changed > /hello"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "image origin v1\n");
  expect_released();
  // The change went to the session's snapshot, never to the origin on the image.
  auto again = root_.schroot({"-c", "sdk", "--", "cat", "/hello"});
  EXPECT_EQ(again.out, "image origin v1\n") << again.err;
  expect_released();
}

TEST_F(LvmImage, TheSourceChrootUsesTheImageAndExcludesSnapshotSessions) {
  ASSERT_TRUE(succeeded(root_.schroot({"-c", "source:sdk", "-b", "-n", "src"})));
  EXPECT_EQ(loops_of_image(), 1) << shell("losetup -a");
  auto blocked = root_.schroot({"-c", "sdk", "-b", "-n", "i1", "--source-lock-timeout", "0"});
  EXPECT_NE(blocked.status, 0) << "a snapshot session began while source: was in use";
  EXPECT_TRUE(succeeded(root_.schroot({"-c", "src", "-e"})));
  expect_released();
}

// A kill at each step between the claim and the first use, then recovery: the image
// is released by the session's planned release step like any other undo.
TEST_F(LvmImage, AKillBetweenAttachAndFirstUseIsRecovered) {
  for (const char* point : {"begin:image-claimed", "begin:image-attached", "begin:lv-created", "end:image-deactivated"}) {
    SCOPED_TRACE(point);
    const bool at_end = std::string(point).rfind("end:", 0) == 0;
    if (at_end) {
      ASSERT_TRUE(succeeded(root_.schroot({"-c", "sdk", "-b", "-n", "k1"})));
    }
    auto killed = at_end ? root_.schroot({"-c", "k1", "-e"}, {std::string("SCHROOT_FAIL_AT=") + point})
                         : root_.schroot({"-c", "sdk", "-b", "-n", "k1"}, {std::string("SCHROOT_FAIL_AT=") + point});
    EXPECT_EQ(killed.status, 128 + SIGKILL) << killed.err;
    auto rec = root_.schroot({"--recover-session", "--all-sessions"});
    EXPECT_EQ(rec.status, 0) << rec.err;
    EXPECT_TRUE(succeeded(root_.schroot({"--end-session", "--all-sessions"})));
    expect_released();
  }
}

// What a reboot leaves: no mounts, the VG inactive, the image detached; the record
// and the snapshot (on the image) remain. Recovery attaches the image again and the
// session carries on; an end without recovery attaches it to remove the snapshot.
TEST_F(LvmImage, AfterARebootRecoveryAndEndAttachTheImageAgain) {
  auto reboot = [&](const std::string& id) {
    const sys::UnmountResult gone = sys::unmount_tree(root_.run_dir() + "/mount/" + id, /*allow_lazy=*/false);
    ASSERT_TRUE(gone.problems.empty()) << ::testing::PrintToString(gone.problems);
    shell("lvm vgchange -an " + vg_ + "; losetup -d $(losetup -j " + image_ + " | cut -d: -f1)");
    ASSERT_FALSE(image_attached()) << shell("losetup -a");
  };
  ASSERT_TRUE(succeeded(root_.schroot({"-c", "sdk", "-b", "-n", "rb"})));
  ASSERT_TRUE(succeeded(root_.schroot({"-c", "rb", "-r", "-d", "/", "--", "sh", "-c", "echo kept > /kept"})));
  reboot("rb");
  auto rec = root_.schroot({"--recover-session", "-c", "rb"});
  EXPECT_EQ(rec.status, 0) << rec.err;
  EXPECT_EQ(loops_of_image(), 1) << shell("losetup -a");
  auto r = root_.schroot({"-c", "rb", "-r", "-d", "/", "--", "cat", "/kept"});
  EXPECT_EQ(r.out, "kept\n") << r.err;

  reboot("rb");
  auto e = root_.schroot({"-c", "rb", "-e"});
  EXPECT_EQ(e.status, 0) << e.err;
  expect_released();
  EXPECT_FALSE(contains(shell("losetup -f --show " + image_ + " && lvm vgchange -ay " + vg_ + " && lvm lvs " + vg_ +
                              "; lvm vgchange -an " + vg_ + "; losetup -D"),
                        " rb "))
      << "the session's snapshot is still on the image";
}

// A named-snapshot action is no session: it holds the image under a tool claim for
// its work and releases it (the named snapshot stays on the image).
TEST_F(LvmImage, ANamedSnapshotActionAttachesTheImageForItsWorkOnly) {
  auto c = root_.schroot({"-c", "sdk", "--snapshot-create", "before"});
  EXPECT_EQ(c.status, 0) << c.err;
  expect_released();
  auto l = root_.schroot({"-c", "sdk", "--snapshot-list"});
  EXPECT_EQ(l.status, 0) << l.err;
  EXPECT_TRUE(contains(l.out, "before")) << l.out;
  expect_released();
  // A session while the named snapshot exists, then the delete.
  ASSERT_TRUE(succeeded(root_.schroot({"-c", "sdk", "--", "true"})));
  auto d = root_.schroot({"-c", "sdk", "--snapshot-delete", "before"});
  EXPECT_EQ(d.status, 0) << d.err;
  expect_released();
}

TEST_F(LvmImage, AMissingImageIsAClearErrorAndLeavesNothing) {
  root_.write_config("[gone]\ntype=lvm-snapshot\ndevice=/dev/" + vg_ + "/origin\nlvm-image-file=/srv/no-such.img\n"
                     "lvm-snapshot-options=--size 8M\nprofile=minimal\n");
  auto r = root_.schroot({"-c", "gone", "--", "true"});
  EXPECT_NE(r.status, 0);
  EXPECT_TRUE(contains(r.err, "gone: image file ‘/srv/no-such.img’")) << r.err;
  expect_released();
}

}  // namespace
}  // namespace schroot::test
