// The kernel edge: in-chroot file operations against a hostile tree, fd-based
// mounting and unmounting, and the process helpers. Each test works in a fresh tmpfs
// of its own, so whatever it leaves mounted goes with that tmpfs at teardown.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "src/error.h"
#include "src/sys/command.h"
#include "src/sys/fs.h"
#include "src/sys/mount.h"
#include "src/sys/process.h"
#include "test/privileged/harness.h"

namespace schroot::sys {
namespace {

using std::chrono::milliseconds;

void write_host(const std::string& path, const std::string& content) {
  UniqueFd fd(::open(path.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644));
  ASSERT_TRUE(fd) << path << ": " << std::strerror(errno);
  ASSERT_EQ(::write(fd.get(), content.data(), content.size()), static_cast<ssize_t>(content.size()));
}

std::string read_host(const std::string& path) {
  try {
    return read_file(path);
  } catch (const SystemError& e) {
    return std::string("<") + e.what() + ">";
  }
}

std::string read_fd(const UniqueFd& fd) {
  return read_host("/proc/self/fd/" + std::to_string(fd.get()));
}

std::vector<std::string> entries(const std::string& dir) {
  std::vector<std::string> out;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (struct dirent* e = ::readdir(d))
      if (std::string(e->d_name) != "." && std::string(e->d_name) != "..") out.push_back(e->d_name);
    ::closedir(d);
  }
  std::sort(out.begin(), out.end());
  return out;
}

bool exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

mode_t type_of(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0 ? (st.st_mode & S_IFMT) : 0;
}

bool same_inode(const UniqueFd& fd, const std::string& path) {
  struct stat a, b;
  return ::fstat(fd.get(), &a) == 0 && ::stat(path.c_str(), &b) == 0 && a.st_dev == b.st_dev &&
         a.st_ino == b.st_ino;
}

const MountInfo* find_mount(const std::vector<MountInfo>& all, const std::string& mount_point) {
  const MountInfo* found = nullptr;
  for (const auto& m : all)
    if (m.mount_point == mount_point) found = &m;  // the last is the topmost
  return found;
}

bool mounted_at(const std::string& path) {
  auto all = read_mountinfo();
  return find_mount(all, path) != nullptr;
}

void mount_tmpfs(const std::string& path) {
  ASSERT_EQ(::mount("sys-test", path.c_str(), "tmpfs", 0, "mode=0755"), 0) << path << ": " << std::strerror(errno);
}

// The system error code a call throws, or 0.
template <typename F>
int error_of(F f, std::string* message = nullptr) {
  try {
    f();
  } catch (const SystemError& e) {
    if (message) *message = e.what();
    return e.code().value();
  }
  return 0;
}

class SysTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/schroot-sys-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    // Our own tmpfs: overlay needs upper dirs on a filesystem that supports them,
    // and teardown is one detach whatever a failed test left below.
    mount_tmpfs(dir_);
    root_ = dir_ + "/root";
    host_ = dir_ + "/host";
    ASSERT_EQ(::mkdir(root_.c_str(), 0755), 0);
    ASSERT_EQ(::mkdir(host_.c_str(), 0755), 0);
    root_fd_ = open_path(root_);
  }
  void TearDown() override {
    root_fd_.reset();
    ::umount2(dir_.c_str(), MNT_DETACH);
    ::rmdir(dir_.c_str());
  }
  std::string in_root(const std::string& p) const { return root_ + p; }
  void mkdir_host(const std::string& p) { ASSERT_EQ(::mkdir(p.c_str(), 0755), 0) << p; }
  void symlink_host(const std::string& target, const std::string& link) {
    ASSERT_EQ(::symlink(target.c_str(), link.c_str()), 0) << link;
  }

  std::string dir_, root_, host_;
  UniqueFd root_fd_;
};

class Fs : public SysTest {};
class Mount : public SysTest {};
class Process : public SysTest {};

// --- resolve_in_root ----------------------------------------------------------------

TEST_F(Fs, ResolveInRootClampsAbsoluteSymlinkToTheRoot) {
  write_host(host_ + "/marker", "host");
  mkdir_p(root_ + host_, 0755);
  write_host(root_ + host_ + "/marker", "inside");
  symlink_host(host_, in_root("/link"));
  UniqueFd fd = resolve_in_root(root_fd_.get(), "/link/marker", O_RDONLY);
  EXPECT_EQ(read_fd(fd), "inside");
}

TEST_F(Fs, ResolveInRootNeverReachesTheHostsEtc) {
  symlink_host("/etc", in_root("/evil"));
  std::string msg;
  EXPECT_EQ(error_of([&] { resolve_in_root(root_fd_.get(), "/evil/passwd"); }, &msg), ENOENT);
  EXPECT_NE(msg.find("resolve /evil/passwd in " + root_), std::string::npos) << msg;
}

TEST_F(Fs, ResolveInRootClampsDotDotChains) {
  mkdir_host(in_root("/etc"));
  write_host(in_root("/etc/marker"), "inside");
  mkdir_host(in_root("/a"));
  mkdir_host(in_root("/a/b"));
  symlink_host("../../../../../../../../etc", in_root("/a/b/up"));
  UniqueFd fd = resolve_in_root(root_fd_.get(), "/a/b/up/marker", O_RDONLY);
  EXPECT_EQ(read_fd(fd), "inside");
  EXPECT_TRUE(same_inode(resolve_in_root(root_fd_.get(), "/../../.."), root_));
}

