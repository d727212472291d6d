#include "src/sys/mount.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <sstream>

#include "src/error.h"
#include "src/sys/fs.h"
#include "src/sys/unique_fd.h"

namespace schroot::sys {

namespace {

constexpr unsigned kEmptyPaths = MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH;

void attach(int tree_fd, int target_fd, const std::string& what) {
  if (::move_mount(tree_fd, "", target_fd, "", kEmptyPaths) != 0) throw SystemError(what + " on", fd_path(target_fd), errno);
}

void bind_tree(int dirfd, const char* path, unsigned extra_flags, int target_fd, bool recursive,
               const std::string& shown_source) {
  const unsigned flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | extra_flags | (recursive ? AT_RECURSIVE : 0u);
  UniqueFd tree(::open_tree(dirfd, path, flags));
  if (!tree) throw SystemError("bind", shown_source, errno);
  // The tree fd is closed on return: an open mount fd would make a later umount EBUSY.
  attach(tree.get(), target_fd, "bind " + shown_source);
}

// The kernel's messages about a failed fs context ("e tmpfs: Unknown parameter 'x'"),
// joined; reading drains the log.
std::string fs_context_log(int fs_fd) {
  std::string out;
  char buf[1024];
  for (;;) {
    ssize_t n = ::read(fs_fd, buf, sizeof buf);
    if (n <= 0) break;  // ENODATA: the log is empty
    std::string line(buf, static_cast<std::size_t>(n));
    while (!line.empty() && line.back() == '\n') line.pop_back();
    if (line.size() > 2 && line[1] == ' ') line.erase(0, 2);  // the "e "/"w "/"i " level
    out += (out.empty() ? "" : "; ") + line;
  }
  return out;
}

bool starts_with_nocase(const std::string& s, const std::string& prefix) {
  if (s.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(s[i])) != std::tolower(static_cast<unsigned char>(prefix[i])))
      return false;
  return true;
}

// Some filesystems report mount errors only to the kernel log, not to the fs context
// (overlayfs: "workdir and upperdir must reside under the same mount"). This reads
// the records that appeared since construction and start with the filesystem's name;
// best effort: without /dev/kmsg, there is nothing.
class KernelLog {
 public:
  explicit KernelLog(std::string fstype) : fstype_(std::move(fstype)) {
    fd_.reset(::open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC));
    if (fd_ && ::lseek(fd_.get(), 0, SEEK_END) < 0) fd_.reset();
  }
  std::string new_messages() {
    std::string out;
    char buf[8192];
    for (int records = 0; fd_ && records < 1000; ++records) {
      ssize_t n = ::read(fd_.get(), buf, sizeof buf);
      if (n < 0 && errno == EPIPE) continue;  // records were overwritten; go on
      if (n <= 0) break;                      // EAGAIN: no more records
      std::string rec(buf, static_cast<std::size_t>(n));
      auto semi = rec.find(';');
      if (semi == std::string::npos) continue;
      std::string text = rec.substr(semi + 1, rec.find('\n', semi) - semi - 1);
      if (starts_with_nocase(text, fstype_)) out += (out.empty() ? "" : "; ") + text;
    }
    return out;
  }

 private:
  std::string fstype_;
  UniqueFd fd_;
};

struct MountContext {
  std::string fstype;
  int fs_fd;
  std::string target;  // for messages
  KernelLog* kernel_log;
};

// "mount overlay on /x (create sid: overlayfs: workdir and upperdir must reside
// under the same mount): Invalid argument".
[[noreturn]] void fail_mount(const MountContext& c, const std::string& step, int err) {
  std::string log = c.fs_fd >= 0 ? fs_context_log(c.fs_fd) : "";
  if (log.empty() && c.kernel_log) log = c.kernel_log->new_messages();
  throw SystemError("mount " + c.fstype + " on",
                    c.target + " (" + step + (log.empty() ? "" : ": " + log) + ")", err);
}

// Options mount(8) handles itself and never passes to the kernel.
bool userspace_only(const std::string& o) {
  static const char* const kNames[] = {"defaults", "auto", "noauto", "user", "nouser", "users",
                                       "owner",    "group", "nofail", "_netdev", "loop"};
  for (const char* n : kNames)
    if (o == n) return true;
  return o.rfind("x-", 0) == 0 || o.rfind("comment=", 0) == 0;
}

