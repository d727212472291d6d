// Overlay unions and loop-file images, end to end with the real binary.
#include <gtest/gtest.h>
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "src/sys/command.h"
#include "src/sys/loop_device.h"
#include "test/privileged/harness.h"

using schroot::test::path_exists;
using schroot::test::read_text;
using schroot::test::run;
using schroot::test::TestRoot;
using schroot::test::trim;

namespace {

class Union : public ::testing::Test {
 protected:
  void SetUp() override {
    tree_ = root_.make_tree("bb");
    root_.write_config("[bb]\ntype=directory\ndirectory=" + tree_ +
                       "\nprofile=minimal\nunion-type=overlay\n"
                       "[img]\ntype=loopback\nfile=" + root_.root() + "/srv/bb.img\nprofile=minimal\n"
                       "[img-union]\ntype=loopback\nfile=" + root_.root() + "/srv/bb.img\nprofile=minimal\nunion-type=overlay\n");
  }
  void make_image() {
    ASSERT_EQ(run("mke2fs -q -F -t ext4 -d " + tree_ + " " + root_.root() + "/srv/bb.img 16M"), 0);
    struct stat st;
    ASSERT_EQ(stat((root_.root() + "/srv/bb.img").c_str(), &st), 0);
    img_dev_ = st.st_dev;
    img_ino_ = st.st_ino;
  }
  void expect_no_leaks() {
    EXPECT_TRUE(root_.mounts_below_root().empty()) << ::testing::PrintToString(root_.mounts_below_root());
    EXPECT_TRUE(root_.records().empty()) << ::testing::PrintToString(root_.records());
    EXPECT_TRUE(root_.union_dirs().empty()) << ::testing::PrintToString(root_.union_dirs());
    if (img_ino_) {
      EXPECT_TRUE(schroot::test::loops_backed_by(img_dev_, img_ino_).empty());
    }
  }
  TestRoot root_;
  std::string tree_;
  dev_t img_dev_ = 0;
  ino_t img_ino_ = 0;
};

TEST_F(Union, ChangesInAUnionSessionNeverReachTheSource) {
  auto r = root_.schroot({"-c", "bb", "-d", "/", "--", "sh", "-c", "touch /x && rm /bin/ls && test -e /x"});

  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_FALSE(path_exists(tree_ + "/x"));
  EXPECT_TRUE(path_exists(tree_ + "/bin/ls"));
  expect_no_leaks();
}

TEST_F(Union, SourceSessionChangesPersist) {
  auto r = root_.schroot({"-c", "source:bb", "-d", "/", "--", "touch", "/persisted"});

  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(path_exists(tree_ + "/persisted"));
  expect_no_leaks();
}

TEST_F(Union, BegunUnionSessionKeepsItsChangesUntilEnded) {
  ASSERT_TRUE(succeeded(root_.schroot({"-c", "bb", "-b", "-n", "u1"})));
  ASSERT_TRUE(succeeded(root_.schroot({"-c", "u1", "-r", "-d", "/", "--", "sh", "-c", "echo kept > /state"})));

  auto r = root_.schroot({"-c", "u1", "-r", "-d", "/", "--", "cat", "/state"});

  EXPECT_EQ(trim(r.out), "kept");
  EXPECT_TRUE(path_exists(root_.state() + "/union/overlay/u1/upper/state"));
  EXPECT_TRUE(succeeded(root_.schroot({"-c", "u1", "-e"})));
  expect_no_leaks();
}

TEST_F(Union, SourceSessionWaitsForUnionSessionsAndNamesThem) {
  ASSERT_TRUE(succeeded(root_.schroot({"-c", "bb", "-b", "-n", "u2"})));

  auto s = root_.schroot({"-c", "source:bb", "-b", "-n", "src", "--source-lock-timeout", "1"});

  EXPECT_EQ(s.status, 1);
  EXPECT_NE(s.err.find("u2"), std::string::npos) << s.err;
  EXPECT_TRUE(succeeded(root_.schroot({"-c", "u2", "-e"})));
  auto again = root_.schroot({"-c", "source:bb", "-b", "-n", "src"});
  EXPECT_EQ(again.status, 0) << again.err;
  EXPECT_TRUE(succeeded(root_.schroot({"-c", "src", "-e"})));
  expect_no_leaks();
}

TEST_F(Union, RecoverAfterRebootRemountsWithTheSessionsChanges) {
  ASSERT_TRUE(succeeded(root_.schroot({"-c", "bb", "-b", "-n", "u3"})));
  ASSERT_TRUE(succeeded(root_.schroot({"-c", "u3", "-r", "-d", "/", "--", "touch", "/survivor"})));
  // Simulate a reboot: mounts vanish, the record's boot id is an old one.
  ASSERT_EQ(run("umount -R " + root_.run_dir() + "/mount/u3 && umount -R " + root_.state() + "/union/underlay/u3"), 0);
  const std::string rec = root_.state() + "/session/u3";
  std::string text = read_text(rec);
  auto pos = text.find("\"boot-id\": \"");
  ASSERT_NE(pos, std::string::npos);
  text.replace(pos + 12, 36, "00000000-0000-0000-0000-000000000000");
  root_.write_file(rec, text);
  EXPECT_EQ(root_.schroot({"-c", "u3", "-r", "--", "true"}).status, 1);

  auto rec_result = root_.schroot({"-c", "u3", "--recover-session"});
  auto r = root_.schroot({"-c", "u3", "-r", "-d", "/", "--", "test", "-e", "/survivor"});

  EXPECT_EQ(rec_result.status, 0) << rec_result.err;
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(succeeded(root_.schroot({"-c", "u3", "-e"})));
  expect_no_leaks();
}

TEST_F(Union, LoopbackImageSessionMountsTheImage) {
  make_image();

  auto r = root_.schroot({"-c", "img", "-d", "/", "--", "sh", "-c", "test -x /bin/busybox && touch /written"});

  EXPECT_EQ(r.status, 0) << r.err;
  expect_no_leaks();
}

TEST_F(Union, UnionOverImageLeavesTheImageUnchanged) {
  make_image();
  std::string before = read_text(root_.root() + "/srv/bb.img");

  auto r = root_.schroot({"-c", "img-union", "-d", "/", "--", "sh", "-c", "touch /x && test -e /x"});

  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(read_text(root_.root() + "/srv/bb.img") == before);
  expect_no_leaks();
}

TEST_F(Union, TwoUnionSessionsOfOneImageRunSideBySide) {
  make_image();
  ASSERT_TRUE(succeeded(root_.schroot({"-c", "img-union", "-b", "-n", "i1"})));
  ASSERT_TRUE(succeeded(root_.schroot({"-c", "img-union", "-b", "-n", "i2"})));

  EXPECT_EQ(schroot::test::loops_backed_by(img_dev_, img_ino_).size(), 2u);
  EXPECT_TRUE(succeeded(root_.schroot({"-c", "i1", "-e"})));
  EXPECT_TRUE(succeeded(root_.schroot({"-c", "i2", "-r", "-d", "/", "--", "true"})));
  EXPECT_TRUE(succeeded(root_.schroot({"-c", "i2", "-e"})));
  expect_no_leaks();
}

TEST_F(Union, MissingImageFailsCleanly) {
  auto r = root_.schroot({"-c", "img", "--", "true"});

  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("bb.img"), std::string::npos) << r.err;
  expect_no_leaks();
}

