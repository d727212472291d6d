#include "src/hooks.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <string_view>

#include "src/error.h"
#include "src/log.h"
#include "src/stock_hooks.h"
#include "src/sys/command.h"
#include "src/sys/fs.h"
#include "src/sys/unique_fd.h"

namespace schroot {

// ---- names -------------------------------------------------------------------------

namespace {

// schroot 1.6 run-parts, lsb_mode forced on: a name is one of
//   ^[a-z0-9][a-z0-9-]*$                  (LANANA; covers ^[a-z0-9]+$)
//   ^_?([a-z0-9_.]+-)+[a-z0-9]+$          (LSB hierarchical; the "_?" adds nothing,
//                                          '_' being in the first part's class)
// and also not the names dpkg-maintscript-helper gives a stock hook the package stops
// shipping (rm_conffile: X.dpkg-remove and X.dpkg-backup while the package is unpacked,
// a modified copy kept as X.dpkg-bak), which the LSB hierarchical pattern would accept:
// on an upgrade from schroot 1.6 its 10mount.dpkg-bak would mount the chroot a second
// time in every session. Checked character by character, as run-parts' patterns say
// (test/unit/hooks_test.cc compares with regcomp): compiling four regexes cost every
// session ~1% of its time.
bool lower_or_digit(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

bool lanana_name(std::string_view n) {
  if (n.empty() || !lower_or_digit(n[0])) return false;
  return std::all_of(n.begin(), n.end(), [](char c) { return lower_or_digit(c) || c == '-'; });
}

// Parts split at '-', at least two, none empty: the last of [a-z0-9], the others of
// [a-z0-9_.].
bool lsb_hierarchical_name(std::string_view n) {
  const auto last_dash = n.rfind('-');
  if (last_dash == std::string_view::npos || last_dash + 1 == n.size()) return false;
  if (!std::all_of(n.begin() + last_dash + 1, n.end(), lower_or_digit)) return false;
  bool part_empty = true;
  for (char c : n.substr(0, last_dash + 1)) {
    if (c == '-') {
      if (part_empty) return false;
      part_empty = true;
    } else if (lower_or_digit(c) || c == '_' || c == '.') {
      part_empty = false;
    } else {
      return false;
    }
  }
  return true;
}

bool dpkg_leftover(std::string_view n) {
  for (std::string_view suffix : {"dpkg-old", "dpkg-dist", "dpkg-new", "dpkg-tmp", "dpkg-bak", "dpkg-backup",
                                  "dpkg-remove"})
    if (n.size() >= suffix.size() && n.substr(n.size() - suffix.size()) == suffix) return true;
  return false;
}

}  // namespace

bool hook_name_accepted(const std::string& name) {
  return !dpkg_leftover(name) && (lanana_name(name) || lsb_hierarchical_name(name));
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

// After the hook exited, how long we keep relaying output from a descendant that
// holds its pipes open and keeps writing.
constexpr std::chrono::milliseconds kDrainLimit{1000};

// The hook's own steps in the child, after its streams are in place (the spawner's
// failures are kExecStep and kRedirectStep).
enum HookStep { kStepIds = 1, kStepChdir };

std::string failed_step(int step) {
  switch (step) {
    case kStepIds: return "set root ids";
    case kStepChdir: return "chdir /";
    case sys::kRedirectStep: return "redirect output";
    default: return "exec";
  }
}

// As schroot 1.6's run-parts child: umask 022, cwd /, and fully root when our euid is
// 0, or /bin/sh drops privileges. Runs in the child: async-signal-safe calls only.
sys::BeforeExec hook_child_steps(bool as_root) {
  return [as_root](sys::ExecTarget&) {
    ::umask(022);
    if (as_root) {
      gid_t root_group = 0;
      if (sys::child_setgroups(1, &root_group) != 0 || sys::child_setresgid(0, 0, 0) != 0 ||
          sys::child_setresuid(0, 0, 0) != 0)
        return static_cast<int>(kStepIds);
    }
    if (::chdir("/") != 0) return static_cast<int>(kStepChdir);
    return 0;
  };
}

// The hook's stdout and stderr, relayed line by line ("I: NAME: line", "E: NAME: line").
class Relay {
 public:
  explicit Relay(const std::string& name) : name_(name) {}
  void take(int stream, std::string_view data) {
    std::string& partial = partial_[stream == STDERR_FILENO];
    if (data.empty()) {  // end of file: the unfinished line too
      if (!partial.empty()) emit(stream, partial);
      partial.clear();
      return;
    }
    partial.append(data);
    size_t start = 0, nl;
    while ((nl = partial.find('\n', start)) != std::string::npos) {
      emit(stream, partial.substr(start, nl - start));
      start = nl + 1;
    }
    partial.erase(0, start);
  }

 private:
  void emit(int stream, const std::string& line) const {
    if (stream == STDERR_FILENO)
      log_error(name_ + ": " + line);
    else
      log_note(name_ + ": " + line);
  }
  std::string name_;
  std::string partial_[2];
};

// Is `path` what exec would run (a regular file with an execute bit, root's on a mount
// that allows exec) and, byte for byte, `stock`? Any doubt (an error) says no: then
// the hook runs, as it always did.
bool is_stock_file(const std::string& path, std::string_view stock) {
  if (::faccessat(AT_FDCWD, path.c_str(), X_OK, AT_EACCESS) != 0) return false;
  // O_NONBLOCK: a FIFO in its place must not stop us; it is no regular file anyway.
  sys::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
  struct stat st;
  if (!fd || ::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) ||
      static_cast<std::size_t>(st.st_size) != stock.size())
    return false;
  try {
    return sys::read_all(fd.get(), path) == stock;
  } catch (const SystemError&) {
    return false;
  }
}

// The stock 70services starts with `[ -n "$SETUP_SERVICES" ] || exit 0`: with no
// service configured, starting it (a fork and a shell, twice a session) only gets that
// exit 0. Such a run is skipped; a copy changed in any byte always runs.
bool stock_hook_has_nothing_to_do(const std::string& dir, const std::string& name, const Environment& env) {
  if (name != "70services") return false;
  const auto services = env.get("SETUP_SERVICES");
  if (services && !services->empty()) return false;
  return is_stock_file(dir + "/" + name, std::string_view(kStock70services, sizeof kStock70services - 1));
}

int exit_code_of(const sys::ExitStatus& s, const std::string& name) {
  if (s.exited) return s.code;
  log_error("setup.d/" + name + ": terminated by signal ‘" + strsignal(s.signal) + "’");
  return 128 + s.signal;
}

}  // namespace

int run_hook(const std::string& dir, const std::string& name, const std::string& stage,
             const std::string& status, const Environment& env) {
  if (stock_hook_has_nothing_to_do(dir, name, env)) {
    log_debug("setup.d/" + name + " " + stage + " " + status + ": the stock hook, no services: exits 0 unstarted");
    return 0;
  }
  sys::Command cmd;
  cmd.path = dir + "/" + name;
  cmd.argv = {name, stage, status};
  cmd.env = env.to_strings();
  cmd.in = sys::Stream::null();
  cmd.out = sys::Stream::pipe();
  cmd.err = sys::Stream::pipe();
  cmd.before_exec = hook_child_steps(geteuid() == 0);
  // The hook is gone and nothing more comes: whatever still holds the pipes (a
  // daemon it started) is not ours to wait for.
  cmd.drain_limit = kDrainLimit;

  log_debug("setup.d/" + name + " " + stage + " " + status);
  sys::Child child = sys::Child::spawn(cmd);
  if (auto failure = child.started()) {
    child.wait();
    if (failure->step == sys::kExecStep)
      log_error("setup.d/" + name + ": cannot execute: " + std::strerror(failure->error));
    else
      log_error("setup.d/" + name + ": cannot " + failed_step(failure->step) + ": " + std::strerror(failure->error));
    return 127;
  }
  Relay relay(name);
  const sys::ExitStatus exit = child.wait([&relay](int stream, std::string_view data) { relay.take(stream, data); });
  return exit_code_of(exit, name);
}

}  // namespace schroot
