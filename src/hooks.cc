#include "src/hooks.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <regex.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>

#include "src/error.h"
#include "src/log.h"
#include "src/sys/unique_fd.h"

namespace schroot {

using sys::UniqueFd;

// ---- names -------------------------------------------------------------------------

namespace {

// schroot 1.6 run-parts, lsb_mode forced on.
class NameFilter {
 public:
  NameFilter() {
    static const char* const kAccept[] = {"^[a-z0-9]+$", "^_?([a-z0-9_.]+-)+[a-z0-9]+$",
                                          "^[a-z0-9][a-z0-9-]*$"};
    for (size_t i = 0; i < 3; ++i) regcomp(&accept_[i], kAccept[i], REG_EXTENDED | REG_NOSUB);
    regcomp(&reject_, "dpkg-(old|dist|new|tmp)$", REG_EXTENDED | REG_NOSUB);
  }
  ~NameFilter() {
    for (auto& re : accept_) regfree(&re);
    regfree(&reject_);
  }
  NameFilter(const NameFilter&) = delete;
  NameFilter& operator=(const NameFilter&) = delete;

  bool accepts(const std::string& name) const {
    if (regexec(&reject_, name.c_str(), 0, nullptr, 0) == 0) return false;
    for (const auto& re : accept_)
      if (regexec(&re, name.c_str(), 0, nullptr, 0) == 0) return true;
    return false;
  }

 private:
  regex_t accept_[3];
  regex_t reject_;
};

}  // namespace

bool hook_name_accepted(const std::string& name) {
  static const NameFilter filter;
  return filter.accepts(name);
}

std::vector<std::string> list_hooks(const std::string& setup_d_dir) {
  std::vector<std::string> names;
  DIR* d = opendir(setup_d_dir.c_str());
  if (d == nullptr) {
    if (errno == ENOENT) return names;
    throw SystemError("open setup.d directory", setup_d_dir, errno);
  }
  errno = 0;
  while (struct dirent* e = readdir(d)) {
    if (hook_name_accepted(e->d_name)) names.emplace_back(e->d_name);
    errno = 0;
  }
  int err = errno;
  closedir(d);
  if (err != 0) throw SystemError("read setup.d directory", setup_d_dir, err);
  std::sort(names.begin(), names.end());  // std::string's < is bytewise, like std::set in 1.6
  return names;
}

// ---- running one hook ----------------------------------------------------------------

namespace {

// After the hook exited: how long one poll waits for more output, and how long we
// keep reading from a descendant that holds the pipes open and keeps writing.
constexpr int kDrainPollMs = 20;
constexpr int64_t kDrainLimitMs = 1000;
// Without a pidfd, how often we check whether the hook has exited.
constexpr int kWaitPollMs = 50;

// What the child reports through the status pipe when it cannot exec the hook.
struct ChildFailure {
  int step;
  int err;
};
enum ChildStep { kStepIds = 1, kStepChdir, kStepStdin, kStepDup, kStepExec };

const char* step_name(int step) {
  switch (step) {
    case kStepIds: return "set root ids";
    case kStepChdir: return "chdir /";
    case kStepStdin: return "open /dev/null";
    case kStepDup: return "redirect output";
    default: return "exec";
  }
}

int64_t now_ms() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// Keeps our descriptors above 2, so the child's dup2 onto 0-2 cannot clobber them.
UniqueFd above_stdio(UniqueFd fd) {
  if (fd.get() > STDERR_FILENO) return fd;
  int moved = fcntl(fd.get(), F_DUPFD_CLOEXEC, STDERR_FILENO + 1);
  if (moved < 0) throw SystemError("duplicate descriptor", "", errno);
  return UniqueFd(moved);
}

void make_pipe(UniqueFd& r, UniqueFd& w) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) throw SystemError("create pipe", "", errno);
  r = above_stdio(UniqueFd(fds[0]));
  w = above_stdio(UniqueFd(fds[1]));
}

