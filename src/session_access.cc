#include "src/session_access.h"

#include <grp.h>
#include <unistd.h>

#include <algorithm>
#include <vector>

#include "src/config.h"
#include "src/error.h"
#include "src/log.h"

namespace schroot {

namespace {

bool contains(const std::vector<std::string>& list, const std::string& item) {
  return std::find(list.begin(), list.end(), item) != list.end();
}

std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

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

}  // namespace

UserInfo target_user(const SessionRequest& req, const UserInfo& caller) {
  return req.user.empty() ? caller : lookup_user(req.user);
}

Authentication access_needs(const std::string& shown, const ChrootDef& def, const UserInfo& caller,
                            const UserInfo& target) {
  const bool user_ok = contains(def.users, caller.name) || in_groups(def.groups);
  const bool root_ok = is_root_member(def, caller);
  if ((user_ok || root_ok) && target.uid == caller.uid) return Authentication::kNone;
  if (root_ok && target.uid == 0) return Authentication::kNone;
  if (user_ok || caller.uid == 0) return Authentication::kPassword;
  throw UserError(shown + ": Access not authorised\nI: You do not have permission to access the schroot service.");
}

void check_access(const std::string& shown, const ChrootDef& def, const UserInfo& caller, const UserInfo& target) {
  if (access_needs(shown, def, caller, target) == Authentication::kPassword && caller.uid != 0)
    throw UserError(shown + ": switching to user ‘" + target.name + "’ needs authentication, which this action does "
                    "not ask for");
}

PamSession authorise(const std::string& shown, const ChrootDef& def, const UserInfo& caller, const UserInfo& target,
                     const Paths& paths, char** caller_env) {
  try {
    const Authentication needs = access_needs(shown, def, caller, target);
    PamSession pam({target.name, caller.name, paths.pam_confdir});
    if (needs == Authentication::kPassword) pam.authenticate();
    pam.put_environment(login_environment(target, caller_env).to_strings());
    pam.check_account();
    pam.establish_credentials();
    return pam;
  } catch (const std::exception& e) {
    // schroot 1.6's "ruser->user" form, for whoever audits refusals.
    log_syslog(paths.syslog_socket, true, "[" + def.name + " chroot] (" + caller.name + "->" + target.name + ") uid " +
                         std::to_string(caller.uid) + " refused: " + first_line(e.what()));
    throw;
  }
}

int run_in_pam_session(PamSession& pam, RunSpec& spec, char** caller_env) {
  pam.open_session();
  spec.pam_env = pam.environment();
  const int status = run_in_chroot(spec, caller_env);
  pam.close_session();
  return status;
}

void log_session_event(const Paths& paths, const SessionEvent& e, bool failed, const std::string& result) {
  log_syslog(paths.syslog_socket, failed,
             e.what + " session " + (e.id.empty() ? "(none)" : e.id) + " of chroot " + e.chroot + " by " +
                 e.caller.name + " (uid " + std::to_string(e.caller.uid) + ") as " + e.target.name + ": " +
                 (failed ? "failed: " : "") + first_line(result));
}

bool is_root_member(const ChrootDef& def, const UserInfo& caller) {
  return contains(def.root_users, caller.name) || in_groups(def.root_groups);
}

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

OwnedSession open_owned(const RecordStore& records, const std::string& id, const SessionRequest& req) {
  SessionRecord r = records.read(id);
  UserInfo caller = lookup_uid(::getuid());
  if (caller.uid != 0 && caller.uid != r.ruid)
    throw UserError(id + ": Access not authorised (the session belongs to " + r.ruser + ")");
  ChrootDef def = SessionManager::definition_of(r);
  const int timeout = req.session_lock_timeout >= 0 ? req.session_lock_timeout : def.session_lock_timeout;
  return {std::move(r), std::move(caller), std::move(def), timeout};
}

}  // namespace schroot
