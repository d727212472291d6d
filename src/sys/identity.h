// The identity of a process as recorded at a session's begin. A pid alone names
// whoever holds that number now (pids wrap; a user can steer a process of their own
// onto a dead session's pid), so it is paired with the process's start time and
// its mount namespace's inode (and the namespace id where the kernel has one), and
// every check goes through a pidfd, which cannot be redirected to a reused pid.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>

#include "src/sys/unique_fd.h"

namespace schroot::sys {

struct ProcessIdentity {
  pid_t pid = 0;
  uint64_t start_time = 0;  // /proc/PID/stat field 22: clock ticks since boot
  uint64_t mnt_ns_dev = 0;  // the mount namespace's nsfs inode ...
  uint64_t mnt_ns_ino = 0;
  uint64_t mnt_ns_id = 0;   // ... and its 64-bit id (NS_GET_MNTNS_ID, Linux 6.12+; 0 = none)

  // This process, now (after any unshare of its mount namespace).
  static ProcessIdentity of_self();
};

// The start time of process `pid` (from /proc/PID/stat); nullopt when it is gone.
std::optional<uint64_t> process_start_time(pid_t pid);

// Is the recorded process still alive, and the one at its pid?
bool is_alive(const ProcessIdentity& id);

// Opens the recorded process's mount namespace, checked after opening: the process
// at the pid is the one recorded (start time, and still alive through a pidfd taken
// before the check) and the namespace is the recorded one (inode and id). Returns an
// empty fd when any check fails: the session is stale, not a target.
UniqueFd open_mount_namespace(const ProcessIdentity& id);

}  // namespace schroot::sys
