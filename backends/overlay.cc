#include "backends/overlay.h"

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
    undo.push_back(UndoStep::remove_tree(overlay_dir(ctx), "10mount overlay"));
    undo.push_back(UndoStep::unmount_tree(target, "10mount"));
  }

  void attach_device(SessionContext& ctx) const override { lower_->attach_device(ctx); }

  void mount_tree(SessionContext& ctx, const std::string& target, bool) const override {
    const std::string under = underlay_dir(ctx);
    const std::string over = overlay_dir(ctx);
    sys::mkdir_p(base_or(ctx.def.union_underlay_directory, ctx.paths.underlay_dir), 0755);
    sys::mkdir_p(base_or(ctx.def.union_overlay_directory, ctx.paths.overlay_dir), 0755);
    make_dir(under, /*may_exist=*/true);
    // The overlay dir holds the session's changes: after a reboot it must exist.
    if (ctx.recovering) {
      struct stat st;
      if (::stat(over.c_str(), &st) != 0)
        throw UserError("missing overlay directory ‘" + over + "’ for session " + ctx.id + ": can't recover");
    }
    make_dir(over, /*may_exist=*/ctx.recovering);
    make_dir(over + "/upper", ctx.recovering);
    make_dir(over + "/work", ctx.recovering);
    lower_->mount_tree(ctx, under, /*read_only=*/true);

    check_option_path(under);
    check_option_path(over);
    std::string options = "lowerdir=" + under + ",upperdir=" + over + "/upper,workdir=" + over + "/work";
    if (!ctx.def.union_mount_options.empty()) options += "," + ctx.def.union_mount_options;
    // An automatic session's upper dir is removed at its end and never recovered:
    // "volatile" spares the sync of all its writes at unmount.
    if (ctx.throwaway) options += ",volatile";
    sys::UniqueFd target_fd = sys::open_path(target);
    try {
      sys::mount_filesystem("overlay", ctx.def.name, options, target_fd.get());
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
