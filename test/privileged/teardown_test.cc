// Teardown against a hostile tree: a session's mounts are listed by mount id and
// unmounted through checked handles, so root inside a -b session that renames a
// directory (or plants a symlink) between the listing and the umount can neither hide
// a session mount nor redirect the unmount to a mount outside. Loop devices are really
// released before a session's record goes. The race is made deterministic with the
// fault points' pause (SCHROOT_PAUSE_AT) and unmount_tree's after_listing hook.
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <pwd.h>
#include <stddef.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "src/error.h"
#include "src/sys/command.h"
#include "src/sys/fs.h"
#include "src/sys/loop_device.h"
#include "src/sys/mount.h"
#include "test/privileged/harness.h"

namespace schroot::sys {
namespace {

using schroot::test::loops_backed_by;

using Id = std::uint64_t;

// The id of the mount at `path` (the topmost), or 0 when `path` is not a mount point; of
// the kind listings carry now (unique with listmount, mountinfo's without).
Id mount_at(const std::string& path) {
  UniqueFd at(::open(path.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
  const std::string parent = path.substr(0, path.rfind('/'));
  UniqueFd up(::open(parent.c_str(), O_PATH | O_CLOEXEC));
  if (!at || !up) return 0;
  const Id id = mount_id_of(at.get(), mount_listing_ids());
  return id == mount_id_of(up.get(), mount_listing_ids()) ? 0 : id;
}

std::vector<Id> ids_of(const MountTree& t) {
  std::vector<Id> out;
  for (const auto& m : t.mounts) out.push_back(m.id);
  return out;
}

// Position of `id` in the listing, or -1.
int position(const MountTree& t, Id id) {
  auto v = ids_of(t);
  auto it = std::find(v.begin(), v.end(), id);
  return it == v.end() ? -1 : static_cast<int>(it - v.begin());
}

using schroot::test::run;

// Every test runs twice: listing with listmount/statmount (unique ids; skipped on a
// kernel without them) and with /proc/self/mountinfo (the fallback, reused ids).
class Teardown : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    allow_listmount(GetParam());
    if (GetParam() && mount_listing_ids() != MountIds::kUnique) GTEST_SKIP() << "no listmount on this kernel";
    char tmpl[] = "/tmp/schroot-teardown-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    tmpfs(dir_);
    top_ = dir_ + "/mount/s1";  // a session's mount location
    host_ = dir_ + "/host";
    mkdir_p(top_, 0755);
    mkdir_p(host_, 0755);
  }
  void TearDown() override {
    if (!dir_.empty()) ::umount2(dir_.c_str(), MNT_DETACH);
    if (!dir_.empty()) ::rmdir(dir_.c_str());
    allow_listmount(true);
  }
  void tmpfs(const std::string& path) {
    ASSERT_EQ(::mount("teardown-test", path.c_str(), "tmpfs", 0, "mode=0755"), 0)
        << path << ": " << std::strerror(errno);
  }
  void mkdirs(const std::string& path) { mkdir_p(path, 0755); }
  // A host-side mount outside the session: what an attacker would like us to unmount.
  Id host_mount() {
    mkdirs(host_ + "/inner");
    tmpfs(host_ + "/inner");
    return mount_at(host_ + "/inner");
  }
  std::string dir_, top_, host_;
};

// --- the listing --------------------------------------------------------------------

TEST_P(Teardown, ListingHasNestedMountsChildrenBeforeParents) {
  tmpfs(top_);
  mkdirs(top_ + "/a");
  tmpfs(top_ + "/a");
  mkdirs(top_ + "/a/b");
  tmpfs(top_ + "/a/b");
  mkdirs(top_ + "/c");
  tmpfs(top_ + "/c");
  const Id root = mount_at(top_), a = mount_at(top_ + "/a"), b = mount_at(top_ + "/a/b"),
            c = mount_at(top_ + "/c");
  MountTree t = list_mount_tree(top_);
  EXPECT_EQ(t.base, root);
  ASSERT_EQ(t.mounts.size(), 4u) << ::testing::PrintToString(ids_of(t));
  EXPECT_LT(position(t, b), position(t, a));
  EXPECT_LT(position(t, a), position(t, root));
  EXPECT_LT(position(t, c), position(t, root));
  EXPECT_EQ(position(t, root), 3);
}

TEST_P(Teardown, ListingFindsAMountWhoseParentDirectoryWasRenamed) {
  tmpfs(top_);
  mkdirs(top_ + "/build/inner");
  tmpfs(top_ + "/build/inner");
  const Id inner = mount_at(top_ + "/build/inner");
  ASSERT_EQ(::rename((top_ + "/build").c_str(), (top_ + "/elsewhere").c_str()), 0);
  MountTree t = list_mount_tree(top_);
  ASSERT_NE(position(t, inner), -1);
  EXPECT_EQ(t.mounts[position(t, inner)].mount_point, top_ + "/elsewhere/inner");
}

TEST_P(Teardown, ListingLeavesOutMountsOutsideTheTreeWhateverTheirPath) {
  tmpfs(top_);
  const Id outside = host_mount();
  // A sibling whose path starts with ours, and a link inside the tree to the host's mount.
  mkdirs(top_ + "2");
  tmpfs(top_ + "2");
  ASSERT_EQ(::symlink(host_.c_str(), (top_ + "/link").c_str()), 0);
  MountTree t = list_mount_tree(top_);
  EXPECT_EQ(ids_of(t), std::vector<Id>{mount_at(top_)});
  EXPECT_EQ(position(t, outside), -1);
}

TEST_P(Teardown, ListingHasTheWholeStackAtThePathAndWhatItHides) {
  tmpfs(top_);
  const Id lower = mount_at(top_);
  mkdirs(top_ + "/b");
  tmpfs(top_ + "/b");
  const Id hidden = mount_at(top_ + "/b");
  tmpfs(top_);  // hides b
  const Id upper = mount_at(top_);
  MountTree t = list_mount_tree(top_);
  EXPECT_EQ(t.base, lower);
  EXPECT_EQ(position(t, lower), 2);
  EXPECT_NE(position(t, hidden), -1);
  EXPECT_NE(position(t, upper), -1);
}

TEST_P(Teardown, ListingWithNothingAtThePathHasTheMountsBelowIt) {
  mkdirs(top_ + "/a");
  tmpfs(top_ + "/a");
  mkdirs(top_ + "/a/b");
  tmpfs(top_ + "/a/b");
  MountTree t = list_mount_tree(top_);
  EXPECT_EQ(t.base, 0);
  EXPECT_EQ(ids_of(t), (std::vector<Id>{mount_at(top_ + "/a/b"), mount_at(top_ + "/a")}));
  EXPECT_TRUE(list_mount_tree(dir_ + "/no/such/place").mounts.empty());
}

// A session's mount location once its mounts are gone: an empty directory. Nothing can
// be mounted below it, so no mount is read (with mountinfo, all the host's; with
// listmount, every session's below the same directory); the final check of every end.
TEST_P(Teardown, ListingAnEmptyDirectoryWithNothingMountedReadsNoMount) {
  mkdirs(dir_ + "/mount/s2");
  tmpfs(dir_ + "/mount/s2");
  MountTree t = list_mount_tree(top_);
  EXPECT_TRUE(t.mounts.empty());
  EXPECT_EQ(t.mounts_read, 0u);
  tmpfs(top_);
  mkdirs(top_ + "/proc");
  tmpfs(top_ + "/proc");
  EXPECT_EQ(list_mount_tree(top_).mounts_read, GetParam() ? 2u : read_mountinfo().size());
  EXPECT_TRUE(unmount_tree(top_, false).problems.empty());
  t = list_mount_tree(top_);
  EXPECT_TRUE(t.mounts.empty());
  EXPECT_EQ(t.mounts_read, 0u);
  // Not empty: a mount below it is looked for (and found).
  mkdirs(top_ + "/a");
  tmpfs(top_ + "/a");
  EXPECT_EQ(list_mount_tree(top_).mounts.size(), 1u);
}

TEST_P(Teardown, MountIdOfAnFdIsTheMountinfoId) {
  tmpfs(top_);
  UniqueFd fd(::open(top_.c_str(), O_PATH | O_CLOEXEC));
  Id found = 0;
  for (const auto& m : read_mountinfo())
    if (m.mount_point == top_) found = m.id;
  EXPECT_EQ(mount_id_of(fd.get()), found);
}

// --- unmounting through checked handles -----------------------------------------------

// The attack of finding 7: after the listing, a directory on the way to a session
// mount is renamed and replaced by a symlink to a host directory that has a mount of
// the same name. Unmounting by path would unmount the host's mount.
TEST_P(Teardown, UnmountNeverFollowsALinkPlantedAfterTheListing) {
  tmpfs(top_);
  mkdirs(top_ + "/build/inner");
  tmpfs(top_ + "/build/inner");
  const Id outside = host_mount();
  bool attacked = false;
  UnmountResult r = unmount_tree(top_, false, true, [&] {
    if (attacked) return;
    attacked = true;
    ASSERT_EQ(::rename((top_ + "/build").c_str(), (top_ + "/build2").c_str()), 0);
    ASSERT_EQ(::symlink(host_.c_str(), (top_ + "/build").c_str()), 0);
  });
  EXPECT_TRUE(attacked);
  EXPECT_TRUE(r.problems.empty()) << ::testing::PrintToString(r.problems);
  EXPECT_EQ(mount_at(host_ + "/inner"), outside) << "the host's mount was unmounted";
  EXPECT_TRUE(list_mount_tree(top_).mounts.empty());
}

// Renamed back and forth at every listing: never reachable as listed. Bounded, then
// reported by mount id and mount point; nothing outside is touched.
TEST_P(Teardown, UnmountGivesUpOnAMountThatKeepsMovingAndNamesIt) {
  tmpfs(top_);
  mkdirs(top_ + "/a/inner");
  tmpfs(top_ + "/a/inner");
  const Id inner = mount_at(top_ + "/a/inner");
  const Id outside = host_mount();
  int listings = 0;
  UnmountResult r = unmount_tree(top_, false, true, [&] {
    ++listings;
    const bool at_a = ::access((top_ + "/a").c_str(), F_OK) == 0;
    ::rename((top_ + (at_a ? "/a" : "/b")).c_str(), (top_ + (at_a ? "/b" : "/a")).c_str());
  });
  EXPECT_LE(listings, 40);
  ASSERT_EQ(r.problems.size(), 2u) << ::testing::PrintToString(r.problems);  // inner keeps its parent busy
  const std::string& p = r.problems[0];
  EXPECT_NE(p.find("mount " + std::to_string(inner) + " at " + top_ + "/"), std::string::npos) << p;
  EXPECT_NE(p.find("/inner: "), std::string::npos) << p;
  EXPECT_EQ(mount_at(host_ + "/inner"), outside);
  EXPECT_EQ(r.still_mounted.size(), 2u);
}

TEST_P(Teardown, UnmountBelowLeavesTheMountAtThePathAndUnmountsItsStack) {
  tmpfs(top_);
  const Id base = mount_at(top_);
  mkdirs(top_ + "/proc");
  tmpfs(top_ + "/proc");
  tmpfs(top_);  // stacked on the session root, hiding proc
  UnmountResult r = unmount_tree(top_, false, /*include_top=*/false);
  EXPECT_TRUE(r.problems.empty()) << ::testing::PrintToString(r.problems);
  EXPECT_EQ(ids_of(list_mount_tree(top_)), std::vector<Id>{base});
}

// --- loop devices ---------------------------------------------------------------------

class TeardownLoop : public Teardown {
 protected:
  void SetUp() override {
    Teardown::SetUp();
    if (IsSkipped()) return;
    image_ = dir_ + "/image";
    ASSERT_EQ(run("mke2fs -q -F -t ext4 " + image_ + " 8M >/dev/null"), 0);
    struct stat st;
    ASSERT_EQ(::stat(image_.c_str(), &st), 0);
    dev_ = st.st_dev;
    ino_ = st.st_ino;
  }
  void TearDown() override {
    if (dir_.empty()) return Teardown::TearDown();  // skipped
    ::umount2(top_.c_str(), MNT_DETACH);
    held_.reset();
    for (int i = 0; i < 200 && !loops_backed_by(dev_, ino_).empty(); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    EXPECT_TRUE(loops_backed_by(dev_, ino_).empty()) << "a loop device leaked";
    try {
      detach_loops_backed_by(dev_, ino_);
    } catch (const std::exception&) {
    }
    Teardown::TearDown();
  }
  // Mounts the image through a loop device (autoclear off: only a detach frees it,
  // as for a session's device) and keeps a file in it open.
  void mount_image_busy() {
    LoopDevice::Options opts;
    opts.autoclear = false;
    LoopDevice loop = LoopDevice::attach(image_, opts);
    UniqueFd target(::open(top_.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    mount_filesystem("ext4", loop.path(), "", target.get());
    loop.release();
    held_.reset(::open((top_ + "/f").c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644));
    ASSERT_TRUE(held_);
  }
  std::string image_;
  dev_t dev_ = 0;
  ino_t ino_ = 0;
  UniqueFd held_;
};

TEST_P(TeardownLoop, UnmountNeverDetachesALoopDevicesMountLazily) {
  mount_image_busy();
  const Id mounted = mount_at(top_);
  UnmountResult r = unmount_tree(top_, /*allow_lazy=*/true);
  EXPECT_FALSE(r.lazy_used);
  EXPECT_EQ(mount_at(top_), mounted);
  ASSERT_EQ(r.problems.size(), 1u);
  EXPECT_NE(r.problems[0].find("never detached lazily"), std::string::npos) << r.problems[0];
  held_.reset();
  EXPECT_TRUE(unmount_tree(top_, true).problems.empty());
  EXPECT_EQ(detach_loops_backed_by(dev_, ino_), 1);
  EXPECT_TRUE(loops_backed_by(dev_, ino_).empty());
}

// Somebody detached the mount lazily and holds a file in it: the superblock and the
// device live on, so the device is not released.
TEST_P(TeardownLoop, DetachFailsWhileALazilyDetachedMountHoldsTheDevice) {
  mount_image_busy();
  ASSERT_EQ(::umount2(top_.c_str(), MNT_DETACH), 0);
  int err = 0;
  try {
    detach_loops_backed_by(dev_, ino_);
  } catch (const SystemError& e) {
    err = e.code().value();
    EXPECT_NE(std::string(e.what()).find("still mounted or open"), std::string::npos) << e.what();
  }
  EXPECT_EQ(err, EBUSY);
  EXPECT_EQ(loops_backed_by(dev_, ino_).size(), 1u);
  held_.reset();  // the last user: autoclear (set by the detach) frees it
}

TEST_P(TeardownLoop, DetachReturnsOnlyOnceTheDeviceIsUnbound) {
  LoopDevice::Options opts;
  opts.autoclear = false;
  LoopDevice::attach(image_, opts).release();
  EXPECT_EQ(detach_loops_backed_by(dev_, ino_), 1);
  EXPECT_TRUE(loops_backed_by(dev_, ino_).empty());  // no polling: already gone
}

// --- listmount and its fallback give the same listing ----------------------------------

// A session's tree as a listing shows it, ids aside: the mounts in order, each with its
// mount point, type, root and source (statmount has no source before 6.13).
std::vector<std::string> shape_of(const MountTree& t, bool with_source) {
  std::vector<std::string> out;
  for (const auto& m : t.mounts)
    out.push_back(m.mount_point + " " + m.fstype + " " + m.root + (with_source ? " " + m.source : ""));
  return out;
}

class Listings : public Teardown {
 protected:
  void SetUp() override {
    Teardown::SetUp();
    if (IsSkipped()) return;
    // Three sessions side by side: s1 (the one listed), s2, and s10, whose path starts
    // with s1's.
    for (const char* other : {"/mount/s2", "/mount/s10"}) {
      mkdirs(dir_ + other + "/inner");
      tmpfs(dir_ + other);
      mkdirs(dir_ + other + "/inner");
      tmpfs(dir_ + other + "/inner");
    }
  }
  void bind(const std::string& from, const std::string& to) {
    ASSERT_EQ(::mount(from.c_str(), to.c_str(), nullptr, MS_BIND, nullptr), 0) << to << ": " << std::strerror(errno);
  }
  // A session's tree: tmpfs root, an overlay, binds (one of a subdirectory), nested
  // tmpfs, a mount stacked over another, and a mount point with a space and a newline
  // (mountinfo escapes both).
  void build_session_tree(const std::string& top, bool mount_root) {
    mkdirs(host_ + "/lower/sub");
    mkdirs(host_ + "/upper");
    mkdirs(host_ + "/work");
    if (mount_root) tmpfs(top);
    mkdirs(top + "/merged");
    const std::string opts = "lowerdir=" + host_ + "/lower,upperdir=" + host_ + "/upper,workdir=" + host_ + "/work";
    ASSERT_EQ(::mount("overlay", (top + "/merged").c_str(), "overlay", 0, opts.c_str()), 0) << std::strerror(errno);
    mkdirs(top + "/merged/proc");
    tmpfs(top + "/merged/proc");
    mkdirs(top + "/bound");
    bind(host_ + "/lower", top + "/bound");
    mkdirs(top + "/bound-sub");
    bind(host_ + "/lower/sub", top + "/bound-sub");
    mkdirs(top + "/stack");
    tmpfs(top + "/stack");
    mkdirs(top + "/stack/hidden");
    tmpfs(top + "/stack/hidden");
    tmpfs(top + "/stack");  // hides stack/hidden
    const std::string odd = top + "/odd dir\nname\twith\\";
    mkdirs(odd);
    tmpfs(odd);
    mkdirs(odd + "/deeper");
    tmpfs(odd + "/deeper");
  }
  // The listing of `path` through each way, in this process.
  MountTree listed(const std::string& path, bool with_listmount) {
    allow_listmount(with_listmount);
    MountTree t = list_mount_tree(path);
    allow_listmount(true);
    return t;
  }
  void expect_same_listing(const std::string& path, std::size_t mounts) {
    const MountTree by_listmount = listed(path, true), by_mountinfo = listed(path, false);
    EXPECT_EQ(by_listmount.ids, MountIds::kUnique);
    EXPECT_EQ(by_mountinfo.ids, MountIds::kReused);
    EXPECT_EQ(by_listmount.mounts.size(), mounts) << ::testing::PrintToString(shape_of(by_listmount, false));
    // Sources too when statmount has them (Linux 6.13).
    const bool sources = !by_listmount.mounts.empty() && !by_listmount.mounts.back().source.empty();
    EXPECT_EQ(shape_of(by_listmount, sources), shape_of(by_mountinfo, sources));
    EXPECT_EQ(by_listmount.base != 0, by_mountinfo.base != 0);
    for (const auto& m : by_listmount.mounts) EXPECT_EQ(m.mount_point.rfind(path + "/", 0) == 0 || m.mount_point == path, true) << m.mount_point;
    // The cost: listmount reads the session's own mounts (with a mount at the path) or
    // the holder's subtree (the other sessions too, for their parent alone), where
    // mountinfo reads every mount of the host.
    const auto all = read_mountinfo();
    if (by_listmount.base) EXPECT_EQ(by_listmount.mounts_read, mounts);
    else EXPECT_LE(by_listmount.mounts_read, mounts + 4);  // s2, s10 and their inner mounts
    EXPECT_EQ(by_mountinfo.mounts_read, all.size());
  }
};

// The tests that compare both listings themselves (or refuse listmount in a child) run
// once, under the listmount parameter: a Mountinfo instance would have nothing to add.
class ListingComparison : public Listings {};

TEST_P(ListingComparison, ListmountAndMountinfoListTheSameTreeOfOneSessionOnly) {
  build_session_tree(top_, /*mount_root=*/true);
  // root, merged, merged/proc, bound, bound-sub, stack (lower, upper), stack/hidden, odd, odd/deeper
  expect_same_listing(top_, 10);
}

TEST_P(ListingComparison, ListmountAndMountinfoListTheSameTreeBelowAnUnmountedPath) {
  build_session_tree(top_, /*mount_root=*/false);
  expect_same_listing(top_, 9);
}

TEST_P(Listings, EitherListingUnmountsTheSessionAndLeavesTheOthers) {
  build_session_tree(top_, /*mount_root=*/true);
  const MountTree others_before = list_mount_tree(dir_ + "/mount/s10");
  allow_listmount(GetParam());
  const UnmountResult r = unmount_tree(top_, /*allow_lazy=*/false);
  allow_listmount(true);
  EXPECT_TRUE(r.problems.empty()) << ::testing::PrintToString(r.problems);
  EXPECT_TRUE(listed(top_, true).mounts.empty());
  EXPECT_TRUE(listed(top_, false).mounts.empty());
  EXPECT_EQ(shape_of(list_mount_tree(dir_ + "/mount/s10"), false), shape_of(others_before, false));
  EXPECT_EQ(list_mount_tree(dir_ + "/mount/s2").mounts.size(), 2u);
}

// A seccomp filter that refuses listmount and statmount (EPERM, as container runtimes
// do for syscalls they do not know; or ENOSYS) makes the listing fall back to mountinfo,
// with mountinfo's ids throughout. In a child: the filter cannot be removed.
TEST_P(ListingComparison, ARefusedListmountFallsBackToMountinfo) {
  build_session_tree(top_, /*mount_root=*/true);
  const std::vector<std::string> expected = shape_of(listed(top_, false), false);
  for (int refusal : {EPERM, ENOSYS}) {
    sys::Child child = sys::Child::fork_function([&]() -> int {
      struct sock_filter filter[] = {
          BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
          BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 457, 2, 0),  // statmount
          BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 458, 1, 0),  // listmount
          BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
          BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | static_cast<unsigned>(refusal)),
      };
      struct sock_fprog prog = {static_cast<unsigned short>(sizeof filter / sizeof filter[0]), filter};
      if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) return 2;
      try {
        const MountTree t = list_mount_tree(top_);
        if (t.ids != MountIds::kReused || mount_listing_ids() != MountIds::kReused) return 3;
        if (shape_of(t, false) != expected) return 4;
        if (!unmount_tree(top_, false).problems.empty() || !list_mount_tree(top_).mounts.empty()) return 5;
      } catch (...) {
        return 6;
      }
      return 0;
    });
    const sys::ExitStatus status = child.wait();
    EXPECT_TRUE(status.success()) << "refused with " << std::strerror(refusal) << ": " << status.describe();
    if (refusal == EPERM) build_session_tree(top_, true);  // the child unmounted it
  }
}

std::string listing_name(const ::testing::TestParamInfo<bool>& p) { return p.param ? "Listmount" : "Mountinfo"; }
INSTANTIATE_TEST_SUITE_P(, Teardown, ::testing::Bool(), listing_name);
INSTANTIATE_TEST_SUITE_P(, TeardownLoop, ::testing::Bool(), listing_name);
INSTANTIATE_TEST_SUITE_P(, Listings, ::testing::Bool(), listing_name);
INSTANTIATE_TEST_SUITE_P(, ListingComparison, ::testing::Values(true), listing_name);

}  // namespace
}  // namespace schroot::sys

