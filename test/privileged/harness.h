// TestRoot: a fresh world for one end-to-end test. A tmpfs is mounted over
// TEST_ROOT (the directory test/schroot-under-test has compiled in as its prefix)
// inside the test binary's private mount namespace; it holds etc/schroot,
// var/lib/schroot, run/schroot and busybox chroot trees. Nothing touches the host.
#pragma once

#include <sys/types.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "src/sys/process.h"

namespace schroot::test {

struct RunResult {
  int status = -1;  // exit status, or 128+signal
  std::string out, err;
};

class TestRoot {
 public:
  TestRoot();
  ~TestRoot();

  std::string root() const;      // TEST_ROOT
  std::string sysconf() const;   // ROOT/etc/schroot
  std::string state() const;     // ROOT/var/lib/schroot
  std::string run_dir() const;   // ROOT/run/schroot

  // A busybox tree at ROOT/srv/NAME with bin/sh, etc/, proc/, sys/, dev/, tmp/, home/.
  std::string make_tree(const std::string& name);
  // ROOT/etc/schroot/chroot.conf (mode 0644, root-owned).
  void write_config(const std::string& text);
  void write_file(const std::string& path, const std::string& content, unsigned mode = 0644);
  // A profile ROOT/etc/schroot/NAME/{fstab,copyfiles,nssdatabases}.
  void write_profile(const std::string& name, const std::string& fstab, const std::string& copyfiles,
                     const std::string& nssdatabases);
  void add_hook(const std::string& name, const std::string& script);

  // Runs the schroot under test with args; extra environment NAME=VALUE appended.
  RunResult schroot(const std::vector<std::string>& args, const std::vector<std::string>& env = {},
                    const std::string& stdin_text = "") const;

  // Mounts below ROOT other than ROOT's own tmpfs (leaks), records, union dirs.
  std::vector<std::string> mounts_below_root() const;
  std::vector<std::string> records() const;
  std::vector<std::string> union_dirs() const;
  std::vector<std::string> lock_holder_files() const;
};

// A setuid-root copy of the schroot under test that an unprivileged user can run
// wherever the checkout is (a 0700 /root/... included; DESIGN §11): on a tmpfs of its
// own (so suid is honoured whatever /tmp is mounted with) over a fresh directory under
// /tmp, inside the test binary's private mount namespace. Gone with the object.
class SetuidCopy {
 public:
  SetuidCopy();  // throws std::runtime_error when it cannot be made
  ~SetuidCopy();
  SetuidCopy(const SetuidCopy&) = delete;
  SetuidCopy& operator=(const SetuidCopy&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string dir_, path_;
};

// Runs binary with args (PATH and env as its whole environment), feeding stdin_text;
// in_child runs in the child before exec (dropping privileges, say).
RunResult run_program(const std::string& binary, const std::vector<std::string>& args,
                      const std::vector<std::string>& env, const std::string& stdin_text = "",
                      const std::function<void()>& in_child = {});
// In a forked child: execs binary with args and a PATH-only environment plus env.
[[noreturn]] void exec_program(const std::string& binary, const std::vector<std::string>& args,
                               const std::vector<std::string>& env);

// Test-only: is process `pid`'s root the directory `top` or anywhere below it, in any
// mount namespace (an automatic session's included)? Walks up from its root by "..",
// comparing device and inode. Sessions themselves match exactly (sys::processes_in_session).
bool rooted_under(pid_t pid, const sys::DirIdentity& top);
// Ends (SIGTERM, then SIGKILL) every process rooted under `top`, through pidfds.
void end_processes_rooted_under(const std::string& top);

std::string read_text(const std::string& path);
// Without the trailing newlines and spaces of a command's output.
std::string trim(std::string s);
bool path_exists(const std::string& path);

}  // namespace schroot::test
