#include "src/sys/mount.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/major.h>
#include <linux/openat2.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <sstream>
#include <unordered_map>

#include "src/error.h"
#include "src/sys/fs.h"
#include "src/sys/unique_fd.h"

// Kernel 5.8; older C library headers lack it (mount_id_of falls back to fdinfo).
#ifndef STATX_MNT_ID
#define STATX_MNT_ID 0x00001000U
#endif

// listmount(2) and statmount(2), Linux 6.8. glibc has no wrapper and Debian 12's 6.1
// headers have neither the syscalls nor their structs, nor STATX_MNT_ID_UNIQUE: numbers
// from the kernel's include/uapi/asm-generic/unistd.h and arch/x86/entry/syscalls (the
// same on every architecture but alpha and mips), layouts from include/uapi/linux/mount.h
// and include/uapi/linux/stat.h. The structs carry our own names, so a newer header that
// defines the kernel's cannot clash.
#ifndef SYS_statmount
#define SYS_statmount 457
#endif
#ifndef SYS_listmount
#define SYS_listmount 458
#endif
#ifndef STATX_MNT_ID_UNIQUE
#define STATX_MNT_ID_UNIQUE 0x00004000U
#endif

namespace schroot::sys {

namespace {

// struct mnt_id_req, its first published size (MNT_ID_REQ_SIZE_VER0, 24 bytes).
struct MntIdReq {
  std::uint32_t size;
  std::uint32_t spare;
  std::uint64_t mnt_id;
  std::uint64_t param;  // statmount: the STATMOUNT_* mask; listmount: the last id seen
};

// struct statmount: a fixed 512-byte head (later kernels fill its spare words, never
// grow it), then the strings its [str] fields point into, as offsets from `str`.
struct Statmount {
  std::uint32_t size;
  std::uint32_t mnt_opts;  // [str] 6.11
  std::uint64_t mask;      // what the kernel filled in
  std::uint32_t sb_dev_major;
  std::uint32_t sb_dev_minor;
  std::uint64_t sb_magic;
  std::uint32_t sb_flags;
  std::uint32_t fs_type;  // [str]
  std::uint64_t mnt_id;         // unique
  std::uint64_t mnt_parent_id;  // unique; the mount's own id for the namespace's root
  std::uint32_t mnt_id_old;     // mountinfo's
  std::uint32_t mnt_parent_id_old;
  std::uint64_t mnt_attr;
  std::uint64_t mnt_propagation;
  std::uint64_t mnt_peer_group;
  std::uint64_t mnt_master;
  std::uint64_t propagate_from;
  std::uint32_t mnt_root;   // [str]
  std::uint32_t mnt_point;  // [str] relative to our root, as in mountinfo
  std::uint64_t mnt_ns_id;  // 6.11
  std::uint32_t fs_subtype;  // [str] 6.13
  std::uint32_t sb_source;   // [str] 6.13
  std::uint64_t spare[48];
  char str[];
};
static_assert(sizeof(Statmount) == 512, "the kernel's struct statmount head is 512 bytes");

// (STATMOUNT_SB_BASIC = 0x1 is not asked for: the listing needs no superblock fields.)
constexpr std::uint64_t kStatmountMntBasic = 0x2, kStatmountMntRoot = 0x8,
                        kStatmountMntPoint = 0x10, kStatmountFsType = 0x20, kStatmountFsSubtype = 0x100,
                        kStatmountSbSource = 0x200;

// Tests switch listmount off; a kernel without it (ENOSYS) or a seccomp filter refusing
// it (EPERM) switches it off for the rest of the process.
std::atomic<bool> g_listmount_allowed{true};
std::atomic<bool> g_listmount_missing{false};
// Kernels before 6.13 reject the mask bits they do not know (EINVAL).
std::atomic<bool> g_statmount_extras{true};

// Thrown by the listmount path when the kernel refuses it: list from mountinfo instead.
struct ListmountUnavailable {};

// Missing (ENOSYS) or refused by a seccomp filter (EPERM): mountinfo from now on. Any
// other failure: mountinfo for this listing, which is always right, only slower.
[[noreturn]] void listmount_failed(int err) {
  if (err == ENOSYS || err == EPERM) g_listmount_missing = true;
  throw ListmountUnavailable{};
}

// The ids of the mounts attached to mount `id`, oldest first (unique ids only grow);
// empty when `id` is gone.
std::vector<std::uint64_t> listmount_children(std::uint64_t id) {
  std::vector<std::uint64_t> ids(64);
  for (;;) {
    MntIdReq req{sizeof(MntIdReq), 0, id, 0};
    const long n = ::syscall(SYS_listmount, &req, ids.data(), ids.size(), 0);
    if (n < 0 && errno == ENOENT) return {};
    if (n < 0) listmount_failed(errno);
    // Full: read them all again into a larger buffer rather than page on (6.8 pages by
    // id over a list that is not sorted by id).
    if (static_cast<std::size_t>(n) == ids.size()) {
      ids.resize(ids.size() * 4);
      continue;
    }
    ids.resize(static_cast<std::size_t>(n));
    std::sort(ids.begin(), ids.end());
    return ids;
  }
}

// statmount of mount `id` with `fields` (kStatmount*); false when it is gone.
bool statmount_of(std::uint64_t id, std::uint64_t fields, MountInfo& out) {
  static thread_local std::vector<std::uint64_t> buf(2048);  // 16 KiB: 512 + paths
  for (;;) {
    const std::uint64_t extras = g_statmount_extras ? kStatmountSbSource | kStatmountFsSubtype : 0;
    MntIdReq req{sizeof(MntIdReq), 0, id, fields | (fields & kStatmountFsType ? extras : 0)};
    if (::syscall(SYS_statmount, &req, buf.data(), buf.size() * sizeof buf[0], 0) == 0) break;
    if (errno == ENOENT) return false;
    if (errno == EOVERFLOW && buf.size() < (1u << 20)) {
      buf.resize(buf.size() * 4);
      continue;
    }
    if (errno == EINVAL && g_statmount_extras && (req.param & extras)) {
      g_statmount_extras = false;
      continue;
    }
    listmount_failed(errno);
  }
  const auto* sm = reinterpret_cast<const Statmount*>(buf.data());
  const auto text = [&](std::uint64_t bit, std::uint32_t offset) {
    return (sm->mask & bit) ? std::string(sm->str + offset) : std::string();
  };
  out.id = sm->mnt_id;
  out.parent = sm->mnt_parent_id;
  out.mount_point = text(kStatmountMntPoint, sm->mnt_point);
  out.root = text(kStatmountMntRoot, sm->mnt_root);
  out.fstype = text(kStatmountFsType, sm->fs_type);
  // mountinfo's "fuse.sshfs"
  if ((sm->mask & kStatmountFsSubtype) && sm->str[sm->fs_subtype]) out.fstype += "." + text(kStatmountFsSubtype, sm->fs_subtype);
  out.source = text(kStatmountSbSource, sm->sb_source);
  return true;
}

constexpr unsigned kEmptyPaths = MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH;

void attach(int tree_fd, int target_fd, const std::string& what) {
  if (::move_mount(tree_fd, "", target_fd, "", kEmptyPaths) != 0) throw SystemError(what + " on", fd_path(target_fd), errno);
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
// The kernel's own memory filesystems report every mount error to the fs context;
// for them /dev/kmsg is not opened: its open and seek to the end walk the printk
// ring (~2% of an automatic session, three mounts of which are proc, sysfs...).
bool reports_to_fs_context_only(const std::string& fstype) {
  static const char* const kNames[] = {"proc", "sysfs", "tmpfs", "devpts", "mqueue", "cgroup2", "cgroup",
                                       "ramfs", "binfmt_misc", "hugetlbfs", "tracefs", "debugfs",
                                       "securityfs", "configfs", "bpf", "pstore", "fusectl", "efivarfs"};
  return std::any_of(std::begin(kNames), std::end(kNames), [&](const char* n) { return fstype == n; });
}

class KernelLog {
 public:
  explicit KernelLog(std::string fstype) : fstype_(std::move(fstype)) {
    if (reports_to_fs_context_only(fstype_)) return;
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

std::string without_trailing_slashes(std::string p) {
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p;
}

// The mount id from /proc/self/fdinfo, for kernels before 5.8 (no STATX_MNT_ID).
int mount_id_from_fdinfo(int fd) {
  std::istringstream in(read_file("/proc/self/fdinfo/" + std::to_string(fd)));
  for (std::string line; std::getline(in, line);)
    if (line.rfind("mnt_id:", 0) == 0) return std::atoi(line.c_str() + 7);
  throw SystemError("read the mount id of", fd_path(fd), ENOTSUP);
}

// `rel` (a directory) below `dirfd`, never through a symlink, a magic link or "..":
// a directory the tree controls cannot send us elsewhere. O_PATH; -1 with errno.
int open_dir_beneath(int dirfd, const std::string& rel) {
  struct open_how how;
  std::memset(&how, 0, sizeof how);
  how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  for (int attempt = 0;; ++attempt) {
    long fd = ::syscall(SYS_openat2, dirfd, rel.c_str(), &how, sizeof how);
    // EAGAIN: a rename somewhere meanwhile; the kernel asks us to try again.
    if (fd >= 0 || errno != EAGAIN || attempt == 8) return static_cast<int>(fd);
  }
}

// Is the filesystem `fd` lies in on a loop device (or a partition of one) or on a
// device-mapper device (an LVM snapshot)? The undo detaches or removes those next, which
// a lazily detached mount would keep busy for as long as anything uses it.
bool on_loop_device(int fd) {
  struct statx sx;
  if (::statx(fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS, &sx) != 0) throw SystemError("statx", fd_path(fd), errno);
  if (sx.stx_dev_major == LOOP_MAJOR) return true;
  if (sx.stx_dev_major == 0) return false;  // no block device: tmpfs, proc, overlay...
  // Partitions have another major (blkext): sysfs names the whole device.
  char link[PATH_MAX];
  const std::string sys = "/sys/dev/block/" + std::to_string(sx.stx_dev_major) + ":" + std::to_string(sx.stx_dev_minor);
  const ssize_t n = ::readlink(sys.c_str(), link, sizeof link - 1);
  if (n <= 0) return false;
  const std::string target(link, static_cast<std::size_t>(n));
  return target.find("/block/loop") != std::string::npos || target.find("/block/dm-") != std::string::npos;
}

enum class Outcome { kUnmounted, kBusy, kStale };
struct Attempt {
  Outcome outcome;
  std::string why;
};

// Unmounts `m` through a checked handle. Its mount point is reached from the holder
// directory (outside the tree) without following links, and must lead to the mount
// with m's id, in a directory of mount `dir_mount` (its parent's, or for a mount
// stacked on its parent's root, the stack's); umount2 then names it as
// /proc/self/fd/DIR/LEAF: DIR is that checked directory (it pins the parent mount,
// not `m`), LEAF a mount point, which nobody can rename or replace while it is one.
// An fd on `m` itself would make it busy: closed before the umount.
Attempt unmount_checked(int holder_fd, const std::string& holder_path, const MountInfo& m, std::uint64_t dir_mount,
                        MountIds ids, bool lazy) {
  const std::string prefix = holder_path == "/" ? "/" : holder_path + "/";
  if (m.mount_point.size() <= prefix.size() || m.mount_point.compare(0, prefix.size(), prefix) != 0)
    return {Outcome::kStale, "its mount point is not below " + holder_path + " any more"};
  const std::string rel = m.mount_point.substr(prefix.size());
  const auto slash = rel.rfind('/');
  const std::string leaf = slash == std::string::npos ? rel : rel.substr(slash + 1);
  if (leaf.empty() || leaf == "." || leaf == "..") return {Outcome::kStale, "its mount point has no name"};
  UniqueFd dir;
  if (slash != std::string::npos) {
    dir.reset(open_dir_beneath(holder_fd, rel.substr(0, slash)));
    if (!dir)
      return {Outcome::kStale, std::string("its mount point cannot be reached without following a link: ") +
                                   std::strerror(errno)};
  }
  const int dir_fd = dir ? dir.get() : holder_fd;
  // Ids of the listing's kind: a reused id compared with a unique one would never match.
  const std::uint64_t found_dir_mount = mount_id_of(dir_fd, ids);
  if (found_dir_mount != dir_mount)
    return {Outcome::kStale, "the directory of its mount point lies in mount " + std::to_string(found_dir_mount) +
                                 ", not in mount " + std::to_string(dir_mount)};
  {
    UniqueFd at(::openat(dir_fd, leaf.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
    if (!at) return {Outcome::kStale, std::string("open its mount point: ") + std::strerror(errno)};
    const std::uint64_t at_mount = mount_id_of(at.get(), ids);
    if (at_mount != m.id)
      return {Outcome::kStale, "its mount point leads to mount " + std::to_string(at_mount)};
    // Its superblock would outlive the session, and the loop device with it.
    if (lazy && on_loop_device(at.get())) return {Outcome::kBusy, "busy (a loop or device-mapper device's mount is never detached lazily)"};
  }
  const std::string handle = "/proc/self/fd/" + std::to_string(dir_fd) + "/" + leaf;
  if (::umount2(handle.c_str(), UMOUNT_NOFOLLOW | (lazy ? MNT_DETACH : 0)) == 0) return {Outcome::kUnmounted, ""};
  if (errno == EBUSY) return {Outcome::kBusy, "busy"};
  return {Outcome::kStale, std::string("umount: ") + std::strerror(errno)};
}

Attempt try_unmount(int holder_fd, const std::string& holder_path, const MountInfo& m, std::uint64_t dir_mount,
                    MountIds ids, bool lazy) {
  try {
    return unmount_checked(holder_fd, holder_path, m, dir_mount, ids, lazy);
  } catch (const std::exception& e) {
    return {Outcome::kStale, e.what()};
  }
}

// `path` split into its directory, opened (O_PATH; empty when missing), and its last
// component.
struct Holder {
  UniqueFd fd;
  std::string path;
  std::string name;
};
Holder open_holder(const std::string& path) {
  Holder h;
  const auto slash = path.rfind('/');
  h.path = slash == 0 ? "/" : path.substr(0, slash);
  h.name = path.substr(slash + 1);
  h.fd.reset(::open(h.path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!h.fd && errno != ENOENT && errno != ENOTDIR) throw SystemError("open", h.path, errno);
  return h;
}

// list_mount_tree from an open holder directory.
// The mounts read (all of /proc/self/mountinfo, or what listmount found), each found by
// id and its children listed (oldest first).
struct MountTable {
  std::vector<MountInfo> all;
  std::unordered_map<std::uint64_t, std::size_t> index;                 // id → position in all
  std::unordered_map<std::uint64_t, std::vector<std::size_t>> children;  // parent id → positions

  explicit MountTable(std::vector<MountInfo> mounts) : all(std::move(mounts)) {
    for (std::size_t i = 0; i < all.size(); ++i) {
      index[all[i].id] = i;
      if (all[i].parent != all[i].id) children[all[i].parent].push_back(i);
    }
  }
  const std::vector<std::size_t>& children_of(std::uint64_t id) const {
    static const std::vector<std::size_t> kNone;
    const auto it = children.find(id);
    return it == children.end() ? kNone : it->second;
  }
};

// With nothing mounted at `path`: is it an empty directory (a session's mount location
// once its mounts are gone), or no directory at all? Then nothing is mounted below it
// either (a mount point cannot be removed, nor is one renamed away below `path` any
// more), which spares reading the holder's mounts, every session's, to find out. It is
// the holder's own directory here, outside any tree; not followed if a link.
bool nothing_can_be_below(const Holder& h) {
  UniqueFd dir(::openat(h.fd.get(), h.name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (!dir) return errno == ENOENT || errno == ENOTDIR || errno == ELOOP;
  alignas(8) char buf[1024];
  for (;;) {
    const ssize_t n = ::getdents64(dir.get(), buf, sizeof buf);
    if (n < 0) return false;  // unknown: read the mounts
    if (n == 0) return true;
    for (ssize_t off = 0; off < n;) {
      const auto* d = reinterpret_cast<const struct dirent64*>(buf + off);
      if (std::strcmp(d->d_name, ".") != 0 && std::strcmp(d->d_name, "..") != 0) return false;
      off += d->d_reclen;
    }
  }
}

// The id of the top mount at `path`; the holder's when nothing is mounted there; 0 when
// nothing can be mounted at or below `path` (nothing_can_be_below).
std::uint64_t top_mount_at(const Holder& h, const std::string& path, std::uint64_t holder, MountIds ids) {
  UniqueFd at(::openat(h.fd.get(), h.name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
  if (!at && errno != ENOENT) throw SystemError("open", path, errno);
  if (!at) return 0;
  const std::uint64_t top = mount_id_of(at.get(), ids);
  if (top == holder && nothing_can_be_below(h)) return 0;
  return top;
}

// Down the stack whose top is `top` to the mount attached to the holder; 0 when none.
std::uint64_t base_of_stack(const MountTable& m, std::uint64_t top, std::uint64_t holder) {
  std::uint64_t id = top;
  for (std::size_t hops = 0; hops <= m.all.size() && m.index.count(id); ++hops) {
    const MountInfo& mount = m.all[m.index.at(id)];
    if (mount.parent == holder) return id;
    id = mount.parent;
  }
  // Not found: the stack changed since we opened it; what we opened is still ours.
  return m.index.count(top) ? top : 0;
}

// Nothing at `path`: the mounts attached to the holder below `path`, newest first. Only
// these direct children need their text, which is trusted (not inside a tree); their
// own subtrees go by id.
std::vector<std::size_t> attached_below(const MountTable& m, std::uint64_t holder, const std::string& path) {
  const std::string prefix = path + "/";
  std::vector<std::size_t> roots;
  for (std::size_t i : m.children_of(holder))
    if (m.all[i].mount_point.compare(0, prefix.size(), prefix) == 0) roots.push_back(i);
  std::reverse(roots.begin(), roots.end());
  return roots;
}

// The trees from `roots` in post-order, newest child first: children before parents,
// upper before lower.
std::vector<MountInfo> post_order(const MountTable& m, const std::vector<std::size_t>& roots) {
  std::vector<MountInfo> out;
  std::vector<bool> seen(m.all.size());
  for (std::size_t root : roots) {
    if (seen[root]) continue;
    seen[root] = true;
    std::vector<std::pair<std::size_t, std::size_t>> stack{{root, 0}};  // (mount, children visited)
    while (!stack.empty()) {
      const std::size_t i = stack.back().first;
      const std::vector<std::size_t>& kids = m.children_of(m.all[i].id);
      const std::size_t k = stack.back().second;
      if (k < kids.size()) {
        ++stack.back().second;
        const std::size_t c = kids[kids.size() - 1 - k];
        if (!seen[c]) {
          seen[c] = true;
          stack.emplace_back(c, 0);
        }
      } else {
        out.push_back(m.all[i]);
        stack.pop_back();
      }
    }
  }
  return out;
}

// Does listmount list a mount's descendants (kernels as of this writing: every mount
// reachable below it) or only its children? Learnt from the first listing that shows a
// grandchild; until then each child is listed in turn, which is right either way.
std::atomic<bool> g_listmount_lists_descendants{false};

// The mounts of the subtrees at `roots` (ids), each with its descendants, through
// listmount and statmount: the session's own mounts, whatever else the host has.
// `out` may hold some of them already (statted, not yet expanded).
constexpr std::uint64_t kListedFields = kStatmountMntBasic | kStatmountMntPoint | kStatmountMntRoot | kStatmountFsType;
void add_subtrees(std::vector<std::uint64_t> roots, std::vector<MountInfo>& out, std::size_t& read) {
  std::unordered_map<std::uint64_t, bool> known, expanded;
  for (const MountInfo& m : out) known[m.id] = true;
  while (!roots.empty()) {
    const std::uint64_t id = roots.back();
    roots.pop_back();
    if (expanded[id]) continue;
    expanded[id] = true;
    if (!known[id]) {
      MountInfo m;
      ++read;
      if (!statmount_of(id, kListedFields, m)) continue;  // gone meanwhile
      out.push_back(std::move(m));
      known[id] = true;
    }
    std::vector<std::uint64_t> kids;
    for (std::uint64_t child : listmount_children(id)) {
      if (known[child]) continue;
      MountInfo m;
      ++read;
      if (!statmount_of(child, kListedFields, m)) continue;
      if (m.parent != id) g_listmount_lists_descendants = true;
      kids.push_back(child);
      out.push_back(std::move(m));
      known[child] = true;
    }
    // With descendants listed, this one listing holds the whole subtree.
    if (!g_listmount_lists_descendants) roots.insert(roots.end(), kids.begin(), kids.end());
    for (std::uint64_t k : kids) expanded[k] = g_listmount_lists_descendants;
  }
}

// The mounts list_tree_at needs, read with listmount/statmount (unique ids): the stack
// from `top` down to the holder and the subtree of its base; or with nothing at `path`
// (top == holder), the holder's children below `path` with their subtrees. Beyond the
// session's own mounts, only the holder's (the other sessions' among them, when nothing
// is at `path`) are looked at, and those only for their parent and mount point.
std::vector<MountInfo> subtree_mounts(std::uint64_t holder, std::uint64_t top, const std::string& path,
                                      std::size_t& read) {
  std::vector<MountInfo> found;
  std::vector<std::uint64_t> roots;
  if (top != holder) {
    // Down the stack to its base (each stacked mount is a child of the one below); the
    // base's subtree then holds the whole stack.
    std::uint64_t id = top;
    for (int hops = 0; hops < 4096; ++hops) {  // bounded, as the kernel's mount count is
      MountInfo m;
      ++read;
      if (!statmount_of(id, kListedFields, m)) break;
      const std::uint64_t parent = m.parent;
      found.push_back(std::move(m));
      if (parent == holder) {
        roots.push_back(id);
        break;
      }
      if (parent == id) break;  // the namespace's root
      id = parent;
    }
    if (roots.empty()) roots.push_back(top);  // the stack changed: what we opened is ours
    add_subtrees(roots, found, read);
  } else {
    // The holder's listing may hold every mount below it (all sessions'): their parents
    // first (no path text: cheap), the mount point only of the holder's own children.
    const std::string prefix = path + "/";
    std::unordered_map<std::uint64_t, std::vector<std::uint64_t>> children;
    std::vector<std::uint64_t> direct;
    for (std::uint64_t id : listmount_children(holder)) {
      MountInfo m;
      ++read;
      if (!statmount_of(id, kStatmountMntBasic, m)) continue;
      if (m.parent == holder) direct.push_back(id);
      else children[m.parent].push_back(id);
    }
    for (std::uint64_t id : direct) {
      MountInfo m;
      if (statmount_of(id, kListedFields, m) && m.mount_point.compare(0, prefix.size(), prefix) == 0) {
        found.push_back(std::move(m));
        roots.push_back(id);
      }
    }
    if (!children.empty()) g_listmount_lists_descendants = true;
    if (g_listmount_lists_descendants) {
      // Their subtrees are in the holder's listing already.
      for (std::size_t i = 0; i < roots.size(); ++i)
        for (std::uint64_t kid : children[roots[i]]) {
          MountInfo m;
          if (!statmount_of(kid, kListedFields, m)) continue;
          found.push_back(std::move(m));
          roots.push_back(kid);
        }
    } else {
      add_subtrees(roots, found, read);
    }
  }
  // Oldest first, as children_of promises: unique ids only grow.
  std::sort(found.begin(), found.end(), [](const MountInfo& a, const MountInfo& b) { return a.id < b.id; });
  return found;
}

MountTree list_tree_with(const Holder& h, const std::string& path, MountIds ids) {
  MountTree t;
  t.ids = ids;
  if (!h.fd) return t;  // no directory, no mounts
  t.holder = mount_id_of(h.fd.get(), ids);
  const std::uint64_t top = top_mount_at(h, path, t.holder, ids);
  if (top == 0) return t;  // no `path`, no mounts
  const MountTable m(ids == MountIds::kUnique ? subtree_mounts(t.holder, top, path, t.mounts_read) : read_mountinfo());
  if (ids == MountIds::kReused) t.mounts_read = m.all.size();
  std::vector<std::size_t> roots;
  if (top != t.holder) {
    t.base = base_of_stack(m, top, t.holder);
    if (t.base) roots.push_back(m.index.at(t.base));
  } else {
    roots = attached_below(m, t.holder, path);
  }
  t.mounts = post_order(m, roots);
  return t;
}

MountTree list_tree_at(const Holder& h, const std::string& path) {
  if (mount_listing_ids() == MountIds::kUnique) {
    try {
      return list_tree_with(h, path, MountIds::kUnique);
    } catch (const ListmountUnavailable&) {
      // Refused (seccomp) or missing: list again, every id from mountinfo.
    }
  }
  return list_tree_with(h, path, MountIds::kReused);
}

// The mount whose directory `m`'s mount point is: its parent's, or for a stack of
// mounts on one point (each on the root of the one below), the lowest one's parent.
std::uint64_t mount_point_mount(const MountInfo& m, const std::unordered_map<std::uint64_t, const MountInfo*>& listed) {
  const MountInfo* cur = &m;
  for (std::size_t hops = 0; hops <= listed.size(); ++hops) {
    auto up = listed.find(cur->parent);
    if (up == listed.end() || up->second->mount_point != cur->mount_point) break;
    cur = up->second;
  }
  return cur->parent;
}

std::string describe(const MountInfo& m, const std::string& why) {
  return "mount " + std::to_string(m.id) + " at " + m.mount_point + ": " + why;
}

}  // namespace

void bind_mount(const std::string& source, int target_fd, bool recursive) {
  const unsigned flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (recursive ? AT_RECURSIVE : 0u);
  UniqueFd tree(::open_tree(AT_FDCWD, source.c_str(), flags));
  if (!tree) throw SystemError("bind", source, errno);
  // The tree fd is closed on return: an open mount fd would make a later umount EBUSY.
  attach(tree.get(), target_fd, "bind " + source);
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

int mount_id_of(int fd) {
  struct statx sx;
  if (::statx(fd, "", AT_EMPTY_PATH, STATX_MNT_ID, &sx) != 0) throw SystemError("statx", fd_path(fd), errno);
  if (sx.stx_mask & STATX_MNT_ID) return static_cast<int>(sx.stx_mnt_id);
  return mount_id_from_fdinfo(fd);
}

std::uint64_t mount_id_of(int fd, MountIds kind) {
  if (kind == MountIds::kReused) return static_cast<std::uint64_t>(mount_id_of(fd));
  struct statx sx;
  if (::statx(fd, "", AT_EMPTY_PATH, STATX_MNT_ID_UNIQUE, &sx) != 0) throw SystemError("statx", fd_path(fd), errno);
  if (!(sx.stx_mask & STATX_MNT_ID_UNIQUE)) throw SystemError("read the unique mount id of", fd_path(fd), ENOTSUP);
  return sx.stx_mnt_id;
}

MountIds mount_listing_ids() {
  if (!g_listmount_allowed || g_listmount_missing) return MountIds::kReused;
  static const bool kernel_has_it = [] {
    // STATX_MNT_ID_UNIQUE came with listmount (6.8); listmount itself is tried on use.
    struct statx sx;
    return ::statx(AT_FDCWD, "/", 0, STATX_MNT_ID_UNIQUE, &sx) == 0 && (sx.stx_mask & STATX_MNT_ID_UNIQUE);
  }();
  return kernel_has_it ? MountIds::kUnique : MountIds::kReused;
}

void allow_listmount(bool allowed) { g_listmount_allowed = allowed; }

MountTree list_mount_tree(const std::string& path) {
  const std::string top = without_trailing_slashes(path);
  if (top.empty() || top[0] != '/') throw SystemError("list the mounts at", path, EINVAL);
  if (top == "/") throw SystemError("list the mounts at", path, EINVAL);
  return list_tree_at(open_holder(top), top);
}

UnmountResult unmount_tree(const std::string& path, bool allow_lazy, bool include_top,
                           const std::function<void()>& after_listing) {
  UnmountResult result;
  const std::string top = without_trailing_slashes(path);
  // No canonicalisation: a path inside a chroot may be a symlink to "/".
  if (top.empty() || top[0] != '/' || top == "/") throw SystemError("refusing to unmount everything below", path, EINVAL);
  const Holder holder = open_holder(top);
  // Several passes: a mount stacked over a parent hides the mounts below it until it
  // is gone, and a mount that no longer matches its listing (renamed meanwhile) is
  // looked up again. Each pass reads mountinfo once (it grows with every live
  // session); the read that finds nothing left is also the final check.
  constexpr int kMaxPasses = 32;
  constexpr int kMaxStaleRetries = 3;
  int stale_retries = 0;
  for (int pass = 0; pass < kMaxPasses; ++pass) {
    const MountTree tree = list_tree_at(holder, top);
    if (after_listing) after_listing();
    std::unordered_map<std::uint64_t, const MountInfo*> listed;
    std::vector<const MountInfo*> mounts;
    for (const auto& m : tree.mounts) {
      listed[m.id] = &m;
      if (include_top || m.id != tree.base) mounts.push_back(&m);
    }
    if (mounts.empty()) return result;
    bool progress = false;
    std::vector<std::pair<const MountInfo*, std::string>> left;
    std::vector<const MountInfo*> busy;
    for (const MountInfo* m : mounts) {
      Attempt a = try_unmount(holder.fd.get(), holder.path, *m, mount_point_mount(*m, listed), tree.ids, /*lazy=*/false);
      if (a.outcome == Outcome::kUnmounted) {
        progress = true;
        continue;
      }
      if (a.outcome == Outcome::kBusy) busy.push_back(m);
      left.emplace_back(m, a.why);
    }
    // Lazily only when a clean pass can do no more: what is still busy is in use.
    if (!progress && allow_lazy) {
      for (const MountInfo* m : busy) {
        Attempt a = try_unmount(holder.fd.get(), holder.path, *m, mount_point_mount(*m, listed), tree.ids, /*lazy=*/true);
        if (a.outcome == Outcome::kUnmounted) {
          progress = true;
          result.lazy_used = true;
        } else {
          for (auto& l : left)
            if (l.first == m) l.second = a.why;
        }
      }
    }
    if (progress) continue;
    // Nothing moved: a mount that did not match may have been renamed meanwhile; look
    // again a few times before giving up on it.
    const bool stale = std::any_of(left.begin(), left.end(), [&](const auto& l) {
      return std::find(busy.begin(), busy.end(), l.first) == busy.end();
    });
    if (stale && ++stale_retries <= kMaxStaleRetries) continue;
    for (const auto& l : left) {
      result.still_mounted.push_back(l.first->mount_point);
      result.problems.push_back(describe(*l.first, l.second));
    }
    return result;
  }
  MountTree tree = list_tree_at(holder, top);
  for (const auto& m : tree.mounts) {
    if (!include_top && m.id == tree.base) continue;
    result.still_mounted.push_back(m.mount_point);
    result.problems.push_back(describe(m, "still mounted after " + std::to_string(kMaxPasses) + " passes"));
  }
  return result;
}

bool is_mounted_at_or_below(const std::string& path) { return !list_mount_tree(path).mounts.empty(); }

}  // namespace schroot::sys