// --- the race through the real binary ---------------------------------------------------

namespace {

using schroot::test::run;
using schroot::test::TestRoot;
using schroot::test::trim;

// A schroot run that pauses at a fault point: started with SCHROOT_PAUSE_AT and a
// socket as SCHROOT_PAUSE_FD=3; wait_paused() reads its "paused NAME" line, finish()
// lets it go on (closing our end: later pauses pass) and reaps it.
class PausedRun {
 public:
  PausedRun(const std::vector<std::string>& args, const std::string& point) {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return;
    char tmpl[] = "/tmp/schroot-paused-XXXXXX";
    out_fd_ = ::mkostemp(tmpl, O_CLOEXEC);
    ::unlink(tmpl);
    schroot::sys::Command cmd = schroot::test::program_command(
        SCHROOT_UNDER_TEST, args, {"SCHROOT_PAUSE_AT=" + point, "SCHROOT_PAUSE_FD=3"});
    cmd.in = schroot::sys::Stream::null();
    cmd.out = schroot::sys::Stream::fd(out_fd_);
    cmd.err = schroot::sys::Stream::to_stdout();
    cmd.pass_fds = {{sv[1], 3}};
    child_ = schroot::sys::Child::spawn(cmd);
    ::close(sv[1]);
    sock_ = sv[0];
  }
  ~PausedRun() {
    finish();
    if (out_fd_ >= 0) ::close(out_fd_);
  }
  // The line it sent, "" when it ended (or 30 s passed) without pausing.
  std::string wait_paused() {
    std::string line;
    struct pollfd p = {sock_, POLLIN, 0};
    char c;
    while (::poll(&p, 1, 30000) == 1 && ::read(sock_, &c, 1) == 1 && c != '\n') line += c;
    return line;
  }
  int finish() {
    if (sock_ >= 0) ::close(sock_);
    sock_ = -1;
    if (child_.pid() > 0 && status_ < 0) {
      const schroot::sys::ExitStatus s = child_.wait();
      status_ = s.exited ? s.code : 128 + s.signal;
    }
    return status_;
  }
  std::string output() const {
    std::string out;
    char buf[4096];
    ssize_t n;
    for (off_t off = 0; (n = ::pread(out_fd_, buf, sizeof buf, off)) > 0; off += n) out.append(buf, n);
    return out;
  }

