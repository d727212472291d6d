// Mounting by fd with the new mount API (open_tree, fsopen/fsconfig/fsmount,
// move_mount, mount_setattr; kernel >= 5.12), so a target resolved inside a chroot
// cannot be swapped for a symlink between check and mount (DESIGN.md section 6);
// unmounting whole trees; reading /proc/self/mountinfo.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "src/sys/unique_fd.h"

namespace schroot::sys {

// Attaches a copy of the host's `source` (the whole tree below it when `recursive`)
// on the directory or file `target_fd` (an O_PATH fd is fine).
void bind_mount(const std::string& source, int target_fd, bool recursive = false);
// The same with the source given as an fd (O_PATH is fine).
void bind_mount_fd(int source_fd, int target_fd, bool recursive = false);

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

// One line of /proc/self/mountinfo, unescaped.
struct MountInfo {
  int id = 0;
  int parent = 0;
  std::string mount_point;
  std::string fstype;
  std::string source;
  std::string options;        // per-mount options ("rw,nosuid,relatime")
  std::string root;           // the mounted directory within its filesystem
  std::string optional;       // propagation fields ("shared:12 master:3"), may be empty
  std::string super_options;  // filesystem options
};
std::vector<MountInfo> read_mountinfo();

struct UnmountResult {
  bool lazy_used = false;
  std::vector<std::string> still_mounted;  // mount points left at or below the path
};
// Unmounts every mount at or below `path`, deepest first. Already-gone mounts count
// as done. A busy mount is detached lazily when `allow_lazy`, else reported in
// still_mounted. Never throws for a mount that cannot be unmounted: it is reported.
// `path` must be absolute and canonical (it is compared with mountinfo as is); "/" is refused.
// include_top=false leaves `path` itself mounted (a session's inner mounts only).
UnmountResult unmount_tree(const std::string& path, bool allow_lazy, bool include_top = true);
bool is_mounted_at_or_below(const std::string& path);

}  // namespace schroot::sys
