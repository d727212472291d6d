#include "src/session.h"

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <thread>
#include <grp.h>

#include "backends/overlay.h"
#include "backends/registry.h"
#include "src/claims.h"
#include "src/error.h"
#include "src/text.h"
#include "src/fault.h"
#include "src/hooks.h"
#include "src/lock.h"
#include "src/log.h"
#include "src/run_command.h"
#include "src/stages.h"
#include "src/sys/fs.h"
#include "src/sys/identity.h"
#include "src/sys/reaper.h"
#include "src/sys/loop_device.h"
#include "src/sys/mount.h"
#include "src/sys/process.h"

namespace schroot {

namespace {

using std::chrono::milliseconds;

// A session id names files (record, lock file + ".session.holders"): within NAME_MAX.
constexpr size_t kMaxSessionName = 200;
// manage.lock is only ever held for milliseconds; waiting longer means trouble.
constexpr milliseconds kManageLockTimeout{10000};
// How long processes left in a session get between SIGTERM and SIGKILL.
constexpr milliseconds kKillGrace{2000};

// The core stages sort among the setup.d hooks as if they were files of these names.
const char* const kCoreStages[] = {"00device", "10mount", "20fstab", "21copyfiles", "22nssdatabases", "50chrootname"};

struct StageItem {
  std::string name;
  bool core;
};

std::vector<StageItem> stage_order(const std::vector<std::string>& hooks) {
  std::vector<StageItem> items;
  for (const char* c : kCoreStages) items.push_back({c, true});
  for (const auto& h : hooks) items.push_back({h, false});
  // Stable by name; on a tie the core stage goes first.
  std::stable_sort(items.begin(), items.end(), [](const StageItem& a, const StageItem& b) {
    if (a.name != b.name) return a.name < b.name;
    return a.core && !b.core;
  });
  return items;
}

// A session's lock file: lock_dir/<id>.session (never clashes with manage.lock).
const char* const kSessionLockSuffix = ".session";
std::string session_lock_path(const Paths& paths, const std::string& id) {
  return paths.lock_dir + "/" + id + kSessionLockSuffix;
}

// The process that began a session, as its record identifies it.
sys::ProcessIdentity owner_of(const SessionRecord& r) {
  sys::ProcessIdentity id;
  id.pid = r.pid;
  id.start_time = r.pid_start_time;
  id.mnt_ns_dev = r.mnt_ns_dev;
  id.mnt_ns_ino = r.mnt_ns_ino;
  id.mnt_ns_id = r.mnt_ns_id;
  return id;
}

milliseconds seconds(int s) { return milliseconds(static_cast<int64_t>(s) * 1000); }

std::string new_session_id(const std::string& chroot) {
  std::string uuid = sys::read_file("/proc/sys/kernel/random/uuid");
  while (!uuid.empty() && (uuid.back() == '\n' || uuid.back() == ' ')) uuid.pop_back();
  return chroot + "-" + uuid;
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

bool in_groups(const std::vector<std::string>& groups) {
  std::vector<gid_t> mine(static_cast<size_t>(std::max(0, ::getgroups(0, nullptr))));
  int n = ::getgroups(static_cast<int>(mine.size()), mine.data());
  mine.resize(static_cast<size_t>(std::max(0, n)));
  mine.push_back(::getgid());
  for (const auto& name : groups) {
    if (struct group* g = ::getgrnam(name.c_str()))
      if (std::find(mine.begin(), mine.end(), g->gr_gid) != mine.end()) return true;
  }
  return false;
}

// schroot 1.6's access rules (behaviour reference §7), for a caller that is not root.
// Where 1.6 would ask PAM for a password we refuse: PAM is not supported yet.
void check_access(const std::string& chroot, const std::vector<std::string>& users,
                  const std::vector<std::string>& groups, const std::vector<std::string>& root_users,
                  const std::vector<std::string>& root_groups, const UserInfo& caller, const UserInfo& target) {
  if (caller.uid == 0) return;
  const bool user_ok = contains(users, caller.name) || in_groups(groups);
  const bool root_ok = contains(root_users, caller.name) || in_groups(root_groups);
  if ((user_ok || root_ok) && target.uid == caller.uid) return;
  if (root_ok && target.uid == 0) return;
  if (user_ok)
    throw UserError(chroot + ": switching to user ‘" + target.name +
                    "’ needs authentication, which this schroot does not support yet (no PAM)");
  throw UserError(chroot + ": Access not authorised\nI: You do not have permission to access the schroot service.");
}

UserInfo target_user(const SessionRequest& req, const UserInfo& caller) {
  return req.user.empty() ? caller : lookup_user(req.user);
}

// -o KEY=VALUE: only keys the chroot lets users (or root) modify.
void apply_options(ChrootDef& def, const SessionRequest& req, const UserInfo& caller, const UserInfo& target) {
  for (const auto& [key, value] : req.options) {
    // Only a custom key ("group.name", as in schroot 1.6; "setup." keys are the
    // profile's), and never one whose variable in the hooks' environment (they run as
    // root) is one the environment filter keeps out, such as LD_PRELOAD.
    if (!Config::valid_custom_key(key) || key.rfind("setup.", 0) == 0)
      throw UserError("Configuration key ‘" + key + "’ may not be set with --option: only custom keys (group.name) may");
    if (regex_finds(kDefaultEnvironmentFilter, userdata_env_name(key)))
      throw UserError("Configuration key ‘" + key + "’ may not be set with --option: setup scripts would see it as " +
                      userdata_env_name(key));
    const bool root = caller.uid == 0 || target.uid == 0;
    if (!def.user_modifiable_keys.count(key) && !(root && def.root_modifiable_keys.count(key)))
      throw UserError("Configuration key ‘" + key + "’ is not permitted to be modified.\nI: The key is not present in "
                      "user-modifiable-keys" + std::string(root ? " or root-modifiable-keys" : ""));
    def.userdata[key] = value;
    def.keys[key] = value;
  }
}

void strip_suffix(std::string& s, const std::string& suffix) {
  if (s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0)
    s.erase(s.size() - suffix.size());
}

// What run_in_chroot needs, from the chroot, the request and the session.
RunSpec run_spec(const std::string& root, const ChrootDef& def, const SessionRequest& req, const UserInfo& caller,
                 const UserInfo& target, const std::string& alias, const std::string& session_id) {
  RunSpec spec;
  spec.root = root;
  spec.target = target;
  spec.caller = caller;
  spec.directory = req.directory;
  char cwd[4096];
  spec.caller_cwd = ::getcwd(cwd, sizeof cwd) ? cwd : "/";
  spec.shell = req.shell.empty() ? def.shell : req.shell;
  spec.command = req.command;
  spec.command_prefix = def.command_prefix;
  spec.preserve_environment = req.preserve_environment || def.preserve_environment;
  spec.environment_filter = def.environment_filter;
  spec.personality = def.personality;
  spec.chroot_name = def.name;
  spec.alias_name = alias;
  spec.session_id = session_id;
  return spec;
}

// A session the caller may act on: only its creator and root may run in, end or
// recover it (schroot 1.6). Everything is read from the record, never chroot.conf.
struct OwnedSession {
  SessionRecord record;
  UserInfo caller;
  ChrootDef def;
  int lock_timeout;
};

OwnedSession open_owned(const RecordStore& records, const std::string& id, const SessionRequest& req) {
  SessionRecord r = records.read(id);
  UserInfo caller = lookup_uid(::getuid());
  if (caller.uid != 0 && caller.uid != r.ruid)
    throw UserError(id + ": Access not authorised (the session belongs to " + r.ruser + ")");
  ChrootDef def = SessionManager::definition_of(r);
  const int timeout = req.session_lock_timeout >= 0 ? req.session_lock_timeout : def.session_lock_timeout;
  return {std::move(r), std::move(caller), std::move(def), timeout};
}

}  // namespace

// Termination signals (^C, SIGTERM, SIGHUP, SIGQUIT) are held off while a session
// is being built or taken down, so they never cut a stage in half: begin looks for
// them between stages and rolls back; end finishes first. They are delivered when
// the hold is lifted (and around an automatic session's command, which gets them).
class HeldSignals {
 public:
  HeldSignals() {
    ::sigemptyset(&set_);
    for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) ::sigaddset(&set_, sig);
  }
  ~HeldSignals() { lift(); }
  void hold() {
    if (!held_) ::sigprocmask(SIG_BLOCK, &set_, &saved_);
    held_ = true;
  }
  void lift() {
    if (held_) ::sigprocmask(SIG_SETMASK, &saved_, nullptr);
    held_ = false;
  }
  bool pending() const {
    sigset_t p;
    ::sigpending(&p);
    for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT})
      if (::sigismember(&p, sig)) return true;
    return false;
  }
  // Takes the held signals that arrived, so lifting the hold does not deliver them:
  // for a signal that came after the work it would have stopped was complete (a
  // session whose id is printed, a command whose status is known).
  void discard_pending() {
    const struct timespec now {};
    while (pending() && ::sigtimedwait(&set_, nullptr, &now) > 0) {
    }
  }

 private:
  sigset_t set_, saved_;
  bool held_ = false;
};

