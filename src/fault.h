// Fault points for the fault-injection tests: SCHROOT_FAIL_AT=NAME makes the process
// SIGKILL itself when it reaches fault point NAME ("begin:10mount", "end:undo", ...);
// SCHROOT_PAUSE_AT=NAME makes it stop there until continued, so a test can act at
// that exact moment (a race made deterministic). Both are ignored when the binary runs
// with privileges it was not started with (AT_SECURE: setuid), so a user can never use
// them to leave a root-made half-session behind or to widen a race window.
#pragma once

namespace schroot {

// Kills or pauses the process when NAME is armed; otherwise does nothing.
//
// A pause, with SCHROOT_PAUSE_FD=N (a socket): sends "paused NAME\n" on fd N, then
// waits for one byte (or EOF, or any error) from it before going on; the test that
// closes its end lets every later pause pass. Without SCHROOT_PAUSE_FD: raise(SIGSTOP),
// going on at SIGCONT. A pause point is reached again at every pass.
void fail_point(const char* name);

}  // namespace schroot
