// directory: the chroot is an existing directory, bind-mounted (made private) at
// the session's mount location; read-only when it is the lower layer of a union.
#pragma once

#include "backends/backend.h"

namespace schroot::backends {

class DirectoryBackend : public SourceBackend {
 public:
  void plan_device(SessionContext& ctx, std::vector<UndoStep>& undo) const override;
  void plan_mount(const SessionContext& ctx, const std::string& target,
                  std::vector<UndoStep>& undo) const override;
  void attach_device(SessionContext& ctx) const override;
  void mount_tree(SessionContext& ctx, const std::string& target, bool read_only) const override;
};

}  // namespace schroot::backends
