// location= of a loopback image: the image's contents are hostile input. A symlink
// at the location (`sub -> /`, `sub -> ../../..`) must resolve inside the image, never
// to the host: the session's /proc mount, its /etc/debian_chroot and the command all
// stay in the image. Each test runs in a mount namespace of its own whose /etc is an
// overlay with a scratch upper dir, so a session that escapes (the bug these tests
// catch) writes there and mounts there, never on the real host.
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "src/error.h"
#include "src/sys/command.h"
#include "src/sys/fs.h"
#include "src/sys/loop_device.h"
#include "src/sys/mount.h"
#include "test/privileged/harness.h"

using schroot::test::path_exists;
using schroot::test::read_text;
using schroot::test::RunResult;
using schroot::test::run;
using schroot::test::TestRoot;
using schroot::test::trim;

namespace {

// What an escaped session would leave on the host. While alive, this process is in a
// mount namespace of its own where /etc is an overlay (writes go to `upper`); the
// destructor returns to the namespace the test started in, and the kernel drops the
// private one with everything mounted in it.
class ShieldedHost {
 public:
  explicit ShieldedHost(const std::string& scratch) : upper_(scratch + "/upper") {
    schroot::sys::mkdir_p(upper_, 0755);
    schroot::sys::mkdir_p(scratch + "/work", 0755);
    original_ns_.reset(::open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC));
    if (!original_ns_ || ::unshare(CLONE_NEWNS) != 0 ||
        ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
      throw schroot::SystemError("enter a private mount namespace", "/", errno);
    const std::string options = "lowerdir=/etc,upperdir=" + upper_ + ",workdir=" + scratch + "/work";
    if (::mount("shielded-etc", "/etc", "overlay", 0, options.c_str()) != 0)
      throw schroot::SystemError("mount an overlay on", "/etc", errno);
    proc_mounts_ = proc_mounts();
  }
  ~ShieldedHost() {
    if (::setns(original_ns_.get(), CLONE_NEWNS) != 0) std::abort();  // tests after us would run shielded
  }
  // Files the session wrote into the host's /etc (debian_chroot, passwd, ...).
  std::vector<std::string> etc_writes() const {
    std::vector<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(upper_)) names.push_back(e.path().filename());
    return names;
  }
  // /proc mounts on the host's /proc beyond those there before.
  int extra_proc_mounts() const { return proc_mounts() - proc_mounts_; }

 private:
  static int proc_mounts() {
    auto all = schroot::sys::read_mountinfo();
    return static_cast<int>(std::count_if(all.begin(), all.end(), [](const auto& m) { return m.mount_point == "/proc"; }));
  }
  std::string upper_;
  schroot::sys::UniqueFd original_ns_;
  int proc_mounts_ = 0;
};

class Location : public ::testing::Test {
 protected:
  void SetUp() override {
    shield_ = std::make_unique<ShieldedHost>(root_.root() + "/shield");
    layout_ = root_.root() + "/srv/layout";
    image_ = root_.root() + "/srv/layout.img";
  }
  void TearDown() override { shield_.reset(); }

  // A busybox tree at path inside the image, with a marker file naming it.
  void tree_in_image(const std::string& rel, const std::string& marker) {
    const std::string t = root_.make_tree("layout" + rel);
    root_.write_file(t + "/marker", marker + "\n");
  }
  void symlink_in_image(const std::string& rel, const std::string& to) {
    ASSERT_EQ(::symlink(to.c_str(), (layout_ + rel).c_str()), 0) << rel;
  }
  void make_image() {
    ASSERT_EQ(run("mke2fs -q -F -t ext4 -d " + layout_ + " " + image_ + " 16M"), 0);
    struct stat st;
    ASSERT_EQ(::stat(image_.c_str(), &st), 0);
    img_dev_ = st.st_dev;
    img_ino_ = st.st_ino;
  }
  void config(const std::string& location, const std::string& extra = "") {
    root_.write_config("[img]\ntype=loopback\nfile=" + image_ + "\nprofile=minimal\nlocation=" + location + "\n" +
                       extra);
  }
  // Nothing of the session is left: no mount, record or loop device; nothing reached
  // the host's /etc or /proc.
  void expect_nothing_left_and_host_untouched() {
    EXPECT_TRUE(root_.mounts_below_root().empty()) << ::testing::PrintToString(root_.mounts_below_root());
    EXPECT_TRUE(root_.records().empty()) << ::testing::PrintToString(root_.records());
    EXPECT_TRUE(root_.union_dirs().empty()) << ::testing::PrintToString(root_.union_dirs());
    EXPECT_TRUE(schroot::test::loops_backed_by(img_dev_, img_ino_).empty());
    EXPECT_TRUE(shield_->etc_writes().empty()) << ::testing::PrintToString(shield_->etc_writes());
    EXPECT_EQ(shield_->extra_proc_mounts(), 0);
  }

