#include "backends/mountable.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <sstream>
#include <vector>

#include "src/error.h"
#include "src/sys/fs.h"
#include "src/sys/mount.h"

namespace schroot::backends {

namespace {

bool read_at(int fd, off_t off, void* buf, size_t n) {
  return ::pread(fd, buf, n, off) == static_cast<ssize_t>(n);
}

// The chroot's root: the filesystem's `location` directory, resolved inside it as if
// its root were / (a symlink `sub -> /` or `sub -> ../..` stays in the filesystem and
// can never reach the host). That directory itself becomes the mount at target, so no
// path inside the filesystem is ever named by a string again (DESIGN.md section 6).
sys::UniqueFd attach_location(const SessionContext& ctx, sys::UniqueFd fs_mount, int target_fd,
                              const std::string& target, const std::string& shown) {
  const std::string& location = ctx.def.location;
  if (location.find_first_not_of('/') == std::string::npos) {
    sys::attach_mount(fs_mount.get(), target_fd);
    return fs_mount;
  }
  sys::UniqueFd dir;
  try {
    dir = sys::resolve_in_root(fs_mount.get(), location, O_PATH | O_DIRECTORY);
  } catch (const SystemError& e) {
    throw UserError(ctx.def.name + ": location ‘" + location + "’ in " + shown + ": " +
                    std::strerror(e.code().value()));
  }
  return sys::attach_subtree(std::move(fs_mount), std::move(dir), target_fd, target);
}

}  // namespace

std::string detect_filesystem(int fd) {
  unsigned char b[8];
  if (read_at(fd, 1024 + 56, b, 2) && b[0] == 0x53 && b[1] == 0xEF) return "ext4";  // ext2/3/4
  if (read_at(fd, 0, b, 4) && std::memcmp(b, "XFSB", 4) == 0) return "xfs";
  if (read_at(fd, 0, b, 4) && std::memcmp(b, "hsqs", 4) == 0) return "squashfs";
  if (read_at(fd, 0x10040, b, 8) && std::memcmp(b, "_BHRfS_M", 8) == 0) return "btrfs";
  return "";
}

void parse_mount_options(const std::string& raw, std::string& fstype, std::string& options) {
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

void mount_device(const SessionContext& ctx, const std::string& device, int probe_fd, const std::string& target,
                  bool read_only, const std::string& shown) {
  std::string fstype = ctx.def.filesystem_type, options;
  parse_mount_options(ctx.def.mount_options, fstype, options);
  if (fstype.empty()) {
    sys::UniqueFd own;
    if (probe_fd < 0) {
      own = sys::UniqueFd(::open(device.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
      probe_fd = own.get();
    }
    if (probe_fd >= 0) fstype = detect_filesystem(probe_fd);
  }
  if (fstype.empty())
    throw UserError(ctx.def.name + ": cannot detect the filesystem of " + shown + "; set filesystem-type= in chroot.conf");
  if (read_only) options = options.empty() ? "ro" : options + ",ro";
  sys::UniqueFd target_fd = sys::open_path(target);
  sys::UniqueFd fs_mount;
  try {
    // Detached: nothing of the filesystem is visible before its location is resolved.
    fs_mount = sys::create_mount(fstype, device, options, target);
  } catch (const SystemError& e) {
    throw UserError(ctx.def.name + ": cannot mount " + shown + " (" + device + ", " + fstype + "): " + e.what());
  }
  sys::UniqueFd mounted = attach_location(ctx, std::move(fs_mount), target_fd.get(), target, shown);
  // Private: a daemon cloning our namespace cannot pin it, a shared / cannot spread it.
  sys::make_private(mounted.get(), false);
}

}  // namespace schroot::backends