// One begin/end/recover in progress: the record, the chroot, the backend, the locks.
class SessionTransaction {
 public:
  SessionTransaction(SessionManager& m) : m_(m), records_(m.paths_), claims_(m.paths_) {}
  HeldSignals signals;

  void ensure_dirs() {
    for (const auto* d : {&m_.paths_.session_dir, &m_.paths_.lock_dir, &m_.paths_.mount_dir, &m_.paths_.claims_dir})
      sys::mkdir_p(*d, 0755);
  }
  std::string lock_path(const std::string& id) const { return session_lock_path(m_.paths_, id); }
  std::string manage_path() const { return m_.paths_.lock_dir + "/manage.lock"; }
  FileLock manage_lock() { return FileLock::acquire(manage_path(), LockMode::kExclusive, kManageLockTimeout, "manage lock"); }

  // The source chroot a session claims, and how (none for a plain directory session).
  static std::optional<std::pair<std::string, ClaimMode>> claim_for(const ChrootDef& def, bool source) {
    if (source) return std::make_pair(def.name, ClaimMode::kExclusive);
    if (def.is_union()) return std::make_pair(def.name, ClaimMode::kShared);
    // Two read-write mounts of one filesystem image corrupt it.
    if (def.type == ChrootType::kLoopback) return std::make_pair(def.name, ClaimMode::kExclusive);
    return std::nullopt;
  }

