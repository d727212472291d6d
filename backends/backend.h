// SourceBackend: how one chroot type makes its tree appear for a session.
// A backend first PLANS (fills the undo steps of its stages, before anything runs:
// the record is written ahead with them), then DOES (00device, 10mount). Undo is
// never the backend's code: the engine replays the planned steps generically.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "src/chroot_def.h"
#include "src/paths.h"
#include "src/record.h"
#include "src/sys/loop_device.h"

namespace schroot::backends {

// What the engine knows about the session being built; backends fill mount_device.
struct SessionContext {
  SessionContext(const ChrootDef& d, const Paths& p, std::string session_id, std::string location,
                 bool source = false, bool recover = false)
      : def(d), paths(p), id(std::move(session_id)), mount_location(std::move(location)),
        source_session(source), recovering(recover) {}
  const ChrootDef& def;
  const Paths& paths;
  std::string id;
  std::string mount_location;  // where the chroot's tree must appear (exists, empty)
  bool source_session = false; // source:NAME: the source itself, read-write, no union
  bool recovering = false;     // remounting an existing session after a reboot
  bool throwaway = false;      // an automatic session: its data never outlives this process
  std::string mount_device;    // set by the device stage (/dev/loopN), for hooks and --info
  // The loop device, held open from attach until it is mounted: an autoclear device
  // with no opener left would be detached by the kernel before the mount.
  std::optional<sys::LoopDevice> loop;
  // loopback: the image, opened once by plan_device (which sees a const context) so
  // that the undo step's dev/ino and the attached loop device are of this very file.
  mutable sys::UniqueFd image;

  // Closes what the context holds open. Before a rollback: its detach waits for the
  // device to be free, which our own open loop device would never be.
  void release_devices() {
    loop.reset();
    image.reset();
  }
};

class SourceBackend {
 public:
  virtual ~SourceBackend() = default;
  // Undo steps of 00device and 10mount, in doing order.
  virtual void plan_device(const SessionContext& ctx, std::vector<UndoStep>& undo) const = 0;
  virtual void plan_mount(const SessionContext& ctx, const std::string& target,
                          std::vector<UndoStep>& undo) const = 0;
  // 00device: attach a loop device, create a snapshot, ... (nothing for directory).
  virtual void attach_device(SessionContext& ctx) const = 0;
  // 10mount: make the tree appear at target (an existing empty directory).
  virtual void mount_tree(SessionContext& ctx, const std::string& target, bool read_only) const = 0;
  // Session keys this backend adds to the record (mount-device, union dirs, ...).
  virtual void session_keys(const SessionContext& ctx, std::map<std::string, std::string>& keys) const {
    (void)ctx;
    (void)keys;
  }
};

}  // namespace schroot::backends
