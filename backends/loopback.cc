#include "backends/loopback.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <sstream>

#include "src/error.h"
#include "src/sys/fs.h"
#include "src/sys/loop_device.h"
#include "src/sys/mount.h"

namespace schroot::backends {

namespace {
// A union's lower layer is never written; a source: session writes the image.
bool attach_read_only(const SessionContext& ctx) { return ctx.def.is_union() && !ctx.source_session; }

// The image, opened once: the undo step's dev/ino and the loop device are of this very
// file, whatever its path names later. It must be a root-owned regular file nobody else
// can write (schroot 1.6's check at session start): otherwise any user could swap the
// chroot's contents. O_PATH first, so nothing but a regular file (not a FIFO, not a
// device a symlink names) is ever really opened; the same inode is then reopened through
// /proc/self/fd for reading (and writing).
sys::UniqueFd open_image(const ChrootDef& def, bool read_only) {
  const std::string shown = def.name + ": image file ‘" + def.file + "’";
  sys::UniqueFd path_fd(::open(def.file.c_str(), O_PATH | O_CLOEXEC));
  if (!path_fd) throw UserError(shown + ": " + std::strerror(errno));
  struct stat st;
  if (::fstat(path_fd.get(), &st) != 0) throw SystemError("stat", def.file, errno);
  if (!S_ISREG(st.st_mode)) throw UserError(shown + " is not a regular file");
  if (st.st_uid != 0) throw UserError(shown + " is not owned by root");
  if (st.st_mode & S_IWOTH) throw UserError(shown + " is writable by others");
  const std::string self = "/proc/self/fd/" + std::to_string(path_fd.get());
  sys::UniqueFd fd(::open(self.c_str(), (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NOCTTY));
  if (!fd && !read_only && (errno == EROFS || errno == EACCES))
    throw UserError(shown + " cannot be opened read-write: " + std::strerror(errno) +
                    " (a read-only image can be the read-only lower layer of a union: union-type=overlay)");
  if (!fd) throw SystemError("open", def.file, errno);
  return fd;
}

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

bool read_at(int fd, off_t off, void* buf, size_t n) {
  return ::pread(fd, buf, n, off) == static_cast<ssize_t>(n);
}

// The chroot's root: the image's `location` directory, resolved inside the image as if
// the image's root were / (a symlink `sub -> /` or `sub -> ../..` stays in the image and
// can never reach the host). That directory itself becomes the mount at target, so no
// path inside the image is ever named by a string again (DESIGN.md section 6).
sys::UniqueFd attach_location(const SessionContext& ctx, sys::UniqueFd image_mount, int target_fd,
                              const std::string& target) {
  const std::string& location = ctx.def.location;
  if (location.find_first_not_of('/') == std::string::npos) {
    sys::attach_mount(image_mount.get(), target_fd);
    return image_mount;
  }
  sys::UniqueFd dir;
  try {
    dir = sys::resolve_in_root(image_mount.get(), location, O_PATH | O_DIRECTORY);
  } catch (const SystemError& e) {
    throw UserError(ctx.def.name + ": location ‘" + location + "’ in image ‘" + ctx.def.file +
                    "’: " + std::strerror(e.code().value()));
  }
  return sys::attach_subtree(std::move(image_mount), std::move(dir), target_fd, target);
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

void LoopbackBackend::plan_device(SessionContext& ctx, std::vector<UndoStep>& undo) const {
  LoopbackState& state = state_of(ctx);
  state.image = open_image(ctx.def, attach_read_only(ctx));
  struct stat st;
  if (::fstat(state.image.get(), &st) != 0) throw SystemError("stat", ctx.def.file, errno);
  undo.push_back(UndoStep::detach_loop(ctx.def.file, static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino),
                                       loop_label(ctx.id), "00device"));
}

void LoopbackBackend::plan_mount(const SessionContext&, const std::string& target,
                                 std::vector<UndoStep>& undo) const {
  undo.push_back(UndoStep::unmount_tree(target, "10mount"));
}

void LoopbackBackend::attach_device(SessionContext& ctx) const {
  LoopbackState& state = state_of(ctx);
  // A recovery attaches again without planning.
  if (!state.image) state.image = open_image(ctx.def, attach_read_only(ctx));
  sys::LoopDevice::Options opts;
  opts.read_only = attach_read_only(ctx);
  opts.label = loop_label(ctx.id);
  state.loop.emplace(sys::LoopDevice::attach_fd(state.image.get(), ctx.def.file, opts));
  ctx.mount_device = state.loop->path();
}

void LoopbackBackend::mount_tree(SessionContext& ctx, const std::string& target, bool read_only) const {
  try {
    mount_image(ctx, target, read_only);
  } catch (...) {
    // Detach now: the rollback's detach waits for the device to be released, which our
    // open fd of it would prevent.
    state_of(ctx).loop.reset();
    throw;
  }
}

void LoopbackBackend::mount_image(SessionContext& ctx, const std::string& target, bool read_only) const {
  if (ctx.mount_device.empty()) throw UserError(ctx.def.name + ": no loop device attached");
  std::string fstype = ctx.def.filesystem_type, options;
  parse_mount_options(ctx.def.mount_options, fstype, options);
  LoopbackState& state = state_of(ctx);
  if (fstype.empty() && state.image) fstype = detect_filesystem(state.image.get());
  if (fstype.empty())
    throw UserError(ctx.def.name + ": cannot detect the filesystem of ‘" + ctx.def.file +
                    "’; set filesystem-type= in chroot.conf");
  if (read_only) options = options.empty() ? "ro" : options + ",ro";
  sys::UniqueFd target_fd = sys::open_path(target);
  sys::UniqueFd image_mount;
  try {
    // Detached: nothing of the image is visible before its location is resolved.
    image_mount = sys::create_mount(fstype, ctx.mount_device, options, target);
  } catch (const SystemError& e) {
    throw UserError(ctx.def.name + ": cannot mount image ‘" + ctx.def.file + "’ (" + ctx.mount_device + ", " +
                    fstype + "): " + e.what());
  }
  sys::UniqueFd mounted = attach_location(ctx, std::move(image_mount), target_fd.get(), target);
  // Mounted: autoclear now detaches it at unmount; until then the record's undo owns it.
  if (state.loop) state.loop->release();
  // Private: a daemon cloning our namespace cannot pin it, a shared / cannot spread it.
  sys::make_private(mounted.get(), false);
}

void LoopbackBackend::session_keys(const SessionContext& ctx, std::map<std::string, std::string>& keys) const {
  keys["mount-device"] = ctx.def.file;
}

std::string LoopbackBackend::detect_filesystem(int fd) {
  unsigned char b[8];
  if (read_at(fd, 1024 + 56, b, 2) && b[0] == 0x53 && b[1] == 0xEF) return "ext4";  // ext2/3/4
  if (read_at(fd, 0, b, 4) && std::memcmp(b, "XFSB", 4) == 0) return "xfs";
  if (read_at(fd, 0, b, 4) && std::memcmp(b, "hsqs", 4) == 0) return "squashfs";
  if (read_at(fd, 0x10040, b, 8) && std::memcmp(b, "_BHRfS_M", 8) == 0) return "btrfs";
  return "";
}

void LoopbackBackend::parse_mount_options(const std::string& raw, std::string& fstype, std::string& options) {
  std::istringstream in(raw);
  std::vector<std::string> words;
  for (std::string w; in >> w;) words.push_back(w);
  for (size_t i = 0; i < words.size(); ++i) {
    if (words[i] == "-t" && i + 1 < words.size()) {
      fstype = words[++i];
    } else if (words[i] == "-o" && i + 1 < words.size()) {
      options += (options.empty() ? "" : ",") + words[++i];
    } else if (words[i][0] != '-') {
      options += (options.empty() ? "" : ",") + words[i];
    } else {
      throw UserError("mount-options: unsupported mount(8) option ‘" + words[i] + "’ (use -t TYPE and -o OPTIONS)");
    }
  }
}

}  // namespace schroot::backends