  // For claims: is the session that holds a claim still alive? A missing record is
  // not; a session left by a dead process counts as alive (its mounts are still
  // there) but is noted in `stale`, to be rolled back out of the way.
  bool session_is_live(const std::string& id, std::vector<std::string>& stale) {
    if (!records_.exists(id)) return false;
    SessionRecord r;
    try {
      r = records_.read(id);
    } catch (const std::exception&) {
      return true;  // unreadable: we cannot know what it holds; it keeps blocking
    }
    if (!m_.is_live(r)) stale.push_back(id);
    return true;
  }

  // Rolls back a session whose process died, if that is what it is. True when it is gone.
  bool roll_back_if_stale(const std::string& id, const UserInfo& user) {
    auto lock = FileLock::try_acquire(lock_path(id), LockMode::kExclusive);
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
    finish(*lock, r, SessionManager::definition_of(r), "fail", user, user, /*durable=*/true);
    return true;
  }

  // Writes the record ahead (state beginning, whole undo list) and takes the claim,
  // both under manage.lock; waits up to the source timeout for a conflicting claim.
  // Sessions of dead processes in the way are rolled back.
  void write_ahead(SessionRecord& r, const ChrootDef& def, int source_timeout, bool durable, const UserInfo& user) {
    auto claim = claim_for(def, r.source);
    auto deadline = std::chrono::steady_clock::now() + seconds(source_timeout);
    milliseconds backoff{5};
    for (;;) {
      std::vector<std::string> in_the_way, stale;
      {
        FileLock manage = manage_lock();
        if (claim)
          in_the_way = claims_.try_claim(claim->first, {claim->second, r.id},
                                         [&](const std::string& id) { return session_is_live(id, stale); });
        if (in_the_way.empty()) {
          try {
            records_.create(r, durable);
          } catch (...) {
            if (claim) claims_.release(claim->first, r.id);
            throw;
          }
          return;
        }
      }
      bool rolled_back = false;
      for (const auto& id : stale)
        if (std::find(in_the_way.begin(), in_the_way.end(), id) != in_the_way.end())
          rolled_back = roll_back_if_stale(id, user) || rolled_back;
      if (rolled_back) continue;
      if (signals.pending()) throw UserError(def.name + ": interrupted by a signal while waiting for the source chroot");
      if (backoff == milliseconds{5}) {
        log_note(def.name + ": waiting for session(s) " + join(in_the_way, ", ") + " to release the source chroot (up to " +
                 std::to_string(source_timeout) + " s)");
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        throw UserError(def.name + ": source chroot is in use by session(s) " + join(in_the_way, ", ") + " (waited " +
                        std::to_string(source_timeout) + " s; see --source-lock-timeout)");
      }
      std::this_thread::sleep_for(backoff);
      backoff = std::min(backoff * 2, milliseconds(200));
    }
  }

  void mark(SessionRecord& r, SessionState state, const std::string& reason, bool durable) {
    FileLock manage = manage_lock();
    r.state = state;
    r.broken_reason = reason;
    records_.write(r, durable);
  }

  void remove_record_and_claim(const SessionRecord& r, const ChrootDef& def) {
    FileLock manage = manage_lock();
    if (auto claim = claim_for(def, r.source)) claims_.release(claim->first, r.id);
    records_.remove(r.id);
  }

  HookContext hook_context(const ChrootDef& def, const SessionRecord& r, const UserInfo& auth,
                           const UserInfo& real, const std::string& mount_device) {
    HookContext c;
    c.def = &def;
    c.record = &r;
    c.auth_user = auth;
    c.real_user = real;
    c.verbosity = verbosity_name();
    c.sysconf_dir = m_.paths_.sysconf_dir;
    c.mount_dir = m_.paths_.mount_dir;
    if (def.is_union() && !r.source) {
      backends::SessionContext ctx{def, m_.paths_, r.id, r.mount_location};
      c.overlay_dir = backends::OverlayBackend::overlay_dir(ctx);
      c.underlay_dir = backends::OverlayBackend::underlay_dir(ctx);
    }
    c.mount_device = mount_device;
    c.pid = ::getpid();
    return c;
  }

  // Plans every stage's undo steps, in doing order.
  std::vector<UndoStep> plan(const backends::SourceBackend& backend, const backends::SessionContext& ctx,
                             const ChrootDef& def, const std::vector<StageItem>& stages) {
    std::vector<UndoStep> undo;
    for (const auto& s : stages) {
      if (!s.core) {
        undo.push_back({UndoStep::Op::kHook, "", "", 0, 0, s.name, s.name});
      } else if (s.name == "00device") {
        backend.plan_device(ctx, undo);
      } else if (s.name == "10mount") {
        undo.push_back({UndoStep::Op::kRemoveDir, ctx.mount_location, "", 0, 0, "", "10mount"});
        backend.plan_mount(ctx, ctx.mount_location, undo);
      } else if (s.name == "20fstab" && !profile_setting(def, def.setup_fstab, "fstab").empty()) {
        undo.push_back({UndoStep::Op::kUnmountBelow, ctx.mount_location, "", 0, 0, "", "20fstab"});
      }
    }
    return undo;
  }

