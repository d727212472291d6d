#include "src/sys/command.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>

#include "src/error.h"
#include "src/sys/blocked_signals.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SCHROOT_ASAN 1
#endif
#elif defined(__SANITIZE_ADDRESS__)
#define SCHROOT_ASAN 1
#endif
#ifdef SCHROOT_ASAN
#include <sanitizer/asan_interface.h>
#endif

namespace schroot::sys {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// After the program exited, one poll waits this long for more output before we stop.
constexpr int kDrainPollMs = 20;
// Without a pidfd, how often we check whether the child has exited.
constexpr int kWaitPollMs = 50;

// The child's stack while it shares our memory: its steps are a few frames of
// system calls (and, under ASan, their redzones).
constexpr size_t kChildStackSize = 256 * 1024;

// Everything the child of spawn() uses, built before it starts: the child only reads
// it, except `failure`, where it says why it gave up before exiting.
struct ChildPlan {
  std::vector<std::string> argv_s, env_s;
  std::vector<char*> argv_p, env_p;
  std::string path;
  // dup2(from, to), in order. Each `from` is a copy of ours numbered above every
  // `to`, so no move overwrites a later move's source.
  struct Move {
    int from, to;
  };
  std::vector<Move> moves;
  bool close_other_fds = true;
  sigset_t to_default;  // ignored signals that get their default action
  const BeforeExec* before_exec = nullptr;
  // Written by the child (our memory), read once the clone has returned: the
  // kernel resumes us only after the child's execve or exit.
  volatile bool failed = false;
  ChildFailure failure;
};

std::vector<char*> pointers_to(std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// ---- the child side: async-signal-safe calls only, nothing allocated -------------------

[[noreturn]] void report_failure(ChildPlan& plan, int step, int err, int which) {
  plan.failure = ChildFailure{step, err, which};
  plan.failed = true;
  ::_exit(127);
}

// Caught signals would run our handlers in the child until execve resets them;
// ignored ones would survive execve.
void reset_signals(const sigset_t& to_default) {
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    struct sigaction old;
    if (::sigaction(sig, nullptr, &old) != 0) continue;  // glibc's own real-time signals
    const bool caught = (old.sa_flags & SA_SIGINFO) || (old.sa_handler != SIG_DFL && old.sa_handler != SIG_IGN);
    const bool ignored = !(old.sa_flags & SA_SIGINFO) && old.sa_handler == SIG_IGN;
    if (!caught && !(ignored && ::sigismember(&to_default, sig))) continue;
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    ::sigaction(sig, &dfl, nullptr);
  }
}

// close_range's CLOEXEC form: the moves' sources and what the before-exec steps use
// (a mount namespace to join, a root reached through /proc/self/fd) stay open until
// execve.
void close_other_fds_at_exec() {
  if (::close_range(STDERR_FILENO + 1, ~0U, CLOSE_RANGE_CLOEXEC) == 0) return;
  for (int fd = STDERR_FILENO + 1; fd < 65536; ++fd) ::fcntl(fd, F_SETFD, FD_CLOEXEC);  // kernels before 5.11
}

// The child's entry point (clone's fn), on its own stack, in our memory.
int exec_child(void* arg) {
  ChildPlan& plan = *static_cast<ChildPlan*>(arg);
  reset_signals(plan.to_default);
  if (plan.close_other_fds) close_other_fds_at_exec();
  // dup2 clears FD_CLOEXEC on the copy: these stay open across execve.
  for (const auto& m : plan.moves)
    if (::dup2(m.from, m.to) < 0) report_failure(plan, kRedirectStep, errno, 0);
  ExecTarget target{plan.path.c_str(), plan.argv_p.data(), plan.env_p.data(), 0};
  if (plan.before_exec && *plan.before_exec) {
    const int step = (*plan.before_exec)(target);
    if (step != 0) report_failure(plan, step, errno, target.which);
  }
  sigset_t none;
  ::sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::execve(target.path, target.argv, target.envp);
  report_failure(plan, kExecStep, errno, target.which);
}

// ---- the parent side --------------------------------------------------------------------

// The child's stack, unmapped when the child no longer uses it (it has exec'd or
// exited once clone returns).
class ChildStack {
 public:
  explicit ChildStack(const std::string& what) {
    base_ = ::mmap(nullptr, kChildStackSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (base_ == MAP_FAILED) throw SystemError("map a stack for", what, errno);
  }
  ~ChildStack() {
#ifdef SCHROOT_ASAN
    // The child's frames never returned: their redzones would outlive the mapping.
    __asan_unpoison_memory_region(base_, kChildStackSize);
#endif
    ::munmap(base_, kChildStackSize);
  }
  ChildStack(const ChildStack&) = delete;
  ChildStack& operator=(const ChildStack&) = delete;
  // Stacks grow down on every architecture Debian builds for.
  void* top() const { return static_cast<char*>(base_) + kChildStackSize; }

 private:
  void* base_;
};

// clone(CLONE_VM | CLONE_VFORK) running exec_child(plan): returns once the child has
// exec'd or exited, with its pidfd (CLONE_PIDFD; a kernel before 5.2 ignores the flag
// and leaves `fd` alone: then opened after the fact, while the unreaped pid is ours).
pid_t start_child(ChildPlan& plan, UniqueFd& pidfd) {
  ChildStack stack(plan.path);
  // Every signal: no handler of ours runs in the child before it has reset them.
  BlockedSignals blocked;
  int fd = -1;
  const pid_t pid = ::clone(exec_child, stack.top(), CLONE_VM | CLONE_VFORK | CLONE_PIDFD | SIGCHLD, &plan, &fd);
  const int err = errno;
  if (pid > 0) pidfd = fd >= 0 ? UniqueFd(fd) : open_pidfd(pid);
  errno = err;
  return pid;
}

// fork_function()'s fork: both processes get our mask back once it is done.
pid_t fork_with_signals_blocked() {
  BlockedSignals blocked;
  return ::fork();
}

// A close-on-exec copy of `fd` numbered at least `min`.
UniqueFd copy_at_least(int fd, int min, const std::string& what) {
  UniqueFd copy(::fcntl(fd, F_DUPFD_CLOEXEC, min));
  if (!copy) throw SystemError("duplicate descriptor for", what, errno);
  return copy;
}

UniqueFd open_null(int flags) {
  UniqueFd fd(::open("/dev/null", flags | O_CLOEXEC));
  if (!fd) throw SystemError("open", "/dev/null", errno);
  return fd;
}

// Read end, write end.
std::pair<UniqueFd, UniqueFd> make_pipe(const std::string& what) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) throw SystemError("create pipe for", what, errno);
  return {UniqueFd(p[0]), UniqueFd(p[1])};
}

