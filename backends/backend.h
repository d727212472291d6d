// SourceBackend: how one chroot type makes its tree appear for a session.
// A backend first PLANS (fills the undo steps of its stages, before anything runs:
// the record is written ahead with them), then DOES (00device, 10mount). Undo is
// never the backend's code: the engine replays the planned steps generically.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "src/chroot_def.h"
#include "src/paths.h"
#include "src/undo_step.h"

namespace schroot::backends {

// What one backend holds for one session between its stages (loopback: the image and
// its loop device), of a type only that backend knows.
class BackendState {
 public:
  virtual ~BackendState() = default;
  // Closes what the state holds open.
  virtual void release() = 0;
};

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
  // The backend's own state for this session, created and used by the backend alone.
  std::unique_ptr<BackendState> backend_state;

  // Closes what the backend holds open. Before a rollback: its detach waits for the
  // device to be free, which our own open loop device would never be.
  void release_devices() {
    if (backend_state) backend_state->release();
  }
};

class SourceBackend {
 public:
  virtual ~SourceBackend() = default;
  // Undo steps of 00device and 10mount, in doing order. Planning the device may
  // open what its undo step must name exactly (loopback: the image), in the context.
  virtual void plan_device(SessionContext& ctx, std::vector<UndoStep>& undo) const = 0;
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
