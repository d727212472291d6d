// Every directory the program uses, derived from configure's directories at build
// time. The installed binary only ever uses Paths::installed(): no environment
// variable or option redirects them (the binary is setuid). Tests either run the
// binary in a private mount namespace with temporary directories bind-mounted over
// these paths, or call library code with Paths::under(tmpdir).
#pragma once

#include <string>

namespace schroot {

struct Paths {
  std::string sysconf_dir;   // $sysconfdir/schroot: chroot.conf, chroot.d/, setup.d/, profiles
  std::string session_dir;   // $localstatedir/lib/schroot/session: one record per session
  std::string overlay_dir;   // $localstatedir/lib/schroot/union/overlay
  std::string underlay_dir;  // $localstatedir/lib/schroot/union/underlay
  std::string claims_dir;    // $localstatedir/lib/schroot/claims: source claims, one per source
  std::string mount_dir;     // $runstatedir/schroot/mount: session mount points
  std::string lock_dir;      // $runstatedir/schroot/lock: manage.lock and session locks
  std::string data_dir;      // $datadir/schroot: setup/common-* for hooks written for 1.6
  // PAM's configuration directory: empty (the system's /etc/pam.d) for the installed
  // binary. The test build compiles in its own (test/root/etc/pam.d) so that its PAM
  // stacks are the tests', never the host's; a compiled-in path, not a variable:
  // anything the environment could set would let any user of a setuid binary pick a
  // pam_permit stack.
  std::string pam_confdir;
  std::string syslog_socket;  // /dev/log; the test build's own socket below test/root

  std::string chroot_conf() const { return sysconf_dir + "/chroot.conf"; }
  std::string schroot_conf() const { return sysconf_dir + "/schroot.conf"; }
  std::string chroot_d() const { return sysconf_dir + "/chroot.d"; }
  std::string setup_d() const { return sysconf_dir + "/setup.d"; }

  static Paths installed();
  // The same layout below one root, for unit tests: ROOT/etc/schroot, ROOT/var/lib/schroot,
  // ROOT/run/schroot, ROOT/usr/share/schroot.
  static Paths under(const std::string& root);
};

}  // namespace schroot
