// PAM as schroot 1.6 uses it: service "schroot", the target user's account and
// session, the caller as PAM_RUSER; a password is asked on the controlling terminal.
// Setuid rule (DESIGN §12): every PAM call (they dlopen modules and call NSS) happens
// on the host, as root, before anything enters the chroot and before the command's
// child is forked; the session is closed and the handle ended in the parent.
// Built without PAM (configure --disable-pam), every call is a no-op except
// authenticate(), which refuses every caller but root.
#pragma once

#include <memory>
#include <string>
#include <vector>

struct pam_handle;  // <security/pam_appl.h>'s pam_handle_t

namespace schroot {

struct PamRequest {
  std::string user;     // the target user: whose account, credentials and session
  std::string ruser;    // the caller (PAM_RUSER)
  // Empty: the system's configuration (/etc/pam.d). Only the test build sets one
  // (Paths::pam_confdir, compiled in; never from the environment: see paths.h).
  std::string confdir;
};

class PamSession {
 public:
  // pam_start with PAM_RUSER, PAM_RHOST (this host's name) and PAM_TTY (stdin's
  // terminal, if any). Throws UserError.
  explicit PamSession(const PamRequest& req);
  // Closes the session and deletes the credentials if they were opened, then pam_end.
  ~PamSession();
  PamSession(PamSession&& other) noexcept;
  PamSession& operator=(PamSession&&) = delete;
  PamSession(const PamSession&) = delete;
  PamSession& operator=(const PamSession&) = delete;

  // Each throws UserError with PAM's reason.
  void authenticate();           // pam_authenticate: asks on /dev/tty, never stdin
  void check_account();          // pam_acct_mgmt (expired or locked accounts fail)
  void establish_credentials();  // pam_setcred(PAM_ESTABLISH_CRED)
  // pam_putenv of `env` (NAME=VALUE), which modules may then read or replace.
  void put_environment(const std::vector<std::string>& env);
  void open_session();           // pam_open_session: limits, environment, ...
  // pam_close_session, if open; a failure is a warning (the command has run).
  void close_session();
  // pam_getenvlist: the base of the command's environment.
  std::vector<std::string> environment() const;

  // Is this schroot built with PAM? (-V lists it)
  static bool available();

 private:
  struct Conversation;
  std::string user_;
  pam_handle* handle_ = nullptr;
  std::unique_ptr<Conversation> conversation_;  // PAM keeps a pointer to it
  int last_status_ = 0;
  bool credentials_ = false, session_open_ = false;
};

}  // namespace schroot
