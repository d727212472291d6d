// The session engine: begin, run, end, recover and automatic sessions.
// A session is a transaction with a written undo list (DESIGN.md §4): the record
// is written ahead with every planned undo step, the stages run, and any failure,
// crash or -e replays the undo list in reverse through one generic path.
// Locks (DESIGN.md §5): manage.lock around record/claim updates (milliseconds),
// the session lock exclusive for begin/end/recover (shared while -r runs).
// Where the engine lives: session_begin.cc (begin, automatic), session_run.cc (run,
// run_plain), session_end.cc (end, recover); the transaction every begin, end and
// recover goes through (lock, record, claim, stages, undo) in session_transaction.h;
// access rules in session_access.h; the stages and their undo plan in session_stages.h.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "src/config.h"
#include "src/environment.h"
#include "src/paths.h"
#include "src/record.h"
#include "src/session_request.h"

namespace schroot {

class SessionManager {
 public:
  SessionManager(const Paths& paths, char** caller_env);

  // -b: `announce` tells the caller the new session's id (prints it) while
  // termination signals are still held; when it fails (false) or a signal came, the
  // session is rolled back and UserError thrown. Returns the id.
  std::string begin(const ChrootSet::Found& chroot, const SessionRequest& req,
                    const std::function<bool(const std::string&)>& announce);
  // -r: the command's exit status.
  int run(const std::string& id, const SessionRequest& req);
  // -e
  void end(const std::string& id, const SessionRequest& req);
  // --recover-session: rolls back a session of a dead process, remounts an active
  // one after a reboot, retries the undo of a broken one.
  void recover(const std::string& id, const SessionRequest& req);
  // The default action: begin in a private mount namespace, run, end.
  int automatic(const ChrootSet::Found& chroot, const SessionRequest& req);
  // A plain chroot: no session, runs in the directory as it is (schroot 1.6).
  int run_plain(const ChrootSet::Found& chroot, const SessionRequest& req);

  std::vector<std::string> session_ids() const;
  // Is there a session record (or a schroot 1.6 session file) named `id`? One stat, not
  // a listing: -r and -e stay flat with 1,000 live sessions. `id` must be a valid name
  // (Config::valid_name: no '/', no leading '.').
  bool session_exists(const std::string& id) const;
  // Under manage.lock: removes what begins and writers killed midway left behind
  // (temporary files, lock files of sessions that have no record).
  void remove_abandoned_temporaries();
  SessionRecord read_record(const std::string& id) const;
  // The chroot a session was made from, rebuilt from its record (never chroot.conf).
  static ChrootDef definition_of(const SessionRecord& r);

  // Is a live process working on this session? (its session lock is held, or it is
  // an active -b session, which lives without a process).
  bool is_live(const SessionRecord& r) const;

 private:
  // Ends the processes running in a session (those whose root is its root).
  void end_session_processes(const SessionRecord& r) const;

  Paths paths_;
  char** caller_env_;
};

}  // namespace schroot
