// Who may use a chroot or a session, and what a user may change in it: schroot 1.6's
// access rules (behaviour reference §7), applied before anything of a session is built.
#pragma once

#include <string>

#include "src/chroot_def.h"
#include "src/environment.h"
#include "src/record.h"
#include "src/session.h"

namespace schroot {

// The user the command runs as: -u, or the caller.
UserInfo target_user(const SessionRequest& req, const UserInfo& caller);

// Throws UserError (naming `shown`, the chroot or session) unless `caller` may use
// `def` as `target`. Root may always.
void check_access(const std::string& shown, const ChrootDef& def, const UserInfo& caller, const UserInfo& target);

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
