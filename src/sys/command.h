// Starting processes, the one way (DESIGN's CommandRunner): everything the child
// needs is prepared before it starts; the child then makes only async-signal-safe
// calls (signals, descriptors, the caller's before-exec steps) and execs an argv
// vector, never a shell string. The child of spawn() shares our memory until it
// execs (clone with CLONE_VM | CLONE_VFORK, as posix_spawn does): no page table is
// copied and neither process takes copy-on-write faults, and we resume only once it
// runs its program or gave up, having written where and why (step and errno) where
// we read it. The parent waits through a pidfd, relays the output of piped streams
// and enforces a deadline. fork_function() forks a copy of us that runs a function
// instead (one automatic session per chroot, test helpers).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "src/sys/unique_fd.h"

namespace schroot::sys {

struct ExitStatus {
  bool exited = false;  // true: `code` is valid; false: killed by `signal`
  int code = 0;
  int signal = 0;
  bool core = false;
  bool timed_out = false;  // the deadline passed and the spawner signalled it
  // "exited with status 3", "killed by signal 9 (SIGKILL)", "... (core dumped)";
  // "... after its deadline" when timed out.
  std::string describe() const;
  bool success() const { return exited && code == 0; }
};
ExitStatus to_exit_status(int wait_status);

// waitpid, retried on EINTR. Throws SystemError("wait for", pid, errno).
ExitStatus wait_for(pid_t pid);

// pidfd_open(2) (empty on failure, errno set) and pidfd_send_signal(2) (0 or -1):
// glibc 2.36 declares them only in <sys/pidfd.h>, which lacks extern "C".
UniqueFd open_pidfd(pid_t pid);
int signal_pidfd(int pidfd, int sig);

// Where one of a child's standard streams goes.
class Stream {
 public:
  enum class Kind { kInherit, kNull, kFd, kPipe, kStdout };
  static Stream inherit() { return Stream(Kind::kInherit); }  // ours (the default)
  static Stream null() { return Stream(Kind::kNull); }        // /dev/null
  static Stream fd(int fd) { return Stream(Kind::kFd, fd); }  // a copy of our `fd`
  // stdout and stderr only: a pipe to us; Child::wait hands what comes to its sink.
  static Stream pipe() { return Stream(Kind::kPipe); }
  // stderr only: wherever stdout goes (one pipe for both, in the order written).
  static Stream to_stdout() { return Stream(Kind::kStdout); }
  Kind kind() const { return kind_; }
  int fd() const { return fd_; }

