#include "backends/lvm_image.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>

#include "backends/loopback.h"
#include "src/claims.h"
#include "src/error.h"
#include "src/fault.h"
#include "src/log.h"
#include "src/sys/loop_device.h"
#include "src/sys/lvm.h"

namespace schroot::backends {

namespace lvm = sys::lvm;

namespace {

// Attaching and activating take an lvm run or two; a release waits for the devices.
constexpr std::chrono::milliseconds kImageLockTimeout{60000};

FileLock lock_image(const Paths& paths, const std::string& vg) {
  return FileLock::acquire(image_lock_path(paths, vg), LockMode::kExclusive, kImageLockTimeout,
                           "the image of volume group " + vg);
}

// The image's users: shared claims on "lvm-image:VG" (a session left by a dead process
// still holds its snapshot on the VG, so it counts while its record exists).
void add_user(const Paths& paths, const std::string& vg, const std::string& session) {
  add_claim_user(paths, image_claim_name(vg), session);
}
bool drop_user(const Paths& paths, const std::string& vg, const std::string& session) {
  return drop_claim_user(paths, image_claim_name(vg), session);
}

// Binds the image to a loop device that stays bound once we close it (no autoclear:
// nothing holds the device open until the VG is activated), labelled for the image.
void attach_image(const std::string& shown, const std::string& vg, const std::string& file, int image_fd) {
  sys::LoopDevice::Options opts;
  opts.autoclear = false;
  // Buffered: direct I/O fails on some backing file systems the kernel accepts it for
  // (an image on overlayfs over tmpfs reads back EIO on 6.1), and a VG is long-lived.
  opts.direct_io = false;
  opts.label = image_loop_label(vg);
  sys::LoopDevice loop = sys::LoopDevice::attach_fd(image_fd, file, opts);
  log_info(shown + ": image " + file + " attached to " + loop.path() + " for volume group " + vg);
  loop.release();
}

}  // namespace

std::string image_claim_name(const std::string& vg) { return "lvm-image:" + vg; }

std::string image_lock_path(const Paths& paths, const std::string& vg) {
  return paths.lock_dir + "/" + image_claim_name(vg) + ".lock";
}

std::string image_loop_label(const std::string& vg) { return ("schroot-vg:" + vg).substr(0, 63); }

lvm::LvRef image_origin(const ChrootDef& def) {
  const std::optional<lvm::LvRef> ref = lvm::parse_device(def.device);
  if (!ref)
    throw UserError(def.name + ": device ‘" + def.device + "’: a chroot on an image (lvm-image-file) names its " +
                    "logical volume as /dev/VG/LV");
  return *ref;
}

namespace {

// The release step of a use of the chroot's image, named `step`: the image checked as
// a loopback image (root's regular file nobody else may write) and identified by its
// dev/ino, the VG, and in `path` the origin's device (its node tells whether the VG is
// active).
UndoStep planned_release(const ChrootDef& def, const std::string& vg, const std::string& step) {
  const sys::UniqueFd image = open_image_file(def.name, def.lvm_image_file, /*read_only=*/false);
  struct stat st;
  if (::fstat(image.get(), &st) != 0) throw SystemError("stat", def.lvm_image_file, errno);
  UndoStep release = UndoStep::release_image(vg, def.lvm_image_file, static_cast<uint64_t>(st.st_dev),
                                             static_cast<uint64_t>(st.st_ino), step);
  release.path = def.device;
  return release;
}

}  // namespace

void plan_image_use(const SessionContext& ctx, const std::string& vg, std::vector<UndoStep>& undo) {
  if (ctx.def.lvm_image_file.empty()) return;
  undo.push_back(planned_release(ctx.def, vg, "00device"));
}

namespace {

// What ensure_attached needs to know of the image and its VG.
struct ImageUse {
  std::string vg, file;
  uint64_t dev = 0, ino = 0;  // the planned image's identity; 0: the file found now
  std::string origin_device;  // /dev/VG/LV: its node exists while the VG is active
  std::string shown;          // the chroot or session, for messages
};

// The use a planned release step names: the very image it was planned with.
ImageUse use_of(const UndoStep& release, const std::string& shown) {
  return {release.name, release.file, release.dev, release.ino, release.path, shown};
}

bool is_block_device(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISBLK(st.st_mode);
}

// Under the image lock: claims the image for `session`, attaches it unless a loop
// device labelled for it is bound to it already, and activates the VG unless its
// origin's node is there (one lvm run saved per session once the image is in use).
void ensure_attached(const Paths& paths, const std::string& session, const ImageUse& use) {
  FileLock lock = lock_image(paths, use.vg);
  add_user(paths, use.vg, session);
  fail_point("begin:image-claimed");
  // Checked again now, and the planned file only: a file put in its place since is
  // not attached.
  const sys::UniqueFd image = open_image_file(use.shown, use.file, /*read_only=*/false);
  struct stat st;
  if (::fstat(image.get(), &st) != 0) throw SystemError("stat", use.file, errno);
  if (use.dev != 0 && (static_cast<uint64_t>(st.st_dev) != use.dev || static_cast<uint64_t>(st.st_ino) != use.ino))
    throw UserError(use.shown + ": image file ‘" + use.file + "’ is not the file the session began with");
  if (sys::loops_bound_to(st.st_dev, st.st_ino, image_loop_label(use.vg)).empty()) {
    attach_image(use.shown, use.vg, use.file, image.get());
    fail_point("begin:image-attached");
  }
  if (is_block_device(use.origin_device)) return;
  try {
    lvm::activate_vg(use.vg);
  } catch (const lvm::LvmError& e) {
    throw UserError(use.shown + ": volume group " + use.vg + " on image " + use.file + ": " + e.what());
  }
}

}  // namespace

void acquire_image(const SessionContext& ctx, const std::string& vg) {
  if (ctx.def.lvm_image_file.empty()) return;
  ensure_attached(ctx.paths, ctx.id, {vg, ctx.def.lvm_image_file, 0, 0, ctx.def.device, ctx.def.name});
}

void reattach_image(const Paths& paths, const std::string& session, const UndoStep& step) {
  ensure_attached(paths, session, use_of(step, session));
}

void release_image(const Paths& paths, const std::string& session, const UndoStep& step) {
  const std::string& vg = step.name;
  FileLock lock = lock_image(paths, vg);
  if (drop_user(paths, vg, session)) return;
  // The last user: nothing of ours is open on the VG any more (every session's tree
  // is unmounted and its snapshot removed before its release step runs).
  lvm::deactivate_vg(vg);
  fail_point("end:image-deactivated");
  const int detached = sys::detach_loops_backed_by(static_cast<dev_t>(step.dev), static_cast<ino_t>(step.ino),
                                                   image_loop_label(vg));
  if (detached > 0) log_info(session + ": image " + step.file + " of volume group " + vg + " released");
}

ImageHold::ImageHold(const Paths& paths, const ChrootDef& def) : paths_(paths) {
  if (def.lvm_image_file.empty()) return;
  const std::string vg = image_origin(def).vg;
  id_ = tool_claim_id("lvm-image." + def.name + "." + std::to_string(::getpid()));
  lock_ = try_lock_tool_claim(paths_, id_);
  if (!lock_) throw UserError(def.name + ": " + tool_claim_lock_path(paths_, id_) + " is locked by another process");
  release_ = planned_release(def, vg, "snapshot action");
  ensure_attached(paths_, id_, use_of(*release_, def.name));
}

ImageHold::~ImageHold() {
  if (!release_) return;
  try {
    release_image(paths_, id_, *release_);
    lock_->remove_file();
  } catch (const std::exception& e) {
    log_warning(release_->file + ": " + e.what());
  }
}

}  // namespace schroot::backends