 private:
  schroot::sys::Child child_;
  int sock_ = -1;
  int out_fd_ = -1;
  int status_ = -1;
};

class TeardownRace : public ::testing::Test {
 protected:
  void SetUp() override {
    tree_ = root_.make_tree("bb");
    schroot::sys::mkdir_p(tree_ + "/build", 0755);
    src_ = root_.root() + "/srv/src";
    host_ = root_.root() + "/host";
    schroot::sys::mkdir_p(src_, 0755);
    schroot::sys::mkdir_p(host_ + "/inner", 0755);
    // The host's own mount, outside every session.
    ASSERT_EQ(::mount("host-side", (host_ + "/inner").c_str(), "tmpfs", 0, "mode=0755"), 0);
    root_.write_profile("race", "proc /proc proc defaults 0 0\n" + src_ + " /build/inner none rw,bind 0 0\n", "",
                        "");
    root_.write_config("[bb]\ntype=directory\ndirectory=" + tree_ + "\nprofile=race\n");
  }
  std::vector<std::string> session_mounts() const {
    std::vector<std::string> left;
    for (const auto& m : root_.mounts_below_root())
      if (m != host_ + "/inner") left.push_back(m);
    return left;
  }
  bool host_mount_intact() const {
    auto all = root_.mounts_below_root();
    return std::find(all.begin(), all.end(), host_ + "/inner") != all.end();
  }
  TestRoot root_;
  std::string tree_, src_, host_;
};

// Finding 7 end to end: root in the -b session swaps the directory above one of the
// session's mounts for a link to a host directory with a mount of its own, between
// -e's listing and its unmounts. The host's mount survives; the session ends cleanly.
TEST_F(TeardownRace, EndNeverUnmountsAHostMountThroughALinkPlantedInTheChroot) {
  auto b = root_.schroot({"-c", "bb", "-b", "-n", "s1"});
  ASSERT_EQ(b.status, 0) << b.err;
  const std::string location = root_.run_dir() + "/mount/s1";
  ASSERT_TRUE(schroot::test::path_exists(location + "/build/inner"));

  PausedRun end({"-c", "s1", "-e"}, "end:unmount-listed");
  ASSERT_EQ(end.wait_paused(), "paused end:unmount-listed") << end.output();
  ASSERT_EQ(::rename((location + "/build").c_str(), (location + "/build2").c_str()), 0) << std::strerror(errno);
  ASSERT_EQ(::symlink(host_.c_str(), (location + "/build").c_str()), 0);
  EXPECT_EQ(end.finish(), 0) << end.output();

  EXPECT_TRUE(host_mount_intact()) << "-e unmounted the host's " << host_ << "/inner";
  EXPECT_TRUE(session_mounts().empty()) << ::testing::PrintToString(session_mounts());
  EXPECT_TRUE(root_.records().empty());
}

// Killed right after a listing: the next end finds the same mounts again by id.
TEST_F(TeardownRace, EndKilledAfterTheListingLeavesAnEndableSession) {
  ASSERT_TRUE(succeeded(root_.schroot({"-c", "bb", "-b", "-n", "s1"})));
  auto killed = root_.schroot({"-c", "s1", "-e"}, {"SCHROOT_FAIL_AT=end:unmount-listed"});
  EXPECT_EQ(killed.status, 128 + 9);
  auto e = root_.schroot({"-c", "s1", "-e"});
  EXPECT_EQ(e.status, 0) << e.err;
  EXPECT_TRUE(session_mounts().empty()) << ::testing::PrintToString(session_mounts());
  EXPECT_TRUE(root_.records().empty());
  EXPECT_TRUE(host_mount_intact());
}

// A loopback session whose image filesystem somebody outside still uses (an open file
// under the mount location): -e must not detach it lazily and let the record and claim
// go while the superblock and the loop device live on (a second read-write mount of
// the image could come in). It fails and marks the session broken; once the file is
// closed, -e ends it and the device is gone.
TEST(TeardownLoopSession, BusyImageMakesTheEndFailUntilItIsReallyReleased) {
  TestRoot root;
  const std::string tree = root.make_tree("bb");
  const std::string image = root.root() + "/srv/bb.img";
  ASSERT_EQ(run("mke2fs -q -F -t ext4 -d " + tree + " " + image + " 16M >/dev/null"), 0);
  struct stat st;
  ASSERT_EQ(::stat(image.c_str(), &st), 0);
  root.write_config("[img]\ntype=loopback\nfile=" + image + "\nprofile=minimal\n");
  ASSERT_TRUE(succeeded(root.schroot({"-c", "img", "-b", "-n", "s1"})));
  const std::string location = root.run_dir() + "/mount/s1";
  schroot::sys::UniqueFd held(::open((location + "/etc/held").c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644));
  ASSERT_TRUE(held) << std::strerror(errno);

  auto busy = root.schroot({"-c", "s1", "-e"});
  EXPECT_NE(busy.status, 0);
  EXPECT_NE(busy.err.find("marked broken"), std::string::npos) << busy.err;
  EXPECT_EQ(busy.err.find("was busy; detached lazily"), std::string::npos) << busy.err;
  EXPECT_EQ(root.records(), std::vector<std::string>{"s1"});
  EXPECT_EQ(schroot::test::loops_backed_by(st.st_dev, st.st_ino).size(), 1u);

  held.reset();
  auto end = root.schroot({"-c", "s1", "-e"});
  EXPECT_EQ(end.status, 0) << end.err;
  EXPECT_TRUE(root.records().empty());
  EXPECT_TRUE(schroot::test::loops_backed_by(st.st_dev, st.st_ino).empty());
  EXPECT_TRUE(root.mounts_below_root().empty()) << ::testing::PrintToString(root.mounts_below_root());
}

// A pause would let a user stop a setuid schroot at a point of their choosing (with a
// root-made half-session, or to widen a race): ignored under AT_SECURE, as kill points.
TEST(TeardownPause, IsIgnoredWhenSetuid) {
  TestRoot root;
  const std::string tree = root.make_tree("bb");
  root.write_config("[bb]\ntype=directory\ndirectory=" + tree + "\nprofile=minimal\nusers=nobody\n");
  schroot::test::SetuidCopy binary;
  struct passwd* pw = ::getpwnam("nobody");
  ASSERT_NE(pw, nullptr);
  const uid_t uid = pw->pw_uid;
  const gid_t gid = pw->pw_gid;
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  // Should it pause anyway, this answers (so the test ends) and records it.
  std::string paused;
  std::thread watcher([&] {
    struct pollfd p = {sv[0], POLLIN, 0};
    char buf[256];
    if (::poll(&p, 1, 60000) == 1) {
      ssize_t n = ::read(sv[0], buf, sizeof buf);
      if (n > 0) {
        paused.assign(buf, static_cast<size_t>(n));
        (void)!::send(sv[0], "c", 1, MSG_NOSIGNAL);
      }
    }
  });
  auto r = schroot::test::run_program(
      binary.path(), {"-c", "bb", "-d", "/", "--", "true"},
      {"SCHROOT_PAUSE_AT=begin:10mount", "SCHROOT_PAUSE_FD=3"}, "", [&] {
        if (::dup2(sv[1], 3) != 3 || ::setgroups(0, nullptr) != 0 || ::setgid(gid) != 0 || ::setuid(uid) != 0)
          ::_exit(99);
      });
  ::close(sv[1]);
  ::shutdown(sv[0], SHUT_RDWR);  // wakes the watcher
  watcher.join();
  ::close(sv[0]);
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(paused, "");
}

}  // namespace
