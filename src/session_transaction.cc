#include "src/session_transaction.h"

// <>: "config.h" would find src/config.h first.
#include <config.h>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

#include "backends/lvm_image.h"
#include "src/error.h"
#include "src/fault.h"
#include "src/hooks.h"
#include "src/log.h"
#include "src/session.h"
#include "src/session_internal.h"
#include "src/text.h"
#include "src/sys/backoff.h"
#include "src/sys/fs.h"
#include "src/sys/lvm.h"
#include "src/sys/process.h"

namespace schroot {

namespace {

using std::chrono::milliseconds;

// The source chroot a session claims, and how (none for a plain directory session).
std::optional<std::pair<std::string, ClaimMode>> claim_for(const ChrootDef& def, bool source) {
  if (source) return std::make_pair(def.name, ClaimMode::kExclusive);
  // A snapshot reads its origin, which a source: session (block-device) writes.
  if (def.is_union() || def.type == ChrootType::kLvmSnapshot) return std::make_pair(def.name, ClaimMode::kShared);
  // Two read-write mounts of one filesystem image (or device) corrupt it.
  if (def.type == ChrootType::kLoopback || def.type == ChrootType::kBlockDevice)
    return std::make_pair(def.name, ClaimMode::kExclusive);
  return std::nullopt;
}

std::string verbosity_name() {
  switch (verbosity()) {
    case Verbosity::kQuiet:
      return "quiet";
    case Verbosity::kVerbose:
      return "verbose";
    default:
      return "normal";
  }
}

bool contains(const std::vector<std::string>& list, const std::string& item) {
  return std::find(list.begin(), list.end(), item) != list.end();
}

}  // namespace

SessionTransaction::SessionTransaction(const Paths& paths, SessionUsers users, Durability durability)
    : paths_(paths), users_(std::move(users)), durability_(durability), records_(paths), claims_(paths) {}

bool SessionTransaction::try_lock_session(const std::string& id) {
  session_lock_.reset();
  auto got = FileLock::try_acquire(session_lock_path(paths_, id), LockMode::kExclusive);
  if (!got) return false;
  session_lock_.emplace(std::move(*got));
  return true;
}

void SessionTransaction::lock_session(const std::string& id, LockMode mode, milliseconds timeout) {
  session_lock_.reset();
  session_lock_.emplace(FileLock::acquire(session_lock_path(paths_, id), mode, timeout, "session " + id));
}

void SessionTransaction::take_name(const std::string& id) {
  if (!try_lock_session(id)) throw UserError(id + ": a session with this name is in use");
  if (!records_.exists(id)) return;
  SessionRecord old = records_.read(id);
  if (old.state == SessionState::kActive && !old.automatic)
    throw UserError(id + ": a session with this name already exists");
  log_note(id + ": rolling back a session of this name left " + to_string(old.state) + " by a dead process");
  end_session(*session_lock_, old, SessionManager::definition_of(old), "fail", {users_.caller, users_.caller},
              Durability::kDurable);
  // end_session() removed the lock file we hold: lock the new one at the path.
  if (!try_lock_session(id)) throw UserError(id + ": a session with this name is in use");
}

// ---- write ahead, claims --------------------------------------------------------

void SessionTransaction::write_ahead(SessionRecord& r, const ChrootDef& def, int source_timeout) {
  sys::Backoff wait(seconds(source_timeout), milliseconds(5), milliseconds(200));
  bool said_waiting = false;
  for (;;) {
    std::vector<std::string> stale;
    const std::vector<std::string> in_the_way = claim_or_create(r, def, stale);
    if (in_the_way.empty()) return;
    bool rolled_back = false;
    for (const auto& id : stale)
      if (contains(in_the_way, id)) rolled_back = roll_back_if_stale(id) || rolled_back;
    if (rolled_back) continue;
    if (signals_.pending()) throw UserError(def.name + ": interrupted by a signal while waiting for the source chroot");
    if (!said_waiting) {
      log_note(def.name + ": waiting for session(s) " + join(in_the_way, ", ") + " to release the source chroot (up to " +
               std::to_string(source_timeout) + " s)");
      said_waiting = true;
    }
    if (!wait.next()) {
      throw UserError(def.name + ": source chroot is in use by session(s) " + join(in_the_way, ", ") + " (waited " +
                      std::to_string(source_timeout) + " s; see --source-lock-timeout)");
    }
  }
}

// Under manage.lock: takes the claim and creates the record, or returns the sessions
// whose claims are in the way (those left by dead processes also in `stale`).
std::vector<std::string> SessionTransaction::claim_or_create(SessionRecord& r, const ChrootDef& def,
                                                             std::vector<std::string>& stale) {
  const auto claim = claim_for(def, r.source);
  FileLock manage = manage_lock(paths_);
  if (claim) {
    auto in_the_way = claims_.try_claim(claim->first, {claim->second, r.id},
                                        [&](const std::string& id) { return holder_is_live(id, stale); });
    if (!in_the_way.empty()) return in_the_way;
  }
  try {
    records_.create(r, durability_ == Durability::kDurable);
  } catch (...) {
    if (claim) claims_.release(claim->first, r.id);
    throw;
  }
  return {};
}

// For claims: is the session that holds a claim still alive? A missing record is
// not; a session left by a dead process counts as alive (its mounts are still
// there) but is noted in `stale`, to be rolled back out of the way.
bool SessionTransaction::holder_is_live(const std::string& id, std::vector<std::string>& stale) {
  if (!records_.exists(id)) return false;
  SessionRecord r;
  try {
    r = records_.read(id);
  } catch (const std::exception&) {
    return true;  // unreadable: we cannot know what it holds; it keeps blocking
  }
  if (!session_is_live(paths_, r)) stale.push_back(id);
  return true;
}

// Rolls back a session whose process died, if that is what it is. True when it is gone.
bool SessionTransaction::roll_back_if_stale(const std::string& id) {
  auto lock = FileLock::try_acquire(session_lock_path(paths_, id), LockMode::kExclusive);
  if (!lock) return false;  // a live process is working on it
  SessionRecord r;
  try {
    r = records_.read(id);
  } catch (const UserError&) {
    return !records_.exists(id);
  }
  if (r.state == SessionState::kActive && !r.automatic) return false;  // a live -b session
  log_note(id + ": rolling back a session left " + to_string(r.state) + " by a dead process (pid " +
           std::to_string(r.pid) + ")");
  end_session(*lock, r, SessionManager::definition_of(r), "fail", {users_.caller, users_.caller}, Durability::kDurable);
  return true;
}

void SessionTransaction::mark(SessionRecord& r, SessionState state) { write_state(r, state, "", durability_); }

void SessionTransaction::write_state(SessionRecord& r, SessionState state, const std::string& reason,
                                     Durability durability) {
  FileLock manage = manage_lock(paths_);
  r.state = state;
  r.broken_reason = reason;
  records_.write(r, durability == Durability::kDurable);
}

void SessionTransaction::remove_record_and_claim(const SessionRecord& r, const ChrootDef& def) {
  FileLock manage = manage_lock(paths_);
  if (auto claim = claim_for(def, r.source)) claims_.release(claim->first, r.id);
  records_.remove(r.id);
}

// ---- stages and hooks -----------------------------------------------------------

Environment SessionTransaction::hook_environment_of(const SessionRecord& r, const ChrootDef& def,
                                                    const SessionUsers& users, const std::string& mount_device) const {
  HookContext c;
  c.def = &def;
  c.record = &r;
  c.auth_user = users.target;
  c.real_user = users.caller;
  c.verbosity = verbosity_name();
  c.sysconf_dir = paths_.sysconf_dir;
  c.mount_dir = paths_.mount_dir;
  c.data_dir = paths_.data_dir;  // SETUP_DATA_DIR: common-* for hooks written for 1.6
  // A union's session directories come from the record's keys, which the backend set.
  c.mount_device = mount_device;
  c.pid = ::getpid();
  return hook_environment(c);
}

void SessionTransaction::run_stages(SessionRecord& r, SessionBuild& build) {
  const std::string stage_arg = build.ctx.recovering ? "setup-recover" : "setup-start";
  for (const auto& s : build.stages) {
    if (signals_.pending()) throw UserError(build.def.name + ": interrupted by a signal; rolling back");
    fail_point(("begin:" + s.name).c_str());
    log_info(std::string(s.core ? "stage " : "setup.d/") + s.name + " " + stage_arg);
    if (s.core) {
      run_core_stage(s.name, r, build, paths_);
      continue;
    }
    Environment env = hook_environment_of(r, build.def, users_, build.ctx.mount_device);
    int rc = run_hook(paths_.setup_d(), s.name, stage_arg, "ok", env);
    if (rc != 0)
      throw UserError(build.def.name + ": Chroot setup failed: stage=" + stage_arg + ": setup.d/" + s.name +
                      " exited with status " + std::to_string(rc));
  }
}

// ---- undo and end ---------------------------------------------------------------

std::string SessionTransaction::undo(SessionRecord& r, const ChrootDef& def, const std::string& status,
                                     UndoMode mode) {
  return replay_undo(r, def, status, mode, users_);
}

std::string SessionTransaction::replay_undo(SessionRecord& r, const ChrootDef& def, const std::string& status,
                                            UndoMode mode, const SessionUsers& users) {
  std::vector<std::string> failures;
  if (mode == UndoMode::kEnd) reattach_images(r);
  for (auto it = r.undo.rbegin(); it != r.undo.rend(); ++it) {
    const UndoStep& u = *it;
    fail_point("end:undo");
    log_info("undo " + std::string(to_string(u.op)) + " " + (u.path.empty() ? u.name : u.path) + " (" + u.step + ")");
    try {
      if (u.op != UndoStep::Op::kHook)
        undo_mounts_and_files(u, r, mode, paths_, failures);
      else if (mode == UndoMode::kEnd)  // a remount keeps what the hooks set up
        run_stop_hook(u, r, def, status, users);
    } catch (const std::exception& e) {
      failures.push_back(u.step + ": " + e.what());
    }
  }
  return join(failures, "; ");
}

// A snapshot on an image-backed VG can only be removed while the image is attached,
// which after a reboot it is not. Failing that, lvremove says why.
void SessionTransaction::reattach_images(const SessionRecord& r) {
  for (const UndoStep& u : r.undo) {
    if (u.op != UndoStep::Op::kReleaseImage) continue;
    try {
      backends::reattach_image(paths_, r.id, u);
    } catch (const std::exception& e) {
      log_warning(r.id + ": " + e.what());
    }
  }
}

void SessionTransaction::run_stop_hook(const UndoStep& u, SessionRecord& r, const ChrootDef& def,
                                       const std::string& status, const SessionUsers& users) {
  struct stat st;
  std::string hook = paths_.setup_d() + "/" + u.name;
  if (::stat(hook.c_str(), &st) != 0) {
    log_warning(r.id + ": setup.d/" + u.name + " has gone; not running it for setup-stop");
    return;
  }
  auto dev_it = r.keys.find("mount-device");
  Environment env = hook_environment_of(r, def, users, dev_it == r.keys.end() ? "" : dev_it->second);
  int rc = run_hook(paths_.setup_d(), u.name, "setup-stop", status, env);
  // Hooks' failures at stop are reported and the rest still runs (schroot 1.6).
  if (rc != 0) log_warning(r.id + ": setup.d/" + u.name + " setup-stop exited with status " + std::to_string(rc));
}

void SessionTransaction::finish(SessionRecord& r, const ChrootDef& def, const std::string& status) {
  end_session(*session_lock_, r, def, status, users_, durability_);
}

void SessionTransaction::end_session(FileLock& lock, SessionRecord& r, const ChrootDef& def, const std::string& status,
                                     const SessionUsers& users, Durability durability) {
  // "ending" tells recovery to roll a -b session back instead of remounting it. An
  // automatic session is rolled back in any state once its lock is free (DESIGN §5),
  // and nobody joins it while we hold that lock: for it the rewrite (a temporary
  // record, a rename, a manage.lock note) would tell nobody anything.
  if (r.state != SessionState::kEnding && !r.automatic)
    write_state(r, SessionState::kEnding, r.broken_reason, Durability::kThrowaway);
  fail_point("end:ending");
  sys::kill_processes_in_session(sys::open_session_root(r.mount_location), kKillGrace);
  // Lazy detach only now that the session's processes are gone.
  const std::string reason = replay_undo(r, def, status, UndoMode::kEnd, users);
  if (!reason.empty()) {
    write_state(r, SessionState::kBroken, reason, durability);
    throw UserError(r.id + ": session could not be ended completely and is marked broken: " + reason +
                    "\nI: fix the cause, then run schroot --end-session -c " + r.id + " again");
  }
  fail_point("end:undone");
  remove_record_and_claim(r, def);
  lock.remove_file();
}

}  // namespace schroot
