#include "backends/registry.h"
