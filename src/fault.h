// Fail points for the fault-injection tests: SCHROOT_FAIL_AT=NAME makes the process
// SIGKILL itself when it reaches fail point NAME ("begin:10mount", "end:undo", ...).
// Ignored when the binary runs with privileges it was not started with (AT_SECURE:
// setuid), so a user can never use it to leave a root-made half-session behind.
#pragma once

namespace schroot {

void fail_point(const char* name);

}  // namespace schroot