  // A setup.* file: the key's value, or with the deprecated script-config (which
  // clears the profile), the file of that name beside it, as schroot 1.6 did.
  static std::string profile_setting(const ChrootDef& def, const std::string& value, const char* name) {
    if (!value.empty() || def.script_config.empty()) return value;
    auto slash = def.script_config.rfind('/');
    return (slash == std::string::npos ? std::string() : def.script_config.substr(0, slash + 1)) + name;
  }

  std::string profile_file(const std::string& rel) const {
    return rel.empty() || rel[0] == '/' ? rel : m_.paths_.sysconf_dir + "/" + rel;
  }

  // Runs the begin (or recover) stages in order; throws on the first failure.
  void run_stages(SessionRecord& r, const ChrootDef& def, const backends::SourceBackend& backend,
                  backends::SessionContext& ctx, const std::vector<StageItem>& stages, const UserInfo& auth,
                  const UserInfo& real, bool recovering) {
    const std::string stage_arg = recovering ? "setup-recover" : "setup-start";
    for (const auto& s : stages) {
      if (signals.pending()) throw UserError(def.name + ": interrupted by a signal; rolling back");
      fail_point(("begin:" + s.name).c_str());
      log_info(std::string(s.core ? "stage " : "setup.d/") + s.name + " " + stage_arg);
      if (!s.core) {
        Environment env = hook_environment(hook_context(def, r, auth, real, ctx.mount_device));
        int rc = run_hook(m_.paths_.setup_d(), s.name, stage_arg, "ok", env);
        if (rc != 0)
          throw UserError(def.name + ": Chroot setup failed: stage=" + stage_arg + ": setup.d/" + s.name +
                          " exited with status " + std::to_string(rc));
      } else if (s.name == "00device") {
        backend.attach_device(ctx);
      } else if (s.name == "10mount") {
        sys::mkdir_p(m_.paths_.mount_dir, 0755);
        if (::mkdir(r.mount_location.c_str(), 0755) != 0 && !(errno == EEXIST && recovering))
          throw SystemError("mkdir", r.mount_location, errno);
        backend.mount_tree(ctx, r.mount_location, /*read_only=*/false);
      } else if (s.name == "20fstab") {
        if (auto f = profile_setting(def, def.setup_fstab, "fstab"); !f.empty()) stage_fstab(r.path, profile_file(f));
      } else if (s.name == "21copyfiles") {
        if (auto f = profile_setting(def, def.setup_copyfiles, "copyfiles"); !f.empty())
          stage_copyfiles(r.path, profile_file(f));
      } else if (s.name == "22nssdatabases") {
        if (auto f = profile_setting(def, def.setup_nssdatabases, "nssdatabases"); !f.empty())
          stage_nssdatabases(r.path, profile_file(f));
      } else if (s.name == "50chrootname") {
        stage_chrootname(r.path, def.name);
      }
    }
  }

  // Replays the undo list in reverse. "Already gone" counts as done. keep_data keeps
  // union upper dirs and hooks (a remount for recovery). Returns false with the
  // reason when something could not be undone.
  bool undo(SessionRecord& r, const ChrootDef& def, const std::string& status, bool allow_lazy, bool keep_data,
            const UserInfo& auth, const UserInfo& real, std::string& reason) {
    std::vector<std::string> failures;
    for (auto it = r.undo.rbegin(); it != r.undo.rend(); ++it) {
      const UndoStep& u = *it;
      fail_point("end:undo");
      log_info("undo " + std::string(to_string(u.op)) + " " + (u.path.empty() ? u.name : u.path) + " (" + u.step + ")");
      try {
        switch (u.op) {
          case UndoStep::Op::kUnmountTree:
          case UndoStep::Op::kUnmountBelow: {
            // kUnmountBelow leaves the root itself: a session's inner mounts only.
            // By mount id through checked handles: root in the session may rename
            // its directories meanwhile (a loop device's mount is never lazy).
            sys::UnmountResult res =
                sys::unmount_tree(u.path, allow_lazy, /*include_top=*/u.op == UndoStep::Op::kUnmountTree,
                                  [] { fail_point("end:unmount-listed"); });
            if (res.lazy_used) {
              r.lazy_unmount_used = true;
              log_warning(r.id + ": " + u.path + " was busy; detached lazily");
            }
            for (const auto& p : res.problems) failures.push_back(u.step + ": still mounted: " + p);
            break;
          }
          case UndoStep::Op::kDetachLoop:
            // Throws unless the device is really unbound: the claim and the record
            // must not go while the image is still in use.
            sys::detach_loops_backed_by(static_cast<dev_t>(u.dev), static_cast<ino_t>(u.ino), u.name);
            break;
          case UndoStep::Op::kRemoveDir:
            if (keep_data) break;
            if (::rmdir(u.path.c_str()) != 0 && errno != ENOENT)
              failures.push_back(u.step + ": rmdir " + u.path + ": " + std::strerror(errno));
            break;
          case UndoStep::Op::kRemoveTree:
            if (keep_data) break;
            sys::remove_tree(u.path);
            break;
          case UndoStep::Op::kHook: {
            if (keep_data) break;
            struct stat st;
            std::string hook = m_.paths_.setup_d() + "/" + u.name;
            if (::stat(hook.c_str(), &st) != 0) {
              log_warning(r.id + ": setup.d/" + u.name + " has gone; not running it for setup-stop");
              break;
            }
            auto dev_it = r.keys.find("mount-device");
            Environment env = hook_environment(
                hook_context(def, r, auth, real, dev_it == r.keys.end() ? "" : dev_it->second));
            int rc = run_hook(m_.paths_.setup_d(), u.name, "setup-stop", status, env);
            // Hooks' failures at stop are reported and the rest still runs (schroot 1.6).
            if (rc != 0) log_warning(r.id + ": setup.d/" + u.name + " setup-stop exited with status " + std::to_string(rc));
            break;
          }
          case UndoStep::Op::kLvRemove:
            failures.push_back(u.step + ": lvremove is not supported by this build");
            break;
        }
      } catch (const std::exception& e) {
        failures.push_back(u.step + ": " + e.what());
      }
    }
    reason = join(failures, "; ");
    return failures.empty();
  }


