// An lvm-snapshot chroot whose volume group lives on a loop-file image (the cros_sdk
// layout: lvm-image-file=/srv/sdk.img → /dev/loopN → VG → the origin LV). The image
// is attached and its VG activated when the first session of any chroot on that VG
// needs it, and deactivated and detached when the last one ends.
//
// Who counts the users: the claims file "lvm-image:<VG>" (shared claims, one per
// session, src/claims.h). Who serializes attach, activate, deactivate and detach: the
// image lock (lock_dir/lvm-image:<VG>.lock, exclusive, held only around those steps;
// taken before manage.lock, never after it). A session plans its release step before
// it acquires (written ahead in its record), so a crash between the attach and the
// first use is undone by recovery like any other step: the claim goes, and the last
// claim's release deactivates and detaches. The undo replays it after the snapshot is
// removed and the tree unmounted. See schroot-locks(7).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "src/lock.h"
#include "src/sys/lvm.h"

namespace schroot::backends {

// The claim and lock names of an image-backed VG.
std::string image_claim_name(const std::string& vg);
std::string image_lock_path(const Paths& paths, const std::string& vg);
// The label of the image's loop device (one per image, shared by its sessions).
std::string image_loop_label(const std::string& vg);

// The LV device= names on an image-backed chroot, which must be /dev/VG/LV (the VG is
// not visible before the image is attached, so lvs cannot resolve another form).
sys::lvm::LvRef image_origin(const ChrootDef& def);

// Plans this session's use of the chroot's image (lvm-image-file): checks the image as
// a loopback image is checked (a root-owned regular file nobody else may write) and
// pushes its release step (VG, image, its dev/ino, and in `path` the origin's device).
// Nothing when the chroot has no image.
void plan_image_use(const SessionContext& ctx, const std::string& vg, std::vector<UndoStep>& undo);

// Makes the VG usable for this session: takes its claim, attaches the image to a loop
// device unless it is attached already, activates the VG. Nothing without an image.
void acquire_image(const SessionContext& ctx, const std::string& vg);

// Before an end replays the undo of session `session`: its snapshot can only be
// removed while the VG is visible, and after a reboot the image is detached. Attaches
// and activates it again for the session (the file must still be the one planned:
// `step`'s dev/ino). Throws UserError when it cannot.
void reattach_image(const Paths& paths, const std::string& session, const UndoStep& step);

// The undo step (kReleaseImage) of session `session`: drops its claim; when no live
// session (or tool) claims the image any more, deactivates the VG and detaches the loop
// device, waiting until it is really unbound.
void release_image(const Paths& paths, const std::string& session, const UndoStep& step);

// A tool that is no session (a named-snapshot action) holds the image of an
// image-backed chroot while it works, under a tool claim (src/claims.h: live while this
// process holds its lock), and releases it as a session's end does. Nothing for a
// chroot without an image.
class ImageHold {
 public:
  ImageHold(const Paths& paths, const ChrootDef& def);
  ~ImageHold();  // releases; a failure is a warning (a dead tool's claim blocks nobody)
  ImageHold(const ImageHold&) = delete;
  ImageHold& operator=(const ImageHold&) = delete;

 private:
  const Paths& paths_;
  std::string id_;
  std::optional<FileLock> lock_;
  std::optional<UndoStep> release_;
};

}  // namespace schroot::backends
