#include "src/cli.h"
