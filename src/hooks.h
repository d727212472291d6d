// setup.d hooks, run as schroot 1.6's run-parts runs them (reference 4.1, 4.2):
// the same file-name filter and order, arguments (STAGE, STATUS) and line-wise output
// relay ("I: NAME: line" for stdout, "E: NAME: line" for stderr, hidden when quiet).
#pragma once

#include <string>
#include <vector>

#include "src/environment.h"

namespace schroot {

// The names in setup_d_dir that schroot 1.6's LSB filter accepts: ^[a-z0-9]+$ or
// ^_?([a-z0-9_.]+-)+[a-z0-9]+$ or ^[a-z0-9][a-z0-9-]*$, and not ending in
// dpkg-(old|dist|new|tmp), nor (unlike 1.6) dpkg-(bak|backup|remove); sorted bytewise.
// A missing directory is an empty list.
// There is no file-type or executable-bit check: such a hook fails when it runs.
std::vector<std::string> list_hooks(const std::string& setup_d_dir);
bool hook_name_accepted(const std::string& name);

// Runs dir/name with argv [name, stage, status] and exactly env. The child gets
// umask 022, cwd /, stdin /dev/null, no inherited descriptors beyond 0-2, default
// signal handling, and real+effective ids 0 when our euid is 0 (so /bin/sh does not
// drop privileges). Output is relayed until the hook has exited and its pipes have
// nothing more to read right now: a daemon left holding the pipes does not block us.
// Returns 0 on success, the exit status, 128+signal when killed, or 127 when it could
// not be executed ("setup.d/NAME: cannot execute: Permission denied" is logged).
// The stock 70services, unchanged, is not started when env has no SETUP_SERVICES: it
// would only exit 0 (0 is returned).
int run_hook(const std::string& dir, const std::string& name, const std::string& stage,
             const std::string& status, const Environment& env);

}  // namespace schroot
