// Messages to the user on stderr, with schroot 1.6's prefixes (E:, W:, I:, D:).
// Nothing below the session engine prints anything else.
#pragma once

#include <string>

namespace schroot {

enum class Verbosity { kQuiet, kNormal, kVerbose };

void set_verbosity(Verbosity v);
Verbosity verbosity();
void set_debug(bool on);
bool debug_enabled();

void log_error(const std::string& msg);    // "E: msg", shown unless quiet
void log_warning(const std::string& msg);  // "W: msg", shown unless quiet
void log_info(const std::string& msg);     // "I: msg", shown when verbose
void log_note(const std::string& msg);     // "I: msg", shown unless quiet
void log_debug(const std::string& msg);    // "D: msg", shown with --debug

// Operators' record (begins, ends, recoveries, automatic sessions, refusals): one
// line to syslog, facility authpriv, as "schroot[PID]: msg" (schroot 1.6's openlog
// ident and facility); notice, or warning for a failure. Sent to `socket_path`
// (Paths::syslog_socket); a logger that is not there loses the line, as syslog(3) does.
void log_syslog(const std::string& socket_path, bool failure, const std::string& msg);

}  // namespace schroot