[[noreturn]] void child_fail(int status_w, int step) {
  ChildFailure f{step, errno};
  ssize_t ignored = write(status_w, &f, sizeof f);
  (void)ignored;
  _exit(127);
}

// The forked child: only async-signal-safe calls from here on.
[[noreturn]] void exec_child(const char* path, char* const* argv, char* const* envp, int out_w,
                             int err_w, int status_w) {
  auto fail = [status_w](int step) { child_fail(status_w, step); };
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  // Handlers are reset by execve; ignored signals are not.
  for (int sig = 1; sig < NSIG; ++sig) signal(sig, SIG_DFL);
  umask(022);
  if (geteuid() == 0) {
    // As schroot 1.6's run-parts child: fully root, or /bin/sh drops privileges.
    gid_t root_group = 0;
    if (setgroups(1, &root_group) != 0 || setresgid(0, 0, 0) != 0 || setresuid(0, 0, 0) != 0)
      fail(kStepIds);
  }
  if (chdir("/") != 0) fail(kStepChdir);
  int null_fd = open("/dev/null", O_RDONLY);
  if (null_fd < 0) fail(kStepStdin);
  if (dup2(null_fd, STDIN_FILENO) < 0 || dup2(out_w, STDOUT_FILENO) < 0 ||
      dup2(err_w, STDERR_FILENO) < 0)
    fail(kStepDup);
  // No descriptor of ours (lock files, session records) may outlive us in a daemon
  // a hook starts.
  if (close_range(STDERR_FILENO + 1, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
    for (int fd = STDERR_FILENO + 1; fd < 65536; ++fd) fcntl(fd, F_SETFD, FD_CLOEXEC);
  }
  execve(path, argv, envp);
  child_fail(status_w, kStepExec);
}

// One of the hook's output pipes, relayed line by line.
struct Relay {
  UniqueFd fd;
  bool is_stderr;
  std::string partial;

  void emit(const std::string& hook, const std::string& line) const {
    if (is_stderr)
      log_error(hook + ": " + line);
    else
      log_note(hook + ": " + line);
  }
  // Reads what is there; false at end of file (or a read error).
  bool read_some(const std::string& hook) {
    char buf[4096];
    ssize_t n;
    do {
      n = read(fd.get(), buf, sizeof buf);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) return false;
    partial.append(buf, static_cast<size_t>(n));
    size_t start = 0, nl;
    while ((nl = partial.find('\n', start)) != std::string::npos) {
      emit(hook, partial.substr(start, nl - start));
      start = nl + 1;
    }
    partial.erase(0, start);
    return true;
  }
  void finish(const std::string& hook) {
    if (!partial.empty()) emit(hook, partial);
    partial.clear();
    fd.reset();
  }
};

int wait_status_code(int wstatus, const std::string& name) {
  if (WIFEXITED(wstatus)) return WEXITSTATUS(wstatus);
  if (WIFSIGNALED(wstatus)) {
    int sig = WTERMSIG(wstatus);
    log_error("setup.d/" + name + ": terminated by signal ‘" + strsignal(sig) + "’");
    return 128 + sig;
  }
  return 1;
}

pid_t wait_blocking(pid_t pid, int* wstatus) {
  pid_t r;
  do {
    r = waitpid(pid, wstatus, 0);
  } while (r < 0 && errno == EINTR);
  return r;
}

}  // namespace

