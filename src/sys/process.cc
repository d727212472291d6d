#include "src/sys/process.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <memory>

#include "src/error.h"
#include "src/sys/command.h"
#include "src/sys/unique_fd.h"

namespace schroot::sys {

namespace {

using Clock = std::chrono::steady_clock;

// The root directory of `pid`, through the /proc magic link (which needs no path text
// and works whatever our own root is): its identity (one statx) or an O_PATH fd;
// empty when the process is gone, a zombie, or not ours to inspect.
std::string root_link_of(pid_t pid) { return "/proc/" + std::to_string(pid) + "/root"; }

UniqueFd open_root_of(pid_t pid) {
  return UniqueFd(::open(root_link_of(pid).c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
}

bool same_dir(const DirIdentity& a, const DirIdentity& b) { return a.dev == b.dev && a.ino == b.ino; }

// Same directory through the same mount. A zero mount id (a kernel before 5.8) falls
// back to device and inode.
bool same_root(const DirIdentity& a, const DirIdentity& b) {
  return same_dir(a, b) && (a.mount_id == 0 || b.mount_id == 0 || a.mount_id == b.mount_id);
}

// Is `root` (a process's root, in whatever mount namespace) the root of what that
// namespace has mounted at the session's place? Only ".." is walked: from a mount
// root it leaves the tree for the mount directory above it, and the session's name
// is looked up only in a directory that is that mount directory (device and inode).
bool is_session_root_in_its_namespace(int root, const DirIdentity& root_id, const SessionRoot& s,
                                      const DirIdentity& mount_dir_id) {
  UniqueFd parent(::openat(root, "..", O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!parent) return false;
  auto parent_id = identity_of(parent.get());
  if (!parent_id || !same_dir(*parent_id, mount_dir_id)) return false;
  UniqueFd there(::openat(parent.get(), s.name.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!there) return false;
  auto there_id = identity_of(there.get());
  // The mount id proves `root` is the mount at the session's place, not a directory
  // of the same filesystem reached otherwise.
  return there_id && same_root(*there_id, root_id);
}

// What one scan compares each process's root with.
struct ScanIds {
  DirIdentity session, mount_dir, own_root;
};

bool in_session(pid_t pid, const SessionRoot& s, const ScanIds& ids) {
  auto first = identity_at(root_link_of(pid));
  if (!first) return false;
  if (same_root(*first, ids.session)) return true;
  // Most processes on a host: rooted at the root directory of our root file system
  // (in whatever mount namespace), which is never a session's (open_session_root
  // refuses it), so no ".." of theirs need be walked.
  if (same_dir(*first, ids.own_root)) return false;
  UniqueFd root = open_root_of(pid);
  if (!root) return false;
  auto root_id = identity_of(root.get());  // it may have changed root since
  if (!root_id) return false;
  if (same_root(*root_id, ids.session)) return true;
  return is_session_root_in_its_namespace(root.get(), *root_id, s, ids.mount_dir);
}

struct Target {
  pid_t pid;
  UniqueFd pidfd;
  bool gone = false;
  bool signalled = false;
};

// New targets: a pidfd pins the process, and membership is checked again after it
// was opened, so the pidfd cannot name a different process that reused the pid.
void add_targets(const ProcessTest& member, std::vector<Target>& targets) {
  for (pid_t pid : processes_where(member)) {
    if (std::any_of(targets.begin(), targets.end(), [&](const Target& t) { return t.pid == pid && !t.gone; }))
      continue;
    UniqueFd fd = open_pidfd(pid);
    if (!fd || !member(pid)) continue;
    targets.push_back(Target{pid, std::move(fd)});
  }
}

void signal_all(std::vector<Target>& targets, int sig) {
  for (auto& t : targets) {
    if (t.gone) continue;
    if (signal_pidfd(t.pidfd.get(), sig) == 0)
      t.signalled = true;
    else if (errno == ESRCH)
      t.gone = true;
  }
}

// Waits until every target has exited (its pidfd becomes readable) or `deadline`.
bool wait_gone(std::vector<Target>& targets, Clock::time_point deadline) {
  for (;;) {
    std::vector<pollfd> fds;
    std::vector<Target*> which;
    for (auto& t : targets) {
      if (t.gone) continue;
      fds.push_back(pollfd{t.pidfd.get(), POLLIN, 0});
      which.push_back(&t);
    }
    if (fds.empty()) return true;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return false;
    int n = ::poll(fds.data(), fds.size(), static_cast<int>(left));
    if (n < 0 && errno != EINTR) return false;
    for (std::size_t i = 0; n > 0 && i < fds.size(); ++i)
      if (fds[i].revents) which[i]->gone = true;
  }
}

}  // namespace

namespace {
std::optional<DirIdentity> statx_identity(int dirfd, const char* path, int flags) {
  struct statx stx;
  if (::statx(dirfd, path, flags | AT_STATX_DONT_SYNC, STATX_INO | STATX_MNT_ID, &stx) != 0) return std::nullopt;
  DirIdentity id;
  id.dev = ::makedev(stx.stx_dev_major, stx.stx_dev_minor);
  id.ino = static_cast<ino_t>(stx.stx_ino);
  if (stx.stx_mask & STATX_MNT_ID) id.mount_id = stx.stx_mnt_id;
  return id;
}
}  // namespace

std::optional<DirIdentity> identity_of(int fd) { return statx_identity(fd, "", AT_EMPTY_PATH); }

std::optional<DirIdentity> identity_at(const std::string& path) {
  return statx_identity(AT_FDCWD, path.c_str(), 0);
}

std::optional<SessionRoot> open_session_root(const std::string& mount_location) {
  const auto slash = mount_location.find_last_of('/');
  if (mount_location.empty() || mount_location[0] != '/' || slash + 1 >= mount_location.size())
    throw SystemError("refusing to look for processes rooted at", mount_location, EINVAL);
  const std::string name = mount_location.substr(slash + 1);
  if (name == "." || name == "..")
    throw SystemError("refusing to look for processes rooted at", mount_location, EINVAL);
  SessionRoot s;
  const std::string dir = slash == 0 ? "/" : mount_location.substr(0, slash);
  s.mount_dir.reset(::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!s.mount_dir) {
    if (errno == ENOENT) return std::nullopt;
    throw SystemError("open", dir, errno);
  }
  s.root.reset(::openat(s.mount_dir.get(), name.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!s.root) {
    if (errno == ENOENT) return std::nullopt;
    throw SystemError("open", mount_location, errno);
  }
  s.name = name;
  // Every process is rooted at our own root (or below): ending them all is never meant.
  UniqueFd own(::open("/", O_PATH | O_DIRECTORY | O_CLOEXEC));
  auto own_id = own ? identity_of(own.get()) : std::nullopt;
  auto root_id = identity_of(s.root.get());
  if (!own_id || !root_id) throw SystemError("stat", mount_location, errno);
  if (same_dir(*own_id, *root_id)) throw SystemError("refusing to look for processes rooted at", mount_location, EINVAL);
  return s;
}

std::vector<pid_t> processes_where(const ProcessTest& member) {
  std::unique_ptr<DIR, int (*)(DIR*)> proc(::opendir("/proc"), ::closedir);
  if (!proc) throw SystemError("open", "/proc", errno);
  std::vector<pid_t> out;
  const pid_t self = ::getpid();
  while (struct dirent* e = ::readdir(proc.get())) {
    char* end = nullptr;
    const long pid = std::strtol(e->d_name, &end, 10);
    if (pid <= 0 || *end != '\0' || pid == self) continue;
    if (member(static_cast<pid_t>(pid))) out.push_back(static_cast<pid_t>(pid));
  }
  return out;
}

int kill_processes_where(const ProcessTest& member, std::chrono::milliseconds grace) {
  std::vector<Target> targets;
  add_targets(member, targets);
  if (targets.empty()) return 0;
  signal_all(targets, SIGTERM);
  wait_gone(targets, Clock::now() + grace);
  const auto deadline = Clock::now() + std::chrono::seconds(2);
  // Rescan before each round: a process may have forked after our scan; its child
  // gets SIGKILL straight away.
  for (int round = 0; round < 5 && Clock::now() < deadline; ++round) {
    add_targets(member, targets);
    if (std::all_of(targets.begin(), targets.end(), [](const Target& t) { return t.gone; })) break;
    signal_all(targets, SIGKILL);
    wait_gone(targets, std::min(deadline, Clock::now() + std::chrono::milliseconds(500)));
  }
  return static_cast<int>(
      std::count_if(targets.begin(), targets.end(), [](const Target& t) { return t.signalled; }));
}

namespace {
// What membership compares with, read once per scan from the fds the caller opened.
ProcessTest session_member(const SessionRoot& s) {
  auto session_id = identity_of(s.root.get());
  auto mount_dir_id = identity_of(s.mount_dir.get());
  if (!session_id || !mount_dir_id) throw SystemError("stat", "session root " + s.name, errno);
  auto own_root = identity_at("/");
  if (!own_root) throw SystemError("stat", "/", errno);
  return [&s, ids = ScanIds{*session_id, *mount_dir_id, *own_root}](pid_t pid) { return in_session(pid, s, ids); };
}
}  // namespace

std::vector<pid_t> processes_in_session(const SessionRoot& session) {
  return processes_where(session_member(session));
}

int kill_processes_in_session(const std::optional<SessionRoot>& session, std::chrono::milliseconds grace) {
  if (!session) return 0;  // no session root, nobody in it
  return kill_processes_where(session_member(*session), grace);
}

}  // namespace schroot::sys
