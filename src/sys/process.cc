#include "src/sys/process.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <memory>

#include "src/error.h"
#include "src/sys/unique_fd.h"

namespace schroot::sys {

namespace {

using Clock = std::chrono::steady_clock;

// glibc 2.36 has pidfd wrappers only in <sys/pidfd.h>, which lacks extern "C".
int pidfd_open(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }
int pidfd_send_signal(int pidfd, int sig) { return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0)); }

std::string normalized(const std::string& path) {
  std::string p = path;
  char* real = ::realpath(path.c_str(), nullptr);
  if (real) {
    p = real;
    ::free(real);
  }
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p;
}

bool at_or_below(const std::string& p, const std::string& root) {
  return p == root || (p.size() > root.size() && p.compare(0, root.size(), root) == 0 && p[root.size()] == '/');
}

// The root directory of `pid`; empty when it cannot be read (gone, a zombie, a kernel thread).
std::string root_of(pid_t pid) {
  char buf[4096];
  const std::string link = "/proc/" + std::to_string(pid) + "/root";
  ssize_t n = ::readlink(link.c_str(), buf, sizeof buf);
  if (n <= 0 || n == static_cast<ssize_t>(sizeof buf)) return "";
  std::string root(buf, static_cast<std::size_t>(n));
  // The tree may have been removed under a process still chrooted into it.
  const std::string deleted = " (deleted)";
  if (root.size() > deleted.size() && root.compare(root.size() - deleted.size(), deleted.size(), deleted) == 0)
    root.resize(root.size() - deleted.size());
  return root;
}

struct Target {
  pid_t pid;
  UniqueFd pidfd;
  bool gone = false;
  bool signalled = false;
};

// New targets: a pidfd pins the process, and the root is checked again after it was
// opened, so the pidfd cannot name a different process that reused the pid.
void add_targets(const std::string& root, std::vector<Target>& targets) {
  for (pid_t pid : processes_rooted_at(root)) {
    if (std::any_of(targets.begin(), targets.end(), [&](const Target& t) { return t.pid == pid && !t.gone; }))
      continue;
    UniqueFd fd(pidfd_open(pid));
    if (!fd || !at_or_below(root_of(pid), root)) continue;
    targets.push_back(Target{pid, std::move(fd)});
  }
}

void signal_all(std::vector<Target>& targets, int sig) {
  for (auto& t : targets) {
    if (t.gone) continue;
    if (pidfd_send_signal(t.pidfd.get(), sig) == 0)
      t.signalled = true;
    else if (errno == ESRCH)
      t.gone = true;
  }
}

// Waits until every target has exited (its pidfd becomes readable) or `deadline`.
bool wait_gone(std::vector<Target>& targets, Clock::time_point deadline) {
  for (;;) {
    std::vector<pollfd> fds;
    std::vector<Target*> which;
    for (auto& t : targets) {
      if (t.gone) continue;
      fds.push_back(pollfd{t.pidfd.get(), POLLIN, 0});
      which.push_back(&t);
    }
    if (fds.empty()) return true;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return false;
    int n = ::poll(fds.data(), fds.size(), static_cast<int>(left));
    if (n < 0 && errno != EINTR) return false;
    for (std::size_t i = 0; n > 0 && i < fds.size(); ++i)
      if (fds[i].revents) which[i]->gone = true;
  }
}

std::vector<char*> c_strings(const std::vector<std::string>& v) {
  std::vector<char*> out;
  for (const auto& s : v) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

[[noreturn]] void exec_child(const std::vector<char*>& argv, const std::vector<char*>& envp, int out_fd, int err_fd) {
  // Only async-signal-safe calls from here: the parent may have other threads.
  if (out_fd >= 0 && (::dup2(out_fd, STDOUT_FILENO) < 0 || ::dup2(out_fd, STDERR_FILENO) < 0)) {
    int e = errno;
    (void)!::write(err_fd, &e, sizeof e);
    ::_exit(127);
  }
  sigset_t none;
  ::sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::signal(SIGPIPE, SIG_DFL);  // an ignored SIGPIPE would survive execve
  ::execve(argv[0], argv.data(), envp.data());
  int e = errno;
  (void)!::write(err_fd, &e, sizeof e);
  ::_exit(127);
}

void read_until_eof(int fd, std::string& out) {
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    out.append(buf, static_cast<std::size_t>(n));
  }
}

}  // namespace

