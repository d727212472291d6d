// One begin, end or recover of one session in progress (DESIGN.md §4, §5): it holds
// the session's lock, writes the session's record ahead of every step, takes and
// releases its source claim, runs the stages, and ends the session by replaying the
// record's undo list. Termination signals are held off while it builds or tears down.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "src/claims.h"
#include "src/environment.h"
#include "src/held_signals.h"
#include "src/lock.h"
#include "src/paths.h"
#include "src/record.h"
#include "src/session_stages.h"

namespace schroot {

// How a transaction writes its session's record.
enum class Durability {
  kDurable,    // fsynced: the record must outlive a crash, for recovery to read it
  kThrowaway,  // not synced: an automatic session's own process, whose mounts die with it
};

// Which part of a session an undo replay takes down.
enum class UndoMode {
  kEnd,                   // all of it, with the hooks' setup-stop; a busy mount is detached lazily
  kRemount,               // its mounts only (never lazily), keeping directories, union data and
                          // hooks: recovery then remounts them
  kRemountFailed,         // as kRemount, lazily: the remount of a recovery failed
};

// Undoes one recorded step that is not a hook (src/session_undo.cc). Keeping the data
// (a remount: UndoMode other than kEnd) leaves the directories, the union's upper dir,
// a snapshot and the image in place. What could not be undone goes to `failures`.
void undo_mounts_and_files(const UndoStep& u, SessionRecord& r, UndoMode mode, const Paths& paths,
                           std::vector<std::string>& failures);

// Whom a transaction works for: the session's user (-u; AUTH_USER for the setup.d
// hooks) and the caller.
struct SessionUsers {
  UserInfo target;
  UserInfo caller;
};

class SessionTransaction {
 public:
  SessionTransaction(const Paths& paths, SessionUsers users, Durability durability);

  HeldSignals& signals() { return signals_; }
  const SessionUsers& users() const { return users_; }

  // The session lock. try_lock_session() makes one attempt for an exclusive lock;
  // lock_session() waits up to `timeout`, then throws LockTimeout.
  bool try_lock_session(const std::string& id);
  void lock_session(const std::string& id, LockMode mode, std::chrono::milliseconds timeout);
  FileLock& session_lock() { return *session_lock_; }

  // Takes the exclusive lock of a new session's name. A record under this name whose
  // lock nobody held is a dead process's session in the way: it is rolled back (a live
  // -b session keeps its name: UserError).
  void take_name(const std::string& id);

  // Writes the record ahead (state beginning, whole undo list) and takes the source
  // claim, both under manage.lock; waits up to `source_timeout` seconds for a
  // conflicting claim. Sessions of dead processes in the way are rolled back.
  void write_ahead(SessionRecord& r, const ChrootDef& def, int source_timeout);

  // Runs the begin (or recover) stages in order; throws on the first failure or
  // when a held signal has come.
  void run_stages(SessionRecord& r, SessionBuild& build);

  void mark(SessionRecord& r, SessionState state);

  // Replays the undo list in reverse ("already gone" counts as done), with `status`
  // for the hooks' setup-stop. Returns what could not be undone, or "".
  std::string undo(SessionRecord& r, const ChrootDef& def, const std::string& status, UndoMode mode);

  // Ends the session whose lock this transaction holds: kill what runs inside, undo,
  // and remove the record, the claim and the lock file — or mark it broken with the
  // reason and throw UserError.
  void finish(SessionRecord& r, const ChrootDef& def, const std::string& status);

 private:
  void end_session(FileLock& lock, SessionRecord& r, const ChrootDef& def, const std::string& status,
                   const SessionUsers& users, Durability durability);
  std::string replay_undo(SessionRecord& r, const ChrootDef& def, const std::string& status, UndoMode mode,
                          const SessionUsers& users);
  void run_stop_hook(const UndoStep& u, SessionRecord& r, const ChrootDef& def, const std::string& status,
                     const SessionUsers& users);
  Environment hook_environment_of(const SessionRecord& r, const ChrootDef& def, const SessionUsers& users,
                                  const std::string& mount_device) const;

  std::vector<std::string> claim_or_create(SessionRecord& r, const ChrootDef& def, std::vector<std::string>& stale);
  bool holder_is_live(const std::string& id, std::vector<std::string>& stale);
  bool roll_back_if_stale(const std::string& id);
  void write_state(SessionRecord& r, SessionState state, const std::string& reason, Durability durability);
  void remove_record_and_claim(const SessionRecord& r, const ChrootDef& def);
  void reattach_images(const SessionRecord& r);

  const Paths& paths_;
  SessionUsers users_;
  Durability durability_;
  RecordStore records_;
  ClaimStore claims_;
  HeldSignals signals_;
  std::optional<FileLock> session_lock_;
};

}  // namespace schroot