 private:
  explicit Stream(Kind k, int fd = -1) : kind_(k), fd_(fd) {}
  Kind kind_;
  int fd_;
};

// What a child reports through the status pipe when it gives up before its program
// runs. It then exits with status 127.
struct ChildFailure {
  int step = 0;   // kExecStep, kRedirectStep, or the caller's before-exec step (> 0)
  int error = 0;  // errno of that step
  int which = 0;  // ExecTarget::which at that moment
};
constexpr int kExecStep = -1;      // execve failed
constexpr int kRedirectStep = -2;  // a stream or passed descriptor could not be put in place

// The program the child executes. The before-exec steps may switch it to another one
// prepared before fork (the user's command: one per shell that may exist inside the
// chroot); `which` names it in a failure report.
struct ExecTarget {
  const char* path = nullptr;
  char* const* argv = nullptr;
  char* const* envp = nullptr;
  int which = 0;
};
// Runs in the child after its streams and descriptors are in place, with every
// signal blocked, just before execve: async-signal-safe calls only, no allocation,
// and no write to memory the parent uses (the child shares it). Credentials change
// only through the child_set* calls below. Returns 0 to go on, or the number (> 0) of
// the step that failed, errno set.
using BeforeExec = std::function<int(ExecTarget&)>;

// Credential changes for before-exec steps, by the raw system calls (the 32-bit id
// calls where the ABI has both): glibc's set*id wrappers would, in a threaded
// program, have every thread of ours follow the child's change. 0, or -1 and errno.
int child_setgroups(size_t count, const gid_t* groups);
int child_setresgid(gid_t rgid, gid_t egid, gid_t sgid);
int child_setresuid(uid_t ruid, uid_t euid, uid_t suid);

struct Command {
  std::vector<std::string> argv;  // argv[0] is the name the program sees; not empty
  std::string path;               // the file executed, no PATH search; empty: argv[0]
  std::vector<std::string> env;   // the whole environment
  Stream in = Stream::inherit(), out = Stream::inherit(), err = Stream::inherit();
  // {our descriptor, its number in the child}: open across exec.
  std::vector<std::pair<int, int>> pass_fds;
  // Every other descriptor above 2 is closed at exec (close_range): no lock file or
  // session record of ours outlives us in a daemon the program starts. The user's
  // command keeps the caller's descriptors, as with schroot 1.6.
  bool close_other_fds = true;
  // Ignored signals set back to their default action (execve keeps ignored ones);
  // nullopt: all of them. Caught signals always get their default action.
  std::optional<std::vector<int>> default_signals;
  BeforeExec before_exec;
  // From the start: SIGTERM when it passes, SIGKILL `kill_grace` later.
  std::optional<std::chrono::milliseconds> timeout;
  std::chrono::milliseconds kill_grace{1000};
  // After the program exited: how long output is still relayed while something it
  // left running holds the pipes (reading stops earlier when nothing comes for 20 ms).
  // nullopt: until end of file (bounded by the deadline, if any).
  std::optional<std::chrono::milliseconds> drain_limit;
};

// Output of a piped stream: (STDOUT_FILENO or STDERR_FILENO, bytes); empty bytes mean
// end of file. stderr is read before stdout when both have something.
using OutputSink = std::function<void(int stream, std::string_view data)>;

// A started child. Destroying one that was not waited for kills it (SIGKILL) and
// reaps it: no child outlives its owner unnoticed.
class Child {
 public:
  // clone + exec as `cmd` says; returns once the program runs or the child gave
  // up. Throws SystemError when the pipes or the clone fail; a failure in the child
  // is reported by started().
  static Child spawn(const Command& cmd);
  // fork; the child runs fn with our signal mask and descriptors and exits with what
  // it returns (1 when an exception escapes it), without flushing stdio buffers.
  static Child fork_function(const std::function<int()>& fn);

  Child() = default;
  Child(Child&& o) noexcept;
  Child& operator=(Child&& o) noexcept;
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child();

  pid_t pid() const { return pid_; }
  // Whether the child gave up before its program ran (where and why); nullopt: it runs.
  std::optional<ChildFailure> started();
  // Waits for the child to exit, relaying piped output to `sink` (dropped without
  // one) as Command::drain_limit says, and enforcing the deadline. Once.
  ExitStatus wait(const OutputSink& sink = {});
  // Waits at most `limit` for the child to exit, reading none of its output (for a
  // child whose streams are not piped to us); nullopt while it still runs.
  std::optional<ExitStatus> wait_at_most(std::chrono::milliseconds limit);
  // Through the pidfd where there is one. False when the child is gone.
  bool send_signal(int sig);
  // The caller takes the child over (it must reap the pid itself, with waitpid);
  // this object no longer waits for or kills it.
  pid_t release();

 private:
  void reap(int options);
  void kill_and_reap();
  std::optional<std::chrono::steady_clock::time_point> enforce_deadline();
  int poll_timeout(const std::optional<std::chrono::steady_clock::time_point>& wake) const;
  pid_t pid_ = -1;
  UniqueFd pidfd_, out_, err_;
  bool reaped_ = false;
  bool timed_out_ = false, term_sent_ = false;
  ExitStatus status_value_;
  std::optional<ChildFailure> failure_;
  std::optional<std::chrono::steady_clock::time_point> deadline_;
  std::chrono::milliseconds kill_grace_{1000};
  std::optional<std::chrono::milliseconds> drain_limit_;
};

// Runs `cmd` to the end, piped output to `sink`. A child that could not run its
// program throws SystemError("execute", path, errno) (other steps name themselves).
ExitStatus run_to_end(const Command& cmd, const OutputSink& sink = {});

// execve(argv[0], argv, env): argv[0] must be an absolute path. With `captured_output`,
// the child's stdout and stderr go there (read until end of file); else they are
// inherited. Other descriptors are not passed on; every signal starts at its default.
// A failing execve throws SystemError("execute", argv[0], errno).
ExitStatus run_program(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                       std::string* captured_output = nullptr);

}  // namespace schroot::sys
