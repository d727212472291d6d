// Ending a session (-e) and recovering one (--recover-session): both under the
// session's exclusive lock, from its record alone (never chroot.conf).
#include <algorithm>

#include "backends/registry.h"
#include "src/error.h"
#include "src/hooks.h"
#include "src/log.h"
#include "src/pam.h"
#include "src/session.h"
#include "src/session_access.h"
#include "src/session_internal.h"
#include "src/session_transaction.h"
#include "src/sys/fs.h"
#include "src/sys/mount.h"
#include "src/sys/process.h"

namespace schroot {

namespace {

// --force: what still runs in the session (a -r command holding the lock) is
// killed, which lets its schroot release the lock.
void lock_killing_what_runs(SessionTransaction& tx, const SessionRecord& r, int timeout) {
  if (tx.try_lock_session(r.id)) return;
  int killed = sys::kill_processes_in_session(sys::open_session_root(r.mount_location), kKillGrace);
  log_warning(r.id + ": --force: killed " + std::to_string(killed) + " process(es) running in the session");
  tx.lock_session(r.id, LockMode::kExclusive, seconds(std::max(timeout, 5)));
}

// An active -b session: remount whatever is missing (after a reboot, everything),
// keeping the union's upper dir with the session's changes.
void remount(SessionTransaction& tx, SessionRecord& r, const ChrootDef& def, const Paths& paths) {
  SessionBuild build{def, backends::make_backend(def, r.source),
                     {def, paths, r.id, r.mount_location, r.source, /*recover=*/true}, {}};
  // As schroot 1.6's recover: what runs in the session is ended before remounting.
  sys::kill_processes_in_session(sys::open_session_root(r.mount_location), kKillGrace);
  const std::string reason = tx.undo(r, def, "ok", UndoMode::kRemount);
  if (!reason.empty()) throw UserError(r.id + ": cannot recover: " + reason);
  build.stages = stage_order(list_hooks(paths.setup_d()));
  try {
    tx.run_stages(r, build);
  } catch (const std::exception& e) {
    tx.undo(r, def, "fail", UndoMode::kRemountFailed);
    throw UserError(r.id + ": recovery failed: " + e.what());
  }
  r.boot_id = sys::boot_id();
  tx.mark(r, SessionState::kActive);
}

}  // namespace

void SessionManager::end(const std::string& id, const SessionRequest& req) {
  RecordStore records(paths_);
  auto [r, caller, def, timeout] = open_owned(records, id, req);
  // PAM as for every operation (schroot 1.6), before the lock is waited for.
  PamSession pam = authorise(id, def, caller, caller, paths_, caller_env_);
  try {
    SessionTransaction tx(paths_, {caller, caller}, Durability::kDurable);
    ensure_session_dirs(paths_);
    if (req.force)
      lock_killing_what_runs(tx, r, timeout);
    else
      tx.lock_session(id, LockMode::kExclusive, seconds(timeout));
    tx.signals().hold();  // from here the end runs to completion
    r = records.read(id);  // someone may have ended it while we waited
    // A broken session is ended by retrying its undo: what is gone already counts as done.
    if (r.state == SessionState::kBroken)
      log_note(id + ": retrying the undo of a broken session (" + r.broken_reason + ")");
    tx.finish(r, def, "ok");
  } catch (const std::exception& e) {
    log_session_event(paths_, {"end", id, r.chroot_name, caller, caller}, true, e.what());
    throw;
  }
  log_session_event(paths_, {"end", id, r.chroot_name, caller, caller}, false, "ok");
}

void SessionManager::recover(const std::string& id, const SessionRequest& req) {
  RecordStore records(paths_);
  OwnedSession owned = open_owned(records, id, req);
  SessionRecord& r = owned.record;
  const UserInfo& caller = owned.caller;
  const ChrootDef& def = owned.def;
  PamSession pam = authorise(id, def, caller, caller, paths_, caller_env_);
  // Under the session's lock; says what it did, for the log.
  auto recover_locked = [&]() -> std::string {
    SessionTransaction tx(paths_, {caller, caller}, Durability::kDurable);
    ensure_session_dirs(paths_);
    // An automatic session whose process has died is stale even if a command that
    // joined it (-r) still runs there, holding its lock: end what runs in it.
    if (r.automatic && !is_live(r)) end_session_processes(r);
    if (req.skip_sessions_in_use) {
      // --all-sessions: one try each; a session a live process is using is not ours to wait for.
      if (!tx.try_lock_session(id)) {
        log_note(id + ": in use by a live process; skipped");
        return "skipped (in use)";
      }
    } else {
      tx.lock_session(id, LockMode::kExclusive, seconds(owned.lock_timeout));
    }
    tx.signals().hold();
    r = records.read(id);
    if (r.state != SessionState::kActive || r.automatic) {
      // Left by a dead process (or broken): roll it back from its undo list.
      log_note(id + ": session " + to_string(r.state) + (r.automatic ? " (automatic)" : "") +
               " with no live process: rolling it back");
      tx.finish(r, def, "fail");
      return "ok (rolled back)";
    }
    // A healthy session (this boot, its root mounted) is left alone: recovering every
    // session must not disturb builds running in live ones.
    if (r.boot_id == sys::boot_id() && sys::is_mounted_at_or_below(r.mount_location)) {
      log_note(id + ": session is active and mounted; nothing to recover");
      return "ok (active and mounted)";
    }
    remount(tx, r, def, paths_);
    return "ok (remounted)";
  };
  try {
    log_session_event(paths_, {"recovery of", id, r.chroot_name, caller, caller}, false, recover_locked());
  } catch (const std::exception& e) {
    log_session_event(paths_, {"recovery of", id, r.chroot_name, caller, caller}, true, e.what());
    throw;
  }
}

}  // namespace schroot