  // Ends a session whose session lock we hold: kill what runs inside, undo, and
  // remove the record — or mark it broken with the reason.
  void finish(FileLock& session_lock, SessionRecord& r, const ChrootDef& def, const std::string& status, const UserInfo& auth,
              const UserInfo& real, bool durable) {
    if (r.state != SessionState::kEnding) mark(r, SessionState::kEnding, r.broken_reason, /*durable=*/false);
    fail_point("end:ending");
    sys::kill_processes_in_session(sys::open_session_root(r.mount_location), kKillGrace);
    std::string reason;
    // Lazy detach only now that the session's processes are gone.
    if (!undo(r, def, status, /*allow_lazy=*/true, /*keep_data=*/false, auth, real, reason)) {
      mark(r, SessionState::kBroken, reason, durable);
      throw UserError(r.id + ": session could not be ended completely and is marked broken: " + reason +
                      "\nI: fix the cause, then run schroot --end-session -c " + r.id + " again");
    }
    fail_point("end:undone");
    remove_record_and_claim(r, def);
    session_lock.remove_file();
  }

  SessionManager& m_;
  RecordStore records_;
  ClaimStore claims_;
};

SessionManager::SessionManager(const Paths& paths, char** caller_env) : paths_(paths), caller_env_(caller_env) {}

std::vector<std::string> SessionManager::session_ids() const { return RecordStore(paths_).list(); }

void SessionManager::remove_abandoned_temporaries() {
  SessionTransaction tx(*this);
  tx.ensure_dirs();
  FileLock manage = tx.manage_lock();
  RecordStore::remove_temporaries(paths_.session_dir);
  RecordStore::remove_temporaries(paths_.claims_dir);
  // Session lock files whose session has no record (a begin killed before writing
  // it): nobody can be waiting for such a session; remove what nobody holds.
  RecordStore records(paths_);
  const std::string suffix = kSessionLockSuffix;
  DIR* d = ::opendir(paths_.lock_dir.c_str());
  if (!d) return;
  std::vector<std::string> orphans, orphan_notes;
  const std::string notes = suffix + ".holders";
  while (struct dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n.size() > notes.size() && n.compare(n.size() - notes.size(), notes.size(), notes) == 0) {
      const std::string lock = paths_.lock_dir + "/" + n.substr(0, n.size() - notes.size() + suffix.size());
      if (::access(lock.c_str(), F_OK) != 0) orphan_notes.push_back(lock);
      continue;
    }
    if (n.size() <= suffix.size() || n.compare(n.size() - suffix.size(), suffix.size(), suffix) != 0) continue;
    std::string id = n.substr(0, n.size() - suffix.size());
    if (!records.exists(id)) orphans.push_back(id);
  }
  ::closedir(d);
  for (const auto& id : orphans)
    if (auto lock = FileLock::try_acquire(tx.lock_path(id), LockMode::kExclusive)) lock->remove_file();
  for (const auto& lock : orphan_notes) FileLock::remove_holder_notes(lock);
}

SessionRecord SessionManager::read_record(const std::string& id) const { return RecordStore(paths_).read(id); }

bool SessionManager::is_live(const SessionRecord& r) const {
  // An automatic session lives exactly as long as the process that owns it: a -r
  // that joined it may still hold its lock, but the mounts died with their owner.
  if (r.automatic && r.pid_start_time != 0 && !sys::is_alive(owner_of(r))) return false;
  if (!FileLock::is_free(session_lock_path(paths_, r.id), LockMode::kExclusive)) return true;
  // Nobody holds its lock: only a completed -b session lives on without a process.
  return r.state == SessionState::kActive && !r.automatic;
}

void SessionManager::end_session_processes(const SessionRecord& r) const {
  int killed = sys::kill_processes_in_session(sys::open_session_root(r.mount_location), kKillGrace);
  if (killed) log_note(r.id + ": ended " + std::to_string(killed) + " process(es) still running in the session");
}

