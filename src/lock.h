// Whole-file fcntl open-file-description (OFD) locks with a deadline, polled with backoff
// (no SIGALRM, no F_OFD_SETLKW). Holders note their pid beside the lock for messages only.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "src/error.h"
#include "src/sys/unique_fd.h"

namespace schroot {

enum class LockMode { kShared, kExclusive };

// A lock wait ran out of time. The message names what was waited for, the lock file and
// the pids noted by its holders (when any is alive).
class LockTimeout : public UserError {
 public:
  LockTimeout(const std::string& msg, std::vector<pid_t> holders)
      : UserError(msg), holders_(std::move(holders)) {}
  const std::vector<pid_t>& holders() const { return holders_; }

 private:
  std::vector<pid_t> holders_;
};

// An OFD lock on a whole file, released by release() or the destructor.
//
// OFD semantics, unlike POSIX fcntl locks: two FileLocks in one process conflict like two
// processes do, and closing another fd of the same file does not drop the lock. The lock
// belongs to the open file description: a forked child inherits it, and the lock lasts
// until every copy of the fd is closed. release() unlocks explicitly only in the process
// that acquired the lock (a forked child's copy merely closes its fd), so a child cannot
// drop its parent's lock by unwinding. The fd is O_CLOEXEC, so exec'd programs do not
// hold the lock.
class FileLock {
 public:
  // Opens (creating, 0644) the lock file, whose directory must exist, and waits up to
  // `timeout`, polling F_OFD_SETLK every 1 ms doubling to 50 ms. Throws LockTimeout when
  // the lock is still not granted at the deadline, SystemError on any other failure.
  static FileLock acquire(const std::string& path, LockMode mode, std::chrono::milliseconds timeout,
                          const std::string& what);
  // One attempt: nullopt when somebody holds a conflicting lock.
  static std::optional<FileLock> try_acquire(const std::string& path, LockMode mode);
  // Would a lock of `mode` be granted right now, to anybody (this process's own FileLocks
  // count as holders)? True when the file does not exist.
  static bool is_free(const std::string& path, LockMode mode = LockMode::kExclusive);
  // Pids noted by the current holders, alive ones only, sorted. Notes of dead processes,
  // and every note while nobody holds the lock, are removed on the way.
  static std::vector<pid_t> holder_pids(const std::string& path);

  FileLock(FileLock&& o) noexcept;
  FileLock& operator=(FileLock&& o) noexcept;
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;
  ~FileLock();  // release(); never throws

  // Exclusive → shared in place, without a moment where the lock is free.
  void downgrade_to_shared();
  // Back to exclusive on the same file: waits (polling) until the other shared
  // holders are gone, up to `timeout`, then throws LockTimeout.
  void upgrade_to_exclusive(std::chrono::milliseconds timeout, const std::string& what);
  // Unlocks (in the acquiring process) and closes the fd; then fd() is -1.
  void release();
  // Removes the lock file while holding the lock (its last use: a session that has
  // ended). Acquirers verify after locking that the file is still the one at the
  // path, so nobody acts on a removed lock.
  void remove_file();
  // Removes <path>.holders/ and the notes in it (its lock file is gone or unused).
  static void remove_holder_notes(const std::string& path);

  LockMode mode() const { return mode_; }
  const std::string& path() const { return path_; }
  int fd() const { return fd_.get(); }

 private:
  FileLock(sys::UniqueFd fd, std::string path, LockMode mode);
  void note_holder();

  sys::UniqueFd fd_;
  std::string path_;
  LockMode mode_ = LockMode::kExclusive;
  pid_t owner_ = 0;       // the process that took the lock
  std::string note_;      // <path>.holders/<pid>.<fd>; empty when none was written
  bool removed_ = false;  // remove_file() was called
};

}  // namespace schroot
