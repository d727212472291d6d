#include "src/hooks.h"

#include <fcntl.h>
#include <regex.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "src/log.h"

namespace schroot {
namespace {

namespace fs = std::filesystem;

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// Our stderr, redirected into a file for the lifetime of the capture.
class StderrCapture {
 public:
  explicit StderrCapture(const std::string& file) : file_(file) {
    saved_ = dup(STDERR_FILENO);
    int fd = open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    dup2(fd, STDERR_FILENO);
    close(fd);
  }
  ~StderrCapture() { restore(); }
  std::string text() {
    restore();
    return read_file(file_);
  }

 private:
  void restore() {
    if (saved_ < 0) return;
    dup2(saved_, STDERR_FILENO);
    close(saved_);
    saved_ = -1;
  }
  std::string file_;
  int saved_ = -1;
};

class HookTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/schroot-hooks-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    dir_ = root_ + "/setup.d";
    fs::create_directory(dir_);
    set_verbosity(Verbosity::kNormal);
    env_.set("SESSION_ID", "sid-42");
    env_.set("CHROOT_NAME", "sid");
    env_.set("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  }
  void TearDown() override {
    set_verbosity(Verbosity::kNormal);
    std::error_code ec;
    fs::remove_all(root_, ec);
  }

  // A hook script in the test's setup.d; mode 0755 unless told.
  void write_hook(const std::string& name, const std::string& body, mode_t mode = 0755) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path) << "#!/bin/sh\n" << body << "\n";
    ASSERT_EQ(chmod(path.c_str(), mode), 0);
  }
  void touch(const std::string& name) { std::ofstream(dir_ + "/" + name) << ""; }
  std::string out(const std::string& name) const { return root_ + "/" + name; }

  std::string root_, dir_;
  Environment env_;
};

// ---- list_hooks ----------------------------------------------------------------------

TEST(HookNames, LsbFilterVectors) {
  EXPECT_TRUE(hook_name_accepted("10mount"));
  EXPECT_FALSE(hook_name_accepted("10mount.sh"));
  EXPECT_FALSE(hook_name_accepted("README"));
  EXPECT_FALSE(hook_name_accepted("Foo"));
  EXPECT_TRUE(hook_name_accepted("50chrootname"));
  EXPECT_FALSE(hook_name_accepted("a.dpkg-old"));
  EXPECT_FALSE(hook_name_accepted("10mount.dpkg-dist"));
  EXPECT_FALSE(hook_name_accepted("10mount-dpkg-new"));
  EXPECT_TRUE(hook_name_accepted("_foo-bar"));
}

// The filter is checked character by character; run-parts states it as regexes. Every
// name of up to 5 characters over an alphabet that reaches each branch (and a few
// longer ones) must get the regexes' answer.
TEST(HookNames, AgreesWithRunPartsRegexesOnEveryShortName) {
  const char* const kAccept[] = {"^[a-z0-9]+$", "^_?([a-z0-9_.]+-)+[a-z0-9]+$", "^[a-z0-9][a-z0-9-]*$"};
  regex_t accept[3], reject;
  for (int i = 0; i < 3; ++i) ASSERT_EQ(regcomp(&accept[i], kAccept[i], REG_EXTENDED | REG_NOSUB), 0);
  ASSERT_EQ(regcomp(&reject, "dpkg-(old|dist|new|tmp|bak|backup|remove)$", REG_EXTENDED | REG_NOSUB), 0);
  const auto by_regex = [&](const std::string& n) {
    if (regexec(&reject, n.c_str(), 0, nullptr, 0) == 0) return false;
    for (auto& re : accept)
      if (regexec(&re, n.c_str(), 0, nullptr, 0) == 0) return true;
    return false;
  };
  const std::string alphabet = "a0-_.Z~";
  std::vector<std::string> names = {"", "10mount.dpkg-bak", "x.dpkg-backup", "xdpkg-remove", "dpkg-tmp",
                                    "a.b-c.d-e", "a-b-", "-a", "a--b", "_-a", "._-9", "15binfmt", "a.dpkg-bakx"};
  std::vector<std::string> level = {""};
  for (int len = 1; len <= 5; ++len) {
    std::vector<std::string> next;
    for (const auto& prefix : level)
      for (char c : alphabet) next.push_back(prefix + c);
    names.insert(names.end(), next.begin(), next.end());
    level = std::move(next);
  }
  int accepted = 0;
  for (const auto& n : names) {
    EXPECT_EQ(hook_name_accepted(n), by_regex(n)) << "name '" << n << "'";
    accepted += by_regex(n);
  }
  EXPECT_GT(accepted, 400);  // 485: the alphabet reaches the accepting branches
  for (auto& re : accept) regfree(&re);
  regfree(&reject);
}