  TestRoot root_;
  std::unique_ptr<ShieldedHost> shield_;
  std::string layout_, image_;
  dev_t img_dev_ = 0;
  ino_t img_ino_ = 0;
};

const std::string kUpAndOut = "../../../../../../../../../../../../../../../..";

TEST_F(Location, SymlinkToSlashResolvesToTheImageRootNotTheHosts) {
  tree_in_image("", "image root");
  symlink_in_image("/sub", "/");
  make_image();
  config("/sub");

  auto r = root_.schroot({"-c", "img", "-d", "/", "--", "sh", "-c", "cat /marker; cat /etc/debian_chroot"});

  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "image root\nimg\n");
  expect_nothing_left_and_host_untouched();
}

TEST_F(Location, DotDotSymlinkIsClampedAtTheImageRoot) {
  tree_in_image("", "image root");
  symlink_in_image("/sub", kUpAndOut);
  make_image();
  config("/sub");

  auto r = root_.schroot({"-c", "img", "-d", "/", "--", "cat", "/marker"});

  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(trim(r.out), "image root");
  expect_nothing_left_and_host_untouched();
}

TEST_F(Location, DirectoryLocationIsTheSessionRoot) {
  tree_in_image("", "image root");
  tree_in_image("/sid", "sid");
  make_image();
  config("/sid");

  auto r = root_.schroot({"-c", "img", "-d", "/", "--", "sh", "-c", "cat /marker; test -e /sid || echo no-sid"});

  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "sid\nno-sid\n");
  expect_nothing_left_and_host_untouched();
}

TEST_F(Location, AbsoluteSymlinkInTheImageNamesAPathInTheImage) {
  tree_in_image("/releases/sid", "sid");
  symlink_in_image("/current", "/releases/sid");
  make_image();
  config("/current");

  auto r = root_.schroot({"-c", "img", "-d", "/", "--", "cat", "/marker"});

  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(trim(r.out), "sid");
  expect_nothing_left_and_host_untouched();
}

TEST_F(Location, MissingLocationIsAnErrorNamingChrootKeyAndPathAndLeavesNothing) {
  tree_in_image("", "image root");
  make_image();
  config("/missing");

  auto r = root_.schroot({"-c", "img", "-d", "/", "--", "true"});

  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("img: location ‘/missing’ in image ‘" + image_ + "’: No such file or directory"),
            std::string::npos)
      << r.err;
  expect_nothing_left_and_host_untouched();
}

TEST_F(Location, LocationThatIsAFileIsRefused) {
  tree_in_image("", "image root");
  symlink_in_image("/sub", "/marker");
  make_image();
  config("/sub");

  auto r = root_.schroot({"-c", "img", "-d", "/", "--", "true"});

  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("location ‘/sub’ in image"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("Not a directory"), std::string::npos) << r.err;
  expect_nothing_left_and_host_untouched();
}

TEST_F(Location, UnionOverAnImageUsesTheLocationResolvedInTheImage) {
  tree_in_image("", "image root");
  symlink_in_image("/sub", "/");
  make_image();
  config("/sub", "union-type=overlay\n");

  auto r = root_.schroot({"-c", "img", "-d", "/", "--", "sh", "-c", "cat /marker && touch /new && rm /bin/ls"});

  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(trim(r.out), "image root");
  expect_nothing_left_and_host_untouched();
}

