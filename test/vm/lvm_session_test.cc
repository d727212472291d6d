// lvm-snapshot sessions on real LVM, end to end with the schroot under test, in
// run-vm's VM: begin/run/end on a snapshot; changes never reach the origin; the
// snapshot is removed on every failure path of begin; SIGKILL at every fail point of
// begin and end (and at random moments), then recovery leaves no LV; an overflowed
// snapshot is shown Invalid and refuses -r; source: and snapshot sessions exclude each
// other; -e --all-sessions removes session snapshots and nothing else.
#include "config.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "src/sys/devmapper.h"
#include "src/sys/fs.h"
#include "src/sys/lvm.h"
#include "src/sys/mount.h"
#include "test/privileged/harness.h"
#include "test/vm/vm_env.h"

namespace schroot::test {
namespace {

namespace lvm = sys::lvm;

// The value of the line `label` of an --info block ("  LABEL   value").
std::string info_value(const std::string& info, const std::string& label) {
  const auto at = info.find("  " + label + " ");
  if (at == std::string::npos) return "";
  const auto start = info.find_first_not_of(' ', at + 2 + label.size());
  return info.substr(start, info.find('\n', start) - start);
}

// The session snapshots LVM has (tag schroot_session), by name.
std::vector<std::string> session_lvs() {
  std::vector<std::string> names;
  for (const auto& lv : lvm::list_tagged(lvm::kSessionTag)) names.push_back(lv.ref.full());
  return names;
}

// Removes what a failed test left (so the next one starts clean) and says what it was.
std::vector<std::string> remove_session_lvs() {
  std::vector<std::string> left;
  for (const auto& lv : lvm::list_tagged(lvm::kSessionTag)) {
    left.push_back(lv.ref.full());
    lvm::runner().run({"lvremove", "-f", lv.ref.full()});
  }
  return left;
}

// What LVM and device-mapper hold now, for a failure's message.
std::string lvm_state() {
  std::string out;
  sys::run_program({"/bin/sh", "-c", "lvm lvs -a -o lv_name,lv_attr,lv_tags 2>&1; dmsetup ls 2>&1"},
                   {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "DM_DISABLE_UDEV=1"}, &out);
  return out;
}

// The device-mapper devices the kernel has now, by name (dmsetup ls): an lvcreate
// killed before it wrote the VG's metadata leaves devices no LV names ("vg-r1-cow").
std::vector<std::string> dm_devices() {
  std::string out;
  sys::run_program({"/bin/sh", "-c", "dmsetup ls 2>&1"}, {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "DM_DISABLE_UDEV=1"},
                   &out);
  std::vector<std::string> names;
  size_t start = 0;
  for (size_t nl; (nl = out.find('\n', start)) != std::string::npos; start = nl + 1) {
    const std::string line = out.substr(start, nl - start);
    if (line.empty() || line == "No devices found") continue;
    names.push_back(line.substr(0, line.find('\t')));
  }
  return names;
}

class LvmSession : public ::testing::Test {
 protected:
  void SetUp() override {
    vg_ = env("SCHROOT_VM_VG");
    origin_ = env("SCHROOT_VM_ORIGIN");
    thin_ = env("SCHROOT_VM_THIN_ORIGIN");
    ASSERT_FALSE(vg_.empty());
    ASSERT_TRUE(session_lvs().empty()) << "an earlier test left " << ::testing::PrintToString(session_lvs());
    std::string conf = "[snap]\ntype=lvm-snapshot\ndevice=" + origin_ +
                       "\nlvm-snapshot-options=--size 16M\nprofile=minimal\n"
                       "[small]\ntype=lvm-snapshot\ndevice=" + origin_ +
                       "\nlvm-snapshot-options=--size 4M\nprofile=minimal\n"
                       "[wrongfs]\ntype=lvm-snapshot\ndevice=" + origin_ +
                       "\nlvm-snapshot-options=--size 16M\nfilesystem-type=xfs\nprofile=minimal\n"
                       "[nostripes]\ntype=lvm-snapshot\ndevice=" + origin_ +
                       "\nlvm-snapshot-options=--size 16M -i 2\nprofile=minimal\n"
                       "[named]\ntype=lvm-snapshot\ndevice=" + origin_ +
                       "\nlvm-snapshot-options=--size 16M -n mine\nprofile=minimal\n";
    if (!thin_.empty())
      conf += "[thin]\ntype=lvm-snapshot\ndevice=" + thin_ + "\nlvm-snapshot-options=\nprofile=minimal\n";
    root_.write_config(conf);
    dm_before_ = dm_devices();
  }
  void TearDown() override {
    // Whatever a failing test left: sessions first (their mounts), then LVs.
    root_.schroot({"--end-session", "--all-sessions", "--force"});
    const auto left = remove_session_lvs();
    EXPECT_TRUE(left.empty()) << "left behind: " << ::testing::PrintToString(left);
  }