TEST_F(Union, CorruptImageReleasesItsLoopDevice) {
  ASSERT_EQ(run("head -c 8M /dev/zero > " + root_.root() + "/srv/bb.img"), 0);
  struct stat st;
  ASSERT_EQ(stat((root_.root() + "/srv/bb.img").c_str(), &st), 0);
  img_dev_ = st.st_dev;
  img_ino_ = st.st_ino;
  root_.write_config("[img]\ntype=loopback\nfile=" + root_.root() + "/srv/bb.img\nfilesystem-type=ext4\n");

  auto r = root_.schroot({"-c", "img", "--", "true"});

  EXPECT_EQ(r.status, 1);
  expect_no_leaks();
}

// A hook failing between the device and mount stages (05fail) rolls back a loopback
// session completely: its loop device is released, not waited on until it breaks.
TEST_F(Union, HookFailingAfterTheDeviceStageReleasesTheLoopDevice) {
  make_image();
  root_.add_hook("05fail", "#!/bin/sh\n[ \"$1\" = setup-start ] && exit 1\nexit 0\n");

  auto r = root_.schroot({"-c", "img", "-b", "-n", "f"});

  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.err.find("broken"), std::string::npos) << r.err;
  expect_no_leaks();
}

// Two sessions of one image with ids that share their first 63 bytes (the loop
// device label's room) each end their own device only.
TEST_F(Union, LongSessionIdsSharingAPrefixEndTheirOwnLoopDevices) {
  make_image();
  const std::string prefix(70, 'x');
  ASSERT_TRUE(succeeded(root_.schroot({"-c", "img-union", "-b", "-n", prefix + "1"})));
  ASSERT_TRUE(succeeded(root_.schroot({"-c", "img-union", "-b", "-n", prefix + "2"})));

  auto e1 = root_.schroot({"-c", prefix + "1", "-e"});
  auto r2 = root_.schroot({"-c", prefix + "2", "-r", "-d", "/", "--", "test", "-x", "/bin/busybox"});

  EXPECT_EQ(e1.status, 0) << e1.err;
  EXPECT_EQ(r2.status, 0) << r2.err;
  EXPECT_TRUE(succeeded(root_.schroot({"-c", prefix + "2", "-e"})));
  expect_no_leaks();
}

}  // namespace (fixture)

