#include "src/lock.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "src/log.h"
#include "src/sys/backoff.h"
#include "src/text.h"

namespace schroot {

namespace {

// The lock is polled (F_OFD_SETLKW would need SIGALRM for a deadline): 1 ms doubling to 50 ms.
constexpr std::chrono::milliseconds kFirstPoll{1};
constexpr std::chrono::milliseconds kLongestPoll{50};

struct flock whole_file(short type) {
  struct flock l;
  std::memset(&l, 0, sizeof l);
  l.l_type = type;
  l.l_whence = SEEK_SET;  // l_start = l_len = 0: the whole file, however it grows
  l.l_pid = 0;            // required by the OFD commands
  return l;
}

short lock_type(LockMode mode) { return mode == LockMode::kShared ? F_RDLCK : F_WRLCK; }

sys::UniqueFd open_lock_file(const std::string& path) {
  // O_NOFOLLOW: a symlink planted in the lock directory must not make us create or
  // lock a file elsewhere.
  sys::UniqueFd fd(::open(path.c_str(), O_CREAT | O_RDWR | O_CLOEXEC | O_NOFOLLOW, 0644));
  if (!fd) throw SystemError("open lock file", path, errno);
  return fd;
}

// true: granted; false: somebody holds a conflicting lock.
bool try_lock(int fd, LockMode mode, const std::string& path) {
  struct flock l = whole_file(lock_type(mode));
  for (;;) {
    if (::fcntl(fd, F_OFD_SETLK, &l) == 0) return true;
    if (errno == EAGAIN || errno == EACCES) return false;
    if (errno != EINTR) throw SystemError("lock", path, errno);
  }
}

std::string holders_dir(const std::string& path) { return path + ".holders"; }

// A lock file may be removed by its last holder (a session's lock when the session
// ends). Whoever then gets the lock on the removed inode must not act on it: the
// path may name a new file already. True when fd is still the file at path.
bool still_current(int fd, const std::string& path) {
  struct stat by_fd, by_path;
  if (::fstat(fd, &by_fd) != 0 || by_fd.st_nlink == 0) return false;
  if (::stat(path.c_str(), &by_path) != 0) return false;
  return by_fd.st_dev == by_path.st_dev && by_fd.st_ino == by_path.st_ino;
}

// One attempt to lock the file at `path` through `fd`. A lock file removed meanwhile
// (see still_current) is opened again at `path` and tried at once.
bool lock_current_file(sys::UniqueFd& fd, LockMode mode, const std::string& path) {
  while (try_lock(fd.get(), mode, path)) {
    if (still_current(fd.get(), path)) return true;
    fd = open_lock_file(path);
  }
  return false;
}

bool alive(pid_t pid) { return ::kill(pid, 0) == 0 || errno == EPERM; }

std::string describe_timeout(std::chrono::milliseconds timeout) {
  auto ms = timeout.count();
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + " s";
  return std::to_string(ms) + " ms";
}

}  // namespace

FileLock::FileLock(sys::UniqueFd fd, std::string path, LockMode mode)
    : fd_(std::move(fd)), path_(std::move(path)), mode_(mode), owner_(::getpid()) {
  note_holder();
}

FileLock FileLock::acquire(const std::string& path, LockMode mode, std::chrono::milliseconds timeout,
                           const std::string& what) {
  sys::UniqueFd fd = open_lock_file(path);
  sys::Backoff wait(timeout, kFirstPoll, kLongestPoll);
  do {
    if (lock_current_file(fd, mode, path)) return FileLock(std::move(fd), path, mode);
  } while (wait.next());
  std::vector<pid_t> pids = holder_pids(path);
  std::string held = "held by an unknown process";
  if (!pids.empty()) {
    std::vector<std::string> listed;
    for (pid_t pid : pids) listed.push_back(std::to_string(pid));
    held = (pids.size() == 1 ? "held by pid " : "held by pids ") + join(listed, ", ");
  }
  throw LockTimeout("timed out after " + describe_timeout(timeout) + " waiting for " + what + " (lock " +
                        path + " " + held + ")",
                    std::move(pids));
}

std::optional<FileLock> FileLock::try_acquire(const std::string& path, LockMode mode) {
  sys::UniqueFd fd = open_lock_file(path);
  if (!lock_current_file(fd, mode, path)) return std::nullopt;
  return FileLock(std::move(fd), path, mode);
}

void FileLock::remove_holder_notes(const std::string& path) {
  const std::string dir_path = holders_dir(path);
  if (DIR* dir = ::opendir(dir_path.c_str())) {
    while (struct dirent* e = ::readdir(dir))
      if (e->d_name[0] != '.') ::unlinkat(::dirfd(dir), e->d_name, 0);
    ::closedir(dir);
  }
  ::rmdir(dir_path.c_str());
}

void FileLock::remove_file() {
  // Unlinked while we hold it: waiters on this inode see it gone (still_current)
  // and start over on a new file.
  if (::unlink(path_.c_str()) != 0 && errno != ENOENT) throw SystemError("remove lock file", path_, errno);
  removed_ = true;
}

bool FileLock::is_free(const std::string& path, LockMode mode) {
  sys::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd) {
    if (errno == ENOENT) return true;
    throw SystemError("open lock file", path, errno);
  }
  // A fresh open file description: every existing lock, ours included, is somebody else's.
  struct flock l = whole_file(lock_type(mode));
  if (::fcntl(fd.get(), F_OFD_GETLK, &l) != 0) throw SystemError("test lock", path, errno);
  return l.l_type == F_UNLCK;
}

