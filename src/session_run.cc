// Running in a chroot: -r in an existing session, and a plain chroot (no session).
#include <unistd.h>

#include "backends/registry.h"
#include "src/error.h"
#include "src/lock.h"
#include "src/session.h"
#include "src/session_access.h"
#include "src/session_internal.h"
#include "src/sys/fs.h"
#include "src/sys/identity.h"
#include "src/sys/unique_fd.h"

namespace schroot {

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

int SessionManager::run_plain(const ChrootSet::Found& found, const SessionRequest& req) {
  const ChrootDef& def = *found.def;
  const UserInfo caller = lookup_uid(::getuid());
  const UserInfo target = target_user(req, caller);
  PamSession pam = authorise(def.name, def, caller, target, paths_, caller_env_);
  RunSpec spec = run_spec(def.directory, def, req, caller, target, found.selected, "");
  return run_in_pam_session(pam, spec, caller_env_);
}

int SessionManager::run(const std::string& id, const SessionRequest& req) {
  auto [r, caller, def, timeout] = open_owned(RecordStore(paths_), id, req);
  ensure_session_dirs(paths_);  // the run dir may be new (a reboot): every verb makes what it needs
  const UserInfo target = target_user(req, caller);
  // PAM before the lock: a password prompt must not keep -e waiting.
  PamSession pam = authorise(id, def, caller, target, paths_, caller_env_);
  // Shared: other -r may run beside us; -e and -b wait until we are done.
  FileLock lock = FileLock::acquire(session_lock_path(paths_, id), LockMode::kShared, seconds(timeout), "session " + id);
  r = RecordStore(paths_).read(id);  // it may have changed while we waited
  if (r.state != SessionState::kActive)
    throw UserError(id + ": session is " + to_string(r.state) + (r.automatic ? " (automatic)" : "") +
                    (r.broken_reason.empty() ? "" : ": " + r.broken_reason) + "; cannot run in it");
  if (r.boot_id != sys::boot_id())
    throw UserError(id + ": the session was begun before the last reboot; run schroot --recover-session -c " + id +
                    " first");
  // An overflowed snapshot would only give the command I/O errors.
  backends::check_session_usable(id, r.keys);
  RunSpec spec = run_spec(r.path, def, req, caller, target, r.selected_name, r.id);
  // The root of a session schroot 1.6 began lies below its mount location when the
  // chroot has a location=: resolved inside the mounted tree, which the chroot's
  // owner controls, so that no link there leads the chroot out of it.
  sys::UniqueFd below;
  if (r.path != r.mount_location) {
    below = sys::resolve_in_root(sys::open_path(r.mount_location).get(), r.path.substr(r.mount_location.size()),
                                 O_PATH | O_DIRECTORY);
    spec.root = "/proc/self/fd/" + std::to_string(below.get());
  }
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
  return run_in_pam_session(pam, spec, caller_env_);
}

}  // namespace schroot