namespace {

TEST_F(Union, SessionOfADeadProcessInTheWayIsRolledBack) {
  auto killed = root_.schroot({"-c", "source:bb", "-b", "-n", "dead"}, {"SCHROOT_FAIL_AT=begin:50chrootname"});
  ASSERT_EQ(killed.status, 128 + 9);
  ASSERT_EQ(root_.records().size(), 1u);

  auto b = root_.schroot({"-c", "bb", "-b", "-n", "alive", "--source-lock-timeout", "0"});

  EXPECT_EQ(b.status, 0) << b.err;
  EXPECT_NE(b.err.find("dead"), std::string::npos) << b.err;
  EXPECT_EQ(root_.records(), std::vector<std::string>{"alive"});
  EXPECT_TRUE(succeeded(root_.schroot({"-c", "alive", "-e"})));
  expect_no_leaks();
}

TEST_F(Union, BeginReusesTheNameOfASessionWhoseProcessDied) {
  ASSERT_EQ(root_.schroot({"-c", "bb", "-b", "-n", "again"}, {"SCHROOT_FAIL_AT=begin:20fstab"}).status, 128 + 9);

  auto b = root_.schroot({"-c", "bb", "-b", "-n", "again"});

  EXPECT_EQ(b.status, 0) << b.err;
  EXPECT_TRUE(succeeded(root_.schroot({"-c", "again", "-e"})));
  expect_no_leaks();
}

TEST_F(Union, BeginRefusesTheNameOfALiveSession) {
  ASSERT_TRUE(succeeded(root_.schroot({"-c", "bb", "-b", "-n", "taken"})));

  auto b = root_.schroot({"-c", "bb", "-b", "-n", "taken"});

  EXPECT_EQ(b.status, 1);
  EXPECT_NE(b.err.find("already exists"), std::string::npos) << b.err;
  EXPECT_TRUE(succeeded(root_.schroot({"-c", "taken", "-e"})));
  expect_no_leaks();
}

}  // namespace

namespace {

TEST_F(Union, ImageThatIsADirectoryIsRefusedCleanly) {
  ASSERT_EQ(mkdir((root_.root() + "/srv/bb.img").c_str(), 0755), 0);

  auto r = root_.schroot({"-c", "img", "--", "true"});

  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("not a regular file"), std::string::npos) << r.err;
  expect_no_leaks();
}

