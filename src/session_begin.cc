// Beginning a session: -b (begin) and the default action (automatic: begin in a
// private mount namespace, run the command, end). Both start it the same way: the
// record is written ahead with every planned undo step, then the stages run; any
// failure rolls the session back through its undo list.
#include <sched.h>
#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <ctime>

#include "backends/registry.h"
#include "src/error.h"
#include "src/fault.h"
#include "src/hooks.h"
#include "src/log.h"
#include "src/pam.h"
#include "src/session.h"
#include "src/session_access.h"
#include "src/session_internal.h"
#include "src/session_transaction.h"
#include "src/sys/fs.h"
#include "src/sys/process.h"
#include "src/sys/reaper.h"

namespace schroot {

namespace {

// A session id names files (record, lock file + ".session.holders"): within NAME_MAX.
constexpr size_t kMaxSessionName = 200;

enum class Kind { kBegun, kAutomatic };

struct Begun {
  SessionRecord record;
  ChrootDef def;
};

// The chroot a session of `found` uses: a source: session gets the source's access
// lists and no union.
ChrootDef session_definition(const ChrootSet::Found& found) {
  return found.ns == Namespace::kSource ? Config::source_of(*found.def) : *found.def;
}

std::string new_session_id(const std::string& chroot) {
  std::string uuid = sys::read_sysctl("/proc/sys/kernel/random/uuid");
  while (!uuid.empty() && (uuid.back() == '\n' || uuid.back() == ' ')) uuid.pop_back();
  return chroot + "-" + uuid;
}

// The new session's record, before any step: who, what, where.
SessionRecord new_record(const ChrootDef& def, const ChrootSet::Found& found, const SessionRequest& req,
                         const UserInfo& caller, Kind kind, const Paths& paths) {
  SessionRecord r;
  r.id = req.session_name.empty() ? new_session_id(def.name) : req.session_name;
  // A plain character loop: no std::regex on argv in a setuid process (its recursive
  // matcher can overflow the stack on a long name).
  if (r.id.size() > kMaxSessionName || !Config::valid_name(r.id))
    throw UserError(r.id + ": Invalid session name\nI: Naming restrictions are documented in chroot.conf(5)");
  r.chroot_name = def.name;
  r.selected_name = found.selected;
  r.source = found.ns == Namespace::kSource;
  r.automatic = kind == Kind::kAutomatic;
  r.boot_id = sys::boot_id();
  // Who we are, so that nobody mistakes a process that later takes our pid for us;
  // an automatic session's mounts live in our mount namespace, recorded with it.
  const sys::ProcessIdentity self = sys::ProcessIdentity::of_self();
  r.pid = self.pid;
  r.pid_start_time = self.start_time;
  if (r.automatic) {
    r.mnt_ns_dev = self.mnt_ns_dev;
    r.mnt_ns_ino = self.mnt_ns_ino;
    r.mnt_ns_id = self.mnt_ns_id;
  }
  r.ruid = caller.uid;
  r.ruser = caller.name;
  r.created = static_cast<int64_t>(::time(nullptr));
  r.mount_location = paths.mount_dir + "/" + r.id;
  // The backend mounts the chroot's own root there (a loopback image's location=
  // directory, resolved inside the image): never a path built into the image.
  r.path = r.mount_location;
  return r;
}

// The session's keyfile (schroot 1.6's session file content).
std::map<std::string, std::string> session_keys(const SessionRecord& r, const UserInfo& caller,
                                                const SessionBuild& build) {
  const ChrootDef& def = build.def;
  std::map<std::string, std::string> keys = def.keys;
  keys["name"] = r.id;
  keys["mount-location"] = r.mount_location;
  keys["original-name"] = def.name;
  keys["selected-name"] = r.selected_name;
  keys["description"] = def.description + " (session chroot)";
  // Only the user who began a session may use it (schroot 1.6's clone_session).
  keys["aliases"] = "";
  keys["groups"] = "";
  keys["root-groups"] = "";
  const bool root_member = is_root_member(def, caller);
  keys["users"] = root_member ? "" : caller.name;
  keys["root-users"] = root_member ? caller.name : "";
  build.backend->session_keys(build.ctx, keys);
  return keys;
}

// Plans every undo step and writes the record ahead with them.
void write_ahead(SessionTransaction& tx, SessionRecord& r, SessionBuild& build, const UserInfo& caller,
                 const SessionRequest& req) {
  try {
    r.undo = plan_undo(build);
    r.keys = session_keys(r, caller, build);
    const ChrootDef& def = build.def;
    tx.write_ahead(r, def, req.source_lock_timeout >= 0 ? req.source_lock_timeout : def.source_lock_timeout);
  } catch (...) {
    // No record was written: nothing else will ever remove our lock file.
    tx.session_lock().remove_file();
    throw;
  }
}

// Runs the stages and marks the session active, or rolls it back: setup-stop with
// status fail, undo in reverse, no record left.
void build_or_roll_back(SessionTransaction& tx, SessionRecord& r, SessionBuild& build) {
  try {
    tx.run_stages(r, build);
    fail_point("begin:done");
    tx.mark(r, SessionState::kActive);
    fail_point("begin:active");
  } catch (const std::exception& e) {
    log_error(e.what());
    // What the backend holds open first: the rollback's detach waits for the
    // device to be free, which our own open loop device would never be.
    build.ctx.release_devices();
    try {
      tx.finish(r, build.def, "fail");
    } catch (const std::exception& rollback) {
      log_error(rollback.what());
    }
    throw UserError(build.def.name + ": Chroot setup failed; the session was rolled back");
  }
}

// `authorised` is session_definition(found), which the caller has authorised.
Begun start_session(SessionTransaction& tx, const Paths& paths, const ChrootSet::Found& found, ChrootDef authorised,
                    const SessionRequest& req, Kind kind) {
  tx.signals().hold();
  const auto& [target, caller] = tx.users();
  Begun b{{}, std::move(authorised)};
  ChrootDef& def = b.def;
  apply_options(def, req, caller, target);
  auto backend = backends::make_backend(def, found.ns == Namespace::kSource);
  SessionRecord& r = b.record;
  r = new_record(def, found, req, caller, kind, paths);

  ensure_session_dirs(paths);
  // The session lock first: nobody can end or recover what we are still building.
  tx.take_name(r.id);
  SessionBuild build{def, std::move(backend), {def, paths, r.id, r.mount_location, r.source},
                     stage_order(list_hooks(paths.setup_d()))};
  build.ctx.throwaway = r.automatic;
  write_ahead(tx, r, build, caller, req);
  fail_point("begin:written");
  build_or_roll_back(tx, r, build);
  return b;
}

// The command of an automatic session, inside the PAM session, with the terminal's
// signals (schroot forwards SIGTERM/SIGHUP); its exit status, 1 if it never ran.
int run_automatic_command(SessionTransaction& tx, const Begun& b, RunSpec& spec, PamSession& pam,
                          char** caller_env) {
  if (tx.signals().pending()) {
    log_error(b.def.name + ": interrupted by a signal before the command ran");
    return 1;
  }
  int status = 1;
  tx.signals().lift();
  try {
    // What the command leaves running is reparented to us and ended with it.
    sys::become_subreaper();
    status = run_in_pam_session(pam, spec, caller_env);
  } catch (const std::exception& e) {
    log_error(e.what());
  }
  tx.signals().hold();
  return status;
}

// What automatic() resolved and authorised before the session begins.
struct Automatic {
  const Paths& paths;
  char** caller_env;
  const ChrootSet::Found& chroot;
  const SessionRequest& req;
  SessionUsers users;
  PamSession& pam;
};

// An automatic session, once authorised: begin, the command, end; its exit status.
// `id` is the session's as soon as it has one.
int automatic_session(const Automatic& a, ChrootDef def, std::string& id) {
  const auto& [target, caller] = a.users;
  SessionTransaction tx(a.paths, a.users, Durability::kThrowaway);
  Begun b = start_session(tx, a.paths, a.chroot, std::move(def), a.req, Kind::kAutomatic);
  SessionRecord& r = b.record;
  id = r.id;
  RunSpec spec = run_spec(r.path, b.def, a.req, caller, target, r.selected_name, r.id);
  // Shared while the command runs: the user's other schroot -r may join the session
  // (through this process's mount namespace), as in schroot 1.6.
  tx.session_lock().downgrade_to_shared();
  const int status = run_automatic_command(tx, b, spec, a.pam, a.caller_env);
  if (int left = sys::end_descendants(kKillGrace))
    log_info(r.id + ": ended " + std::to_string(left) + " process(es) the command left running");
  fail_point("automatic:ran");
  try {
    tx.session_lock().upgrade_to_exclusive(std::chrono::milliseconds(0), "session " + r.id);
  } catch (const LockTimeout&) {
    // Commands that joined the session end with it (schroot 1.6's killprocs).
    sys::kill_processes_in_session(sys::open_session_root(r.mount_location), kKillGrace);
    tx.session_lock().upgrade_to_exclusive(seconds(std::max(b.def.session_lock_timeout, 5)), "session " + r.id);
  }
  // An -e of ours may have ended the session while we waited for it.
  if (RecordStore(a.paths).exists(r.id)) tx.finish(r, b.def, "ok");
  // The session is gone and the command's status known: a signal that came during
  // the teardown must not replace that status with its own.
  tx.signals().discard_pending();
  return status;
}

}  // namespace

std::string SessionManager::begin(const ChrootSet::Found& chroot, const SessionRequest& req,
                                  const std::function<bool(const std::string&)>& announce) {
  const UserInfo caller = lookup_uid(::getuid());
  const UserInfo target = target_user(req, caller);
  ChrootDef def = session_definition(chroot);
  // PAM before the transaction holds signals: ^C must reach a password prompt.
  PamSession pam = authorise(def.name, def, caller, target, paths_, caller_env_);
  const std::string chroot_name = def.name;
  try {
    SessionTransaction tx(paths_, {target, caller}, Durability::kDurable);
    Begun b = start_session(tx, paths_, chroot, std::move(def), req, Kind::kBegun);
    // Signals are still held: either the caller learns the id, or the session is
    // rolled back. Never an active session that nobody knows about.
    if (tx.signals().pending() || !announce(b.record.id)) {
      tx.finish(b.record, b.def, "fail");
      throw UserError(b.def.name +
                      (tx.signals().pending() ? ": interrupted by a signal" : ": the session id could not be written") +
                      "; the session was rolled back");
    }
    tx.signals().discard_pending();  // the id is out: the session stands
    log_session_event(paths_, {"begin", b.record.id, chroot_name, caller, target}, false, "ok");
    return b.record.id;
  } catch (const std::exception& e) {
    log_session_event(paths_, {"begin", req.session_name, chroot_name, caller, target}, true, e.what());
    throw;
  }
}

int SessionManager::automatic(const ChrootSet::Found& chroot, const SessionRequest& req) {
  // A private mount namespace: if this process dies, the kernel drops every mount
  // with it; the record (marked automatic) lets recovery remove what outlives it.
  if (::unshare(CLONE_NEWNS) != 0) throw SystemError("unshare", "mount namespace", errno);
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_SLAVE, nullptr) != 0)
    throw SystemError("make / a slave mount", "/", errno);
  const UserInfo caller = lookup_uid(::getuid());
  const UserInfo target = target_user(req, caller);
  ChrootDef def = session_definition(chroot);
  PamSession pam = authorise(def.name, def, caller, target, paths_, caller_env_);
  const std::string chroot_name = def.name;
  std::string id = req.session_name;
  try {
    const int status = automatic_session({paths_, caller_env_, chroot, req, {target, caller}, pam}, std::move(def), id);
    log_session_event(paths_, {"automatic", id, chroot_name, caller, target}, false,
                      "ok (the command's exit status " + std::to_string(status) + ")");
    return status;
  } catch (const std::exception& e) {
    log_session_event(paths_, {"automatic", id, chroot_name, caller, target}, true, e.what());
    throw;
  }
}

}  // namespace schroot