// Applies `o` to `attrs` if it is a per-mount attribute; false if it is not one.
bool apply_attr_option(const std::string& o, std::uint64_t& attrs) {
  struct Bit { const char* name; std::uint64_t set; std::uint64_t clear; };
  static const Bit kBits[] = {
      {"ro", MOUNT_ATTR_RDONLY, 0},          {"rw", 0, MOUNT_ATTR_RDONLY},
      {"nosuid", MOUNT_ATTR_NOSUID, 0},      {"suid", 0, MOUNT_ATTR_NOSUID},
      {"nodev", MOUNT_ATTR_NODEV, 0},        {"dev", 0, MOUNT_ATTR_NODEV},
      {"noexec", MOUNT_ATTR_NOEXEC, 0},      {"exec", 0, MOUNT_ATTR_NOEXEC},
      {"nodiratime", MOUNT_ATTR_NODIRATIME, 0}, {"diratime", 0, MOUNT_ATTR_NODIRATIME},
      {"nosymfollow", MOUNT_ATTR_NOSYMFOLLOW, 0}, {"symfollow", 0, MOUNT_ATTR_NOSYMFOLLOW},
      {"relatime", MOUNT_ATTR_RELATIME, MOUNT_ATTR__ATIME},
      {"noatime", MOUNT_ATTR_NOATIME, MOUNT_ATTR__ATIME},
      {"strictatime", MOUNT_ATTR_STRICTATIME, MOUNT_ATTR__ATIME},
  };
  for (const Bit& b : kBits) {
    if (o != b.name) continue;
    attrs = (attrs & ~b.clear) | b.set;
    return true;
  }
  return false;
}

void configure(const MountContext& c, const std::string& key, const std::string* value) {
  const int r = value ? ::fsconfig(c.fs_fd, FSCONFIG_SET_STRING, key.c_str(), value->c_str(), 0)
                      : ::fsconfig(c.fs_fd, FSCONFIG_SET_FLAG, key.c_str(), nullptr, 0);
  if (r != 0) fail_mount(c, value ? key + "=" + *value : key, errno);
}

std::string unescape_mountinfo(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '3' &&
        s[i + 2] >= '0' && s[i + 2] <= '7' && s[i + 3] >= '0' && s[i + 3] <= '7') {
      out += static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

bool at_or_below(const std::string& mount_point, const std::string& path) {
  if (path == "/") return true;
  return mount_point == path ||
         (mount_point.size() > path.size() && mount_point.compare(0, path.size(), path) == 0 &&
          mount_point[path.size()] == '/');
}

std::string without_trailing_slashes(std::string p) {
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p;
}

// Mount points at or below `path`, deepest first; for mounts stacked on one point,
// the newest (topmost) first.
std::vector<std::string> mounts_below(const std::string& path) {
  std::vector<std::string> out;
  auto all = read_mountinfo();
  for (auto it = all.rbegin(); it != all.rend(); ++it)
    if (at_or_below(it->mount_point, path)) out.push_back(it->mount_point);
  std::stable_sort(out.begin(), out.end(), [](const std::string& a, const std::string& b) {
    return std::count(a.begin(), a.end(), '/') > std::count(b.begin(), b.end(), '/');
  });
  return out;
}

}  // namespace

void bind_mount(const std::string& source, int target_fd, bool recursive) {
  bind_tree(AT_FDCWD, source.c_str(), 0, target_fd, recursive, source);
}

void bind_mount_fd(int source_fd, int target_fd, bool recursive) {
  bind_tree(source_fd, "", AT_EMPTY_PATH, target_fd, recursive, fd_path(source_fd));
}

void set_mount_attrs(int fd, std::uint64_t set, std::uint64_t clear, bool recursive, std::uint64_t propagation) {
  struct mount_attr attr {};
  attr.attr_set = set;
  attr.attr_clr = clear;
  attr.propagation = propagation;
  if (::mount_setattr(fd, "", AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0), &attr, sizeof attr) != 0)
    throw SystemError("set mount attributes of", fd_path(fd), errno);
}

void make_private(int fd, bool recursive) { set_mount_attrs(fd, 0, 0, recursive, MS_PRIVATE); }

void make_readonly(int fd, bool recursive) { set_mount_attrs(fd, MOUNT_ATTR_RDONLY, 0, recursive); }

void mount_filesystem(const std::string& fstype, const std::string& source, const std::string& options,
                      int target_fd) {
  UniqueFd mnt = create_mount(fstype, source, options, fd_path(target_fd));
  attach(mnt.get(), target_fd, "mount " + fstype);
}

