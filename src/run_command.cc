#include "src/run_command.h"