ChrootDef SessionManager::definition_of(const SessionRecord& r) {
  std::map<std::string, std::string> keys = r.keys;
  for (const char* k : {"name", "mount-location", "original-name", "selected-name", "mount-device"}) keys.erase(k);
  for (const char* k : {"union-overlay-directory", "union-underlay-directory"}) {
    auto it = keys.find(k);
    if (it != keys.end()) strip_suffix(it->second, "/" + r.id);
  }
  if (auto it = keys.find("description"); it != keys.end()) {
    strip_suffix(it->second, " (session chroot)");
    strip_suffix(it->second, " (source chroot)");
  }
  return Config::from_keys(r.chroot_name, keys);
}

// ---------------------------------------------------------------------------------

namespace {

struct Begun {
  SessionRecord record;
  ChrootDef def;
  std::optional<FileLock> session_lock;
};

// The chroot a session of `found` uses: a source: session gets the source's access
// lists and no union.
ChrootDef session_definition(const ChrootSet::Found& found) {
  return found.ns == Namespace::kSource ? Config::source_of(*found.def) : *found.def;
}

std::map<std::string, std::string> session_keys(const ChrootDef& def, const SessionRecord& r, const UserInfo& caller,
                                                const backends::SourceBackend& backend,
                                                const backends::SessionContext& ctx) {
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
  const bool root_member = contains(def.root_users, caller.name) || in_groups(def.root_groups);
  keys["users"] = root_member ? "" : caller.name;
  keys["root-users"] = root_member ? caller.name : "";
  backend.session_keys(ctx, keys);
  return keys;
}

}  // namespace

static Begun start_session(SessionTransaction& tx, const Paths& paths,
                           const ChrootSet::Found& found, const SessionRequest& req, bool automatic) {
  tx.signals.hold();
  const UserInfo caller = lookup_uid(::getuid());
  const UserInfo target = target_user(req, caller);
  Begun b;
  b.def = session_definition(found);
  ChrootDef& def = b.def;
  check_access(def.name, def.users, def.groups, def.root_users, def.root_groups, caller, target);
  apply_options(def, req, caller, target);
  const bool source = found.ns == Namespace::kSource;
  auto backend = backends::make_backend(def, source);

  SessionRecord& r = b.record;
  r.id = req.session_name.empty() ? new_session_id(def.name) : req.session_name;
  // A plain character loop: no std::regex on argv in a setuid process (its recursive
  // matcher can overflow the stack on a long name).
  if (r.id.size() > kMaxSessionName || !Config::valid_name(r.id)) throw UserError(r.id + ": Invalid session name\nI: Naming restrictions are documented in chroot.conf(5)");
  r.chroot_name = def.name;
  r.selected_name = found.selected;
  r.source = source;
  r.automatic = automatic;
  r.boot_id = sys::boot_id();
  // Who we are, so that nobody mistakes a process that later takes our pid for us;
  // an automatic session's mounts live in our mount namespace, recorded with it.
  const sys::ProcessIdentity self = sys::ProcessIdentity::of_self();
  r.pid = self.pid;
  r.pid_start_time = self.start_time;
  if (automatic) {
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

  tx.ensure_dirs();
  // The session lock first: nobody can end or recover what we are still building.
  auto got = FileLock::try_acquire(tx.lock_path(r.id), LockMode::kExclusive);
  if (!got) throw UserError(r.id + ": a session with this name is in use");
  b.session_lock.emplace(std::move(*got));
  // A record under this name whose lock nobody held: a dead process's session in
  // the way. Roll it back (a live -b session keeps its name).
  if (tx.records_.exists(r.id)) {
    SessionRecord old = tx.records_.read(r.id);
    if (old.state == SessionState::kActive && !old.automatic)
      throw UserError(r.id + ": a session with this name already exists");
    log_note(r.id + ": rolling back a session of this name left " + to_string(old.state) + " by a dead process");
    tx.finish(*b.session_lock, old, SessionManager::definition_of(old), "fail", caller, caller, /*durable=*/true);
    // finish() removed the lock file we hold: lock the new one at the path.
    b.session_lock.reset();
    auto fresh = FileLock::try_acquire(tx.lock_path(r.id), LockMode::kExclusive);
    if (!fresh) throw UserError(r.id + ": a session with this name is in use");
    b.session_lock.emplace(std::move(*fresh));
  }

  backends::SessionContext ctx{def, paths, r.id, r.mount_location, source};
  ctx.throwaway = automatic;
  const auto stages = stage_order(list_hooks(paths.setup_d()));
  try {
    r.undo = tx.plan(*backend, ctx, def, stages);
    r.keys = session_keys(def, r, caller, *backend, ctx);
    const int source_timeout = req.source_lock_timeout >= 0 ? req.source_lock_timeout : def.source_lock_timeout;
    tx.write_ahead(r, def, source_timeout, /*durable=*/!automatic, caller);
  } catch (...) {
    // No record was written: nothing else will ever remove our lock file.
    b.session_lock->remove_file();
    throw;
  }
  fail_point("begin:written");

  try {
    tx.run_stages(r, def, *backend, ctx, stages, target, caller, /*recovering=*/false);
    fail_point("begin:done");
    tx.mark(r, SessionState::kActive, "", /*durable=*/!automatic);
    fail_point("begin:active");
  } catch (const std::exception& e) {
    log_error(e.what());
    // Roll back: setup-stop with status fail, undo in reverse, no record left.
    ctx.release_devices();
    try {
      tx.finish(*b.session_lock, r, def, "fail", target, caller, !automatic);
    } catch (const std::exception& rollback) {
      log_error(rollback.what());
    }
    throw UserError(def.name + ": Chroot setup failed; the session was rolled back");
  }
  return b;
}

std::string SessionManager::begin(const ChrootSet::Found& chroot, const SessionRequest& req,
                                  const std::function<bool(const std::string&)>& announce) {
  SessionTransaction tx(*this);
  Begun b = start_session(tx, paths_, chroot, req, /*automatic=*/false);
  // Signals are still held: either the caller learns the id, or the session is
  // rolled back. Never an active session that nobody knows about.
  if (tx.signals.pending() || !announce(b.record.id)) {
    const UserInfo caller = lookup_uid(::getuid());
    const UserInfo target = target_user(req, caller);
    tx.finish(*b.session_lock, b.record, b.def, "fail", target, caller, /*durable=*/true);
    throw UserError(b.def.name + (tx.signals.pending() ? ": interrupted by a signal" : ": the session id could not be written") +
                    "; the session was rolled back");
  }
  tx.signals.discard_pending();  // the id is out: the session stands
  return b.record.id;
}

int SessionManager::automatic(const ChrootSet::Found& chroot, const SessionRequest& req) {
  // A private mount namespace: if this process dies, the kernel drops every mount
  // with it; the record (marked automatic) lets recovery remove what outlives it.
  if (::unshare(CLONE_NEWNS) != 0) throw SystemError("unshare", "mount namespace", errno);
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_SLAVE, nullptr) != 0)
    throw SystemError("make / a slave mount", "/", errno);
  SessionTransaction tx(*this);
  Begun b = start_session(tx, paths_, chroot, req, /*automatic=*/true);
  SessionRecord& r = b.record;
  const UserInfo caller = lookup_uid(::getuid());
  const UserInfo target = target_user(req, caller);
  RunSpec spec = run_spec(r.path, b.def, req, caller, target, r.selected_name, r.id);
  // Shared while the command runs: the user's other schroot -r may join the session
  // (through this process's mount namespace), as in schroot 1.6.
  b.session_lock->downgrade_to_shared();
  int status = 1;
  if (tx.signals.pending()) {
    log_error(b.def.name + ": interrupted by a signal before the command ran");
  } else {
    // The command gets the terminal's signals; schroot forwards SIGTERM/SIGHUP.
    tx.signals.lift();
    try {
      // What the command leaves running is reparented to us and ended with it.
      sys::become_subreaper();
      status = run_in_chroot(spec, caller_env_);
    } catch (const std::exception& e) {
      log_error(e.what());
    }
    tx.signals.hold();
  }
  if (int left = sys::end_descendants(kKillGrace))
    log_info(r.id + ": ended " + std::to_string(left) + " process(es) the command left running");
  fail_point("automatic:ran");
  try {
    b.session_lock->upgrade_to_exclusive(milliseconds(0), "session " + r.id);
  } catch (const LockTimeout&) {
    // Commands that joined the session end with it (schroot 1.6's killprocs).
    sys::kill_processes_in_session(sys::open_session_root(r.mount_location), kKillGrace);
    b.session_lock->upgrade_to_exclusive(seconds(std::max(b.def.session_lock_timeout, 5)), "session " + r.id);
  }
  // An -e of ours may have ended the session while we waited for it.
  if (RecordStore(paths_).exists(r.id)) tx.finish(*b.session_lock, r, b.def, "ok", target, caller, /*durable=*/false);
  // The session is gone and the command's status known: a signal that came during
  // the teardown must not replace that status with its own.
  tx.signals.discard_pending();
  return status;
}