  // Nothing of any session left: no record, mount, lock holder note or snapshot LV.
  void expect_nothing_left() {
    EXPECT_TRUE(root_.records().empty()) << ::testing::PrintToString(root_.records());
    EXPECT_TRUE(root_.mounts_below_root().empty()) << ::testing::PrintToString(root_.mounts_below_root());
    EXPECT_TRUE(root_.lock_holder_files().empty()) << ::testing::PrintToString(root_.lock_holder_files());
    EXPECT_TRUE(session_lvs().empty()) << ::testing::PrintToString(session_lvs());
    EXPECT_EQ(dm_devices(), dm_before_) << "device-mapper devices changed\n" << lvm_state();
  }

  // What the origin holds now, read through a source: session (its own mount).
  std::string in_origin(const std::string& shell) {
    auto r = root_.schroot({"-c", "source:snap", "-d", "/", "--", "sh", "-c", shell});
    EXPECT_EQ(r.status, 0) << r.err;
    return r.out;
  }

  int recover_all() {
    int failures = 0;
    auto rec = root_.schroot({"--recover-session", "--all-sessions"});
    if (rec.status != 0) {
      ++failures;
      ADD_FAILURE() << "recover failed: " << rec.err;
    }
    auto end = root_.schroot({"--end-session", "--all-sessions"});
    if (end.status != 0) {
      ++failures;
      ADD_FAILURE() << "end failed: " << end.err;
    }
    return failures;
  }

