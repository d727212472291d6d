// Loop devices on the real kernel: small ext4 images made with mke2fs, attached, mounted,
// detached. Every test checks that no device stays bound to its images.
#include "src/sys/loop_device.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <cstring>
#include <fstream>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "src/error.h"
#include "src/sys/command.h"
#include "test/privileged/harness.h"

namespace schroot::sys {
namespace {

namespace fs = std::filesystem;
using schroot::test::loops_backed_by;
using std::chrono::milliseconds;

struct FileId {
  dev_t dev = 0;
  ino_t ino = 0;
};

FileId id_of(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return {};
  return {st.st_dev, st.st_ino};
}

// argv[0] is looked up in PATH (by env: the spawner never searches).
int run(const std::vector<std::string>& argv) {
  schroot::sys::Command cmd;
  cmd.argv = {"/usr/bin/env", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"};
  cmd.argv.insert(cmd.argv.end(), argv.begin(), argv.end());
  cmd.out = schroot::sys::Stream::null();
  try {
    const schroot::sys::ExitStatus s = schroot::sys::run_to_end(cmd);
    return s.exited ? s.code : -1;
  } catch (const schroot::SystemError&) {
    return 127;
  }
}

// Read-only flag of the block device at `path`, as the kernel reports it.
int ro_flag(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  int ro = -1;
  if (::ioctl(fd, BLKROGET, &ro) != 0) ro = -1;
  ::close(fd);
  return ro;
}

class Loop : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "schroot-loop-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    fs::create_directories(dir_ + "/tree/etc");
    std::ofstream(dir_ + "/tree/etc/hostname") << "loop-test\n";
    fs::create_directories(dir_ + "/mnt");
    image_ = make_image("a.img");
  }

  void TearDown() override {
    for (const auto& m : mounts_) ::umount2(m.c_str(), MNT_DETACH);
    for (const auto& img : images_) {
      FileId id = id_of(img);
      EXPECT_TRUE(wait_unbound(id)) << img << " still has " << ::testing::PrintToString(loops_backed_by(id.dev, id.ino));
      detach_loops_backed_by(id.dev, id.ino);  // leave nothing behind, even after a failure
    }
    for (const auto& m : ro_binds_) ::umount2(m.c_str(), MNT_DETACH);
    fs::remove_all(dir_);
  }

  std::string make_image(const std::string& name) {
    std::string img = dir_ + "/" + name;
    EXPECT_EQ(run({"mke2fs", "-q", "-F", "-t", "ext4", "-d", dir_ + "/tree", img, "4M"}), 0);
    images_.push_back(img);
    return img;
  }

  std::vector<std::string> bound(const std::string& img) {
    FileId id = id_of(img);
    return loops_backed_by(id.dev, id.ino);
  }

  // The kernel finishes an autoclear detach at the last close, which a mount's teardown
  // may do a moment after umount returns: poll for it, briefly.
  bool wait_unbound(FileId id) {
    for (int i = 0; i < 200; ++i) {
      if (loops_backed_by(id.dev, id.ino).empty()) return true;
      std::this_thread::sleep_for(milliseconds(10));
    }
    return false;
  }
  bool wait_unbound(const std::string& img) { return wait_unbound(id_of(img)); }

  void mount_ext4(const std::string& dev, const std::string& target, unsigned long flags = 0) {
    ASSERT_EQ(::mount(dev.c_str(), target.c_str(), "ext4", flags, nullptr), 0) << std::strerror(errno);
    mounts_.push_back(target);
  }
  void unmount(const std::string& target) {
    ASSERT_EQ(::umount2(target.c_str(), 0), 0) << std::strerror(errno);
    mounts_.erase(std::remove(mounts_.begin(), mounts_.end(), target), mounts_.end());
  }