TEST_F(Fs, ResolveInRootFollowsChainedSymlinksInsideTheRoot) {
  mkdir_host(in_root("/real"));
  write_host(in_root("/real/f"), "chained");
  symlink_host("/l2", in_root("/l1"));
  symlink_host("../l3", in_root("/l2"));
  symlink_host("/real", in_root("/l3"));
  EXPECT_EQ(read_fd(resolve_in_root(root_fd_.get(), "/l1/f", O_RDONLY)), "chained");
}

// --- mkdir_p_in_root ----------------------------------------------------------------

TEST_F(Fs, MkdirPInRootCreatesMissingDirectories) {
  UniqueFd fd = mkdir_p_in_root(root_fd_.get(), "/var/lib/x");
  EXPECT_EQ(type_of(in_root("/var/lib/x")), S_IFDIR);
  EXPECT_TRUE(same_inode(fd, in_root("/var/lib/x")));
}

TEST_F(Fs, MkdirPInRootThroughAbsoluteSymlinkStaysInside) {
  mkdir_p(root_ + host_, 0755);
  symlink_host(host_, in_root("/etc"));
  mkdir_p_in_root(root_fd_.get(), "/etc/schroot/new");
  EXPECT_FALSE(exists(host_ + "/schroot"));
  EXPECT_EQ(type_of(root_ + host_ + "/schroot/new"), S_IFDIR);
}

TEST_F(Fs, MkdirPInRootThroughRelativeSymlinkStaysInside) {
  mkdir_host(in_root("/a"));
  symlink_host("../../host", in_root("/a/up"));  // naively followed: dir_/host
  mkdir_host(in_root("/host"));
  mkdir_p_in_root(root_fd_.get(), "/a/up/new");
  EXPECT_FALSE(exists(host_ + "/new"));
  EXPECT_EQ(type_of(in_root("/host/new")), S_IFDIR);
}

TEST_F(Fs, MkdirPInRootRefusesFifoWithoutBlocking) {
  ASSERT_EQ(::mkfifo(in_root("/fifo").c_str(), 0644), 0);
  std::string msg;
  EXPECT_EQ(error_of([&] { mkdir_p_in_root(root_fd_.get(), "/fifo"); }, &msg), ENOTDIR);
  EXPECT_NE(msg.find("a FIFO is in the way"), std::string::npos) << msg;
}

TEST_F(Fs, MkdirPInRootRefusesDeviceNode) {
  ASSERT_EQ(::mknod(in_root("/null").c_str(), S_IFCHR | 0666, makedev(1, 3)), 0);
  std::string msg;
  EXPECT_EQ(error_of([&] { mkdir_p_in_root(root_fd_.get(), "/null/sub"); }, &msg), ENOTDIR);
  EXPECT_EQ(error_of([&] { mkdir_p_in_root(root_fd_.get(), "/null"); }, &msg), ENOTDIR);
  EXPECT_NE(msg.find("a character device is in the way"), std::string::npos) << msg;
}

TEST_F(Fs, MkdirPInRootRefusesDanglingSymlink) {
  symlink_host("/nowhere", in_root("/dangling"));
  std::string msg;
  EXPECT_EQ(error_of([&] { mkdir_p_in_root(root_fd_.get(), "/dangling/x"); }, &msg), ENOENT);
  EXPECT_NE(msg.find("dangling symbolic link"), std::string::npos) << msg;
  EXPECT_FALSE(exists(in_root("/nowhere")));
}

TEST_F(Fs, MkdirPInRootRefusesSymlinkLoop) {
  symlink_host("/b", in_root("/a"));
  symlink_host("/a", in_root("/b"));
  EXPECT_EQ(error_of([&] { mkdir_p_in_root(root_fd_.get(), "/a/x"); }), ELOOP);
}

// --- ensure_file_in_root ------------------------------------------------------------

TEST_F(Fs, EnsureFileInRootCreatesEmptyRegularFile) {
  UniqueFd fd = ensure_file_in_root(root_fd_.get(), "/etc/resolv.conf");
  EXPECT_EQ(type_of(in_root("/etc/resolv.conf")), S_IFREG);
  EXPECT_EQ(read_host(in_root("/etc/resolv.conf")), "");
  EXPECT_TRUE(same_inode(fd, in_root("/etc/resolv.conf")));
}

TEST_F(Fs, EnsureFileInRootRefusesFifo) {
  ASSERT_EQ(::mkfifo(in_root("/fifo").c_str(), 0644), 0);
  EXPECT_EQ(error_of([&] { ensure_file_in_root(root_fd_.get(), "/fifo"); }), EEXIST);
}

// --- write_file_in_root -------------------------------------------------------------

TEST_F(Fs, WriteFileInRootReplacesAbsoluteSymlinkToHostFile) {
  write_host(host_ + "/passwd", "host\n");
  mkdir_host(in_root("/etc"));
  symlink_host(host_ + "/passwd", in_root("/etc/passwd"));
  write_file_in_root(root_fd_.get(), "/etc/passwd", "chroot\n");
  EXPECT_EQ(read_host(host_ + "/passwd"), "host\n");
  EXPECT_EQ(type_of(in_root("/etc/passwd")), S_IFREG);
  EXPECT_EQ(read_host(in_root("/etc/passwd")), "chroot\n");
}

