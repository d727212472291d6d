#include "backends/overlay.h"

#include <sys/mount.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "src/error.h"
#include "src/sys/fs.h"
#include "src/sys/mount.h"

namespace schroot::backends {

namespace {
std::string base_or(const std::string& configured, const std::string& fallback) {
  return configured.empty() ? fallback : configured;
}

// mkdir that treats an existing directory as fine only when recovering.
void make_dir(const std::string& path, bool may_exist) {
  if (::mkdir(path.c_str(), 0755) == 0) return;
  if (errno == EEXIST && may_exist) return;
  if (errno == EEXIST)
    throw UserError("union directory ‘" + path + "’ already exists: a session with this id is still "
                    "present or was not cleaned up (try --recover-session or --end-session)");
  throw SystemError("mkdir", path, errno);
}

// Overlayfs option values may not contain ',' (separator) and ':' (lower layer list).
void check_option_path(const std::string& path) {
  if (path.find_first_of(",:\\") != std::string::npos)
    throw UserError("overlay: path ‘" + path + "’ contains ',', ':' or '\\', which overlayfs options cannot carry");
}
// What to do about a failed overlay mount, from the kernel's words.
std::string overlay_hint(const SystemError& e, const std::string& over, const std::string& user_options) {
  const std::string what = e.what();
  if (e.code().value() == ENODEV)
    return "the kernel has no overlay filesystem: load the 'overlay' module (modprobe overlay)";
  if (what.find("Unknown parameter") != std::string::npos || what.find("bad option") != std::string::npos)
    return "check union-mount-options in chroot.conf (" + user_options + ")";
  if (what.find("upper") != std::string::npos || what.find("work") != std::string::npos ||
      what.find("xattr") != std::string::npos || what.find("d_type") != std::string::npos)
    return "union-overlay-directory (" + over +
           ") must be on a filesystem that can hold overlay upper dirs: not overlayfs itself, and with d_type "
           "and trusted xattrs (ext4, xfs, btrfs, tmpfs)";
  return "see chroot.conf(5), union-type=overlay";
}

// <overlay>/<id>
std::string overlay_dir(const SessionContext& ctx) {
  return base_or(ctx.def.union_overlay_directory, ctx.paths.overlay_dir) + "/" + ctx.id;
}

// <underlay>/<id>
std::string underlay_dir(const SessionContext& ctx) {
  return base_or(ctx.def.union_underlay_directory, ctx.paths.underlay_dir) + "/" + ctx.id;
}

// An automatic session's upper and work dirs go on a tmpfs of their own when the
// operator bounded one (union-overlay-tmpfs-size): its data never outlives the
// session, so it need not touch the state file system. A -b session keeps its
// changes on disk: they must survive a reboot (--recover-session).
bool upper_in_memory(const SessionContext& ctx) {
  return ctx.throwaway && !ctx.def.union_overlay_tmpfs_size.empty();
}

// <overlay>/<id> with upper/ and work/ in it, on disk.
void make_upper_on_disk(const SessionContext& ctx, const std::string& over) {
  sys::mkdir_p(base_or(ctx.def.union_overlay_directory, ctx.paths.overlay_dir), 0755);
  // The overlay dir holds the session's changes: after a reboot it must exist.
  if (ctx.recovering) {
    struct stat st;
    if (::stat(over.c_str(), &st) != 0)
      throw UserError("missing overlay directory ‘" + over + "’ for session " + ctx.id + ": can't recover");
  }
  make_dir(over, /*may_exist=*/ctx.recovering);
  make_dir(over + "/upper", ctx.recovering);
  make_dir(over + "/work", ctx.recovering);
}

// Overlay options: the lower layer, upper/ and work/ in `upper_base`, then `rest` (the
// user's union-mount-options and ours).
std::string overlay_options(const std::string& under, const std::string& upper_base, const std::string& rest) {
  return "lowerdir=" + under + ",upperdir=" + upper_base + "/upper,workdir=" + upper_base + "/work" + rest;
}

// The overlay of `under` with upper/ and work/ in the detached tmpfs `fs`, as a
// detached mount. Linux 6.15 takes layers from a detached mount, named through our
// fd on it. Before, a layer must be a mount of our namespace (EINVAL): the tmpfs is
// attached at `target` only while the overlay takes its layers, then unmounted again
// (not lazily: nothing else uses that mount; the overlay holds clones of its own).
sys::UniqueFd overlay_on_tmpfs(const std::string& name, const std::string& under, const std::string& rest,
                               sys::UniqueFd fs, int target_fd, const std::string& target) {
  try {
    return sys::create_mount("overlay", name, overlay_options(under, "/proc/self/fd/" + std::to_string(fs.get()), rest),
                             target);
  } catch (const SystemError& e) {
    if (e.code().value() != EINVAL) throw;
  }
  sys::attach_mount(fs.get(), target_fd);
  fs.reset();  // our fd on it would make its umount EBUSY
  sys::UniqueFd overlay;
  try {
    overlay = sys::create_mount("overlay", name, overlay_options(under, target, rest), target);
  } catch (...) {
    ::umount2(target.c_str(), UMOUNT_NOFOLLOW);
    throw;
  }
  if (::umount2(target.c_str(), UMOUNT_NOFOLLOW) != 0) throw SystemError("unmount the upper tmpfs from", target, errno);
  return overlay;
}

// The overlay with upper/ and work/ on a tmpfs bounded by union-overlay-tmpfs-size (a
// write past it fails with ENOSPC in the session). The overlay alone holds the tmpfs,
// which goes when the overlay is unmounted: nothing of it is on disk or named by a
// path, so nothing of it can outlive the session's namespace.
void mount_on_tmpfs(const SessionContext& ctx, const std::string& under, const std::string& rest, int target_fd,
                    const std::string& target) {
  sys::UniqueFd fs =
      sys::create_mount("tmpfs", "schroot-" + ctx.def.name, "mode=0755,size=" + ctx.def.union_overlay_tmpfs_size, target);
  for (const char* dir : {"upper", "work"})
    if (::mkdirat(fs.get(), dir, 0755) != 0) throw SystemError("mkdir in the upper tmpfs", dir, errno);
  sys::UniqueFd overlay = overlay_on_tmpfs(ctx.def.name, under, rest, std::move(fs), target_fd, target);
  sys::attach_mount(overlay.get(), target_fd);
}

class OverlayBackend : public SourceBackend {
 public:
  explicit OverlayBackend(std::unique_ptr<SourceBackend> lower) : lower_(std::move(lower)) {}

