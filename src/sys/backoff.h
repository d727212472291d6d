// Waiting between polls of something another process changes (a lock, a child's exit,
// a device's release): exponential backoff under a deadline, so every wait is bounded.
#pragma once

#include <algorithm>
#include <chrono>
#include <thread>

namespace schroot::sys {

// Sleeps `first`, then twice as long each time up to `cap`, never past the deadline:
//   Backoff wait(timeout, 1ms, 50ms);
//   while (!try_once()) if (!wait.next()) give_up();
class Backoff {
 public:
  using Clock = std::chrono::steady_clock;
  Backoff(Clock::duration timeout, Clock::duration first, Clock::duration cap)
      : deadline_(Clock::now() + timeout), delay_(first), cap_(cap) {}

  // Sleeps before the next attempt and returns true; returns false at once when the
  // deadline has passed: the attempt just made was the last.
  bool next() {
    const auto now = Clock::now();
    if (now >= deadline_) return false;
    std::this_thread::sleep_for(std::min(delay_, deadline_ - now));
    delay_ = std::min(delay_ * 2, cap_);
    return true;
  }

 private:
  Clock::time_point deadline_;
  Clock::duration delay_;
  Clock::duration cap_;
};

}  // namespace schroot::sys