  std::string dir_, image_;
  std::vector<std::string> images_, mounts_, ro_binds_;
};

TEST_F(Loop, AttachBindsTheImage) {
  LoopDevice loop = LoopDevice::attach(image_, {});

  EXPECT_EQ(loop.path(), "/dev/loop" + std::to_string(loop.number()));
  FileId id = id_of(image_);
  EXPECT_EQ(loop.backing_dev(), id.dev);
  EXPECT_EQ(loop.backing_ino(), id.ino);
  EXPECT_EQ(bound(image_), std::vector<std::string>{loop.path()});
  EXPECT_EQ(ro_flag(loop.path()), 0);
  loop.detach();
  EXPECT_TRUE(wait_unbound(image_));
}

TEST_F(Loop, ReadOnlyAttachRefusesWrites) {
  LoopDevice::Options opts;
  opts.read_only = true;
  LoopDevice loop = LoopDevice::attach(image_, opts);

  EXPECT_TRUE(loop.read_only());
  EXPECT_EQ(ro_flag(loop.path()), 1);
  int fd = ::open(loop.path().c_str(), O_WRONLY | O_CLOEXEC);
  if (fd >= 0) {
    char zero[512] = {};
    EXPECT_LT(::pwrite(fd, zero, sizeof zero, 0), 0);
    ::close(fd);
  }
}

TEST_F(Loop, DestructorDetaches) {
  { LoopDevice loop = LoopDevice::attach(image_, {}); }
  EXPECT_TRUE(wait_unbound(image_));
}

TEST_F(Loop, AutoclearDeviceDetachesWhenUnmounted) {
  LoopDevice loop = LoopDevice::attach(image_, {});
  mount_ext4(loop.path(), dir_ + "/mnt");
  loop.release();

  EXPECT_EQ(bound(image_).size(), 1u);  // the mount holds it
  unmount(dir_ + "/mnt");
  EXPECT_TRUE(wait_unbound(image_));
}

// Why the loopback backend must mount before it releases an autoclear device.
TEST_F(Loop, ReleasedAutoclearDeviceNobodyOpensIsDetached) {
  LoopDevice loop = LoopDevice::attach(image_, {});
  loop.release();
  EXPECT_TRUE(wait_unbound(image_));
}

TEST_F(Loop, ReleasedDeviceWithoutAutoclearStaysUntilDetachedByItsFile) {
  LoopDevice::Options opts;
  opts.autoclear = false;
  std::string path;
  {
    LoopDevice loop = LoopDevice::attach(image_, opts);
    path = loop.path();
    loop.release();
  }
  EXPECT_EQ(bound(image_), std::vector<std::string>{path});
  FileId id = id_of(image_);
  EXPECT_EQ(detach_loops_backed_by(id.dev, id.ino), 1);
  EXPECT_TRUE(wait_unbound(image_));
  EXPECT_EQ(detach_loops_backed_by(id.dev, id.ino), 0);  // idempotent
}

TEST_F(Loop, DetachOfAMountedDeviceWaitsForTheUnmount) {
  LoopDevice::Options opts;
  opts.autoclear = false;
  LoopDevice loop = LoopDevice::attach(image_, opts);
  mount_ext4(loop.path(), dir_ + "/mnt");

  EXPECT_NO_THROW(loop.detach());
  EXPECT_EQ(bound(image_).size(), 1u);
  EXPECT_TRUE(fs::exists(dir_ + "/mnt/etc/hostname"));
  unmount(dir_ + "/mnt");
  EXPECT_TRUE(wait_unbound(image_));
}

TEST_F(Loop, ADirectoryIsRefusedAndLeaksNoDevice) {
  std::string tree = dir_ + "/tree";
  try {
    LoopDevice::attach(tree, {});
    FAIL() << "attached a directory";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find(tree), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("not a regular file"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(bound(tree).empty());
}

TEST_F(Loop, AFifoIsRefusedWithoutWaitingForAWriter) {
  std::string fifo = dir_ + "/fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
  LoopDevice::Options opts;
  opts.read_only = true;
  try {
    LoopDevice::attach(fifo, opts);
    FAIL() << "attached a FIFO";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("not a regular file"), std::string::npos) << e.what();
  }
}

TEST_F(Loop, AMissingImageIsASystemError) {
  std::string missing = dir_ + "/missing.img";
  try {
    LoopDevice::attach(missing, {});
    FAIL() << "attached a missing file";
  } catch (const SystemError& e) {
    EXPECT_EQ(e.code().value(), ENOENT);
    EXPECT_NE(std::string(e.what()).find(missing), std::string::npos) << e.what();
  }
}

TEST_F(Loop, ImageOnAReadOnlyMountAttachesOnlyReadOnly) {
  std::string ro = dir_ + "/ro";
  fs::create_directories(ro);
  ASSERT_EQ(::mount(dir_.c_str(), ro.c_str(), nullptr, MS_BIND, nullptr), 0);
  ro_binds_.push_back(ro);
  ASSERT_EQ(::mount(nullptr, ro.c_str(), nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY, nullptr), 0);
  const std::string img = ro + "/a.img";

  try {
    LoopDevice::attach(img, {});
    FAIL() << "attached a file on a read-only mount read-write";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find(img), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("read-only"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(bound(image_).empty());

  LoopDevice::Options opts;
  opts.read_only = true;
  LoopDevice loop = LoopDevice::attach(img, opts);
  EXPECT_EQ(ro_flag(loop.path()), 1);
  EXPECT_EQ(bound(image_), std::vector<std::string>{loop.path()});  // same file, same dev/ino
}

TEST_F(Loop, ParallelAttachesOfOneImageGetDifferentDevices) {
  constexpr int kThreads = 8;
  std::vector<std::string> paths(kThreads);
  std::vector<std::string> errors(kThreads);
  std::vector<LoopDevice> devices;
  std::mutex mu;
  std::atomic<int> ready{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      ++ready;
      while (ready.load() < kThreads) {
      }
      try {
        LoopDevice d = LoopDevice::attach(image_, {});
        std::lock_guard<std::mutex> l(mu);
        paths[i] = d.path();
        devices.push_back(std::move(d));
      } catch (const std::exception& e) {
        errors[i] = e.what();
      }
    });
  }
  for (auto& t : threads) t.join();

  for (const auto& e : errors) EXPECT_EQ(e, "");
  std::set<std::string> distinct(paths.begin(), paths.end());
  EXPECT_EQ(distinct.size(), static_cast<size_t>(kThreads));
  std::vector<std::string> expected(paths);
  std::sort(expected.begin(), expected.end(), [](const std::string& a, const std::string& b) {
    return std::stoi(a.substr(9)) < std::stoi(b.substr(9));
  });
  EXPECT_EQ(bound(image_), expected);
  devices.clear();
  EXPECT_TRUE(wait_unbound(image_));
}

TEST_F(Loop, DetachByBackingFileSparesOtherImages) {
  std::string other = make_image("b.img");
  LoopDevice::Options opts;
  opts.autoclear = false;
  for (int i = 0; i < 2; ++i) LoopDevice::attach(image_, opts).release();
  LoopDevice kept = LoopDevice::attach(other, opts);

  FileId id = id_of(image_);
  EXPECT_EQ(detach_loops_backed_by(id.dev, id.ino), 2);
  EXPECT_TRUE(wait_unbound(image_));
  EXPECT_EQ(bound(other), std::vector<std::string>{kept.path()});
}

TEST_F(Loop, DetachByLabelSparesTheOtherSessionsDevice) {
  LoopDevice::Options opts;
  opts.autoclear = false;
  opts.label = "session-1";
  LoopDevice first = LoopDevice::attach(image_, opts);
  first.release();
  opts.label = "session-2";
  LoopDevice second = LoopDevice::attach(image_, opts);

  FileId id = id_of(image_);
  EXPECT_EQ(loops_backed_by(id.dev, id.ino, "session-1"), std::vector<std::string>{first.path()});
  EXPECT_EQ(detach_loops_backed_by(id.dev, id.ino, "session-1"), 1);
  for (int i = 0; i < 200 && loops_backed_by(id.dev, id.ino, "session-1").size() > 0; ++i) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  EXPECT_EQ(bound(image_), std::vector<std::string>{second.path()});
}

TEST_F(Loop, LegacySetupPathBindsWithTheSameFlags) {
  LoopDevice::Options opts;
  opts.use_configure = false;
  opts.read_only = true;
  {
    LoopDevice loop = LoopDevice::attach(image_, opts);
    EXPECT_EQ(bound(image_), std::vector<std::string>{loop.path()});
    EXPECT_EQ(ro_flag(loop.path()), 1);
  }
  EXPECT_TRUE(wait_unbound(image_));
  opts.read_only = false;
  LoopDevice loop = LoopDevice::attach(image_, opts);
  EXPECT_EQ(ro_flag(loop.path()), 0);
  mount_ext4(loop.path(), dir_ + "/mnt");
  loop.release();
  unmount(dir_ + "/mnt");
  EXPECT_TRUE(wait_unbound(image_));  // autoclear was set through LOOP_SET_STATUS64
}

TEST_F(Loop, MountedImageIsReadable) {
  LoopDevice loop = LoopDevice::attach(image_, {});
  mount_ext4(loop.path(), dir_ + "/mnt", MS_RDONLY);
  std::string line;
  std::getline(std::ifstream(dir_ + "/mnt/etc/hostname"), line);
  EXPECT_EQ(line, "loop-test");
  unmount(dir_ + "/mnt");
}

// A container's /dev may have /dev/loop-control but not the node of the number it gets.
TEST_F(Loop, AttachCreatesAMissingDeviceNode) {
  ASSERT_EQ(::mount("tmpfs", "/dev", "tmpfs", 0, "mode=0755"), 0) << std::strerror(errno);
  mounts_.insert(mounts_.begin(), "/dev");  // unmounted first in TearDown
  ASSERT_EQ(::mknod("/dev/loop-control", S_IFCHR | 0600, makedev(10, 237)), 0) << std::strerror(errno);

  LoopDevice loop = LoopDevice::attach(image_, {});
  struct stat st;
  ASSERT_EQ(::stat(loop.path().c_str(), &st), 0);
  EXPECT_TRUE(S_ISBLK(st.st_mode));
  EXPECT_EQ(bound(image_), std::vector<std::string>{loop.path()});
  loop.detach();
  unmount("/dev");
}

}  // namespace
}  // namespace schroot::sys
