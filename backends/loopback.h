// loopback: the chroot is a filesystem image (file=), opened once when planning.
// 00device attaches that open file to a loop device (autoclear, read-only when it is a
// union's lower layer, verified by its dev/ino); 10mount mounts the device detached and
// attaches the image's location= directory, resolved inside the image, at the target.
// Undo unmounts, then detaches only loop devices bound to this image and labelled with
// this session.
#pragma once

#include "backends/backend.h"

namespace schroot::backends {

class LoopbackBackend : public SourceBackend {
 public:
  void plan_device(SessionContext& ctx, std::vector<UndoStep>& undo) const override;
  void plan_mount(const SessionContext& ctx, const std::string& target,
                  std::vector<UndoStep>& undo) const override;
  void attach_device(SessionContext& ctx) const override;
  void mount_tree(SessionContext& ctx, const std::string& target, bool read_only) const override;
  void session_keys(const SessionContext& ctx, std::map<std::string, std::string>& keys) const override;

 private:
  void mount_image(SessionContext& ctx, const std::string& target, bool read_only) const;
};

}  // namespace schroot::backends
