#include "src/log.h"

#include <unistd.h>

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
}  // namespace

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
