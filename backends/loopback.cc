#include "backends/loopback.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>

#include "backends/mountable.h"
#include "src/error.h"
#include "src/sys/fs.h"
#include "src/sys/loop_device.h"

namespace schroot::backends {

// The image, opened once: the undo step's dev/ino and the loop device are of this very
// file, whatever its path names later. It must be a root-owned regular file nobody else
// can write (schroot 1.6's check at session start): otherwise any user could swap the
// chroot's contents. O_PATH first, so nothing but a regular file (not a FIFO, not a
// device a symlink names) is ever really opened; the same inode is then reopened through
// /proc/self/fd for reading (and writing).
sys::UniqueFd open_image_file(const std::string& chroot, const std::string& file, bool read_only) {
  const std::string shown = chroot + ": image file ‘" + file + "’";
  sys::UniqueFd path_fd(::open(file.c_str(), O_PATH | O_CLOEXEC));
  if (!path_fd) throw UserError(shown + ": " + std::strerror(errno));
  struct stat st;
  if (::fstat(path_fd.get(), &st) != 0) throw SystemError("stat", file, errno);
  if (!S_ISREG(st.st_mode)) throw UserError(shown + " is not a regular file");
  if (st.st_uid != 0) throw UserError(shown + " is not owned by root");
  if (st.st_mode & S_IWOTH) throw UserError(shown + " is writable by others");
  const std::string self = "/proc/self/fd/" + std::to_string(path_fd.get());
  sys::UniqueFd fd(::open(self.c_str(), (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NOCTTY));
  if (!fd && !read_only && (errno == EROFS || errno == EACCES))
    throw UserError(shown + " cannot be opened read-write: " + std::strerror(errno) +
                    " (a read-only image can be the read-only lower layer of a union: union-type=overlay)");
  if (!fd) throw SystemError("open", file, errno);
  return fd;
}

namespace {
// A union's lower layer is never written; a source: session writes the image.
bool attach_read_only(const SessionContext& ctx) { return ctx.def.is_union() && !ctx.source_session; }

sys::UniqueFd open_image(const ChrootDef& def, bool read_only) { return open_image_file(def.name, def.file, read_only); }

// What a loopback session holds between its stages. The image is opened once by
// plan_device, so that the undo step's dev/ino and the attached loop device are of this
// very file. The loop device is held open from attach until it is mounted: an autoclear
// device with no opener left would be detached by the kernel before the mount.
struct LoopbackState : BackendState {
  sys::UniqueFd image;
  std::optional<sys::LoopDevice> loop;
  void release() override {
    loop.reset();
    image.reset();
  }
};

LoopbackState& state_of(SessionContext& ctx) {
  if (!ctx.backend_state) ctx.backend_state = std::make_unique<LoopbackState>();
  return dynamic_cast<LoopbackState&>(*ctx.backend_state);
}

}  // namespace

// The label that tells this session's loop device from another session's of the same
// image: lo_file_name keeps 63 bytes, and ids may be longer (up to 200), so a longer id
// keeps its head and gets a hash of the whole id, instead of being cut to a prefix
// two sessions could share.
std::string loop_label(const std::string& session_id) {
  constexpr size_t kMax = 63;
  if (session_id.size() <= kMax) return session_id;
  uint64_t h = 14695981039346656037ull;  // FNV-1a
  for (unsigned char c : session_id) h = (h ^ c) * 1099511628211ull;
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  return session_id.substr(0, kMax - 17) + "~" + hex;
}

namespace {

class LoopbackBackend : public SourceBackend {
 public:
  void plan_device(SessionContext& ctx, std::vector<UndoStep>& undo) const override {
    LoopbackState& state = state_of(ctx);
    state.image = open_image(ctx.def, attach_read_only(ctx));
    struct stat st;
    if (::fstat(state.image.get(), &st) != 0) throw SystemError("stat", ctx.def.file, errno);
    undo.push_back(UndoStep::detach_loop(ctx.def.file, static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino),
                                         loop_label(ctx.id), "00device"));
  }

  void plan_mount(const SessionContext&, const std::string& target,
                  std::vector<UndoStep>& undo) const override {
    undo.push_back(UndoStep::unmount_tree(target, "10mount"));
  }

  void attach_device(SessionContext& ctx) const override {
    LoopbackState& state = state_of(ctx);
    // A recovery attaches again without planning.
    if (!state.image) state.image = open_image(ctx.def, attach_read_only(ctx));
    sys::LoopDevice::Options opts;
    opts.read_only = attach_read_only(ctx);
    opts.label = loop_label(ctx.id);
    state.loop.emplace(sys::LoopDevice::attach_fd(state.image.get(), ctx.def.file, opts));
    ctx.mount_device = state.loop->path();
  }

  void mount_tree(SessionContext& ctx, const std::string& target, bool read_only) const override {
    try {
      mount_image(ctx, target, read_only);
    } catch (...) {
      // Detach now: the rollback's detach waits for the device to be released, which our
      // open fd of it would prevent.
      state_of(ctx).loop.reset();
      throw;
    }
  }

  void session_keys(const SessionContext& ctx, std::map<std::string, std::string>& keys) const override {
    keys["mount-device"] = ctx.def.file;
  }

 private:
  void mount_image(SessionContext& ctx, const std::string& target, bool read_only) const {
    if (ctx.mount_device.empty()) throw UserError(ctx.def.name + ": no loop device attached");
    LoopbackState& state = state_of(ctx);
    mount_device(ctx, ctx.mount_device, state.image ? state.image.get() : -1, target, read_only,
                 "image ‘" + ctx.def.file + "’");
    // Mounted: autoclear now detaches it at unmount; until then the record's undo owns it.
    if (state.loop) state.loop->release();
  }
};

}  // namespace

std::unique_ptr<SourceBackend> make_loopback_backend() { return std::make_unique<LoopbackBackend>(); }

}  // namespace schroot::backends
