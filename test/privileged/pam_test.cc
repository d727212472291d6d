// PAM as schroot 1.6 uses it, and the syslog record of sessions (issue 13). The
// schroot under test has its PAM configuration directory (SCHROOT_PAM_CONFDIR) and
// syslog socket (SCHROOT_SYSLOG_SOCKET) compiled in below TEST_ROOT: every stack
// here is the test's own, built from pam_permit, pam_deny, pam_env and pam_exec,
// and nothing reads or writes the host's PAM configuration or log.
#include <config.h>
#include <gtest/gtest.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "src/sys/unique_fd.h"
#include "test/privileged/harness.h"

using schroot::sys::UniqueFd;
using schroot::test::read_text;
using schroot::test::RunResult;
using schroot::test::TestRoot;
using schroot::test::trim;

namespace {

// The Access tests' setting: a chroot `bb` that nobody may use, and a setuid copy of
// the schroot under test that the test runs as nobody.
class PamTest : public ::testing::Test {
 protected:
  void SetUp() override { tree_ = root_.make_tree("bb"); }
  void config(const std::string& access_lines) {
    root_.write_config("[bb]\ntype=directory\ndirectory=" + tree_ + "\nprofile=minimal\n" + access_lines);
  }
  // As nobody; `before` runs in the child first (as root: setsid, a terminal).
  RunResult as_nobody(const std::vector<std::string>& args, const std::string& stdin_text = "",
                      const std::function<void()>& before = {}) {
    return schroot::test::run_program(binary_.path(), args, {}, stdin_text, [this, &before] {
      if (before) before();
      nobody_.become();
    });
  }
  std::string path(const std::string& name) const { return root_.root() + "/" + name; }
  std::string nobody_uid() const { return std::to_string(nobody_.uid); }