// What spawn() hands to the child, closed in the parent once the child has it.
class Handover {
 public:
  Handover(ChildPlan& plan, int min_free) : plan_(plan), min_free_(min_free) {}
  // A copy of our `fd` becomes the child's descriptor `to`; returns the copy's number.
  int give(int fd, int to, const std::string& what) {
    const int copy = keep(fd, what);
    plan_.moves.push_back({copy, to});
    return copy;
  }
  // A copy of our `fd` that the child keeps at a number no move overwrites.
  int keep(int fd, const std::string& what) {
    ends_.push_back(copy_at_least(fd, min_free_, what));
    return ends_.back().get();
  }
  void close_all() { ends_.clear(); }

 private:
  ChildPlan& plan_;
  int min_free_;
  std::vector<UniqueFd> ends_;
};

int highest_passed_fd(const Command& cmd) {
  int highest = STDERR_FILENO;
  for (const auto& [ours, theirs] : cmd.pass_fds) {
    if (theirs <= STDERR_FILENO || ours < 0)
      throw SystemError("pass descriptor " + std::to_string(ours) + " as", std::to_string(theirs), EINVAL);
    highest = std::max(highest, theirs);
  }
  return highest;
}

// Sets up the child's stdin, stdout and stderr; returns the read ends of its pipes.
std::pair<UniqueFd, UniqueFd> hand_over_streams(const Command& cmd, const std::string& what, Handover& h) {
  UniqueFd out_r, err_r;
  switch (cmd.in.kind()) {
    case Stream::Kind::kInherit: break;
    case Stream::Kind::kNull: h.give(open_null(O_RDONLY).get(), STDIN_FILENO, what); break;
    case Stream::Kind::kFd: h.give(cmd.in.fd(), STDIN_FILENO, what); break;
    default: throw SystemError("connect stdin (only inherit, null or fd) of", what, EINVAL);
  }
  int out_source = STDOUT_FILENO;
  switch (cmd.out.kind()) {
    case Stream::Kind::kInherit: break;
    case Stream::Kind::kNull: out_source = h.give(open_null(O_WRONLY).get(), STDOUT_FILENO, what); break;
    case Stream::Kind::kFd: out_source = h.give(cmd.out.fd(), STDOUT_FILENO, what); break;
    case Stream::Kind::kPipe: {
      auto [r, w] = make_pipe(what);
      out_source = h.give(w.get(), STDOUT_FILENO, what);
      out_r = std::move(r);
      break;
    }
    case Stream::Kind::kStdout: throw SystemError("connect stdout to itself for", what, EINVAL);
  }
  switch (cmd.err.kind()) {
    case Stream::Kind::kInherit: break;
    case Stream::Kind::kNull: h.give(open_null(O_WRONLY).get(), STDERR_FILENO, what); break;
    case Stream::Kind::kFd: h.give(cmd.err.fd(), STDERR_FILENO, what); break;
    case Stream::Kind::kPipe: {
      auto [r, w] = make_pipe(what);
      h.give(w.get(), STDERR_FILENO, what);
      err_r = std::move(r);
      break;
    }
    case Stream::Kind::kStdout: h.give(out_source, STDERR_FILENO, what); break;
  }
  return {std::move(out_r), std::move(err_r)};
}

