// What the session engine is asked to do for one chroot or session: the user, the
// command and its surroundings, the session's name and how long to wait for locks.
// The command line fills it as part of its Request (cli.h); the engine takes it as is.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace schroot {

struct SessionRequest {
  std::string user;  // -u; empty = the caller
  std::string directory;
  std::string shell;
  bool preserve_environment = false;
  std::vector<std::string> command;
  std::vector<std::pair<std::string, std::string>> options;  // -o KEY=VALUE
  std::string session_name;                                  // -n
  bool force = false;
  bool skip_sessions_in_use = false;  // --recover-session --all-sessions: try each lock once
  int session_lock_timeout = -1;      // seconds; -1 = chroot.conf's (default 30)
  int source_lock_timeout = -1;
};

}  // namespace schroot