  TestRoot root_;
  schroot::test::SetuidCopy binary_;
  std::string tree_;
  schroot::test::TestUser nobody_;
};

#ifdef WITH_PAM

class Pam : public PamTest {};

TEST_F(Pam, UserSwitchingUserIsRefusedWithPamsMessageWhenAuthenticationFails) {
  config("users=nobody\n");  // the default stack: auth required pam_deny.so

  auto r = as_nobody({"-c", "bb", "-u", "root", "-d", "/", "--", "id", "-u"});

  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("Authentication failed: Authentication failure"), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_TRUE(root_.records().empty());
}

TEST_F(Pam, UserSwitchingUserRunsWhenAuthenticationSucceeds) {
  config("users=nobody\n");
  root_.write_pam_stack("auth required pam_permit.so\naccount required pam_permit.so\nsession required pam_permit.so\n");

  auto r = as_nobody({"-c", "bb", "-u", "root", "-d", "/", "--", "id", "-u"});

  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(trim(r.out), "0");
}

// pam_acct_mgmt runs for every caller, also where no password is asked: a user as
// themselves, and root.
TEST_F(Pam, AccountDenialRefusesEvenWhereNoPasswordIsAsked) {
  config("users=nobody\n");
  root_.write_pam_stack("auth sufficient pam_rootok.so\naccount required pam_deny.so\nsession required pam_permit.so\n");

  auto user = as_nobody({"-c", "bb", "-d", "/", "--", "echo", "ran"});
  auto root = root_.schroot({"-c", "bb", "-d", "/", "--", "echo", "ran"});

  EXPECT_EQ(user.status, 1);
  EXPECT_NE(user.err.find("Access not authorised for user ‘nobody’: Authentication failure"), std::string::npos)
      << user.err;
  EXPECT_EQ(root.status, 1);
  EXPECT_NE(root.err.find("Access not authorised for user ‘root’"), std::string::npos) << root.err;
  EXPECT_EQ(user.out + root.out, "");
  EXPECT_TRUE(root_.records().empty());
}

TEST_F(Pam, SessionModulesEnvironmentReachesTheCommand) {
  config("users=nobody\n");
  root_.write_file(path("pam_env.conf"), "FROM_PAM_SESSION DEFAULT=set-by-pam-env\n");
  root_.write_pam_stack("auth required pam_permit.so\naccount required pam_permit.so\n"
                        "session required pam_env.so readenv=0 conffile=" +
                        path("pam_env.conf") + "\n");

  auto r = as_nobody({"-c", "bb", "-d", "/", "--", "env"});

  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("FROM_PAM_SESSION=set-by-pam-env\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("USER=nobody\n"), std::string::npos) << r.out;
}

// Each PAM call as pam_exec sees it: "TYPE USER RUSER", in order. The account is
// checked for begin, run, end and automatic sessions alike; a PAM session is opened
// and closed around the command only (-r and automatic), for the target user, with
// the caller as PAM_RUSER.
TEST_F(Pam, AccountIsCheckedForEveryActionAndSessionsOpenOnlyAroundCommands) {
  config("users=nobody\n");
  const std::string log = path("pam.log"), script = path("pam-exec");
  root_.write_file(script, "#!/bin/sh\necho \"$PAM_TYPE $PAM_USER $PAM_RUSER\" >>" + log + "\n", 0755);
  root_.write_pam_stack("auth required pam_permit.so\naccount required pam_exec.so seteuid " + script +
                        "\nsession required pam_exec.so seteuid " + script + "\n");

  auto begin = as_nobody({"-c", "bb", "-b", "-n", "mine"});
  auto run = as_nobody({"-c", "mine", "-r", "-d", "/", "--", "true"});
  auto end = as_nobody({"-c", "mine", "-e"});
  auto automatic = as_nobody({"-c", "bb", "-u", "root", "-d", "/", "--", "true"});

  EXPECT_EQ(begin.status + run.status + end.status + automatic.status, 0)
      << begin.err << run.err << end.err << automatic.err;
  EXPECT_EQ(read_text(log),
            "account nobody nobody\n"  // -b
            "account nobody nobody\nopen_session nobody nobody\nclose_session nobody nobody\n"  // -r
            "account nobody nobody\n"  // -e
            "account root nobody\nopen_session root nobody\nclose_session root nobody\n");  // -u root --
}

// The password check of these tests: pam_exec asks for a password ("Password: ")
// and hands it to this script, which accepts "sesame" (pam_permit gives the stack's
// credentials, which pam_exec leaves alone).
void write_password_stack(TestRoot& root, const std::string& script) {
  root.write_file(script, "#!/bin/sh\n[ \"$(/usr/bin/tr -d '\\000')\" = sesame ]\n", 0755);
  root.write_pam_stack("auth required pam_exec.so expose_authtok seteuid " + script +
                       "\nauth optional pam_permit.so\naccount required pam_permit.so\nsession required pam_permit.so\n");
}

// A terminal for the child: the pty's other side, the test answering on it.
class Terminal {
 public:
  Terminal() : master_(::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC)) {
    if (!master_ || ::grantpt(master_.get()) != 0 || ::unlockpt(master_.get()) != 0)
      throw std::runtime_error("posix_openpt: " + std::string(std::strerror(errno)));
    slave_ = ::ptsname(master_.get());
  }
  // In the child: a new session whose controlling terminal is the pty.
  void make_controlling() const {
    if (::setsid() < 0 || ::open(slave_.c_str(), O_RDWR) < 0) ::_exit(98);
  }
  // Answers `answer` once `prompt` has appeared; returns everything the terminal
  // showed, up to the child's end (EIO) or the deadline.
  std::string answer(const std::string& prompt, const std::string& answer) {
    std::string seen;
    bool answered = false;
    const auto deadline = std::chrono::steady_clock::now() + schroot::test::kDeadline;
    while (std::chrono::steady_clock::now() < deadline) {
      struct pollfd p {master_.get(), POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      char buf[256];
      const ssize_t n = ::read(master_.get(), buf, sizeof buf);
      if (n <= 0 && answered) break;  // EIO: the child has ended
      if (n <= 0) {
        // EIO before the child has opened the terminal.
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        continue;
      }
      seen.append(buf, static_cast<size_t>(n));
      if (!answered && seen.find(prompt) != std::string::npos) {
        answered = ::write(master_.get(), answer.data(), answer.size()) == static_cast<ssize_t>(answer.size());
      }
    }
    return seen;
  }

 private:
  UniqueFd master_;
  std::string slave_;
};

TEST_F(Pam, PasswordIsAskedOnTheControllingTerminalWithoutEcho) {
  config("users=nobody\n");
  write_password_stack(root_, path("check-password"));
  Terminal tty;
  std::string shown;
  std::thread typist([&] { shown = tty.answer("[schroot] password for root: ", "sesame\n"); });

  auto r = as_nobody({"-c", "bb", "-u", "root", "-d", "/", "--", "id", "-u"}, "", [&tty] { tty.make_controlling(); });
  typist.join();

  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(trim(r.out), "0");
  EXPECT_NE(shown.find("[schroot] password for root: "), std::string::npos) << shown;
  EXPECT_EQ(shown.find("sesame"), std::string::npos) << "the password was echoed: " << shown;
}

TEST_F(Pam, PasswordIsNeverReadFromStandardInput) {
  config("users=nobody\n");
  write_password_stack(root_, path("check-password"));

  // No controlling terminal; the right password waits on stdin.
  auto r = as_nobody({"-c", "bb", "-u", "root", "-d", "/", "--", "id", "-u"}, "sesame\n", [] { ::setsid(); });

  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("E: No controlling terminal"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("Authentication failed"), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "");
}

#else  // !WITH_PAM

TEST_F(PamTest, WithoutPamASwitchOfUserIsRefused) {
  config("users=nobody\n");

  auto r = as_nobody({"-c", "bb", "-u", "root", "-d", "/", "--", "id", "-u"});

  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("needs authentication, which this schroot does not support (built without PAM)"),
            std::string::npos)
      << r.err;
}

#endif

// The test's syslog: a datagram socket where the schroot under test sends its lines.
class SyslogSink {
 public:
  SyslogSink() : fd_(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) {
    const std::string path = SCHROOT_SYSLOG_SOCKET;
    ::mkdir(path.substr(0, path.rfind('/')).c_str(), 0755);
    struct sockaddr_un addr {};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    if (!fd_ || ::bind(fd_.get(), reinterpret_cast<struct sockaddr*>(&addr), sizeof addr) != 0)
      throw std::runtime_error("bind " + path + ": " + std::strerror(errno));
  }
  // Every line received so far.
  std::vector<std::string> lines() {
    char buf[4096];
    ssize_t n;
    while ((n = ::recv(fd_.get(), buf, sizeof buf, MSG_DONTWAIT)) > 0) lines_.emplace_back(buf, static_cast<size_t>(n));
    return lines_;
  }
  // The one received line that ends with `text` (after "schroot[PID]: "), else "".
  std::string line_with(const std::string& text) {
    for (const auto& l : lines())
      if (l.size() >= text.size() && l.compare(l.size() - text.size(), text.size(), text) == 0) return l;
    return "";
  }

