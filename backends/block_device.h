// block-device: the chroot is a filesystem on a block device (device=, a disk, a
// partition, an LV), mounted at the session's mount location (read-only as a union's
// lower layer). Nothing is attached: the undo only unmounts. A source: session of an
// lvm-snapshot chroot is one of these, on the origin.
#pragma once

#include <string>

#include "backends/backend.h"

namespace schroot::backends {

class BlockDeviceBackend : public SourceBackend {
 public:
  void plan_device(SessionContext& ctx, std::vector<UndoStep>& undo) const override;
  void plan_mount(const SessionContext& ctx, const std::string& target,
                  std::vector<UndoStep>& undo) const override;
  void attach_device(SessionContext& ctx) const override;
  void mount_tree(SessionContext& ctx, const std::string& target, bool read_only) const override;
  void session_keys(const SessionContext& ctx, std::map<std::string, std::string>& keys) const override;

  // UserError naming the chroot unless `device` is a block device (schroot 1.6's check).
  static void check_block_device(const std::string& chroot, const std::string& device);
};

}  // namespace schroot::backends
