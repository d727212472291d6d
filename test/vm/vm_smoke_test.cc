// Smoke tests of test/vm/run-vm's VM: what every LVM test in this binary relies on.
// The kernel answers device-mapper, the volume group the runner made is there with
// the origin LV it describes, and lvm, started through the project's spawner, creates
// snapshots that copy on write and removes them again.
#include "config.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "src/sys/command.h"
#include "src/sys/fs.h"
#include "src/sys/unique_fd.h"
#include "test/privileged/harness.h"
#include "test/vm/vm_env.h"

namespace schroot::test {
namespace {

struct ToolRun {
  sys::ExitStatus status;
  std::string output;  // stdout and stderr
};

// program [args...] through the spawner (argv, no shell), its output captured. lvm
// reads the VM's lvmlocal.conf (no udev); DM_DISABLE_UDEV=1 says the same again.
ToolRun run_tool(const std::string& program, const std::vector<std::string>& args) {
  std::vector<std::string> argv{program};
  argv.insert(argv.end(), args.begin(), args.end());
  ToolRun r;
  r.status = sys::run_program(argv, {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "DM_DISABLE_UDEV=1"}, &r.output);
  return r;
}

std::string lvm_program() {
#ifdef LVM_PATH
  return LVM_PATH;
#else
  return "/sbin/lvm";
#endif
}
ToolRun lvm(const std::vector<std::string>& args) { return run_tool(lvm_program(), args); }
ToolRun dmsetup(const std::vector<std::string>& args) { return run_tool("/sbin/dmsetup", args); }

bool is_block_device(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISBLK(st.st_mode);
}

// A snapshot LV made by a test: removed (lvremove -f) when the test ends without
// removing it itself, so a failing test leaves no LV behind for the next one.
class ScratchLv {
 public:
  ScratchLv(std::string vg, std::string name) : vg_(std::move(vg)), name_(std::move(name)) {}
  ~ScratchLv() {
    if (is_block_device(device())) lvm({"lvremove", "-f", vg_ + "/" + name_});
  }
  std::string device() const { return "/dev/" + vg_ + "/" + name_; }

 private:
  std::string vg_, name_;
};

// An ext4 file system mounted below the test root, unmounted when the test ends.
class Mounted {
 public:
  Mounted(const std::string& device, const std::string& dir, unsigned long flags) : dir_(dir) {
    sys::mkdir_p(dir, 0755);
    ok_ = ::mount(device.c_str(), dir.c_str(), "ext4", flags, nullptr) == 0;
    if (!ok_) error_ = std::strerror(errno);
  }
  ~Mounted() {
    if (ok_) ::umount2(dir_.c_str(), 0);
  }
  bool ok() const { return ok_; }
  const std::string& error() const { return error_; }
  bool unmount() {
    if (ok_ && ::umount2(dir_.c_str(), 0) == 0) ok_ = false;
    return !ok_;
  }

