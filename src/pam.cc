#include "src/pam.h"

// <>: "config.h" would find src/config.h, the chroot configuration, first.
#include <config.h>

#include <unistd.h>

#include "src/error.h"

#ifdef WITH_PAM
#include <fcntl.h>
#include <poll.h>
#include <security/pam_appl.h>
#include <signal.h>
#include <termios.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <optional>

#include "src/log.h"
#include "src/sys/unique_fd.h"
#endif

namespace schroot {

#ifdef WITH_PAM

namespace {

using Clock = std::chrono::steady_clock;

constexpr char kService[] = "schroot";
// A password is one line; more than this from a terminal is not one.
constexpr size_t kMaxLine = 4096;

std::string reason(pam_handle_t* h, int rc) { return ::pam_strerror(h, rc); }

void write_all(int fd, const std::string& text) {
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    done += static_cast<size_t>(n);
  }
}

void wipe(std::string& secret) {
  ::explicit_bzero(secret.data(), secret.size());
  secret.clear();
}

// The signals that end schroot at a prompt (^C, ^\, a hangup, a kill): caught, so
// that the terminal's echo is back on before the signal takes its course.
constexpr int kPromptSignals[] = {SIGINT, SIGQUIT, SIGTERM, SIGHUP};
volatile sig_atomic_t g_prompt_signal = 0;
void note_prompt_signal(int sig) { g_prompt_signal = sig; }

// Echo off for a password, with kPromptSignals caught (no SA_RESTART: the wait for
// the line returns). The destructor turns echo back on, restores the signals, and
// then delivers one that came, as it would have been.
class SilentPrompt {
 public:
  explicit SilentPrompt(int fd) : fd_(fd) {
    g_prompt_signal = 0;
    struct sigaction catcher {};
    catcher.sa_handler = note_prompt_signal;
    for (size_t i = 0; i < std::size(kPromptSignals); ++i) ::sigaction(kPromptSignals[i], &catcher, &saved_[i]);
    if (::tcgetattr(fd_, &termios_) == 0) {
      struct termios silent = termios_;
      silent.c_lflag &= ~static_cast<tcflag_t>(ECHO);
      echo_off_ = ::tcsetattr(fd_, TCSAFLUSH, &silent) == 0;
    }
  }
  ~SilentPrompt() {
    if (echo_off_) ::tcsetattr(fd_, TCSAFLUSH, &termios_);
    write_all(fd_, "\n");  // the user's Enter was not echoed
    for (size_t i = 0; i < std::size(kPromptSignals); ++i) ::sigaction(kPromptSignals[i], &saved_[i], nullptr);
    if (g_prompt_signal != 0) ::raise(g_prompt_signal);
  }
  SilentPrompt(const SilentPrompt&) = delete;
  SilentPrompt& operator=(const SilentPrompt&) = delete;

 private:
  int fd_;
  struct termios termios_ {};
  bool echo_off_ = false;
  struct sigaction saved_[std::size(kPromptSignals)] {};
};

}  // namespace

// schroot 1.6's pam_conv_tty: prompts and answers on the controlling terminal, never
// stdin/stdout (a pipe from sbuild, say, must not answer a password prompt); the
// deadlines are fixed when the conversation is made: a warning at 15 s, failure at 20 s.
struct PamSession::Conversation {
  explicit Conversation(std::string user)
      : user(std::move(user)), warn_at(Clock::now() + std::chrono::seconds(15)),
        fail_at(Clock::now() + std::chrono::seconds(20)) {}

  std::string user;
  Clock::time_point warn_at, fail_at;
  bool warned = false;
  sys::UniqueFd tty;

