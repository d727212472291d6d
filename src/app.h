// The top of the program: parses the command line, loads configuration and
// dispatches the action. Returns the process exit status.
#pragma once

namespace schroot {
int run_app(int argc, char** argv);
}
