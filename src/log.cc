#include "src/log.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <syslog.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "src/sys/unique_fd.h"

namespace schroot {
namespace {
Verbosity g_verbosity = Verbosity::kNormal;
bool g_debug = false;

// One write(2) per line, so lines from concurrent processes do not interleave.
void emit(const char* prefix, const std::string& msg) {
  std::string line = std::string(prefix) + msg + "\n";
  ssize_t ignored = ::write(STDERR_FILENO, line.data(), line.size());
  (void)ignored;
}
// syslog(3)'s line: "<PRI>Mmm dd hh:mm:ss schroot[PID]: msg" (RFC 3164), the month
// in English whatever the locale.
std::string syslog_line(int priority, const std::string& msg) {
  static const char* const kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  const time_t now = ::time(nullptr);
  struct tm tm {};
  ::localtime_r(&now, &tm);
  char stamp[32];
  std::snprintf(stamp, sizeof stamp, "%s %2d %02d:%02d:%02d", kMonths[tm.tm_mon % 12], tm.tm_mday, tm.tm_hour,
                tm.tm_min, tm.tm_sec);
  return "<" + std::to_string(priority) + ">" + stamp + " schroot[" + std::to_string(::getpid()) + "]: " + msg;
}

// One line to a syslog socket: datagram (journald, rsyslog), else stream with a NUL
// after the line (a syslog-ng unix-stream source), as syslog(3) does. Our own sender,
// not syslog(3): that cannot be pointed at another socket, and the tests must not
// read the host's log.
void send_syslog(const std::string& path, const std::string& line) {
  struct sockaddr_un addr {};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) return;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  const auto* sa = reinterpret_cast<const struct sockaddr*>(&addr);
  sys::UniqueFd dgram(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (dgram && ::sendto(dgram.get(), line.data(), line.size(), MSG_NOSIGNAL, sa, sizeof addr) >= 0) return;
  if (errno != EPROTOTYPE) return;
  sys::UniqueFd stream(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (stream && ::connect(stream.get(), sa, sizeof addr) == 0)
    (void)!::send(stream.get(), line.c_str(), line.size() + 1, MSG_NOSIGNAL);
}

}  // namespace

void log_syslog(const std::string& socket_path, bool failure, const std::string& msg) {
  // One line per event: a control character (a path's newline) would forge another.
  std::string text = msg;
  for (char& c : text)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  send_syslog(socket_path, syslog_line(LOG_AUTHPRIV | (failure ? LOG_WARNING : LOG_NOTICE), text));
}

void set_verbosity(Verbosity v) { g_verbosity = v; }
Verbosity verbosity() { return g_verbosity; }
void set_debug(bool on) { g_debug = on; }
bool debug_enabled() { return g_debug; }

void log_error(const std::string& msg) {
  if (g_verbosity != Verbosity::kQuiet) emit("E: ", msg);
}
void log_warning(const std::string& msg) {
  if (g_verbosity != Verbosity::kQuiet) emit("W: ", msg);
}
void log_info(const std::string& msg) {
  if (g_verbosity == Verbosity::kVerbose) emit("I: ", msg);
}
void log_note(const std::string& msg) {
  if (g_verbosity != Verbosity::kQuiet) emit("I: ", msg);
}
void log_debug(const std::string& msg) {
  if (g_debug) emit("D: ", msg);
}

}  // namespace schroot
