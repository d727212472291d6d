#include "backends/loopback.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <sstream>

#include "src/error.h"
#include "src/sys/fs.h"
#include "src/sys/loop_device.h"
#include "src/sys/mount.h"

namespace schroot::backends {

namespace {
// The image must be a root-owned regular file nobody else can write (schroot 1.6's
// check at session start): otherwise any user could swap the chroot's contents.
struct stat check_image(const ChrootDef& def) {
  struct stat st;
  if (::stat(def.file.c_str(), &st) != 0)
    throw UserError(def.name + ": image file ‘" + def.file + "’: " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) throw UserError(def.name + ": image file ‘" + def.file + "’ is not a regular file");
  if (st.st_uid != 0) throw UserError(def.name + ": image file ‘" + def.file + "’ is not owned by root");
  if (st.st_mode & S_IWOTH)
    throw UserError(def.name + ": image file ‘" + def.file + "’ is writable by others");
  return st;
}

bool read_at(int fd, off_t off, void* buf, size_t n) {
  return ::pread(fd, buf, n, off) == static_cast<ssize_t>(n);
}
}  // namespace

void LoopbackBackend::plan_device(const SessionContext& ctx, std::vector<UndoStep>& undo) const {
  struct stat st = check_image(ctx.def);
  UndoStep u{UndoStep::Op::kDetachLoop, "", ctx.def.file, static_cast<uint64_t>(st.st_dev),
             static_cast<uint64_t>(st.st_ino), ctx.id, "00device"};
  undo.push_back(u);
}

void LoopbackBackend::plan_mount(const SessionContext&, const std::string& target,
                                 std::vector<UndoStep>& undo) const {
  undo.push_back({UndoStep::Op::kUnmountTree, target, "", 0, 0, "", "10mount"});
}

void LoopbackBackend::attach_device(SessionContext& ctx) const {
  check_image(ctx.def);
  sys::LoopDevice::Options opts;
  // A union's lower layer is never written; a source: session writes the image.
  opts.read_only = ctx.def.is_union() && !ctx.source_session;
  opts.label = ctx.id;
  ctx.loop.emplace(sys::LoopDevice::attach(ctx.def.file, opts));
  ctx.mount_device = ctx.loop->path();
}

void LoopbackBackend::mount_tree(SessionContext& ctx, const std::string& target, bool read_only) const {
  if (ctx.mount_device.empty()) throw UserError(ctx.def.name + ": no loop device attached");
  std::string fstype = ctx.def.filesystem_type, options;
  parse_mount_options(ctx.def.mount_options, fstype, options);
  if (fstype.empty()) fstype = detect_filesystem(ctx.mount_device);
  if (fstype.empty())
    throw UserError(ctx.def.name + ": cannot detect the filesystem of ‘" + ctx.def.file +
                    "’; set filesystem-type= in chroot.conf");
  if (read_only) options = options.empty() ? "ro" : options + ",ro";
  sys::UniqueFd target_fd = sys::open_path(target);
  try {
    sys::mount_filesystem(fstype, ctx.mount_device, options, target_fd.get());
  } catch (const SystemError& e) {
    throw UserError(ctx.def.name + ": cannot mount image ‘" + ctx.def.file + "’ (" + ctx.mount_device + ", " +
                    fstype + "): " + e.what());
  }
  // Mounted: autoclear now detaches it at unmount; until then the record's undo owns it.
  if (ctx.loop) ctx.loop->release();
  sys::UniqueFd mounted = sys::open_path(target);
  sys::make_private(mounted.get(), false);
}

void LoopbackBackend::session_keys(const SessionContext& ctx, std::map<std::string, std::string>& keys) const {
  keys["mount-device"] = ctx.def.file;
}

std::string LoopbackBackend::detect_filesystem(const std::string& path) {
  sys::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return "";
  unsigned char b[8];
  if (read_at(fd.get(), 1024 + 56, b, 2) && b[0] == 0x53 && b[1] == 0xEF) return "ext4";  // ext2/3/4
  if (read_at(fd.get(), 0, b, 4) && std::memcmp(b, "XFSB", 4) == 0) return "xfs";
  if (read_at(fd.get(), 0, b, 4) && std::memcmp(b, "hsqs", 4) == 0) return "squashfs";
  if (read_at(fd.get(), 0x10040, b, 8) && std::memcmp(b, "_BHRfS_M", 8) == 0) return "btrfs";
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