// An upgrade from Debian's schroot 1.6 removes its stock hooks with dpkg-maintscript-helper
// rm_conffile, which renames them to these names (schroot 1.6 would run them all).
TEST(HookNames, SkipsTheStockHooksAnUpgradeFromSchroot16LeavesBehind) {
  EXPECT_FALSE(hook_name_accepted("10mount.dpkg-bak"));
  EXPECT_FALSE(hook_name_accepted("10mount.dpkg-backup"));
  EXPECT_FALSE(hook_name_accepted("10mount.dpkg-remove"));
  EXPECT_TRUE(hook_name_accepted("10mount.bak-up"));
  EXPECT_TRUE(hook_name_accepted("15binfmt-misc"));
  EXPECT_FALSE(hook_name_accepted("10mount~"));
  EXPECT_FALSE(hook_name_accepted("."));
  EXPECT_FALSE(hook_name_accepted(".."));
  EXPECT_FALSE(hook_name_accepted(".hidden"));
  EXPECT_FALSE(hook_name_accepted(""));
}

TEST_F(HookTest, ListSkipsNamesTheLsbFilterRejects) {
  for (const char* n : {"10mount", "10mount.sh", "README", "Foo", "50chrootname", "a.dpkg-old", "_foo-bar"})
    touch(n);
  EXPECT_EQ(list_hooks(dir_), (std::vector<std::string>{"10mount", "50chrootname", "_foo-bar"}));
}

TEST_F(HookTest, ListIsSortedBytewise) {
  for (const char* n : {"a-1", "9z", "10b", "_x-y", "10a", "00check"}) touch(n);
  EXPECT_EQ(list_hooks(dir_),
            (std::vector<std::string>{"00check", "10a", "10b", "9z", "_x-y", "a-1"}));
}

TEST_F(HookTest, ListOfMissingDirectoryIsEmpty) {
  EXPECT_TRUE(list_hooks(root_ + "/does-not-exist").empty());
}

// ---- run_hook --------------------------------------------------------------------------

TEST_F(HookTest, PassesStageAndStatusAsArguments) {
  write_hook("10args", "echo \"$# $1 $2\" > " + out("args"));
  ASSERT_EQ(run_hook(dir_, "10args", "setup-stop", "fail", env_), 0);
  EXPECT_EQ(read_file(out("args")), "2 setup-stop fail\n");
}

TEST_F(HookTest, PassesExactlyTheGivenEnvironment) {
  ASSERT_EQ(setenv("SCHROOT_HOOK_TEST_LEAK", "leaked", 1), 0);
  write_hook("10env", "/usr/bin/env > " + out("env"));
  int rc = run_hook(dir_, "10env", "setup-start", "ok", env_);
  unsetenv("SCHROOT_HOOK_TEST_LEAK");
  ASSERT_EQ(rc, 0);

  std::set<std::string> got;
  for (const auto& line : lines_of(read_file(out("env")))) got.insert(line);
  for (const auto& entry : env_.to_strings()) EXPECT_EQ(got.count(entry), 1u) << entry;
  // Only what the shell itself adds may appear besides ours.
  const std::set<std::string> shell_own = {"PWD", "OLDPWD", "SHLVL", "_"};
  for (const auto& entry : got) {
    std::string name = entry.substr(0, entry.find('='));
    EXPECT_TRUE(env_.contains(name) || shell_own.count(name)) << "leaked: " << entry;
  }
}

TEST_F(HookTest, RunsInRootDirectoryWithUmask022AndStdinFromDevNull) {
  write_hook("10proc",
             "{ pwd; umask; if read line; then echo input; else echo eof; fi; } > " + out("proc"));
  ASSERT_EQ(run_hook(dir_, "10proc", "setup-start", "ok", env_), 0);
  EXPECT_EQ(lines_of(read_file(out("proc"))), (std::vector<std::string>{"/", "0022", "eof"}));
}

