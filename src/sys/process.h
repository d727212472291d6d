// Processes: finding and ending the processes whose root directory is a session's
// root (starting and waiting for them is src/sys/command.h).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "src/sys/unique_fd.h"

namespace schroot::sys {

// The identity of a directory as a process's root: device and inode, and the mount it
// was reached through (0 where the kernel does not say), which tells apart bind mounts
// of one directory (two directory sessions of one chroot share device and inode).
struct DirIdentity {
  dev_t dev = 0;
  ino_t ino = 0;
  std::uint64_t mount_id = 0;
};
// Read from the inode the kernel already has (AT_STATX_DONT_SYNC): a user's FUSE
// filesystem is never asked, so it cannot stall a scan. nullopt when fstat fails.
std::optional<DirIdentity> identity_of(int fd);
// The same for what `path` leads to, following links (a /proc magic link included).
std::optional<DirIdentity> identity_at(const std::string& path);

// A session root, opened by the caller from outside the chroot: the run dir's mount
// directory, the session's name in it (its id) and what our mount namespace has
// mounted there. Holding the fds pins what is compared.
struct SessionRoot {
  UniqueFd mount_dir;
  std::string name;
  UniqueFd root;
};
// Opens `mount_location` (the session's mount location in the run dir: an absolute
// path no user controls) without following a final symlink. nullopt when it does not
// exist: nothing can be rooted in it. Refuses our own root with SystemError(EINVAL).
std::optional<SessionRoot> open_session_root(const std::string& mount_location);

// A session's processes, except us: those whose root (stat through /proc/PID/root) is
// the session root: the same device, inode and mount; or, for a process in another
// mount namespace (an automatic session's, a -r command joined to it), the root of
// what that namespace has mounted at the session's place, found by going up from the
// process's root to a directory with the mount directory's device and inode and down
// by the session's name. Never by path text; a process chrooted deeper is not found.
std::vector<pid_t> processes_in_session(const SessionRoot& session);

// SIGTERM to every process in the session, SIGKILL to those still there after `grace`;
// waits up to 2 s more for them to go. Signals go through pidfds, so a reused pid is
// never hit. Returns how many processes were signalled (0 for nullopt: no session root).
int kill_processes_in_session(const std::optional<SessionRoot>& session, std::chrono::milliseconds grace);

// The general forms, for callers that define membership otherwise (the privileged test
// harness ends everything rooted anywhere under its test root). `member` is asked
// about a pid, and asked again once a pidfd pins the process.
using ProcessTest = std::function<bool(pid_t)>;
std::vector<pid_t> processes_where(const ProcessTest& member);
int kill_processes_where(const ProcessTest& member, std::chrono::milliseconds grace);

}  // namespace schroot::sys
