#include "src/fault.h"

#include <errno.h>
#include <signal.h>
#include <sys/auxv.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

namespace schroot {

namespace {
// The variable's value, or null when unset or when running with privileges we were
// not started with.
const char* armed(const char* variable) {
  if (::getauxval(AT_SECURE)) return nullptr;
  return std::getenv(variable);
}

const char* armed_fail_point() {
  static const char* value = armed("SCHROOT_FAIL_AT");
  return value;
}

const char* armed_pause_point() {
  static const char* value = armed("SCHROOT_PAUSE_AT");
  return value;
}

// The fd a pause reports on and waits at, or -1 for SIGSTOP.
int pause_fd() {
  static const int fd = [] {
    const char* v = armed("SCHROOT_PAUSE_FD");
    if (!v || !*v) return -1;
    char* end = nullptr;
    long n = std::strtol(v, &end, 10);
    return (*end == '\0' && n >= 0 && n < 65536) ? static_cast<int>(n) : -1;
  }();
  return fd;
}

void pause_here(const char* name) {
  const int fd = pause_fd();
  if (fd < 0) {
    ::raise(SIGSTOP);
    return;
  }
  const std::string line = std::string("paused ") + name + "\n";
  // MSG_NOSIGNAL: a test that went away must not kill us with SIGPIPE.
  if (::send(fd, line.data(), line.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(line.size())) return;
  char c;
  while (::read(fd, &c, 1) < 0 && errno == EINTR) {
  }
}
}  // namespace

void fail_point(const char* name) {
  const char* fail = armed_fail_point();
  if (fail && std::strcmp(fail, name) == 0) ::kill(::getpid(), SIGKILL);
  const char* pause = armed_pause_point();
  if (pause && std::strcmp(pause, name) == 0) pause_here(name);
}

}  // namespace schroot