  // /dev/tty, opened once: nullopt (after saying so) without a controlling terminal.
  bool open_tty() {
    if (!tty) tty = sys::UniqueFd(::open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC));
    if (!tty) log_error("No controlling terminal");
    return static_cast<bool>(tty);
  }

  // The prompt schroot shows instead of PAM's plain "Password: ".
  std::string prompt_for(const char* msg) const {
    const std::string m = msg ? msg : "";
    return m == "Password: " || m == "Password:" ? "[schroot] password for " + user + ": " : m;
  }

  // One line typed on the terminal; nullopt on timeout, a signal or an error.
  std::optional<std::string> read_line() {
    std::string line;
    for (;;) {
      const Clock::time_point now = Clock::now();
      if (now >= fail_at) {
        log_error("Timed out");
        return std::nullopt;
      }
      if (!warned && now >= warn_at) {
        log_warning("Time is running out…");
        warned = true;
      }
      const auto until = warned ? fail_at : warn_at;
      const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(until - now).count() + 1;
      struct pollfd p {tty.get(), POLLIN, 0};
      const int ready = ::poll(&p, 1, static_cast<int>(wait));
      if (ready < 0 || g_prompt_signal != 0) return std::nullopt;  // EINTR: a signal came
      if (ready == 0) continue;
      char c;
      if (::read(tty.get(), &c, 1) != 1) return std::nullopt;
      if (c == '\n') return line;
      if (line.size() < kMaxLine) line.push_back(c);
    }
  }

  std::optional<std::string> answer(const struct pam_message& m) {
    if (m.msg_style == PAM_ERROR_MSG || m.msg_style == PAM_TEXT_INFO) {
      const std::string text = std::string(m.msg ? m.msg : "") + "\n";
      write_all(open_tty() ? tty.get() : STDERR_FILENO, text);
      return std::string();
    }
    if (m.msg_style != PAM_PROMPT_ECHO_OFF && m.msg_style != PAM_PROMPT_ECHO_ON) return std::nullopt;
    if (!open_tty()) return std::nullopt;
    if (m.msg_style == PAM_PROMPT_ECHO_ON) {
      write_all(tty.get(), prompt_for(m.msg));
      return read_line();
    }
    // Echo off before the prompt shows: what is typed once it shows is the password,
    // and turning echo off (TCSAFLUSH) discards what was typed before.
    SilentPrompt silent(tty.get());
    write_all(tty.get(), prompt_for(m.msg));
    return read_line();
  }

  // PAM's conversation function: one response per message, in memory PAM frees.
  static int converse(int n, const struct pam_message** msgs, struct pam_response** out, void* self) {
    if (n <= 0) return PAM_CONV_ERR;
    auto* responses = static_cast<struct pam_response*>(std::calloc(static_cast<size_t>(n), sizeof(pam_response)));
    if (!responses) return PAM_BUF_ERR;
    for (int i = 0; i < n; ++i) {
      std::optional<std::string> a = static_cast<Conversation*>(self)->answer(*msgs[i]);
      if (a) responses[i].resp = ::strdup(a->c_str());
      const bool failed = !a || !responses[i].resp;
      if (a) wipe(*a);
      if (failed) {
        for (int j = 0; j <= i; ++j) {
          if (responses[j].resp) ::explicit_bzero(responses[j].resp, std::strlen(responses[j].resp));
          std::free(responses[j].resp);
        }
        std::free(responses);
        return PAM_CONV_ERR;
      }
    }
    *out = responses;
    return PAM_SUCCESS;
  }
};

namespace {

std::string host_name() {
  char name[256] = {};
  return ::gethostname(name, sizeof name - 1) == 0 ? name : "";
}

std::string stdin_tty() {
  char name[256] = {};
  return ::ttyname_r(STDIN_FILENO, name, sizeof name) == 0 ? name : "";
}

}  // namespace

