#include "src/run_command.h"

#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <sys/personality.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>

#include "src/error.h"
#include "src/log.h"
#include "src/sys/blocked_signals.h"
#include "src/sys/command.h"
#include "src/text.h"

namespace schroot {

namespace {

mode_t g_caller_umask = 022;  // restored for the command (use_own_umask)

// Where the child stopped before the command ran; the parent says why.
enum Step {
  kJoinNamespace = 1,
  kSetGroups,
  kSetGid,
  kPersonality,
  kChangeRoot,
  kSetUid,
  kDropRoot,
  kDirectory,        // -d
  kCallerDirectory,  // the caller's cwd, for a command
  kAnyDirectory,     // none of a login shell's fallbacks
};

// The command's run for one shell that may exist inside the chroot: the child sees
// the chroot only once it entered it, so every choice it may make there is built
// here, before fork, and the child only picks one (it must not allocate).
struct Launch {
  std::string shell;
  std::string warning;  // "W: Falling back to shell ‘…’\n"; empty for none
  Envp argv, env;
  std::string file;                     // executed when no candidate is executable
  std::vector<std::string> candidates;  // the PATH search, in order
  char* const* argv_p = nullptr;
  char* const* env_p = nullptr;
};

struct ChildPlan {
  const RunSpec* spec = nullptr;
  std::vector<gid_t> groups;
  long personality = -1;
  bool login_shell = false;
  // One per candidate shell, in order; the last one runs, silently, when none exists.
  std::vector<Launch> launches;
  // A login shell's directories when the caller's is missing: $HOME, the target's
  // home, /; with the warning each gives.
  std::vector<std::string> fallback_dirs, fallback_warnings;
};

// A warning the child writes itself, formatted as log_warning would, before fork.
std::string warning_line(const std::string& msg) {
  return verbosity() == Verbosity::kQuiet ? std::string() : "W: " + msg + "\n";
}

// The shells tried, in order: --shell, else shell=, else ($SHELL when preserving),
// the passwd shell, /bin/bash, /bin/sh — the first that exists inside the chroot.
std::vector<std::string> shell_candidates(const RunSpec& s, char** caller_env) {
  Environment caller;
  caller.add_from_envp(caller_env);
  std::vector<std::string> candidates;
  if (!s.shell.empty()) candidates.push_back(s.shell);
  if (s.preserve_environment)
    if (auto sh = caller.get("SHELL")) candidates.push_back(*sh);
  if (!s.target.shell.empty()) candidates.push_back(s.target.shell);
  candidates.push_back("/bin/bash");
  candidates.push_back("/bin/sh");
  return candidates;
}

// execvp's search, done by the child (as the target user, inside the chroot) over
// these candidates; a name with a slash is executed as it is.
void plan_path_search(Launch& l, const std::string& cmd, const Environment& env) {
  l.file = cmd;
  if (cmd.find('/') != std::string::npos) return;
  std::string path = env.get("PATH").value_or("/usr/bin:/bin");
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find(':', start);
    if (end == std::string::npos) end = path.size();
    std::string dir = path.substr(start, end - start);
    if (dir.empty()) dir = ".";
    l.candidates.push_back(dir + "/" + cmd);
    start = end + 1;
  }
}

Launch plan_launch(const RunSpec& s, char** caller_env, const std::string& shell, Environment& env) {
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
  in.pam_env = s.pam_env;
  in.shell = shell;
  env = command_environment(in);

  Launch l;
  l.shell = shell;
  std::vector<std::string> argv = s.command_prefix;
  if (s.command.empty()) {
    std::string base = shell.substr(shell.rfind('/') + 1);
    // A login shell ("-bash") only with a clean environment and no command prefix.
    if (!s.preserve_environment && s.command_prefix.empty())
      argv.push_back("-" + base);
    else
      argv.push_back(shell);
    if (argv.size() == 1)
      l.file = shell;
    else
      plan_path_search(l, argv[0], env);
  } else {
    argv.insert(argv.end(), s.command.begin(), s.command.end());
    plan_path_search(l, argv[0], env);
  }
  l.argv.s = std::move(argv);
  l.env.s = env.to_strings();
  return l;
}

ChildPlan plan_child(const RunSpec& s, char** caller_env, std::vector<gid_t> groups) {
  ChildPlan p;
  p.spec = &s;
  p.groups = std::move(groups);
  p.personality = personality_value(s.personality);
  p.login_shell = s.command.empty();
  const std::vector<std::string> shells = shell_candidates(s, caller_env);
  Environment env;
  for (size_t i = 0; i < shells.size(); ++i) {
    p.launches.push_back(plan_launch(s, caller_env, shells[i], env));
    if (i > 0 && !s.shell.empty()) p.launches.back().warning = warning_line("Falling back to shell ‘" + shells[i] + "’");
  }
  p.launches.push_back(plan_launch(s, caller_env, "/bin/sh", env));  // none exists
  // $HOME does not depend on the shell.
  if (auto home = env.get("HOME")) p.fallback_dirs.push_back(*home);
  p.fallback_dirs.push_back(s.target.home);
  p.fallback_dirs.push_back("/");
  for (const auto& dir : p.fallback_dirs) p.fallback_warnings.push_back(warning_line("Falling back to directory ‘" + dir + "’"));
  // Pointers last: the vectors are complete and nothing moves any more.
  for (auto& l : p.launches) {
    l.argv_p = l.argv.get();
    l.env_p = l.env.get();
  }
  return p;
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

// ---- the child, between fork and exec: async-signal-safe calls only --------------------

void write_stderr(const std::string& line) {
  if (!line.empty()) (void)!::write(STDERR_FILENO, line.data(), line.size());
}

// Join the namespace, apply the identity resolved on the host (no NSS, no file read
// by path while root), personality, chroot, drop root.
int enter_chroot(const ChildPlan& p) {
  const RunSpec& s = *p.spec;
  if (s.mount_ns_fd >= 0 && ::setns(s.mount_ns_fd, CLONE_NEWNS) != 0) return kJoinNamespace;
  if (sys::child_setgroups(p.groups.size(), p.groups.data()) != 0) return kSetGroups;
  if (sys::child_setresgid(s.target.gid, s.target.gid, s.target.gid) != 0) return kSetGid;
  if (p.personality >= 0 && ::personality(static_cast<unsigned long>(p.personality)) == -1) return kPersonality;
  if (::chdir(s.root.c_str()) != 0 || ::chroot(".") != 0) return kChangeRoot;
  if (sys::child_setresuid(s.target.uid, s.target.uid, s.target.uid) != 0) return kSetUid;
  if (s.target.uid != 0 && sys::child_setresuid(0, 0, 0) == 0) {
    errno = EPERM;
    return kDropRoot;
  }
  return 0;
}

// The first shell that exists inside the chroot, looked at as the target user.
size_t choose_launch(const ChildPlan& p) {
  for (size_t i = 0; i + 1 < p.launches.size(); ++i) {
    struct stat st;
    if (::stat(p.launches[i].shell.c_str(), &st) == 0) {
      write_stderr(p.launches[i].warning);
      return i;
    }
  }
  return p.launches.size() - 1;
}

// -d, else the caller's directory; a login shell falls back (schroot 1.6).
int change_directory(const ChildPlan& p) {
  const RunSpec& s = *p.spec;
  if (!s.directory.empty()) return ::chdir(s.directory.c_str()) == 0 ? 0 : kDirectory;
  if (!s.caller_cwd.empty() && ::chdir(s.caller_cwd.c_str()) == 0) return 0;
  if (!p.login_shell) return kCallerDirectory;
  for (size_t i = 0; i < p.fallback_dirs.size(); ++i) {
    const std::string& dir = p.fallback_dirs[i];
    if (!dir.empty() && ::chdir(dir.c_str()) == 0) {
      write_stderr(p.fallback_warnings[i]);
      return 0;
    }
  }
  return kAnyDirectory;
}

const char* executable(const Launch& l) {
  for (const auto& candidate : l.candidates)
    if (::access(candidate.c_str(), X_OK) == 0) return candidate.c_str();
  return l.file.c_str();
}

int child_steps(const ChildPlan& p, sys::ExecTarget& target) {
  if (int step = enter_chroot(p)) return step;
  const size_t chosen = choose_launch(p);
  target.which = static_cast<int>(chosen);
  if (int step = change_directory(p)) return step;
  const Launch& l = p.launches[chosen];
  // After the chdir: a relative PATH entry means the command's directory.
  target.path = executable(l);
  target.argv = l.argv_p;
  target.envp = l.env_p;
  ::umask(g_caller_umask);
  return 0;
}

// ---- the parent ---------------------------------------------------------------------

// The child's reasons were always shown, quiet or not: written as it wrote them.
void say_error(const std::string& msg) { write_stderr("E: " + msg + "\n"); }

std::string failure_message(const ChildPlan& p, const sys::ChildFailure& f) {
  const RunSpec& s = *p.spec;
  const std::string why = std::strerror(f.error);
  const std::string hint =
      "\nI: The directory does not exist inside the chroot.  Use the --directory option to run the command in a "
      "different directory.";
  switch (f.step) {
    case kJoinNamespace: return "Failed to join the session's mount namespace: " + why;
    case kSetGroups: return "Failed to set supplementary groups: " + why;
    case kSetGid: return "Failed to set group ID: " + why;
    case kPersonality: return "Failed to set personality ‘" + s.personality + "’: " + why;
    case kChangeRoot: return "Failed to change root to ‘" + s.root + "’: " + why;
    case kSetUid: return "Failed to set user ID: " + why;
    case kDropRoot: return "Failed to drop root privileges";
    case kDirectory: return "Failed to change to directory ‘" + s.directory + "’: " + why + hint;
    case kCallerDirectory: return "Failed to change to directory ‘" + s.caller_cwd + "’: " + why + hint;
    case kAnyDirectory: return "Failed to change to any directory";
    case sys::kExecStep:
      if (f.which >= 0 && static_cast<size_t>(f.which) < p.launches.size())
        return "Failed to execute “" + p.launches[static_cast<size_t>(f.which)].argv.s[0] + "”: " + why;
      break;
  }
  return "Failed to start the command: " + why;
}

volatile sig_atomic_t g_child = 0;
void forward_signal(int sig) {
  if (g_child > 0) ::kill(g_child, sig);
}

// While the command runs: SIGINT reaches it from the terminal (we ignore it),
// SIGTERM and SIGHUP sent to us are passed on. Restored by the destructor.
class ForwardedSignals {
 public:
  explicit ForwardedSignals(pid_t child) {
    g_child = child;
    struct sigaction fwd {}, ign {};
    fwd.sa_handler = forward_signal;
    ign.sa_handler = SIG_IGN;
    ::sigaction(SIGINT, &ign, &old_int_);
    ::sigaction(SIGTERM, &fwd, &old_term_);
    ::sigaction(SIGHUP, &fwd, &old_hup_);
  }
  ~ForwardedSignals() {
    g_child = 0;
    ::sigaction(SIGINT, &old_int_, nullptr);
    ::sigaction(SIGTERM, &old_term_, nullptr);
    ::sigaction(SIGHUP, &old_hup_, nullptr);
  }
  ForwardedSignals(const ForwardedSignals&) = delete;
  ForwardedSignals& operator=(const ForwardedSignals&) = delete;

 private:
  struct sigaction old_int_ {}, old_term_ {}, old_hup_ {};
};

sys::Command command_for(const ChildPlan& plan) {
  sys::Command cmd;
  // The child picks the launch; the last one names the command until it has.
  cmd.argv = plan.launches.back().argv.s;
  cmd.env = plan.launches.back().env.s;
  cmd.path = plan.launches.back().file;
  // The command keeps the descriptors its caller gave schroot (ours are close-on-exec)
  // and the signals the caller ignores, except these.
  cmd.close_other_fds = false;
  cmd.default_signals = std::vector<int>{SIGINT, SIGTERM, SIGHUP, SIGPIPE};
  cmd.before_exec = [&plan](sys::ExecTarget& target) { return child_steps(plan, target); };
  return cmd;
}

int exit_code_of(const sys::ExitStatus& s) {
  if (s.exited) return s.code;
  log_error(s.core ? std::string("Child dumped core")
                   : std::string("Child terminated by signal ‘") + ::strsignal(s.signal) + "’");
  return 1;
}

}  // namespace

void use_own_umask() { g_caller_umask = ::umask(022); }

long personality_value(const std::string& name) {
  static const NameOf<long> table[] = {
      {PER_LINUX, "linux"}, {PER_LINUX_32BIT, "linux_32bit"}, {PER_LINUX32, "linux32"},
      {PER_SVR4, "svr4"},   {PER_SVR3, "svr3"},               {PER_SCOSVR3, "scorvr3"},
      {PER_OSR5, "osr5"},   {PER_WYSEV386, "wysev386"},       {PER_ISCR4, "iscr4"},
      {PER_BSD, "bsd"},     {PER_SUNOS, "sunos"},             {PER_XENIX, "xenix"},
      {PER_IRIX32, "irix32"}, {PER_IRIXN32, "irixn32"},       {PER_IRIX64, "irix64"},
      {PER_RISCOS, "riscos"}, {PER_SOLARIS, "solaris"},       {PER_UW7, "uw7"},
      {PER_OSF4, "osf4"},   {PER_HPUX, "hpux"},
  };
  return value_named(table, name).value_or(-1);
}

int run_in_chroot(const RunSpec& spec, char** caller_env) {
  if (spec.command.empty()) {
    log_info("[" + spec.chroot_name + " chroot] (" + spec.caller.name + "->" + spec.target.name + ") Running login shell");
  } else {
    log_info("[" + spec.chroot_name + " chroot] (" + spec.caller.name + "->" + spec.target.name +
             ") Running command: “" + join(spec.command, " ") + "”");
  }
  const ChildPlan plan = plan_child(spec, caller_env, host_groups(spec.target));
  const sys::Command cmd = command_for(plan);
  sys::Child child;
  std::optional<ForwardedSignals> forwarded;
  {
    // Held from before the child starts until the forwarding handlers are in place:
    // the command may signal us at once (`kill $PPID`), and a SIGTERM then would kill
    // schroot and strand the session. The child unblocks them before execve.
    sys::BlockedSignals held{SIGINT, SIGTERM, SIGHUP};
    child = sys::Child::spawn(cmd);
    forwarded.emplace(child.pid());
  }
  const std::optional<sys::ChildFailure> failure = child.started();
  const sys::ExitStatus status = child.wait();
  forwarded.reset();
  if (failure) {
    say_error(failure_message(plan, *failure));
    return 1;
  }
  return exit_code_of(status);
}

}  // namespace schroot