TEST_F(Location, SessionPathAndLocationAreTheMountPoint) {
  tree_in_image("", "image root");
  tree_in_image("/sid", "sid");
  make_image();
  config("/sid");
  ASSERT_TRUE(succeeded(root_.schroot({"-c", "img", "-b", "-n", "s1"})));
  const std::string mount_point = root_.run_dir() + "/mount/s1";

  auto loc = root_.schroot({"--location", "-c", "session:s1"});
  auto info = root_.schroot({"--info", "-c", "session:s1"});
  auto inside = root_.schroot({"-r", "-c", "s1", "-d", "/", "--", "cat", "/marker"});

  EXPECT_EQ(trim(loc.out), mount_point) << loc.err;
  EXPECT_NE(info.out.find("Path                   " + mount_point + "\n"), std::string::npos) << info.out;
  EXPECT_NE(info.out.find("Location               /sid\n"), std::string::npos) << info.out;
  EXPECT_EQ(read_text(mount_point + "/marker"), "sid\n");
  EXPECT_EQ(trim(inside.out), "sid") << inside.err;
  EXPECT_TRUE(succeeded(root_.schroot({"-e", "-c", "s1"})));
  expect_nothing_left_and_host_untouched();
}

TEST_F(Location, BeginKilledAfterMountingALocationIsRecoveredCompletely) {
  tree_in_image("", "image root");
  symlink_in_image("/sub", "/");
  make_image();
  config("/sub");
  ASSERT_EQ(root_.schroot({"-c", "img", "-b", "-n", "k1"}, {"SCHROOT_FAIL_AT=begin:50chrootname"}).status, 128 + 9);

  auto r = root_.schroot({"--recover-session", "--all-sessions"});

  EXPECT_EQ(r.status, 0) << r.err;
  expect_nothing_left_and_host_untouched();
}

// As an installed schroot is used: a setuid copy run by a user listed in users=.
TEST_F(Location, UserSessionOnAnImageWithAnEscapingLocationStaysInTheImage) {
  struct passwd* pw = ::getpwnam("nobody");
  ASSERT_NE(pw, nullptr);
  const uid_t uid = pw->pw_uid;
  const gid_t gid = pw->pw_gid;
  // Its own copy, reachable by nobody from any checkout (TEST_ROOT may not be).
  schroot::test::SetuidCopy copy;
  const std::string& binary = copy.path();
  tree_in_image("", "image root");
  symlink_in_image("/sub", "/");
  make_image();
  config("/sub", "users=nobody\n");
  auto as_nobody = [&](const std::vector<std::string>& args) {
    return schroot::test::run_program(binary, args, {}, "", [&] {
      if (::setgroups(0, nullptr) != 0 || ::setgid(gid) != 0 || ::setuid(uid) != 0) ::_exit(99);
    });
  };
  ASSERT_TRUE(succeeded(as_nobody({"-c", "img", "-b", "-n", "u1"})));

  auto r = as_nobody({"-r", "-c", "u1", "-d", "/", "--", "sh", "-c", "cat /marker; id -u"});
  auto e = as_nobody({"-e", "-c", "u1"});

  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "image root\n" + std::to_string(uid) + "\n");
  EXPECT_EQ(e.status, 0) << e.err;
  expect_nothing_left_and_host_untouched();
}