  TestRoot root_;
  std::string vg_, origin_, thin_;
  std::vector<std::string> dm_before_;  // dmsetup ls when the test began
};

TEST_F(LvmSession, ABegunSessionRunsInItsOwnSnapshotWhichItsEndRemoves) {
  auto b = root_.schroot({"-c", "snap", "-b", "-n", "s1"});
  ASSERT_EQ(b.status, 0) << b.err;
  const auto info_lv = lvm::find({vg_, "s1"});
  ASSERT_TRUE(info_lv) << "no LV " << vg_ << "/s1";
  EXPECT_EQ(info_lv->origin, "origin");
  EXPECT_TRUE(info_lv->has_tag(lvm::kSessionTag));
  ASSERT_EQ(info_lv->tags.size(), 2u) << ::testing::PrintToString(info_lv->tags);

  auto r = root_.schroot({"-c", "s1", "-r", "-d", "/", "--", "sh", "-c", "cat /hello; echo x > /written"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "origin v1\n");
  auto again = root_.schroot({"-c", "s1", "-r", "-d", "/", "--", "cat", "/written"});
  EXPECT_EQ(again.out, "x\n") << again.err;

  auto info = root_.schroot({"-c", "session:s1", "-i"});
  EXPECT_TRUE(contains(info.out, "LVM Snapshot Device")) << info.out;
  EXPECT_TRUE(contains(info.out, "/dev/" + vg_ + "/s1")) << info.out;
  EXPECT_TRUE(contains(info_value(info.out, "LVM Snapshot Usage"), "% (")) << info.out;
  EXPECT_EQ(info_value(info.out, "LVM Snapshot State"), "valid") << info.out;

  auto e = root_.schroot({"-c", "s1", "-e"});
  EXPECT_EQ(e.status, 0) << e.err;
  expect_nothing_left();
  EXPECT_FALSE(path_exists("/dev/" + vg_ + "/s1"));
  EXPECT_EQ(sys::devmapper::snapshot_status(lvm::LvRef{vg_, "s1"}.dm_name()).state,
            sys::devmapper::SnapshotStatus::State::kAbsent);
}

TEST_F(LvmSession, ChangesInASnapshotNeverReachTheOrigin) {
  auto r = root_.schroot({"-c", "snap", "-d", "/", "--", "sh", "-c", "echo new > /new && rm /hello && test ! -e /hello"});
  ASSERT_EQ(r.status, 0) << r.err;

  EXPECT_EQ(in_origin("cat /hello; test -e /new && echo new-reached-origin; true"), "origin v1\n");
  expect_nothing_left();
}

TEST_F(LvmSession, HooksSeeTheSnapshotAsSchroot16ShowedIt) {
  root_.add_hook("15show", "#!/bin/sh\necho \"$1 $CHROOT_TYPE $CHROOT_DEVICE $CHROOT_MOUNT_DEVICE "
                           "$CHROOT_LVM_SNAPSHOT_NAME $CHROOT_LVM_SNAPSHOT_DEVICE $CHROOT_LVM_SNAPSHOT_OPTIONS\" >> " +
                               root_.root() + "/hook.log\n");
  ASSERT_TRUE(succeeded(root_.schroot({"-c", "snap", "-b", "-n", "h1"})));
  ASSERT_TRUE(succeeded(root_.schroot({"-c", "h1", "-e"})));

  const std::string snap = "/dev/" + vg_ + "/h1";
  EXPECT_EQ(read_text(root_.root() + "/hook.log"),
            "setup-start lvm-snapshot " + origin_ + " " + snap + " h1 " + snap + " --size 16M\n" +
                "setup-stop lvm-snapshot " + origin_ + " " + snap + " h1 " + snap + " --size 16M\n");
  expect_nothing_left();
}

TEST_F(LvmSession, TheSnapshotIsRemovedOnEveryFailurePathOfBegin) {
  struct Case {
    const char* what;
    const char* chroot;
    const char* hook;  // a setup.d hook that fails at setup-start, or null
    std::string says;
  };
  const Case cases[] = {
      {"a hook failing before the mount", "snap", "05fail", "setup.d/05fail exited with status 1"},
      {"a hook failing after the mount", "snap", "15fail", "setup.d/15fail exited with status 1"},
      {"a hook failing last", "snap", "90fail", "setup.d/90fail exited with status 1"},
      {"the mount failing (wrong filesystem-type)", "wrongfs", nullptr, "cannot mount snapshot"},
      {"lvcreate failing (2 stripes on 1 PV)", "nostripes", nullptr, "nostripes: lvcreate snapshot " + vg_ + "/"},
      {"refused options (-n)", "named", nullptr, "named: lvm-snapshot-options: ‘-n’"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    const std::string hook_file = root_.sysconf() + "/setup.d/" + (c.hook ? c.hook : "none");
    if (c.hook) root_.add_hook(c.hook, "#!/bin/sh\n[ \"$1\" = setup-start ] && exit 1\nexit 0\n");
    for (const bool automatic : {false, true}) {
      auto r = automatic ? root_.schroot({"-c", c.chroot, "--", "true"}) : root_.schroot({"-c", c.chroot, "-b", "-n", "f1"});
      EXPECT_NE(r.status, 0);
      EXPECT_TRUE(contains(r.err, c.says)) << r.err;
      expect_nothing_left();
    }
    if (c.hook) ::unlink(hook_file.c_str());
  }
}

// Every fail point of begin and end, -b and automatic sessions; recovery after each.
TEST_F(LvmSession, AKillAtEveryFailPointOfBeginAndEndLeavesNoLvAfterRecovery) {
  root_.add_hook("15hook", "#!/bin/sh\nexit 0\n");
  const char* const begin_points[] = {"begin:written", "begin:00device", "begin:lv-created", "begin:10mount",
                                      "begin:15hook",  "begin:20fstab",  "begin:done",       "begin:active"};
  const char* const end_points[] = {"end:ending", "end:unmount-listed", "end:undo", "end:undone"};
  int kills = 0;
  for (const char* point : begin_points) {
    SCOPED_TRACE(point);
    auto r = root_.schroot({"-c", "snap", "-b", "-n", "k1"}, {std::string("SCHROOT_FAIL_AT=") + point});
    EXPECT_EQ(r.status, 128 + SIGKILL) << r.err;
    kills += r.status == 128 + SIGKILL;
    recover_all();
    expect_nothing_left();
    auto a = root_.schroot({"-c", "snap", "--", "true"}, {std::string("SCHROOT_FAIL_AT=") + point});
    kills += a.status == 128 + SIGKILL;
    recover_all();
    expect_nothing_left();
  }
  for (const char* point : end_points) {
    SCOPED_TRACE(point);
    ASSERT_TRUE(succeeded(root_.schroot({"-c", "snap", "-b", "-n", "k1"})));
    auto r = root_.schroot({"-c", "k1", "-e"}, {std::string("SCHROOT_FAIL_AT=") + point});
    EXPECT_EQ(r.status, 128 + SIGKILL) << r.err;
    kills += r.status == 128 + SIGKILL;
    recover_all();
    expect_nothing_left();
  }
  std::printf("lvm fail points: %d SIGKILLs\n", kills);
}

// What the random kills found: an lvcreate killed after it made the snapshot's COW
// device but before it wrote the metadata leaves "VG-LV-cow" with no LV. Recovery
// removes such a device by the recorded name when LVM made it and nothing holds it
// open, and keeps (and names) one that LVM did not make.
TEST_F(LvmSession, RecoveryRemovesTheDeviceMapperDevicesAKilledLvcreateLeft) {
  const std::string dm_name = lvm::LvRef{vg_, lvm::snapshot_lv_name("k1", vg_)}.dm_name();
  auto dmsetup = [](const std::string& args) {
    std::string out;
    const auto st = sys::run_program({"/bin/sh", "-c", "dmsetup " + args + " 2>&1"},
                                     {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "DM_DISABLE_UDEV=1"}, &out);
    EXPECT_TRUE(st.success()) << "dmsetup " << args << ": " << out;
  };
  for (const bool made_by_lvm : {true, false}) {
    SCOPED_TRACE(made_by_lvm ? "made by LVM" : "not made by LVM");
    auto r = root_.schroot({"-c", "snap", "-b", "-n", "k1"}, {"SCHROOT_FAIL_AT=begin:written"});
    ASSERT_EQ(r.status, 128 + SIGKILL) << r.err;
    const std::string uuid = made_by_lvm ? "LVM-schroottestorphan-cow" : "CRYPT-schroottestorphan";
    dmsetup("create " + dm_name + "-cow --uuid " + uuid + " --table '0 8 error'");
    auto rec = root_.schroot({"--verbose", "--recover-session", "-c", "k1"});
    if (made_by_lvm) {
      EXPECT_EQ(rec.status, 0) << rec.err;
      EXPECT_TRUE(contains(rec.err, "removed the device-mapper device " + dm_name + "-cow")) << rec.err;
      expect_nothing_left();
    } else {
      EXPECT_NE(rec.status, 0);
      EXPECT_TRUE(contains(rec.err, dm_name + "-cow (not made by LVM")) << rec.err;
      EXPECT_EQ(root_.records(), std::vector<std::string>{"k1"}) << "the record went while a device remained";
      dmsetup("remove " + dm_name + "-cow");
      EXPECT_TRUE(succeeded(root_.schroot({"--recover-session", "-c", "k1"})));
      expect_nothing_left();
    }
  }
}

// Kills from outside at random moments of begin and end (SCHROOT_VM_KILLS of them,
// default 50), each followed by recovery: no LV, record or mount may survive.
TEST_F(LvmSession, RandomKillsDuringBeginAndEndLeaveNoLvAfterRecovery) {
  const int wanted = env("SCHROOT_VM_KILLS").empty() ? 50 : std::atoi(env("SCHROOT_VM_KILLS").c_str());
  std::mt19937 rng(4242);
  // A begin takes a few lvm runs (0.3 to 1 s each under TCG), an end two: kills land
  // anywhere in them.
  std::uniform_int_distribution<int> begin_delay_ms(0, 2500), end_delay_ms(0, 1200);
  int kills = 0, rounds = 0, leaked = 0;
  for (; kills < wanted && rounds < wanted * 4 && leaked == 0; ++rounds) {
    const bool during_end = rounds % 2 == 1;
    if (during_end) {
      auto b = root_.schroot({"-c", "snap", "-b", "-n", "r1"});
      ASSERT_EQ(b.status, 0) << "round " << rounds << ": " << b.err << lvm_state();
    }
    sys::Command cmd = program_command(SCHROOT_UNDER_TEST, during_end ? std::vector<std::string>{"-c", "r1", "-e"}
                                                                      : std::vector<std::string>{"-c", "snap", "-b", "-n", "r1"},
                                       {});
    cmd.out = sys::Stream::null();
    cmd.err = sys::Stream::null();
    sys::Child child = sys::Child::spawn(cmd);
    std::this_thread::sleep_for(std::chrono::milliseconds(during_end ? end_delay_ms(rng) : begin_delay_ms(rng)));
    child.send_signal(SIGKILL);
    const sys::ExitStatus st = child.wait();
    kills += !st.exited && st.signal == SIGKILL;
    // A begin that was not killed must have succeeded (or been rolled back cleanly).
    if (st.exited && !during_end) {
      EXPECT_EQ(st.code, 0) << "round " << rounds << lvm_state();
    }
    leaked += recover_all();
    const auto lvs = session_lvs();
    const auto records = root_.records();
    const auto mounts = root_.mounts_below_root();
    const auto dm = dm_devices();
    leaked += static_cast<int>(lvs.size() + records.size() + mounts.size()) + (dm != dm_before_);
    EXPECT_TRUE(lvs.empty() && records.empty() && mounts.empty() && dm == dm_before_)
        << "round " << rounds << ": LVs " << ::testing::PrintToString(lvs) << " records "
        << ::testing::PrintToString(records) << " mounts " << ::testing::PrintToString(mounts) << " dm devices "
        << ::testing::PrintToString(dm) << " (before: " << ::testing::PrintToString(dm_before_) << ")";
  }
  std::printf("lvm random kills: %d SIGKILLs in %d rounds, %d leaked\n", kills, rounds, leaked);
  EXPECT_GE(kills, wanted);
  EXPECT_EQ(leaked, 0);
}

TEST_F(LvmSession, RecoveryAfterARebootReactivatesTheSnapshotAndKeepsItsFiles) {
  ASSERT_TRUE(succeeded(root_.schroot({"-c", "snap", "-b", "-n", "rb"})));
  ASSERT_TRUE(succeeded(root_.schroot({"-c", "rb", "-r", "-d", "/", "--", "sh", "-c", "echo kept > /kept"})));
  // What a reboot leaves: no mounts, the snapshot inactive (LVM keeps the volume).
  const sys::UnmountResult gone = sys::unmount_tree(root_.run_dir() + "/mount/rb", /*allow_lazy=*/false);
  ASSERT_TRUE(gone.problems.empty()) << ::testing::PrintToString(gone.problems);
  // A classic snapshot is (de)activated with its origin.
  const lvm::Output off = lvm::runner().run({"lvchange", "-an", vg_ + "/origin"});
  ASSERT_TRUE(off.status.success()) << off.err;
  ASSERT_FALSE(lvm::find({vg_, "rb"})->active());

  auto rec = root_.schroot({"--recover-session", "-c", "rb"});
  EXPECT_EQ(rec.status, 0) << rec.err;
  auto r = root_.schroot({"-c", "rb", "-r", "-d", "/", "--", "cat", "/kept"});
  EXPECT_EQ(r.out, "kept\n") << r.err;

  EXPECT_TRUE(succeeded(root_.schroot({"-c", "rb", "-e"})));
  expect_nothing_left();
}

TEST_F(LvmSession, ABusySnapshotIsNeverDetachedLazilyAndEndsOnceReleased) {
  ASSERT_TRUE(succeeded(root_.schroot({"-c", "snap", "-b", "-n", "busy"})));
  // Outside the session (its root is /), holding the snapshot's file system open.
  const std::string location = root_.run_dir() + "/mount/busy";
  Background holder("/bin/sh", {"-c", "cd " + location + " && " + kReadyThenWait});
  ASSERT_EQ(holder.read_line(kDeadline), std::optional<std::string>("ready")) << holder.err();

  auto e = root_.schroot({"-c", "busy", "-e"});
  EXPECT_NE(e.status, 0);
  EXPECT_TRUE(contains(e.err, "never detached lazily")) << e.err;
  EXPECT_TRUE(lvm::find({vg_, "busy"})) << "the snapshot went while its file system was in use";

  holder.close_stdin();
  EXPECT_EQ(holder.wait(kDeadline), 0);
  auto again = root_.schroot({"-c", "busy", "-e"});
  EXPECT_EQ(again.status, 0) << again.err;
  expect_nothing_left();
}

TEST_F(LvmSession, AnOverflowedSnapshotIsShownInvalidAndRefusesToRun) {
  ASSERT_TRUE(succeeded(root_.schroot({"-c", "small", "-b", "-n", "ov"})));
  // Over 12 MiB (busybox is about 2 MiB) into a 4 MiB copy-on-write area: the kernel
  // invalidates the snapshot. (The minimal profile mounts no /dev: no /dev/zero.)
  auto fill = root_.schroot({"-c", "ov", "-r", "-d", "/", "--", "sh", "-c",
                             "for i in 1 2 3 4 5 6 7 8; do cat /bin/busybox >> /big; done; sync; ls -l /big"});
  EXPECT_TRUE(contains(fill.out + fill.err, "big")) << fill.out << fill.err;

  auto info = root_.schroot({"-c", "session:ov", "-i"});
  EXPECT_EQ(info.status, 0) << info.err;
  EXPECT_EQ(info_value(info.out, "LVM Snapshot State").rfind("Invalid", 0), 0u) << info.out;

  auto r = root_.schroot({"-c", "ov", "-r", "--", "true"});
  EXPECT_NE(r.status, 0);
  EXPECT_TRUE(contains(r.err, "ov: its LVM snapshot " + vg_ + "/ov has overflowed (Invalid)")) << r.err;

  auto e = root_.schroot({"-c", "ov", "-e"});
  EXPECT_EQ(e.status, 0) << e.err;
  expect_nothing_left();
}

TEST_F(LvmSession, ASourceSessionAndSnapshotSessionsExcludeEachOther) {
  ASSERT_TRUE(succeeded(root_.schroot({"-c", "snap", "-b", "-n", "s1"})));
  auto source = root_.schroot({"-c", "source:snap", "--source-lock-timeout", "0", "--", "true"});
  EXPECT_NE(source.status, 0);
  EXPECT_TRUE(contains(source.err, "in use by session(s) s1")) << source.err;
  ASSERT_TRUE(succeeded(root_.schroot({"-c", "s1", "-e"})));

  ASSERT_TRUE(succeeded(root_.schroot({"-c", "source:snap", "-b", "-n", "src"})));
  auto snap = root_.schroot({"-c", "snap", "--source-lock-timeout", "0", "--", "true"});
  EXPECT_NE(snap.status, 0);
  EXPECT_TRUE(contains(snap.err, "in use by session(s) src")) << snap.err;
  // The source session writes the origin itself.
  ASSERT_TRUE(succeeded(root_.schroot({"-c", "src", "-r", "-d", "/", "--", "sh", "-c", "echo by-source > /by-source"})));
  ASSERT_TRUE(succeeded(root_.schroot({"-c", "src", "-e"})));

  auto seen = root_.schroot({"-c", "snap", "-d", "/", "--", "cat", "/by-source"});
  EXPECT_EQ(seen.out, "by-source\n") << seen.err;
  EXPECT_EQ(in_origin("rm /by-source && echo removed"), "removed\n");
  expect_nothing_left();
}

TEST_F(LvmSession, EndingAllSessionsRemovesSessionSnapshotsAndNoOtherLv) {
  // An LV another tool (or a named snapshot, later) made: never ours to remove.
  ASSERT_TRUE(lvm::runner().run({"lvcreate", "--snapshot", "--size", "8M", "--name", "kept", "--addtag",
                                 lvm::kNamedTag, vg_ + "/origin"}).status.success());
  dm_before_ = dm_devices();  // with kept's devices: they must stay
  ASSERT_TRUE(succeeded(root_.schroot({"-c", "snap", "-b", "-n", "a1"})));
  ASSERT_TRUE(succeeded(root_.schroot({"-c", "snap", "-b", "-n", "a2"})));
  EXPECT_EQ(session_lvs().size(), 2u);

  auto e = root_.schroot({"--end-session", "--all-sessions"});
  EXPECT_EQ(e.status, 0) << e.err;

  expect_nothing_left();
  EXPECT_TRUE(lvm::find({vg_, "kept"}));
  lvm::runner().run({"lvremove", "-f", vg_ + "/kept"});
}

TEST_F(LvmSession, AnLvOfTheSessionsNameWithoutItsTagSurvivesTheRollback) {
  // Someone else's LV under the name the session would take: lvcreate fails, and the
  // rollback must not remove that LV (it lacks the session's own tag).
  ASSERT_TRUE(lvm::runner().run({"lvcreate", "--snapshot", "--size", "8M", "--name", "taken", "--addtag",
                                 lvm::kSessionTag, vg_ + "/origin"}).status.success());
  dm_before_ = dm_devices();  // with taken's devices: they must stay
  auto r = root_.schroot({"-c", "snap", "-b", "-n", "taken"});
  EXPECT_NE(r.status, 0);
  EXPECT_TRUE(contains(r.err, "already exists")) << r.err;
  EXPECT_TRUE(lvm::find({vg_, "taken"}));
  EXPECT_TRUE(root_.records().empty());
  lvm::runner().run({"lvremove", "-f", vg_ + "/taken"});
}

TEST_F(LvmSession, AThinOriginGetsAThinSnapshotThatIsActivatedAndRemoved) {
  if (thin_.empty()) GTEST_SKIP() << "no thin pool in this VM (thin-provisioning-tools not installed on the host)";
  auto r = root_.schroot({"-c", "thin", "-b", "-n", "t1"});
  ASSERT_EQ(r.status, 0) << r.err;
  const auto lv = lvm::find({vg_, "t1"});
  ASSERT_TRUE(lv);
  EXPECT_TRUE(lv->thin());
  EXPECT_TRUE(lv->active());
  auto run = root_.schroot({"-c", "t1", "-r", "-d", "/", "--", "cat", "/hello"});
  EXPECT_EQ(run.out, "thin origin v1\n") << run.err;
  auto info = root_.schroot({"-c", "session:t1", "-i"});
  EXPECT_TRUE(contains(info_value(info.out, "LVM Snapshot Usage"), "(thin)")) << info.out;
  EXPECT_TRUE(succeeded(root_.schroot({"-c", "t1", "-e"})));
  expect_nothing_left();
}

}  // namespace
}  // namespace schroot::test
