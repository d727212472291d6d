#include "src/sys/fs.h"

#include <dirent.h>
#include <errno.h>
#include <linux/openat2.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
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

std::string join(const std::vector<std::string>& parts, std::size_t n) {
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
  return {join(parts, parts.size() - 1), parts.back()};
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

std::string read_all(int fd, const std::string& shown) {
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw SystemError("read", shown, errno);
    if (n == 0) return out;
    out.append(buf, static_cast<std::size_t>(n));
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

// Empties the directory `dir_fd` (shown as `shown`) which is on mount `mnt_id`, device `dev`.
void remove_contents(int dir_fd, std::uint64_t mnt_id, dev_t dev, const std::string& shown) {
  std::vector<std::string> names;
  {
    DIR* d = ::fdopendir(::dup(dir_fd));
    if (!d) throw SystemError("open directory", shown, errno);
    ::rewinddir(d);  // the dup shares the offset with dir_fd
    while (struct dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") names.push_back(std::move(n));
    }
    ::closedir(d);
  }
  for (const auto& name : names) {
    const std::string child = shown + "/" + name;
    struct stat st;
    if (::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) continue;
      throw SystemError("stat", child, errno);
    }
    if (S_ISDIR(st.st_mode)) {
      // RESOLVE_NO_XDEV catches bind mounts of the same filesystem, which st_dev misses.
      UniqueFd sub(openat2_retry(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW,
                                 0, RESOLVE_BENEATH | RESOLVE_NO_XDEV | RESOLVE_NO_SYMLINKS));
      if (!sub && errno == EXDEV) fail_mount_point(child);
      if (!sub && errno == ENOENT) continue;
      if (!sub) throw SystemError("open directory", child, errno);
      if (fstat_or_throw(sub.get(), child).st_dev != dev || mount_id_of(sub.get(), "", AT_EMPTY_PATH, child) != mnt_id)
        fail_mount_point(child);
      remove_contents(sub.get(), mnt_id, dev, child);
      sub.reset();
      if (::unlinkat(dir_fd, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT)
        throw SystemError(errno == EBUSY ? "not removing (still a mount point)" : "remove", child, errno);
    } else if (::unlinkat(dir_fd, name.c_str(), 0) != 0 && errno != ENOENT) {
      // EBUSY here is a file bind mount: left alone, reported.
      throw SystemError(errno == EBUSY ? "not removing (still a mount point)" : "remove", child, errno);
    }
  }
}

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
    const std::string prefix = join(parts, i + 1);
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

std::string read_file(const std::string& path) {
  UniqueFd fd = open_path(path, O_RDONLY | O_NOCTTY);
  return read_all(fd.get(), path);
}

std::string fd_path(int fd) {
  char buf[4096];
  const std::string link = "/proc/self/fd/" + std::to_string(fd);
  ssize_t n = ::readlink(link.c_str(), buf, sizeof buf);
  if (n < 0 || n == static_cast<ssize_t>(sizeof buf)) return "fd " + std::to_string(fd);
  return std::string(buf, static_cast<std::size_t>(n));
}

std::string boot_id() {
  std::string id = read_file("/proc/sys/kernel/random/boot_id");
  while (!id.empty() && (id.back() == '\n' || id.back() == ' ')) id.pop_back();
  return id;
}

void remove_tree(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return;
    throw SystemError("stat", path, errno);
  }
  if (!S_ISDIR(st.st_mode)) {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) throw SystemError("remove", path, errno);
    return;
  }
  auto [parent, name] = split_host(path);
  if (name.empty() || name == "." || name == "..") throw SystemError("remove", path, EINVAL);
  UniqueFd parent_fd = open_path(parent, O_PATH | O_DIRECTORY);
  const std::uint64_t mnt_id = mount_id_of(parent_fd.get(), "", AT_EMPTY_PATH, parent);
  UniqueFd top(openat2_retry(parent_fd.get(), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0,
                             RESOLVE_BENEATH | RESOLVE_NO_XDEV | RESOLVE_NO_SYMLINKS));
  if (!top && errno == EXDEV) fail_mount_point(path);
  if (!top && errno == ENOENT) return;
  if (!top) throw SystemError("open directory", path, errno);
  const struct stat top_st = fstat_or_throw(top.get(), path);
  if (mount_id_of(top.get(), "", AT_EMPTY_PATH, path) != mnt_id) fail_mount_point(path);
  remove_contents(top.get(), mnt_id, top_st.st_dev, path);
  top.reset();
  if (::unlinkat(parent_fd.get(), name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT)
    throw SystemError("remove", path, errno);
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
