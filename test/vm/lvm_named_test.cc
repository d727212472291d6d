// Named snapshots on real LVM, with the schroot under test, in run-vm's VM: a snapshot
// taken before a "failed build" restores the origin's files (changed and deleted ones
// come back); the list shows size, fill level and creation time; a restore is refused
// while a session uses the chroot; recovery and -e --all-sessions leave named snapshots
// alone; a merge of an open origin is deferred and said so.
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "src/sys/lvm.h"
#include "test/privileged/harness.h"
#include "test/vm/vm_env.h"

namespace schroot::test {
namespace {

namespace lvm = sys::lvm;

std::vector<std::string> named_lvs() {
  std::vector<std::string> names;
  for (const auto& lv : lvm::list_tagged(lvm::kNamedTag)) names.push_back(lv.ref.full());
  return names;
}

class LvmNamed : public ::testing::Test {
 protected:
  void SetUp() override {
    vg_ = env("SCHROOT_VM_VG");
    origin_ = env("SCHROOT_VM_ORIGIN");
    ASSERT_FALSE(vg_.empty());
    ASSERT_TRUE(named_lvs().empty()) << "an earlier test left " << ::testing::PrintToString(named_lvs());
    root_.write_config("[sdk]\ntype=lvm-snapshot\ndevice=" + origin_ +
                       "\nlvm-snapshot-options=--size 16M\nprofile=minimal\n"
                       "[dir]\ntype=directory\ndirectory=/tmp\nprofile=minimal\n");
  }
  void TearDown() override {
    root_.schroot({"--end-session", "--all-sessions", "--force"});
    for (const auto& lv : lvm::list_tagged(lvm::kNamedTag)) {
      ADD_FAILURE() << "left behind: " << lv.ref.full();
      lvm::runner().run({"lvremove", "-f", lv.ref.full()});
    }
  }
  // Runs a shell in the origin itself (a source: session).
  std::string in_origin(const std::string& shell) {
    auto r = root_.schroot({"-c", "source:sdk", "-d", "/", "--", "sh", "-c", shell});
    EXPECT_EQ(r.status, 0) << r.err;
    return r.out;
  }
  std::string lv(const std::string& name) const { return vg_ + "/origin+" + name; }