sigset_t signals_to_default(const Command& cmd) {
  sigset_t set;
  if (!cmd.default_signals) {
    ::sigfillset(&set);
    return set;
  }
  ::sigemptyset(&set);
  for (int sig : *cmd.default_signals) ::sigaddset(&set, sig);
  return set;
}

SystemError failure_error(const ChildFailure& f, const std::string& path) {
  switch (f.step) {
    case kExecStep: return SystemError("execute", path, f.error);
    case kRedirectStep: return SystemError("redirect the streams of", path, f.error);
    default: return SystemError("prepare (step " + std::to_string(f.step) + ") to execute", path, f.error);
  }
}

int poll_timeout_until(Clock::time_point t) {
  const auto left = std::chrono::duration_cast<milliseconds>(t - Clock::now()).count();
  return static_cast<int>(std::clamp<long long>(left + 1, 0, 24 * 3600 * 1000));
}

}  // namespace

// ---- ExitStatus -------------------------------------------------------------------------

std::string ExitStatus::describe() const {
  const char* late = timed_out ? " after its deadline" : "";
  if (exited) return "exited with status " + std::to_string(code) + late;
  const char* abbrev = ::sigabbrev_np(signal);
  std::string s = "killed by signal " + std::to_string(signal);
  if (abbrev) s += std::string(" (SIG") + abbrev + ")";
  if (core) s += " (core dumped)";
  return s + late;
}

ExitStatus to_exit_status(int status) {
  ExitStatus s;
  if (WIFEXITED(status)) {
    s.exited = true;
    s.code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    s.signal = WTERMSIG(status);
    s.core = WCOREDUMP(status);
  }
  return s;
}

int child_setgroups(size_t count, const gid_t* groups) {
#ifdef SYS_setgroups32
  return static_cast<int>(::syscall(SYS_setgroups32, count, groups));
#else
  return static_cast<int>(::syscall(SYS_setgroups, count, groups));
#endif
}

int child_setresgid(gid_t rgid, gid_t egid, gid_t sgid) {
#ifdef SYS_setresgid32
  return static_cast<int>(::syscall(SYS_setresgid32, rgid, egid, sgid));
#else
  return static_cast<int>(::syscall(SYS_setresgid, rgid, egid, sgid));
#endif
}

int child_setresuid(uid_t ruid, uid_t euid, uid_t suid) {
#ifdef SYS_setresuid32
  return static_cast<int>(::syscall(SYS_setresuid32, ruid, euid, suid));
#else
  return static_cast<int>(::syscall(SYS_setresuid, ruid, euid, suid));
#endif
}

UniqueFd open_pidfd(pid_t pid) { return UniqueFd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0))); }

int signal_pidfd(int pidfd, int sig) {
  return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0));
}

ExitStatus wait_for(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) throw SystemError("wait for", std::to_string(pid), errno);
  }
  return to_exit_status(status);
}

// ---- Child ------------------------------------------------------------------------------

Child Child::spawn(const Command& cmd) {
  if (cmd.argv.empty()) throw SystemError("execute (no argv)", cmd.path, EINVAL);
  ChildPlan plan;
  plan.path = cmd.path.empty() ? cmd.argv[0] : cmd.path;
  plan.argv_s = cmd.argv;
  plan.env_s = cmd.env;
  plan.argv_p = pointers_to(plan.argv_s);
  plan.env_p = pointers_to(plan.env_s);
  plan.close_other_fds = cmd.close_other_fds;
  plan.to_default = signals_to_default(cmd);
  plan.before_exec = &cmd.before_exec;

  Child child;
  Handover handover(plan, highest_passed_fd(cmd) + 1);
  std::tie(child.out_, child.err_) = hand_over_streams(cmd, plan.path, handover);
  for (const auto& [ours, theirs] : cmd.pass_fds) handover.give(ours, theirs, plan.path);

  const pid_t pid = start_child(plan, child.pidfd_);
  if (pid < 0) throw SystemError("clone for", plan.path, errno);
  handover.close_all();
  child.pid_ = pid;
  if (plan.failed) child.failure_ = plan.failure;
  if (cmd.timeout) child.deadline_ = Clock::now() + *cmd.timeout;
  child.kill_grace_ = cmd.kill_grace;
  child.drain_limit_ = cmd.drain_limit;
  return child;
}

