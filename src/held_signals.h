// Termination signals (^C, SIGTERM, SIGHUP, SIGQUIT) are held off while a session
// is being built or taken down, so they never cut a stage in half: begin looks for
// them between stages and rolls back; end finishes first. They are delivered when
// the hold is lifted (and around an automatic session's command, which gets them).
#pragma once

#include <signal.h>

#include <ctime>

namespace schroot {

class HeldSignals {
 public:
  HeldSignals() {
    ::sigemptyset(&set_);
    for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) ::sigaddset(&set_, sig);
  }
  ~HeldSignals() { lift(); }
  HeldSignals(const HeldSignals&) = delete;
  HeldSignals& operator=(const HeldSignals&) = delete;

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

}  // namespace schroot
