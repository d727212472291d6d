#include "backends/loopback.h"