std::vector<pid_t> FileLock::holder_pids(const std::string& path) {
  std::vector<pid_t> pids;
  const std::string dir_path = holders_dir(path);
  DIR* dir = ::opendir(dir_path.c_str());
  if (!dir) return pids;
  // Nobody holds the lock: every note is stale (its writer was killed, its pid maybe
  // reused since).
  const bool nobody = is_free(path, LockMode::kExclusive);
  std::vector<std::string> stale;
  while (struct dirent* e = ::readdir(dir)) {
    if (e->d_name[0] == '.') continue;
    char* end = nullptr;
    long pid = std::strtol(e->d_name, &end, 10);
    if (end == e->d_name || pid <= 0) continue;
    if (nobody || !alive(static_cast<pid_t>(pid))) {
      stale.push_back(dir_path + "/" + e->d_name);
    } else {
      pids.push_back(static_cast<pid_t>(pid));
    }
  }
  ::closedir(dir);
  for (const auto& s : stale) ::unlink(s.c_str());  // a note already gone is fine
  std::sort(pids.begin(), pids.end());
  pids.erase(std::unique(pids.begin(), pids.end()), pids.end());
  return pids;
}

// Written after the lock is taken; failure only costs a less helpful message.
void FileLock::note_holder() {
  const std::string dir = holders_dir(path_);
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) return;
  // <pid>.<fd>: two locks of one process on one file (shared + shared) get two notes.
  std::string note = dir + "/" + std::to_string(owner_) + "." + std::to_string(fd_.get());
  sys::UniqueFd f(::open(note.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0644));
  if (f) note_ = std::move(note);
}

FileLock::FileLock(FileLock&& o) noexcept
    : fd_(std::move(o.fd_)),
      path_(std::move(o.path_)),
      mode_(o.mode_),
      owner_(o.owner_),
      note_(std::move(o.note_)),
      removed_(o.removed_) {
  o.note_.clear();
}

FileLock& FileLock::operator=(FileLock&& o) noexcept {
  if (this != &o) {
    release();
    fd_ = std::move(o.fd_);
    path_ = std::move(o.path_);
    mode_ = o.mode_;
    owner_ = o.owner_;
    note_ = std::move(o.note_);
    removed_ = o.removed_;
    o.note_.clear();
  }
  return *this;
}

FileLock::~FileLock() { release(); }

void FileLock::release() {
  if (!fd_) return;
  if (::getpid() == owner_) {
    if (!note_.empty()) ::unlink(note_.c_str());
    // After remove_file() the holders' notes go too: we held the lock exclusively,
    // so any other note is a dead holder's.
    if (removed_) remove_holder_notes(path_);
    // Unlock explicitly: closing is not enough while a forked child still has the fd.
    struct flock l = whole_file(F_UNLCK);
    if (::fcntl(fd_.get(), F_OFD_SETLK, &l) != 0) {
      log_warning("unlock " + path_ + ": " + std::strerror(errno) + "; ignoring");
    }
  }
  note_.clear();
  fd_.reset();
}

void FileLock::downgrade_to_shared() {
  if (!fd_) throw UserError("downgrade lock " + path_ + ": not held");
  if (mode_ == LockMode::kShared) return;
  // Converting our own lock never conflicts: the kernel swaps the type atomically.
  struct flock l = whole_file(F_RDLCK);
  if (::fcntl(fd_.get(), F_OFD_SETLK, &l) != 0) throw SystemError("downgrade lock", path_, errno);
  mode_ = LockMode::kShared;
}

void FileLock::upgrade_to_exclusive(std::chrono::milliseconds timeout, const std::string& what) {
  if (!fd_) throw UserError("upgrade lock " + path_ + ": not held");
  if (mode_ == LockMode::kExclusive) return;
  sys::Backoff wait(timeout, kFirstPoll, kLongestPoll);
  // The same open file description: granted once no other holder shares the file.
  while (!try_lock(fd_.get(), LockMode::kExclusive, path_)) {
    if (!wait.next())
      throw LockTimeout("timed out after " + describe_timeout(timeout) + " waiting for " + what + " (lock " + path_ +
                            " shared with other holders)",
                        holder_pids(path_));
  }
  mode_ = LockMode::kExclusive;
}

}  // namespace schroot
