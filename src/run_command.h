// Running the user's command (or login shell) inside a chroot, as schroot 1.6's
// session::run_child does: groups resolved on the host → setns → setgroups/setgid →
// personality → chroot → setuid → directory (with schroot's fallbacks) → exec.
// Returns the exit status schroot gives: the command's own, or 1 when it was killed
// by a signal or could not be executed (with the reason on stderr).
#pragma once

#include <string>
#include <vector>

#include "src/environment.h"

namespace schroot {

struct RunSpec {
  std::string root;             // host path of the chroot's root
  int mount_ns_fd = -1;         // join this mount namespace first (automatic sessions)
  UserInfo target;              // -u
  UserInfo caller;              // the invoking user
  std::string directory;        // -d; empty = caller's cwd (then fallbacks for a login shell)
  std::string caller_cwd;
  std::string shell;            // -s, else shell= from chroot.conf
  std::vector<std::string> command;  // empty = login shell
  std::vector<std::string> command_prefix;
  bool preserve_environment = false;
  std::string environment_filter;
  std::string personality = "undefined";
  std::string chroot_name, alias_name, session_id;
  std::vector<std::string> pam_env;  // the PAM session's environment: the command's base
};

int run_in_chroot(const RunSpec& spec, char** caller_env);

// schroot creates directories and files as root (mount points, union dirs, files in
// the chroot) with umask 022 whatever the caller's: a caller's 077 would otherwise
// make a session root nobody else can use. Called once at start; the command gets
// the caller's umask back.
void use_own_umask();

// personality(2) value for a schroot personality name; -1 for "undefined" (and any
// name it does not know).
long personality_value(const std::string& name);

}  // namespace schroot
