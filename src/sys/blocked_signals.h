// Signals blocked for a scope: the mask found at construction is restored at
// destruction (what arrived meanwhile is delivered then). For the spawner's starts
// (every signal, so no handler of ours runs in a child before it has reset its
// signals) and for the command's start until its signals are forwarded.
#pragma once

#include <pthread.h>
#include <signal.h>

#include <initializer_list>

namespace schroot::sys {

class BlockedSignals {
 public:
  // Every signal.
  BlockedSignals() {
    sigset_t set;
    ::sigfillset(&set);
    block(set);
  }
  explicit BlockedSignals(std::initializer_list<int> signals) {
    sigset_t set;
    ::sigemptyset(&set);
    for (int sig : signals) ::sigaddset(&set, sig);
    block(set);
  }
  ~BlockedSignals() { ::pthread_sigmask(SIG_SETMASK, &saved_, nullptr); }
  BlockedSignals(const BlockedSignals&) = delete;
  BlockedSignals& operator=(const BlockedSignals&) = delete;

 private:
  void block(const sigset_t& set) { ::pthread_sigmask(SIG_BLOCK, &set, &saved_); }
  sigset_t saved_;
};

}  // namespace schroot::sys
