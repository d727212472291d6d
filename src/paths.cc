#include "src/paths.h"

#ifndef SCHROOT_SYSCONF_DIR
#error "SCHROOT_SYSCONF_DIR must be defined by the build"
#endif

// Only the test build defines SCHROOT_PAM_CONFDIR (paths.h says why).
#ifndef SCHROOT_PAM_CONFDIR
#define SCHROOT_PAM_CONFDIR ""
#endif
#ifndef SCHROOT_SYSLOG_SOCKET
#define SCHROOT_SYSLOG_SOCKET "/dev/log"
#endif

namespace schroot {

static Paths make(const std::string& sysconf, const std::string& state, const std::string& run,
                  const std::string& data) {
  Paths p;
  p.sysconf_dir = sysconf;
  p.session_dir = state + "/session";
  p.overlay_dir = state + "/union/overlay";
  p.underlay_dir = state + "/union/underlay";
  p.claims_dir = state + "/claims";
  p.mount_dir = run + "/mount";
  p.lock_dir = run + "/lock";
  p.data_dir = data;
  return p;
}

Paths Paths::installed() {
  Paths p = make(SCHROOT_SYSCONF_DIR, SCHROOT_STATE_DIR, SCHROOT_RUN_DIR, SCHROOT_DATA_DIR);
  p.pam_confdir = SCHROOT_PAM_CONFDIR;
  p.syslog_socket = SCHROOT_SYSLOG_SOCKET;
  return p;
}

Paths Paths::under(const std::string& root) {
  Paths p = make(root + "/etc/schroot", root + "/var/lib/schroot", root + "/run/schroot",
                 root + "/usr/share/schroot");
  p.pam_confdir = root + "/etc/pam.d";
  p.syslog_socket = root + "/dev/log";
  return p;
}

}  // namespace schroot