  void plan_device(SessionContext& ctx, std::vector<UndoStep>& undo) const override {
    lower_->plan_device(ctx, undo);
  }

  void plan_mount(const SessionContext& ctx, const std::string& target,
                  std::vector<UndoStep>& undo) const override {
    const std::string under = underlay_dir(ctx);
    undo.push_back(UndoStep::remove_dir(under, "10mount underlay"));
    lower_->plan_mount(ctx, under, undo);
    // Purging the upper dir comes after the overlay is unmounted (reverse order) and
    // remove_tree never crosses a mount, so a still-mounted bind can never be wiped.
    // An upper dir in memory goes with the overlay: nothing on disk to purge.
    if (!upper_in_memory(ctx)) undo.push_back(UndoStep::remove_tree(overlay_dir(ctx), "10mount overlay"));
    undo.push_back(UndoStep::unmount_tree(target, "10mount"));
  }

  void attach_device(SessionContext& ctx) const override { lower_->attach_device(ctx); }

  void mount_tree(SessionContext& ctx, const std::string& target, bool) const override {
    const std::string under = underlay_dir(ctx);
    const std::string over = overlay_dir(ctx);
    const bool in_memory = upper_in_memory(ctx);
    sys::mkdir_p(base_or(ctx.def.union_underlay_directory, ctx.paths.underlay_dir), 0755);
    make_dir(under, /*may_exist=*/true);
    if (!in_memory) make_upper_on_disk(ctx, over);
    lower_->mount_tree(ctx, under, /*read_only=*/true);

    check_option_path(under);
    check_option_path(over);
    std::string rest;
    if (!ctx.def.union_mount_options.empty()) rest += "," + ctx.def.union_mount_options;
    // An automatic session's upper dir is removed at its end and never recovered:
    // "volatile" spares the sync of all its writes at unmount.
    if (ctx.throwaway) rest += ",volatile";
    sys::UniqueFd target_fd = sys::open_path(target);
    try {
      if (in_memory)
        mount_on_tmpfs(ctx, under, rest, target_fd.get(), target);
      else
        sys::mount_filesystem("overlay", ctx.def.name, overlay_options(under, over, rest), target_fd.get());
    } catch (const SystemError& e) {
      throw UserError(ctx.def.name + ": cannot mount the overlay union on " + target + ": " + e.what() + "\nI: " +
                      overlay_hint(e, over, ctx.def.union_mount_options));
    }
    sys::UniqueFd mounted = sys::open_path(target);
    sys::make_private(mounted.get(), false);
  }

  void session_keys(const SessionContext& ctx, std::map<std::string, std::string>& keys) const override {
    lower_->session_keys(ctx, keys);
    keys["union-overlay-directory"] = overlay_dir(ctx);
    keys["union-underlay-directory"] = underlay_dir(ctx);
  }

 private:
  std::unique_ptr<SourceBackend> lower_;
};

}  // namespace

std::unique_ptr<SourceBackend> make_overlay_backend(std::unique_ptr<SourceBackend> lower) {
  return std::make_unique<OverlayBackend>(std::move(lower));
}

}  // namespace schroot::backends
