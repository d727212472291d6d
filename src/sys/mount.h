// Mounting by fd with the new mount API (open_tree, fsopen/fsconfig/fsmount,
// move_mount, mount_setattr; kernel >= 5.12), so a target resolved inside a chroot
// cannot be swapped for a symlink between check and mount (DESIGN.md section 6);
// unmounting whole trees; reading /proc/self/mountinfo.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "src/sys/unique_fd.h"

namespace schroot::sys {

// Attaches a copy of the host's `source` (the whole tree below it when `recursive`)
// on the directory or file `target_fd` (an O_PATH fd is fine).
void bind_mount(const std::string& source, int target_fd, bool recursive = false);

// mount_setattr on the mount whose root `fd` is: sets and clears MOUNT_ATTR_* bits
// and, when `propagation` is not 0, sets it (MS_PRIVATE, MS_SLAVE, MS_SHARED).
void set_mount_attrs(int fd, std::uint64_t set, std::uint64_t clear, bool recursive, std::uint64_t propagation = 0);
// No propagation to or from peers: another namespace cannot pin or receive it.
void make_private(int fd, bool recursive);
void make_readonly(int fd, bool recursive = false);

// Mounts a new `fstype` filesystem from `source` on `target_fd`. `options` is a
// mount(8)-style comma list: ro/rw, [no]suid, [no]dev, [no]exec, relatime, noatime,
// strictatime, [no]diratime, nosymfollow become mount attributes; "defaults" and
// userspace-only options (auto, nofail, x-*, ...) are ignored; everything else goes to
// the filesystem ("key=value" or "flag"). Errors carry the kernel's fs-context log.
void mount_filesystem(const std::string& fstype, const std::string& source, const std::string& options,
                      int target_fd);

// mount_filesystem without the attach: the new filesystem as a detached mount fd, to
// look into (resolve_in_root), clone from or attach; closing it unattached unmounts it.
// `shown_target` names the intended mount point in error messages.
UniqueFd create_mount(const std::string& fstype, const std::string& source, const std::string& options,
                      const std::string& shown_target);
// Attaches the detached mount `mount_fd` (create_mount, open_tree) on `target_fd`.
void attach_mount(int mount_fd, int target_fd);
// Attaches the directory `dir_fd`, which lies in the detached mount `mount_fd`, on
// `target_fd` (the directory at `target`) as a mount of its own, and returns that mount's
// fd: a bind of a subtree that never names a path inside the mount. Kernels before 6.15
// clone only from attached mounts; there (or with detached_clone=false, for tests) the
// whole mount is attached at `target` first and unmounted again once the clone is made.
UniqueFd attach_subtree(UniqueFd mount_fd, UniqueFd dir_fd, int target_fd, const std::string& target,
                        bool detached_clone = true);

// One line of /proc/self/mountinfo, unescaped; or one mount as statmount(2) describes
// it (then options, optional and super_options are empty, and source is empty on kernels
// before 6.13).
struct MountInfo {
  std::uint64_t id = 0;  // of the kind the listing carries (MountIds)
  std::uint64_t parent = 0;
  std::string mount_point;
  std::string fstype;
  std::string source;
  std::string options;        // per-mount options ("rw,nosuid,relatime")
  std::string root;           // the mounted directory within its filesystem
  std::string optional;       // propagation fields ("shared:12 master:3"), may be empty
  std::string super_options;  // filesystem options
};
std::vector<MountInfo> read_mountinfo();

// The mount id of the mount `fd` (any fd, O_PATH too) lies in, as mountinfo numbers it.
int mount_id_of(int fd);

// The two kinds of mount id, never compared with each other: mountinfo's (also
// STATX_MNT_ID's), which the kernel reuses once a mount is gone, and listmount(2)'s
// 64-bit unique ids (STATX_MNT_ID_UNIQUE, Linux 6.8), never reused. A listing carries
// one kind.
enum class MountIds { kReused, kUnique };
// The id of `kind` of the mount `fd` lies in.
std::uint64_t mount_id_of(int fd, MountIds kind);
// The kind listings carry now: kUnique when listmount/statmount work here (Linux 6.8;
// not refused by a seccomp filter) and are allowed, kReused otherwise.
MountIds mount_listing_ids();
// For tests only (the program never calls it; nothing in the environment reaches it):
// false makes every listing read /proc/self/mountinfo, as on a kernel without listmount.
void allow_listmount(bool allowed);

// The mounts of the tree at `path`, found by mount id and parent id, never by path
// prefix: the mount attached at `path` (the lowest, whose parent holds `path`'s
// directory), the mounts stacked on it and all their descendants. When nothing is
// attached at `path`, the mounts attached below it to the mount holding it, with their
// descendants. Children come before their parents (so deepest first; of a stack, the
// upper mount first). `path` is trusted up to its last component (a session's mount
// location, never a path inside a chroot); below it, directories renamed meanwhile
// neither hide a mount nor bring in one from outside. With listmount, only that subtree
// is read (listmount and statmount for each mount; when nothing is attached at `path`,
// statmount of each mount attached to the holder), else one read of /proc/self/mountinfo
// (all the host's mounts). Nothing, without a read, when nothing is mounted at `path` and
// it is an empty directory (a session's mount location once unmounted) or no directory.
struct MountTree {
  MountIds ids = MountIds::kReused;  // the kind of every id below
  std::uint64_t holder = 0;  // the mount holding `path`'s directory
  std::uint64_t base = 0;    // the lowest mount attached at `path`, 0 when none is
  std::vector<MountInfo> mounts;
  std::size_t mounts_read = 0;  // how many mounts the kernel described to list these: the cost
};
MountTree list_mount_tree(const std::string& path);

struct UnmountResult {
  bool lazy_used = false;
  std::vector<std::string> still_mounted;  // mount points left, as mountinfo shows them
  std::vector<std::string> problems;       // why, one each: "mount 57 at /x/proc: busy"
};
// Unmounts the tree list_mount_tree(path) finds, children first, each through a
// handle checked against its mount id: its mount point is reached from `path`'s
// directory without following any link and must lead to that very mount; umount2
// then names it by that checked directory fd, never by a path the tree controls. A
// mount that no longer matches is looked up again (bounded), then reported. Already-gone
// mounts count as done. A busy mount is detached lazily when `allow_lazy`, except one
// of a loop or device-mapper device: its superblock (and the device, with the image or
// the LVM snapshot) would outlive the session. Never throws for a mount that cannot be unmounted: it is reported. "/" is
// refused. include_top=false leaves the mount attached at `path` (a session's inner
// mounts only). `after_listing` runs after each read of the tree (a fault point).
UnmountResult unmount_tree(const std::string& path, bool allow_lazy, bool include_top = true,
                           const std::function<void()>& after_listing = {});
bool is_mounted_at_or_below(const std::string& path);

}  // namespace schroot::sys
