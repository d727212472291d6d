// block-device: the chroot is a filesystem on a block device (device=, a disk, a
// partition, an LV), mounted at the session's mount location (read-only as a union's
// lower layer). Nothing is attached: the undo only unmounts. A source: session of an
// lvm-snapshot chroot is one of these, on the origin.
#pragma once

#include <memory>
#include <string>

#include "backends/backend.h"

namespace schroot::backends {

std::unique_ptr<SourceBackend> make_block_device_backend();

// UserError naming the chroot unless `device` is a block device (schroot 1.6's check).
void check_block_device(const std::string& chroot, const std::string& device);

}  // namespace schroot::backends