Child Child::fork_function(const std::function<int()>& fn) {
  const pid_t pid = fork_with_signals_blocked();
  if (pid == 0) {
    int rc = 1;
    try {
      rc = fn();
    } catch (...) {
    }
    ::_exit(rc);
  }
  if (pid < 0) throw SystemError("fork", "", errno);
  Child child;
  child.pid_ = pid;
  child.pidfd_ = open_pidfd(pid);
  return child;
}

Child::Child(Child&& o) noexcept { *this = std::move(o); }

Child& Child::operator=(Child&& o) noexcept {
  if (this == &o) return *this;
  kill_and_reap();
  pid_ = std::exchange(o.pid_, -1);
  pidfd_ = std::move(o.pidfd_);
  out_ = std::move(o.out_);
  err_ = std::move(o.err_);
  reaped_ = o.reaped_;
  timed_out_ = o.timed_out_;
  term_sent_ = o.term_sent_;
  status_value_ = o.status_value_;
  failure_ = o.failure_;
  deadline_ = o.deadline_;
  kill_grace_ = o.kill_grace_;
  drain_limit_ = o.drain_limit_;
  return *this;
}

Child::~Child() { kill_and_reap(); }

void Child::kill_and_reap() {
  if (pid_ <= 0 || reaped_) return;
  send_signal(SIGKILL);
  int ignored;
  while (::waitpid(pid_, &ignored, 0) < 0 && errno == EINTR) {
  }
  reaped_ = true;
}

pid_t Child::release() {
  const pid_t pid = std::exchange(pid_, -1);
  pidfd_.reset();
  out_.reset();
  err_.reset();
  return pid;
}

bool Child::send_signal(int sig) {
  if (pid_ <= 0 || reaped_) return false;
  if (pidfd_) return signal_pidfd(pidfd_.get(), sig) == 0;
  return ::kill(pid_, sig) == 0;
}

std::optional<ChildFailure> Child::started() { return failure_; }

void Child::reap(int options) {
  int status = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &status, options);
  } while (r < 0 && errno == EINTR);
  if (r < 0) throw SystemError("wait for", std::to_string(pid_), errno);
  if (r != pid_) return;  // WNOHANG: still running
  reaped_ = true;
  status_value_ = to_exit_status(status);
  status_value_.timed_out = timed_out_;
  pidfd_.reset();
}

// SIGTERM at the deadline, SIGKILL kill_grace later; when the next step is due.
std::optional<Clock::time_point> Child::enforce_deadline() {
  if (!deadline_ || reaped_) return std::nullopt;
  const auto now = Clock::now();
  if (!term_sent_) {
    if (now < *deadline_) return *deadline_;
    timed_out_ = true;
    term_sent_ = true;
    send_signal(SIGTERM);
    return now + kill_grace_;
  }
  if (now < *deadline_ + kill_grace_) return *deadline_ + kill_grace_;
  send_signal(SIGKILL);
  return std::nullopt;
}

namespace {

// One of a child's piped streams while wait() relays it.
struct OutputPipe {
  UniqueFd* fd;
  int stream;  // STDOUT_FILENO or STDERR_FILENO
  void end(const OutputSink& sink) {
    if (!*fd) return;
    fd->reset();
    if (sink) sink(stream, {});
  }
  // One read; end of file (or an error) closes the pipe.
  void relay(const OutputSink& sink) {
    char buf[4096];
    ssize_t got;
    do {
      got = ::read(fd->get(), buf, sizeof buf);
    } while (got < 0 && errno == EINTR);
    if (got <= 0)
      end(sink);
    else if (sink)
      sink(stream, std::string_view(buf, static_cast<size_t>(got)));
  }
};

}  // namespace

