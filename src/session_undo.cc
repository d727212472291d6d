// The engine's undo of one recorded step that is not a hook (the transaction runs
// hooks): unmounting, detaching a loop device, removing directories, a snapshot, an
// image's use. Each is idempotent: "already gone" counts as done.
#include <config.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "backends/lvm_image.h"
#ifdef WITH_LVM_SNAPSHOT
#include "backends/lvm_snapshot.h"
#endif
#include "src/error.h"
#include "src/fault.h"
#include "src/legacy_session.h"
#include "src/log.h"
#include "src/progress_line.h"
#include "src/session_internal.h"
#include "src/session_transaction.h"
#include "src/sys/loop_device.h"
#include "src/sys/mount.h"

namespace schroot {

// Undoes one step that is not a hook. Keeping the data (a remount) leaves the
// directories and the union's upper dir in place.
void undo_mounts_and_files(const UndoStep& u, SessionRecord& r, UndoMode mode, const Paths& paths,
                           std::vector<std::string>& failures) {
  const bool keep_data = mode != UndoMode::kEnd;
  switch (u.op) {
    case UndoStep::Op::kUnmountTree:
    case UndoStep::Op::kUnmountBelow: {
      // kUnmountBelow leaves the root itself: a session's inner mounts only.
      // By mount id through checked handles: root in the session may rename
      // its directories meanwhile (a loop device's mount is never lazy).
      const bool allow_lazy = mode != UndoMode::kRemount;
      sys::UnmountResult res = sys::unmount_tree(u.path, allow_lazy, /*include_top=*/u.op == UndoStep::Op::kUnmountTree,
                                                 [] { fail_point("end:unmount-listed"); });
      if (res.lazy_used) {
        r.lazy_unmount_used = true;
        log_warning(r.id + ": " + u.path + " was busy; detached lazily");
      }
      for (const auto& p : res.problems) failures.push_back(u.step + ": still mounted: " + p);
      break;
    }
    case UndoStep::Op::kDetachLoop:
      // Throws unless the device is really unbound: the claim and the record
      // must not go while the image is still in use.
      sys::detach_loops_backed_by(static_cast<dev_t>(u.dev), static_cast<ino_t>(u.ino), u.name);
      break;
    case UndoStep::Op::kRemoveDir:
      if (keep_data) break;
      if (::rmdir(u.path.c_str()) != 0 && errno != ENOENT)
        failures.push_back(u.step + ": rmdir " + u.path + ": " + std::strerror(errno));
      break;
    case UndoStep::Op::kRemoveTree:
      if (keep_data) break;
      // An overlay's upper dir may hold gigabytes: a progress line on a terminal.
      remove_tree_showing_progress(u.path);
      break;
    case UndoStep::Op::kLvRemove:
      // A remount keeps the snapshot: it holds the session's data. Otherwise the tree
      // on it is gone already (its unmount comes later in the list, so it was replayed
      // first).
      if (keep_data) break;
#ifdef WITH_LVM_SNAPSHOT
      backends::remove_session_snapshot(u, r.id);
#else
      throw UserError("lvremove " + u.name + ": this schroot was built without lvm-snapshot support");
#endif
      break;
    case UndoStep::Op::kLvRemoveSnapshotOf:
      if (keep_data) break;  // as kLvRemove
      remove_legacy_snapshot(u, r.id);
      break;
    case UndoStep::Op::kReleaseImage:
      // A remount keeps the image attached: the remounted snapshot lives on it.
      if (keep_data) break;
      backends::release_image(paths, r.id, u);
      break;
    case UndoStep::Op::kHook:
      break;  // the transaction runs hooks
  }
}

}  // namespace schroot
