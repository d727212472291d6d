// The command line: Boost.ProgramOptions → Request. Options, short forms and the
// action/selection rules are schroot 1.6's; errors are one line naming the option.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "src/log.h"

namespace schroot {

enum class Action {
  kAutomatic,
  kBegin,
  kRun,
  kEnd,
  kRecover,
  kList,
  kInfo,
  kConfig,
  kLocation,
  kHelp,
  kVersion,
};

struct Request {
  Action action = Action::kAutomatic;
  std::vector<std::string> chroots;  // -c, in order
  bool all_chroots = false, all_sessions = false, all_source_chroots = false;
  bool exclude_aliases = false;
  std::string user;  // -u; empty = the caller
  std::string directory;
  bool preserve_environment = false;
  std::string shell;
  std::vector<std::pair<std::string, std::string>> options;  // -o KEY=VALUE
  std::string session_name;                                  // -n
  bool force = false;
  Verbosity verbosity = Verbosity::kNormal;
  bool verbosity_set = false;  // -q or -v given: overrides message-verbosity
  std::string debug_level;
  int session_lock_timeout = -1;  // seconds; -1 = chroot.conf / default
  int source_lock_timeout = -1;
  std::vector<std::string> command;
  std::vector<std::string> warnings;  // printed by the caller (e.g. -c with --all)

  bool any_all() const { return all_chroots || all_sessions || all_source_chroots; }
  bool is_session_action() const {
    return action == Action::kRun || action == Action::kEnd || action == Action::kRecover;
  }
};

// Throws UserError with schroot's one-line message ("unrecognised option '--bogus'").
Request parse_command_line(int argc, const char* const* argv);
std::string help_text();

}  // namespace schroot