int run_hook(const std::string& dir, const std::string& name, const std::string& stage,
             const std::string& status, const Environment& env) {
  // Everything the child needs is built before fork: it must not allocate.
  const std::string path = dir + "/" + name;
  Envp argv;
  argv.s = {name, stage, status};
  Envp envp = env.to_envp();
  char* const* argv_p = argv.get();
  char* const* envp_p = envp.get();

  UniqueFd out_r, out_w, err_r, err_w, status_r, status_w;
  make_pipe(out_r, out_w);
  make_pipe(err_r, err_w);
  make_pipe(status_r, status_w);

  log_debug("setup.d/" + name + " " + stage + " " + status);
  pid_t pid = fork();
  if (pid < 0) throw SystemError("fork for setup.d hook", path, errno);
  if (pid == 0) exec_child(path.c_str(), argv_p, envp_p, out_w.get(), err_w.get(), status_w.get());

  out_w.reset();
  err_w.reset();
  status_w.reset();

  // EOF on the status pipe means execve succeeded (the pipe is close-on-exec).
  ChildFailure failure{0, 0};
  ssize_t got;
  do {
    got = read(status_r.get(), &failure, sizeof failure);
  } while (got < 0 && errno == EINTR);
  status_r.reset();
  if (got == static_cast<ssize_t>(sizeof failure)) {
    int wstatus = 0;
    wait_blocking(pid, &wstatus);
    if (failure.step == kStepExec)
      log_error("setup.d/" + name + ": cannot execute: " + std::strerror(failure.err));
    else
      log_error("setup.d/" + name + ": cannot " + step_name(failure.step) + ": " +
                std::strerror(failure.err));
    return 127;
  }

  Relay relays[2] = {{std::move(err_r), true, {}}, {std::move(out_r), false, {}}};
  UniqueFd pidfd(static_cast<int>(syscall(SYS_pidfd_open, pid, 0)));
  bool exited = false;
  int wstatus = 0;
  int64_t drain_deadline = 0;

  auto reap = [&](int options) {
    pid_t r;
    do {
      r = waitpid(pid, &wstatus, options);
    } while (r < 0 && errno == EINTR);
    if (r == pid || (r < 0 && errno == ECHILD)) {
      exited = true;
      drain_deadline = now_ms() + kDrainLimitMs;
    }
  };

  while (relays[0].fd || relays[1].fd) {
    struct pollfd fds[3];
    Relay* owner[3] = {nullptr, nullptr, nullptr};
    nfds_t n = 0;
    for (auto& r : relays) {  // stderr first, as schroot 1.6
      if (!r.fd) continue;
      fds[n] = {r.fd.get(), POLLIN, 0};
      owner[n++] = &r;
    }
    const bool watch_pid = !exited && pidfd;
    if (watch_pid) fds[n++] = {pidfd.get(), POLLIN, 0};
    int timeout = exited ? kDrainPollMs : (pidfd ? -1 : kWaitPollMs);

    // Drain decisions use the state before this poll: output written just before
    // the exit is read on the next round, not dropped.
    const bool was_exited = exited;
    int ready = poll(fds, n, timeout);
    if (ready < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      for (auto& r : relays) r.finish(name);
      wait_blocking(pid, &wstatus);
      throw SystemError("poll setup.d hook output", path, err);
    }
    // The hook is gone and nothing is waiting: whatever still holds the pipes
    // (a daemon it started) is not ours to wait for.
    if (was_exited && (ready == 0 || now_ms() >= drain_deadline)) break;
    if (!exited && (watch_pid ? (fds[n - 1].revents != 0) : true)) reap(watch_pid ? 0 : WNOHANG);
    for (nfds_t i = 0; i < n; ++i) {
      if (owner[i] == nullptr || fds[i].revents == 0) continue;
      if (!owner[i]->read_some(name)) owner[i]->finish(name);
    }
  }
  for (auto& r : relays) r.finish(name);
  if (!exited) wait_blocking(pid, &wstatus);
  return wait_status_code(wstatus, name);
}

HookResult run_hooks(const std::string& dir, const std::vector<std::string>& names,
                     const std::string& stage, const std::string& status, const Environment& env,
                     bool reverse, bool stop_on_failure) {
  std::vector<std::string> order = names;
  if (reverse) std::reverse(order.begin(), order.end());
  HookResult result;
  for (const auto& name : order) {
    int code = run_hook(dir, name, stage, status, env);
    if (code == 0) continue;
    if (result.ok()) result = {code, name};
    if (stop_on_failure) break;
  }
  return result;
}

}  // namespace schroot