std::string ExitStatus::describe() const {
  if (exited) return "exited with status " + std::to_string(code);
  const char* abbrev = ::sigabbrev_np(signal);
  std::string s = "killed by signal " + std::to_string(signal);
  if (abbrev) s += std::string(" (SIG") + abbrev + ")";
  if (core) s += " (core dumped)";
  return s;
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

ExitStatus wait_for(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) throw SystemError("wait for", std::to_string(pid), errno);
  }
  return to_exit_status(status);
}

ExitStatus run_program(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                       std::string* captured_output) {
  if (argv.empty() || argv[0].empty() || argv[0][0] != '/')
    throw SystemError("execute (not an absolute path)", argv.empty() ? "" : argv[0], EINVAL);
  const auto args = c_strings(argv);
  const auto envp = c_strings(env);
  int p[2];
  // CLOEXEC: a successful execve closes the write end, so EOF there means "it ran".
  if (::pipe2(p, O_CLOEXEC) != 0) throw SystemError("pipe for", argv[0], errno);
  UniqueFd err_r(p[0]), err_w(p[1]);
  UniqueFd out_r, out_w;
  if (captured_output) {
    if (::pipe2(p, O_CLOEXEC) != 0) throw SystemError("pipe for", argv[0], errno);
    out_r.reset(p[0]);
    out_w.reset(p[1]);
  }
  const pid_t pid = ::fork();
  if (pid < 0) throw SystemError("fork for", argv[0], errno);
  if (pid == 0) exec_child(args, envp, out_w.get(), err_w.get());
  err_w.reset();
  out_w.reset();
  if (captured_output) read_until_eof(out_r.get(), *captured_output);
  int exec_errno = 0;
  ssize_t n;
  do {
    n = ::read(err_r.get(), &exec_errno, sizeof exec_errno);
  } while (n < 0 && errno == EINTR);
  ExitStatus status = wait_for(pid);
  if (n == static_cast<ssize_t>(sizeof exec_errno)) throw SystemError("execute", argv[0], exec_errno);
  return status;
}

std::vector<pid_t> processes_rooted_at(const std::string& root_path) {
  if (root_path.empty()) return {};  // no tree, nobody in it
  const std::string root = normalized(root_path);
  // Every process is rooted at or below "/": ending them all is never what is meant.
  if (root.empty() || root == "/") throw SystemError("refusing to look for processes rooted at", root_path, EINVAL);
  std::unique_ptr<DIR, int (*)(DIR*)> proc(::opendir("/proc"), ::closedir);
  if (!proc) throw SystemError("open", "/proc", errno);
  std::vector<pid_t> out;
  const pid_t self = ::getpid();
  while (struct dirent* e = ::readdir(proc.get())) {
    char* end = nullptr;
    const long pid = std::strtol(e->d_name, &end, 10);
    if (pid <= 0 || *end != '\0' || pid == self) continue;
    if (at_or_below(root_of(static_cast<pid_t>(pid)), root)) out.push_back(static_cast<pid_t>(pid));
  }
  return out;
}

int kill_processes_rooted_at(const std::string& root_path, std::chrono::milliseconds grace) {
  const std::string root = normalized(root_path);
  std::vector<Target> targets;
  add_targets(root, targets);
  if (targets.empty()) return 0;
  signal_all(targets, SIGTERM);
  wait_gone(targets, Clock::now() + grace);
  const auto deadline = Clock::now() + std::chrono::seconds(2);
  // Rescan before each round: a process may have forked after our scan; its child
  // gets SIGKILL straight away.
  for (int round = 0; round < 5 && Clock::now() < deadline; ++round) {
    add_targets(root, targets);
    if (std::all_of(targets.begin(), targets.end(), [](const Target& t) { return t.gone; })) break;
    signal_all(targets, SIGKILL);
    wait_gone(targets, std::min(deadline, Clock::now() + std::chrono::milliseconds(500)));
  }
  return static_cast<int>(
      std::count_if(targets.begin(), targets.end(), [](const Target& t) { return t.signalled; }));
}

}  // namespace schroot::sys
