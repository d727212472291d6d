// SessionManager's small members and what the engine's verbs share. The verbs are in
// session_begin.cc (begin, automatic), session_run.cc (run, run_plain) and
// session_end.cc (end, recover); a session's transaction in session_transaction.cc.
#include "src/session.h"

#include <dirent.h>
#include <unistd.h>

#include "src/lock.h"
#include "src/log.h"
#include "src/session_internal.h"
#include "src/sys/fs.h"
#include "src/sys/identity.h"
#include "src/sys/process.h"
#include "src/text.h"

namespace schroot {

namespace {

// manage.lock is only ever held for milliseconds; waiting longer means trouble.
constexpr std::chrono::milliseconds kManageLockTimeout{10000};

void strip_suffix(std::string& s, const std::string& suffix) {
  if (ends_with(s, suffix)) s.erase(s.size() - suffix.size());
}

}  // namespace

std::string session_lock_path(const Paths& paths, const std::string& id) {
  return paths.lock_dir + "/" + id + kSessionLockSuffix;
}

FileLock manage_lock(const Paths& paths) {
  return FileLock::acquire(paths.lock_dir + "/manage.lock", LockMode::kExclusive, kManageLockTimeout, "manage lock");
}

void ensure_session_dirs(const Paths& paths) {
  for (const auto* d : {&paths.session_dir, &paths.lock_dir, &paths.mount_dir, &paths.claims_dir})
    sys::mkdir_p(*d, 0755);
}

sys::ProcessIdentity owner_of(const SessionRecord& r) {
  sys::ProcessIdentity id;
  id.pid = r.pid;
  id.start_time = r.pid_start_time;
  id.mnt_ns_dev = r.mnt_ns_dev;
  id.mnt_ns_ino = r.mnt_ns_ino;
  id.mnt_ns_id = r.mnt_ns_id;
  return id;
}

bool session_is_live(const Paths& paths, const SessionRecord& r) {
  // An automatic session lives exactly as long as the process that owns it: a -r
  // that joined it may still hold its lock, but the mounts died with their owner.
  if (r.automatic && r.pid_start_time != 0 && !sys::is_alive(owner_of(r))) return false;
  if (!FileLock::is_free(session_lock_path(paths, r.id), LockMode::kExclusive)) return true;
  // Nobody holds its lock: only a completed -b session lives on without a process.
  return r.state == SessionState::kActive && !r.automatic;
}

SessionManager::SessionManager(const Paths& paths, char** caller_env) : paths_(paths), caller_env_(caller_env) {}

std::vector<std::string> SessionManager::session_ids() const { return RecordStore(paths_).list(); }

bool SessionManager::session_exists(const std::string& id) const {
  return Config::valid_name(id) && RecordStore(paths_).exists(id);
}

void SessionManager::remove_abandoned_temporaries() {
  ensure_session_dirs(paths_);
  FileLock manage = manage_lock(paths_);
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
    if (n.size() > notes.size() && ends_with(n, notes)) {
      const std::string lock = paths_.lock_dir + "/" + n.substr(0, n.size() - notes.size() + suffix.size());
      if (::access(lock.c_str(), F_OK) != 0) orphan_notes.push_back(lock);
      continue;
    }
    if (n.size() <= suffix.size() || !ends_with(n, suffix)) continue;
    std::string id = n.substr(0, n.size() - suffix.size());
    if (!records.exists(id)) orphans.push_back(id);
  }
  ::closedir(d);
  for (const auto& id : orphans)
    if (auto lock = FileLock::try_acquire(session_lock_path(paths_, id), LockMode::kExclusive)) lock->remove_file();
  for (const auto& lock : orphan_notes) FileLock::remove_holder_notes(lock);
}

SessionRecord SessionManager::read_record(const std::string& id) const { return RecordStore(paths_).read(id); }

bool SessionManager::is_live(const SessionRecord& r) const { return session_is_live(paths_, r); }

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
  if (auto it = keys.find("description"); it != keys.end()) it->second = Config::chroot_description(it->second);
  return Config::from_keys(r.chroot_name, keys);
}

}  // namespace schroot
