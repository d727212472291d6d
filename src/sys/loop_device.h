// Loop devices: attach a regular file to a free /dev/loopN, verify the binding, and
// find or detach devices by their backing file (st_dev, st_ino), never by number.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "src/sys/unique_fd.h"

namespace schroot::sys {

// An attached loop device; detaches it in the destructor unless released.
//
// Autoclear (the default) means the kernel detaches the device when its last opener
// closes it. This object keeps the device open until it is released or destroyed, so
// mount the device before that: a mounted autoclear device detaches on unmount.
class LoopDevice {
 public:
  struct Options {
    bool read_only = false;
    bool autoclear = true;
    bool direct_io = true;  // a wish: the kernel silently drops it where it cannot do it
    // false forces the pre-5.8 LOOP_SET_FD + LOOP_SET_STATUS64 path, which is otherwise
    // only taken when LOOP_CONFIGURE is missing; for tests.
    bool use_configure = true;
    // Stored as the device's lo_file_name (63 bytes at most), so that undo can tell this
    // device from another one of the same image; empty stores the backing file's path.
    std::string label;
  };

  // Binds `backing_file` (a regular file) to a free loop device and checks, through
  // LOOP_GET_STATUS64, that the device is bound to that file with the flags asked for.
  // Throws UserError for a file that is not regular or cannot be opened read-write when
  // a read-write device was asked for, SystemError for any other failure.
  static LoopDevice attach(const std::string& backing_file, const Options& opts);
  // The same for an image already open (O_RDWR, or O_RDONLY for a read-only device):
  // the device is bound to this very file, whatever its path names by now. `shown`
  // names it in messages and is the label when opts.label is empty.
  static LoopDevice attach_fd(int backing_fd, const std::string& shown, const Options& opts);

  LoopDevice(LoopDevice&& o) noexcept;
  LoopDevice& operator=(LoopDevice&& o) noexcept;
  LoopDevice(const LoopDevice&) = delete;
  LoopDevice& operator=(const LoopDevice&) = delete;
  ~LoopDevice();  // detaches unless released or detached; never throws

  const std::string& path() const { return path_; }  // /dev/loopN
  int number() const { return number_; }
  dev_t backing_dev() const { return backing_dev_; }
  ino_t backing_ino() const { return backing_ino_; }
  bool read_only() const { return read_only_; }

  // Keeps the device attached (its ownership moves to the session record) and closes
  // this object's descriptor of it; detach() and the destructor then do nothing.
  void release();

  // Detaches now (LOOP_CLR_FD, then close). A device somebody else holds open (a mount)
  // is not refused: the kernel marks it autoclear and detaches it at its last close.
  // "Already detached" (ENXIO) is success. A no-op after release() or detach().
  void detach();

 private:
  LoopDevice() = default;

  UniqueFd fd_;
  std::string path_;
  int number_ = -1;
  dev_t backing_dev_ = 0;
  ino_t backing_ino_ = 0;
  bool read_only_ = false;
};

// Detaches every loop device bound to the file (dev, ino) — and, when `label` is not
// empty, attached with that label — waits until each is really unbound, and returns
// how many it found. Used by undo and recovery: the file identifies the device, never
// its number, so this can never detach a device bound to another file. A device still
// in use (mounted, even lazily detached, or held open) after a short wait throws
// SystemError (EBUSY); it is marked autoclear and goes at its last close, and a later
// call counts it again until then. 0 when none.
int detach_loops_backed_by(dev_t dev, ino_t ino, const std::string& label = "");

// The loop devices (/dev/loopN) bound to the file (dev, ino) — with `label` when it is
// not empty — right now, in number order.
std::vector<std::string> loops_bound_to(dev_t dev, ino_t ino, const std::string& label = "");

}  // namespace schroot::sys