UniqueFd create_mount(const std::string& fstype, const std::string& source, const std::string& options,
                      const std::string& shown_target) {
  KernelLog kernel_log(fstype);
  UniqueFd fs(::fsopen(fstype.c_str(), FSOPEN_CLOEXEC));
  const MountContext c{fstype, fs.get(), shown_target, &kernel_log};
  if (!fs) fail_mount(c, "fsopen", errno);
  if (!source.empty()) configure(c, "source", &source);
  std::uint64_t attrs = MOUNT_ATTR_RELATIME;
  std::istringstream in(options);
  for (std::string o; std::getline(in, o, ',');) {
    if (o.empty() || userspace_only(o)) continue;
    const bool is_attr = apply_attr_option(o, attrs);
    // "ro" is also the superblock's: a read-only device cannot be mounted rw.
    if (is_attr && o != "ro") continue;
    const auto eq = o.find('=');
    if (eq == std::string::npos) {
      configure(c, o, nullptr);
    } else {
      const std::string value = o.substr(eq + 1);
      configure(c, o.substr(0, eq), &value);
    }
  }
  if (::fsconfig(fs.get(), FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) != 0) fail_mount(c, "create " + source, errno);
  UniqueFd mnt(::fsmount(fs.get(), FSMOUNT_CLOEXEC, static_cast<unsigned>(attrs)));
  if (!mnt) fail_mount(c, "fsmount", errno);
  return mnt;
}

void attach_mount(int mount_fd, int target_fd) { attach(mount_fd, target_fd, "attach " + fd_path(mount_fd)); }

UniqueFd attach_subtree(UniqueFd mount_fd, UniqueFd dir_fd, int target_fd, const std::string& target,
                        bool detached_clone) {
  const unsigned flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH;
  UniqueFd subtree;
  if (detached_clone) {
    subtree.reset(::open_tree(dir_fd.get(), "", flags));
    if (!subtree && errno != EINVAL) throw SystemError("clone the mount of", fd_path(dir_fd.get()), errno);
  }
  if (!subtree) {
    // EINVAL: a kernel before 6.15, which clones only from mounts in our namespace.
    attach(mount_fd.get(), target_fd, "attach " + fd_path(mount_fd.get()));
    subtree.reset(::open_tree(dir_fd.get(), "", flags));
    const int clone_errno = errno;
    // Our fds on the whole mount would make its umount EBUSY.
    dir_fd.reset();
    mount_fd.reset();
    if (::umount2(target.c_str(), UMOUNT_NOFOLLOW) != 0) throw SystemError("unmount the whole mount from", target, errno);
    if (!subtree) throw SystemError("clone a directory of the mount on", target, clone_errno);
  }
  attach(subtree.get(), target_fd, "attach " + fd_path(subtree.get()));
  return subtree;
}

std::vector<MountInfo> read_mountinfo() {
  std::vector<MountInfo> out;
  std::istringstream in(read_file("/proc/self/mountinfo"));
  for (std::string line; std::getline(in, line);) {
    std::istringstream words(line);
    MountInfo m;
    std::string devno, field;
    if (!(words >> m.id >> m.parent >> devno >> m.root >> m.mount_point >> m.options)) continue;
    while (words >> field && field != "-") m.optional += (m.optional.empty() ? "" : " ") + field;
    if (field != "-" || !(words >> m.fstype >> m.source)) continue;
    words >> m.super_options;
    for (std::string* s : {&m.root, &m.mount_point, &m.source, &m.optional, &m.super_options, &m.fstype})
      *s = unescape_mountinfo(*s);
    out.push_back(std::move(m));
  }
  return out;
}

UnmountResult unmount_tree(const std::string& path, bool allow_lazy, bool include_top) {
  UnmountResult result;
  const std::string top = without_trailing_slashes(path);
  // No canonicalisation: a path inside a chroot may be a symlink to "/".
  if (top.empty() || top[0] != '/' || top == "/") throw SystemError("refusing to unmount everything below", path, EINVAL);
  // Several passes: a mount stacked over a parent hides the mounts below it until it
  // is gone (their umount gives ENOENT), and a child keeps its parent busy. Each pass
  // reads mountinfo once (it grows with every live session); the read that finds
  // nothing left is also the final check.
  for (int pass = 0; pass < 32; ++pass) {
    auto mounts = mounts_below(top);
    if (!include_top) mounts.erase(std::remove(mounts.begin(), mounts.end(), top), mounts.end());
    if (mounts.empty()) return result;
    bool progress = false;
    std::vector<std::string> busy;
    for (const auto& m : mounts) {
      if (::umount2(m.c_str(), UMOUNT_NOFOLLOW) == 0) {
        progress = true;
      } else if (errno == EBUSY) {
        busy.push_back(m);
      }
      // ENOENT/EINVAL: already gone or hidden for now; anything left is reported.
    }
    // Lazily only when a clean pass can do no more: what is still busy is in use.
    if (!progress && allow_lazy) {
      for (const auto& m : busy) {
        if (::umount2(m.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW) == 0) {
          progress = true;
          result.lazy_used = true;
        }
      }
    }
    if (!progress) {
      result.still_mounted = mounts;
      return result;
    }
  }
  result.still_mounted = mounts_below(top);
  return result;
}

bool is_mounted_at_or_below(const std::string& path) { return !mounts_below(without_trailing_slashes(path)).empty(); }

}  // namespace schroot::sys