  TestRoot root_;
  std::string vg_, origin_;
};

TEST_F(LvmNamed, ARestoreAfterAFailedBuildBringsBackChangedAndDeletedFiles) {
  in_origin("echo keep v1 > /keep");
  auto c = root_.schroot({"-c", "sdk", "--snapshot-create", "before"});
  ASSERT_EQ(c.status, 0) << c.err;
  const auto info = lvm::find({vg_, "origin+before"});
  ASSERT_TRUE(info);
  EXPECT_TRUE(info->has_tag(lvm::kNamedTag));
  EXPECT_FALSE(info->has_tag(lvm::kSessionTag));

  // The failed build: a file changed, one deleted, one added; and 8 MiB written, so that
  // the merge takes longer than lvm's first look at it (a tiny merge is finished by then).
  in_origin("echo broken > /hello && rm /keep && echo junk > /junk && yes | head -c 8388608 > /big");
  ASSERT_EQ(in_origin("cat /hello"), "broken\n");

  auto r = root_.schroot({"-c", "sdk", "--snapshot-restore", "before"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.err, "") << "no progress lines when stderr is not a terminal";
  EXPECT_EQ(in_origin("cat /hello /keep; test -e /junk && echo junk-still-there; test -e /big && echo big-still-there; true"),
            "origin v1\nkeep v1\n");
  EXPECT_FALSE(lvm::find({vg_, "origin+before"})) << "a merged snapshot is consumed";
  // The origin takes snapshots again as soon as the restore returns: the merge is over,
  // not only hidden from lvs (a merging snapshot is listed as "[origin+before]", and LVM
  // refuses snapshots of its origin until its poller removes it).
  ASSERT_TRUE(succeeded(root_.schroot({"-c", "sdk", "--snapshot-create", "after"})));
  ASSERT_TRUE(succeeded(root_.schroot({"-c", "sdk", "--snapshot-delete", "after"})));
  in_origin("rm /keep");
}

TEST_F(LvmNamed, TheListShowsEachSnapshotWithSizeFillLevelAndCreationTime) {
  ASSERT_TRUE(succeeded(root_.schroot({"-c", "sdk", "--snapshot-create", "one"})));
  ASSERT_TRUE(succeeded(root_.schroot({"-c", "sdk", "--snapshot-create", "two"})));
  auto dup = root_.schroot({"-c", "sdk", "--snapshot-create", "one"});
  EXPECT_NE(dup.status, 0);
  EXPECT_TRUE(contains(dup.err, "snapshot ‘one’ exists already")) << dup.err;

  auto l = root_.schroot({"-c", "sdk", "--snapshot-list"});
  ASSERT_EQ(l.status, 0) << l.err;
  EXPECT_TRUE(contains(l.out, "NAME")) << l.out;
  for (const std::string n : {"one", "two"}) {
    const auto at = l.out.find("\n" + n + " ");
    ASSERT_NE(at, std::string::npos) << l.out;
    const std::string line = l.out.substr(at + 1, l.out.find('\n', at + 1) - at - 1);
    EXPECT_TRUE(contains(line, lv(n))) << line;
    EXPECT_TRUE(contains(line, "16.00 MiB")) << line;
    EXPECT_TRUE(contains(line, "%")) << line;
    EXPECT_TRUE(contains(line, " 20")) << "a creation time: " << line;
    EXPECT_TRUE(contains(line, "valid")) << line;
  }
  ASSERT_TRUE(succeeded(root_.schroot({"-c", "sdk", "--snapshot-delete", "one"})));
  ASSERT_TRUE(succeeded(root_.schroot({"-c", "sdk", "--snapshot-delete", "two"})));
  EXPECT_TRUE(named_lvs().empty()) << ::testing::PrintToString(named_lvs());
  auto gone = root_.schroot({"-c", "sdk", "--snapshot-delete", "two"});
  EXPECT_NE(gone.status, 0);
  EXPECT_TRUE(contains(gone.err, "no snapshot ‘two’")) << gone.err;
}

TEST_F(LvmNamed, ARestoreIsRefusedWhileASessionUsesTheChroot) {
  ASSERT_TRUE(succeeded(root_.schroot({"-c", "sdk", "--snapshot-create", "base"})));
  ASSERT_TRUE(succeeded(root_.schroot({"-c", "sdk", "-b", "-n", "s1"})));
  auto r = root_.schroot({"-c", "sdk", "--snapshot-restore", "base"});
  EXPECT_NE(r.status, 0);
  EXPECT_TRUE(contains(r.err, "while session(s) s1 use the chroot")) << r.err;
  EXPECT_TRUE(lvm::find({vg_, "origin+base"})) << "not merged";
  ASSERT_TRUE(succeeded(root_.schroot({"-c", "s1", "-e"})));
  ASSERT_TRUE(succeeded(root_.schroot({"-c", "sdk", "--snapshot-delete", "base"})));
}

TEST_F(LvmNamed, RecoveryAndEndingAllSessionsLeaveNamedSnapshotsAlone) {
  ASSERT_TRUE(succeeded(root_.schroot({"-c", "sdk", "--snapshot-create", "keep"})));
  ASSERT_TRUE(succeeded(root_.schroot({"-c", "sdk", "-b", "-n", "s2"})));
  EXPECT_TRUE(succeeded(root_.schroot({"--recover-session", "--all-sessions"})));
  EXPECT_TRUE(succeeded(root_.schroot({"-e", "--all-sessions"})));
  EXPECT_FALSE(lvm::find({vg_, "s2"})) << "the session's snapshot went";
  EXPECT_TRUE(lvm::find({vg_, "origin+keep"})) << "the named one stays";
  ASSERT_TRUE(succeeded(root_.schroot({"-c", "sdk", "--snapshot-delete", "keep"})));
}

TEST_F(LvmNamed, OtherTypesAndBadNamesAreRefusedBeforeLvmActs) {
  auto t = root_.schroot({"-c", "dir", "--snapshot-list"});
  EXPECT_NE(t.status, 0);
  EXPECT_TRUE(contains(t.err, "need an lvm-snapshot chroot")) << t.err;
  auto n = root_.schroot({"-c", "sdk", "--snapshot-create=--addtag=x"});
  EXPECT_NE(n.status, 0);
  EXPECT_TRUE(contains(n.err, "invalid snapshot name")) << n.err;
  EXPECT_TRUE(named_lvs().empty());
}

TEST_F(LvmNamed, AMergeOfAnOpenOriginIsDeferredToItsNextActivationAndSaidSo) {
  ASSERT_TRUE(succeeded(root_.schroot({"-c", "sdk", "--snapshot-create", "later"})));
  in_origin("echo changed > /hello");
  // Opened outside schroot (no claim): LVM cannot merge now.
  const std::string mnt = root_.root() + "/open-origin";
  ASSERT_EQ(::mkdir(mnt.c_str(), 0755), 0);
  ASSERT_EQ(::mount(origin_.c_str(), mnt.c_str(), "ext4", MS_RDONLY, nullptr), 0);
  auto r = root_.schroot({"-c", "sdk", "--snapshot-restore", "later"});
  ::umount(mnt.c_str());
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(contains(r.err, "at its next activation")) << r.err;
  // Until then LVM lists the snapshot hidden, as "[origin+later]", marked merging: it is
  // still found by its name (a restore waits for it to go; the list shows it merging).
  const auto merging = lvm::find({vg_, "origin+later"});
  ASSERT_TRUE(merging) << "a merging snapshot must not read as gone; lvs -a says:\n"
                       << lvm::runner().run({"lvs", "-a", vg_}).out;
  EXPECT_TRUE(merging->hidden);
  EXPECT_EQ(merging->attr.substr(0, 1), "S") << merging->attr;
  auto l = root_.schroot({"-c", "sdk", "--snapshot-list"});
  ASSERT_TRUE(succeeded(l));
  EXPECT_TRUE(contains(l.out, "\nlater ")) << l.out;
  EXPECT_TRUE(contains(l.out, "merging")) << l.out;

  // The next activation merges.
  const std::string o = vg_ + "/origin";
  ASSERT_TRUE(lvm::runner().run({"lvchange", "-an", o}).status.success());
  ASSERT_TRUE(lvm::runner().run({"lvchange", "-ay", o}).status.success());
  for (int i = 0; i < 100 && lvm::find({vg_, "origin+later"}); ++i) {
    lvm::runner().run({"lvconvert", "--merge", "--background", "--interval", "1", "--", vg_ + "/origin+later"});
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  EXPECT_FALSE(lvm::find({vg_, "origin+later"}));
  EXPECT_EQ(in_origin("cat /hello"), "origin v1\n");
}

}  // namespace
}  // namespace schroot::test