PamSession::PamSession(const PamRequest& req)
    : user_(req.user), conversation_(std::make_unique<Conversation>(req.user)) {
  const struct pam_conv conv {&Conversation::converse, conversation_.get()};
  pam_handle_t* h = nullptr;
  // pam_start_confdir only for the test build's own stacks; the installed binary has
  // none (paths.h) and reads the system's /etc/pam.d like every PAM service.
  int rc = req.confdir.empty() ? ::pam_start(kService, req.user.c_str(), &conv, &h)
                               : ::pam_start_confdir(kService, req.user.c_str(), &conv, req.confdir.c_str(), &h);
  if (rc != PAM_SUCCESS) {
    if (h) ::pam_end(h, rc);
    throw UserError("PAM error: " + reason(nullptr, rc));
  }
  handle_ = h;
  const std::string rhost = host_name(), tty = stdin_tty();
  if ((rc = ::pam_set_item(h, PAM_RUSER, req.ruser.c_str())) == PAM_SUCCESS &&
      (rc = ::pam_set_item(h, PAM_RHOST, rhost.c_str())) == PAM_SUCCESS && !tty.empty())
    rc = ::pam_set_item(h, PAM_TTY, tty.c_str());
  if (rc != PAM_SUCCESS) {
    const std::string why = reason(h, rc);
    handle_ = nullptr;  // a constructor that throws gets no destructor call
    ::pam_end(h, rc);
    throw UserError("PAM error: " + why);
  }
}

PamSession::PamSession(PamSession&& other) noexcept
    : user_(std::move(other.user_)), handle_(other.handle_), conversation_(std::move(other.conversation_)),
      last_status_(other.last_status_), credentials_(other.credentials_), session_open_(other.session_open_) {
  other.handle_ = nullptr;
}

PamSession::~PamSession() {
  if (!handle_) return;
  close_session();
  if (credentials_) ::pam_setcred(handle_, PAM_DELETE_CRED);
  ::pam_end(handle_, last_status_);
}

namespace {
// A failed step: its status is what pam_end hears, its reason what the user reads.
void check(pam_handle_t* h, int rc, int& last, const std::string& what) {
  last = rc;
  if (rc != PAM_SUCCESS) throw UserError(what + ": " + reason(h, rc));
}
}  // namespace

void PamSession::authenticate() {
  check(handle_, ::pam_authenticate(handle_, 0), last_status_, "Authentication failed");
}

void PamSession::check_account() {
  check(handle_, ::pam_acct_mgmt(handle_, 0), last_status_, "Access not authorised for user ‘" + user_ + "’");
}

void PamSession::establish_credentials() {
  check(handle_, ::pam_setcred(handle_, PAM_ESTABLISH_CRED), last_status_, "Failed to establish credentials");
  credentials_ = true;
}

void PamSession::put_environment(const std::vector<std::string>& env) {
  for (const auto& entry : env) check(handle_, ::pam_putenv(handle_, entry.c_str()), last_status_, "PAM error");
}

void PamSession::open_session() {
  check(handle_, ::pam_open_session(handle_, 0), last_status_, "Failed to open the PAM session");
  session_open_ = true;
}

void PamSession::close_session() {
  if (!session_open_) return;
  session_open_ = false;
  const int rc = ::pam_close_session(handle_, 0);
  if (rc != PAM_SUCCESS) log_warning("Failed to close the PAM session: " + reason(handle_, rc));
}

std::vector<std::string> PamSession::environment() const {
  std::vector<std::string> out;
  char** list = ::pam_getenvlist(handle_);
  if (!list) return out;
  for (char** e = list; *e; ++e) {
    out.emplace_back(*e);
    std::free(*e);
  }
  std::free(list);
  return out;
}

bool PamSession::available() { return true; }

#else  // !WITH_PAM

struct PamSession::Conversation {};

PamSession::PamSession(const PamRequest& req) : user_(req.user) {}
PamSession::PamSession(PamSession&& other) noexcept : user_(std::move(other.user_)) {}
PamSession::~PamSession() = default;

// Root needs no password (pam_rootok in schroot 1.6's configuration); anybody else
// who would be asked for one is refused.
void PamSession::authenticate() {
  if (::getuid() == 0) return;
  throw UserError("switching to user ‘" + user_ +
                  "’ needs authentication, which this schroot does not support (built without PAM)");
}
void PamSession::check_account() {}
void PamSession::establish_credentials() {}
void PamSession::put_environment(const std::vector<std::string>&) {}
void PamSession::open_session() {}
void PamSession::close_session() {}
std::vector<std::string> PamSession::environment() const { return {}; }
bool PamSession::available() { return false; }

#endif

}  // namespace schroot