TEST_F(Fs, WriteFileInRootReplacesRelativeSymlinkToHostFile) {
  write_host(host_ + "/passwd", "host\n");
  mkdir_host(in_root("/etc"));
  symlink_host("../../host/passwd", in_root("/etc/passwd"));
  write_file_in_root(root_fd_.get(), "/etc/passwd", "chroot\n");
  EXPECT_EQ(read_host(host_ + "/passwd"), "host\n");
  EXPECT_EQ(read_host(in_root("/etc/passwd")), "chroot\n");
}

TEST_F(Fs, WriteFileInRootReplacesFifoWithoutBlocking) {
  mkdir_host(in_root("/etc"));
  ASSERT_EQ(::mkfifo(in_root("/etc/group").c_str(), 0644), 0);
  write_file_in_root(root_fd_.get(), "/etc/group", "root:x:0:\n");
  EXPECT_EQ(read_host(in_root("/etc/group")), "root:x:0:\n");
}

TEST_F(Fs, WriteFileInRootRefusesDirectoryTarget) {
  mkdir_p(root_ + "/etc/passwd", 0755);
  EXPECT_EQ(error_of([&] { write_file_in_root(root_fd_.get(), "/etc/passwd", "x"); }), EISDIR);
  EXPECT_EQ(type_of(in_root("/etc/passwd")), S_IFDIR);
  EXPECT_EQ(entries(root_ + "/etc"), std::vector<std::string>{"passwd"}) << "a temporary file was left behind";
}

