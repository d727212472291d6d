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

}  // namespace schroot
