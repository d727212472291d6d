// Who may use a chroot or a session, and what a user may change in it: schroot 1.6's
// access rules (behaviour reference §7), applied before anything of a session is built.
#pragma once

#include <string>

#include "src/chroot_def.h"
#include "src/environment.h"
#include "src/pam.h"
#include "src/paths.h"
#include "src/record.h"
#include "src/run_command.h"
#include "src/session.h"

namespace schroot {

// The user the command runs as: -u, or the caller.
UserInfo target_user(const SessionRequest& req, const UserInfo& caller);

enum class Authentication { kNone, kPassword };
// schroot 1.6's access rules: throws UserError (naming `shown`, the chroot or session)
// when `caller` may not use `def` as `target`; else whether PAM must authenticate the
// target user first (a user switching user, and root: pam_rootok answers for root).
Authentication access_needs(const std::string& shown, const ChrootDef& def, const UserInfo& caller,
                            const UserInfo& target);

// access_needs for an action without PAM (named snapshots): refuses a user where a
// password would be asked. Root may always.
void check_access(const std::string& shown, const ChrootDef& def, const UserInfo& caller, const UserInfo& target);

// The PAM part of every operation (begin, run, end, recover, automatic), as schroot
// 1.6: the access rules, authentication where they ask for a password, then the
// account check and credentials (always: an expired account fails, root's too). On
// the host, before anything enters the chroot. A refusal is logged to syslog.
PamSession authorise(const std::string& shown, const ChrootDef& def, const UserInfo& caller, const UserInfo& target,
                     const Paths& paths, char** caller_env);

// The user's command (run and automatic sessions) inside a PAM session, opened and
// closed around it (schroot 1.6); PAM's environment is the command's base.
int run_in_pam_session(PamSession& pam, RunSpec& spec, char** caller_env);

// One syslog line for a begin, end, recovery or automatic session: what, which
// session (empty: none yet) of which chroot, who (caller name and uid, target), the
// result (the first line of a failure's message).
struct SessionEvent {
  std::string what, id, chroot;
  const UserInfo& caller;
  const UserInfo& target;
};
void log_session_event(const Paths& paths, const SessionEvent& event, bool failed, const std::string& result);

// Is the caller in the chroot's root-users or root-groups?
bool is_root_member(const ChrootDef& def, const UserInfo& caller);

// -o KEY=VALUE: only keys the chroot lets users (or root) modify.
void apply_options(ChrootDef& def, const SessionRequest& req, const UserInfo& caller, const UserInfo& target);

// A session the caller may act on: only its creator and root may run in, end or
// recover it (schroot 1.6). Everything is read from the record, never chroot.conf.
struct OwnedSession {
  SessionRecord record;
  UserInfo caller;
  ChrootDef def;
  int lock_timeout;  // seconds: the request's, else the session's chroot's
};
OwnedSession open_owned(const RecordStore& records, const std::string& id, const SessionRequest& req);

}  // namespace schroot