TEST_F(Fs, WriteFileInRootSetsModeAndOwner) {
  write_file_in_root(root_fd_.get(), "/etc/shadow", "s\n", 0640, 0, 42);
  struct stat st;
  ASSERT_EQ(::stat(in_root("/etc/shadow").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  EXPECT_EQ(st.st_uid, 0u);
  EXPECT_EQ(st.st_gid, 42u);
}

TEST_F(Fs, CopyFileIntoRootReportsWhetherItChangedAnything) {
  write_host(host_ + "/hosts", "127.0.0.1 localhost\n");
  ASSERT_EQ(::chmod((host_ + "/hosts").c_str(), 0604), 0);
  EXPECT_TRUE(copy_file_into_root(root_fd_.get(), "/etc/hosts", host_ + "/hosts"));
  EXPECT_EQ(read_host(in_root("/etc/hosts")), "127.0.0.1 localhost\n");
  struct stat st;
  ASSERT_EQ(::stat(in_root("/etc/hosts").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0604u);
  EXPECT_FALSE(copy_file_into_root(root_fd_.get(), "/etc/hosts", host_ + "/hosts"));
  write_host(host_ + "/hosts", "changed\n");
  EXPECT_TRUE(copy_file_into_root(root_fd_.get(), "/etc/hosts", host_ + "/hosts"));
  EXPECT_EQ(read_host(in_root("/etc/hosts")), "changed\n");
}

// --- host-side files ----------------------------------------------------------------

TEST_F(Fs, AtomicWriteFileReplacesContentAndLeavesNoTemporary) {
  const std::string f = host_ + "/record.json";
  write_host(f, "old");
  atomic_write_file(f, "new", 0600, /*durable=*/true);
  EXPECT_EQ(read_host(f), "new");
  struct stat st;
  ASSERT_EQ(::stat(f.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(entries(host_), std::vector<std::string>{"record.json"});
}

TEST_F(Fs, PublishExclusiveDoesNotReplaceAnExistingFile) {
  const std::string f = host_ + "/claim";
  EXPECT_TRUE(publish_exclusive(f, "first", 0644, /*durable=*/false));
  EXPECT_FALSE(publish_exclusive(f, "second", 0644, /*durable=*/true));
  EXPECT_EQ(read_host(f), "first");
}

TEST_F(Fs, MkdirPCreatesHostDirectoriesAndAcceptsExistingOnes) {
  mkdir_p(host_ + "/a/b/c", 0700);
  mkdir_p(host_ + "/a/b/c/", 0700);
  EXPECT_EQ(type_of(host_ + "/a/b/c"), S_IFDIR);
  write_host(host_ + "/file", "");
  EXPECT_EQ(error_of([&] { mkdir_p(host_ + "/file/x", 0755); }), ENOTDIR);
}

TEST_F(Fs, BootIdIsOneLineUuid) {
  const std::string id = boot_id();
  EXPECT_EQ(id.size(), 36u);
  EXPECT_EQ(id.find('\n'), std::string::npos);
}

// --- remove_tree --------------------------------------------------------------------

TEST_F(Fs, RemoveTreeRemovesNestedContents) {
  const std::string t = dir_ + "/tree";
  mkdir_p(t + "/a/b/c", 0755);
  write_host(t + "/a/f", "");
  write_host(t + "/a/b/c/g", "");
  ASSERT_EQ(::mkfifo((t + "/a/fifo").c_str(), 0644), 0);
  remove_tree(t);
  EXPECT_FALSE(exists(t));
}

TEST_F(Fs, RemoveTreeNeverFollowsSymlinks) {
  const std::string t = dir_ + "/tree";
  write_host(host_ + "/keep", "keep");
  mkdir_host(t);
  mkdir_host(t + "/sub");
  symlink_host(host_, t + "/abs");
  symlink_host("../../host", t + "/sub/rel");
  remove_tree(t);
  EXPECT_FALSE(exists(t));
  EXPECT_EQ(read_host(host_ + "/keep"), "keep");
}

TEST_F(Fs, RemoveTreeOfSymlinkRemovesOnlyTheLink) {
  write_host(host_ + "/keep", "keep");
  symlink_host(host_, dir_ + "/link");
  remove_tree(dir_ + "/link");
  EXPECT_FALSE(exists(dir_ + "/link"));
  EXPECT_EQ(read_host(host_ + "/keep"), "keep");
}

TEST_F(Fs, RemoveTreeRefusesToEnterBindMountOfTheSameFilesystem) {
  const std::string t = dir_ + "/tree";
  write_host(host_ + "/keep", "keep");
  mkdir_p(t + "/home", 0755);
  ASSERT_EQ(::mount(host_.c_str(), (t + "/home").c_str(), nullptr, MS_BIND, nullptr), 0);
  std::string msg;
  EXPECT_EQ(error_of([&] { remove_tree(t); }, &msg), EBUSY);
  EXPECT_NE(msg.find(t + "/home"), std::string::npos) << msg;
  EXPECT_EQ(read_host(host_ + "/keep"), "keep");
  EXPECT_TRUE(unmount_tree(t, false).still_mounted.empty());
}

TEST_F(Fs, RemoveTreeRefusesToEnterAnotherFilesystem) {
  const std::string t = dir_ + "/tree";
  mkdir_p(t + "/proc", 0755);
  mount_tmpfs(t + "/proc");
  write_host(t + "/proc/keep", "keep");
  EXPECT_EQ(error_of([&] { remove_tree(t); }), EBUSY);
  EXPECT_EQ(read_host(t + "/proc/keep"), "keep");
  EXPECT_TRUE(unmount_tree(t, false).still_mounted.empty());
}

TEST_F(Fs, RemoveTreeRefusesAMountPointAtTheTop) {
  const std::string t = dir_ + "/tree";
  mkdir_host(t);
  mount_tmpfs(t);
  write_host(t + "/keep", "keep");
  EXPECT_EQ(error_of([&] { remove_tree(t); }), EBUSY);
  EXPECT_EQ(read_host(t + "/keep"), "keep");
  EXPECT_TRUE(unmount_tree(t, false).still_mounted.empty());
}

TEST_F(Fs, RemoveTreeOfMissingPathIsDone) { EXPECT_NO_THROW(remove_tree(dir_ + "/never-was")); }

// --- bind mounts and attributes -----------------------------------------------------

TEST_F(Mount, BindMountAttachesSourceAndUnmountTreeDetachesIt) {
  write_host(host_ + "/file", "bound");
  {
    UniqueFd target = mkdir_p_in_root(root_fd_.get(), "/mnt");
    bind_mount(host_, target.get());
  }
  EXPECT_EQ(read_host(in_root("/mnt/file")), "bound");
  UnmountResult r = unmount_tree(in_root("/mnt"), false);
  EXPECT_FALSE(r.lazy_used);
  EXPECT_TRUE(r.still_mounted.empty());
  EXPECT_FALSE(exists(in_root("/mnt/file")));
}

TEST_F(Mount, BindMountOfAFileOntoEnsuredFile) {
  write_host(host_ + "/resolv.conf", "nameserver 1.1.1.1\n");
  {
    UniqueFd target = ensure_file_in_root(root_fd_.get(), "/etc/resolv.conf");
    bind_mount(host_ + "/resolv.conf", target.get());
  }
  EXPECT_EQ(read_host(in_root("/etc/resolv.conf")), "nameserver 1.1.1.1\n");
  EXPECT_TRUE(unmount_tree(in_root("/etc/resolv.conf"), false).still_mounted.empty());
}

TEST_F(Mount, RecursiveBindMountIncludesSubmounts) {
  mkdir_host(host_ + "/sub");
  mount_tmpfs(host_ + "/sub");
  write_host(host_ + "/sub/file", "sub");
  {
    UniqueFd target = mkdir_p_in_root(root_fd_.get(), "/rec");
    bind_mount(host_, target.get(), /*recursive=*/true);
    UniqueFd flat = mkdir_p_in_root(root_fd_.get(), "/flat");
    bind_mount(host_, flat.get(), /*recursive=*/false);
  }
  EXPECT_EQ(read_host(in_root("/rec/sub/file")), "sub");
  EXPECT_FALSE(exists(in_root("/flat/sub/file")));
  EXPECT_TRUE(unmount_tree(root_, false).still_mounted.empty());
}

TEST_F(Mount, MakeReadonlyMakesTheBindReadOnlyButNotItsSource) {
  {
    UniqueFd target = mkdir_p_in_root(root_fd_.get(), "/ro");
    bind_mount(host_, target.get());
    UniqueFd mounted = mkdir_p_in_root(root_fd_.get(), "/ro");
    make_readonly(mounted.get());
  }
  EXPECT_EQ(::open(in_root("/ro/new").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644), -1);
  EXPECT_EQ(errno, EROFS);
  write_host(host_ + "/new", "writable");
  EXPECT_EQ(read_host(in_root("/ro/new")), "writable");
  EXPECT_TRUE(unmount_tree(in_root("/ro"), false).still_mounted.empty());
}

TEST_F(Mount, MakePrivateRemovesPropagation) {
  UniqueFd target = mkdir_p_in_root(root_fd_.get(), "/p");
  bind_mount(host_, target.get());
  UniqueFd mounted = mkdir_p_in_root(root_fd_.get(), "/p");
  set_mount_attrs(mounted.get(), 0, 0, false, MS_SHARED);
  auto all = read_mountinfo();
  ASSERT_NE(find_mount(all, in_root("/p")), nullptr);
  EXPECT_NE(find_mount(all, in_root("/p"))->optional.find("shared:"), std::string::npos);
  make_private(mounted.get(), false);
  all = read_mountinfo();
  EXPECT_EQ(find_mount(all, in_root("/p"))->optional, "");
  mounted.reset();
  target.reset();
  EXPECT_TRUE(unmount_tree(in_root("/p"), false).still_mounted.empty());
}

// --- new filesystems ----------------------------------------------------------------

TEST_F(Mount, MountFilesystemProcWithAttributes) {
  {
    UniqueFd target = mkdir_p_in_root(root_fd_.get(), "/proc");
    mount_filesystem("proc", "proc", "defaults,nosuid,nodev,noexec", target.get());
  }
  EXPECT_TRUE(exists(in_root("/proc/self/status")));
  auto all = read_mountinfo();
  const MountInfo* m = find_mount(all, in_root("/proc"));
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->fstype, "proc");
  EXPECT_EQ(m->source, "proc");
  for (const char* o : {"nosuid", "nodev", "noexec"}) EXPECT_NE(m->options.find(o), std::string::npos) << m->options;
  EXPECT_TRUE(unmount_tree(in_root("/proc"), false).still_mounted.empty());
}

TEST_F(Mount, MountFilesystemTmpfsPassesFilesystemOptions) {
  {
    UniqueFd target = mkdir_p_in_root(root_fd_.get(), "/dev/shm");
    mount_filesystem("tmpfs", "tmpfs", "size=1m,mode=1777,noatime", target.get());
  }
  struct stat st;
  ASSERT_EQ(::stat(in_root("/dev/shm").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 01777u);
  auto all = read_mountinfo();
  const MountInfo* m = find_mount(all, in_root("/dev/shm"));
  ASSERT_NE(m, nullptr);
  EXPECT_NE(m->super_options.find("size=1024k"), std::string::npos) << m->super_options;
  EXPECT_NE(m->options.find("noatime"), std::string::npos) << m->options;
  EXPECT_TRUE(unmount_tree(in_root("/dev/shm"), false).still_mounted.empty());
}

TEST_F(Mount, MountFilesystemDevptsNewInstance) {
  {
    UniqueFd target = mkdir_p_in_root(root_fd_.get(), "/dev/pts");
    mount_filesystem("devpts", "devpts", "newinstance,ptmxmode=0666,mode=620,gid=5,nosuid,noexec", target.get());
  }
  struct stat st;
  ASSERT_EQ(::stat(in_root("/dev/pts/ptmx").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0666u);
  EXPECT_TRUE(unmount_tree(in_root("/dev/pts"), false).still_mounted.empty());
}

TEST_F(Mount, MountFilesystemReadOnly) {
  {
    UniqueFd target = mkdir_p_in_root(root_fd_.get(), "/ro");
    mount_filesystem("tmpfs", "tmpfs", "ro", target.get());
  }
  EXPECT_EQ(::mkdir(in_root("/ro/x").c_str(), 0755), -1);
  EXPECT_EQ(errno, EROFS);
  EXPECT_TRUE(unmount_tree(in_root("/ro"), false).still_mounted.empty());
}

TEST_F(Mount, MountFilesystemOverlayWritesToTheUpperDir) {
  for (const char* d : {"/lower", "/upper", "/work"}) mkdir_host(dir_ + d);
  write_host(dir_ + "/lower/file", "lower");
  {
    UniqueFd target = mkdir_p_in_root(root_fd_.get(), "/merged");
    mount_filesystem("overlay", "sid",
                     "lowerdir=" + dir_ + "/lower,upperdir=" + dir_ + "/upper,workdir=" + dir_ + "/work",
                     target.get());
  }
  EXPECT_EQ(read_host(in_root("/merged/file")), "lower");
  write_host(in_root("/merged/new"), "upper");
  EXPECT_EQ(read_host(dir_ + "/upper/new"), "upper");
  EXPECT_FALSE(exists(dir_ + "/lower/new"));
  EXPECT_TRUE(unmount_tree(in_root("/merged"), false).still_mounted.empty());
}

TEST_F(Mount, MountFilesystemOverlayErrorNamesTheFailingOption) {
  for (const char* d : {"/upper", "/work"}) mkdir_host(dir_ + d);
  UniqueFd target = mkdir_p_in_root(root_fd_.get(), "/merged");
  const std::string options =
      "lowerdir=" + dir_ + "/missing,upperdir=" + dir_ + "/upper,workdir=" + dir_ + "/work";
  std::string msg;
  EXPECT_EQ(error_of([&] { mount_filesystem("overlay", "sid", options, target.get()); }, &msg), ENOENT);
  EXPECT_NE(msg.find("mount overlay on " + root_ + "/merged (lowerdir=" + dir_ + "/missing"), std::string::npos)
      << msg;
  EXPECT_FALSE(mounted_at(in_root("/merged")));
}

// overlayfs reports this one only to the kernel log, not to the fs context.
TEST_F(Mount, MountFilesystemOverlayErrorCarriesTheKernelsMessage) {
  for (const char* d : {"/lower", "/upper", "/other"}) mkdir_host(dir_ + d);
  mount_tmpfs(dir_ + "/other");
  mkdir_host(dir_ + "/other/work");
  UniqueFd target = mkdir_p_in_root(root_fd_.get(), "/merged");
  const std::string options =
      "lowerdir=" + dir_ + "/lower,upperdir=" + dir_ + "/upper,workdir=" + dir_ + "/other/work";
  std::string msg;
  EXPECT_EQ(error_of([&] { mount_filesystem("overlay", "sid", options, target.get()); }, &msg), EINVAL);
  EXPECT_NE(msg.find("overlayfs: workdir and upperdir must reside under the same mount"), std::string::npos)
      << msg;
  EXPECT_FALSE(mounted_at(in_root("/merged")));
}

TEST_F(Mount, MountFilesystemErrorCarriesTheFsContextLog) {
  UniqueFd target = mkdir_p_in_root(root_fd_.get(), "/t");
  std::string msg;
  EXPECT_EQ(error_of([&] { mount_filesystem("tmpfs", "tmpfs", "size=1m,bogus=1", target.get()); }, &msg), EINVAL);
  EXPECT_NE(msg.find("(bogus=1: tmpfs: Unknown parameter 'bogus')"), std::string::npos) << msg;
}

TEST_F(Mount, MountFilesystemRejectsUnknownType) {
  UniqueFd target = mkdir_p_in_root(root_fd_.get(), "/t");
  EXPECT_EQ(error_of([&] { mount_filesystem("no-such-fs", "x", "", target.get()); }), ENODEV);
}

// --- mountinfo and unmounting -------------------------------------------------------

TEST_F(Mount, ReadMountinfoUnescapesSpecialCharacters) {
  const std::string odd = dir_ + "/a b\tc\\d";
  mkdir_host(odd);
  mount_tmpfs(odd);
  EXPECT_TRUE(mounted_at(odd));
  EXPECT_TRUE(is_mounted_at_or_below(odd));
  EXPECT_TRUE(unmount_tree(odd, false).still_mounted.empty());
  EXPECT_FALSE(is_mounted_at_or_below(odd));
}

TEST_F(Mount, UnmountTreeUnmountsNestedMounts) {
  const std::string a = in_root("/a");
  mkdir_host(a);
  mount_tmpfs(a);
  mkdir_host(a + "/b");
  mount_tmpfs(a + "/b");
  mkdir_host(a + "/b/c");
  mount_tmpfs(a + "/b/c");
  UnmountResult r = unmount_tree(a + "/", false);
  EXPECT_FALSE(r.lazy_used);
  EXPECT_TRUE(r.still_mounted.empty());
  EXPECT_FALSE(is_mounted_at_or_below(a));
}

TEST_F(Mount, UnmountTreeUnmountsMountsHiddenUnderAStackedMount) {
  const std::string a = in_root("/a");
  mkdir_host(a);
  mount_tmpfs(a);
  mkdir_host(a + "/b");
  mount_tmpfs(a + "/b");
  mount_tmpfs(a);  // hides a/b
  UnmountResult r = unmount_tree(a, false);
  EXPECT_FALSE(r.lazy_used);
  EXPECT_TRUE(r.still_mounted.empty());
  EXPECT_FALSE(is_mounted_at_or_below(a));
}

TEST_F(Mount, UnmountTreeLeavesSiblingWithCommonPrefix) {
  mkdir_host(in_root("/a"));
  mkdir_host(in_root("/ab"));
  mount_tmpfs(in_root("/a"));
  mount_tmpfs(in_root("/ab"));
  EXPECT_TRUE(unmount_tree(in_root("/a"), false).still_mounted.empty());
  EXPECT_TRUE(mounted_at(in_root("/ab")));
  EXPECT_TRUE(unmount_tree(in_root("/ab"), false).still_mounted.empty());
}

TEST_F(Mount, UnmountTreeKeepsBusyMountWhenLazyIsNotAllowed) {
  const std::string busy = in_root("/busy");
  mkdir_host(busy);
  mount_tmpfs(busy);
  write_host(busy + "/f", "x");
  UniqueFd held(::open((busy + "/f").c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(held);
  UnmountResult r = unmount_tree(busy, false);
  EXPECT_FALSE(r.lazy_used);
  EXPECT_EQ(r.still_mounted, std::vector<std::string>{busy});
  EXPECT_TRUE(mounted_at(busy));
  held.reset();
  EXPECT_TRUE(unmount_tree(busy, false).still_mounted.empty());
}

TEST_F(Mount, UnmountTreeDetachesBusyMountLazilyWhenAllowed) {
  const std::string busy = in_root("/busy");
  mkdir_host(busy);
  mount_tmpfs(busy);
  mkdir_host(busy + "/inner");
  mount_tmpfs(busy + "/inner");
  write_host(busy + "/inner/f", "x");
  UniqueFd held(::open((busy + "/inner/f").c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(held);
  UnmountResult r = unmount_tree(busy, true);
  EXPECT_TRUE(r.lazy_used);
  EXPECT_TRUE(r.still_mounted.empty());
  EXPECT_FALSE(is_mounted_at_or_below(busy));
  EXPECT_EQ(read_fd(held), "x");  // still readable through the detached mount
}

TEST_F(Mount, UnmountTreeRefusesTheRoot) { EXPECT_EQ(error_of([] { unmount_tree("/", true); }), EINVAL); }

TEST_F(Mount, UnmountTreeOfPathWithoutMountsIsDone) {
  UnmountResult r = unmount_tree(in_root("/nothing"), false);
  EXPECT_FALSE(r.lazy_used);
  EXPECT_TRUE(r.still_mounted.empty());
}

// --- processes ----------------------------------------------------------------------

// A child chrooted into `dir` that waits for signals; reaped by the destructor if the
// test did not. `before_chroot` runs in the child first (entering another mount
// namespace, say); false from it makes the child fail.
class ChrootedChild {
 public:
  ChrootedChild(const std::string& dir, bool ignore_sigterm, const std::function<bool()>& before_chroot = {}) {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) return;
    child_ = Child::fork_function([&] {
      if (ignore_sigterm) ::signal(SIGTERM, SIG_IGN);
      if (before_chroot && !before_chroot()) return 1;
      if (::chroot(dir.c_str()) != 0 || ::chdir("/") != 0) return 1;
      (void)!::write(p[1], "r", 1);
      for (;;) ::pause();
    });
    ::close(p[1]);
    char c;
    ready_ = ::read(p[0], &c, 1) == 1;  // a pipe, not a sleep
    ::close(p[0]);
  }
  pid_t pid() const { return child_.pid(); }
  bool ready() const { return ready_; }
  ExitStatus reap() { return child_.wait(); }

 private:
  Child child_;  // killed and reaped when the test did not
  bool ready_ = false;
};

bool contains(const std::vector<pid_t>& v, pid_t p) { return std::find(v.begin(), v.end(), p) != v.end(); }

TEST_F(Process, RunProgramCapturesOutputAndExitCode) {
  std::string out;
  ExitStatus s = run_program({"/bin/sh", "-c", "echo out; echo err >&2; exit 3"}, {}, &out);
  EXPECT_TRUE(s.exited);
  EXPECT_EQ(s.code, 3);
  EXPECT_EQ(out, "out\nerr\n");
  EXPECT_EQ(s.describe(), "exited with status 3");
}

TEST_F(Process, RunProgramPassesOnlyTheGivenEnvironment) {
  std::string out;
  ExitStatus s = run_program({"/usr/bin/env"}, {"ONLY=this"}, &out);
  EXPECT_TRUE(s.success());
  EXPECT_EQ(out, "ONLY=this\n");
}

TEST_F(Process, RunProgramReportsExecFailure) {
  std::string msg;
  EXPECT_EQ(error_of([&] { run_program({dir_ + "/no-such-program"}, {}); }, &msg), ENOENT);
  EXPECT_NE(msg.find("execute " + dir_ + "/no-such-program"), std::string::npos) << msg;
}

TEST_F(Process, WaitForReportsTheKillingSignal) {
  ChrootedChild child(root_, false);
  ASSERT_TRUE(child.ready());
  ::kill(child.pid(), SIGKILL);
  ExitStatus s = child.reap();
  EXPECT_FALSE(s.exited);
  EXPECT_EQ(s.signal, SIGKILL);
  EXPECT_EQ(s.describe(), "killed by signal 9 (SIGKILL)");
}

// --- a session's processes ----------------------------------------------------------

// In a child (before its chroot): a mount namespace of its own, as an automatic
// session's schroot makes. Its mounts do not reach the test's namespace: main() made
// every mount private, and copies of private mounts are private.
bool own_mount_namespace() { return ::unshare(CLONE_NEWNS) == 0; }

class SessionProcesses : public SysTest {
 protected:
  void SetUp() override {
    SysTest::SetUp();
    mount_dir_ = dir_ + "/mount";
    location_ = mount_dir_ + "/s1";
    mkdir_host(mount_dir_);
    mkdir_host(location_);
  }
  // A tmpfs at the session's mount location: the session root.
  void mount_session_root() { mount_tmpfs(location_); }
  std::vector<pid_t> in_session(const std::string& location) {
    auto root = open_session_root(location);
    return root ? processes_in_session(*root) : std::vector<pid_t>{};
  }
  std::string mount_dir_, location_;
};

TEST_F(SessionProcesses, FindsAChildChrootedIntoTheSessionRoot) {
  mount_session_root();
  ChrootedChild child(location_, false);
  ASSERT_TRUE(child.ready());
  auto pids = in_session(location_);
  EXPECT_TRUE(contains(pids, child.pid()));
  EXPECT_FALSE(contains(pids, ::getpid()));
}

// An automatic session: its root is mounted only in its own mount namespace, and the
// finder runs inside a chroot (the tests in a CI chroot). Path text fails both ways:
// /proc/PID/root reads as the host's path, which the chrooted finder does not use.
TEST_F(SessionProcesses, FindsAProcessOfAnotherMountNamespaceFromInsideAChroot) {
  const std::string location = location_;
  ChrootedChild child(location_, false, [&] {
    return own_mount_namespace() && ::mount("session", location.c_str(), "tmpfs", 0, "mode=0755") == 0;
  });
  ASSERT_TRUE(child.ready());
  mkdir_host(dir_ + "/proc");
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  Child finder = Child::fork_function([&] {
    if (!own_mount_namespace() || ::mount("proc", (dir_ + "/proc").c_str(), "proc", 0, nullptr) != 0 ||
        ::chroot(dir_.c_str()) != 0 || ::chdir("/") != 0)
      return 1;
    try {
      auto root = open_session_root("/mount/s1");
      std::vector<pid_t> pids = root ? processes_in_session(*root) : std::vector<pid_t>{};
      (void)!::write(p[1], pids.data(), pids.size() * sizeof(pid_t));
    } catch (...) {
      return 2;
    }
    return 0;
  });
  ::close(p[1]);
  std::vector<pid_t> found;
  pid_t pid;
  while (::read(p[0], &pid, sizeof pid) == static_cast<ssize_t>(sizeof pid)) found.push_back(pid);
  ::close(p[0]);
  EXPECT_TRUE(finder.wait().success());
  EXPECT_TRUE(contains(found, child.pid())) << "the chrooted finder missed the session's process";
}

// Same path text, another directory: a namespace that hides the mount directory
// under a tmpfs of its own with a directory of the session's name in it.
TEST_F(SessionProcesses, IgnoresADifferentRootWithTheSamePathText) {
  mount_session_root();
  const std::string mount_dir = mount_dir_, location = location_;
  ChrootedChild other(location_, false, [&] {
    return own_mount_namespace() && ::mount("other", mount_dir.c_str(), "tmpfs", 0, "mode=0755") == 0 &&
           ::mkdir(location.c_str(), 0755) == 0;
  });
  ASSERT_TRUE(other.ready());
  EXPECT_FALSE(contains(in_session(location_), other.pid()));
}

TEST_F(SessionProcesses, IgnoresADifferentDirectoryOfTheSameFilesystem) {
  mount_session_root();
  mkdir_host(location_ + "/sub");
  ChrootedChild below(location_ + "/sub", false), sibling(mount_dir_, false);
  ASSERT_TRUE(below.ready() && sibling.ready());
  auto pids = in_session(location_);
  EXPECT_FALSE(contains(pids, below.pid()));
  EXPECT_FALSE(contains(pids, sibling.pid()));
}

// Two directory sessions of one chroot are bind mounts of one tree: the same device
// and inode; the mount tells them apart (and from the tree itself).
TEST_F(SessionProcesses, TellsApartBindMountsOfOneDirectory) {
  const std::string tree = dir_ + "/tree", location2 = mount_dir_ + "/s2";
  mkdir_host(tree);
  mkdir_host(location2);
  ASSERT_EQ(::mount(tree.c_str(), location_.c_str(), nullptr, MS_BIND, nullptr), 0);
  ASSERT_EQ(::mount(tree.c_str(), location2.c_str(), nullptr, MS_BIND, nullptr), 0);
  ChrootedChild in_s2(location2, false), in_tree(tree, false);
  ASSERT_TRUE(in_s2.ready() && in_tree.ready());
  auto s1 = in_session(location_), s2 = in_session(location2);
  EXPECT_FALSE(contains(s1, in_s2.pid()));
  EXPECT_FALSE(contains(s1, in_tree.pid()));
  EXPECT_TRUE(contains(s2, in_s2.pid()));
  EXPECT_FALSE(contains(s2, in_tree.pid()));
}

TEST_F(SessionProcesses, OpenSessionRootRefusesOurOwnRoot) {
  EXPECT_EQ(error_of([] { open_session_root("/"); }), EINVAL);
  // A mount location that is our root under another name.
  ASSERT_EQ(::mount("/", location_.c_str(), nullptr, MS_BIND, nullptr), 0);
  EXPECT_EQ(error_of([&] { open_session_root(location_); }), EINVAL);
}

TEST_F(SessionProcesses, OpenSessionRootOfAMissingPlaceIsNobody) {
  EXPECT_FALSE(open_session_root(mount_dir_ + "/gone").has_value());
  EXPECT_FALSE(open_session_root(dir_ + "/no-dir/s1").has_value());
  EXPECT_EQ(kill_processes_in_session(open_session_root(mount_dir_ + "/gone"), milliseconds(100)), 0);
}

TEST_F(SessionProcesses, KillEndsItsProcessesWithSigterm) {
  mount_session_root();
  ChrootedChild child(location_, false);
  ASSERT_TRUE(child.ready());
  EXPECT_EQ(kill_processes_in_session(open_session_root(location_), milliseconds(500)), 1);
  ExitStatus s = child.reap();
  EXPECT_EQ(s.signal, SIGTERM);
  EXPECT_TRUE(in_session(location_).empty());
}

TEST_F(SessionProcesses, KillEscalatesToSigkillAfterGrace) {
  mount_session_root();
  ChrootedChild child(location_, /*ignore_sigterm=*/true);
  ASSERT_TRUE(child.ready());
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(kill_processes_in_session(open_session_root(location_), milliseconds(100)), 1);
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(900));
  EXPECT_EQ(child.reap().signal, SIGKILL);
}

// The test harness's own, broader net (TestRoot's teardown): anything rooted anywhere
// under a directory, in any mount namespace, but not a sibling with a common prefix.
TEST_F(SessionProcesses, HarnessFindsProcessesRootedAnywhereUnderItsTop) {
  const std::string location = location_;
  mkdir_host(dir_ + "/mount2");
  ChrootedChild deep(location_ + "/sub", false, [&] {
    return own_mount_namespace() && ::mount("session", location.c_str(), "tmpfs", 0, "mode=0755") == 0 &&
           ::mkdir((location + "/sub").c_str(), 0755) == 0;
  });
  ChrootedChild sibling(dir_ + "/mount2", false);
  ASSERT_TRUE(deep.ready() && sibling.ready());
  UniqueFd top = open_path(mount_dir_);
  auto top_id = identity_of(top.get());
  ASSERT_TRUE(top_id.has_value());
  EXPECT_TRUE(schroot::test::rooted_under(deep.pid(), *top_id));
  EXPECT_FALSE(schroot::test::rooted_under(sibling.pid(), *top_id));
  EXPECT_FALSE(schroot::test::rooted_under(::getpid(), *top_id));
}

TEST_F(SessionProcesses, KillWithNobodyThereReturnsZero) {
  mount_session_root();
  EXPECT_EQ(kill_processes_in_session(open_session_root(location_), milliseconds(100)), 0);
}

}  // namespace
}  // namespace schroot::sys
