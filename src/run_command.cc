#include "src/run_command.h"

#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <sys/personality.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "src/error.h"
#include "src/log.h"

namespace schroot {

namespace {

mode_t g_caller_umask = 022;  // restored for the command (use_own_umask)

// Child side: errors go straight to stderr (we are after fork) and exit 1.
[[noreturn]] void child_fail(const std::string& msg) {
  std::string line = "E: " + msg + "\n";
  ssize_t ignored = ::write(STDERR_FILENO, line.data(), line.size());
  (void)ignored;
  ::_exit(1);
}

bool exists_in_chroot(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

// The shell: --shell, else shell=, else ($SHELL when preserving), passwd shell,
// /bin/bash, /bin/sh — the first that exists inside the chroot.
std::string choose_shell(const RunSpec& s, const Environment& env) {
  std::vector<std::string> candidates;
  if (!s.shell.empty()) candidates.push_back(s.shell);
  if (s.preserve_environment)
    if (auto sh = env.get("SHELL")) candidates.push_back(*sh);
  if (!s.target.shell.empty()) candidates.push_back(s.target.shell);
  candidates.push_back("/bin/bash");
  candidates.push_back("/bin/sh");
  for (size_t i = 0; i < candidates.size(); ++i) {
    if (exists_in_chroot(candidates[i])) {
      if (i > 0 && !s.shell.empty()) log_warning("Falling back to shell ‘" + candidates[i] + "’");
      return candidates[i];
    }
  }
  return "/bin/sh";
}

std::string find_in_path(const std::string& cmd, const Environment& env) {
  if (cmd.find('/') != std::string::npos) return cmd;
  std::string path = env.get("PATH").value_or("/usr/bin:/bin");
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find(':', start);
    if (end == std::string::npos) end = path.size();
    std::string dir = path.substr(start, end - start);
    if (dir.empty()) dir = ".";
    std::string candidate = dir + "/" + cmd;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return cmd;
}

void change_directory(const RunSpec& s, const Environment& env, bool login_shell) {
  if (!s.directory.empty()) {
    if (::chdir(s.directory.c_str()) != 0)
      child_fail("Failed to change to directory ‘" + s.directory + "’: " + std::strerror(errno) +
                 "\nI: The directory does not exist inside the chroot.  Use the --directory option to run the "
                 "command in a different directory.");
    return;
  }
  if (!s.caller_cwd.empty() && ::chdir(s.caller_cwd.c_str()) == 0) return;
  if (!login_shell)
    child_fail("Failed to change to directory ‘" + s.caller_cwd + "’: " + std::strerror(errno) +
               "\nI: The directory does not exist inside the chroot.  Use the --directory option to run the "
               "command in a different directory.");
  std::vector<std::string> fallbacks;
  if (auto home = env.get("HOME")) fallbacks.push_back(*home);
  fallbacks.push_back(s.target.home);
  fallbacks.push_back("/");
  for (const auto& dir : fallbacks) {
    if (!dir.empty() && ::chdir(dir.c_str()) == 0) {
      log_warning("Falling back to directory ‘" + dir + "’");
      return;
    }
  }
  child_fail("Failed to change to any directory");
}

// The target user's groups, resolved on the host before the child enters anything a
// user can influence: after a setns or chroot, an NSS lookup (initgroups) would read
// that tree's /etc/group and dlopen its NSS modules as root.
std::vector<gid_t> host_groups(const UserInfo& target) {
  int n = 64;
  std::vector<gid_t> groups(static_cast<size_t>(n));
  while (::getgrouplist(target.name.c_str(), target.gid, groups.data(), &n) < 0) groups.resize(static_cast<size_t>(n));
  groups.resize(static_cast<size_t>(n));
  return groups;
}

// Child side, in this order: join the namespace, apply the identity resolved on the
// host (no NSS, no file read by path while root), personality, chroot, drop root.
[[noreturn]] void exec_child(const RunSpec& s, const std::vector<gid_t>& groups, char** caller_env) {
  CommandEnvInput in;
  in.target = s.target;
  in.caller = s.caller;
  in.caller_env = caller_env;
  in.preserve = s.preserve_environment;
  in.filter_regex = s.environment_filter;
  in.command = s.command;
  in.chroot_name = s.chroot_name;
  in.alias_name = s.alias_name;
  in.session_id = s.session_id;

  if (s.mount_ns_fd >= 0 && ::setns(s.mount_ns_fd, CLONE_NEWNS) != 0)
    child_fail(std::string("Failed to join the session's mount namespace: ") + std::strerror(errno));
  if (::setgroups(groups.size(), groups.data()) != 0)
    child_fail(std::string("Failed to set supplementary groups: ") + std::strerror(errno));
  if (::setgid(s.target.gid) != 0) child_fail(std::string("Failed to set group ID: ") + std::strerror(errno));
  long pers = personality_value(s.personality);
  if (pers >= 0 && ::personality(static_cast<unsigned long>(pers)) == -1)
    child_fail("Failed to set personality ‘" + s.personality + "’: " + std::strerror(errno));
  if (::chdir(s.root.c_str()) != 0 || ::chroot(".") != 0)
    child_fail("Failed to change root to ‘" + s.root + "’: " + std::strerror(errno));
  if (::setuid(s.target.uid) != 0) child_fail(std::string("Failed to set user ID: ") + std::strerror(errno));
  if (s.target.uid != 0 && ::setuid(0) == 0) child_fail("Failed to drop root privileges");

  const bool login_shell = s.command.empty();
  // The shell is looked up inside the chroot, so only now; $SHELL counts with -p.
  Environment caller;
  caller.add_from_envp(caller_env);
  in.shell = choose_shell(s, caller);
  Environment env = command_environment(in);
  change_directory(s, env, login_shell);

  std::vector<std::string> argv = s.command_prefix;
  std::string file;
  if (login_shell) {
    std::string base = in.shell.substr(in.shell.rfind('/') + 1);
    // A login shell ("-bash") only with a clean environment and no command prefix.
    if (!s.preserve_environment && s.command_prefix.empty())
      argv.push_back("-" + base);
    else
      argv.push_back(in.shell);
    file = argv.size() == 1 ? in.shell : find_in_path(argv[0], env);
  } else {
    argv.insert(argv.end(), s.command.begin(), s.command.end());
    file = find_in_path(argv[0], env);
  }
  std::vector<char*> cargv;
  for (auto& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  std::vector<std::string> envs = env.to_strings();
  std::vector<char*> cenv;
  for (auto& e : envs) cenv.push_back(e.data());
  cenv.push_back(nullptr);
  ::signal(SIGINT, SIG_DFL);
  ::signal(SIGTERM, SIG_DFL);
  ::signal(SIGHUP, SIG_DFL);
  ::signal(SIGPIPE, SIG_DFL);
  sigset_t none;
  ::sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::umask(g_caller_umask);
  ::execve(file.c_str(), cargv.data(), cenv.data());
  child_fail("Failed to execute “" + argv[0] + "”: " + std::strerror(errno));
}

volatile sig_atomic_t g_child = 0;
void forward_signal(int sig) {
  if (g_child > 0) ::kill(g_child, sig);
}

}  // namespace

void use_own_umask() { g_caller_umask = ::umask(022); }

long personality_value(const std::string& name) {
  struct P {
    const char* name;
    long value;
  };
  static const P table[] = {
      {"linux", PER_LINUX}, {"linux_32bit", PER_LINUX_32BIT}, {"linux32", PER_LINUX32},
      {"svr4", PER_SVR4},   {"svr3", PER_SVR3},               {"scorvr3", PER_SCOSVR3},
      {"osr5", PER_OSR5},   {"wysev386", PER_WYSEV386},       {"iscr4", PER_ISCR4},
      {"bsd", PER_BSD},     {"sunos", PER_SUNOS},             {"xenix", PER_XENIX},
      {"irix32", PER_IRIX32}, {"irixn32", PER_IRIXN32},       {"irix64", PER_IRIX64},
      {"riscos", PER_RISCOS}, {"solaris", PER_SOLARIS},       {"uw7", PER_UW7},
      {"osf4", PER_OSF4},   {"hpux", PER_HPUX},
  };
  for (const auto& p : table)
    if (name == p.name) return p.value;
  return -1;
}

int run_in_chroot(const RunSpec& spec, char** caller_env) {
  if (spec.command.empty()) {
    log_info("[" + spec.chroot_name + " chroot] (" + spec.caller.name + "->" + spec.target.name + ") Running login shell");
  } else {
    std::string joined;
    for (const auto& a : spec.command) joined += (joined.empty() ? "" : " ") + a;
    log_info("[" + spec.chroot_name + " chroot] (" + spec.caller.name + "->" + spec.target.name +
             ") Running command: “" + joined + "”");
  }
  struct sigaction fwd {}, ign {}, old_term {}, old_hup {}, old_int {};
  fwd.sa_handler = forward_signal;
  ign.sa_handler = SIG_IGN;
  const std::vector<gid_t> groups = host_groups(spec.target);
  // Held until the handlers below are in place: the command may signal us at once
  // (`kill $PPID`), and a SIGTERM then would kill schroot and strand the session. The
  // child unblocks them just before execve.
  sigset_t held, old_mask;
  ::sigemptyset(&held);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) ::sigaddset(&held, sig);
  ::sigprocmask(SIG_BLOCK, &held, &old_mask);
  pid_t pid = ::fork();
  if (pid < 0) {
    const int err = errno;
    ::sigprocmask(SIG_SETMASK, &old_mask, nullptr);
    throw SystemError("fork", "", err);
  }
  if (pid == 0) exec_child(spec, groups, caller_env);
  g_child = pid;
  // SIGINT reaches the child from the terminal; SIGTERM/SIGHUP are forwarded.
  ::sigaction(SIGINT, &ign, &old_int);
  ::sigaction(SIGTERM, &fwd, &old_term);
  ::sigaction(SIGHUP, &fwd, &old_hup);
  ::sigprocmask(SIG_SETMASK, &old_mask, nullptr);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  g_child = 0;
  ::sigaction(SIGINT, &old_int, nullptr);
  ::sigaction(SIGTERM, &old_term, nullptr);
  ::sigaction(SIGHUP, &old_hup, nullptr);
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) {
    log_error(std::string(WCOREDUMP(status) ? "Child dumped core" : "Child terminated by signal ‘") +
              (WCOREDUMP(status) ? "" : std::string(::strsignal(WTERMSIG(status))) + "’"));
    return 1;
  }
  return 1;
}

}  // namespace schroot
