// The command line: Boost.ProgramOptions → Request. Options, short forms and the
// action/selection rules are schroot 1.6's; errors are one line naming the option.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "src/log.h"
#include "src/session_request.h"

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
  // Named snapshots of an lvm-snapshot chroot (src/lvm_named.h).
  kSnapshotCreate,
  kSnapshotList,
  kSnapshotRestore,
  kSnapshotDelete,
  // --doctor: checks the configuration and the host (src/doctor.h).
  kDoctor,
};

// The command line: the action, which chroots or sessions it selects, how to report,
// and (the base) what the session engine is asked to do for each of them.
struct Request : SessionRequest {
  Action action = Action::kAutomatic;
  std::vector<std::string> chroots;  // -c, in order
  bool all_chroots = false, all_sessions = false, all_source_chroots = false;
  bool exclude_aliases = false;
  Verbosity verbosity = Verbosity::kNormal;
  bool verbosity_set = false;  // -q or -v given: overrides message-verbosity
  std::string debug_level;
  bool json = false;  // --json: the read-only actions print one JSON document
  std::vector<std::string> warnings;  // printed by the caller (e.g. -c with --all)
  std::string snapshot_name;          // --snapshot-create/-restore/-delete NAME

  bool any_all() const { return all_chroots || all_sessions || all_source_chroots; }
  bool is_snapshot_action() const {
    return action == Action::kSnapshotCreate || action == Action::kSnapshotList ||
           action == Action::kSnapshotRestore || action == Action::kSnapshotDelete;
  }
  bool is_read_only_action() const {
    return action == Action::kList || action == Action::kInfo || action == Action::kConfig ||
           action == Action::kLocation;
  }
  bool is_session_action() const {
    return action == Action::kRun || action == Action::kEnd || action == Action::kRecover;
  }
};

// Throws UserError with schroot's one-line message ("unrecognised option '--bogus'").
Request parse_command_line(int argc, const char* const* argv);
std::string help_text();

}  // namespace schroot
