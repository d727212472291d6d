#include "src/sys/reaper.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <set>
#include <sstream>
#include <string>

#include "src/error.h"
#include "src/sys/backoff.h"
#include "src/sys/fs.h"

namespace schroot::sys {

namespace {

// Our children now: /proc/self/task/<tid>/children (we are single-threaded here).
std::set<pid_t> children() {
  std::set<pid_t> pids;
  std::string text;
  try {
    text = read_file("/proc/self/task/" + std::to_string(::gettid()) + "/children");
  } catch (const SystemError&) {
    return pids;
  }
  std::istringstream in(text);
  pid_t pid;
  while (in >> pid) pids.insert(pid);
  return pids;
}

// Reaps every child that has exited; false when we have no children left.
bool reap_exited() {
  for (;;) {
    pid_t pid = ::waitpid(-1, nullptr, WNOHANG);
    if (pid > 0) continue;
    if (pid < 0 && errno == EINTR) continue;
    return !(pid < 0 && errno == ECHILD);
  }
}

}  // namespace

void become_subreaper() {
  if (::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) throw SystemError("prctl", "PR_SET_CHILD_SUBREAPER", errno);
}

int end_descendants(std::chrono::milliseconds grace) {
  using Clock = std::chrono::steady_clock;
  const auto kill_at = Clock::now() + grace;
  Backoff wait(grace + std::chrono::seconds(2), std::chrono::milliseconds(1), std::chrono::milliseconds(50));
  std::set<pid_t> signalled;
  while (reap_exited()) {
    const bool late = Clock::now() >= kill_at;
    // Children of a process we ended are reparented to us: each round sees them.
    for (pid_t pid : children()) {
      if (late) {
        ::kill(pid, SIGKILL);
      } else if (signalled.insert(pid).second) {
        ::kill(pid, SIGTERM);
      }
      signalled.insert(pid);
    }
    if (!wait.next()) break;
  }
  return static_cast<int>(signalled.size());
}

}  // namespace schroot::sys