// Finding 8: the image is opened once; its dev/ino (the undo step's) and the loop
// device are of that one open file, even when the path names another file by the
// time the device is attached.
TEST_F(Location, ImageReplacedAfterPlanningIsNotTheOneAttached) {
  tree_in_image("", "original");
  make_image();
  const std::string replacement = root_.root() + "/srv/replacement.img";
  root_.write_file(layout_ + "/marker", "replacement\n");
  ASSERT_EQ(run("mke2fs -q -F -t ext4 -d " + layout_ + " " + replacement + " 16M"), 0);
  struct stat rst;
  ASSERT_EQ(::stat(replacement.c_str(), &rst), 0);
  root_.write_config("[img]\ntype=loopback\nfile=" + image_ + "\nprofile=minimal\n");
  // Stopped between planning (record written with the image's dev/ino) and attaching.
  schroot::sys::Command begin = schroot::test::program_command(SCHROOT_UNDER_TEST, {"-c", "img", "-b", "-n", "swap"},
                                                               {"SCHROOT_PAUSE_AT=begin:00device"});
  begin.in = begin.out = begin.err = schroot::sys::Stream::null();
  // Stopped and continued by hand (WUNTRACED, SIGCONT), so reaped by hand too.
  const pid_t pid = schroot::sys::Child::spawn(begin).release();
  int ws = 0;
  ASSERT_EQ(::waitpid(pid, &ws, WUNTRACED), pid);
  ASSERT_TRUE(WIFSTOPPED(ws)) << "begin did not pause at begin:00device";
  ASSERT_EQ(::rename(replacement.c_str(), image_.c_str()), 0);
  ::kill(pid, SIGCONT);
  ASSERT_EQ(::waitpid(pid, &ws, 0), pid);
  ASSERT_TRUE(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);

  auto r = root_.schroot({"-r", "-c", "swap", "-d", "/", "--", "cat", "/marker"});
  const auto bound_to_planned = schroot::test::loops_backed_by(img_dev_, img_ino_);
  const auto bound_to_replacement = schroot::test::loops_backed_by(rst.st_dev, rst.st_ino);
  auto e = root_.schroot({"-e", "-c", "swap"});

  EXPECT_EQ(trim(r.out), "original") << r.err;
  EXPECT_EQ(bound_to_planned.size(), 1u);
  EXPECT_TRUE(bound_to_replacement.empty()) << ::testing::PrintToString(bound_to_replacement);
  EXPECT_EQ(e.status, 0) << e.err;
  EXPECT_TRUE(schroot::test::loops_backed_by(rst.st_dev, rst.st_ino).empty());
  expect_nothing_left_and_host_untouched();
}

// The sys layer on its own, with tmpfs: the subtree of a detached mount becomes the
// mount at the target, on kernels that clone from detached mounts and through the
// fallback for those before 6.15.
class AttachSubtree : public ::testing::TestWithParam<bool> {
 protected:
  TestRoot root_;
};

TEST_P(AttachSubtree, SymlinkedDirectoryOfADetachedMountBecomesTheMountAtTarget) {
  namespace sys = schroot::sys;
  const std::string target = root_.root() + "/target";
  ASSERT_EQ(::mkdir(target.c_str(), 0755), 0);
  sys::UniqueFd target_fd = sys::open_path(target);
  sys::UniqueFd tmpfs = sys::create_mount("tmpfs", "image", "", target);
  ASSERT_EQ(::mkdirat(tmpfs.get(), "inner", 0755), 0);
  ASSERT_EQ(::symlinkat("/", tmpfs.get(), "inner/sub"), 0);
  ASSERT_EQ(::mkdirat(tmpfs.get(), "inner/only-in-image", 0755), 0);
  // inner/sub -> / names the mount's root from inside: resolved in the mount, that is
  // the mount's root, not the host's.
  sys::UniqueFd dir = sys::resolve_in_root(tmpfs.get(), "/inner/sub/inner", O_PATH | O_DIRECTORY);

  sys::UniqueFd mounted = sys::attach_subtree(std::move(tmpfs), std::move(dir), target_fd.get(), target, GetParam());
  mounted.reset();

  EXPECT_TRUE(path_exists(target + "/only-in-image"));
  EXPECT_TRUE(path_exists(target + "/sub"));
  auto all = sys::read_mountinfo();
  auto at_target = std::count_if(all.begin(), all.end(), [&](const auto& m) { return m.mount_point == target; });
  EXPECT_EQ(at_target, 1) << "the whole mount must not stay under the subtree";
  EXPECT_TRUE(sys::unmount_tree(target, false).still_mounted.empty());
}

INSTANTIATE_TEST_SUITE_P(DetachedCloneAndFallback, AttachSubtree, ::testing::Values(true, false));

}  // namespace