 private:
  UniqueFd fd_;
  std::vector<std::string> lines_;
};

// "<PRI>Mmm dd hh:mm:ss schroot[PID]: " with facility authpriv: notice 85, warning 84.
bool is_syslog_line(const std::string& line, int priority) {
  return std::regex_search(line, std::regex("^<" + std::to_string(priority) +
                                            ">[A-Z][a-z]{2} [ 0-9][0-9] [0-9]{2}:[0-9]{2}:[0-9]{2} schroot\\[[0-9]+\\]: "));
}

class Syslog : public PamTest {
 protected:
  SyslogSink log_;
};

TEST_F(Syslog, BeginRecoveryAndEndAreLoggedWithWhoWhichSessionAndResult) {
  config("users=nobody\n");

  auto begin = as_nobody({"-c", "bb", "-b", "-n", "mine"});
  auto recover = root_.schroot({"-c", "mine", "--recover-session"});
  auto end = as_nobody({"-c", "mine", "-e"});

  ASSERT_EQ(begin.status + recover.status + end.status, 0) << begin.err << recover.err << end.err;
  const std::string who = " of chroot bb by nobody (uid " + nobody_uid() + ") as nobody: ok";
  const std::string b = log_.line_with("begin session mine" + who);
  const std::string r = log_.line_with("recovery of session mine of chroot bb by root (uid 0) as root: ok (active and mounted)");
  const std::string e = log_.line_with("end session mine" + who);
  EXPECT_TRUE(is_syslog_line(b, 85)) << ::testing::PrintToString(log_.lines());
  EXPECT_TRUE(is_syslog_line(r, 85)) << ::testing::PrintToString(log_.lines());
  EXPECT_TRUE(is_syslog_line(e, 85)) << ::testing::PrintToString(log_.lines());
}

TEST_F(Syslog, AutomaticSessionIsLoggedWithItsIdAndTheCommandsStatus) {
  config("users=nobody\n");

  auto r = as_nobody({"-c", "bb", "-d", "/", "--", "sh", "-c", "exit 3"});

  ASSERT_EQ(r.status, 3) << r.err;
  const std::vector<std::string> lines = log_.lines();
  ASSERT_EQ(lines.size(), 1u) << ::testing::PrintToString(lines);
  EXPECT_TRUE(is_syslog_line(lines[0], 85)) << lines[0];
  EXPECT_TRUE(std::regex_search(lines[0], std::regex(": automatic session bb-[0-9a-f-]{36} of chroot bb by nobody \\(uid " +
                                                     nobody_uid() + "\\) as nobody: ok \\(the command's exit status 3\\)$")))
      << lines[0];
}

TEST_F(Syslog, FailedBeginAndRefusedUserAreLoggedAsWarnings) {
  config("users=root\n");
  root_.add_hook("10fail", "#!/bin/sh\n[ \"$1\" = setup-start ] && exit 1\nexit 0\n");

  auto failed = root_.schroot({"-c", "bb", "-b", "-n", "broken"});
  auto refused = as_nobody({"-c", "bb", "-d", "/", "--", "true"});

  ASSERT_EQ(failed.status, 1);
  ASSERT_EQ(refused.status, 1);
  const std::string f = log_.line_with("begin session broken of chroot bb by root (uid 0) as root: failed: "
                                       "bb: Chroot setup failed; the session was rolled back");
  const std::string a = log_.line_with("[bb chroot] (nobody->nobody) uid " + nobody_uid() +
                                       " refused: bb: Access not authorised");
  EXPECT_TRUE(is_syslog_line(f, 84)) << ::testing::PrintToString(log_.lines());
  EXPECT_TRUE(is_syslog_line(a, 84)) << ::testing::PrintToString(log_.lines());
}

}  // namespace
