#include "backends/directory.h"
