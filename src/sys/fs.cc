#include "src/sys/fs.h"

#include <dirent.h>
#include <errno.h>
#include <linux/openat2.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <utility>
#include <vector>

#include "src/error.h"

namespace schroot::sys {

namespace {

// The path components that name something: "" and "." are dropped, ".." is kept
// (openat2 clamps it inside the root).
std::vector<std::string> components(const std::string& path) {
  std::vector<std::string> out;
  std::string::size_type pos = 0;
  while (pos <= path.size()) {
    auto slash = path.find('/', pos);
    if (slash == std::string::npos) slash = path.size();
    std::string c = path.substr(pos, slash - pos);
    if (!c.empty() && c != ".") out.push_back(std::move(c));
    pos = slash + 1;
  }
  return out;
}

// The absolute path of the first n components ("/" for none).
std::string path_of(const std::vector<std::string>& parts, std::size_t n) {
  std::string out;
  for (std::size_t i = 0; i < n; ++i) out += "/" + parts[i];
  return out.empty() ? "/" : out;
}

const char* type_name(mode_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG: return "regular file";
    case S_IFDIR: return "directory";
    case S_IFLNK: return "symbolic link";
    case S_IFIFO: return "FIFO";
    case S_IFCHR: return "character device";
    case S_IFBLK: return "block device";
    case S_IFSOCK: return "socket";
    default: return "file of unknown type";
  }
}

// "mkdir /dev/pts in /run/schroot/mount/x: a FIFO is in the way: Not a directory".
[[noreturn]] void fail_in_root(const std::string& op, int root_fd, const std::string& path, int err,
                               const std::string& detail = "") {
  throw SystemError(op, path + " in " + fd_path(root_fd) + (detail.empty() ? "" : ": " + detail), err);
}

// openat2 below `dirfd`; -1 with errno set on failure. RESOLVE_IN_ROOT lookups fail
// with EAGAIN when a rename raced with them: retrying is what the kernel asks for.
int openat2_retry(int dirfd, const std::string& path, int flags, mode_t mode, std::uint64_t resolve) {
  struct open_how how {};
  how.flags = static_cast<std::uint64_t>(flags | O_CLOEXEC);
  // openat2 rejects a mode without O_CREAT/O_TMPFILE instead of ignoring it.
  how.mode = (flags & (O_CREAT | __O_TMPFILE)) ? mode : 0;
  how.resolve = resolve;
  for (int tries = 0;; ++tries) {
    long fd = ::syscall(SYS_openat2, dirfd, path.c_str(), &how, sizeof how);
    if (fd >= 0) return static_cast<int>(fd);
    if (errno == EINTR || (errno == EAGAIN && tries < 1000)) continue;
    return -1;
  }
}

std::string in_root_relative(const std::string& path) {
  auto first = path.find_first_not_of('/');
  return first == std::string::npos ? "." : path.substr(first);
}

UniqueFd try_resolve(int root_fd, const std::string& path, int flags, int& err) {
  UniqueFd fd(openat2_retry(root_fd, in_root_relative(path), flags, 0, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS));
  err = fd ? 0 : errno;
  return fd;
}

struct stat fstat_or_throw(int fd, const std::string& shown) {
  struct stat st;
  if (::fstat(fd, &st) != 0) throw SystemError("stat", shown, errno);
  return st;
}

// Throws naming what is in the way when `fd` is not of type `want` (S_IFDIR, S_IFREG).
void require_type(int fd, mode_t want, const std::string& op, int root_fd, const std::string& path) {
  const struct stat st = fstat_or_throw(fd, path);
  if ((st.st_mode & S_IFMT) == want) return;
  const int err = want == S_IFDIR ? ENOTDIR : S_ISDIR(st.st_mode) ? EISDIR : EEXIST;
  fail_in_root(op, root_fd, path, err, std::string("a ") + type_name(st.st_mode) + " is in the way");
}

// A lookup that found nothing where a create found something: a symlink whose target
// is missing (or, inside the root, outside it). Says so, for a readable error.
[[noreturn]] void fail_missing(const std::string& op, int root_fd, int parent_fd, const std::string& name,
                               const std::string& path) {
  struct stat st;
  if (::fstatat(parent_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
    fail_in_root(op, root_fd, path, ENOENT, "a dangling symbolic link is in the way");
  fail_in_root(op, root_fd, path, ENOENT);
}

// Splits an in-root path into its parent ("/" at least) and a final name that can be
// created; "/", "." and ".." are not such names.
std::pair<std::string, std::string> split_last(const std::string& op, int root_fd, const std::string& path) {
  auto parts = components(path);
  if (parts.empty() || parts.back() == "..") fail_in_root(op, root_fd, path, EINVAL, "not a file name");
  return {path_of(parts, parts.size() - 1), parts.back()};
}

void write_all(int fd, const std::string& content, const std::string& shown) {
  std::size_t done = 0;
  while (done < content.size()) {
    ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw SystemError("write", shown, errno);
    done += static_cast<std::size_t>(n);
  }
}

std::string random_suffix() {
  std::uint64_t r = 0;
  if (::getrandom(&r, sizeof r, GRND_NONBLOCK) != static_cast<ssize_t>(sizeof r)) {
    // O_EXCL makes a guessable name safe, only slower to find a free one.
    static std::uint64_t counter = 0;
    r = (static_cast<std::uint64_t>(::getpid()) << 32) ^ ++counter;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(r));
  return buf;
}

// Removes a temporary file unless the rename that consumes it happened.
class TempFile {
 public:
  TempFile(int dir_fd, const std::string& shown) : dir_fd_(dir_fd) {
    for (int tries = 0;; ++tries) {
      name_ = ".schroot-tmp-" + random_suffix();
      // O_EXCL|O_NOFOLLOW: never reuse or follow anything already there.
      fd_.reset(::openat(dir_fd, name_.c_str(), O_CREAT | O_EXCL | O_NOFOLLOW | O_WRONLY | O_CLOEXEC, 0600));
      if (fd_) return;
      if (errno != EEXIST || tries > 100) throw SystemError("create temporary file for", shown, errno);
    }
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  ~TempFile() {
    fd_.reset();
    if (!consumed_) ::unlinkat(dir_fd_, name_.c_str(), 0);
  }
  int fd() const { return fd_.get(); }
  const std::string& name() const { return name_; }
  void consumed() { consumed_ = true; }

 private:
  int dir_fd_;
  std::string name_;
  UniqueFd fd_;
  bool consumed_ = false;
};

constexpr uid_t kKeepUid = static_cast<uid_t>(-1);
constexpr gid_t kKeepGid = static_cast<gid_t>(-1);

// Writes `content` to a new file in `dir_fd` (a real directory fd, not O_PATH: fsync
// needs one) and renames it over `name`. Whatever `name` was is replaced, not opened.
void replace_at(int dir_fd, const std::string& name, const std::string& content, mode_t mode, uid_t uid,
                gid_t gid, bool durable, const std::string& shown) {
  TempFile tmp(dir_fd, shown);
  write_all(tmp.fd(), content, shown);
  // chown before chmod: chown clears set-id bits.
  if ((uid != kKeepUid || gid != kKeepGid) && ::fchown(tmp.fd(), uid, gid) != 0)
    throw SystemError("chown", shown, errno);
  if (::fchmod(tmp.fd(), mode) != 0) throw SystemError("chmod", shown, errno);
  if (durable && ::fsync(tmp.fd()) != 0) throw SystemError("fsync", shown, errno);
  if (::renameat(dir_fd, tmp.name().c_str(), dir_fd, name.c_str()) != 0) throw SystemError("rename", shown, errno);
  tmp.consumed();
  if (durable && ::fsync(dir_fd) != 0) throw SystemError("fsync directory of", shown, errno);
}

// True when `dest` in the root already is a regular file equal to what we would write.
bool same_in_root(int root_fd, const std::string& dest, const std::string& content, const struct stat& want) {
  auto [dir, name] = split_last("copy to", root_fd, dest);
  int err = 0;
  UniqueFd parent = try_resolve(root_fd, dir, O_PATH | O_DIRECTORY, err);
  if (!parent) return false;
  UniqueFd file(::openat(parent.get(), name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
  struct stat st;
  if (!file || ::fstat(file.get(), &st) != 0) return false;
  if (!S_ISREG(st.st_mode) || (st.st_mode & 07777) != (want.st_mode & 07777) || st.st_uid != want.st_uid ||
      st.st_gid != want.st_gid || static_cast<std::size_t>(st.st_size) != content.size())
    return false;
  // Reopen the O_PATH fd itself: the type was checked on this very inode.
  UniqueFd readable(::open(("/proc/self/fd/" + std::to_string(file.get())).c_str(), O_RDONLY | O_CLOEXEC));
  if (!readable) return false;
  return read_all(readable.get(), dest) == content;
}

std::pair<std::string, std::string> split_host(const std::string& path) {
  auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return {".", path};
  return {slash == 0 ? "/" : path.substr(0, slash), path.substr(slash + 1)};
}

std::uint64_t mount_id_of(int dirfd, const char* path, int flags, const std::string& shown) {
  struct statx stx;
  if (::statx(dirfd, path, flags | AT_SYMLINK_NOFOLLOW, STATX_MNT_ID, &stx) != 0)
    throw SystemError("stat", shown, errno);
  return stx.stx_mnt_id;
}

[[noreturn]] void fail_mount_point(const std::string& path) {
  throw SystemError("not removing (still a mount point)", path, EBUSY);
}

// Removing a tree a user made (their session's upper dir, say) must work at any depth
// (issue 9: 1,100 levels made `-e` fail): one fd per level runs out of fds, a path
// string per level is quadratic in the depth. So the walk holds one directory open,
// steps down by name and back up through "..", and keeps only each level's (dev, ino)
// to check that ".." is still the directory it came down from: a user renaming a
// directory out of the tree mid-walk stops the walk instead of steering it elsewhere.
// Nothing is removed by a name that was checked earlier: an entry is unlinked (never
// a directory, a mount point gives EBUSY) or rmdir'ed (only when empty and not a mount
// point), both atomic in the kernel, so a racing rename can only make us skip or
// revisit an entry. A directory is revisited from its start after each subdirectory.
struct DirId {
  dev_t dev;
  ino_t ino;
};

struct DirStat {
  DirId id;
  std::uint64_t mnt_id;
};

// `shown` names the directory in an error; called only then (naming costs a readlink).
template <typename Shown>
DirStat dir_stat(int fd, Shown shown) {
  struct statx stx;
  if (::statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_INO | STATX_MNT_ID, &stx) != 0)
    throw SystemError("stat", shown(), errno);
  return {{makedev(stx.stx_dev_major, stx.stx_dev_minor), stx.stx_ino}, stx.stx_mnt_id};
}

class TreeRemover {
 public:
  TreeRemover(std::string shown, const RemoveProgress& progress, std::uint64_t every)
      : shown_(std::move(shown)), progress_(progress), every_(every) {}

  // Empties the directory `dir` (the top) and everything below it.
  void empty(UniqueFd dir) {
    top_real_ = fd_path(dir.get());
    top_ = dir_stat(dir.get(), [&] { return shown_; });
    std::vector<DirId> down{top_.id};  // down[d]: the directory at depth d
    for (;;) {
      const std::size_t depth = down.size() - 1;
      if (UniqueFd sub = clear_until_subdir(dir.get(), depth)) {
        // Checked as it was opened: on the top's mount.
        down.push_back(dir_stat(sub.get(), [&] { return at_depth(depth + 1); }).id);
        dir = std::move(sub);
        continue;
      }
      if (depth == 0) return;
      dir = open_parent(dir.get(), depth, down[depth - 1]);
      down.pop_back();
    }
  }

  void count_removal() {
    ++removed_;
    if (progress_ && every_ && removed_ % every_ == 0) progress_(removed_);
  }
  void report_total() {
    if (progress_ && (!every_ || removed_ % every_ != 0)) progress_(removed_);
  }

 private:
  // Removes the non-directories and empty directories of `dir` from its first entry
  // on; returns the first subdirectory that is not empty, opened, or no fd when `dir`
  // has been read to its end.
  // `dir` is always freshly opened, so it reads from its first entry without a rewind.
  UniqueFd clear_until_subdir(int dir, std::size_t depth) {
    for (;;) {
      const ssize_t n = ::getdents64(dir, buf_, sizeof buf_);
      if (n < 0) {
        const int err = errno;
        throw SystemError("read directory", at_depth(depth), err);
      }
      if (n == 0) return UniqueFd();
      for (ssize_t off = 0; off < n;) {
        const auto* e = reinterpret_cast<const struct dirent64*>(buf_ + off);
        off += e->d_reclen;
        const char* name = e->d_name;
        if (std::strcmp(name, ".") == 0 || std::strcmp(name, "..") == 0) continue;
        if (e->d_type != DT_DIR && remove_non_directory(dir, depth, name)) continue;
        if (UniqueFd sub = remove_or_open_directory(dir, depth, name)) return sub;
      }
    }
  }

  // unlink; false when `name` turned out to be a directory.
  bool remove_non_directory(int dir, std::size_t depth, const char* name) {
    if (::unlinkat(dir, name, 0) == 0) {
      count_removal();
      return true;
    }
    const int err = errno;  // saved: naming the entry calls readlink
    if (err == EISDIR) return false;
    if (err == ENOENT) return true;  // gone already (a race): nothing to do
    // EBUSY is a file bind mount: left alone, reported.
    if (err == EBUSY) fail_mount_point(entry(dir, depth, name));
    throw SystemError("unlink", entry(dir, depth, name), err);
  }

  // rmdir when empty; otherwise opens it, never through a symlink or into another mount.
  UniqueFd remove_or_open_directory(int dir, std::size_t depth, const char* name) {
    if (::unlinkat(dir, name, AT_REMOVEDIR) == 0) {
      count_removal();
      return UniqueFd();
    }
    int err = errno;
    if (err == ENOENT || err == ENOTDIR) return UniqueFd();  // raced; a later pass sees it
    if (err == EBUSY) fail_mount_point(entry(dir, depth, name));
    if (err != ENOTEMPTY && err != EEXIST) throw SystemError("rmdir", entry(dir, depth, name), err);
    // RESOLVE_NO_XDEV catches bind mounts of the same filesystem, which st_dev misses.
    UniqueFd sub(openat2_retry(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0,
                               RESOLVE_BENEATH | RESOLVE_NO_XDEV | RESOLVE_NO_SYMLINKS));
    err = errno;
    if (!sub && err == EXDEV) fail_mount_point(entry(dir, depth, name));
    if (!sub && (err == ENOENT || err == ENOTDIR || err == ELOOP)) return UniqueFd();  // raced
    if (!sub) throw SystemError("open directory", entry(dir, depth, name), err);
    const DirStat st = dir_stat(sub.get(), [&] { return entry(dir, depth, name); });
    if (st.id.dev != top_.id.dev || st.mnt_id != top_.mnt_id) fail_mount_point(entry(dir, depth, name));
    return sub;
  }

  // Steps up from the directory at `depth`; its ".." must be the one we came down from.
  UniqueFd open_parent(int dir, std::size_t depth, const DirId& expected) {
    UniqueFd parent(::openat(dir, "..", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    const int err = errno;
    if (!parent) throw SystemError("open ..", at_depth(depth), err);
    const DirId id = dir_stat(parent.get(), [&] { return at_depth(depth - 1); }).id;
    if (id.dev != expected.dev || id.ino != expected.ino)
      throw SystemError("open .. (a directory was moved out of the tree during the removal)", at_depth(depth),
                        ESTALE);
    return parent;
  }

  // For messages only: no path is built while walking.
  std::string at_depth(std::size_t depth) const {
    return depth == 0 ? shown_ : shown_ + " at depth " + std::to_string(depth);
  }
  // The entry's path as the kernel sees it now, spelled from the caller's top; when
  // that is too long to read, the top, the depth and the name.
  std::string entry(int dir, std::size_t depth, const char* name) const {
    if (depth == 0) return shown_ + "/" + name;
    const std::string now = fd_path(dir);
    if (now.compare(0, top_real_.size() + 1, top_real_ + "/") == 0)
      return shown_ + now.substr(top_real_.size()) + "/" + name;
    return at_depth(depth) + ": " + name;
  }

  const std::string shown_;  // the top as the caller spelled it
  std::string top_real_;     // and as the kernel spells it
  DirStat top_{};
  const RemoveProgress& progress_;
  const std::uint64_t every_;
  std::uint64_t removed_ = 0;
  // Small: after each subdirectory the parent is read again from its start, and what
  // one read returns beyond the first subdirectory is read for nothing.
  alignas(struct dirent64) char buf_[1024];
};

}  // namespace

UniqueFd open_path(const std::string& path, int flags) {
  UniqueFd fd(::open(path.c_str(), flags | O_CLOEXEC));
  if (!fd) throw SystemError("open", path, errno);
  return fd;
}

UniqueFd resolve_in_root(int root_fd, const std::string& path, int flags, mode_t mode) {
  UniqueFd fd(openat2_retry(root_fd, in_root_relative(path), flags, mode, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS));
  if (!fd) fail_in_root("resolve", root_fd, path.empty() ? "/" : path, errno);
  return fd;
}

UniqueFd mkdir_p_in_root(int root_fd, const std::string& path, mode_t mode) {
  const auto parts = components(path);
  UniqueFd cur = resolve_in_root(root_fd, "/", O_PATH | O_DIRECTORY);
  for (std::size_t i = 0; i < parts.size(); ++i) {
    // Resolve each prefix from the root, not from `cur`: a symlink in the component
    // must be clamped to the chroot's '/', not to its parent directory.
    const std::string prefix = path_of(parts, i + 1);
    int err = 0;
    UniqueFd next = try_resolve(root_fd, prefix, O_PATH, err);
    if (!next && err == ENOENT && parts[i] != "..") {
      // mkdirat never follows a final symlink: a planted one gives EEXIST.
      if (::mkdirat(cur.get(), parts[i].c_str(), mode) != 0 && errno != EEXIST)
        fail_in_root("mkdir", root_fd, prefix, errno);
      next = try_resolve(root_fd, prefix, O_PATH, err);
      if (!next && err == ENOENT) fail_missing("mkdir", root_fd, cur.get(), parts[i], prefix);
    }
    if (!next) fail_in_root("resolve", root_fd, prefix, err);
    require_type(next.get(), S_IFDIR, "mkdir", root_fd, prefix);
    cur = std::move(next);
  }
  return cur;
}

UniqueFd ensure_file_in_root(int root_fd, const std::string& path, mode_t mode) {
  auto [dir, name] = split_last("create file", root_fd, path);
  UniqueFd parent = mkdir_p_in_root(root_fd, dir, 0755);
  int err = 0;
  UniqueFd file = try_resolve(root_fd, path, O_PATH, err);
  if (!file && err == ENOENT) {
    // O_EXCL: fails on anything already there (a FIFO is never opened).
    UniqueFd created(::openat(parent.get(), name.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, mode));
    if (!created && errno != EEXIST) fail_in_root("create file", root_fd, path, errno);
    file = try_resolve(root_fd, path, O_PATH, err);
    if (!file && err == ENOENT) fail_missing("create file", root_fd, parent.get(), name, path);
  }
  if (!file) fail_in_root("resolve", root_fd, path, err);
  require_type(file.get(), S_IFREG, "create file", root_fd, path);
  return file;
}

void write_file_in_root(int root_fd, const std::string& path, const std::string& content, mode_t mode, uid_t uid,
                        gid_t gid) {
  auto [dir, name] = split_last("write", root_fd, path);
  UniqueFd parent = mkdir_p_in_root(root_fd, dir, 0755);
  // A readable fd on the very directory just resolved (O_DIRECTORY: never a FIFO).
  UniqueFd dir_fd(::openat(parent.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir_fd) fail_in_root("open directory", root_fd, dir, errno);
  struct stat st;
  if (::fstatat(dir_fd.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode))
    fail_in_root("write", root_fd, path, EISDIR);
  replace_at(dir_fd.get(), name, content, mode, uid, gid, /*durable=*/false,
             path + " in " + fd_path(root_fd));
}

bool copy_file_into_root(int root_fd, const std::string& dest, const std::string& host_src) {
  // O_NONBLOCK: a FIFO named as source must not hang us before the type check.
  UniqueFd src = open_path(host_src, O_RDONLY | O_NONBLOCK | O_NOCTTY);
  const struct stat st = fstat_or_throw(src.get(), host_src);
  if (!S_ISREG(st.st_mode))
    throw SystemError(std::string("copy (a ") + type_name(st.st_mode) + ", not a regular file)", host_src, EINVAL);
  const std::string content = read_all(src.get(), host_src);
  if (same_in_root(root_fd, dest, content, st)) return false;
  write_file_in_root(root_fd, dest, content, st.st_mode & 07777, st.st_uid, st.st_gid);
  return true;
}

void atomic_write_file(const std::string& path, const std::string& content, mode_t mode, bool durable) {
  auto [dir, name] = split_host(path);
  UniqueFd dir_fd = open_path(dir, O_RDONLY | O_DIRECTORY);
  replace_at(dir_fd.get(), name, content, mode, kKeepUid, kKeepGid, durable, path);
}

bool publish_exclusive(const std::string& path, const std::string& content, mode_t mode, bool durable) {
  auto [dir, name] = split_host(path);
  UniqueFd dir_fd = open_path(dir, O_RDONLY | O_DIRECTORY);
  TempFile tmp(dir_fd.get(), path);
  write_all(tmp.fd(), content, path);
  if (::fchmod(tmp.fd(), mode) != 0) throw SystemError("chmod", path, errno);
  if (durable && ::fsync(tmp.fd()) != 0) throw SystemError("fsync", path, errno);
  // link(2) fails with EEXIST instead of replacing: an atomic create-if-absent of a
  // complete file. A crash leaves either nothing or the whole file under `name`.
  if (::linkat(dir_fd.get(), tmp.name().c_str(), dir_fd.get(), name.c_str(), 0) != 0) {
    if (errno == EEXIST) return false;
    throw SystemError("link", path, errno);
  }
  if (durable && ::fsync(dir_fd.get()) != 0) throw SystemError("fsync directory of", path, errno);
  return true;
}

std::string read_all(int fd, const std::string& shown, std::size_t chunk) {
  std::string out;
  char buf[65536];
  chunk = std::min(chunk, sizeof buf);
  for (;;) {
    ssize_t n = ::read(fd, buf, chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw SystemError("read", shown, errno);
    if (n == 0) return out;
    out.append(buf, static_cast<std::size_t>(n));
  }
}

std::string read_file(const std::string& path) {
  UniqueFd fd = open_path(path, O_RDONLY | O_NOCTTY);
  return read_all(fd.get(), path);
}

std::optional<std::string> read_file_if_exists(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NOCTTY | O_CLOEXEC));
  if (!fd && errno == ENOENT) return std::nullopt;
  if (!fd) throw SystemError("open", path, errno);
  return read_all(fd.get(), path);
}

std::string fd_path(int fd) {
  char buf[4096];
  const std::string link = "/proc/self/fd/" + std::to_string(fd);
  ssize_t n = ::readlink(link.c_str(), buf, sizeof buf);
  if (n < 0 || n == static_cast<ssize_t>(sizeof buf)) return "fd " + std::to_string(fd);
  return std::string(buf, static_cast<std::size_t>(n));
}

std::string read_sysctl(const std::string& path) {
  UniqueFd fd = open_path(path, O_RDONLY | O_NOCTTY);
  return read_all(fd.get(), path, 256);
}

std::string boot_id() {
  // It never changes while we run.
  static const std::string cached = [] {
    std::string id = read_sysctl("/proc/sys/kernel/random/boot_id");
    while (!id.empty() && (id.back() == '\n' || id.back() == ' ')) id.pop_back();
    return id;
  }();
  return cached;
}

void remove_tree(const std::string& path, const RemoveProgress& progress, std::uint64_t progress_every) {
  TreeRemover remover(path, progress, progress_every);
  auto [parent, name] = split_host(path);
  if (name.empty() || name == "." || name == "..") throw SystemError("remove", path, EINVAL);
  UniqueFd parent_fd(::open(parent.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!parent_fd && errno == ENOENT) return;  // a missing path, whichever part is missing
  if (!parent_fd) throw SystemError("open", parent, errno);
  struct stat st;
  if (::fstatat(parent_fd.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return;
    throw SystemError("stat", path, errno);
  }
  if (!S_ISDIR(st.st_mode)) {
    if (::unlinkat(parent_fd.get(), name.c_str(), 0) != 0 && errno != ENOENT) throw SystemError("unlink", path, errno);
    remover.count_removal();
    remover.report_total();
    return;
  }
  const std::uint64_t mnt_id = mount_id_of(parent_fd.get(), "", AT_EMPTY_PATH, parent);
  // A user can refill the tree while we walk it: a few rounds, then give up.
  for (int round = 0;; ++round) {
    UniqueFd top(openat2_retry(parent_fd.get(), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0,
                               RESOLVE_BENEATH | RESOLVE_NO_XDEV | RESOLVE_NO_SYMLINKS));
    if (!top && errno == EXDEV) fail_mount_point(path);
    if (!top && errno == ENOENT) break;
    if (!top) throw SystemError("open directory", path, errno);
    if (mount_id_of(top.get(), "", AT_EMPTY_PATH, path) != mnt_id) fail_mount_point(path);
    remover.empty(std::move(top));
    if (::unlinkat(parent_fd.get(), name.c_str(), AT_REMOVEDIR) == 0) {
      remover.count_removal();
      break;
    }
    if (errno == ENOENT) break;
    if (errno == EBUSY) fail_mount_point(path);
    if ((errno != ENOTEMPTY && errno != EEXIST) || round == 2) throw SystemError("rmdir", path, errno);
  }
  remover.report_total();
}

void mkdir_p(const std::string& host_path, mode_t mode) {
  // The common case, every session: the directory is there already. One stat.
  struct stat existing;
  if (::stat(host_path.c_str(), &existing) == 0 && S_ISDIR(existing.st_mode)) return;
  const auto parts = components(host_path);
  std::string prefix = host_path.empty() || host_path[0] != '/' ? "." : "";
  for (const auto& p : parts) {
    prefix += "/" + p;
    if (::mkdir(prefix.c_str(), mode) == 0) continue;
    const int err = errno;
    struct stat st;
    if (::stat(prefix.c_str(), &st) != 0) throw SystemError("mkdir", prefix, err);
    if (!S_ISDIR(st.st_mode)) throw SystemError("mkdir", prefix, ENOTDIR);
  }
}

}  // namespace schroot::sys
