// The undo-step vocabulary, shared by the engine (which writes steps ahead in the
// session record and replays them) and the backends (which plan the steps of their
// own stages). Nothing else of the engine comes with it: a backend includes this,
// never record.h.
#pragma once

#include <cstdint>
#include <string>
#include <utility>

namespace schroot {

// One idempotent undo action. It names its object exactly, so replaying it when
// the step never happened (or was already undone) is harmless. Built with the named
// constructors below; `step` is the begin step it undoes ("10mount", "20fstab", a
// hook's name), for messages.
struct UndoStep {
  enum class Op {
    kUnmountTree,   // path: unmount everything at or below path (deepest first)
    kUnmountBelow,  // path: unmount everything strictly below path (inner mounts)
    kDetachLoop,    // file + dev/ino: detach the loop device bound to this backing file
    kRemoveDir,     // path: rmdir (must be empty; ENOENT is done)
    kRemoveTree,    // path: rm -rf without crossing mounts (overlay upper/work)
    kLvRemove,      // name VG/LV + tag: lvremove -f of that LV if it carries the tag
    kLvRemoveSnapshotOf,  // name VG/LV + origin: lvremove -f of the untagged snapshot schroot 1.6
                          // made, only while it is a snapshot of origin (an LV of the same VG)
    kReleaseImage,  // name VG + file + dev/ino (+ path: the origin LV's device): drop this
                    // session's use of an image-backed VG; the last user deactivates the
                    // VG and detaches the image's loop device
    kHook,          // name: run setup.d with setup-stop (the hooks' own undo)
  };
  Op op = Op::kRemoveDir;
  std::string path;
  std::string file;
  uint64_t dev = 0, ino = 0;
  std::string name;
  std::string tag;  // kLvRemove: the LV is removed only if it carries this tag
  std::string origin;  // kLvRemoveSnapshotOf: the LV is removed only if it is a snapshot of this LV
  std::string step;

  static UndoStep unmount_tree(std::string path, std::string step) {
    return with_path(Op::kUnmountTree, std::move(path), std::move(step));
  }
  static UndoStep unmount_below(std::string path, std::string step) {
    return with_path(Op::kUnmountBelow, std::move(path), std::move(step));
  }
  static UndoStep remove_dir(std::string path, std::string step) {
    return with_path(Op::kRemoveDir, std::move(path), std::move(step));
  }
  static UndoStep remove_tree(std::string path, std::string step) {
    return with_path(Op::kRemoveTree, std::move(path), std::move(step));
  }
  // The loop device bound to the backing file `file` (identified by dev/ino, whatever
  // its path names later) and labelled `label` (the session's loop label).
  static UndoStep detach_loop(std::string file, uint64_t dev, uint64_t ino, std::string label, std::string step) {
    UndoStep u;
    u.op = Op::kDetachLoop;
    u.file = std::move(file);
    u.dev = dev;
    u.ino = ino;
    u.name = std::move(label);
    u.step = std::move(step);
    return u;
  }
  // The logical volume `vg`/`lv`, removed only if it carries `tag` (a snapshot's own
  // session tag): an LV of that name made by anybody else is never removed.
  static UndoStep remove_lv(const std::string& vg, const std::string& lv, std::string tag, std::string step) {
    UndoStep u = with_name(Op::kLvRemove, vg + "/" + lv, std::move(step));
    u.tag = std::move(tag);
    return u;
  }
  // This session's use of the volume group `vg` on the image file `file` (dev/ino):
  // the last user deactivates the VG and detaches the image's loop device.
  static UndoStep release_image(const std::string& vg, std::string file, uint64_t dev, uint64_t ino, std::string step) {
    UndoStep u = with_name(Op::kReleaseImage, vg, std::move(step));
    u.file = std::move(file);
    u.dev = dev;
    u.ino = ino;
    return u;
  }
  // The snapshot `vg`/`lv` schroot 1.6 made for a session (it tags nothing): removed
  // only while it is a snapshot of `origin` that carries no schroot tag.
  static UndoStep remove_snapshot_of(const std::string& vg, const std::string& lv, std::string origin,
                                     std::string step) {
    UndoStep u = with_name(Op::kLvRemoveSnapshotOf, vg + "/" + lv, std::move(step));
    u.origin = std::move(origin);
    return u;
  }
  // The setup.d hook `name`, run with setup-stop; it undoes its own begin step.
  static UndoStep hook(const std::string& name) { return with_name(Op::kHook, name, name); }

 private:
  static UndoStep with_path(Op op, std::string path, std::string step) {
    UndoStep u;
    u.op = op;
    u.path = std::move(path);
    u.step = std::move(step);
    return u;
  }
  static UndoStep with_name(Op op, std::string name, std::string step) {
    UndoStep u;
    u.op = op;
    u.name = std::move(name);
    u.step = std::move(step);
    return u;
  }
};
const char* to_string(UndoStep::Op op);

}  // namespace schroot