TEST_F(Union, UpperDirectoryOnOverlayfsGetsAClearMessage) {
  const std::string base = root_.root() + "/ovl";
  ASSERT_EQ(run("mkdir -p " + base + "/lower " + base + "/upper " + base + "/work " + base + "/merged"), 0);
  ASSERT_EQ(run("mount -t overlay overlay -o lowerdir=" + base + "/lower,upperdir=" + base + "/upper,workdir=" +
                base + "/work " + base + "/merged"),
            0);
  root_.write_config("[bb]\ntype=directory\ndirectory=" + tree_ + "\nunion-type=overlay\nunion-overlay-directory=" +
                     base + "/merged\n");

  auto r = root_.schroot({"-c", "bb", "--", "true"});

  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("upper"), std::string::npos) << r.err;
  EXPECT_EQ(run("umount " + base + "/merged"), 0);
  expect_no_leaks();
}

TEST_F(Union, UnionOverAnImageOnAReadOnlyFilesystemWorks) {
  make_image();
  ASSERT_EQ(run("mount --bind " + root_.root() + "/srv " + root_.root() + "/srv && mount -o remount,bind,ro " +
                root_.root() + "/srv"),
            0);

  auto u = root_.schroot({"-c", "img-union", "-d", "/", "--", "touch", "/x"});
  auto rw = root_.schroot({"-c", "img", "--", "true"});

  EXPECT_EQ(u.status, 0) << u.err;
  EXPECT_EQ(rw.status, 1);
  EXPECT_NE(rw.err.find("read-only"), std::string::npos) << rw.err;
  EXPECT_EQ(run("umount " + root_.root() + "/srv"), 0);
  expect_no_leaks();
}

}  // namespace

namespace {

TEST_F(Union, SessionThatCannotBeUndoneIsMarkedBrokenWithTheReasonAndEndsLater) {
  // A hook leaves a mount inside the overlay directory: purging it must not cross
  // into that mount, so the end fails and says why.
  const std::string unpinned = root_.root() + "/unpinned";
  root_.add_hook("15pin", "#!/bin/sh\nif [ \"$1\" = setup-stop ] && [ ! -e " + unpinned + " ]; then\n"
                          "  mkdir -p \"$CHROOT_UNION_OVERLAY_DIRECTORY/pin\" && mount -t tmpfs pin "
                          "\"$CHROOT_UNION_OVERLAY_DIRECTORY/pin\"\nfi\nexit 0\n");
  ASSERT_TRUE(succeeded(root_.schroot({"-c", "bb", "-b", "-n", "pinned"})));

  auto e = root_.schroot({"-c", "pinned", "-e"});
  auto info = read_text(root_.state() + "/session/pinned");

  EXPECT_EQ(e.status, 1);
  EXPECT_NE(e.err.find("broken"), std::string::npos) << e.err;
  EXPECT_NE(info.find("\"state\": \"broken\""), std::string::npos) << info;
  EXPECT_NE(info.find("pin"), std::string::npos) << info;
  ASSERT_EQ(run("umount " + root_.state() + "/union/overlay/pinned/pin && touch " + unpinned), 0);
  auto again = root_.schroot({"-c", "pinned", "-e"});
  EXPECT_EQ(again.status, 0) << again.err;
  expect_no_leaks();
}

}  // namespace