// How long wait()'s next poll may block: for ever while only the exit or the output
// can end it; short polls without a pidfd or while draining; never past `wake`.
int Child::poll_timeout(const std::optional<Clock::time_point>& wake) const {
  int timeout = -1;
  if (reaped_) {
    if (drain_limit_) timeout = kDrainPollMs;
  } else if (!pidfd_) {
    timeout = kWaitPollMs;
  }
  if (!wake) return timeout;
  const int until = poll_timeout_until(*wake);
  return timeout < 0 ? until : std::min(timeout, until);
}

ExitStatus Child::wait(const OutputSink& sink) {
  if (pid_ <= 0) throw SystemError("wait for", "a child never started", ECHILD);
  // stderr first, as schroot 1.6 relays a hook's output.
  OutputPipe pipes[2] = {{&err_, STDERR_FILENO}, {&out_, STDOUT_FILENO}};
  std::optional<Clock::time_point> drain_end;
  for (;;) {
    if (reaped_ && !err_ && !out_) break;
    if (reaped_ && drain_limit_ && !drain_end) drain_end = Clock::now() + *drain_limit_;
    // Output held by something the program left running is read at most until the deadline.
    if (reaped_ && deadline_ && Clock::now() >= *deadline_) break;
    const int timeout = poll_timeout(reaped_ ? deadline_ : enforce_deadline());

    struct pollfd fds[3];
    OutputPipe* owner[3] = {nullptr, nullptr, nullptr};
    nfds_t n = 0;
    for (auto& p : pipes) {
      if (!*p.fd) continue;
      fds[n] = {p.fd->get(), POLLIN, 0};
      owner[n++] = &p;
    }
    const bool watch_pidfd = !reaped_ && pidfd_;
    if (watch_pidfd) fds[n++] = {pidfd_.get(), POLLIN, 0};
    if (n == 0 && timeout < 0) {  // nothing to read, no pidfd, no deadline
      reap(0);
      continue;
    }
    // Drain decisions use the state before this poll: output written just before
    // the exit is read on the next round, not dropped.
    const bool was_reaped = reaped_;
    const int ready = ::poll(fds, n, timeout);
    if (ready < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      for (auto& p : pipes) p.end(sink);
      kill_and_reap();
      throw SystemError("poll the output of", "pid " + std::to_string(pid_), err);
    }
    // The program is gone and nothing came: whatever still holds the pipes (a
    // daemon it started) is not ours to wait for.
    if (was_reaped && drain_limit_ && (ready == 0 || Clock::now() >= *drain_end)) break;
    if (!reaped_ && (!watch_pidfd || fds[n - 1].revents != 0)) reap(watch_pidfd ? 0 : WNOHANG);
    for (nfds_t i = 0; i < n; ++i)
      if (owner[i] != nullptr && fds[i].revents != 0) owner[i]->relay(sink);
  }
  for (auto& p : pipes) p.end(sink);
  return status_value_;
}

std::optional<ExitStatus> Child::wait_at_most(milliseconds limit) {
  if (pid_ <= 0) throw SystemError("wait for", "a child never started", ECHILD);
  const auto end = Clock::now() + limit;
  while (!reaped_) {
    const int timeout = pidfd_ ? poll_timeout_until(end) : std::min(kWaitPollMs, poll_timeout_until(end));
    struct pollfd p = {pidfd_.get(), POLLIN, 0};
    const int ready = ::poll(&p, pidfd_ ? 1 : 0, timeout);
    if (ready < 0 && errno != EINTR) throw SystemError("poll the exit of", "pid " + std::to_string(pid_), errno);
    if (ready > 0)
      reap(0);
    else if (!pidfd_)
      reap(WNOHANG);
    if (!reaped_ && Clock::now() >= end) return std::nullopt;
  }
  return status_value_;
}

// ---- one-call forms ---------------------------------------------------------------------

ExitStatus run_to_end(const Command& cmd, const OutputSink& sink) {
  Child child = Child::spawn(cmd);
  if (auto failure = child.started()) {
    child.wait();
    throw failure_error(*failure, cmd.path.empty() ? cmd.argv[0] : cmd.path);
  }
  return child.wait(sink);
}

ExitStatus run_program(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                       std::string* captured_output) {
  if (argv.empty() || argv[0].empty() || argv[0][0] != '/')
    throw SystemError("execute (not an absolute path)", argv.empty() ? "" : argv[0], EINVAL);
  Command cmd;
  cmd.argv = argv;
  cmd.env = env;
  if (!captured_output) return run_to_end(cmd);
  cmd.out = Stream::pipe();
  cmd.err = Stream::to_stdout();
  return run_to_end(cmd, [captured_output](int, std::string_view data) { captured_output->append(data); });
}

}  // namespace schroot::sys
