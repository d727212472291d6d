#include "backends/block_device.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "backends/lvm_image.h"
#include "backends/mountable.h"
#include "src/error.h"

namespace schroot::backends {

void check_block_device(const std::string& chroot, const std::string& device) {
  struct stat st;
  if (::stat(device.c_str(), &st) != 0)
    throw UserError(chroot + ": device ‘" + device + "’: " + std::strerror(errno));
  if (!S_ISBLK(st.st_mode)) throw UserError(chroot + ": device ‘" + device + "’ is not a block device");
}

namespace {

class BlockDeviceBackend : public SourceBackend {
 public:
  // The source: chroot of an image-backed lvm-snapshot chroot uses the image as its
  // snapshot sessions do (lvm_image.h).
  void plan_device(SessionContext& ctx, std::vector<UndoStep>& undo) const override {
    if (!ctx.def.lvm_image_file.empty()) plan_image_use(ctx, image_origin(ctx.def).vg, undo);
  }

  void plan_mount(const SessionContext&, const std::string& target,
                  std::vector<UndoStep>& undo) const override {
    undo.push_back(UndoStep::unmount_tree(target, "10mount"));
  }

  void attach_device(SessionContext& ctx) const override {
    if (!ctx.def.lvm_image_file.empty()) acquire_image(ctx, image_origin(ctx.def).vg);
    check_block_device(ctx.def.name, ctx.def.device);
    ctx.mount_device = ctx.def.device;
  }

  void mount_tree(SessionContext& ctx, const std::string& target, bool read_only) const override {
    if (ctx.mount_device.empty()) ctx.mount_device = ctx.def.device;
    mount_device(ctx, ctx.mount_device, -1, target, read_only, "device ‘" + ctx.mount_device + "’");
  }

  void session_keys(const SessionContext& ctx, std::map<std::string, std::string>& keys) const override {
    keys["mount-device"] = ctx.def.device;
  }
};

}  // namespace

std::unique_ptr<SourceBackend> make_block_device_backend() { return std::make_unique<BlockDeviceBackend>(); }

}  // namespace schroot::backends