 private:
  std::string dir_, error_;
  bool ok_ = false;
};

TEST(VmSmoke, TheKernelAnswersDeviceMapper) {
  // The host's kernel here has none: its /dev/mapper/control answers ENODEV.
  sys::UniqueFd control(::open("/dev/mapper/control", O_RDWR | O_CLOEXEC));
  EXPECT_TRUE(control) << "/dev/mapper/control: " << std::strerror(errno);
  const ToolRun version = dmsetup({"version"});
  EXPECT_TRUE(version.status.success()) << version.status.describe() << ": " << version.output;
  EXPECT_NE(version.output.find("Driver version:"), std::string::npos) << version.output;
}

TEST(VmSmoke, TheVolumeGroupNamedInTheEnvironmentHasTheOriginLv) {
  const std::string vg = env("SCHROOT_VM_VG"), origin = env("SCHROOT_VM_ORIGIN");
  ASSERT_FALSE(vg.empty());
  ASSERT_EQ(origin, "/dev/" + vg + "/origin");
  const ToolRun vgs = lvm({"vgs", "--noheadings", "-o", "vg_name", vg});
  ASSERT_TRUE(vgs.status.success()) << vgs.status.describe() << ": " << vgs.output;
  std::string listed = trim(vgs.output);
  listed.erase(0, listed.find_first_not_of(' '));
  EXPECT_EQ(listed, vg);
  EXPECT_TRUE(is_block_device(origin)) << origin;
  const ToolRun lvs = lvm({"lvs", "--noheadings", "-o", "lv_name", vg + "/origin"});
  EXPECT_TRUE(lvs.status.success()) << lvs.status.describe() << ": " << lvs.output;
}

TEST(VmSmoke, ASnapshotOfTheOriginCopiesOnWriteAndIsRemovedThroughTheSpawner) {
  const std::string vg = env("SCHROOT_VM_VG"), origin = env("SCHROOT_VM_ORIGIN");
  ASSERT_FALSE(vg.empty());
  TestRoot root;
  ScratchLv snap(vg, "smoke_snap");
  const ToolRun create =
      lvm({"lvcreate", "--snapshot", "--size", "16M", "--name", "smoke_snap", "--addtag", "schroot-vm-smoke", origin});
  ASSERT_TRUE(create.status.success()) << create.status.describe() << ": " << create.output;
  ASSERT_TRUE(is_block_device(snap.device())) << snap.device();

  {
    Mounted in_snapshot(snap.device(), root.root() + "/snap", 0);
    ASSERT_TRUE(in_snapshot.ok()) << "mount " << snap.device() << ": " << in_snapshot.error();
    EXPECT_EQ(trim(read_text(root.root() + "/snap/hello")), "origin v1");
    EXPECT_TRUE(path_exists(root.root() + "/snap/bin/busybox"));
    root.write_file(root.root() + "/snap/written-in-the-snapshot", "session\n");
    ASSERT_TRUE(in_snapshot.unmount());
  }
  {
    Mounted in_origin(origin, root.root() + "/origin", MS_RDONLY);
    ASSERT_TRUE(in_origin.ok()) << "mount " << origin << ": " << in_origin.error();
    EXPECT_FALSE(path_exists(root.root() + "/origin/written-in-the-snapshot"));
    EXPECT_EQ(trim(read_text(root.root() + "/origin/hello")), "origin v1");
  }

  const ToolRun remove = lvm({"lvremove", "-f", vg + "/smoke_snap"});
  EXPECT_TRUE(remove.status.success()) << remove.status.describe() << ": " << remove.output;
  EXPECT_FALSE(path_exists(snap.device()));
  EXPECT_FALSE(dmsetup({"info", vg + "-smoke_snap"}).status.success());
  EXPECT_FALSE(lvm({"lvs", vg + "/smoke_snap"}).status.success());
}

TEST(VmSmoke, AThinSnapshotOfTheThinOriginIsActivatedAndRemoved) {
  const std::string vg = env("SCHROOT_VM_VG"), thin = env("SCHROOT_VM_THIN_ORIGIN");
  if (thin.empty()) GTEST_SKIP() << "no thin pool in this VM (thin-provisioning-tools not installed on the host)";
  TestRoot root;
  ScratchLv snap(vg, "smoke_thin_snap");
  // A thin snapshot has no size; LVM marks it "skip activation" unless told not to.
  const ToolRun create = lvm({"lvcreate", "--snapshot", "--name", "smoke_thin_snap", "--setactivationskip", "n",
                              "--addtag", "schroot-vm-smoke", thin});
  ASSERT_TRUE(create.status.success()) << create.status.describe() << ": " << create.output;
  ASSERT_TRUE(is_block_device(snap.device())) << snap.device();
  {
    Mounted in_snapshot(snap.device(), root.root() + "/snap", MS_RDONLY);
    ASSERT_TRUE(in_snapshot.ok()) << "mount " << snap.device() << ": " << in_snapshot.error();
    EXPECT_EQ(trim(read_text(root.root() + "/snap/hello")), "thin origin v1");
  }
  const ToolRun remove = lvm({"lvremove", "-f", vg + "/smoke_thin_snap"});
  EXPECT_TRUE(remove.status.success()) << remove.status.describe() << ": " << remove.output;
  EXPECT_FALSE(path_exists(snap.device()));
}

}  // namespace
}  // namespace schroot::test