int SessionManager::run_plain(const ChrootSet::Found& found, const SessionRequest& req) {
  const ChrootDef& def = *found.def;
  const UserInfo caller = lookup_uid(::getuid());
  const UserInfo target = target_user(req, caller);
  check_access(def.name, def.users, def.groups, def.root_users, def.root_groups, caller, target);
  RunSpec spec = run_spec(def.directory, def, req, caller, target, found.selected, "");
  return run_in_chroot(spec, caller_env_);
}

int SessionManager::run(const std::string& id, const SessionRequest& req) {
  SessionTransaction tx(*this);
  auto [r, caller, def, timeout] = open_owned(RecordStore(paths_), id, req);
  tx.ensure_dirs();  // the run dir may be new (a reboot): every verb makes what it needs
  const UserInfo target = target_user(req, caller);
  check_access(id, def.users, def.groups, def.root_users, def.root_groups, caller, target);
  // Shared: other -r may run beside us; -e and -b wait until we are done.
  FileLock lock = FileLock::acquire(tx.lock_path(id), LockMode::kShared, seconds(timeout), "session " + id);
  r = RecordStore(paths_).read(id);  // it may have changed while we waited
  if (r.state != SessionState::kActive)
    throw UserError(id + ": session is " + to_string(r.state) + (r.automatic ? " (automatic)" : "") +
                    (r.broken_reason.empty() ? "" : ": " + r.broken_reason) + "; cannot run in it");
  if (r.boot_id != sys::boot_id())
    throw UserError(id + ": the session was begun before the last reboot; run schroot --recover-session -c " + id +
                    " first");
  RunSpec spec = run_spec(r.path, def, req, caller, target, r.selected_name, r.id);
  // An automatic session's mounts exist only in its process's mount namespace. That
  // process is joined only as recorded: the pid alone may be anybody's by now (a
  // user's own namespace, with a forged /etc/group in it), so a session whose process
  // is not the recorded one is stale, never a target.
  sys::UniqueFd mount_ns;
  if (r.automatic) {
    mount_ns = sys::open_mount_namespace(owner_of(r));
    if (!mount_ns)
      throw UserError(id + ": the automatic session's process (pid " + std::to_string(r.pid) +
                      ") has ended; the session is stale\nI: run schroot --recover-session -c " + id +
                      " to remove it");
    spec.mount_ns_fd = mount_ns.get();
  }
  return run_in_chroot(spec, caller_env_);
}

