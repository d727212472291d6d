// Processes: running a program from an argv vector (never a shell), waiting, and
// finding and ending the processes whose root directory is in a session's tree.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

namespace schroot::sys {

struct ExitStatus {
  bool exited = false;  // true: `code` is valid; false: killed by `signal`
  int code = 0;
  int signal = 0;
  bool core = false;
  // "exited with status 3", "killed by signal 9 (Killed)", "... (core dumped)".
  std::string describe() const;
  bool success() const { return exited && code == 0; }
};
ExitStatus to_exit_status(int wait_status);

// waitpid, retried on EINTR. Throws SystemError("wait for", pid, errno).
ExitStatus wait_for(pid_t pid);

// fork + execve(argv[0], argv, env): argv[0] must be a path. With `captured_output`,
// the child's stdout and stderr go there (read until EOF); else they are inherited.
// A failing execve throws SystemError("execute", argv[0], errno) in the caller.
ExitStatus run_program(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                       std::string* captured_output = nullptr);

// Processes whose root (/proc/PID/root) is `root_path` or below it, except us.
// Refuses "/" (that is every process) with SystemError; "" finds nobody.
std::vector<pid_t> processes_rooted_at(const std::string& root_path);

// SIGTERM to every process rooted at `root_path`, SIGKILL to those still there after
// `grace`; waits up to 2 s more for them to go. Signals go through pidfds, so a
// reused pid is never hit. Returns how many processes were signalled.
int kill_processes_rooted_at(const std::string& root_path, std::chrono::milliseconds grace);

}  // namespace schroot::sys
