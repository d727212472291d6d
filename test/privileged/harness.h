// TestRoot: a fresh world for one end-to-end test. A tmpfs is mounted over
// TEST_ROOT (the directory test/schroot-under-test has compiled in as its prefix)
// inside the test binary's private mount namespace; it holds etc/schroot,
// var/lib/schroot, run/schroot and busybox chroot trees. Nothing touches the host.
#pragma once

#include <sys/types.h>

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "src/sys/command.h"
#include "src/sys/process.h"
#include "src/sys/unique_fd.h"

namespace schroot::test {

struct RunResult {
  int status = -1;  // exit status, or 128+signal
  std::string out, err;
};

// ASSERT_TRUE(succeeded(root_.schroot({...}))): a failure says the exit status and
// what the command printed on stderr, not only "1 != 0".
inline ::testing::AssertionResult succeeded(const RunResult& r) {
  if (r.status == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "exit status " << r.status << ", stderr:\n" << r.err;
}

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
  // ROOT/etc/pam.d/schroot, the PAM stack of the schroot under test (compiled in:
  // SCHROOT_PAM_CONFDIR). Every TestRoot starts with kTestPamStack.
  void write_pam_stack(const std::string& stack);

  // Runs the schroot under test with args; extra environment NAME=VALUE appended.
  RunResult schroot(const std::vector<std::string>& args, const std::vector<std::string>& env = {},
                    const std::string& stdin_text = "") const;

  // Mounts below ROOT other than ROOT's own tmpfs (leaks), records, union dirs.
  std::vector<std::string> mounts_below_root() const;
  std::vector<std::string> records() const;
  std::vector<std::string> union_dirs() const;
  std::vector<std::string> lock_holder_files() const;
};

// The PAM stack every TestRoot starts with, shaped like Debian's (root passes by
// pam_rootok) with nothing of the host's: a password is never accepted, accounts and
// sessions always are.
constexpr char kTestPamStack[] =
    "auth     sufficient pam_rootok.so\n"
    "auth     required   pam_deny.so\n"
    "account  required   pam_permit.so\n"
    "session  required   pam_permit.so\n";

// The unprivileged user the access and attack tests act as: nobody, in its group.
struct TestUser {
  uid_t uid = 0;
  gid_t gid = 0;
  TestUser();  // throws std::runtime_error when nobody has no passwd entry
  // In a child: no supplementary groups, the user's gid and uid; _exit(99) on failure.
  void become() const;
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

// binary with args as a command: argv [binary, args...]; the environment PATH and
// TERM, then env. Streams are inherited and other descriptors closed, unless the
// caller says otherwise; start it with sys::Child::spawn.
sys::Command program_command(const std::string& binary, const std::vector<std::string>& args,
                             const std::vector<std::string>& env);
// Runs program_command(binary, args, env) in /, feeding stdin_text; in_child runs in
// the child before exec (dropping privileges, say). Waits until its output ends.
RunResult run_program(const std::string& binary, const std::vector<std::string>& args,
                      const std::vector<std::string>& env, const std::string& stdin_text = "",
                      const std::function<void()>& in_child = {});

// Test-only: is process `pid`'s root the directory `top` or anywhere below it, in any
// mount namespace (an automatic session's included)? Walks up from its root by "..",
// comparing device and inode. Sessions themselves match exactly (sys::processes_in_session).
bool rooted_under(pid_t pid, const sys::DirIdentity& top);
// Ends (SIGTERM, then SIGKILL) every process rooted under `top`, through pidfds.
void end_processes_rooted_under(const std::string& top);

// Test-only: the /dev/loopN paths of the loop devices bound to the file (dev, ino)
// (and carrying `label` as their lo_file_name, when not empty), by number. Asks each
// device (LOOP_GET_STATUS64) without src/sys/loop_device.cc, whose leaks it checks.
std::vector<std::string> loops_backed_by(dev_t dev, ino_t ino, const std::string& label = "");

std::string read_text(const std::string& path);
// `cmd` run by sh (std::system): its exit status, or -1 when a signal ended it.
int run(const std::string& cmd);
// Without the trailing newlines and spaces of a command's output.
std::string trim(std::string s);
bool path_exists(const std::string& path);

// Polls `ready` every few milliseconds until it holds (true) or `deadline` has passed
// (false). Every wait in a test has a deadline: a begin that fails must fail the
// test, never hang `make check`.
bool wait_until(const std::function<bool()>& ready, std::chrono::milliseconds deadline);
// Is `path` (by device and inode) one of process `pid`'s open files? A process
// waiting for a lock has its lock file open.
bool has_open(pid_t pid, const std::string& path);

// A program (the schroot under test, say) running in the background, its stdin and
// stdout pipes that the test holds, its stderr kept for err(). A command in the
// chroot says it is ready by printing a line and ends when the test closes its stdin
// (kReadyThenWait): pipes, not sleeps. Destroyed while running, it is SIGKILLed.
class Background {
 public:
  Background(const std::string& binary, const std::vector<std::string>& args,
             const std::vector<std::string>& env = {});
  pid_t pid() const { return child_.pid(); }
  // The next line it printed, without the newline; nullopt when its output ended or
  // no whole line came before the deadline.
  std::optional<std::string> read_line(std::chrono::milliseconds deadline);
  void close_stdin();
  // Its exit status (or 128+signal); -1 when it had not ended by the deadline, and
  // then it is SIGKILLed and reaped.
  int wait(std::chrono::milliseconds deadline);
  std::string err() const;  // what it wrote to stderr so far

 private:
  sys::Child child_;
  sys::UniqueFd pidfd_, in_, out_, err_;
  std::string buffered_;
};
// A script for `sh -c` in a Background: "ready" once it runs in the chroot, then it
// waits until the test closes its stdin, and exits 0.
constexpr char kReadyThenWait[] = "echo ready; read line; exit 0";
// Deadline of every wait for a process in these tests: far longer than any step
// takes, short enough that a hang fails the test instead of the whole run.
constexpr std::chrono::milliseconds kDeadline{20000};

}  // namespace schroot::test
