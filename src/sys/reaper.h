// An automatic session's schroot is the child subreaper of its command: whatever the
// command leaves running (daemons, double-forked helpers) is reparented to us, not to
// init, and is ended when the command exits — exact, with no scan of /proc.
#pragma once

#include <chrono>

namespace schroot::sys {

// prctl(PR_SET_CHILD_SUBREAPER): orphaned descendants become our children.
void become_subreaper();

// SIGTERM to every child we have (the orphans of the command included), SIGKILL to
// those still there after `grace`; reaps them all. Signals go only to our own
// unreaped children, whose pids cannot have been reused. Returns how many processes
// were ended; bounded in time (grace + 2 s).
int end_descendants(std::chrono::milliseconds grace);

}  // namespace schroot::sys
