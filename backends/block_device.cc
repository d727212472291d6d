#include "backends/block_device.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "backends/mountable.h"
#include "src/error.h"

namespace schroot::backends {

void BlockDeviceBackend::check_block_device(const std::string& chroot, const std::string& device) {
  struct stat st;
  if (::stat(device.c_str(), &st) != 0)
    throw UserError(chroot + ": device ‘" + device + "’: " + std::strerror(errno));
  if (!S_ISBLK(st.st_mode)) throw UserError(chroot + ": device ‘" + device + "’ is not a block device");
}

void BlockDeviceBackend::plan_device(SessionContext&, std::vector<UndoStep>&) const {}

void BlockDeviceBackend::plan_mount(const SessionContext&, const std::string& target,
                                    std::vector<UndoStep>& undo) const {
  undo.push_back(UndoStep::unmount_tree(target, "10mount"));
}

void BlockDeviceBackend::attach_device(SessionContext& ctx) const {
  check_block_device(ctx.def.name, ctx.def.device);
  ctx.mount_device = ctx.def.device;
}

void BlockDeviceBackend::mount_tree(SessionContext& ctx, const std::string& target, bool read_only) const {
  if (ctx.mount_device.empty()) ctx.mount_device = ctx.def.device;
  mount_device(ctx, ctx.mount_device, -1, target, read_only, "device ‘" + ctx.mount_device + "’");
}

void BlockDeviceBackend::session_keys(const SessionContext& ctx, std::map<std::string, std::string>& keys) const {
  keys["mount-device"] = ctx.def.device;
}

}  // namespace schroot::backends