void SessionManager::end(const std::string& id, const SessionRequest& req) {
  SessionTransaction tx(*this);
  RecordStore records(paths_);
  auto [r, caller, def, timeout] = open_owned(records, id, req);
  tx.ensure_dirs();
  std::optional<FileLock> lock;
  if (req.force) {
    // --force: what still runs in the session (a -r command holding the lock) is
    // killed, which lets its schroot release the lock.
    lock = FileLock::try_acquire(tx.lock_path(id), LockMode::kExclusive);
    if (!lock) {
      int killed = sys::kill_processes_in_session(sys::open_session_root(r.mount_location), kKillGrace);
      log_warning(id + ": --force: killed " + std::to_string(killed) + " process(es) running in the session");
      lock.emplace(FileLock::acquire(tx.lock_path(id), LockMode::kExclusive, seconds(std::max(timeout, 5)),
                                     "session " + id));
    }
  } else {
    lock.emplace(FileLock::acquire(tx.lock_path(id), LockMode::kExclusive, seconds(timeout), "session " + id));
  }
  tx.signals.hold();  // from here the end runs to completion
  r = records.read(id);  // someone may have ended it while we waited
  // A broken session is ended by retrying its undo: what is gone already counts as done.
  if (r.state == SessionState::kBroken) log_note(id + ": retrying the undo of a broken session (" + r.broken_reason + ")");
  tx.finish(*lock, r, def, "ok", caller, caller, /*durable=*/true);
}

void SessionManager::recover(const std::string& id, const SessionRequest& req) {
  SessionTransaction tx(*this);
  RecordStore records(paths_);
  auto [r, caller, def, timeout] = open_owned(records, id, req);
  tx.ensure_dirs();
  // An automatic session whose process has died is stale even if a command that
  // joined it (-r) still runs there, holding its lock: end what runs in it.
  if (r.automatic && !is_live(r)) end_session_processes(r);
  std::optional<FileLock> got;
  if (req.skip_sessions_in_use) {
    // --all-sessions: one try each; a session a live process is using is not ours to wait for.
    got = FileLock::try_acquire(tx.lock_path(id), LockMode::kExclusive);
    if (!got) {
      log_note(id + ": in use by a live process; skipped");
      return;
    }
  } else {
    got.emplace(FileLock::acquire(tx.lock_path(id), LockMode::kExclusive, seconds(timeout), "session " + id));
  }
  FileLock& lock = *got;
  tx.signals.hold();
  r = records.read(id);
  if (r.state != SessionState::kActive || r.automatic) {
    // Left by a dead process (or broken): roll it back from its undo list.
    log_note(id + ": session " + to_string(r.state) + (r.automatic ? " (automatic)" : "") +
             " with no live process: rolling it back");
    tx.finish(lock, r, def, "fail", caller, caller, /*durable=*/true);
    return;
  }
  // A healthy session (this boot, its root mounted) is left alone: recovering every
  // session must not disturb builds running in live ones.
  if (r.boot_id == sys::boot_id() && sys::is_mounted_at_or_below(r.mount_location)) {
    log_note(id + ": session is active and mounted; nothing to recover");
    return;
  }
  // An active -b session: remount whatever is missing (after a reboot, everything),
  // keeping the union's upper dir with the session's changes.
  auto backend = backends::make_backend(def, r.source);
  backends::SessionContext ctx{def, paths_, r.id, r.mount_location, r.source, /*recovering=*/true};
  std::string reason;
  // As schroot 1.6's recover: what runs in the session is ended before remounting.
  sys::kill_processes_in_session(sys::open_session_root(r.mount_location), kKillGrace);
  tx.undo(r, def, "ok", /*allow_lazy=*/false, /*keep_data=*/true, caller, caller, reason);
  if (!reason.empty()) throw UserError(id + ": cannot recover: " + reason);
  const auto stages = stage_order(list_hooks(paths_.setup_d()));
  try {
    tx.run_stages(r, def, *backend, ctx, stages, caller, caller, /*recovering=*/true);
  } catch (const std::exception& e) {
    std::string ignored;
    tx.undo(r, def, "fail", true, /*keep_data=*/true, caller, caller, ignored);
    throw UserError(id + ": recovery failed: " + e.what());
  }
  r.boot_id = sys::boot_id();
  tx.mark(r, SessionState::kActive, "", /*durable=*/true);
}

}  // namespace schroot
