// overlay union: decorates another backend. The lower backend mounts the source
// tree read-only at union-underlay-directory/<id>; overlayfs on the mount location
// takes upper/ and work/ from union-overlay-directory/<id>, which outlives reboots
// so --recover-session can remount a session with its changes.
#pragma once

#include <memory>

#include "backends/backend.h"

namespace schroot::backends {

class OverlayBackend : public SourceBackend {
 public:
  explicit OverlayBackend(std::unique_ptr<SourceBackend> lower) : lower_(std::move(lower)) {}
  void plan_device(SessionContext& ctx, std::vector<UndoStep>& undo) const override;
  void plan_mount(const SessionContext& ctx, const std::string& target,
                  std::vector<UndoStep>& undo) const override;
  void attach_device(SessionContext& ctx) const override;
  void mount_tree(SessionContext& ctx, const std::string& target, bool read_only) const override;
  void session_keys(const SessionContext& ctx, std::map<std::string, std::string>& keys) const override;

  static std::string overlay_dir(const SessionContext& ctx);   // <overlay>/<id>
  static std::string underlay_dir(const SessionContext& ctx);  // <underlay>/<id>

 private:
  std::unique_ptr<SourceBackend> lower_;
};

}  // namespace schroot::backends