TEST_F(HookTest, DoesNotLeakOurDescriptors) {
  int fd = open("/dev/null", O_RDONLY);  // deliberately without O_CLOEXEC
  ASSERT_GE(fd, 0);
  write_hook("10fds", "if [ -e /proc/$$/fd/" + std::to_string(fd) + " ]; then exit 1; fi");
  int rc = run_hook(dir_, "10fds", "setup-start", "ok", env_);
  close(fd);
  EXPECT_EQ(rc, 0);
}

TEST_F(HookTest, PropagatesExitStatus) {
  write_hook("10fail", "exit 3");
  EXPECT_EQ(run_hook(dir_, "10fail", "setup-start", "ok", env_), 3);
}

TEST_F(HookTest, KilledHookFailsWith128PlusSignal) {
  write_hook("10killed", "kill -TERM $$");
  StderrCapture cap(out("stderr"));
  EXPECT_EQ(run_hook(dir_, "10killed", "setup-start", "ok", env_), 128 + SIGTERM);
  EXPECT_NE(cap.text().find("E: setup.d/10killed: terminated by signal"), std::string::npos);
}

TEST_F(HookTest, NonExecutableHookFailsCleanly) {
  write_hook("10noexec", "exit 0", 0644);
  StderrCapture cap(out("stderr"));
  EXPECT_EQ(run_hook(dir_, "10noexec", "setup-start", "ok", env_), 127);
  EXPECT_EQ(cap.text(), "E: setup.d/10noexec: cannot execute: Permission denied\n");
}

TEST_F(HookTest, RelaysStdoutAsInfoAndStderrAsErrorWithTheHookName) {
  write_hook("10talk", "echo out1\necho err1 >&2\necho out2\nprintf partial");
  StderrCapture cap(out("stderr"));
  ASSERT_EQ(run_hook(dir_, "10talk", "setup-start", "ok", env_), 0);
  std::vector<std::string> got = lines_of(cap.text());
  // Interleaving between the two streams is not preserved (as in schroot 1.6); order within each is.
  std::vector<std::string> info, error;
  for (const auto& l : got) (l.rfind("I: ", 0) == 0 ? info : error).push_back(l);
  EXPECT_EQ(info, (std::vector<std::string>{"I: 10talk: out1", "I: 10talk: out2", "I: 10talk: partial"}));
  EXPECT_EQ(error, (std::vector<std::string>{"E: 10talk: err1"}));
}

TEST_F(HookTest, RelaysLargeOutputCompletely) {
  write_hook("10many", "i=0; while [ $i -lt 5000 ]; do echo \"line $i\"; i=$((i+1)); done");
  StderrCapture cap(out("stderr"));
  ASSERT_EQ(run_hook(dir_, "10many", "setup-start", "ok", env_), 0);
  std::vector<std::string> got = lines_of(cap.text());
  ASSERT_EQ(got.size(), 5000u);
  EXPECT_EQ(got.front(), "I: 10many: line 0");
  EXPECT_EQ(got.back(), "I: 10many: line 4999");
}

TEST_F(HookTest, QuietHidesHookOutput) {
  set_verbosity(Verbosity::kQuiet);
  write_hook("10talk", "echo out1\necho err1 >&2");
  StderrCapture cap(out("stderr"));
  ASSERT_EQ(run_hook(dir_, "10talk", "setup-start", "ok", env_), 0);
  EXPECT_EQ(cap.text(), "");
}

TEST_F(HookTest, DaemonHoldingThePipesDoesNotHangTheRunner) {
  write_hook("10daemon", "sleep 30 &\necho $! > " + out("daemon.pid") + "\necho started");
  // The orphaned sleep is reparented to us, so we can reap it after killing it.
  ASSERT_EQ(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  StderrCapture cap(out("stderr"));
  auto start = std::chrono::steady_clock::now();
  int rc = run_hook(dir_, "10daemon", "setup-start", "ok", env_);
  auto elapsed = std::chrono::steady_clock::now() - start;
  std::string text = cap.text();

  pid_t sleeper = std::atoi(read_file(out("daemon.pid")).c_str());
  if (sleeper > 0 && kill(sleeper, SIGKILL) == 0) waitpid(sleeper, nullptr, 0);  // our hook's sleep
  prctl(PR_SET_CHILD_SUBREAPER, 0);

  EXPECT_EQ(rc, 0);
  EXPECT_LT(elapsed, std::chrono::seconds(1));
  EXPECT_EQ(text, "I: 10daemon: started\n");
}

}  // namespace
}  // namespace schroot