namespace {

schroot::sys::DirIdentity session_root(const std::string& path) {
  schroot::sys::UniqueFd fd(open(path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  auto id = fd ? schroot::sys::identity_of(fd.get()) : std::nullopt;
  return id ? *id : schroot::sys::DirIdentity{};
}

bool has_exited(const schroot::sys::UniqueFd& pidfd) {
  struct pollfd p = {pidfd.get(), POLLIN, 0};
  return poll(&p, 1, 0) == 1;  // a pidfd is readable once its process has exited
}

TEST_F(Union, RecoverLeavesAHealthySessionAndItsCommandsAlone) {
  // A tmpfs in the session: what is written there goes if recovery remounts.
  root_.write_profile("scratch", "proc /proc proc defaults 0 0\ntmpfs /mnt tmpfs defaults 0 0\n", "", "");
  root_.write_config("[bb]\ntype=directory\ndirectory=" + tree_ + "\nprofile=scratch\nunion-type=overlay\n");
  ASSERT_EQ(mkdir((tree_ + "/mnt").c_str(), 0755), 0);
  // sh gives a background command /dev/null as its stdin.
  ASSERT_EQ(mknod((tree_ + "/dev/null").c_str(), S_IFCHR | 0666, makedev(1, 3)), 0);
  ASSERT_TRUE(succeeded(root_.schroot({"-c", "bb", "-b", "-n", "healthy"})));
  // A command a build left running in the session (a daemon): it holds no session
  // lock, so only the health check keeps recovery from ending it and remounting.
  auto started = root_.schroot({"-c", "healthy", "-r", "-d", "/", "--", "sh", "-c",
                                "touch /mnt/scratch; sleep 1000 >/dev/null 2>&1 & echo $!"});
  ASSERT_EQ(started.status, 0) << started.err;
  const pid_t daemon = std::atoi(started.out.c_str());
  const schroot::sys::UniqueFd pidfd = schroot::sys::open_pidfd(daemon);
  ASSERT_TRUE(pidfd) << "daemon pid " << daemon;
  const std::string mount_location = root_.run_dir() + "/mount/healthy";
  ASSERT_TRUE(schroot::test::rooted_under(daemon, session_root(mount_location))) << "not in the session";
  ASSERT_TRUE(path_exists(mount_location + "/mnt/scratch"));

  auto rec = root_.schroot({"-c", "healthy", "--recover-session"});

  EXPECT_EQ(rec.status, 0) << rec.err;
  EXPECT_FALSE(has_exited(pidfd)) << "recovery ended a command running in a healthy session";
  EXPECT_TRUE(path_exists(mount_location + "/mnt/scratch")) << "recovery remounted a healthy session";
  schroot::sys::signal_pidfd(pidfd.get(), SIGKILL);
  EXPECT_TRUE(schroot::test::wait_until([&] { return has_exited(pidfd); }, schroot::test::kDeadline));
  EXPECT_TRUE(succeeded(root_.schroot({"-c", "healthy", "-e"})));
  expect_no_leaks();
}

TEST_F(Union, RecoverRemountsASessionWhoseMountsWereLost) {
  ASSERT_TRUE(succeeded(root_.schroot({"-c", "bb", "-b", "-n", "lost"})));
  ASSERT_TRUE(succeeded(root_.schroot({"-c", "lost", "-r", "-d", "/", "--", "touch", "/kept"})));
  ASSERT_EQ(run("umount -R " + root_.run_dir() + "/mount/lost && umount -R " + root_.state() + "/union/underlay/lost"), 0);

  auto rec = root_.schroot({"-c", "lost", "--recover-session"});
  auto r = root_.schroot({"-c", "lost", "-r", "-d", "/", "--", "test", "-e", "/kept"});

  EXPECT_EQ(rec.status, 0) << rec.err;
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(succeeded(root_.schroot({"-c", "lost", "-e"})));
  expect_no_leaks();
}


// union-overlay-tmpfs-size: an automatic session's changes on a tmpfs of its own.
class UnionInMemory : public Union {
 protected:
  void SetUp() override {
    Union::SetUp();
    root_.write_config("[mem]\ntype=directory\ndirectory=" + tree_ +
                       "\nprofile=minimal\nunion-type=overlay\nunion-overlay-tmpfs-size=1m\n");
    for (const char* applet : {"dd", "yes"}) ASSERT_EQ(symlink("busybox", (tree_ + "/bin/" + applet).c_str()), 0);
  }
  // Session directories in union-overlay-directory.
  std::vector<std::string> overlay_dirs() const {
    std::vector<std::string> names;
    if (DIR* d = opendir((root_.state() + "/union/overlay").c_str())) {
      while (struct dirent* e = readdir(d))
        if (e->d_name[0] != '.') names.push_back(e->d_name);
      closedir(d);
    }
    return names;
  }
};

TEST_F(UnionInMemory, AutomaticSessionWritesItsChangesToABoundedTmpfsNotToDisk) {
  // The overlay reports its upper layer's size: the tmpfs's 1 MiB.
  schroot::test::Background session(SCHROOT_UNDER_TEST, {"-c", "mem", "-d", "/", "--", "sh", "-c",
                                                         std::string("stat -f -c '%b %S' /; echo changed > /new; ") +
                                                             schroot::test::kReadyThenWait});
  const auto statfs_line = session.read_line(schroot::test::kDeadline);
  ASSERT_TRUE(statfs_line) << session.err();
  ASSERT_EQ(session.read_line(schroot::test::kDeadline), "ready") << session.err();
  unsigned long blocks = 0, block_size = 0;
  ASSERT_EQ(std::sscanf(statfs_line->c_str(), "%lu %lu", &blocks, &block_size), 2) << *statfs_line;

  EXPECT_EQ(blocks * block_size, 1024u * 1024u) << *statfs_line;
  EXPECT_TRUE(overlay_dirs().empty()) << ::testing::PrintToString(overlay_dirs());
  session.close_stdin();
  EXPECT_EQ(session.wait(schroot::test::kDeadline), 0) << session.err();
  EXPECT_FALSE(path_exists(tree_ + "/new"));
  expect_no_leaks();
}

TEST_F(UnionInMemory, WritingPastTheTmpfsSizeFailsWithNoSpaceAndLeavesNothing) {
  auto r = root_.schroot({"-c", "mem", "-d", "/", "--", "sh", "-c", "yes | dd of=/big bs=4096 count=1024"});

  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("No space left on device"), std::string::npos) << r.err;
  EXPECT_TRUE(overlay_dirs().empty()) << ::testing::PrintToString(overlay_dirs());
  expect_no_leaks();
}

TEST_F(UnionInMemory, BegunSessionKeepsItsChangesOnDiskWhateverTheTmpfsSize) {
  // A -b session's changes must survive a reboot: the key does not apply to it.
  ASSERT_TRUE(succeeded(root_.schroot({"-c", "mem", "-b", "-n", "m1"})));

  auto r = root_.schroot({"-c", "m1", "-r", "-d", "/", "--", "sh", "-c", "yes | dd of=/big bs=4096 count=1024"});

  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(path_exists(root_.state() + "/union/overlay/m1/upper/big"));
  EXPECT_TRUE(succeeded(root_.schroot({"-c", "m1", "-e"})));
  expect_no_leaks();
}

TEST_F(UnionInMemory, KilledAutomaticSessionLeavesNothingOnceRecovered) {
  schroot::test::Background session(SCHROOT_UNDER_TEST, {"-c", "mem", "-d", "/", "--", "sh", "-c",
                                                         std::string("echo $$; echo x > /new; ") +
                                                             schroot::test::kReadyThenWait});
  const auto pid_line = session.read_line(schroot::test::kDeadline);
  ASSERT_TRUE(pid_line) << session.err();
  ASSERT_EQ(session.read_line(schroot::test::kDeadline), "ready") << session.err();
  const schroot::sys::UniqueFd command = schroot::sys::open_pidfd(std::atoi(pid_line->c_str()));
  ASSERT_TRUE(command);

  ASSERT_EQ(kill(session.pid(), SIGKILL), 0);
  ASSERT_EQ(session.wait(schroot::test::kDeadline), 128 + SIGKILL);
  auto rec = root_.schroot({"--recover-session", "--all-sessions"});

  EXPECT_EQ(rec.status, 0) << rec.err;
  EXPECT_TRUE(schroot::test::wait_until([&] { return has_exited(command); }, schroot::test::kDeadline));
  expect_no_leaks();
  EXPECT_TRUE(overlay_dirs().empty()) << ::testing::PrintToString(overlay_dirs());
}

}  // namespace
