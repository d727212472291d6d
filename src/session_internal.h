// What the session engine's files (session*.cc) share. Not an API: callers use
// session.h.
#pragma once

#include <chrono>
#include <string>

#include "src/environment.h"
#include "src/lock.h"
#include "src/paths.h"
#include "src/record.h"
#include "src/run_command.h"
#include "src/session.h"
#include "src/sys/identity.h"

namespace schroot {

// How long processes left in a session get between SIGTERM and SIGKILL.
constexpr std::chrono::milliseconds kKillGrace{2000};

inline std::chrono::milliseconds seconds(int s) { return std::chrono::milliseconds(static_cast<int64_t>(s) * 1000); }

// A session's lock file: lock_dir/<id>.session (never clashes with manage.lock).
constexpr const char* kSessionLockSuffix = ".session";
std::string session_lock_path(const Paths& paths, const std::string& id);

// manage.lock, around every update of records and claims (held for milliseconds).
FileLock manage_lock(const Paths& paths);

// The directories every verb may need (the run dir may be new after a reboot).
void ensure_session_dirs(const Paths& paths);

// The process that began a session, as its record identifies it.
sys::ProcessIdentity owner_of(const SessionRecord& r);

// SessionManager::is_live, for the engine's parts that have no SessionManager.
bool session_is_live(const Paths& paths, const SessionRecord& r);

// What run_in_chroot needs, from the chroot, the request and the session.
RunSpec run_spec(const std::string& root, const ChrootDef& def, const SessionRequest& req, const UserInfo& caller,
                 const UserInfo& target, const std::string& alias, const std::string& session_id);

}  // namespace schroot
